"""Rehearsal at speed: the live node against `basisbot sim` replaying at 60x learns the speed from the venue
(GET /sim/clock), so decision, blackout and booking fall where they would at 1x in venue time, and every settlement
is booked with its prediction: one funding row per settlement carrying the prediction, the booking and the
exchange's settled payment; no prediction-only rows, no storm of "venue clock jumped" re-anchorings.

SOL's funding was every 2 hours from 2022-11-10 04:00: at 60x two settlements (06:00, 08:00) are ~2 wall minutes
apart."""

from __future__ import annotations

import asyncio
import logging

import pandas as pd
import pytest

from basisbot.journal.writer import JournalReader
from basisbot.live.node import NodeOptions
from basisbot.sim import SimServer
from tests.helpers.live_node import RunningNode, node_settings, sim_config, until
from tests.helpers.sim_venue import state

SYM = "SOLUSDT"
T1 = pd.Timestamp("2022-11-10T06:00:00Z").value
T2 = pd.Timestamp("2022-11-10T08:00:00Z").value
DEFAULT_WINDOWS = {"decision_before_s": 600, "blackout_before_s": 300, "blackout_after_s": 60, "booking_after_s": 60,
                   "guard_sweep_s": 60}


@pytest.mark.slow
def test_rehearsal_at_60x_books_every_settlement_with_its_prediction(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="basisbot.live")

    async def scenario():
        async with SimServer(sim_config(speed=60.0, start="2022-11-10T05:35:00Z", symbols=[SYM])) as sim:
            settings = node_settings(tmp_path, sim.url, schedule=DEFAULT_WINDOWS, symbols={SYM: {
                "notional_usdt": 2000.0, "leverage": 2, "entry_apr": -1000.0, "exit_apr": -2000.0}})
            async with RunningNode(settings, "live", NodeOptions(log_level="WARNING")) as run:
                assert run.app.venue_speed == 60.0 and "/sim/clock" in run.app.venue_speed_source
                strat = run.strategy(SYM)
                # the decision window is 600 venue s = 10 wall s before the settlement
                assert strat.calendar.windows.decision_before_s == pytest.approx(10.0)

                async def venue_past(t_ns: int, extra_s: float):
                    st = await state(sim)
                    return st["time"] * 1_000_000 >= t_ns + extra_s * 1e9

                await until(lambda: venue_past(T2, 300), timeout=200, interval=0.5, what="second settlement booked")
                await asyncio.sleep(1.0)
                funding = [f for f in (await state(sim))["funding"] if f["symbol"] == SYM]
                jumps = run.app.session.time.jumps
        return funding, jumps

    funding, jumps = asyncio.run(scenario())
    assert [f["time"] for f in funding] == [T1 // 1_000_000, T2 // 1_000_000]  # the venue paid twice
    with JournalReader(tmp_path / "journal.sqlite") as r:
        rows = r.rows("funding", "symbol = ?", [SYM], order_by="settlement_ts")
        clock = r.venue_clock()
    assert clock is not None and clock["speed"] == 60.0
    assert len(rows) == 2, rows  # one row per settlement: no prediction-only rows
    for row, paid in zip(rows, funding):
        assert row["predicted_rate"] is not None and row["predicted_ts"] is not None, row
        assert row["booked_ts"] is not None and row["booked_phase"] == "in_carry", row
        assert row["settled_payment"] == pytest.approx(paid["payment"], abs=1e-8), row
        assert not row["flagged"], row
        # decision 600 venue s before T and booking 60 venue s after it, on the node's clock at 60x:
        # 10 and 1 wall seconds (a little slack for the event loop)
        assert 8.5e9 <= row["settlement_ts"] - row["predicted_ts"] <= 11e9, row
        assert 0.5e9 <= row["booked_ts"] - row["settlement_ts"] <= 3e9, row
    assert jumps <= 2, f"{jumps} venue clock re-anchorings"
    assert sum("venue clock jumped" in m for m in caplog.messages) <= 2


def test_rehearsal_at_1800x_journals_every_payment_the_venue_made(tmp_path):
    """At 1800x, settlements 8 venue hours apart are 16 wall seconds apart: each payment the venue made is its own
    journal row (the window that ties an income record to its settlement is 60 venue seconds, not 60 wall seconds)."""
    sym = "BTCUSDT"

    async def scenario():
        async with SimServer(sim_config(speed=1800.0, start="2022-03-01T00:00:00Z", symbols=[sym])) as sim:
            settings = node_settings(tmp_path, sim.url, schedule=DEFAULT_WINDOWS, symbols={sym: {
                "notional_usdt": 1000.0, "leverage": 2, "margin_mode": "isolated",
                "entry_apr": -1000.0, "exit_apr": -2000.0}})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as run:
                assert run.app.venue_speed == 1800.0

                async def paid_three():
                    return len([f for f in (await state(sim))["funding"] if f["symbol"] == sym]) >= 3

                await until(paid_three, timeout=120, interval=0.5, what="three payments by the venue")

                async def all_journaled():
                    paid = [f for f in (await state(sim))["funding"] if f["symbol"] == sym]
                    with JournalReader(tmp_path / "journal.sqlite") as r:
                        rows = r.rows("funding", "symbol = ? AND settled_payment IS NOT NULL", [sym])
                    return len(rows) >= len(paid) and (paid, rows)

                paid, rows = await until(all_journaled, timeout=30, interval=0.5, what="every payment journaled")
        return paid, rows

    paid, rows = asyncio.run(scenario())
    assert len(rows) == len(paid) >= 3, (paid, rows)
    settled = sorted(rows, key=lambda r: r["settlement_ts"])
    assert [r["settled_payment"] for r in settled] == pytest.approx([p["payment"] for p in paid], abs=1e-8)
    assert len({r["source"] for r in settled}) == len(settled)  # one income record per row


def test_a_replay_faster_than_the_node_can_follow_is_refused_at_start(tmp_path):
    from basisbot.config.settings import ConfigError
    from basisbot.live.node import MAX_VENUE_SPEED, BasisNode

    settings = node_settings(tmp_path, "http://127.0.0.1:9", symbols={"BTCUSDT": {"notional_usdt": 1000.0}})
    node = BasisNode(settings, "live", NodeOptions(venue_speed=MAX_VENUE_SPEED * 2))
    with pytest.raises(ConfigError) as err:
        asyncio.run(node.build())
    assert f"{MAX_VENUE_SPEED * 2:g}x" in str(err.value) and "--speed" in str(err.value)
