"""Tests for basisbot.core.margin: Binance USDⓈ-M margin and liquidation math."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from basisbot.core import margin
from basisbot.core.margin import (
    Bracket,
    BracketError,
    BracketTable,
    CrossPosition,
    _liquidation_price_by_scan,
    cross_liquidation_price,
    cross_margin_ratio,
    distance_to_liquidation,
    initial_margin,
    liquidation_price,
    margin_balance,
    margin_ratio,
    margin_to_add,
    reduce_fraction_for_distance,
    reduce_position,
    target_liquidation_price,
    unrealized_pnl,
    wallet_for_distance,
)
from basisbot.venues.binance import reference
from basisbot.venues.binance.brackets_file import load_brackets, parse_brackets

BRACKETS_FILE = Path(str(reference.BRACKETS))  # the bundled 2026 tables (package data)
TABLES = load_brackets(BRACKETS_FILE)
BTC, ETH, SOL = TABLES["BTCUSDT"], TABLES["ETHUSDT"], TABLES["SOLUSDT"]
LONG, SHORT = 1, -1

# Binance's published example uses a flat 0.4% MMR, cum 0.
FLAT_04 = BracketTable("EXAMPLE", (Bracket(1, 125, 0.0, math.inf, 0.004, 0.0),))


def raw_brackets() -> list[dict]:
    """A fresh copy of the JSON file's contents, for mutation in loader tests."""
    return json.loads(BRACKETS_FILE.read_text())


def formula(side: int, qty: float, entry: float, wallet: float, b: Bracket) -> float:
    """The published LP formula, written out independently of the module."""
    return (wallet + b.cum - side * qty * entry) / (qty * b.mmr - side * qty)


def bracket_path(table: BracketTable, side: int, qty: float, entry: float, wallet: float) -> list[int]:
    """Bracket numbers visited by the re-check iteration, starting at the entry notional."""
    b = table.for_notional(qty * entry)
    path = [b.bracket]
    for _ in range(len(table.brackets)):
        nxt = table.for_notional(qty * max(formula(side, qty, entry, wallet, b), 0.0))
        if nxt == b:
            break
        b = nxt
        path.append(b.bracket)
    return path


# ---------------------------------------------------------------------------
# Published example
# ---------------------------------------------------------------------------


def test_published_example_flat_bracket():
    lp = liquidation_price(SHORT, 1.0, 60_000.0, 12_000.0, FLAT_04)
    assert lp == pytest.approx(72_000 / 1.004, rel=1e-15)
    assert round(lp, 2) == 71_713.15


def test_published_example_with_real_btc_table():
    assert BTC.for_notional(60_000.0).bracket == 1
    assert BTC.for_notional(71_713.15).bracket == 1
    lp = liquidation_price(SHORT, 1.0, 60_000.0, 12_000.0, BTC)
    assert round(lp, 2) == 71_713.15
    assert margin_ratio(SHORT, 1.0, 60_000.0, lp, 12_000.0, BTC) == pytest.approx(1.0, rel=1e-12)
    assert distance_to_liquidation(SHORT, 60_000.0, lp) == pytest.approx(71_713.147410358 / 60_000 - 1, rel=1e-9)


# ---------------------------------------------------------------------------
# Bracket table
# ---------------------------------------------------------------------------


def test_real_tables_loaded():
    assert set(TABLES) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert [len(t.brackets) for t in (BTC, ETH, SOL)] == [12, 12, 10]
    assert BTC.brackets[1] == Bracket(2, 100, 300_000.0, 800_000.0, 0.005, 300.0)
    assert SOL.brackets[0] == Bracket(1, 100, 0.0, 50_000.0, 0.005, 0.0)


@pytest.mark.parametrize("table", [BTC, ETH, SOL], ids=lambda t: t.symbol)
def test_real_tables_have_continuous_maintenance_margin(table):
    # Binance sets cum so that MM(N) = N*mmr - cum is continuous at every boundary.
    for lower, upper in zip(table.brackets, table.brackets[1:]):
        boundary = upper.notional_floor
        assert lower.maintenance_margin(boundary) == pytest.approx(upper.maintenance_margin(boundary), rel=1e-12)


def test_for_notional_boundaries():
    assert BTC.for_notional(0.0).bracket == 1
    assert BTC.for_notional(299_999.99).bracket == 1
    assert BTC.for_notional(300_000.0).bracket == 2  # floor <= N < cap
    assert BTC.for_notional(1_799_999_999.0).bracket == 12
    assert BTC.for_notional(1_800_000_000.0).bracket == 12  # beyond the last cap -> last
    assert BTC.for_notional(1e15).bracket == 12
    assert SOL.for_notional(50_000.0).bracket == 2


