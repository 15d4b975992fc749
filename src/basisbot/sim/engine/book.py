"""The venue's order book model and order validation.

The book is one level each side around the replayed price: bid = price rounded down to the tick, ask = bid + tick,
``book_qty`` shown at each (market orders are filled in full at the touch; the partial-fill fault models thin books).

* a marketable order (MARKET, or a LIMIT crossing the touch) fills at once at the touch, as taker;
* a resting BUY limit at L fills (as maker, at L) when the replayed price goes below L (the ask reaches L);
  a resting SELL limit at L fills when the price reaches L (the bid reaches L).

Validation follows the symbol's filters (tick, lot step, min/max qty, min notional) with Binance's error codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from basisbot.sim.engine import errors
from basisbot.sim.engine.prices import quote
from basisbot.venues.binance.reference import MarketSpec


@dataclass(frozen=True)
class Quote:
    bid: float
    ask: float
    bid_qty: float
    ask_qty: float

    def touch(self, side: str) -> float:
        """Price a taker order on ``side`` fills at."""
        return self.ask if side == "BUY" else self.bid

    def marketable(self, side: str, limit: float) -> bool:
        return self.ask <= limit + 1e-12 if side == "BUY" else self.bid >= limit - 1e-12


def make_quote(price: float, tick: float, qty: float) -> Quote:
    bid, ask = quote(price, tick)
    return Quote(bid, ask, qty, qty)


def resting_fills(side: str, limit: float, price: float) -> bool:
    """Does a resting limit order fill when the replayed price is ``price``?"""
    return price < limit - 1e-12 if side == "BUY" else price >= limit - 1e-12


def crossing_time(t0: int, v0: float, t1: int, v1: float, level: float) -> int:
    """Time the linear path (t0, v0)-(t1, v1) reaches ``level`` (t1 when it does not or is flat)."""
    if v1 == v0:
        return t1
    frac = (level - v0) / (v1 - v0)
    if not 0.0 <= frac <= 1.0:
        return t1
    return int(t0 + (t1 - t0) * frac)


def parse_decimal(value: str | None, name: str) -> Decimal:
    if value is None or value == "":
        raise errors.mandatory(name)
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise errors.illegal_chars(name) from None
    if not d.is_finite():
        raise errors.illegal_chars(name)
    return d


def _decimals(d: Decimal) -> int:
    return max(0, -d.normalize().as_tuple().exponent)


def check_qty(spec: MarketSpec, qty: Decimal, futures: bool, precision: int | None = None) -> None:
    """A quantity against the LOT_SIZE filter. Futures answer with USDⓈ-M's own codes (-4003, -1111 past the row's
    `quantityPrecision`, -4004/-4005 outside min/max, -4023 off the step); spot with `Filter failure: LOT_SIZE`."""
    if qty <= 0:
        if futures:
            raise errors.qty_not_positive()
        raise errors.filter_failure("LOT_SIZE")
    if not futures:
        if qty < spec.min_qty or qty > spec.max_qty or (qty - spec.min_qty) % spec.step_size != 0:
            raise errors.filter_failure("LOT_SIZE")
        return
    if _decimals(qty) > (spec.size_precision if precision is None else precision):
        raise errors.precision_over()
    if qty < spec.min_qty:
        raise errors.qty_below_min()
    if qty > spec.max_qty:
        raise errors.qty_above_max()
    if (qty - spec.min_qty) % spec.step_size != 0:
        raise errors.qty_off_step()


def check_price(spec: MarketSpec, price: Decimal, futures: bool, precision: int | None = None) -> None:
    """A price against the PRICE_FILTER. Futures: -1111 past the row's `pricePrecision` (2 for BTCUSDT), then -4014
    off the tick (0.10 for BTCUSDT: 50000.05 has allowed decimals but is off the tick); spot: `Filter failure`."""
    if price <= 0:
        raise errors.BinanceError(-1013, "Invalid price.", 400) if not futures else errors.BinanceError(
            -4001, "Price less than 0.", 400)
    if futures and _decimals(price) > (spec.price_precision if precision is None else precision):
        raise errors.precision_over()
    if price % spec.tick_size != 0:
        raise errors.price_off_tick() if futures else errors.filter_failure("PRICE_FILTER")


def floor_to_step(qty: float, step: Decimal) -> Decimal:
    d = Decimal(repr(qty))
    return (d // step) * step
