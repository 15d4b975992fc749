"""Restart, pure: what to do with the positions the exchange reports after a restart, given the journal's last pair.

- Both legs held: in carry (an interrupted exit/unwind is completed; drift is the rebalance check's job).
- Nothing held: flat.
- The perp leg long: not a carry, unwind.
- One leg held after an interrupted exit/reduce/unwind: unwind it.
- One leg held after an interrupted entry: complete the entry with a NEW order for the missing leg when the market is
  within the slippage band of the held leg's entry price (a catch-up that fails unwinds the held leg, per
  `basisbot.core.legs`); otherwise unwind it.
Orders sent before the restart are never sent again: the exchange has them or not.

The funding memory (`carry.FundingMemory`) is rebuilt from the journal's pre-settlement predictions as a run that
never stopped would hold it (`resume_funding`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from basisbot.core import carry
from basisbot.core.legs import EXITING, Intent
from basisbot.core.quantities import ZERO, exact


@dataclass(frozen=True, slots=True)
class ResumePlan:
    phase: str  # "flat" | "in_carry" | "entering"
    action: str  # "none" | "exit" | "unwind" | "catch_up"
    reason: str
    held_leg: str | None = None  # catch_up: the leg held
    spot: Decimal = ZERO  # catch_up: the pair's targets
    perp: Decimal = ZERO


def plan_resume(spot, perp, *, hedge_ratio, spot_lot, perp_lot, intent: str | None, entry_price: float,
                price: float, slippage_band: float) -> ResumePlan:
    """`spot`, `perp`: the reconciled positions (perp signed); `intent`: the journal's pair still in flight, if any;
    `entry_price`: the held leg's average entry; `price`: that leg's market price now."""
    spot, perp, perp_lot = exact(spot), exact(perp), exact(perp_lot)
    has_spot = spot > 0 and spot * exact(hedge_ratio) >= perp_lot
    has_perp = perp <= -perp_lot
    held = f"spot {spot}, perp {perp}" + (f"; journal: {intent} in flight" if intent else "")
    if perp >= perp_lot:
        return ResumePlan("in_carry", "unwind", f"resume: {held}: the perp leg is long, not a carry")
    if not has_spot and not has_perp:
        return ResumePlan("flat", "none", f"{held}: flat")
    if has_spot and has_perp:
        if intent in EXITING:
            return ResumePlan("in_carry", "exit", f"resume: {held}: completing the interrupted {intent}")
        return ResumePlan("in_carry", "none", f"{held}: both legs held, in carry")
    if intent in EXITING or intent == Intent.REDUCE:
        return ResumePlan("in_carry", "unwind", f"resume: {held}: one leg left by the interrupted {intent}")
    leg = "spot" if has_spot else "perp"
    moved = abs(price / entry_price - 1) if entry_price else float("inf")  # prices: floats are fine
    if moved > slippage_band:
        return ResumePlan("in_carry", "unwind", f"resume: {held}: only the {leg} leg is held and the market moved "
                                                f"{moved:.3%} from its entry (band {slippage_band:.3%})")
    spot_t, perp_t = carry.hedge_quantities(leg, spot, perp, hedge_ratio, spot_lot, perp_lot)
    missing = "perp" if leg == "spot" else "spot"
    if (perp_t if missing == "perp" else spot_t) <= 0:
        return ResumePlan("in_carry", "unwind", f"resume: {held}: the missing leg rounds to zero")
    return ResumePlan("entering", "catch_up", f"{held}: completing the entry with the {missing} leg (within the "
                                              "slippage band)", leg, spot_t, perp_t)


def resume_funding(predictions, now_ns: int, halflife: float) -> tuple[carry.FundingMemory, tuple[float, float] | None]:
    """The funding memory a run that never stopped would hold at `now_ns`, and the prediction it would still have to
    book. `predictions`: (settlement_ns, predicted_rate, interval_minutes) of each settlement decided on, in settlement
    order (the journal's). A run observes each settlement's prediction at its booking, just after the settlement:
    those of settlements already past are observed here, in order; the one of a settlement still ahead (decided on
    before the stop) is returned to be observed at its booking, as the run would have."""
    memory, pending = carry.FundingMemory(halflife), None
    for settlement_ns, rate, interval_minutes in predictions:
        if settlement_ns <= now_ns:
            memory.observe(rate, interval_minutes / 60)
        else:
            pending = (rate, interval_minutes / 60)
    return memory, pending