def test_max_leverage_and_maintenance_margin():
    assert BTC.max_leverage(60_000.0) == 150
    assert BTC.max_leverage(5_000_000.0) == 50
    assert SOL.max_leverage(1e12) == 1
    assert BTC.maintenance_margin(60_000.0) == pytest.approx(240.0)
    assert BTC.maintenance_margin(500_000.0) == pytest.approx(500_000 * 0.005 - 300)
    assert BTC.maintenance_margin(0.0) == 0.0


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_for_notional_rejects_bad_notional(bad):
    with pytest.raises(ValueError, match="notional"):
        BTC.for_notional(bad)


def test_bracket_table_validates_direct_construction():
    with pytest.raises(BracketError, match="notionalFloor"):
        BracketTable("X", (Bracket(1, 10, 0.0, 100.0, 0.01, 0.0), Bracket(2, 5, 200.0, 300.0, 0.02, 1.0)))
    with pytest.raises(BracketError, match="brackets"):
        BracketTable("X", ())


# ---------------------------------------------------------------------------
# Loader errors
# ---------------------------------------------------------------------------


def _parse_error(data, source="src.json") -> str:
    with pytest.raises(BracketError) as info:
        parse_brackets(data, source=source)
    return str(info.value)


def test_loader_gap_between_cap_and_floor():
    data = raw_brackets()
    data[0]["brackets"][2]["notionalFloor"] = 900_000.0  # previous cap is 800,000
    msg = _parse_error(data)
    assert "src.json" in msg and "BTCUSDT" in msg and "brackets[2].notionalFloor" in msg and "900000.0" in msg


def test_loader_negative_mmr():
    data = raw_brackets()
    data[1]["brackets"][3]["maintMarginRatio"] = -0.01
    msg = _parse_error(data)
    assert "src.json" in msg and "ETHUSDT" in msg and "brackets[3].maintMarginRatio" in msg and "-0.01" in msg


def test_loader_mmr_of_one_rejected():
    data = raw_brackets()
    data[2]["brackets"][0]["maintMarginRatio"] = 1.0
    msg = _parse_error(data)
    assert "SOLUSDT" in msg and "brackets[0].maintMarginRatio" in msg


def test_loader_missing_field():
    data = raw_brackets()
    del data[2]["brackets"][4]["cum"]
    msg = _parse_error(data)
    assert "src.json" in msg and "SOLUSDT" in msg and "brackets[4].cum" in msg and "missing" in msg


def test_loader_wrong_type():
    data = raw_brackets()
    data[0]["brackets"][1]["notionalCap"] = "800k"
    msg = _parse_error(data)
    assert "src.json" in msg and "BTCUSDT" in msg and "brackets[1].notionalCap" in msg and "'800k'" in msg
    data[0]["brackets"][1]["notionalCap"] = [800000]
    assert "brackets[1].notionalCap" in _parse_error(data)


def test_loader_accepts_decimal_strings():
    """Binance answers and ccxt snapshots carry numbers as JSON numbers or decimal strings: both parse the same."""
    data = raw_brackets()
    for b in data[0]["brackets"]:
        for key in b:
            b[key] = str(b[key])
    assert parse_brackets(data)["BTCUSDT"] == BTC


def test_loader_bool_is_not_a_number():
    data = raw_brackets()
    data[0]["brackets"][0]["initialLeverage"] = True
    assert "brackets[0].initialLeverage" in _parse_error(data)


def test_loader_negative_cum():
    data = raw_brackets()
    data[0]["brackets"][5]["cum"] = -5.0
    assert "brackets[5].cum" in _parse_error(data)


def test_loader_first_floor_not_zero():
    data = raw_brackets()
    data[1]["brackets"][0]["notionalFloor"] = 10.0
    msg = _parse_error(data)
    assert "ETHUSDT" in msg and "brackets[0].notionalFloor" in msg


def test_loader_unsorted_brackets():
    data = raw_brackets()
    b = data[0]["brackets"]
    b[0], b[1] = b[1], b[0]
    assert "BTCUSDT" in _parse_error(data)


def test_loader_fractional_leverage_and_duplicate_symbol():
    data = raw_brackets()
    data[0]["brackets"][0]["initialLeverage"] = 12.5
    assert "brackets[0].initialLeverage" in _parse_error(data)
    data = raw_brackets()
    data.append(copy.deepcopy(data[0]))
    assert "duplicate" in _parse_error(data)


