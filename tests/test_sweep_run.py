"""`basisbot sweep` on an embedded Ray (loopback, two worker processes running point after point) over the bundled data: a 4-point
grid's rows are exactly four single `basisbot backtest` runs of the same points; the data is loaded once and served to
the workers; a resumed sweep skips the points already done; a failing point is recorded and the others go on."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from basisbot.cli import main

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"

CONFIG = """
[backtest]
data = "{data}"
start = 2023-11-01
end = 2023-12-01
[symbols.BTCUSDT]
notional_usdt = 20000
leverage = {leverage}
entry_apr = {entry}
exit_apr = 0.0
min_hold_intervals = 90
"""
GRID = '[grid]\n"symbols.*.entry_apr" = [0.05, 0.30]\n"symbols.*.leverage" = [2, 5]\n'
POINTS = [(0.05, 2), (0.05, 5), (0.30, 2), (0.30, 5)]


def read_rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = tmp / "base.toml"
    cfg.write_text(CONFIG.format(data=DATA, leverage=3, entry=0.1))
    grid = tmp / "grid.toml"
    grid.write_text(GRID)
    out = tmp / "out"
    rc = main(["sweep", "--config", str(cfg), "--env-file", str(tmp / "none.env"), "--grid", str(grid),
               "--out", str(out), "--workers", "2", "--quiet"])
    assert rc == 0
    return tmp, cfg, grid, out


@pytest.fixture(scope="module")
def singles(swept):
    tmp = swept[0]
    outs = {}
    for entry, lev in POINTS:
        cfg = tmp / f"single_{entry}_{lev}.toml"
        cfg.write_text(CONFIG.format(data=DATA, leverage=lev, entry=entry))
        out = tmp / f"single_{entry}_{lev}"
        assert main(["backtest", "--config", str(cfg), "--env-file", str(tmp / "none.env"), "--out", str(out),
                     "--quiet"]) == 0
        outs[(entry, lev)] = out
    return outs


def test_grid_rows_equal_single_backtests(swept, singles):
    _, _, _, out = swept
    rows = read_rows(out / "results.csv")
    assert [(float(r["symbols.*.entry_apr"]), int(r["symbols.*.leverage"])) for r in rows] == POINTS
    assert list(rows[0])[:10] == ["symbols.*.entry_apr", "symbols.*.leverage", "total.net_pnl", "total.funding_pnl",
                                  "total.fees", "total.liquidations", "BTCUSDT.net_pnl", "BTCUSDT.funding_pnl",
                                  "BTCUSDT.fees", "BTCUSDT.liquidations"]
    for row in rows:
        single = singles[(float(row["symbols.*.entry_apr"]), int(row["symbols.*.leverage"]))]
        summary = json.loads((single / "summary.json").read_text())
        for m in ("net_pnl", "funding_pnl", "fees", "liquidations"):
            assert float(row[f"total.{m}"]) == summary["total"][m]
            assert float(row[f"BTCUSDT.{m}"]) == summary["symbols"]["BTCUSDT"][m]
        assert row["status"] == "ok" and row["error"] == ""
        # the point's own folder holds the same backtest output, byte for byte where no path or timing is written
        point = out / row["folder"]
        mine = json.loads((point / "summary.json").read_text())
        assert mine["symbols"] == summary["symbols"] and mine["total"] == summary["total"]
        for name in ("funding.csv", "trades.csv", "equity.csv", "guard.csv", "decisions.csv"):
            assert (point / name).read_bytes() == (single / name).read_bytes(), name
        assert (point / "report.html").stat().st_size > 10_000
        expected_unhedged = max((v["max_unhedged_s"] for v in summary["symbols"].values() if "max_unhedged_s" in v),
                                default=None)
        assert (row["max_unhedged_s"] == "") == (expected_unhedged is None)
    # the points differ from each other (the grid did change the backtests)
    assert len({r["total.net_pnl"] for r in rows}) >= 2 and any(float(r["total.funding_pnl"]) > 0 for r in rows)


def test_data_loaded_once_and_served_to_the_workers(swept):
    out = swept[3]
    recs = [json.loads(p.read_text()) for p in out.glob("points/*/point.json")]
    for rec in recs:
        assert rec["data_hits"] == 1 and rec["data_misses"] == 0  # the worker never read the data files
        assert rec["phases"]["run"] > 0 and rec["events"] > 0
    # two workers ran the four points: a worker process runs point after point
    assert len(recs) == 4 and len({r["worker_pid"] for r in recs}) <= 2


def test_parquet_and_page(swept):
    out = swept[3]
    frame = pd.read_parquet(out / "results.parquet")
    assert list(frame.columns) == list(pd.read_csv(out / "results.csv").columns) and len(frame) == 4
    assert frame["total.net_pnl"].dtype == float
    page = (out / "sweep.html").read_text()
    assert "<svg" in page and "Net PnL heatmap" in page and "sortable" in page and "http" not in page.replace(
        "http://www.w3.org/2000/svg", "")
    for folder in frame["folder"]:
        assert f'href="{folder}/report.html"' in page


@pytest.mark.slow
def test_resume_skips_done_points_and_a_failing_point_is_recorded(swept, tmp_path, monkeypatch):
    tmp, cfg, _, first = swept
    out = tmp_path / "out"
    shutil.copytree(first, out)
    gone = sorted(out.glob("points/*"))[0]
    shutil.rmtree(gone)
    kept = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("points/*/point.json")}
    empty = tmp_path / "no-data"
    empty.mkdir()
    # same four points (same ids: the data folder is the config's) plus four on a folder without data
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID + f'"backtest.data" = ["{DATA}", "{empty}"]\n')
    rc = main(["sweep", "--config", str(cfg), "--env-file", str(tmp / "none.env"), "--grid", str(grid),
               "--out", str(out), "--workers", "2", "--quiet"])
    assert rc == 1  # some point failed
    rows = read_rows(out / "results.csv")
    assert len(rows) == 8
    ok, failed = rows[::2], rows[1::2]  # backtest.data is the last key: it varies fastest
    assert all(r["status"] == "ok" for r in ok) and all(r["status"] == "failed" for r in failed)
    assert all(str(empty) in r["error"] for r in failed)
    assert json.loads((out / failed[0]["folder"] / "point.json").read_text())["status"] == "failed"
    # the done points were not run again; the deleted one was, with the same result
    for name, mtime in kept.items():
        assert (out / "points" / name / "point.json").stat().st_mtime_ns == mtime
    first_rows = {r["point_id"]: r for r in read_rows(first / "results.csv")}
    for r in ok:
        assert r["total.net_pnl"] == first_rows[r["point_id"]]["total.net_pnl"]
    assert (gone / "summary.json").exists()
    # the first grid again on this folder: every point is done, nothing runs (Ray is not even started)
    monkeypatch.setattr("basisbot.sweep.runner.RayPool.start", lambda self: pytest.fail("Ray started"))
    rc = main(["sweep", "--config", str(cfg), "--env-file", str(tmp / "none.env"), "--grid", str(swept[2]),
               "--out", str(out), "--workers", "2", "--quiet"])
    assert rc == 0

    def strip(rows):  # the point deleted above ran again: its own run time differs
        return [{k: v for k, v in r.items() if k != "run_seconds"} for r in rows]

    assert strip(read_rows(out / "results.csv")) == strip(read_rows(first / "results.csv"))
