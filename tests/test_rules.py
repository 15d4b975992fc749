"""Pure rules: carry maths and decisions, the guard ladder, two-leg execution."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from basisbot.core import carry, guard, margin
from basisbot.core.legs import LegPair, PairStatus
from basisbot.venues import get_profile
from basisbot.venues.binance import reference

BTC = reference.brackets()["BTCUSDT"]
FEES = carry.Fees(spot_taker=0.001, perp_taker=0.0005)


# -- carry ---------------------------------------------------------------------------------------------------------
def test_funding_sign_short_receives_positive_rate():
    assert carry.funding_payment(-2.0, 30_000.0, 0.0001) == pytest.approx(6.0)
    assert carry.funding_payment(-2.0, 30_000.0, -0.0001) == pytest.approx(-6.0)
    assert carry.funding_payment(2.0, 30_000.0, 0.0001) == pytest.approx(-6.0)


@pytest.mark.parametrize("hours,apr", [(8, 0.1095), (4, 0.219), (2, 0.438), (1, 0.876)])
def test_annualise_uses_the_symbols_own_interval(hours, apr):
    assert carry.annualise(0.0001, hours) == pytest.approx(apr)


def test_basis_uses_mark_and_binance_funding_formula():
    assert carry.premium(101.0, 100.0) == pytest.approx(0.01)
    with pytest.raises(ValueError):
        carry.premium(1.0, 0.0)
    rate = get_profile("binance").funding.rate_from_premium
    assert rate(0.0, 8) == pytest.approx(0.0001)  # interest only, clamped in
    assert rate(0.002, 8) == pytest.approx(0.0015)  # interest - premium clamped at -0.05%
    assert rate(-0.001, 8) == pytest.approx(-0.0005)
    assert rate(0.0, 4) == pytest.approx(0.00005)  # interest pro rata over a 4-hour interval
    assert carry.clamped_premium_rate(0.0, 8, daily_interest=0.0003, clamp=0.0005) == rate(0.0, 8)


def test_predictor_is_causal_and_clamped():
    p = carry.FundingPredictor("premium", cap=0.02, rate_from_premium=get_profile("binance").funding.rate_from_premium)
    assert p.predict() is None
    p.on_premium(0.001)
    assert p.predict() == pytest.approx(0.0005)  # 0.1% + clamp(0.01% - 0.1%, ±0.05%)
    p.on_settlement(0.0009, 8)
    assert p.predict() == pytest.approx(0.0005)  # previous interval's average until a new hour is seen
    p.on_premium(0.5)
    assert p.predict() == 0.02
    q = carry.FundingPredictor("last_settled")
    q.on_settlement(-0.0003)
    assert q.predict() == -0.0003
    with pytest.raises(ValueError):
        carry.FundingPredictor("oracle")
    with pytest.raises(ValueError, match="rate_from_premium"):
        carry.FundingPredictor("premium")  # the formula is the venue's: no silent default


RULES = carry.CarryRules(entry_apr=0.10, exit_apr=0.02, min_hold_intervals=3, hedge_ratio=1.0, fees=FEES)


def view(rate, in_carry=False, held=0, blackout=False, hours=8):
    return carry.CarryView(rate, hours, in_carry, held, blackout)


def test_entry_needs_apr_net_of_the_round_trip_over_the_horizon_and_hysteresis():
    # round trip: 2 × (0.1% + 0.05% + 2 × 0.02% spread) = 0.38% of notional, over a 2160 h horizon = 1.54% APR
    cost_apr = carry.round_trip_cost(RULES) * carry.HOURS_PER_YEAR / RULES.horizon_hours
    assert cost_apr == pytest.approx(0.0038 * 8760 / 2160)
    rate_for = lambda apr: (apr + cost_apr) * 8 / 8760  # noqa: E731  per-8h rate whose net APR is `apr`
    assert carry.decide(RULES, view(rate_for(0.099))) is carry.Action.NONE
    assert carry.decide(RULES, view(rate_for(0.101))) is carry.Action.ENTER
    # in carry between the thresholds: hold; below exit after the minimum hold: exit
    assert carry.decide(RULES, view(0.00005, True, 5)) is carry.Action.HOLD  # 5.5% APR
    assert carry.decide(RULES, view(0.00001, True, 5)) is carry.Action.EXIT
    assert carry.decide(RULES, view(-0.001, True, 2)) is carry.Action.HOLD  # minimum hold not served


def test_persistent_level_outweighs_one_print():
    """One spike does not start a carry, one dip does not end one: the settled level weighs `persistence`."""
    calm = 0.00002 / 8  # the settled level: 2.2% APR
    spike = carry.CarryView(0.0003, 8, False, 0, False, persistent_hourly=calm)  # 32.9% APR on its own
    assert carry.decide(RULES, view(0.0003)) is carry.Action.ENTER
    assert carry.decide(RULES, spike) is carry.Action.NONE
    paying = 0.0002 / 8  # 21.9% APR settled for weeks
    dip = carry.CarryView(-0.0002, 8, True, 10, False, persistent_hourly=paying)
    assert carry.decide(RULES, view(-0.0002, True, 10)) is carry.Action.EXIT
    assert carry.decide(RULES, dip) is carry.Action.HOLD


def test_funding_memory_is_a_per_hour_average_with_a_half_life():
    m = carry.FundingMemory(halflife=1.0)
    m.observe(0.0008, 8)  # 1e-4 per hour
    assert m.hourly == pytest.approx(1e-4)
    m.observe(0.0, 1)  # an hourly settlement of 0 halves the level after one half-life
    assert m.hourly == pytest.approx(0.5e-4)
    m.observe(float("nan"), 8)
    assert m.hourly == pytest.approx(0.5e-4) and m.count == 2


def test_always_in_thresholds():
    r = carry.CarryRules(-1000, -2000, 3, 1.0, FEES)
    assert carry.decide(r, view(-0.01)) is carry.Action.ENTER
    assert carry.decide(r, view(-0.02, True, 100)) is carry.Action.HOLD


def test_leg_quantities_on_lot_steps_and_hedge_drift():
    spot, perp = carry.leg_quantities(20_000, 16_529.67, 1.0, 0.00001, 0.001)
    assert spot == Decimal("1.20994") and perp == Decimal("1.21")
    assert abs(carry.hedge_drift(spot, -perp, 1.0)) < 0.001
    assert carry.hedge_drift(1.0, -0.9, 1.0) == pytest.approx(-0.1)


# -- guard ---------------------------------------------------------------------------------------------------------
T = guard.Thresholds(warn_distance=0.12, add_margin_distance=0.10, target_distance=0.15, reduce_distance=0.06,
                     close_distance=0.03, hysteresis=0.01)


def state_at_distance(d: float, qty=1.0, entry=20_000.0):
    """Isolated short whose liquidation price sits d above a mark of `entry`."""
    wallet = margin.wallet_for_distance(-1, qty, entry, entry, d, BTC)
    return dict(side=-1, qty=qty, entry=entry, mark=entry, wallet=wallet, table=BTC)


@pytest.mark.parametrize("d,step", [(0.20, guard.Step.NONE), (0.11, guard.Step.WARN), (0.09, guard.Step.ADD_MARGIN),
                                    (0.05, guard.Step.REDUCE), (0.02, guard.Step.CLOSE)])
def test_ladder_steps(d, step):
    dec, latched = guard.evaluate(T, **state_at_distance(d), free_collateral=1e9)
    assert dec.step is step and dec.distance == pytest.approx(d, rel=1e-6)


def test_add_margin_restores_target_distance():
    s = state_at_distance(0.09)
    dec, _ = guard.evaluate(T, **s, free_collateral=1e9)
    lp = margin.liquidation_price(-1, s["qty"], s["entry"], s["wallet"] + dec.add_margin, BTC)
    assert margin.distance_to_liquidation(-1, s["mark"], lp) == pytest.approx(0.15, rel=1e-6)


def test_add_margin_short_of_collateral_escalates_to_reduce():
    s = state_at_distance(0.09)
    dec, _ = guard.evaluate(T, **s, free_collateral=10.0)
    assert dec.step is guard.Step.REDUCE and dec.add_margin == pytest.approx(10.0)
    assert 0 < dec.reduce_fraction < 1


def test_hysteresis_no_flapping():
    latched = guard.Step.NONE
    fired = []
    for d in (0.095, 0.099, 0.105, 0.098, 0.115, 0.095):
        dec, latched = guard.evaluate(T, **state_at_distance(d), free_collateral=1e9, latched=latched)
        fired.append(dec.step)
    # fires at 0.095; stays quiet until the distance recovers past 0.10 + 0.01 (0.115), then may fire again
    assert fired == [guard.Step.ADD_MARGIN, guard.Step.NONE, guard.Step.NONE, guard.Step.NONE, guard.Step.NONE,
                     guard.Step.ADD_MARGIN]


def test_deeper_step_always_fires():
    _, latched = guard.evaluate(T, **state_at_distance(0.09), free_collateral=1e9)
    dec, _ = guard.evaluate(T, **state_at_distance(0.02), free_collateral=1e9, latched=latched)
    assert dec.step is guard.Step.CLOSE


@given(st.floats(0.031, 0.0599), st.floats(0.05, 5.0))
def test_reduce_fraction_restores_target(d, qty):
    s = state_at_distance(d, qty=qty)
    dec, _ = guard.evaluate(T, **s, free_collateral=0.0)
    assert dec.step is guard.Step.REDUCE
    rest = margin.reduce_position(-1, qty, s["entry"], s["mark"], s["wallet"], dec.reduce_fraction)
    lp = margin.liquidation_price(-1, rest[0], s["entry"], rest[1], BTC)
    assert margin.distance_to_liquidation(-1, s["mark"], lp) >= 0.15 - 1e-6


# -- legs ----------------------------------------------------------------------------------------------------------
def start_entry():
    return LegPair.start("enter", 0, 10, 100.0, 0.002, spot=(1, 2.0), perp=(-1, 2.0))


def test_both_legs_sent_back_to_back_and_complete():
    pair, ins = start_entry()
    assert [(i.leg, i.side, i.qty) for i in ins] == [("spot", 1, 2.0), ("perp", -1, 2.0)]
    assert pair.filled("spot", 2.0, 1) == [] and pair.filled("perp", 1.0, 2) == []
    assert pair.filled("perp", 1.0, 3) == [] and pair.status is PairStatus.COMPLETE


def test_failed_opening_leg_catches_up_within_band_else_unwinds():
    pair, _ = start_entry()
    pair.filled("spot", 2.0, 1)
    ins = pair.failed("perp", "rejected", 2, market_price=100.1)  # moved 0.1% < 0.2%: catch up
    assert [(i.leg, i.side, i.qty) for i in ins] == [("perp", -1, 2.0)] and pair.status is PairStatus.CATCHING_UP
    ins = pair.failed("perp", "rejected again", 3, market_price=100.1)  # retried once already: unwind the spot leg
    assert [(i.leg, i.side, i.qty) for i in ins] == [("spot", -1, 2.0)] and pair.status is PairStatus.UNWINDING
    assert pair.filled("spot", 2.0, 4) == [] and pair.status is PairStatus.FLAT


def test_market_moved_past_band_unwinds_at_once():
    pair, _ = start_entry()
    pair.filled("spot", 2.0, 1)
    ins = pair.failed("perp", "rejected", 2, market_price=101.0)
    assert [(i.leg, i.side, i.qty) for i in ins] == [("spot", -1, 2.0)]


def test_timeout_cancels_in_flight_then_unwinds_partial():
    pair, _ = start_entry()
    pair.filled("spot", 2.0, 1)
    pair.filled("perp", 0.5, 2)
    assert pair.timeout(5) == []  # not yet due
    ins = pair.timeout(10)
    assert [(i.kind, i.leg) for i in ins] == [("cancel", "perp")]
    ins = pair.failed("perp", "canceled", 11)  # no catch-up after the deadline
    assert sorted((i.leg, i.side, i.qty) for i in ins) == [("perp", 1, 0.5), ("spot", -1, 2.0)]


def test_never_sends_on_top_of_an_order_in_flight():
    pair, _ = start_entry()
    assert pair.failed("spot", "rejected", 1, market_price=100.0) == [] or pair.in_flight()
    # the perp leg is still in flight: nothing is unwound until it is closed
    assert pair.status is not PairStatus.UNWINDING or pair.in_flight()


def test_closing_pair_retries_failed_leg_never_reopens():
    pair, _ = LegPair.start("exit", 0, 10, 100.0, 0.002, spot=(-1, 2.0), perp=(1, 2.0))
    pair.filled("spot", 2.0, 1)
    for attempt in range(3):
        ins = pair.failed("perp", "rejected", 2 + attempt)
        assert [(i.leg, i.side, i.qty) for i in ins] == [("perp", 1, 2.0)]
    assert pair.failed("perp", "rejected", 9) == [] and pair.status is PairStatus.STUCK
    assert all(e != "unwind" for _, e, _ in pair.history)
