"""Every journal write runs on the journal's own thread: a write asked from another thread is handed to
the event loop, never run on the foreign thread (sqlite3's "objects created in a thread can only be used in that same
thread" lost three writes in the field), and never lost.

The cross-thread case is provoked the way the live node meets it: a nautilus `LiveClock` time alert (its callback
runs on a Rust/tokio thread, like `BasisCarryStrategy._on_pair_deadline`) publishes journal records on the message
bus, and a plain `threading.Thread` (APScheduler's thread pool, executor callbacks) calls the journal directly."""

from __future__ import annotations

import asyncio
import threading

from nautilus_trader.common.component import LiveClock
from nautilus_trader.test_kit.stubs.component import TestComponentStubs

from basisbot.journal.writer import Journal, JournalReader, JournalThreadError
from basisbot.nautilus.journal_actor import JournalActor, JournalActorConfig
from basisbot.nautilus.messages import JOURNAL_TOPIC, JournalRecord


def test_write_from_a_foreign_thread_without_a_loop_is_refused_not_run(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    errors: list[BaseException] = []

    def write():
        try:
            j.record_decision("BTCUSDT", 1, action="enter", reason="from a thread")
        except BaseException as e:  # noqa: BLE001 - what the thread saw
            errors.append(e)

    t = threading.Thread(target=write, name="not-the-owner")
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], JournalThreadError)
    assert "not-the-owner" in str(errors[0])
    assert j.rows("decisions") == []  # the connection was not touched
    j.record_decision("BTCUSDT", 2, action="enter", reason="owner")
    assert [r["reason"] for r in j.rows("decisions")] == ["owner"]
    j.close()


def test_write_from_a_foreign_thread_is_handed_to_the_loop(tmp_path):
    async def main():
        j = Journal(tmp_path / "j.sqlite")
        j.bind_loop(asyncio.get_running_loop())
        owner = threading.get_ident()
        seen_threads: list[int] = []
        orig = j._upsert

        def spy(*a, **k):
            seen_threads.append(threading.get_ident())
            return orig(*a, **k)

        j._upsert = spy
        threads = [threading.Thread(target=lambda i=i: [j.record_decision("BTCUSDT", i * 100 + k, action="a",
                                                                          reason=f"t{i}-{k}") for k in range(50)])
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for _ in range(100):
            if len(j.rows("decisions")) == 200:
                break
            await asyncio.sleep(0.01)
        rows = j.rows("decisions")
        assert len(rows) == 200 and j.handed_over == 200
        assert set(seen_threads) == {owner}
        # per thread, the writes land in the order they were asked
        for i in range(4):
            mine = [r["reason"] for r in rows if r["reason"].startswith(f"t{i}-")]
            assert mine == [f"t{i}-{k}" for k in range(50)]
        j.close()

    asyncio.run(main())


def test_actor_handles_records_published_from_a_live_clock_timer_thread(tmp_path):
    """A live-clock time alert publishes on the bus from a tokio thread: the actor writes it on the loop."""
    path = tmp_path / "j.sqlite"

    async def main():
        clock = LiveClock()
        msgbus, cache = TestComponentStubs.msgbus(), TestComponentStubs.cache()
        actor = JournalActor(JournalActorConfig(journal_path=str(path), capture_settlement_marks=False))
        actor.register_base(TestComponentStubs.portfolio(), msgbus, cache, clock)
        actor.start()
        loop_thread = threading.get_ident()
        fired: list[int] = []

        def alert(event, i):
            fired.append(threading.get_ident())
            msgbus.publish(JOURNAL_TOPIC, JournalRecord("decision", "BTCUSDT", event.ts_event,
                                                        {"action": "leg_timeout", "reason": f"alert {i}"}))
            msgbus.publish(JOURNAL_TOPIC, JournalRecord("leg", "BTCUSDT", event.ts_event, {
                "pair_id": f"BTCUSDT-enter-{i}", "intent": "enter", "event": "timeout", "detail": "perp",
                "status": "unwinding", "targets": {"spot": 0.1, "perp": -0.1}, "filled": {"spot": 0.1, "perp": 0}}))

        now = clock.timestamp_ns()
        for i in range(5):
            clock.set_time_alert_ns(f"a{i}", now + (20 + 10 * i) * 1_000_000, lambda e, i=i: alert(e, i))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(fired) == 5 and len(actor.journal.rows("legs")) == 5:
                break
        assert len(fired) == 5
        assert any(t != loop_thread for t in fired), "the live clock did not call back on another thread"
        assert actor.errors == 0 and actor.handed_over >= 10
        actor.stop()
        actor.dispose()

    asyncio.run(main())
    with JournalReader(path) as r:
        assert sorted(x["reason"] for x in r.rows("decisions")) == [f"alert {i}" for i in range(5)]
        assert len(r.rows("legs")) == 5


def test_without_the_handoff_the_foreign_thread_write_would_fail(tmp_path):
    """The failure the hand-off prevents is real: sqlite3's default connection refuses a write from another thread."""
    import sqlite3

    conn = sqlite3.connect(str(tmp_path / "x.sqlite"))
    errs: list[BaseException] = []

    def write():
        try:
            conn.execute("CREATE TABLE t (x)")
        except BaseException as e:  # noqa: BLE001
            errs.append(e)

    t = threading.Thread(target=write)
    t.start()
    t.join()
    assert errs and "same thread" in str(errs[0])
