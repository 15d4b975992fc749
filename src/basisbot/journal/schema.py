"""The journal's tables (columns and natural keys), export order, order-status ranks, and the expected-funding
rule its funding rows are checked with. See `basisbot.journal.writer` for the concurrency model."""

from __future__ import annotations

import json
from typing import Any

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
    "control": {  # every operator command (pause, resume, flatten, status excluded) and the state it left
        "columns": {"ts": int, "symbol": str, "command": str, "origin": str, "reason": str, "answer": str,
                    "state": str},
        "pk": ("symbol", "ts", "command"),
        "indexes": [],
    },
    "risk": {  # risk limit breaches with their figures
        "columns": {"ts": int, "limit_name": str, "value": float, "threshold": float, "equity": float,
                    "reference": float, "action": str, "detail": str},
        "pk": ("ts", "limit_name"),
        "indexes": [],
    },
}


EXPORT_ORDER = ("orders", "fills", "funding", "guard", "legs", "decisions", "config_changes", "positions", "marks",
                "venue_clock", "alerts", "control", "risk")


JSON_COLUMNS = {"legs": ("targets", "filled"), "config_changes": ("diff",)}


# order status only moves forward, so a replayed or late "accepted" never overwrites "filled"
STATUS_RANK = {
    "initialized": 0, "denied": 4, "emulated": 0, "released": 0, "submitted": 1, "accepted": 2, "triggered": 2,
    "pending_update": 2, "pending_cancel": 2, "partially_filled": 3,
    "filled": 4, "canceled": 4, "rejected": 4, "expired": 4, "not_at_venue": 4,
}


TERMINAL_STATUSES = frozenset(s for s, r in STATUS_RANK.items() if r == 4)


DONE_PAIR_STATUSES = frozenset({"complete", "flat", "stuck"})


def dumps_json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)