def test_loader_bad_top_level_and_missing_brackets():
    assert "<memory>" in str(pytest.raises(BracketError, parse_brackets, "nope").value)
    msg = _parse_error([{"symbol": "XUSDT"}])
    assert "XUSDT" in msg and "brackets" in msg


def test_loader_accepts_single_object_and_extra_keys():
    data = raw_brackets()[0]
    data["notionalCoef"] = 1.0
    tables = parse_brackets(data)
    assert tables["BTCUSDT"] == BTC


def test_load_brackets_names_the_file(tmp_path):
    data = raw_brackets()
    data[0]["brackets"][1]["maintMarginRatio"] = -0.5
    path = tmp_path / "brackets.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BracketError, match=r"brackets\.json.*BTCUSDT.*brackets\[1\]\.maintMarginRatio"):
        load_brackets(path)
    path.write_text("{not json")
    with pytest.raises(BracketError, match=r"brackets\.json.*invalid JSON"):
        load_brackets(path)


# ---------------------------------------------------------------------------
# Liquidation price: bracket re-check
# ---------------------------------------------------------------------------

RECHECK_CASES = [
    # table, side, qty, entry, wallet
    pytest.param(BTC, SHORT, 10.0, 25_000.0, 100_000.0, id="btc-short-1-to-2"),
    pytest.param(ETH, LONG, 10_000.0, 1_300.0, 6_500_000.0, id="eth-long-5-to-4"),
    pytest.param(SOL, SHORT, 100_000.0, 20.0, 10_000_000.0, id="sol-short-4-to-6"),
    pytest.param(BTC, LONG, 13_000_000.0, 100.0, 1_100_000_000.0, id="btc-long-12-1-7"),
    pytest.param(ETH, SHORT, 3_000_000.0, 100.0, 600_000_000.0, id="eth-short-8-12-11"),
    pytest.param(SOL, LONG, 11_000_000.0, 20.0, 150_000_000.0, id="sol-long-10-5-7"),
]


@pytest.mark.parametrize(("table", "side", "qty", "entry", "wallet"), RECHECK_CASES)
def test_liquidation_price_rechecks_bracket(table, side, qty, entry, wallet):
    entry_bracket = table.for_notional(qty * entry)
    naive = formula(side, qty, entry, wallet, entry_bracket)
    assert table.for_notional(qty * max(naive, 0.0)) != entry_bracket  # the case really changes bracket

    lp = liquidation_price(side, qty, entry, wallet, table)
    final = table.for_notional(qty * lp)
    assert final != entry_bracket
    assert lp == pytest.approx(formula(side, qty, entry, wallet, final), rel=1e-14)
    assert lp != pytest.approx(naive, rel=1e-6)
    # Margin balance equals maintenance margin at LP; safe just before, liquidated just after.
    assert margin_ratio(side, qty, entry, lp, wallet, table) == pytest.approx(1.0, rel=1e-9)
    assert margin_ratio(side, qty, entry, lp * (1 + side * 1e-6), wallet, table) < 1.0
    assert margin_ratio(side, qty, entry, lp * (1 - side * 1e-6), wallet, table) > 1.0
    assert lp == pytest.approx(_liquidation_price_by_scan(side, qty, entry, wallet, table), rel=1e-14)


def test_recheck_cases_need_several_rounds():
    assert bracket_path(BTC, LONG, 13_000_000.0, 100.0, 1_100_000_000.0) == [12, 1, 7]
    assert bracket_path(ETH, SHORT, 3_000_000.0, 100.0, 600_000_000.0) == [8, 12, 11]
    assert bracket_path(SOL, LONG, 11_000_000.0, 20.0, 150_000_000.0) == [10, 5, 7]


