"""A sweep worker runs point after point in one process (`basisbot.sweep.runner`: Ray's max_calls=0), reusing the
event stream it built for the first (`prepare(feed_cache=...)`). Eight points of real data (entries, exits, the guard
acting, isolated liquidations, cross margin, leverage from 2 to 10) run one after the other in one process give byte
for byte the results (every CSV and summary.json) of the same points each in a fresh process."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from basisbot.config.loading import load_settings
from basisbot.sweep.plan import RunScope, plan_point

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"

CONFIG = f"""
[backtest]
data = "{DATA}"
start = 2023-01-01
end = 2023-02-01
[symbols.BTCUSDT]
notional_usdt = 20000
leverage = 3
[symbols.SOLUSDT]
notional_usdt = 10000
leverage = 3
"""
# leverage 10 without the guard: SOL's January 2023 rally liquidates the short perp inside an hour
POINTS = [
    {},
    {"symbols.*.entry_apr": 0.30, "symbols.*.leverage": 2},
    {"symbols.*.leverage": 10, "symbols.*.guard.enabled": False},
    {"symbols.*.leverage": 10},
    {"symbols.*.leverage": 5, "symbols.*.margin_mode": "cross"},
    {"symbols.*.entry_apr": -1.0, "symbols.*.exit_apr": -2.0, "symbols.*.leverage": 8},
    {"symbols.*.leverage": 10, "symbols.*.guard.enabled": False},  # again, after other points in the process
    {},
]

RUNNER = """
import pickle, sys
from pathlib import Path
from basisbot.sweep import point
tasks = pickle.loads(Path(sys.argv[1]).read_bytes())
streams = []
for task, out in tasks:
    outcome = point.run_point(task, {})
    assert outcome["status"] == "ok", outcome.get("traceback")
    for name, blob in outcome["files"].items():
        (Path(out) / name).parent.mkdir(parents=True, exist_ok=True)
        (Path(out) / name).write_bytes(blob)
    streams.append(str(id(next(iter(point._FEEDS.values()))[1])))
Path(sys.argv[1]).with_suffix(".streams").write_text(" ".join(streams))
"""


def _run(tmp: Path, name: str, tasks: list) -> None:
    job = tmp / f"{name}.pickle"
    job.write_bytes(pickle.dumps(tasks))
    subprocess.run([sys.executable, "-c", RUNNER, str(job)], check=True, cwd=tmp)


def test_one_process_running_many_points_gives_what_fresh_processes_give(tmp_path):
    from basisbot.sweep.runner import task_of

    cfg = tmp_path / "base.toml"
    cfg.write_text(CONFIG)
    settings = load_settings(cfg, env_file=None)
    tasks = [task_of(plan_point(settings, v, i, RunScope(cfg))) for i, v in enumerate(POINTS)]
    _run(tmp_path, "reused", [(t, str(tmp_path / "reused" / str(i))) for i, t in enumerate(tasks)])
    for i, t in enumerate(tasks):
        _run(tmp_path, f"fresh{i}", [(t, str(tmp_path / "fresh" / str(i)))])
    # the points share the data and the instruments' ids: the process built the event stream once and reused it
    assert len(set((tmp_path / "reused.streams").read_text().split())) == 1
    liquidated = 0
    for i in range(len(tasks)):
        a, b = tmp_path / "reused" / str(i), tmp_path / "fresh" / str(i)
        names = sorted(p.name for p in a.iterdir() if p.suffix == ".csv" or p.name == "summary.json")
        assert "trades.csv" in names and "summary.json" in names
        for n in names:
            assert (a / n).read_bytes() == (b / n).read_bytes(), f"point {i} {POINTS[i]}: {n} differs"
        liquidated += len((a / "liquidations.csv").read_text().splitlines()) > 1
    assert liquidated >= 2  # the liquidation points did liquidate (their order ids are in trades.csv)
    # the points differ from each other: the grid changed the backtests
    assert len({(tmp_path / "reused" / str(i) / "trades.csv").read_bytes() for i in range(len(tasks))}) >= 4
