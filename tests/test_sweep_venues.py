"""`exchange.name` as a sweep grid key: each point reads its venue's bundled data when the config leaves
`backtest.data` at its default, with the venue's default fees unless the config set its own; a fixed data folder
with the venue in the grid is refused unless `backtest.data` is a grid key too. A two-point sweep across Binance
and OKX gives, per point, exactly the single backtest of that venue."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from basisbot.backtest.run import BacktestInputError
from basisbot.cli import main
from basisbot.config.settings import load_settings
from basisbot.sweep.plan import RunScope, plan_point

REPO = Path(__file__).resolve().parents[1]

CONFIG = """
[backtest]
{data}start = 2023-11-01
end = 2023-12-01
[symbols.SOLUSDT]
notional_usdt = 10000
leverage = 2
entry_apr = -1000
exit_apr = -2000
[symbols.SOLUSDT.guard]
enabled = false
"""


def base(tmp_path: Path, data: str = "", extra: str = ""):
    cfg = tmp_path / "base.toml"
    cfg.write_text(CONFIG.format(data=data) + extra)
    return load_settings(cfg, env_file=None), cfg


def test_data_and_fees_follow_the_venue_point(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    settings, cfg = base(tmp_path)
    scope = RunScope(cfg)
    binance = plan_point(settings, {"exchange.name": "binance"}, 0, scope)
    okx = plan_point(settings, {"exchange.name": "okx"}, 1, scope)
    assert binance.data_path == (REPO / "backtests" / "data" / "binance").resolve()
    assert okx.data_path == (REPO / "backtests" / "data" / "okx").resolve()
    assert okx.settings.venue.name == "okx"
    assert okx.settings.fees.spot_maker == 0.0008 and binance.settings.fees.spot_maker == 0.001
    assert okx.point_id != binance.point_id
    # fees the config sets stay as set on every venue
    settings, cfg = base(tmp_path, extra="[fees]\nspot_maker = 0.0005\n")
    okx = plan_point(settings, {"exchange.name": "okx"}, 0, RunScope(cfg))
    assert okx.settings.fees.spot_maker == 0.0005 and okx.settings.fees.spot_taker == 0.001


def test_fixed_data_folder_with_the_venue_in_the_grid_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    settings, cfg = base(tmp_path, data='data = "backtests/data/binance"\n')
    with pytest.raises(BacktestInputError) as e:
        plan_point(settings, {"exchange.name": "okx"}, 0, RunScope(cfg))
    assert "exchange.name" in str(e.value) and "backtest.data" in str(e.value)
    settings, cfg = base(tmp_path)
    with pytest.raises(BacktestInputError) as e:
        plan_point(settings, {"exchange.name": "okx"}, 0, RunScope(cfg, data_dir=REPO / "backtests/data/binance"))
    assert "--data" in str(e.value)
    # both as grid keys: the point says which folder
    point = plan_point(settings, {"exchange.name": "okx", "backtest.data": str(REPO / "backtests/data/okx")}, 0,
                       RunScope(cfg))
    assert point.data_path == (REPO / "backtests" / "data" / "okx").resolve()


def test_sweep_across_venues_equals_single_backtests(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    _, cfg = base(tmp_path)
    grid = tmp_path / "grid.toml"
    grid.write_text('[grid]\n"exchange.name" = ["binance", "okx"]\n')
    out = tmp_path / "sweep"
    env = str(tmp_path / "none.env")
    assert main(["sweep", "--config", str(cfg), "--env-file", env, "--grid", str(grid), "--out", str(out),
                 "--workers", "2", "--quiet"]) == 0
    with (out / "results.csv").open() as fh:
        rows = {r["exchange.name"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"binance", "okx"}
    for venue in ("binance", "okx"):
        single_cfg = tmp_path / f"{venue}.toml"
        single_cfg.write_text(f'[exchange]\nname = "{venue}"\n' + CONFIG.format(data=""))
        single = tmp_path / f"single_{venue}"
        assert main(["backtest", "--config", str(single_cfg), "--env-file", env, "--out", str(single),
                     "--quiet"]) == 0
        summary = json.loads((single / "summary.json").read_text())
        folder = out / rows[venue]["folder"]  # relative to the sweep's folder (an absolute one stays as is)
        point = json.loads((folder / "summary.json").read_text())
        assert point["symbols"] == summary["symbols"] and point["total"] == summary["total"]
        assert (single / "funding.csv").read_bytes() == (folder / "funding.csv").read_bytes()
    assert rows["binance"]["total.funding_pnl"] != rows["okx"]["total.funding_pnl"]
