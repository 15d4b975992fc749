"""PnL split of one carry from its journaled fills (pure: no I/O): one definition for `basisbot status`, the status
page and the metrics.

    spot PnL = Σ sells × px − Σ buys × px + net spot qty × spot price       (fills marked at the current spot price)
    perp PnL = the same with the perp fills, marked at the mark price
    fees     = Σ fee in USDT (see below)
    funding  = settled funding (the exchange's income)
    net      = spot PnL + perp PnL + funding − fees

Rules:
- A flat leg's PnL is its realised cash: it needs no price. A leg with an open quantity and no price to mark it is
  None, and so is net. Flat means the fills net to exactly zero (quantities summed exactly, as Decimals of the
  journal's values).
- A fee in USDT counts as it is. A fee in the leg's base asset (`base`: Binance takes the spot buy's fee in BTC) is
  valued at its fill's price, the base asset's price when it was charged. A fee in any other asset (USDC, BNB...)
  is valued at `prices[asset]` when the caller knows it; otherwise it is left out of `fees` and `net` and listed in
  `unpriced_fees` ({asset: amount}), so a view can flag it instead of pricing it wrongly.

Analytics on the journal's float columns (display only; nothing here is summed back into an order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from basisbot.core.quantities import ZERO

QUOTE = "USDT"
LEGS = ("spot", "perp")


def _fee_usdt(fee: float, currency: str, fill_price: float, base: str | None,
              prices: Mapping[str, float]) -> float | None:
    """A fee in USDT, or None when its asset has no known price."""
    if currency in (QUOTE, ""):  # an empty currency: the journal did not say, the venue charges in the quote
        return fee
    if base is not None and currency == base:
        return fee * fill_price
    price = prices.get(currency)
    return None if price is None else fee * price


def pnl_split(fills: Iterable[Mapping], spot_price: float | None, mark: float | None, funding: float, *,
              base: str | None = None, prices: Mapping[str, float] | None = None) -> dict:
    """{"spot", "perp", "fees", "funding", "net", "unpriced_fees"} in USDT from journal `fills` (rows with leg, side,
    qty, price, fee, fee_currency); `base`: the carry's base asset (e.g. "BTC"); `prices`: USDT prices of other fee
    assets. Fills of another leg than spot and perp are not part of the carry and are skipped."""
    prices = prices or {}
    cash = {"spot": 0.0, "perp": 0.0}
    qty = {"spot": ZERO, "perp": ZERO}
    fees = 0.0
    unpriced: dict[str, float] = {}
    for f in fills:
        leg = f.get("leg")
        if leg not in cash:
            continue
        sign = 1.0 if str(f.get("side", "")).upper() == "BUY" else -1.0
        q, px = float(f.get("qty") or 0.0), float(f.get("price") or 0.0)
        qty[leg] += Decimal(repr(q)) if sign > 0 else -Decimal(repr(q))
        cash[leg] -= sign * q * px
        fee = float(f.get("fee") or 0.0)
        if fee:
            cur = str(f.get("fee_currency") or "").upper()
            usdt = _fee_usdt(fee, cur, px, base, prices)
            if usdt is None:
                unpriced[cur] = unpriced.get(cur, 0.0) + fee
            else:
                fees += usdt
    out: dict = {"fees": fees, "funding": funding, "unpriced_fees": unpriced}
    for leg, price in (("spot", spot_price), ("perp", mark)):
        held = qty[leg]
        if held == 0:
            out[leg] = cash[leg]
        else:
            out[leg] = None if not price else cash[leg] + float(held) * price
    parts = (out["spot"], out["perp"])
    out["net"] = None if any(p is None for p in parts) else parts[0] + parts[1] + funding - fees
    return out


def base_asset(symbol: str) -> str | None:
    """The base asset of a USDT-quoted symbol ("BTCUSDT" -> "BTC"); None for another quote."""
    return symbol[: -len(QUOTE)] if symbol.endswith(QUOTE) and len(symbol) > len(QUOTE) else None


__all__ = ["base_asset", "pnl_split"]