def test_oscillating_brackets_return_the_boundary():
    # MM jumps from 1 to 50 at notional 100: bracket 1's LP lands in bracket 2
    # and bracket 2's LP lands back in bracket 1.  Liquidation happens exactly
    # when the notional reaches the boundary.
    jumpy = BracketTable("JUMP", (Bracket(1, 50, 0.0, 100.0, 0.01, 0.0), Bracket(2, 2, 100.0, math.inf, 0.5, 0.0)))
    b1, b2 = jumpy.brackets
    assert formula(SHORT, 1.0, 50.0, 60.0, b1) >= 100.0
    assert formula(SHORT, 1.0, 50.0, 60.0, b2) < 100.0
    lp = liquidation_price(SHORT, 1.0, 50.0, 60.0, jumpy)
    assert lp == 100.0
    assert margin_ratio(SHORT, 1.0, 50.0, 99.999, 60.0, jumpy) < 1.0
    assert margin_ratio(SHORT, 1.0, 50.0, 100.0, 60.0, jumpy) > 1.0

    # Same for a long (price falling into the lower bracket): first liquidatable below 100.
    jumpy_long = BracketTable(
        "JUMPL", (Bracket(1, 50, 0.0, 100.0, 0.4, 0.0), Bracket(2, 2, 100.0, math.inf, 0.01, 0.0))
    )
    lo, hi = jumpy_long.brackets
    assert formula(LONG, 1.0, 150.0, 60.0, hi) < 100.0 <= formula(LONG, 1.0, 150.0, 60.0, lo)
    lp = liquidation_price(LONG, 1.0, 150.0, 60.0, jumpy_long)
    assert lp == 100.0
    assert margin_ratio(LONG, 1.0, 150.0, 100.0, 60.0, jumpy_long) < 1.0
    assert margin_ratio(LONG, 1.0, 150.0, 99.999, 60.0, jumpy_long) > 1.0


def test_fully_collateralised_long_cannot_be_liquidated():
    assert liquidation_price(LONG, 2.0, 30_000.0, 60_000.0, BTC) == 0.0
    assert liquidation_price(LONG, 2.0, 30_000.0, 100_000.0, BTC) == 0.0
    assert distance_to_liquidation(LONG, 30_000.0, 0.0) == 1.0
    for mark in (0.01, 1.0, 30_000.0, 1e7):
        assert margin_ratio(LONG, 2.0, 30_000.0, mark, 60_000.0, BTC) < 1.0
    # Just under full collateral: a tiny but positive liquidation price.
    assert 0.0 < liquidation_price(LONG, 2.0, 30_000.0, 59_000.0, BTC) < 600.0


def test_long_liquidation_price_example():
    # Long 1 BTC at 60,000 with 6,000 (10x): LP = (6000 - 60000) / (0.004 - 1).
    lp = liquidation_price(LONG, 1.0, 60_000.0, 6_000.0, BTC)
    assert lp == pytest.approx(54_000 / 0.996, rel=1e-15)
    assert margin_ratio(LONG, 1.0, 60_000.0, lp, 6_000.0, BTC) == pytest.approx(1.0, rel=1e-12)


def test_short_with_negative_effective_wallet_is_liquidatable_everywhere():
    assert liquidation_price(SHORT, 1.0, 100.0, -150.0, BTC) == 0.0
    assert distance_to_liquidation(SHORT, 100.0, 0.0) == -1.0


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def test_unrealized_pnl_margin_balance_and_ratio():
    assert unrealized_pnl(LONG, 2.0, 100.0, 110.0) == pytest.approx(20.0)
    assert unrealized_pnl(SHORT, 2.0, 100.0, 110.0) == pytest.approx(-20.0)
    assert margin_balance(SHORT, 2.0, 100.0, 110.0, 50.0) == pytest.approx(30.0)
    assert margin_ratio(SHORT, 2.0, 100.0, 110.0, 50.0, BTC) == pytest.approx(220 * 0.004 / 30.0)
    assert margin_ratio(SHORT, 2.0, 100.0, 110.0, 20.0, BTC) == math.inf  # margin balance exactly 0
    assert margin_ratio(SHORT, 2.0, 100.0, 150.0, 20.0, BTC) == math.inf


def test_distance_to_liquidation():
    assert distance_to_liquidation(SHORT, 100.0, 130.0) == pytest.approx(0.3)
    assert distance_to_liquidation(LONG, 100.0, 70.0) == pytest.approx(0.3)
    assert distance_to_liquidation(SHORT, 100.0, 100.0) == 0.0
    assert distance_to_liquidation(SHORT, 100.0, 90.0) == pytest.approx(-0.1)
    assert distance_to_liquidation(LONG, 100.0, 110.0) == pytest.approx(-0.1)


def test_target_liquidation_price():
    assert target_liquidation_price(SHORT, 100.0, 0.25) == pytest.approx(125.0)
    assert target_liquidation_price(LONG, 100.0, 0.25) == pytest.approx(75.0)
    assert target_liquidation_price(LONG, 100.0, 1.0) == 0.0
    with pytest.raises(ValueError, match="target_distance"):
        target_liquidation_price(LONG, 100.0, 1.5)


