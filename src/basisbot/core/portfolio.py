"""A capital budget across symbols, pure: which carries to hold when capital is shared.

Each symbol bids with what its carry is expected to earn and what it ties up:
- expected net APR: the expected carry (`carry.expected_hourly`, prediction blended with the settled level) less the
  round trip amortised over the horizon, on the spot notional;
- capital needed: the spot leg plus the perp margin that keeps the guard's target distance under the symbol's recent
  volatility (an isolated wallet of at least notional / leverage, and enough that a `vol_multiple`-sigma daily move
  still leaves the target distance): `notional × (1 + hedge_ratio × max(1/leverage, target + vol_multiple × vol))`.
Symbols are ranked by risk-adjusted carry per unit of capital (expected net APR × notional ÷ capital needed ÷
(1 + vol_penalty × daily vol)); the best are held while the capital and `max_symbols` allow. A symbol already held
keeps its place unless a challenger beats it by `hysteresis` (relative), so the book does not churn on noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bid:
    symbol: str
    expected_net_apr: float  # on the spot notional, after the amortised round trip
    notional: float
    hedge_ratio: float
    leverage: float
    target_distance: float
    daily_vol: float  # recent daily volatility of the mark (fraction)
    held: bool
    instrument: str = ""  # the perp's instrument id: the budget checks what is actually held


@dataclass(frozen=True, slots=True)
class Budget:
    capital_usdt: float
    max_symbols: int | None = None
    hysteresis: float = 0.25
    vol_multiple: float = 3.0
    vol_penalty: float = 10.0


def capital_needed(b: Bid, budget: Budget) -> float:
    margin_fraction = max(1.0 / b.leverage, b.target_distance + budget.vol_multiple * b.daily_vol)
    return b.notional * (1.0 + b.hedge_ratio * min(margin_fraction, 1.0))


def score(b: Bid, budget: Budget) -> float:
    """Risk-adjusted expected carry per unit of capital (an APR on the capital tied up, penalised by volatility)."""
    cap = capital_needed(b, budget)
    raw = b.expected_net_apr * b.notional / cap / (1.0 + budget.vol_penalty * max(b.daily_vol, 0.0))
    return raw * (1.0 + budget.hysteresis) if b.held and raw > 0 else raw


def allocate(bids: list[Bid], budget: Budget) -> dict[str, bool]:
    """{symbol: allowed to hold}. The ideal book: carries expected to earn (score > 0) in score order while the capital
    and `max_symbols` allow, held symbols first among equals (hysteresis). A held symbol outside it is told to go (it
    exits at its next decision); a newcomer is let in only when it is in the ideal book AND the capital and count left
    by everything still held allow it, so the book never holds more than the budget while it turns over."""
    ranked = sorted(bids, key=lambda b: (-score(b, budget), b.symbol))
    ideal: set[str] = set()
    left, count = budget.capital_usdt, 0
    for b in ranked:
        sc = score(b, budget)
        if not (sc > 0 and math.isfinite(sc)):
            continue
        need = capital_needed(b, budget)
        if need > left or (budget.max_symbols is not None and count >= budget.max_symbols):
            continue
        ideal.add(b.symbol)
        left -= need
        count += 1
    out = {b.symbol: b.held and b.symbol in ideal for b in bids}
    left = budget.capital_usdt - sum(capital_needed(b, budget) for b in bids if b.held)
    count = sum(1 for b in bids if b.held)
    for b in ranked:
        if b.held or b.symbol not in ideal:
            continue
        need = capital_needed(b, budget)
        if need <= left and (budget.max_symbols is None or count < budget.max_symbols):
            out[b.symbol] = True
            left -= need
            count += 1
    return out


class VolEstimator:
    """Causal daily volatility from hourly mark prices: an exponential average of squared hourly log returns
    (half-life `halflife_h` hours), scaled to a day."""

    def __init__(self, halflife_h: float = 72.0):
        self.alpha = 1 - 0.5 ** (1 / halflife_h)
        self._var: float | None = None
        self._last: float | None = None

    def on_price(self, price: float) -> None:
        if not (price > 0 and math.isfinite(price)):
            return
        if self._last is not None:
            r = math.log(price / self._last)
            self._var = r * r if self._var is None else self._var + self.alpha * (r * r - self._var)
        self._last = price

    @property
    def daily(self) -> float:
        return math.sqrt(self._var * 24) if self._var is not None else 0.0
