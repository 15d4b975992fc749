"""The liquidation guard on real data: BTC, ETH and SOL at 5x isolated through 2023 (SOL rallied ~10x, BTC 2.5x)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from basisbot.cli import main
from tests.invariants import assert_backtest_invariants

from .test_backtest import DATA

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def config(guard: bool) -> str:
    text = f"""
[backtest]
data = "{DATA}"
start = 2023-01-01
end = 2024-01-01
spot_balance_usdt = 100000
perp_balance_usdt = 50000
"""
    for s in SYMBOLS:
        text += f"""
[symbols.{s}]
enabled = true
hedge_ratio = 1.0
notional_usdt = 20000
leverage = 5
margin_mode = "isolated"
entry_apr = -1000
exit_apr = -2000
rebalance_tolerance = 0.02
[symbols.{s}.guard]
enabled = {str(guard).lower()}
"""
    return text


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[bool, Path]:
    tmp = tmp_path_factory.mktemp("guard")
    out = {}
    for guard in (False, True):
        cfg = tmp / f"g{guard}.toml"
        cfg.write_text(config(guard))
        out[guard] = tmp / f"out{guard}"
        assert main(["backtest", "--config", str(cfg), "--out", str(out[guard]), "--quiet"]) == 0
        assert_backtest_invariants(out[guard])
    return out


def rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_without_guard_each_symbol_is_liquidated(runs):
    s = json.loads((runs[False] / "summary.json").read_text())
    for sym in SYMBOLS:
        assert s["symbols"][sym]["liquidations"] >= 1, sym
        assert s["symbols"][sym]["guard_actions"] == 0


def test_with_guard_none_is_and_actions_are_reported(runs):
    s = json.loads((runs[True] / "summary.json").read_text())
    report = (runs[True] / "report.html").read_text()
    guard_rows = rows(runs[True] / "guard.csv")
    for sym in SYMBOLS:
        v = s["symbols"][sym]
        assert v["liquidations"] == 0, sym
        assert v["guard_actions"] > 0 and v["guard_breakdown"].get("add_margin", 0) > 0, sym
        assert v["guard_actions"] == sum(1 for g in guard_rows if g["symbol"] == sym)
    assert rows(runs[True] / "liquidations.csv") == []
    for g in guard_rows[:20]:
        assert g["ts"] in report
    assert abs(s["total"]["reconciliation_error"]) < 1e-5
    # margin came out of real balances: what was added equals what the transfers moved, nothing created
    assert s["total"]["equity_change"] == pytest.approx(s["total"]["net_pnl"], abs=1e-5)


def test_hedge_ratio_kept_after_each_action(runs):
    acted = [g for g in rows(runs[True] / "guard.csv") if g["step"] in ("add_margin", "reduce", "close")]
    assert any(g["step"] == "reduce" for g in acted)
    for g in acted:
        spot, perp = float(g["spot_qty_after"]), float(g["perp_qty_after"])
        if spot == 0 and perp == 0:
            continue
        assert abs(abs(perp) / spot - 1.0) <= 0.02, g


def test_reduce_restores_distance(runs):
    decisions = rows(runs[True] / "decisions.csv")
    reduces = [d for d in decisions if d["action"] == "reduce"]
    restores = [d for d in decisions if d["action"] == "restore_margin"]
    assert reduces and len(restores) >= len(reduces) - 1  # a reduce that already met the target needs no top-up


def test_margin_from_spot_moves_real_balance(tmp_path):
    """A perp wallet too small for SOL's 2023 rally: the guard pulls collateral from the spot account."""
    cfg = tmp_path / "sol.toml"
    cfg.write_text(config(True).replace("perp_balance_usdt = 50000", "perp_balance_usdt = 4500")
                   .replace("start = 2023-01-01", "start = 2023-10-01"))
    out = tmp_path / "sol"
    assert main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet", "--symbols", "SOLUSDT"]) == 0
    assert_backtest_invariants(out)
    s = json.loads((out / "summary.json").read_text())
    sol = s["symbols"]["SOLUSDT"]
    assert sol["liquidations"] == 0
    assert sol["margin_transferred_from_spot"] > 0
    # the spot account's USDT is exactly: start + spot trade cash flows - spot fees - what was moved to the perp wallet
    spot_trades = [t for t in rows(out / "trades.csv") if t["leg"] == "spot"]
    cash = sum((1 if t["side"] == "SELL" else -1) * float(t["qty"]) * float(t["price"]) for t in spot_trades)
    fees = sum(float(t["fee_usdt"]) for t in spot_trades)
    final_spot_usdt = float(rows(out / "equity.csv")[-1]["spot_usdt"])
    assert final_spot_usdt == pytest.approx(100_000 + cash - fees - sol["margin_transferred_from_spot"], abs=1e-3)
    assert abs(s["total"]["reconciliation_error"]) < 1e-5


@pytest.mark.parametrize("guard", [False, True])
def test_cross_margin_shares_the_wallet(tmp_path, guard):
    """Cross mode: the liquidation price comes from the whole perp wallet less the other positions' losses and
    maintenance; without the guard January 2023 liquidates, with it nothing is, and both reconcile."""
    cfg = tmp_path / "cross.toml"
    cfg.write_text(config(guard).replace('margin_mode = "isolated"', 'margin_mode = "cross"')
                   .replace("end = 2024-01-01", "end = 2023-02-01"))
    out = tmp_path / "cross"
    assert main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert_backtest_invariants(out)
    s = json.loads((out / "summary.json").read_text())
    assert (s["total"]["liquidations"] > 0) is (not guard)
    if guard:
        assert s["total"]["guard_actions"] > 0
    assert abs(s["total"]["reconciliation_error"]) < 1e-5
