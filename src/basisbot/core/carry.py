"""Carry rules, pure: basis, funding annualised per the symbol's own interval, causal funding prediction,
expected carry net of fees, and the entry / hold / exit decision with hysteresis and a minimum hold.

Sign conventions (the ones that lose money when wrong):
- A funding rate r > 0 means longs pay shorts. Our perp leg is short, so it RECEIVES r × notional.
- Payment on a settlement = -position_qty × mark_price × rate, position_qty signed (negative = short).
- Basis = (perp mark - spot) / spot; positive = perp at a premium (contango).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from basisbot.core import quantities as q

HOURS_PER_YEAR = 24 * 365
NS_PER_HOUR = 3_600_000_000_000


def funding_payment(position_qty: float, mark_price: float, rate: float) -> float:
    """USDT received (positive) or paid (negative) at a settlement. position_qty is signed, negative = short."""
    return -position_qty * mark_price * rate


def annualise(rate_per_interval: float, interval_hours: float) -> float:
    """APR (plain fraction) of a per-interval funding rate, using the symbol's own interval (1h/2h/4h/8h)."""
    if not interval_hours > 0:
        raise ValueError(f"interval_hours must be > 0, got {interval_hours}")
    return rate_per_interval * HOURS_PER_YEAR / interval_hours


def premium(perp_price: float, spot_price: float) -> float:
    """(perp - spot) / spot: the premium of the perpetual (its mark, or a trade price) over spot, the index proxy;
    positive = contango. Risk and basis use the MARK price, never the last trade."""
    if not spot_price > 0:
        raise ValueError(f"spot_price must be > 0, got {spot_price}")
    return (perp_price - spot_price) / spot_price


def clamped_premium_rate(avg_premium: float, interval_hours: float, daily_interest: float, clamp: float) -> float:
    """The interest-plus-clamped-premium funding rule: F = P + clamp(I - P, -clamp, +clamp), with I the interest of
    one interval (`daily_interest` pro rata over `interval_hours`). The venue profile supplies the two parameters."""
    interest = daily_interest * interval_hours / 24
    return avg_premium + min(max(interest - avg_premium, -clamp), clamp)


class FundingPredictor:
    """Causal predictor of the rate that will settle at the next settlement.

    Methods (`method`):
    - "premium": the venue's own formula (`rate_from_premium`, from its profile) applied to the average premium
      (mark, else perp close, vs spot close) of the hours observed so far in the current funding interval; before
      the first hour of a new interval is seen, the previous interval's average is used.
    - "last_settled": the most recent settled rate (persistence).

    `lag_periods` (the venue's, `FundingRules.predictor_lag_periods`): 0 reads the current interval as above; 1 or 2
    read the average premium of the interval that closed 1 or 2 settlements ago (a venue that settles at S the rate
    fixed from an earlier period: OKX's cross-period collection), falling back to the last settled rate until it exists.

    Feed it in time order with `on_premium` (each closed bar) and `on_settlement` (each settled rate, known only
    once it has settled). It never sees the future: `predict` uses only what was fed before. Predictions are clamped to
    ±`cap` (the venue's funding cap for the symbol).

    Fed by the backtest feed with the premium of the mark over spot (bad prints kept out); `benchmarks/predictor_error.py`
    measures MAE and sign hit rate per symbol against the settled rates.
    """

    def __init__(self, method: str = "premium", default_interval_hours: float = 8.0, cap: float = 0.02,
                 rate_from_premium: Callable[[float, float], float] | None = None, lag_periods: int = 0):
        if lag_periods not in (0, 1, 2):
            raise ValueError(f"lag_periods must be 0, 1 or 2, got {lag_periods}")
        if method not in ("premium", "last_settled"):
            raise ValueError(f"unknown predictor method {method!r}: allowed 'premium', 'last_settled'")
        if not cap > 0:
            raise ValueError(f"cap must be > 0, got {cap}")
        if method == "premium" and rate_from_premium is None:
            raise ValueError("the 'premium' method needs the venue's rate_from_premium(avg_premium, interval_hours)")
        self.method = method
        self.rate_from_premium = rate_from_premium
        self.cap = cap
        self.interval_hours = default_interval_hours
        self._premiums: list[float] = []
        self._prev_avg: float | None = None
        self.last_settled: float | None = None
        self.lag = lag_periods
        self._closed: list[float | None] = []  # lag > 0: average premium of the last closed intervals, oldest first

    def on_premium(self, value: float) -> None:
        if math.isfinite(value):
            self._premiums.append(value)

    def on_settlement(self, rate: float, interval_hours: float | None = None) -> None:
        """A settlement happened: start a new interval."""
        self.last_settled = rate
        if self.lag:
            self._closed.append(sum(self._premiums) / len(self._premiums) if self._premiums else None)
            del self._closed[:-2]
        if self._premiums:
            self._prev_avg = sum(self._premiums) / len(self._premiums)
        self._premiums = []
        if interval_hours:
            self.interval_hours = interval_hours

    def set_interval(self, interval_hours: float) -> None:
        self.interval_hours = interval_hours

    def predict(self) -> float | None:
        if self.method == "last_settled":
            return self.last_settled
        if self.lag:
            avg = self._closed[-self.lag] if len(self._closed) >= self.lag else None
            if avg is None:
                return self.last_settled
        elif self._premiums:
            avg = sum(self._premiums) / len(self._premiums)
        elif self._prev_avg is not None:
            avg = self._prev_avg
        else:
            return self.last_settled
        rate = self.rate_from_premium(avg, self.interval_hours)
        return min(max(rate, -self.cap), self.cap)


