"""Restart: orders the journal still shows as sent (initialized / submitted) from before this start are looked up at
the exchange by client order id; one that never reached it is marked ``not_at_venue`` (terminal) instead of staying
``submitted`` for good; one it has gets the exchange's status.

Runs once after the node has started (connected, reconciled), in live mode. It waits until every such order's
recvWindow has passed (an order sent just before a kill can still reach the exchange until then), asks the
exchange through the execution clients' ccxt clients, and publishes `JournalRecord("order_resolution", ...)` for the
journal actor to write (the journal's own thread).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import ccxt
from nautilus_trader.model.identifiers import InstrumentId

from basisbot.core.units import NS
from basisbot.journal.writer import JournalReader
from basisbot.nautilus.messages import JOURNAL_TOPIC, JournalRecord

_CCXT_STATUS = {"closed": "filled", "canceled": "canceled", "cancelled": "canceled", "expired": "expired",
                "rejected": "rejected", "open": "accepted"}


def _client_for(row: dict, exec_clients: dict) -> tuple[object, str] | None:
    """(execution client, ccxt symbol) for a journal order row, or None when no client trades its instrument."""
    iid = row.get("instrument_id")
    if not iid:
        return None
    try:
        inst = InstrumentId.from_str(iid)
    except Exception:  # noqa: BLE001 - a malformed id in an old journal
        return None
    for ec in exec_clients.values():
        sym = getattr(ec, "_symbols", {}).get(inst)
        if sym:
            return ec, sym
    return None


async def resolve_unresolved_orders(journal_path: str | Path, exec_clients: dict, msgbus, clock, *,
                                    started_ns: int, recv_window_s: float = 5.0, margin_s: float = 1.0,
                                    log=None) -> list[tuple[str, str]]:
    """Look up the journal's unresolved orders from before `started_ns`; returns [(client order id, status)]."""
    path = Path(journal_path)
    if not path.exists():
        return []
    with JournalReader(path) as r:
        rows = r.unresolved_orders(before_ns=started_ns)
    if not rows:
        return []
    # wait until the newest one's recvWindow has passed (local clock; the journal's times are the node's clock)
    newest = max(int(row.get("ts_last") or 0) for row in rows)
    wait = (newest + int((recv_window_s + margin_s) * NS) - clock.timestamp_ns()) / NS
    if wait > 0:
        await asyncio.sleep(wait)
    out = []
    for row in rows:
        cid = row["client_order_id"]
        found = _client_for(row, exec_clients)
        if found is None:
            continue
        ec, sym = found
        status, reason = None, None
        for attempt in range(3):
            try:
                o = await ec.ex.fetch_order(None, sym, ec.hooks.by_client_id(cid))
            except ccxt.OrderNotFound:
                status = "not_at_venue"
                reason = "not at the exchange at restart (looked up by client order id after its recvWindow)"
                break
            except ccxt.BaseError as e:
                if attempt == 2:
                    if log is not None:
                        log.warning(f"{cid}: lookup at restart failed ({type(e).__name__}: {e}); left as is")
                    break
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            status = _CCXT_STATUS.get(str(o.get("status")))
            reason = f"found at the exchange at restart ({o.get('status')})"
            break
        if status is None:
            continue
        msgbus.publish(JOURNAL_TOPIC, JournalRecord("order_resolution", row.get("symbol") or "", clock.timestamp_ns(),
                                                    {"client_order_id": cid, "status": status, "reason": reason}))
        if log is not None:
            (log.warning if status == "not_at_venue" else log.info)(f"{cid}: journal status {row['status']} -> "
                                                                    f"{status} ({reason})")
        out.append((cid, status))
    return out


__all__ = ["resolve_unresolved_orders"]