def test_initial_margin():
    assert initial_margin(60_000.0, 20) == pytest.approx(3_000.0)
    assert initial_margin(0.0, 5) == 0.0
    with pytest.raises(ValueError, match="leverage"):
        initial_margin(60_000.0, 0)
    with pytest.raises(ValueError, match="notional"):
        initial_margin(-1.0, 5)


def test_wallet_for_distance_example():
    # Short 1 BTC at 60,000, mark 60,000, LP wanted 20% above: 72,000.
    # WB = MM(72,000) + (72,000 - 60,000) = 288 + 12,000.
    wb = wallet_for_distance(SHORT, 1.0, 60_000.0, 60_000.0, 0.2, BTC)
    assert wb == pytest.approx(12_288.0, rel=1e-12)
    assert liquidation_price(SHORT, 1.0, 60_000.0, wb, BTC) == pytest.approx(72_000.0, rel=1e-12)
    assert margin_to_add(SHORT, 1.0, 60_000.0, 60_000.0, 12_000.0, 0.2, BTC) == pytest.approx(288.0, rel=1e-9)
    assert margin_to_add(SHORT, 1.0, 60_000.0, 60_000.0, 20_000.0, 0.2, BTC) == 0.0


def test_wallet_for_distance_can_be_negative_for_deep_profit():
    # A short entered at 100 now marked at 50: at LP = 55 it is still 45/unit in profit.
    assert wallet_for_distance(SHORT, 1.0, 100.0, 50.0, 0.1, BTC) == pytest.approx(55 * 0.004 - 45)
    assert margin_to_add(SHORT, 1.0, 100.0, 50.0, 0.0, 0.1, BTC) == 0.0


def test_reduce_position():
    assert reduce_position(SHORT, 10.0, 100.0, 120.0, 500.0, 0.25) == pytest.approx((7.5, 500.0 - 50.0))
    assert reduce_position(LONG, 10.0, 100.0, 120.0, 500.0, 0.0) == (10.0, 500.0)
    with pytest.raises(ValueError, match="fraction"):
        reduce_position(LONG, 10.0, 100.0, 120.0, 500.0, 1.5)


def test_reduce_fraction_example():
    # Short 10 BTC at 60,000, mark 66,000, wallet 80,000 (margin balance 20,000):
    # LP = (80,000 + 300 + 600,000) / 10.05 = 67,691 (2.6% away). Want 10%.
    args = (SHORT, 10.0, 60_000.0, 66_000.0, 80_000.0)
    lp = liquidation_price(SHORT, 10.0, 60_000.0, 80_000.0, BTC)
    assert lp == pytest.approx(680_300 / 10.05, rel=1e-12)
    assert distance_to_liquidation(SHORT, 66_000.0, lp) < 0.1
    f = reduce_fraction_for_distance(*args, 0.1, BTC)
    # Closed form (remaining notional at 72,600 stays in bracket 1): the remaining qty q
    # needs 20,000 - q*6,600 (loss to 72,600) - q*72,600*0.004 (MM) = 0.
    assert f == pytest.approx(1 - 20_000 / (10 * (6_600 + 290.4)), abs=2e-9)
    assert 0.0 < f < 1.0
    q, w = reduce_position(*args, f)
    assert distance_to_liquidation(SHORT, 66_000.0, liquidation_price(SHORT, q, 60_000.0, w, BTC)) >= 0.1
    q, w = reduce_position(*args, f - 1e-6)
    assert distance_to_liquidation(SHORT, 66_000.0, liquidation_price(SHORT, q, 60_000.0, w, BTC)) < 0.1
    # Already far enough: nothing to close.  Bankrupt: close everything.
    assert reduce_fraction_for_distance(*args, 0.01, BTC) == 0.0
    assert reduce_fraction_for_distance(SHORT, 10.0, 60_000.0, 70_000.0, 10_000.0, 0.1, BTC) == 1.0
    # A long can never be more than 100% from liquidation.
    assert reduce_fraction_for_distance(LONG, 1.0, 100.0, 100.0, 50.0, 1.5, BTC) == 1.0


def test_numpy_scalars_are_coerced_to_python_floats():
    np = pytest.importorskip("numpy")
    # float32 * int stays float32 under numpy 2 promotion rules; inputs must be converted first.
    lp = liquidation_price(np.int64(SHORT), np.float32(1.0), np.float32(60_000.0), np.float32(12_000.0), BTC)
    assert lp == liquidation_price(SHORT, 1.0, 60_000.0, 12_000.0, BTC)
    assert type(CrossPosition(np.int64(LONG), np.float32(2.0), 100.0, 100.0, BTC).qty) is float


