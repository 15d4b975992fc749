"""Sweep throughput: points per minute with 1 and 2 workers on an embedded Ray, a worker process per point (before:
`RayPool(fresh_workers=True)`) against workers that run point after point (after: the default), in one run; and where
a point's time goes.

    .venv/bin/python benchmarks/sweep_throughput.py [--points 6] [--symbol BTCUSDT] [--start 2023-01-01] [--end 2024-01-01]
                                                    [--workers 1,2] [--modes fresh,reused]

Prints: the single backtest's wall time (a fresh `basisbot backtest --quiet` process: start, imports, data, engine,
results and report) and its events and engine time; Ray's start-up (once per command); for each mode and worker count
the sweep's wall time after start-up, points per minute, seconds per point, the worker processes used, and the median
of each phase of a point as its worker measured it (`basisbot.sweep.point.run_point`: import, prepare, backtest and
within it the engine's run, results, report; the rest of a point's wall time is Ray: process start, object store,
scheduling)."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIG = """
[backtest]
data = "{data}"
start = {start}
end = {end}
[symbols.{symbol}]
notional_usdt = 20000
leverage = {leverage}
entry_apr = {entry}
exit_apr = 0.0
min_hold_intervals = 90
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=6)
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--start", default="2023-01-01")
    ap.add_argument("--end", default="2024-01-01")
    ap.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2")
    ap.add_argument("--modes", default="fresh,reused", help="fresh (a process per point) and/or reused workers")
    args = ap.parse_args()

    from basisbot.config.loading import load_settings
    from basisbot.sweep.plan import RunScope, plan_point
    from basisbot.sweep.runner import RayPool, run_points

    tmp = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    try:
        data = REPO / "backtests" / "data" / "binance"
        cfg = tmp / "base.toml"
        cfg.write_text(CONFIG.format(data=data, start=args.start, end=args.end, symbol=args.symbol, leverage=3,
                                     entry=0.05))
        settings = load_settings(cfg, env_file=None)
        values = [{"symbols.*.entry_apr": round(0.01 * (i + 1), 4), "symbols.*.leverage": 2 + i % 2}
                  for i in range(args.points)]
        scope = RunScope(cfg)
        points = [plan_point(settings, v, i, scope) for i, v in enumerate(values)]

        single_cfg = tmp / "single.toml"
        single_cfg.write_text(CONFIG.format(data=data, start=args.start, end=args.end, symbol=args.symbol,
                                            leverage=values[0]["symbols.*.leverage"],
                                            entry=values[0]["symbols.*.entry_apr"]))
        t = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "basisbot"), "backtest", "--config", str(single_cfg),
                        "--env-file", str(tmp / "none.env"), "--out", str(tmp / "single"), "--quiet"], check=True)
        single = time.perf_counter() - t
        run = json.loads((tmp / "single" / "run.json").read_text())
        print(f"{args.symbol} {args.start}..{args.end}, {args.points} points")
        print(f"single `basisbot backtest` (fresh process): {single:.1f} s wall; {run['events']:,} events, "
              f"engine {run['seconds']:.2f} s")

        for mode in args.modes.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                out = tmp / f"{mode}{workers}"
                with RayPool(workers=workers, fresh_workers=mode == "fresh") as pool:
                    t = time.perf_counter()
                    pool.start()
                    started = time.perf_counter() - t
                    t = time.perf_counter()
                    rows = run_points(points, out, pool, progress=False)
                    wall = time.perf_counter() - t
                assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
                recs = [json.loads(p.read_text()) for p in out.glob("points/*/point.json")]
                phases = {k: statistics.median(r["phases"][k] for r in recs) for k in recs[0]["phases"]}
                per_point = wall / len(points)
                print(f"{mode:>6} workers, {workers}: Ray start {started:.1f} s, {len(points)} points in {wall:.1f} s -> "
                      f"{60 / per_point:.1f} points/min ({per_point:.1f} s/point wall; "
                      f"{len({r['worker_pid'] for r in recs})} worker processes; {recs[0]['events']:,} events)")
                print("        median phase seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
                      + f"; import in {sum(r['phases']['import'] > 0.5 for r in recs)} of {len(recs)} points")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