@dataclass(frozen=True, slots=True)
class Fees:
    spot_taker: float
    perp_taker: float



class Action(enum.Enum):
    NONE = "none"
    ENTER = "enter"
    HOLD = "hold"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class CarryRules:
    """Entry: the expected carry APR, net of the round trip's fees and spread spread over `horizon_hours` (the
    holding period the carry is expected to last), above `entry_apr`. Exit (pre-settlement, after the minimum hold):
    the expected carry APR below `exit_apr`. The expected rate blends the current prediction with the persistent
    level of the recent settlements (`persistence` is the weight of the latter), so one low print does not end a
    carry that has paid for weeks, and one spike does not start one."""

    entry_apr: float
    exit_apr: float
    min_hold_intervals: int
    hedge_ratio: float
    fees: Fees
    horizon_hours: float = 2160.0
    persistence: float = 0.7
    spread: float = 0.0002  # per leg and side, fraction of notional: what crossing the spread costs on top of fees


class CarryView(NamedTuple):
    """What the decision sees: all observable at decision time. (A named tuple: built on every prediction of a flat
    symbol, 0.5 µs against 3 µs for the frozen dataclass it was.)"""

    predicted_rate: float | None
    interval_hours: float
    in_carry: bool
    settlements_held: int
    in_blackout: bool
    persistent_hourly: float | None = None  # FundingMemory.hourly: the settled level, per hour


class FundingMemory:
    """The persistent funding level, causal: an exponential average of the rates settled so far (per hour, so that
    intervals of 1h to 8h mix), with a half-life of `halflife` settlements. Fed the last prediction before each
    settlement (live: the exchange's; backtest: the predictor's), which the settlement then confirms."""

    def __init__(self, halflife: float = 21.0):
        if not halflife > 0:
            raise ValueError(f"halflife must be > 0, got {halflife}")
        self.alpha = 1 - 0.5 ** (1 / halflife)
        self.hourly: float | None = None
        self.count = 0

    def observe(self, rate: float, interval_hours: float) -> None:
        if rate is None or not math.isfinite(rate) or not interval_hours > 0:
            return
        x = rate / interval_hours
        self.hourly = x if self.hourly is None else self.hourly + self.alpha * (x - self.hourly)
        self.count += 1


def expected_hourly(rules: CarryRules, view: CarryView) -> float | None:
    if view.predicted_rate is None:
        return view.persistent_hourly
    now = view.predicted_rate / view.interval_hours
    if view.persistent_hourly is None:
        return now
    return (1 - rules.persistence) * now + rules.persistence * view.persistent_hourly


def round_trip_cost(rules: CarryRules) -> float:
    """Fraction of the spot notional paid to enter and leave both legs: taker fees and the spread, both ways."""
    return 2 * (rules.fees.spot_taker + rules.fees.perp_taker * rules.hedge_ratio + 2 * rules.spread)


def expected_net_apr(rules: CarryRules, view: CarryView) -> float | None:
    """The expected carry APR on the spot notional, less the round trip amortised over the horizon (a bid's worth)."""
    hourly = expected_hourly(rules, view)
    if hourly is None:
        return None
    return (hourly * HOURS_PER_YEAR * rules.hedge_ratio
            - round_trip_cost(rules) * HOURS_PER_YEAR / max(rules.horizon_hours, 1.0))