# ---------------------------------------------------------------------------
# Argument validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("side", [0, 2, -2, True, 0.5, "long", None])
def test_bad_side(side):
    with pytest.raises(ValueError, match="side"):
        liquidation_price(side, 1.0, 100.0, 10.0, BTC)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"qty": 0.0}, "qty"),
        ({"qty": -1.0}, "qty"),
        ({"qty": math.nan}, "qty"),
        ({"qty": math.inf}, "qty"),
        ({"entry": 0.0}, "entry"),
        ({"entry": math.nan}, "entry"),
        ({"wallet_balance": math.inf}, "wallet_balance"),
        ({"wallet_balance": "10"}, "wallet_balance"),
    ],
)
def test_bad_liquidation_price_arguments(kwargs, name):
    args = {"side": LONG, "qty": 1.0, "entry": 100.0, "wallet_balance": 10.0, "table": BTC} | kwargs
    with pytest.raises(ValueError, match=name):
        liquidation_price(**args)


def test_bad_other_arguments():
    with pytest.raises(ValueError, match="mark"):
        margin_ratio(LONG, 1.0, 100.0, -5.0, 10.0, BTC)
    with pytest.raises(ValueError, match="mark"):
        distance_to_liquidation(LONG, 0.0, 10.0)
    with pytest.raises(ValueError, match="liq_price"):
        distance_to_liquidation(LONG, 100.0, -1.0)
    with pytest.raises(ValueError, match="target_distance"):
        wallet_for_distance(SHORT, 1.0, 100.0, 100.0, -0.1, BTC)
    with pytest.raises(ValueError, match="target_distance"):
        wallet_for_distance(LONG, 1.0, 100.0, 100.0, 1.01, BTC)
    with pytest.raises(ValueError, match="target_distance"):
        margin_to_add(SHORT, 1.0, 100.0, 100.0, 10.0, math.nan, BTC)
    with pytest.raises(ValueError, match="table"):
        liquidation_price(LONG, 1.0, 100.0, 10.0, {"BTCUSDT": BTC})
    with pytest.raises(ValueError, match="qty"):
        CrossPosition(LONG, 0.0, 100.0, 100.0, BTC)
    with pytest.raises(ValueError, match="tol"):
        reduce_fraction_for_distance(SHORT, 1.0, 100.0, 100.0, 10.0, 0.1, BTC, tol=0.0)


# ---------------------------------------------------------------------------
# Cross margin
# ---------------------------------------------------------------------------


def test_cross_single_position_matches_isolated():
    pos = CrossPosition(SHORT, 1.0, 60_000.0, 60_000.0, BTC)
    lp = cross_liquidation_price(12_000.0, pos, [])
    assert lp == liquidation_price(SHORT, 1.0, 60_000.0, 12_000.0, BTC)
    at_lp = CrossPosition(SHORT, 1.0, 60_000.0, lp, BTC)
    assert cross_margin_ratio(12_000.0, [at_lp]) == pytest.approx(1.0, rel=1e-12)


def test_cross_with_other_positions():
    eth_long = CrossPosition(LONG, 50.0, 2_000.0, 2_100.0, ETH)  # +5,000 upnl, MM 420
    btc_short = CrossPosition(SHORT, 2.0, 60_000.0, 60_000.0, BTC)
    wallet = 20_000.0
    lp = cross_liquidation_price(wallet, btc_short, [eth_long])
    effective = wallet + 5_000.0 - 105_000 * 0.004
    assert lp == pytest.approx(liquidation_price(SHORT, 2.0, 60_000.0, effective, BTC), rel=1e-14)
    at_lp = CrossPosition(SHORT, 2.0, 60_000.0, lp, BTC)
    assert cross_margin_ratio(wallet, [at_lp, eth_long]) == pytest.approx(1.0, rel=1e-12)
    assert cross_margin_ratio(wallet, [CrossPosition(SHORT, 2.0, 60_000.0, lp * 0.999, BTC), eth_long]) < 1.0


def test_cross_margin_ratio_edges():
    assert cross_margin_ratio(1_000.0, []) == 0.0
    assert cross_margin_ratio(0.0, []) == math.inf
    losing = CrossPosition(LONG, 1.0, 100.0, 50.0, BTC)
    assert cross_margin_ratio(40.0, [losing]) == math.inf
    assert cross_margin_ratio(60.0, [losing]) == pytest.approx(50 * 0.004 / 10.0)


