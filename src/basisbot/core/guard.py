"""Liquidation guard, pure: from the perp leg's margin state, the mark price and per-symbol thresholds, one action.

Ladder, as the distance to liquidation d = |LP - mark| / mark shrinks:
  d <= warn_distance        → WARN
  d <= add_margin_distance  → ADD_MARGIN the amount that restores target_distance (perp wallet first, then spot)
                              (if the free collateral cannot cover it, REDUCE as well by what the rest needs)
  d <= reduce_distance      → REDUCE both legs by the fraction that restores target_distance (hedge ratio kept);
                              in isolated mode Binance releases margin pro rata on a reduce (the liquidation price
                              stays put), so the executor adds back what the smaller position needs for the target
  d <= close_distance       → CLOSE both legs
Hysteresis: a step that fired does not fire again until d has recovered above its threshold + `hysteresis`;
a deeper step can always fire. Cross margin uses the same ladder on the cross liquidation price (the account's
margin ratio reaching 1), with the wallet being what the account has for this position.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from basisbot.core import margin


class Step(enum.IntEnum):
    NONE = 0
    WARN = 1
    ADD_MARGIN = 2
    REDUCE = 3
    CLOSE = 4


@dataclass(frozen=True, slots=True)
class Thresholds:
    warn_distance: float
    add_margin_distance: float
    target_distance: float
    reduce_distance: float
    close_distance: float
    hysteresis: float = 0.01

    def threshold(self, step: Step) -> float:
        return {
            Step.WARN: self.warn_distance,
            Step.ADD_MARGIN: self.add_margin_distance,
            Step.REDUCE: self.reduce_distance,
            Step.CLOSE: self.close_distance,
        }[step]


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    distance: float
    liquidation_price: float
    add_margin: float = 0.0
    reduce_fraction: float = 0.0
    reason: str = ""


def _raw_step(t: Thresholds, d: float) -> Step:
    if d <= t.close_distance:
        return Step.CLOSE
    if d <= t.reduce_distance:
        return Step.REDUCE
    if d <= t.add_margin_distance:
        return Step.ADD_MARGIN
    if d <= t.warn_distance:
        return Step.WARN
    return Step.NONE


def rearm(t: Thresholds, armed: Step, d: float) -> Step:
    """The deepest step still latched after the distance moved to d (steps re-arm past threshold + hysteresis)."""
    while armed > Step.NONE and d > t.threshold(armed) + t.hysteresis:
        armed = Step(armed - 1)
    return armed


def evaluate(
    t: Thresholds,
    *,
    side: int,
    qty: float,
    entry: float,
    mark: float,
    wallet: float,
    table: margin.BracketTable,
    free_collateral: float,
    latched: Step = Step.NONE,
    liquidation_price: float | None = None,
    liquidation: Callable[[int, float, float, float, margin.BracketTable], float] = margin.liquidation_price,
) -> tuple[Decision, Step]:
    """Returns (decision, new latched step). `free_collateral`: what ADD_MARGIN can draw (perp free + spot free).
    `liquidation_price` may be passed when the caller has it for this exact state (it does not depend on the mark).
    `liquidation`: the venue's isolated liquidation price formula (side, qty, entry, wallet, table); Binance's by
    default."""
    lp = liquidation_price if liquidation_price is not None else liquidation(side, qty, entry, wallet, table)
    d = margin.distance_to_liquidation(side, mark, lp)
    latched = rearm(t, latched, d)
    step = _raw_step(t, d)
    if step <= latched or step == Step.NONE:
        return Decision(Step.NONE, d, lp), latched
    if step == Step.WARN:
        return Decision(Step.WARN, d, lp, reason=f"distance {d:.2%} <= warn {t.warn_distance:.2%}"), step
    if step == Step.CLOSE:
        return Decision(Step.CLOSE, d, lp, reduce_fraction=1.0,
                        reason=f"distance {d:.2%} <= close {t.close_distance:.2%}"), step
    if step == Step.ADD_MARGIN:
        need = margin.margin_to_add(side, qty, entry, mark, wallet, t.target_distance, table)
        add = min(need, max(free_collateral, 0.0))
        if add >= need - 1e-6:
            return Decision(Step.ADD_MARGIN, d, lp, add_margin=need,
                            reason=f"distance {d:.2%} <= {t.add_margin_distance:.2%}: add {need:.2f} USDT"), step
        frac = margin.reduce_fraction_for_distance(side, qty, entry, mark, wallet + add, t.target_distance, table,
                                                   liquidation=liquidation)
        return Decision(Step.REDUCE, d, lp, add_margin=add, reduce_fraction=frac,
                        reason=f"distance {d:.2%}: only {add:.2f} of {need:.2f} USDT free, reduce {frac:.1%}"), step
    # REDUCE: add what is free first would need a round trip; reduce now, by what restores the target.
    frac = margin.reduce_fraction_for_distance(side, qty, entry, mark, wallet, t.target_distance, table,
                                               liquidation=liquidation)
    return Decision(Step.REDUCE, d, lp, reduce_fraction=frac,
                    reason=f"distance {d:.2%} <= reduce {t.reduce_distance:.2%}: reduce {frac:.1%}"), step
