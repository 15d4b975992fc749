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

import csv
import io
import json
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from basisbot.carry import funding_payment

NS = 1_000_000_000

TABLES: dict[str, dict[str, Any]] = {
    "orders": {
        "columns": {
            "client_order_id": str, "venue_order_id": str, "symbol": str, "leg": str, "side": str, "qty": float,
            "price": float, "type": str, "status": str, "tags": str, "ts_created": int, "ts_last": int,
            "instrument_id": str, "strategy_id": str, "filled_qty": float, "avg_px": float, "reason": str,
        },
        "pk": ("client_order_id",),
        "indexes": [("symbol", "ts_last")],
    },
    "fills": {
        "columns": {
            "trade_id": str, "instrument_id": str, "venue": str, "client_order_id": str, "venue_order_id": str,
            "symbol": str, "leg": str, "side": str, "qty": float, "price": float, "fee": float, "fee_currency": str,
            "liquidity": str, "ts": int,
        },
        "pk": ("instrument_id", "trade_id"),
        "indexes": [("client_order_id",), ("symbol", "ts")],
    },
    "funding": {
        "columns": {
            "symbol": str, "settlement_ts": int, "predicted_rate": float, "interval_minutes": int,
            "predicted_ts": int, "position_qty": float, "mark_price": float, "captured_at_settlement": int,
            "expected_payment": float, "booked_ts": int, "booked_phase": str, "booked_position_qty": float,
            "settled_rate": float, "settled_payment": float, "settled_ts": int, "source": str,
            "difference": float, "flagged": int, "note": str,
        },
        "pk": ("symbol", "settlement_ts"),
        "indexes": [],
    },
    "guard": {
        "columns": {
            "ts": int, "symbol": str, "step": str, "distance": float, "liquidation_price": float, "mark": float,
            "add_margin": float, "reduce_fraction": float, "reason": str,
        },
        "pk": ("symbol", "ts", "step"),
        "indexes": [],
    },
    "legs": {
        "columns": {
            "pair_id": str, "ts": int, "symbol": str, "intent": str, "event": str, "detail": str, "status": str,
            "targets": str, "filled": str,
        },
        "pk": ("pair_id", "ts", "event", "detail"),
        "indexes": [("symbol", "ts")],
    },
    "config_changes": {
        "columns": {"ts": int, "source": str, "status": str, "scope": str, "diff": str, "message": str},
        "pk": ("ts", "source", "status", "scope"),
        "indexes": [],
    },
    "positions": {
        "columns": {
            "ts": int, "symbol": str, "spot_qty": float, "perp_qty": float, "perp_entry": float,
            "isolated_wallet": float, "liquidation_price": float, "mark": float, "spot_price": float,
            "margin_mode": str,
        },
        "pk": ("symbol", "ts"),
        "indexes": [],
    },
    "decisions": {
        "columns": {"ts": int, "symbol": str, "action": str, "reason": str, "phase": str},
        "pk": ("symbol", "ts", "action", "reason"),
        "indexes": [],
    },
    "marks": {
        "columns": {"symbol": str, "ts": int, "mark": float, "spot_price": float, "source": str},
        "pk": ("symbol",),
        "indexes": [],
    },
    "venue_clock": {
        "columns": {"id": int, "ts": int, "venue_ms": int, "local_ns": int, "speed": float},
        "pk": ("id",),
        "indexes": [],
    },
    "alerts": {
        "columns": {"ts": int, "symbol": str, "event": str, "severity": str, "channel": str, "status": str,
                    "title": str, "message": str},
        "pk": ("ts", "channel", "event", "status"),
        "indexes": [],
    },
}
EXPORT_ORDER = ("orders", "fills", "funding", "guard", "legs", "decisions", "config_changes", "positions", "marks",
                "venue_clock", "alerts")
JSON_COLUMNS = {"legs": ("targets", "filled"), "config_changes": ("diff",)}

# order status only moves forward, so a replayed or late "accepted" never overwrites "filled"
_STATUS_RANK = {
    "initialized": 0, "denied": 4, "emulated": 0, "released": 0, "submitted": 1, "accepted": 2, "triggered": 2,
    "pending_update": 2, "pending_cancel": 2, "partially_filled": 3,
    "filled": 4, "canceled": 4, "rejected": 4, "expired": 4, "not_at_venue": 4,
}
TERMINAL_STATUSES = frozenset(s for s, r in _STATUS_RANK.items() if r == 4)
DONE_PAIR_STATUSES = frozenset({"complete", "flat", "stuck"})


class JournalThreadError(RuntimeError):
    """A journal write from a thread that does not own the journal, with no event loop to hand it to."""


def expected_funding(position_qty: float | None, mark: float | None, rate: float | None) -> float | None:
    """`carry.funding_payment` of a journal row whose position, mark or rate may be unknown (then None)."""
    if position_qty is None or mark is None or rate is None:
        return None
    return funding_payment(position_qty, mark, rate)


