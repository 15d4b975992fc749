"""Optuna search over ranges and walk-forward (best points of a training window judged on a test window, next to
always-in), on an embedded Ray over the bundled data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from basisbot.cli import main

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"

CONFIG = """
[backtest]
data = "{data}"
[symbols.BTCUSDT]
notional_usdt = 20000
leverage = 3
entry_apr = {entry}
exit_apr = {exit}
min_hold_intervals = 90
"""
GRID = '[grid]\n"symbols.*.entry_apr" = {low = 0.0, high = 0.3}\n"symbols.*.leverage" = [2, 4]\n'
TRAIN, TEST = "2023-10-01..2023-11-01", "2023-11-01..2023-12-01"


def read_rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_walkforward_with_an_optuna_search(tmp_path, monkeypatch):
    cfg = tmp_path / "base.toml"
    cfg.write_text(CONFIG.format(data=DATA, entry=0.1, exit=0.0))
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = tmp_path / "wf"
    argv = ["sweep", "--config", str(cfg), "--env-file", str(tmp_path / "none.env"), "--grid", str(grid),
            "--out", str(out), "--search", "optuna", "--trials", "3", "--workers", "2", "--train", TRAIN,
            "--test", TEST, "--quiet"]
    assert main(argv) == 0

    # the search: three trials in range, same results columns as a grid (plus the trial number)
    train = read_rows(out / "train" / "results.csv")
    assert [r["trial"] for r in train] == ["0", "1", "2"] and all(r["status"] == "ok" for r in train)
    for r in train:
        assert 0.0 <= float(r["symbols.*.entry_apr"]) <= 0.3 and r["symbols.*.leverage"] in ("2", "4")
        summary = json.loads((out / "train" / r["folder"] / "summary.json").read_text())
        assert summary["period"]["start"].startswith("2023-10-01") and float(r["total.net_pnl"]) == summary["total"]["net_pnl"]
    told = json.loads((out / "train" / "trials.json").read_text())
    assert [t["value"] for t in told] == [float(r["total.net_pnl"]) for r in train]

    # walk-forward: the training points ranked by the objective, then always-in, all on the test window
    wf = read_rows(out / "walkforward.csv")
    assert [r["rank"] for r in wf] == ["1", "2", "3", "always-in"]
    train_obj = [float(r["train.total.net_pnl"]) for r in wf[:3]]
    assert train_obj == sorted((float(r["total.net_pnl"]) for r in train), reverse=True)
    test = {r["point_id"]: r for r in read_rows(out / "test" / "results.csv")}
    for r in wf:
        row = test[r["test.folder"].rsplit("/", 1)[1]]
        assert r["test.net_pnl"] == row["total.net_pnl"] and r["test.status"] == "ok"
        summary = json.loads((out / r["test.folder"] / "summary.json").read_text())
        assert summary["period"]["start"].startswith("2023-11-01")
    # always-in on the test window is the plain always-in backtest of that window
    single_cfg = tmp_path / "always_in.toml"
    single_cfg.write_text(CONFIG.format(data=DATA, entry=-1000, exit=-2000))
    single = tmp_path / "always_in"
    assert main(["backtest", "--config", str(single_cfg), "--env-file", str(tmp_path / "none.env"), "--out",
                 str(single), "--start", "2023-11-01", "--end", "2023-12-01", "--quiet"]) == 0
    expected = json.loads((single / "summary.json").read_text())["total"]
    assert float(wf[-1]["test.net_pnl"]) == expected["net_pnl"]
    assert float(wf[-1]["test.funding_pnl"]) == expected["funding_pnl"] and expected["entries"] == 1
    page = (out / "walkforward.html").read_text()
    assert "always-in" in page and "Out of sample" in page

    # resumed: every trial and test run is done, nothing runs again
    monkeypatch.setattr("basisbot.sweep.runner.RayPool.start", lambda self: pytest.fail("Ray started"))
    assert main(argv) == 0
    assert read_rows(out / "walkforward.csv") == wf
    assert len(json.loads((out / "train" / "trials.json").read_text())) == 3