# ---------------------------------------------------------------------------
# Property tests with the real tables
# ---------------------------------------------------------------------------

tables = st.sampled_from([BTC, ETH, SOL])
sides = st.sampled_from([LONG, SHORT])
entries = st.floats(0.5, 200_000.0)
notionals = st.floats(10.0, 2e9)  # entry notional, spans every bracket
leverages = st.floats(0.5, 150.0)  # wallet = notional / leverage; < 1 over-collateralised
PROPS = settings(max_examples=300, deadline=None)


@PROPS
@given(tables, sides, entries, notionals, leverages)
def test_prop_margin_ratio_is_one_at_liquidation_price(table, side, entry, notional, leverage):
    qty, wallet = notional / entry, notional / leverage
    lp = liquidation_price(side, qty, entry, wallet, table)
    assert lp >= 0.0
    if lp == 0.0:
        assert side == LONG and wallet >= qty * entry - 1e-6 * notional
        for mark in (entry * 1e-3, entry, entry * 10):
            assert margin_ratio(side, qty, entry, mark, wallet, table) < 1.0
        return
    # A long liquidated within 0.1% of zero price is ill-conditioned in floats (tiny MM vs. cancellation).
    assume(lp > 1e-3 * entry)
    assert margin_ratio(side, qty, entry, lp, wallet, table) == pytest.approx(1.0, rel=1e-9)
    # Formula holds with the bracket of the notional at LP.
    assert lp == pytest.approx(formula(side, qty, entry, wallet, table.for_notional(qty * lp)), rel=1e-9)
    # Safe side (short: below, long: above) < 1; beyond > 1.
    assert margin_ratio(side, qty, entry, lp * (1 + side * 1e-6), wallet, table) < 1.0
    assert margin_ratio(side, qty, entry, lp * (1 - side * 1e-6), wallet, table) > 1.0
    assert margin_ratio(side, qty, entry, lp * (1 + side * 0.05), wallet, table) < 1.0
    assert margin_ratio(side, qty, entry, lp * (1 - side * 0.05), wallet, table) > 1.0


@PROPS
@given(tables, sides, entries, notionals, st.floats(-1e9, 4e9))
def test_prop_iteration_agrees_with_bracket_scan(table, side, entry, notional, wallet):
    qty = notional / entry
    lp = liquidation_price(side, qty, entry, wallet, table)
    assert lp == pytest.approx(_liquidation_price_by_scan(side, qty, entry, wallet, table), rel=1e-12, abs=1e-9)


@PROPS
@given(tables, sides, entries, notionals, st.floats(0.5, 2.0), st.floats(0.0, 3.0))
def test_prop_wallet_for_distance_round_trips(table, side, entry, notional, mark_ratio, distance):
    if side == LONG:
        distance = min(distance, 0.95)
    qty, mark = notional / entry, entry * mark_ratio
    wallet = wallet_for_distance(side, qty, entry, mark, distance, table)
    lp = liquidation_price(side, qty, entry, wallet, table)
    assert lp == pytest.approx(mark * (1 - side * distance), rel=1e-9)
    assert distance_to_liquidation(side, mark, lp) == pytest.approx(distance, rel=1e-9, abs=1e-9)


@PROPS
@given(tables, sides, entries, notionals, leverages, st.floats(0.5, 2.0), st.floats(0.0, 3.0))
def test_prop_margin_to_add_restores_distance(table, side, entry, notional, leverage, mark_ratio, distance):
    if side == LONG:
        distance = min(distance, 0.95)
    qty, wallet, mark = notional / entry, notional / leverage, entry * mark_ratio
    add = margin_to_add(side, qty, entry, mark, wallet, distance, table)
    assert add >= 0.0
    before = distance_to_liquidation(side, mark, liquidation_price(side, qty, entry, wallet, table))
    after = distance_to_liquidation(side, mark, liquidation_price(side, qty, entry, wallet + add, table))
    assert after >= distance - 1e-9
    if add > 0.0:
        assert before < distance + 1e-9
        assert after == pytest.approx(distance, rel=1e-9, abs=1e-9)
    else:
        assert before == after and before >= distance - 1e-9


