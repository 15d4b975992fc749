"""Exact quantities in the two-leg state machine: whatever the lot step and however the venue splits the fills, a
pair whose legs fill completes exactly, and no timeout fires for a filled leg (a float sum one ulp short of the
target, 111321.38 DOGE, would leave the pair waiting for fills that never come, and the symbol unhedged)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basisbot.core import carry
from basisbot.core.legs import MAX_UNWIND_RETRIES, LegPair, PairStatus, retry_delay_s
from basisbot.core.quantities import exact, lots_down, round_down

STEPS = [Decimal("1e-8"), Decimal("0.00001"), Decimal("0.001"), Decimal("0.01"), Decimal("0.1"), Decimal(1),
         Decimal(10), Decimal(1000)]


def split(total_lots: int, draw, parts: int) -> list[int]:
    """`total_lots` split into `parts` positive lot counts (summing exactly)."""
    cuts = sorted(draw(st.lists(st.integers(1, total_lots - 1), min_size=parts - 1, max_size=parts - 1, unique=True)))
    edges = [0, *cuts, total_lots]
    return [b - a for a, b in zip(edges, edges[1:])]


@st.composite
def fills(draw):
    step = draw(st.sampled_from(STEPS))
    lots = {leg: draw(st.integers(1, 10**9)) for leg in ("spot", "perp")}
    events = []
    for leg, n in lots.items():
        parts = draw(st.integers(1, min(8, n)))
        events += [(leg, k * step) for k in split(n, draw, parts)] if parts > 1 else [(leg, n * step)]
    order = draw(st.permutations(events))
    # fills arrive as decimal strings (live: exchange JSON) or as floats of that decimal (nautilus doubles)
    as_float = draw(st.booleans())
    return step, lots, order, as_float


@given(fills())
@settings(max_examples=300, deadline=None)
def test_any_split_in_any_order_completes_exactly(case):
    step, lots, order, as_float = case
    pair, ins = LegPair.start("enter", 0, 10, 100.0, 0.002, spot=(1, lots["spot"] * step), perp=(-1, lots["perp"] * step))
    assert {i.leg: i.qty for i in ins} == {"spot": lots["spot"] * step, "perp": lots["perp"] * step}
    for k, (leg, qty) in enumerate(order):
        assert pair.status is not PairStatus.COMPLETE
        out = pair.filled(leg, float(qty) if as_float and abs(qty) < 2**52 * step and qty < 10**15 else str(qty), k + 1)
        assert out == []
    assert pair.status is PairStatus.COMPLETE
    assert pair.legs["spot"].filled == lots["spot"] * step and pair.legs["perp"].filled == lots["perp"] * step
    assert pair.timeout(10**12) == []  # a filled pair has nothing to time out
    assert pair.expire(10**12) == [] and pair.status is PairStatus.COMPLETE


def test_ten_tenths_make_one():
    pair, _ = LegPair.start("enter", 0, 10, 1.0, 0.002, spot=(1, "1.0"), perp=(-1, "1.0"))
    pair.filled("perp", Decimal("1.0"), 1)
    for k in range(10):
        pair.filled("spot", 0.1, 2 + k)  # floats taken at their shortest repr: 0.1 is exactly 0.1
    assert pair.status is PairStatus.COMPLETE and pair.legs["spot"].filled == Decimal("1.0")


def test_doge_in_three_parts():
    pair, _ = LegPair.start("enter", 0, 10, 0.08, 0.002, spot=(1, Decimal("111321.38")), perp=(-1, Decimal(111321)))
    for k, part in enumerate(("50000.01", "61321.36999999999", "0.00000000001")):
        pair.filled("spot", part, k)
    pair.filled("perp", 111321.0, 5)
    assert pair.status is PairStatus.COMPLETE
    assert pair.timeout(10) == []


def test_float_sum_would_have_failed():
    """The bug this file guards against, shown: the float sum falls short where the exact one does not."""
    parts = [111321.37999999999 - 61321.37, 61321.37]
    assert sum(parts) < 111321.38
    assert sum(exact(p) for p in ("50000.01", "61321.37")) == Decimal("111321.38")


def test_sizing_is_exact_on_every_step():
    for step in STEPS:
        spot, perp = carry.leg_quantities(10_000, 0.0791, 1.0, step, step)
        assert spot == round_down(spot, step) and perp == round_down(perp, step)
        assert spot % step == 0 and lots_down(spot, step) * step == spot
    s, p = carry.leg_quantities(10_000, 16_529.67, 1.0, Decimal("0.00001"), Decimal("0.001"))
    assert (s, p) == (Decimal("0.60497"), Decimal("0.605"))


@given(st.integers(1, 10**9), st.sampled_from(STEPS), st.floats(0.001, 1.0), st.sampled_from(["0.5", "1", "1.5"]))
@settings(max_examples=200, deadline=None)
def test_reduce_keeps_lots_and_ratio(perp_lots, step, fraction, ratio):
    perp = perp_lots * step
    spot = round_down(perp / Decimal(ratio), step / 100)
    spot_cut, perp_cut, rest = carry.reduce_quantities(spot, -perp, fraction, ratio, step / 100, step)
    assert perp_cut % step == 0 and spot_cut % (step / 100) == 0
    assert 0 < perp_cut <= perp and spot_cut <= spot
    if rest:
        assert rest == perp - perp_cut and rest >= step
        # what the spot keeps hedges what the perp keeps, to a spot lot
        assert (spot - spot_cut) * Decimal(ratio) - rest < step / 100 * Decimal(ratio) + Decimal("1e-30")


def test_resized_unwind_of_what_the_account_holds_ends_flat():
    """The exchange took the buy fee in the base asset: the account holds less than the fill; the unwind is sent for
    what is held and the pair settles flat (0.2299 bought, 0.22967 held after the fee)."""
    pair, _ = LegPair.start("enter", 0, 10, 40_000.0, 0.002, spot=(1, "0.2299"), perp=(-1, "0.229"))
    pair.filled("spot", "0.2299", 1)
    assert pair.failed("perp", "rejected", 2, 40_000.0)[0].attempt == 1  # catch up, delayed
    ins = pair.failed("perp", "rejected again", 3, 40_000.0)
    assert [(i.leg, i.side, i.qty) for i in ins] == [("spot", -1, Decimal("0.2299"))]
    assert pair.sent("spot", Decimal("0.22967"), 4, "(held)") == []
    pair.filled("spot", "0.22967", 5)
    assert pair.status is PairStatus.FLAT


def test_unwind_retries_are_delayed_and_capped():
    pair, _ = LegPair.start("enter", 0, 10, 1.0, 0.002, spot=(1, "2"), perp=(-1, "2"))
    pair.filled("spot", "2", 1)
    pair.failed("perp", "rejected", 2, 1.0)
    pair.failed("perp", "rejected", 3, 1.0)  # → unwind spot
    attempts = []
    for k in range(MAX_UNWIND_RETRIES):
        ins = pair.failed("spot", "denied", 10 + k)
        attempts.append(ins[0].attempt)
    assert attempts == list(range(1, MAX_UNWIND_RETRIES + 1))
    assert pair.failed("spot", "denied", 99) == [] and pair.status is PairStatus.STUCK
    delays = [retry_delay_s(a, 10.0) for a in attempts]
    assert delays == sorted(delays) and delays[0] > 0 and sum(delays) < 10.0


def test_stuck_unwind_names_the_venues_last_answer_not_only_the_expiry():
    """The pair expires while an unwind retry waits for its delay: the escalation names what the venue answered."""
    pair, _ = LegPair.start("enter", 0, 10, 1.0, 0.002, spot=(1, "2"), perp=(-1, "2"))
    pair.filled("spot", "2", 1)
    pair.failed("perp", "rejected", 2, 1.0)
    pair.failed("perp", "rejected", 3, 1.0)  # → unwind spot
    for k in range(MAX_UNWIND_RETRIES):
        pair.failed("spot", "rejected: insufficient balance", 10 + k)
    assert pair.expire(20) == [] and pair.status is PairStatus.STUCK
    stuck = pair.history[-1][2]
    assert "lost: no answer from the venue" in stuck and "last answer: rejected: insufficient balance" in stuck


def test_lost_orders_expire_and_the_filled_leg_is_unwound():
    pair, _ = LegPair.start("enter", 0, 10, 1.0, 0.002, spot=(1, "2"), perp=(-1, "2"))
    pair.filled("spot", "2", 1)
    assert [(i.kind, i.leg) for i in pair.timeout(10)] == [("cancel", "perp")]
    ins = pair.expire(15)  # the cancel was never answered either
    assert [(i.leg, i.side, i.qty) for i in ins] == [("spot", -1, Decimal(2))]
    assert pair.status is PairStatus.UNWINDING


def test_dust_unwind_settles_flat():
    pair, _ = LegPair.start("enter", 0, 10, 1.0, 0.002, spot=(1, "0.00002"), perp=(-1, "0.001"))
    pair.filled("spot", "0.00002", 1)
    pair.failed("perp", "rejected", 2, 2.0)  # moved past the band: unwind at once
    assert pair.sent("spot", 0, 3, "(dust below the minimum notional)") == []
    assert pair.status is PairStatus.FLAT


def test_floats_are_never_compared_with_a_tolerance():
    with pytest.raises(ValueError):
        LegPair.start("enter", 0, 10, 1.0, 0.002, spot=(1, "-1"), perp=(-1, "1"))
    with pytest.raises(ValueError):
        exact(float("nan"))


# -- restart plan --------------------------------------------------------------------------------------------------
from basisbot.core.resume import plan_resume  # noqa: E402


@pytest.mark.parametrize("spot,perp,intent,price,action,phase", [
    ("0", "0", None, 100.0, "none", "flat"),
    ("1.000", "-1.000", None, 100.0, "none", "in_carry"),
    ("1.000", "-1.000", "exit", 100.0, "exit", "in_carry"),
    ("1.000", "0", "exit", 100.0, "unwind", "in_carry"),
    ("1.000", "0", "enter", 100.1, "catch_up", "entering"),  # within the 0.2% band of the entry at 100
    ("1.000", "0", "enter", 101.0, "unwind", "in_carry"),  # moved 1%: unwind the spot leg
    ("0", "-1.000", None, 100.0, "catch_up", "entering"),
    ("0", "1.000", None, 100.0, "unwind", "in_carry"),  # a long perp is not a carry
    ("0.0004", "0", "enter", 100.0, "none", "flat"),  # dust below a perp lot is not a leg
])
def test_resume_plan(spot, perp, intent, price, action, phase):
    plan = plan_resume(spot, perp, hedge_ratio=1.0, spot_lot="0.00001", perp_lot="0.001", intent=intent,
                       entry_price=100.0, price=price, slippage_band=0.002)
    assert (plan.action, plan.phase) == (action, phase), plan
    if action == "catch_up":
        assert plan.spot == Decimal("1.000") and plan.perp == Decimal("1.000")
