"""Reading the journal: a read-only connection (``mode=ro`` URI, ``PRAGMA query_only``) that never blocks the
writer, the queries `status`, the restart and the ops page ask, and the export."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import sqlite_utils

from basisbot.core.legs import EXITING, Intent
from basisbot.journal.schema import DONE_PAIR_STATUSES, EXPORT_ORDER, JSON_COLUMNS, TABLES, dumps_json


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
            return "entering" if intent == Intent.ENTER else "exiting" if intent in EXITING else "in_carry"
        if intent == Intent.ENTER:
            return "in_carry" if status == "complete" else "flat"
        if intent in EXITING:
            return "flat" if status == "complete" else "in_carry"
        return "in_carry"

    def settlements_held(self, symbol: str) -> int:
        """Settlements held in carry since the last entry started (the strategy's `settlements_held`): those the
        strategy booked in carry, and those that fell while it was down (never booked) on which the exchange paid or
        charged funding (the income history the execution client reads at start). Without the latter a restart
        after a downtime would hold a carry past its minimum through negative funding."""
        if not self._has("funding"):
            return 0
        enter = self.one("legs", "symbol = ? AND intent = ?", [symbol, Intent.ENTER.value], order_by="ts DESC, rowid DESC")
        if enter is None:
            return 0
        since = self.one("legs", "pair_id = ?", [enter["pair_id"]], order_by="ts, rowid")["ts"]
        row = self.db.execute(
            "SELECT COUNT(*) FROM funding WHERE symbol = ? AND ((booked_phase = 'in_carry' AND booked_ts > ?) "
            "OR (booked_ts IS NULL AND settlement_ts > ? AND COALESCE(settled_payment, 0) != 0))",
            [symbol, since, since]).fetchone()
        return int(row[0])

    def settlement_predictions(self, symbol: str) -> list[tuple[int, float, int]]:
        """(settlement_ts, predicted_rate, interval_minutes) of every settlement the strategy decided on (its
        pre-settlement prediction was journaled), in settlement order: what its funding memory is fed."""
        if not self._has("funding"):
            return []
        return [(int(t), float(r), int(m)) for t, r, m in self.db.execute(
            "SELECT settlement_ts, predicted_rate, interval_minutes FROM funding WHERE symbol = ? "
            "AND predicted_ts IS NOT NULL AND predicted_rate IS NOT NULL AND interval_minutes > 0 "
            "ORDER BY settlement_ts", [symbol])]

    def restore_state(self, symbol: str) -> dict | None:
        """What a restarting strategy needs: {phase, settlements_held, pair, position, predictions, control,
        reduce_unrestored}, or None if the journal has nothing for the symbol."""
        pair = self.latest_pair(symbol)
        position = self.latest_position(symbol)
        ctl = self.control_state(symbol)
        if pair is None and position is None and ctl is None and symbol not in self.symbols():
            return None
        return {
            "phase": self.phase(symbol),
            "settlements_held": self.settlements_held(symbol),
            # started_ts / ts_last: a restart waits out the pair's leg timeout + recvWindow grace FROM ITS START
            "pair": None if pair is None else {k: pair[k] for k in (
                "pair_id", "intent", "status", "targets", "filled", "history", "done", "completed", "started_ts",
                "ts_last")},
            "position": position,
            "predictions": self.settlement_predictions(symbol),
            "control": ctl,
            "reduce_unrestored": self.reduce_unrestored(symbol, pair),
        }

    def reduce_unrestored(self, symbol: str, pair: dict | None = None) -> bool:
        """Whether the last leg pair is a guard reduce whose released margin the strategy has not put back yet (no
        "restore_margin" decision since the reduce began)."""
        pair = self.latest_pair(symbol) if pair is None else pair
        if pair is None or pair["intent"] != Intent.REDUCE or not self._has("decisions"):
            return False
        return self.one("decisions", "symbol = ? AND action = 'restore_margin' AND ts >= ?",
                        [symbol, pair["started_ts"]], order_by="ts DESC") is None

    def control_state(self, symbol: str) -> dict | None:
        """The operator's last command for `symbol` and the state it left ({ts, command, origin, reason, answer,
        state}), or None."""
        return self.one("control", "symbol = ?", [symbol], order_by="ts DESC") if self._has("control") else None

    def risk_breaches(self) -> list[dict]:
        return self.rows("risk", order_by="ts") if self._has("risk") else []

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
        """The strategy's latest decision (the venue readings journaled beside them, "adl_rank", left out)."""
        return self.one("decisions", "symbol = ? AND action != 'adl_rank'", [symbol], order_by="ts DESC, rowid DESC")

    def latest_action(self, symbol: str, action: str) -> dict | None:
        """The latest decisions row of one action (e.g. "adl_rank")."""
        return self.one("decisions", "symbol = ? AND action = ?", [symbol, action], order_by="ts DESC, rowid DESC")

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
                w.writerow({k: (dumps_json(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()})
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