@PROPS
@given(tables, sides, entries, notionals, leverages, st.floats(0.5, 2.0), st.floats(0.0, 2.0))
def test_prop_reduce_fraction_achieves_target(table, side, entry, notional, leverage, mark_ratio, distance):
    if side == LONG:
        distance = min(distance, 0.95)
    qty, wallet, mark = notional / entry, notional / leverage, entry * mark_ratio
    args = (side, qty, entry, mark, wallet)

    def distance_after(fraction: float) -> float:
        q, w = reduce_position(*args, fraction)
        return distance_to_liquidation(side, mark, liquidation_price(side, q, entry, w, table))

    f = reduce_fraction_for_distance(*args, distance, table)
    assert 0.0 <= f <= 1.0
    if f < 1.0:
        assert distance_after(f) >= distance
    if f == 0.0:
        assert distance_after(0.0) >= distance
    if f > 1e-6:
        assert distance_after(f - 1e-6) < distance  # minimal up to the bisection tolerance
    if f == 1.0 and margin_balance(*args) > 0:
        assert distance_after(1.0 - 1e-6) < distance


@PROPS
@given(tables, sides, entries, notionals, leverages)
def test_prop_cross_single_position_equals_isolated(table, side, entry, notional, leverage):
    qty, wallet = notional / entry, notional / leverage
    pos = CrossPosition(side, qty, entry, entry, table)
    lp = cross_liquidation_price(wallet, pos, [])
    assert lp == liquidation_price(side, qty, entry, wallet, table)
    assume(lp > 1e-3 * entry)
    at_lp = CrossPosition(side, qty, entry, lp, table)
    assert cross_margin_ratio(wallet, [at_lp]) == pytest.approx(1.0, rel=1e-9)


@PROPS
@given(
    st.tuples(tables, sides, entries, st.floats(10.0, 5e7), st.floats(0.7, 1.4)),
    st.tuples(tables, sides, entries, st.floats(10.0, 5e7), st.floats(0.7, 1.4)),
    st.floats(0.02, 2.0),
)
def test_prop_cross_margin_ratio_is_one_at_cross_liquidation_price(a, b, wallet_fraction):
    def make(spec):
        table, side, entry, notional, mark_ratio = spec
        return CrossPosition(side, notional / entry, entry, entry * mark_ratio, table)

    pos, other = make(a), make(b)
    wallet = wallet_fraction * (pos.qty * pos.entry + other.qty * other.entry)
    lp = cross_liquidation_price(wallet, pos, [other])
    assume(lp > 1e-3 * pos.entry)
    at_lp = CrossPosition(pos.side, pos.qty, pos.entry, lp, pos.table)
    assert cross_margin_ratio(wallet, [at_lp, other]) == pytest.approx(1.0, rel=1e-9)


def test_margin_request_funded_from_perp_first_then_spot():
    """The one perp-then-spot split the backtest's margin module and the live client both use."""
    iso = margin.split_margin_request(100.0, 60.0, 1000.0, isolated=True, spot_allowed=True)
    assert (iso.from_perp, iso.from_spot, iso.added) == (60.0, 40.0, 100.0)
    assert margin.split_margin_request(100.0, 60.0, 1000.0, isolated=True, spot_allowed=False).added == 60.0
    assert margin.split_margin_request(100.0, 160.0, 1000.0, isolated=True, spot_allowed=True).from_spot == 0.0
    cross = margin.split_margin_request(100.0, 60.0, 30.0, isolated=False, spot_allowed=True)
    assert (cross.from_perp, cross.from_spot, cross.added) == (0.0, 30.0, 30.0)  # a cross wallet backs it already
    live = margin.split_margin_request(100.01, 60.004, 1000.0, isolated=True, spot_allowed=True, cents=True)
    assert (live.from_spot, live.added) == (40.0, 100.0) and live.from_perp == pytest.approx(60.0)


@given(amount=st.floats(0.01, 1e6), perp_free=st.floats(0.0, 1e6), spot_free=st.floats(0.0, 1e6),
       isolated=st.booleans(), spot_allowed=st.booleans(), cents=st.booleans())
def test_prop_margin_request_never_moves_more_than_is_there(amount, perp_free, spot_free, isolated, spot_allowed, cents):
    t = margin.split_margin_request(amount, perp_free, spot_free, isolated=isolated, spot_allowed=spot_allowed,
                                    cents=cents)
    assert 0.0 <= t.from_spot <= spot_free and 0.0 <= t.from_perp <= perp_free + 1e-9
    assert t.added <= amount + 1e-9 and (spot_allowed or t.from_spot == 0.0) and (isolated or t.from_perp == 0.0)
    if cents:
        assert round(t.from_spot * 100) == pytest.approx(t.from_spot * 100, abs=1e-6)
