"""PnL split of one carry from its journaled fills (pure: no I/O), for the status page.

    spot PnL = Σ sells × px − Σ buys × px + net spot qty × spot price       (fills marked at the current spot price)
    perp PnL = the same with the perp fills, marked at the mark price
    fees     = Σ fee, a fee charged in the base asset (spot, Binance takes it in BTC) valued at its fill price
    funding  = settled funding (the exchange's income)
    net      = spot PnL + perp PnL + funding − fees

Analytics on the journal's float columns (display only; nothing here is summed back into an order).
"""

from __future__ import annotations

QUOTE_CURRENCIES = frozenset({"USDT", "USDC", "BUSD", "FDUSD", "USD", ""})


def pnl_split(fills: list[dict], spot_price: float | None, mark: float | None, funding: float) -> dict:
    """{"spot", "perp", "fees", "funding", "net"} in USDT; a leg with an open quantity and no price is None (and so
    is net)."""
    cash = {"spot": 0.0, "perp": 0.0}
    qty = {"spot": 0.0, "perp": 0.0}
    fees = 0.0
    for f in fills:
        leg = f.get("leg")
        if leg not in cash:
            continue
        sign = 1.0 if str(f.get("side", "")).upper() == "BUY" else -1.0
        q, px = float(f.get("qty") or 0.0), float(f.get("price") or 0.0)
        qty[leg] += sign * q
        cash[leg] -= sign * q * px
        fee = float(f.get("fee") or 0.0)
        fees += fee if str(f.get("fee_currency") or "").upper() in QUOTE_CURRENCIES else fee * px
    out: dict[str, float | None] = {"fees": fees, "funding": funding}
    for leg, price in (("spot", spot_price), ("perp", mark)):
        held = qty[leg]
        if abs(held) < 1e-12:
            out[leg] = cash[leg]
        else:
            out[leg] = None if not price else cash[leg] + held * price
    parts = (out["spot"], out["perp"])
    out["net"] = None if any(p is None for p in parts) else parts[0] + parts[1] + funding - fees
    return out


__all__ = ["pnl_split"]
