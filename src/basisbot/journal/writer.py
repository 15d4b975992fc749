"""The trading journal (live/paper): one SQLite file in WAL mode, written by ONE writer, read by anyone.

Concurrency model
-----------------
- **One writer, one thread.** A `Journal` object owns the only read-write connection, and every write runs on ONE
  thread: the thread that created it, or the event loop's thread once `bind_loop(loop)` was called (a live/paper node:
  the `JournalActor` binds it to the node's loop). A write asked from any other thread (a nautilus live-clock
  callback runs on a Rust/tokio thread, APScheduler runs plain jobs in a thread pool, executor callbacks...) is handed
  to the loop with ``call_soon_threadsafe`` and runs there, in order with the other writes; it is never lost to
  sqlite3's ``SQLite objects created in a thread can only be used in that same thread``. Without a bound loop such a
  write raises `JournalThreadError` (naming the thread) instead of touching the connection. Every write is one small transaction committed at once (WAL + ``synchronous=NORMAL`` by default: a
  commit is an append to the -wal file, no fsync; a crash of the process loses nothing committed, a power cut may lose
  the last commits. Pass ``synchronous="FULL"`` to fsync each commit).
- **Readers never block the writer.** `basisbot status`, `basisbot journal` and any other process open the file with
  `JournalReader` (``file:...?mode=ro`` URI, ``PRAGMA query_only``): in WAL mode a reader sees the last committed
  state and neither blocks the writer nor is blocked by it.

Tables (every write is an idempotent upsert on the table's natural key, so replaying the same events after a restart
never duplicates a row):

| table | key | what |
|---|---|---|
| orders | client_order_id | one row per order, status only moves forward (submitted < accepted < partially_filled < terminal) |
| fills | (instrument_id, trade_id) | one row per venue trade (trade ids are unique per venue + instrument) |
| funding | (symbol, settlement_ts) | one row per settlement: the prediction first, the booking, then the settled payment |
| guard | (symbol, ts, step) | every guard action |
| legs | (pair_id, ts, event, detail) | every leg-pair transition, with the pair's status, targets and filled at that time |
| config_changes | (ts, source, status, scope) | hot-reload outcomes: applied / refused / deferred (restart only) |
| positions | (symbol, ts) | throttled position snapshots (legs, perp entry, isolated wallet, liquidation price, mark) |
| decisions | (symbol, ts, action, reason) | the strategy's decisions |
| marks | symbol | the latest mark (and spot mid) per symbol, at most one write per second: what `status` shows |
| venue_clock | id (one row) | a replaying venue's time base: venue ms at local ns, replay speed (absent against Binance) |

An order sent before a stop that never reached the exchange is marked ``not_at_venue`` at the next start's
reconciliation (terminal), instead of staying ``submitted``.
| alerts | (ts, channel, event, status) | alert channel problems (`basisbot.ops`): undelivered alerts, at most one row per channel per coalescing window |

Timestamps are UNIX nanoseconds (``ts`` columns) as nautilus gives them. Funding: ``expected_payment`` is
``-position_qty × mark_price × rate`` with the settled rate once known, the predicted rate before; ``difference`` is
``settled_payment - expected_payment``; ``flagged`` is 1 when the difference exceeds the tolerance.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from basisbot.core.carry import expected_funding, funding_mismatch
from basisbot.core.units import NS
from basisbot.journal.reader import JournalReader
from basisbot.journal.schema import EXPORT_ORDER, STATUS_RANK, TABLES, dumps_json

__all__ = ["EXPORT_ORDER", "TABLES", "Journal", "JournalReader", "JournalThreadError"]


class JournalThreadError(RuntimeError):
    """A journal write from a thread that does not own the journal, with no event loop to hand it to."""


class Journal(JournalReader):
    """The single writer. Creates the file (and its folder) and the tables, switches to WAL, and upserts rows.

    Each `record_*` method is one committed transaction and returns quickly (a few hundred microseconds: see the
    latency figures in journal_actor's report). `latency` holds (count, total_ns, max_ns) of the writes so far."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL", settlement_match_s: float = 60.0):
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: ownership is enforced by `_timed` (one owner thread, others handed to its loop),
        # so the owner may be the event loop's thread even when the object was created elsewhere
        conn = sqlite3.connect(str(p), timeout=5.0, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.enable_wal()
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA busy_timeout = 5000")
        super().__init__(p, db=db)
        self.settlement_match_ns = int(settlement_match_s * NS)
        self._sql: dict[tuple, str] = {}
        self.latency = [0, 0, 0]  # writes, total ns, max ns
        self._recent: deque[int] = deque(maxlen=10_000)  # latest write durations, ns
        self._owner = threading.get_ident()  # the one thread that writes
        self._loop = None  # event loop that off-thread writes are handed to (bind_loop)
        self.handed_over = 0  # writes asked from another thread and run on the owner's loop
        self._create()

    def bind_loop(self, loop) -> None:
        """Make `loop`'s thread the journal's writer thread (call from that thread, e.g. in an actor's on_start):
        writes asked from any other thread are scheduled on `loop` instead of touching the connection."""
        self._loop = loop
        self._owner = threading.get_ident()

    def on_owner_thread(self) -> bool:
        return threading.get_ident() == self._owner

    def _create(self) -> None:
        for name, spec in TABLES.items():
            t = self.db[name]
            if not t.exists():
                t.create(spec["columns"], pk=spec["pk"] if len(spec["pk"]) > 1 else spec["pk"][0])
            else:  # a journal written by an older version: add the columns it lacks
                have = set(t.columns_dict)
                for col, typ in spec["columns"].items():
                    if col not in have:
                        t.add_column(col, typ)
            for idx in spec["indexes"]:
                t.create_index(list(idx), if_not_exists=True)

    def journal_mode(self) -> str:
        return self.db.execute("PRAGMA journal_mode").fetchone()[0]

    # -- low level --------------------------------------------------------------------------------------------------
    def _upsert_sql(self, table: str, cols: tuple[str, ...], merge: Mapping[str, str] | None = None) -> str:
        key = (table, cols, tuple(sorted((merge or {}).items())))
        sql = self._sql.get(key)
        if sql is None:
            pk = TABLES[table]["pk"]
            updates = [f"{c} = {(merge or {}).get(c, f'excluded.{c}')}" for c in cols if c not in pk]
            sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                   f"ON CONFLICT({', '.join(pk)}) DO "
                   + (f"UPDATE SET {', '.join(updates)}" if updates else "NOTHING"))
            self._sql[key] = sql
        return sql

    def _upsert(self, table: str, row: Mapping[str, Any], merge: Mapping[str, str] | None = None) -> None:
        cols = tuple(row)
        self.db.conn.execute(self._upsert_sql(table, cols, merge), [row[c] for c in cols])

    def _timed(self, fn, *args):
        if threading.get_ident() != self._owner:
            loop = self._loop
            if loop is None or loop.is_closed():
                raise JournalThreadError(
                    f"journal write {getattr(fn, '__name__', fn)} from thread {threading.current_thread().name!r}, "
                    "which does not own the journal (no event loop bound to hand it to)")
            self.handed_over += 1
            loop.call_soon_threadsafe(self._timed, fn, *args)
            return None
        t0 = time.perf_counter_ns()
        with self.db.conn:  # one transaction, committed on exit
            result = fn(*args)
        dt_ns = time.perf_counter_ns() - t0
        lat = self.latency
        lat[0] += 1
        lat[1] += dt_ns
        if dt_ns > lat[2]:
            lat[2] = dt_ns
        self._recent.append(dt_ns)
        return result

    # -- orders and fills -------------------------------------------------------------------------------------------
    def record_order(self, client_order_id: str, *, ts: int, status: str | None = None, **fields: Any) -> None:
        """Upsert an order. `fields`: venue_order_id, symbol, leg, side, qty, price, type, tags, instrument_id,
        strategy_id, reason. A None field never erases a known value; the status only moves forward."""
        self._timed(self._order, client_order_id, ts, status, fields)

    def _order(self, client_order_id: str, ts: int, status: str | None, fields: Mapping[str, Any]) -> None:
        cur = self.db.conn.execute("SELECT status FROM orders WHERE client_order_id = ?", [client_order_id]).fetchone()
        if status is not None and cur is not None and cur[0] is not None:
            if STATUS_RANK.get(status, 0) < STATUS_RANK.get(cur[0], 0):
                status = cur[0]
        row: dict[str, Any] = {"client_order_id": client_order_id, "ts_created": ts, "ts_last": ts}
        if status is not None:
            row["status"] = status
        for k, v in fields.items():
            if v is not None:
                row[k] = v
        if isinstance(row.get("tags"), (list, tuple)):
            row["tags"] = ",".join(str(t) for t in row["tags"])
        self._upsert("orders", row, {"ts_created": "MIN(orders.ts_created, excluded.ts_created)",
                                     "ts_last": "MAX(orders.ts_last, excluded.ts_last)"})

    def record_fill(self, *, trade_id: str, instrument_id: str, client_order_id: str, symbol: str, leg: str, side: str,
                    qty: float, price: float, fee: float, fee_currency: str, ts: int, venue_order_id: str | None = None,
                    liquidity: str | None = None) -> None:
        """Insert a fill (once per venue trade) and bring its order's filled qty, average price and status up to date."""
        row = {"trade_id": trade_id, "instrument_id": instrument_id, "venue": instrument_id.rsplit(".", 1)[-1],
               "client_order_id": client_order_id, "venue_order_id": venue_order_id, "symbol": symbol, "leg": leg,
               "side": side, "qty": qty, "price": price, "fee": fee, "fee_currency": fee_currency,
               "liquidity": liquidity, "ts": ts}
        self._timed(self._fill, row)

    def _fill(self, row: dict) -> None:
        self._upsert("fills", row)
        oid = row["client_order_id"]
        filled, notional = self.db.conn.execute(
            "SELECT SUM(qty), SUM(qty * price) FROM fills WHERE client_order_id = ?", [oid]).fetchone()
        cur = self.db.conn.execute("SELECT qty, status FROM orders WHERE client_order_id = ?", [oid]).fetchone()
        qty, status = (cur if cur is not None else (None, None))
        full = qty is None or filled >= qty - 1e-12
        new_status = "filled" if full else "partially_filled"
        if status is not None and STATUS_RANK.get(new_status, 0) < STATUS_RANK.get(status, 0):
            new_status = status  # e.g. canceled after a partial fill stays canceled
        self._order(oid, row["ts"], new_status, {
            "symbol": row["symbol"], "leg": row["leg"], "side": row["side"], "instrument_id": row["instrument_id"],
            "venue_order_id": row["venue_order_id"], "filled_qty": filled, "avg_px": notional / filled if filled else None,
        })

    # -- funding ----------------------------------------------------------------------------------------------------
    def _settlement_key(self, symbol: str, settlement_ts: int) -> int:
        """The settlement row a timestamp belongs to: an existing row within `settlement_match_s` (the exchange stamps
        its income records with a few milliseconds of jitter around T), else the timestamp itself."""
        row = self.db.conn.execute(
            "SELECT settlement_ts FROM funding WHERE symbol = ? AND settlement_ts BETWEEN ? AND ? "
            "ORDER BY ABS(settlement_ts - ?) LIMIT 1",
            [symbol, settlement_ts - self.settlement_match_ns, settlement_ts + self.settlement_match_ns,
             settlement_ts]).fetchone()
        return row[0] if row else settlement_ts

    def _recompute_expected(self, symbol: str, settlement_ts: int, abs_tol: float | None = None,
                            rel_tol: float | None = None) -> dict:
        r = self.db.conn.execute(
            "SELECT position_qty, mark_price, predicted_rate, settled_rate, settled_payment, flagged "
            "FROM funding WHERE symbol = ? AND settlement_ts = ?", [symbol, settlement_ts]).fetchone()
        qty, mark, predicted, settled_rate, settled_payment, flagged = r
        rate = settled_rate if settled_rate is not None else predicted
        expected = expected_funding(qty, mark, rate)
        diff = None if expected is None or settled_payment is None else settled_payment - expected
        if abs_tol is not None:
            flagged = int(funding_mismatch(expected, settled_payment, abs_tol, rel_tol or 0.0))
        self.db.conn.execute(
            "UPDATE funding SET expected_payment = ?, difference = ?, flagged = ? WHERE symbol = ? AND settlement_ts = ?",
            [expected, diff, flagged, symbol, settlement_ts])
        return {"expected_payment": expected, "difference": diff, "flagged": flagged}

    def record_prediction(self, symbol: str, settlement_ts: int, *, ts: int, predicted_rate: float,
                          interval_minutes: int | None = None, position_qty: float | None = None,
                          mark: float | None = None) -> None:
        """The pre-settlement prediction (written first). Position and mark here are those of the decision time; a
        capture at the settlement itself (`record_settlement_capture`) replaces them."""
        self._timed(self._prediction, symbol, settlement_ts, ts, predicted_rate, interval_minutes, position_qty, mark)

    def _prediction(self, symbol, settlement_ts, ts, predicted_rate, interval_minutes, position_qty, mark) -> None:
        key = self._settlement_key(symbol, settlement_ts)
        row = {"symbol": symbol, "settlement_ts": key, "predicted_rate": predicted_rate,
               "interval_minutes": interval_minutes, "predicted_ts": ts, "position_qty": position_qty,
               "mark_price": mark}
        keep_captured = "CASE WHEN funding.captured_at_settlement = 1 THEN funding.{0} ELSE excluded.{0} END"
        self._upsert("funding", row, {"position_qty": keep_captured.format("position_qty"),
                                      "mark_price": keep_captured.format("mark_price")})
        self._recompute_expected(symbol, key)

    def record_settlement_capture(self, symbol: str, settlement_ts: int, *, position_qty: float, mark: float) -> None:
        """The position and the mark at the settlement itself (what the exchange uses)."""
        self._timed(self._capture, symbol, settlement_ts, position_qty, mark)

    def _capture(self, symbol, settlement_ts, position_qty, mark) -> None:
        key = self._settlement_key(symbol, settlement_ts)
        self._upsert("funding", {"symbol": symbol, "settlement_ts": key, "position_qty": position_qty,
                                 "mark_price": mark, "captured_at_settlement": 1})
        self._recompute_expected(symbol, key)

    def record_booking(self, symbol: str, settlement_ts: int, *, ts: int, phase: str | None,
                       position_qty: float | None, predicted_rate: float | None = None) -> None:
        """The strategy's booking after the settlement (counts toward `settlements_held` when phase is in_carry; a
        settlement never booked counts when the exchange paid funding on it: `JournalReader.settlements_held`)."""
        self._timed(self._booking, symbol, settlement_ts, ts, phase, position_qty, predicted_rate)

    def _booking(self, symbol, settlement_ts, ts, phase, position_qty, predicted_rate) -> None:
        key = self._settlement_key(symbol, settlement_ts)
        row = {"symbol": symbol, "settlement_ts": key, "booked_ts": ts, "booked_phase": phase,
               "booked_position_qty": position_qty}
        merge = {}
        if predicted_rate is not None:
            row["predicted_rate"] = predicted_rate
            merge["predicted_rate"] = "COALESCE(funding.predicted_rate, excluded.predicted_rate)"
        self._upsert("funding", row, merge)
        # no capture at the settlement: the booking's position (taken in the blackout, after T) is the best known
        self.db.conn.execute(
            "UPDATE funding SET position_qty = ? WHERE symbol = ? AND settlement_ts = ? "
            "AND COALESCE(captured_at_settlement, 0) = 0 AND ? IS NOT NULL",
            [position_qty, symbol, key, position_qty])
        self._recompute_expected(symbol, key)

    def record_funding_settled(self, symbol: str, settlement_ts: int, *, rate: float, payment: float, source: str,
                               ts: int | None = None, abs_tol: float = 0.01, rel_tol: float = 1e-6,
                               position_qty: float | None = None, mark: float | None = None) -> dict:
        """The exchange's funding income for a settlement: fills the settled columns of the predicted row (or creates
        the row), recomputes expected = -position_qty × mark × settled rate and flags a difference beyond the
        tolerances. `position_qty`/`mark` only fill in what the row does not know. Returns the reconciled row with
        `newly_flagged` (True the first time this settlement is flagged)."""
        return self._timed(self._settled, symbol, settlement_ts, rate, payment, source, ts, abs_tol, rel_tol,
                           position_qty, mark)

    def _settled(self, symbol, settlement_ts, rate, payment, source, ts, abs_tol, rel_tol, position_qty, mark) -> dict:
        key = self._settlement_key(symbol, settlement_ts)
        prev = self.db.conn.execute(
            "SELECT flagged, position_qty, mark_price FROM funding WHERE symbol = ? AND settlement_ts = ?",
            [symbol, key]).fetchone()
        row = {"symbol": symbol, "settlement_ts": key, "settled_rate": rate, "settled_payment": payment,
               "settled_ts": ts if ts is not None else settlement_ts, "source": source,
               "position_qty": position_qty, "mark_price": mark}
        self._upsert("funding", row, {"position_qty": "COALESCE(funding.position_qty, excluded.position_qty)",
                                      "mark_price": "COALESCE(funding.mark_price, excluded.mark_price)"})
        rec = self._recompute_expected(symbol, key, abs_tol, rel_tol)
        unknown = "no position/mark known for this settlement: not reconciled"
        note = self.db.conn.execute("SELECT note FROM funding WHERE symbol = ? AND settlement_ts = ?",
                                    [symbol, key]).fetchone()[0]
        if rec["expected_payment"] is None:
            note = unknown
        elif prev is None or prev[1] is None or prev[2] is None:
            note = "position/mark supplied with the settlement (no prediction or capture for it)"
        elif note == unknown:
            note = None
        self.db.conn.execute("UPDATE funding SET note = ? WHERE symbol = ? AND settlement_ts = ?", [note, symbol, key])
        out = dict(zip(TABLES["funding"]["columns"], self.db.conn.execute(
            f"SELECT {', '.join(TABLES['funding']['columns'])} FROM funding WHERE symbol = ? AND settlement_ts = ?",
            [symbol, key]).fetchone()))
        out["newly_flagged"] = bool(out["flagged"]) and not (prev is not None and prev[0])
        return out

    # -- the rest ---------------------------------------------------------------------------------------------------
    def record_guard(self, symbol: str, ts: int, *, step: str, distance: float | None = None,
                     liquidation_price: float | None = None, mark: float | None = None, add_margin: float | None = None,
                     reduce_fraction: float | None = None, reason: str | None = None) -> None:
        self._timed(self._upsert, "guard", {
            "ts": ts, "symbol": symbol, "step": step, "distance": distance, "liquidation_price": liquidation_price,
            "mark": mark, "add_margin": add_margin, "reduce_fraction": reduce_fraction, "reason": reason})

    def record_leg(self, *, pair_id: str, ts: int, symbol: str, intent: str, event: str, detail: str, status: str,
                   targets: Mapping | None = None, filled: Mapping | None = None) -> None:
        self._timed(self._upsert, "legs", {
            "pair_id": pair_id, "ts": ts, "symbol": symbol, "intent": intent, "event": event, "detail": detail or "",
            "status": status, "targets": dumps_json(targets), "filled": dumps_json(filled)})

    def record_decision(self, symbol: str, ts: int, *, action: str, reason: str, phase: str | None = None) -> None:
        self._timed(self._upsert, "decisions", {"ts": ts, "symbol": symbol, "action": action, "reason": reason or "",
                                               "phase": phase})

    def record_position(self, symbol: str, ts: int, *, spot_qty: float | None, perp_qty: float | None,
                        perp_entry: float | None = None, isolated_wallet: float | None = None,
                        liquidation_price: float | None = None, mark: float | None = None,
                        spot_price: float | None = None, margin_mode: str | None = None) -> None:
        self._timed(self._upsert, "positions", {
            "ts": ts, "symbol": symbol, "spot_qty": spot_qty, "perp_qty": perp_qty, "perp_entry": perp_entry,
            "isolated_wallet": isolated_wallet, "liquidation_price": liquidation_price, "mark": mark,
            "spot_price": spot_price, "margin_mode": margin_mode})

    def record_config_change(self, ts: int, source: str, diff: Any, status: str, message: str = "",
                             scope: str = "*") -> None:
        """status: applied | refused | deferred (accepted for the next restart only)."""
        self._timed(self._upsert, "config_changes", {"ts": ts, "source": str(source), "status": status,
                                                    "scope": scope, "diff": dumps_json(diff), "message": message})

    def record_mark(self, symbol: str, ts: int, *, mark: float, spot_price: float | None = None,
                    source: str = "stream") -> None:
        """The latest mark (one row per symbol, replaced)."""
        self._timed(self._upsert, "marks", {"symbol": symbol, "ts": ts, "mark": mark, "spot_price": spot_price,
                                            "source": source})

    def record_venue_clock(self, ts: int, *, venue_ms: int, local_ns: int, speed: float) -> None:
        """A replaying venue's time base (venue ms at local ns, replay speed): one row, replaced at each anchoring."""
        self._timed(self._upsert, "venue_clock", {"id": 1, "ts": ts, "venue_ms": int(venue_ms),
                                                  "local_ns": int(local_ns), "speed": float(speed)})

    def record_alert(self, ts: int, *, event: str, severity: str, channel: str, status: str, title: str = "",
                     message: str = "", symbol: str | None = None) -> None:
        self._timed(self._upsert, "alerts", {"ts": ts, "symbol": symbol, "event": event, "severity": severity,
                                             "channel": channel, "status": status, "title": title,
                                             "message": message})

    def record_control(self, symbol: str, ts: int, *, command: str, origin: str, reason: str = "", answer: str = "",
                       state: str = "") -> None:
        self._timed(self._upsert, "control", {"ts": ts, "symbol": symbol, "command": command, "origin": origin,
                                              "reason": reason or "", "answer": answer, "state": state})

    def record_risk(self, ts: int, *, limit_name: str, value: float, threshold: float, equity: float,
                    reference: float, action: str, detail: str = "") -> None:
        self._timed(self._upsert, "risk", {"ts": ts, "limit_name": limit_name, "value": value, "threshold": threshold,
                                           "equity": equity, "reference": reference, "action": action,
                                           "detail": detail})

    def record(self, rec) -> None:
        """Write a `basisbot.nautilus.messages.JournalRecord` (kind decision | guard | prediction | leg | booking |
        order_resolution | venue_clock | alert | control | risk)."""
        d, s, ts = rec.data, rec.symbol, rec.ts_ns
        if rec.kind == "decision":
            self.record_decision(s, ts, action=d.get("action", ""), reason=d.get("reason", ""), phase=d.get("phase"))
        elif rec.kind == "guard":
            self.record_guard(s, ts, step=d.get("step", ""), distance=d.get("distance"),
                              liquidation_price=d.get("liquidation_price"), mark=d.get("mark"),
                              add_margin=d.get("add_margin"), reduce_fraction=d.get("reduce_fraction"),
                              reason=d.get("reason"))
        elif rec.kind == "prediction":
            self.record_prediction(s, int(d["settlement_ns"]), ts=ts, predicted_rate=d["predicted_rate"],
                                   interval_minutes=d.get("interval_minutes"), position_qty=d.get("position_qty"),
                                   mark=d.get("mark"))
        elif rec.kind == "leg":
            self.record_leg(pair_id=d["pair_id"], ts=ts, symbol=s, intent=d.get("intent", ""), event=d.get("event", ""),
                            detail=d.get("detail", ""), status=d.get("status", ""), targets=d.get("targets"),
                            filled=d.get("filled"))
        elif rec.kind == "booking":
            self.record_booking(s, int(d["settlement_ns"]), ts=ts, phase=d.get("phase"),
                                position_qty=d.get("position_qty"), predicted_rate=d.get("predicted_rate"))
        elif rec.kind == "order_resolution":  # restart: what the venue says of an order left "submitted"
            self.record_order(d["client_order_id"], ts=ts, status=d["status"], reason=d.get("reason"))
        elif rec.kind == "venue_clock":
            self.record_venue_clock(ts, venue_ms=d["venue_ms"], local_ns=d["local_ns"], speed=d["speed"])
        elif rec.kind == "alert":
            self.record_alert(ts, symbol=s or None, event=d.get("event", ""), severity=d.get("severity", ""),
                              channel=d.get("channel", ""), status=d.get("status", ""), title=d.get("title", ""),
                              message=d.get("message", ""))
        elif rec.kind == "control":
            self.record_control(s, ts, command=d.get("command", ""), origin=d.get("origin", ""),
                                reason=d.get("reason", ""), answer=d.get("answer", ""), state=d.get("state", ""))
        elif rec.kind == "risk":
            self.record_risk(ts, limit_name=d["limit"], value=d["value"], threshold=d["threshold"],
                             equity=d["equity"], reference=d["reference"], action=d["action"],
                             detail=d.get("detail", ""))
        else:
            raise ValueError(f"unknown journal record kind {rec.kind!r}")

    def latency_stats(self) -> dict:
        """Write latency (one committed transaction each): count, mean, p50 and p99 of the last 10,000, max (us)."""
        n, total, mx = self.latency
        recent = sorted(self._recent)

        def pct(q: float) -> float:
            return recent[min(len(recent) - 1, int(q * len(recent)))] / 1000 if recent else 0.0

        return {"writes": n, "mean_us": (total / n / 1000) if n else 0.0, "p50_us": pct(0.5), "p99_us": pct(0.99),
                "max_us": mx / 1000}
