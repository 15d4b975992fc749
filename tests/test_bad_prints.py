"""Data quality as a rule: one spot close (or one perp close) moved by 1.5% for one hour is flagged and changes no
decision (same actions at the same times as on the clean data); the flag is reported in the run's data notes."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from basisbot.cli import main
from basisbot.core.data_quality import PrintFilter
from tests.invariants import assert_backtest_invariants

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"
BAD_HOUR = pd.Timestamp("2022-05-20 16:00")  # bar open time; no decision of the clean run falls on it

CONFIG = """
[backtest]
data = "{data}"
start = "2022-05-01"
end = "2022-07-01"
[symbols.ETHUSDT]
notional_usdt = 10000
leverage = 3
margin_mode = "isolated"
"""


def copy_with_bad_print(tmp: Path, column: str, factor: float) -> Path:
    out = tmp / f"data_{column}"
    out.mkdir()
    for f in DATA.iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
    path = out / "ETHUSDT_1h_2022-2023.parquet"
    df = pd.read_parquet(path)
    df.loc[BAD_HOUR, column] *= factor
    hi, lo = column.replace("close", "high"), column.replace("close", "low")
    df.loc[BAD_HOUR, hi] = max(df.loc[BAD_HOUR, hi], df.loc[BAD_HOUR, column])
    df.loc[BAD_HOUR, lo] = min(df.loc[BAD_HOUR, lo], df.loc[BAD_HOUR, column])
    df.to_parquet(path)
    return out


def run(tmp: Path, name: str, data: Path) -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(CONFIG.format(data=data))
    out = tmp / name
    assert main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert_backtest_invariants(out)
    return out


def decisions(out: Path) -> list[tuple[str, str]]:
    with (out / "decisions.csv").open() as fh:
        return [(r["ts"], r["action"]) for r in csv.DictReader(fh)]


@pytest.mark.parametrize("column,factor", [("close_spot_binance", 1.015), ("close_perp_binance", 0.985)])
def test_one_bad_print_changes_no_decision(tmp_path, column, factor):
    clean = run(tmp_path, "clean", DATA)
    dirty = run(tmp_path, "dirty", copy_with_bad_print(tmp_path, column, factor))
    assert decisions(clean), "the window must hold decisions to compare"
    assert decisions(dirty) == decisions(clean)
    notes = json.loads((dirty / "summary.json").read_text())["data_notes"]
    assert any("2022-05-20 17:00" in n and "flagged" in n for n in notes), notes


def test_filter_flags_a_spike_but_follows_a_real_move():
    f = PrintFilter("spot")
    mark = 100.0
    for k in range(24):
        assert f.check(k, mark * 1.0003, mark) == (None, False)
    flag, _ = f.check(24, mark * 1.015, mark)  # one print 1.5% off the mark: suspect
    assert flag is not None and "basis" in flag.reason
    assert f.check(25, mark * 1.0003, mark) == (None, False)  # back in line: it was a bad print
    # a real dislocation: two prints in a row on the same side are accepted, the second confirms the first
    assert f.check(26, mark * 1.02, mark)[0] is not None
    assert f.check(27, mark * 1.021, mark) == (None, True)
    # frozen: the same print while the mark moves
    g = PrintFilter("perp", frozen_after=3)
    out = [g.check(k, 50.0, 50.0 + k * 0.01)[0] for k in range(6)]
    assert out[:3] == [None, None, None] and out[3] is not None and "frozen" in out[3].reason