def decide(rules: CarryRules, view: CarryView) -> Action:
    """Entry when the expected carry APR net of the round trip amortised over the horizon beats `entry_apr`; exit
    below `exit_apr` once the minimum hold is served; between the two the current state is kept (hysteresis). No
    entries in a blackout."""
    hourly = expected_hourly(rules, view)
    if hourly is None:
        return Action.HOLD if view.in_carry else Action.NONE
    gross = hourly * HOURS_PER_YEAR * rules.hedge_ratio
    if not view.in_carry:
        if view.in_blackout:
            return Action.NONE
        net = gross - round_trip_cost(rules) * HOURS_PER_YEAR / max(rules.horizon_hours, 1.0)
        return Action.ENTER if net > rules.entry_apr else Action.NONE
    if view.settlements_held < rules.min_hold_intervals:
        return Action.HOLD
    return Action.EXIT if gross < rules.exit_apr else Action.HOLD


def hedge_drift(spot_qty: float, perp_qty: float, hedge_ratio: float) -> float:
    """Relative drift of |perp| / spot from the target ratio; 0 = on target. spot_qty must be > 0."""
    if spot_qty <= 0:
        raise ValueError(f"spot_qty must be > 0, got {spot_qty}")
    return abs(float(perp_qty)) / (float(spot_qty) * float(hedge_ratio)) - 1.0  # a ratio for analytics


def leg_quantities(notional_usdt: float, spot_price: float, hedge_ratio, spot_step, perp_step) -> tuple[Decimal, Decimal]:
    """Spot and perp base quantities (exact, on their lot steps) for a carry of `notional_usdt` on the spot leg: spot
    rounded down, the perp to the nearest step of hedge_ratio × spot (the coarser perp step decides the ratio)."""
    if not spot_price > 0:
        raise ValueError(f"spot_price must be > 0, got {spot_price}")
    spot_qty = q.round_down(q.exact(notional_usdt / spot_price), spot_step)
    perp_qty = q.round_nearest(spot_qty * q.exact(hedge_ratio), perp_step)
    return spot_qty, perp_qty


def hedge_quantities(held: str, spot, perp, hedge_ratio, spot_step, perp_step) -> tuple[Decimal, Decimal]:
    """The (spot, |perp|) pair that hedges the leg `held` ("spot" or "perp") as it stands, the missing leg rounded
    down to its lot."""
    ratio = q.exact(hedge_ratio)
    spot, perp = q.exact(spot), abs(q.exact(perp))
    if held == "spot":
        return spot, q.round_down(spot * ratio, perp_step)
    return q.round_down(perp / ratio, spot_step), perp


def reduce_quantities(spot, perp, fraction: float, hedge_ratio, spot_step, perp_step) -> tuple[Decimal, Decimal, Decimal]:
    """Cut both legs by `fraction` keeping the hedge ratio: the perp cut rounded UP to its lot (at least one lot, at
    most the position), the spot cut so that spot × ratio matches what the perp keeps. Returns (spot_cut, perp_cut,
    perp_remaining); perp_remaining 0 means the reduce is a full close."""
    spot, perp = max(q.exact(spot), q.ZERO), abs(q.exact(perp))
    step = q.exact(perp_step)
    perp_cut = min(perp, max(step, q.round_up(perp * q.exact(fraction), step)))
    rest = perp - perp_cut
    if rest < step:
        return q.round_down(spot, spot_step), perp, q.ZERO
    spot_cut = q.round_down(max(spot - rest / q.exact(hedge_ratio), q.ZERO), spot_step)
    return spot_cut, perp_cut, rest


def rebalance_delta(spot, perp, hedge_ratio, perp_step) -> Decimal:
    """Signed perp quantity to add to the short (> 0: sell more) to bring |perp| to hedge_ratio × spot, on the lot."""
    target = q.exact(spot) * q.exact(hedge_ratio)
    return q.round_nearest(target - abs(q.exact(perp)), perp_step)


def entry_costs(spot_qty: float, spot_px: float, spot_fee: float, perp_qty: float, mark: float, leverage: float,
                perp_fee: float, buffer: float = 0.01) -> tuple[float, float]:
    """USDT each leg needs before it is sent: spot cost with its fee, perp initial margin (notional / leverage) with
    the opening fee; both with `buffer` for the price moving between the check and the fill."""
    spot_cost = spot_qty * spot_px * (1 + spot_fee) * (1 + buffer)
    perp_margin = perp_qty * mark / leverage * (1 + buffer) + perp_qty * mark * perp_fee
    return spot_cost, perp_margin
