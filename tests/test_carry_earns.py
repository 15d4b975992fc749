"""Carry that earns: on the bundled 2022-2023 data, four symbols at 3x isolated with the guard
on and 10k each, with only the contract keys set so the defaults decide, the default rules earn at least what
always-in earns in the same engine, and no symbol loses more than 1% of its notional."""

from __future__ import annotations

from pathlib import Path

import pytest

from basisbot.cli import main
from tests.invariants import assert_backtest_invariants

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "AVAXUSDT")
NOTIONAL = 10_000.0


def config(extra: str = "") -> str:
    text = f'[backtest]\ndata = "{DATA}"\nstart = "2022-01-01"\nend = "2024-01-01"\n'
    for s in SYMBOLS:
        text += (f"[symbols.{s}]\nnotional_usdt = {NOTIONAL}\nleverage = 3\nmargin_mode = \"isolated\"\n{extra}"
                 f"[symbols.{s}.guard]\nenabled = true\n")
    return text


def run(tmp: Path, name: str, extra: str = "") -> dict:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(config(extra))
    out = tmp / name
    assert main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    return assert_backtest_invariants(out)


@pytest.mark.slow
def test_default_rules_earn_at_least_always_in(tmp_path):
    rules = run(tmp_path, "defaults")
    always = run(tmp_path, "always_in", "entry_apr = -1000\nexit_apr = -2000\n")
    print({s: (rules["symbols"][s]["net_pnl"], always["symbols"][s]["net_pnl"]) for s in SYMBOLS},
          rules["total"]["net_pnl"], always["total"]["net_pnl"])
    assert rules["total"]["net_pnl"] >= always["total"]["net_pnl"]
    for s in SYMBOLS:
        assert rules["symbols"][s]["net_pnl"] >= -0.01 * NOTIONAL, (s, rules["symbols"][s]["net_pnl"])