def funding_mismatch(expected: float | None, settled: float | None, abs_tol: float, rel_tol: float) -> bool:
    """A settled payment is flagged when it differs from the expected one by more than BOTH tolerances
    (`abs_tol` USDT and `rel_tol` × |expected|), i.e. by more than the larger of the two."""
    if expected is None or settled is None:
        return False
    diff = abs(settled - expected)
    return diff > abs_tol and diff > rel_tol * abs(expected)


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)


class JournalReader:
    """Queries on a journal. `JournalReader(path)` opens it read-only (``mode=ro``), never blocking the writer."""

    def __init__(self, path: str | Path | None = None, *, db: sqlite_utils.Database | None = None):
        if db is None:
            if path is None:
                raise ValueError("JournalReader needs a path or a database")
            p = Path(path)
            if not p.exists():
                raise FileNotFoundError(f"no journal at {p}")
            conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
            conn.execute("PRAGMA query_only = 1")
            db = sqlite_utils.Database(conn)
        self.db = db
        self.path = Path(path) if path is not None else None

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- generic ----------------------------------------------------------------------------------------------------
    def _has(self, table: str) -> bool:
        return self.db[table].exists()

    def rows(self, table: str, where: str | None = None, params: Iterable | Mapping | None = None,
             order_by: str | None = None, limit: int | None = None) -> list[dict]:
        if not self._has(table):
            return []
        rows = list(self.db[table].rows_where(where, params or [], order_by=order_by or "rowid", limit=limit))
        for col in JSON_COLUMNS.get(table, ()):
            for r in rows:
                if r.get(col) is not None:
                    r[col] = json.loads(r[col])
        return rows

    def one(self, table: str, where: str, params: Iterable | Mapping, order_by: str) -> dict | None:
        rows = self.rows(table, where, params, order_by=order_by, limit=1)
        return rows[0] if rows else None

    def symbols(self) -> list[str]:
        """Every symbol the journal knows about."""
        found: set[str] = set()
        for t in ("funding", "legs", "positions", "decisions", "guard", "orders"):
            if self._has(t):
                found.update(r[0] for r in self.db.execute(f"SELECT DISTINCT symbol FROM {t} WHERE symbol IS NOT NULL"))
        return sorted(found)

    # -- queries used by the restart logic and status ----------------------------------------------------------------
    def latest_pair(self, symbol: str) -> dict | None:
        """The last leg pair of `symbol`: {pair_id, intent, status, targets, filled, history, started_ts, ts_last,
        done, completed}, or None. `done` = no order of the pair can still be in flight (complete, flat or stuck);
        `completed` = both legs traded their targets."""
        last = self.one("legs", "symbol = ?", [symbol], order_by="ts DESC, rowid DESC")
        if last is None:
            return None
        rows = self.rows("legs", "pair_id = ?", [last["pair_id"]], order_by="ts, rowid")
        final = rows[-1]
        return {
            "pair_id": final["pair_id"],
            "intent": final["intent"],
            "status": final["status"],
            "targets": final["targets"] or {},
            "filled": final["filled"] or {},
            "history": [(r["ts"], r["event"], r["detail"]) for r in rows],
            "started_ts": _pair_start(final["pair_id"], rows[0]["ts"]),
            "ts_last": final["ts"],
            "done": final["status"] in DONE_PAIR_STATUSES,
            "completed": final["status"] == "complete",
        }

    def phase(self, symbol: str) -> str:
        """flat | entering | in_carry | exiting, as the strategy would have it, from the last leg pair:
        an unfinished pair is entering (enter) or exiting (exit, unwind) or in_carry (reduce, rebalance); a finished
        enter is in_carry when complete, else flat; a finished exit/unwind is flat when complete, in_carry when stuck
        (exposure left); reduce/rebalance leave the carry on. No pair: flat."""
        pair = self.latest_pair(symbol)
        if pair is None:
            return "flat"
        intent, status = pair["intent"], pair["status"]
        if not pair["done"]:
            return {"enter": "entering", "exit": "exiting", "unwind": "exiting"}.get(intent, "in_carry")
        if intent == "enter":
            return "in_carry" if status == "complete" else "flat"
        if intent in ("exit", "unwind"):
            return "flat" if status == "complete" else "in_carry"
        return "in_carry"

    def settlements_held(self, symbol: str) -> int:
        """Settlements booked while in carry since the last entry started (the strategy's `settlements_held`)."""
        if not self._has("funding"):
            return 0
        enter = self.one("legs", "symbol = ? AND intent = 'enter'", [symbol], order_by="ts DESC, rowid DESC")
        if enter is None:
            return 0
        since = self.one("legs", "pair_id = ?", [enter["pair_id"]], order_by="ts, rowid")["ts"]
        row = self.db.execute(
            "SELECT COUNT(*) FROM funding WHERE symbol = ? AND booked_phase = 'in_carry' AND booked_ts > ?",
            [symbol, since]).fetchone()
        return int(row[0])

    def restore_state(self, symbol: str) -> dict | None:
        """What a restarting strategy needs: {phase, settlements_held, pair, position}, or None if the journal has
        nothing for the symbol."""
        pair = self.latest_pair(symbol)
        position = self.latest_position(symbol)
        if pair is None and position is None and symbol not in self.symbols():
            return None
        return {
            "phase": self.phase(symbol),
            "settlements_held": self.settlements_held(symbol),
            # started_ts / ts_last: a restart waits out the pair's leg timeout + recvWindow grace FROM ITS START
            "pair": None if pair is None else {k: pair[k] for k in (
                "pair_id", "intent", "status", "targets", "filled", "history", "done", "completed", "started_ts",
                "ts_last")},
            "position": position,
        }

    def latest_mark(self, symbol: str) -> dict | None:
        return self.one("marks", "symbol = ?", [symbol], order_by="ts DESC")

    def venue_clock(self) -> dict | None:
        return self.one("venue_clock", "id = 1", [], order_by="ts DESC")

    def unresolved_orders(self, before_ns: int | None = None) -> list[dict]:
        """Orders whose last known status says they may not have reached the venue (initialized / submitted), last
        touched before `before_ns` (e.g. the start of this run)."""
        where = "status IN ('initialized', 'submitted')"
        params: list = []
        if before_ns is not None:
            where += " AND ts_last < ?"
            params.append(before_ns)
        return self.rows("orders", where, params, order_by="ts_last")

    def fills_of(self, symbol: str) -> list[dict]:
        return self.rows("fills", "symbol = ?", [symbol], order_by="ts, rowid")

    def latest_position(self, symbol: str) -> dict | None:
        return self.one("positions", "symbol = ?", [symbol], order_by="ts DESC")

    def latest_prediction(self, symbol: str) -> dict | None:
        return self.one("funding", "symbol = ? AND predicted_rate IS NOT NULL", [symbol], order_by="settlement_ts DESC")

    def latest_guard(self, symbol: str) -> dict | None:
        return self.one("guard", "symbol = ?", [symbol], order_by="ts DESC, rowid DESC")

    def latest_decision(self, symbol: str) -> dict | None:
        return self.one("decisions", "symbol = ?", [symbol], order_by="ts DESC, rowid DESC")

    def funding_settled(self, symbol: str) -> tuple[float, int, int]:
        """(sum of settled payments, settlements settled, settlements flagged)."""
        if not self._has("funding"):
            return 0.0, 0, 0
        total, n, flagged = self.db.execute(
            "SELECT COALESCE(SUM(settled_payment), 0), COUNT(settled_payment), COALESCE(SUM(flagged), 0) "
            "FROM funding WHERE symbol = ?", [symbol]).fetchone()
        return float(total), int(n), int(flagged)

    # -- export -----------------------------------------------------------------------------------------------------
    def export(self, format: str = "json", out: str | Path | None = None) -> dict:
        """json: one object {orders: [...], fills: [...], funding: [...], guard: [...], legs, decisions,
        config_changes, positions} (written to `out` as a file when given). csv: {table: csv text}, and one
        `<table>.csv` per table written into the folder `out` when given."""
        data = {t: self.rows(t, order_by=_export_order(t)) for t in EXPORT_ORDER}
        if format == "json":
            if out is not None:
                p = Path(out)
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
            return data
        if format != "csv":
            raise ValueError(f"format must be 'json' or 'csv', not {format!r}")
        texts = {}
        for table, rows in data.items():
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(TABLES[table]["columns"]), lineterminator="\n",
                               extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (_dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()})
            texts[table] = buf.getvalue()
        if out is not None:
            folder = Path(out)
            folder.mkdir(parents=True, exist_ok=True)
            for table, text in texts.items():
                (folder / f"{table}.csv").write_text(text, encoding="utf-8")
        return texts


def _pair_start(pair_id: str, first_ts: int) -> int:
    """A pair's start: the strategy names pairs SYMBOL-intent-<start ns>; else the first leg row's time."""
    tail = str(pair_id).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() and len(tail) >= 15 else first_ts


def _export_order(table: str) -> str:
    return {"orders": "ts_created, rowid", "funding": "settlement_ts, symbol", "config_changes": "ts, rowid",
            "marks": "symbol", "venue_clock": "id"}.get(table, "ts, rowid")


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
            if _STATUS_RANK.get(status, 0) < _STATUS_RANK.get(cur[0], 0):
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
        if status is not None and _STATUS_RANK.get(new_status, 0) < _STATUS_RANK.get(status, 0):
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
        """The strategy's booking after the settlement (counts toward `settlements_held` when phase is in_carry)."""
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
            "status": status, "targets": _dumps(targets), "filled": _dumps(filled)})

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
                                                    "scope": scope, "diff": _dumps(diff), "message": message})

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

    def record(self, rec) -> None:
        """Write a `basisbot.venue_messages.JournalRecord` (kind decision | guard | prediction | leg | booking |
        order_resolution | venue_clock | alert)."""
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
