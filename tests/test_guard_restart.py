"""A restart in the middle of a guard reduce (`GuardState.resume_after_reduce`): the step taken stays latched and the
margin the reduce released is put back, where a guard that forgot would reduce a second time at the same distance
(an isolated reduce releases margin pro rata, which leaves the liquidation price where it was)."""

from __future__ import annotations

from basisbot.core import guard, margin
from basisbot.core.guard_state import GuardState
from basisbot.nautilus.messages import PerpMarginState
from basisbot.venues.binance import reference

TABLE = reference.bracket_tables()["BTCUSDT"]
T = guard.Thresholds(warn_distance=0.12, add_margin_distance=0.10, target_distance=0.15, reduce_distance=0.06,
                     close_distance=0.03)
MARK, ENTRY = 50_000.0, 50_000.0


def _state(qty: float, wallet: float) -> PerpMarginState:
    return PerpMarginState("BTCUSDT", "isolated", -1, qty, ENTRY, wallet, 0.0, 0.0, 0)  # nothing free to add


def _wallet_at(distance: float, qty: float) -> float:
    """The isolated wallet that puts a short of `qty` at `distance` from liquidation at MARK (bisection)."""
    lo, hi = 1.0, qty * MARK
    for _ in range(100):
        w = (lo + hi) / 2
        d = margin.distance_to_liquidation(-1, MARK, margin.liquidation_price(-1, qty, ENTRY, w, TABLE))
        lo, hi = (w, hi) if d < distance else (lo, w)
    return (lo + hi) / 2


def test_reduce_then_restart_puts_the_margin_back_instead_of_reducing_again():
    wallet = _wallet_at(0.05, 1.0)  # between close (3%) and reduce (6%)
    g = GuardState(T, TABLE, isolated=True)
    g.on_margin_state(_state(1.0, wallet), MARK)
    decision = g.check(MARK, busy=False)
    assert decision.step is guard.Step.REDUCE and decision.reduce_fraction > 0
    g.reducing()
    cut = decision.reduce_fraction
    reduced = _state(1.0 - cut, wallet * (1.0 - cut))  # the venue releases the margin pro rata
    need = g.on_margin_state(reduced, MARK)
    assert need > 0  # the uninterrupted guard puts the released margin back

    # killed after the venue executed the reduce, before the margin went back: a guard that forgot would reduce again
    fresh = GuardState(T, TABLE, isolated=True)
    assert fresh.on_margin_state(reduced, MARK) == 0
    again = fresh.check(MARK, busy=False)
    assert again.step is guard.Step.REDUCE

    resumed = GuardState(T, TABLE, isolated=True)
    resumed.resume_after_reduce()
    assert resumed.on_margin_state(reduced, MARK) == need  # the same margin, put back at the first margin state
    assert resumed.check(MARK, busy=False) is None  # and no second reduce at the same distance
    assert resumed.on_margin_state(_state(1.0 - cut, wallet * (1.0 - cut) + need), MARK) == 0  # once


def test_restart_before_any_mark_puts_the_margin_back_at_the_first_mark():
    wallet = _wallet_at(0.05, 0.8)
    g = GuardState(T, TABLE, isolated=True)
    g.resume_after_reduce()
    assert g.on_margin_state(_state(0.8, wallet), None) == 0  # no mark yet: nothing to size the margin with
    need = g.restore_due(MARK)
    assert need > 0 and g.restore_due(MARK) == 0
    # cross margin releases nothing to put back: a resumed cross guard only stays latched
    c = GuardState(T, TABLE, isolated=False)
    c.resume_after_reduce()
    assert c.on_margin_state(_state(0.8, wallet), MARK) == 0 and c.check(MARK, busy=False) is None
