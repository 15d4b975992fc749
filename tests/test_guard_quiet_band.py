"""The guard's quiet band: the marks at which `GuardState.check` cannot fire, which the strategy tests instead of
calling the guard on every mark. It must be conservative (a mark inside is quiet under the exact check, with the
check's own floats) and follow every change of the margin state, the thresholds and the latched step."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from basisbot.core import guard
from basisbot.core.guard_state import GuardState
from basisbot.nautilus.messages import PerpMarginState
from basisbot.venues.binance import reference

TABLE = reference.bracket_tables()["BTCUSDT"]


def _state(side: int, qty: float, entry: float, wallet: float) -> PerpMarginState:
    return PerpMarginState("BTCUSDT", "isolated", side, qty, entry, wallet, 5_000.0, 5_000.0, 0)


def _thresholds(warn: float) -> guard.Thresholds:
    return guard.Thresholds(warn_distance=warn, add_margin_distance=warn * 0.8, target_distance=warn * 0.9,
                            reduce_distance=warn * 0.6, close_distance=warn * 0.3)


@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from([1, -1]), qty=st.floats(0.001, 50), entry=st.floats(1_000, 100_000),
       leverage=st.floats(1.5, 10), warn=st.floats(0.05, 0.6), move=st.floats(-0.6, 0.6))
def test_a_mark_inside_the_band_is_quiet_under_the_exact_check(side, qty, entry, leverage, warn, move):
    g = GuardState(_thresholds(warn), TABLE, isolated=True)
    g.on_margin_state(_state(side, qty, entry, qty * entry / leverage), mark=entry)
    low, high = g.quiet_band
    mark = entry * (1 + move)
    if g.lp is None or not low < mark < high:
        return
    assert g.check(mark, busy=False) is None
    assert g.latched is guard.Step.NONE


def test_band_edges_sit_on_the_warn_distance_and_follow_state_thresholds_and_latch():
    g = GuardState(None, TABLE, isolated=True)
    assert g.quiet_band == (-math.inf, math.inf)  # no thresholds: nothing to guard
    g.thresholds = _thresholds(0.30)
    g.on_margin_state(_state(-1, 1.0, 30_000.0, 6_000.0), mark=30_000.0)  # short, 5x
    low, high = g.quiet_band
    assert low == -math.inf and g.lp > high
    # at the edge the distance is the warn distance (to the band's 1e-9 margin)
    assert abs((g.lp - high) / high - 0.30) < 1e-6
    assert g.check(high * 0.999, busy=False) is None
    # a mark past the edge is checked and warns; the latched step empties the band (every mark is checked)
    d = g.check(high * 1.01, busy=False)
    assert d is not None and d.step is guard.Step.WARN
    assert g.quiet_band[0] > g.quiet_band[1]
    # back well inside: the latch re-arms past threshold + hysteresis and the band comes back
    assert g.check(high * 0.9, busy=False) is None
    assert g.latched is guard.Step.NONE and g.quiet_band == (low, high)
    # a new margin state (margin added) moves the liquidation price and the band with it
    g.on_margin_state(_state(-1, 1.0, 30_000.0, 9_000.0), mark=30_000.0)
    assert g.quiet_band[1] > high
    # tighter thresholds move it too; flat empties the guard
    g.thresholds = _thresholds(0.10)
    assert g.quiet_band[1] > high
    g.on_margin_state(_state(0, 0.0, 0.0, 0.0), mark=30_000.0)
    assert g.quiet_band == (-math.inf, math.inf)


def test_long_band_is_above_the_liquidation_price():
    g = GuardState(_thresholds(0.25), TABLE, isolated=True)
    g.on_margin_state(_state(1, 2.0, 20_000.0, 8_000.0), mark=20_000.0)
    low, high = g.quiet_band
    assert high == math.inf and low > g.lp
    assert abs((low - g.lp) / low - 0.25) < 1e-6
    assert g.check(low * 1.001, busy=False) is None
    assert g.check(low * 0.99, busy=False).step is guard.Step.WARN
