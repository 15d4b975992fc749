"""The capital budget's ranking: best risk-adjusted carry per unit of capital first, within the capital and the
symbol count, with hysteresis for what is held."""

from __future__ import annotations

import math

import pytest

from basisbot.core.portfolio import Bid, Budget, VolEstimator, allocate, capital_needed, score


def bid(sym, apr, vol=0.03, held=False, notional=10_000.0, lev=3.0):
    return Bid(sym, apr, notional, 1.0, lev, 0.15, vol, held)


def test_needs_spot_plus_margin_for_the_target_distance_under_volatility():
    b = Budget(1e9)
    assert capital_needed(bid("A", 0.1, vol=0.0), b) == pytest.approx(10_000 * (1 + 1 / 3))  # 1/leverage dominates
    assert capital_needed(bid("A", 0.1, vol=0.1), b) == pytest.approx(10_000 * (1 + 0.15 + 0.3))  # volatile: more margin


def test_ranks_by_carry_per_capital_and_respects_budget_and_count():
    bids = [bid("CALM", 0.10, vol=0.02), bid("WILD", 0.14, vol=0.10), bid("LOW", 0.03), bid("NEG", -0.05)]
    # WILD earns more per notional but less per unit of capital at risk: CALM first; WILD does not fit in what is
    # left, LOW does; NEG is never held
    assert score(bids[0], Budget(1e9)) > score(bids[1], Budget(1e9)) > score(bids[2], Budget(1e9)) > 0
    out = allocate(bids, Budget(capital_usdt=27_000))
    assert out == {"CALM": True, "WILD": False, "LOW": True, "NEG": False}
    assert allocate(bids, Budget(capital_usdt=28_000)) == {"CALM": True, "WILD": True, "LOW": False, "NEG": False}
    out = allocate(bids, Budget(capital_usdt=1e9, max_symbols=1))
    assert [s for s, ok in out.items() if ok] == ["CALM"]


def test_a_newcomer_waits_until_what_is_held_has_left():
    held, better = bid("HELD", 0.02, held=True), bid("NEW", 0.30)
    out = allocate([held, better], Budget(capital_usdt=14_000))
    assert out == {"HELD": False, "NEW": False}  # HELD is told to go; NEW waits for its capital
    assert allocate([bid("HELD", 0.02), better], Budget(capital_usdt=14_000)) == {"HELD": False, "NEW": True}


def test_hysteresis_keeps_what_is_held_against_a_slightly_better_challenger():
    held, challenger = bid("HELD", 0.10, held=True), bid("NEW", 0.11)
    assert allocate([held, challenger], Budget(capital_usdt=14_000, hysteresis=0.25)) == {"HELD": True, "NEW": False}
    # a much better one: HELD is told to go, NEW enters once HELD's capital is free
    assert allocate([held, bid("NEW", 0.20)], Budget(capital_usdt=14_000, hysteresis=0.25)) == {"HELD": False,
                                                                                             "NEW": False}


def test_daily_vol_from_hourly_marks():
    v = VolEstimator(halflife_h=24)
    price = 100.0
    for k in range(500):
        price *= math.exp(0.01 if k % 2 else -0.01)  # 1% hourly moves
        v.on_price(price)
    assert abs(v.daily - 0.01 * math.sqrt(24)) < 1e-6


# -- in a backtest ---------------------------------------------------------------------------------------------------
import csv  # noqa: E402
from pathlib import Path  # noqa: E402

from basisbot.cli import main  # noqa: E402
from tests.invariants import assert_backtest_invariants  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "backtests" / "data" / "binance"


def test_budget_holds_at_most_max_symbols_and_the_capital(tmp_path):
    text = (f'[backtest]\ndata = "{DATA}"\nstart = "2023-01-01"\nend = "2023-05-01"\n'
            "[portfolio]\ncapital_usdt = 30000\nmax_symbols = 2\n")
    for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "AVAXUSDT"):
        text += f"[symbols.{s}]\nnotional_usdt = 10000\nleverage = 3\n"
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    out = tmp_path / "o"
    assert main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert_backtest_invariants(out)
    with (out / "state.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    held: dict[str, set] = {}
    for r in rows:
        if float(r["perp_qty"] or 0) < 0:
            held.setdefault(r["ts"], set()).add(r["symbol"])
    assert held, "the budget must let some carry in"
    assert max(len(v) for v in held.values()) <= 2  # never more than max_symbols at once
    with (out / "decisions.csv").open() as fh:
        budget = [r for r in csv.DictReader(fh) if r["action"] == "budget"]
    assert any("out of the capital budget" in r["reason"] for r in budget)
