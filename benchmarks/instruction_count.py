"""Instructions executed by the full backtest and by the bare engine, counted by valgrind's callgrind: a figure that does
not move with the machine's load, for A/B comparisons of the throughput work (wall-clock timings here vary by up to
±30% between identical runs; see README, Benchmark).

    .venv/bin/python benchmarks/instruction_count.py [--config config/basisbot.toml] [--start 2023-01-01] [--end 2023-01-15]
                                                     [--span all|run]

Each side (the bare engine with an idle strategy, as in backtest_throughput.py, then the full carry strategy) runs in
its own process under callgrind with instrumentation off while the data is loaded; it is switched on for building the
engine, running it and collecting the results (`--span all`, the default), or only for what backtest_throughput.py
times (`--span run`: `engine.run`, and the recorder's finish on the full side), and off again before the process
exits. Prints the instructions of each side and their ratio (bare / full: the instruction-count counterpart of the
throughput ratio). Needs valgrind; the default two weeks take about a minute a side.

Repeats agree within 0.2% over two weeks (over three months one side's count moved by up to 9% between runs). To
compare two versions, run both from the same worktree with compiled bytecode, on PYTHONPATH, one after the other: the
import path alone moved the bare count by 4%, and two worktrees of the same commit counted the same bare run 8% apart.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class _TimedSpan:
    """Stands in for `time` in the two modules whose clock reads bound what backtest_throughput.py times (`bare_run`,
    `run_prepared`): the first read asks the parent to switch instrumentation on, the second to switch it off."""

    def __init__(self, events: int):
        self._events, self._reads = events, 0

    def perf_counter(self) -> float:
        self._reads += 1
        print(f"READY {self._events}" if self._reads == 1 else "DONE", flush=True)
        sys.stdin.readline()
        return time.perf_counter()

    def __getattr__(self, name):
        return getattr(time, name)


def _child(side: str, config: str, start: str, end: str, span: str) -> None:
    sys.path.insert(0, str(HERE))
    import backtest_throughput

    import basisbot.backtest.run as run_module
    from basisbot.config.loading import load_settings

    p = run_module.prepare(load_settings(config), start=start, end=end)
    # the collector starts from nothing in both sides (where the data load left its generation counters would decide
    # when the next full collection over the loaded data falls)
    gc.collect()
    if span == "run":
        backtest_throughput.time = run_module.time = _TimedSpan(len(p.events))
        if side == "bare":
            backtest_throughput.bare_run(p)
        else:
            run_module.run_prepared(p, full_paths=True)  # the same events as the bare side
        return
    print("READY", len(p.events), flush=True)
    sys.stdin.readline()  # the parent has switched instrumentation on
    run = (backtest_throughput.bare_run(p) if side == "bare"
           else run_module.run_prepared(p, full_paths=True).run_seconds)
    print(f"DONE {run:.2f}", flush=True)
    sys.stdin.readline()  # ... and off


def _count(side: str, config: str, start: str, end: str, span: str, out: Path) -> tuple[int, int]:
    """(instructions, events) of one side."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           sys.executable, __file__, "--child", side, "--config", config, "--start", start, "--end", end,
           "--span", span]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    events = 0
    for line in proc.stdout:
        if line.startswith("READY"):
            events = int(line.split()[1])
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
            proc.stdin.write("go\n")
            proc.stdin.flush()
        elif line.startswith("DONE"):
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
            proc.stdin.write("bye\n")
            proc.stdin.flush()
    if proc.wait() != 0:
        raise SystemExit(f"{side}: the backtest under valgrind exited with status {proc.returncode}")
    totals = re.findall(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if not totals:
        raise SystemExit(f"{side}: no instruction total in {out}")
    return int(totals[-1]), events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config/basisbot.toml")
    ap.add_argument("--start", default="2023-01-01")
    ap.add_argument("--end", default="2023-01-15")
    ap.add_argument("--span", choices=["all", "run"], default="all",
                    help="all: engine build + run + results; run: what backtest_throughput.py times")
    ap.add_argument("--child", choices=["bare", "full"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.config, a.start, a.end, a.span)
        return
    missing = [t for t in ("valgrind", "callgrind_control") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"needs {' and '.join(missing)} (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        bare, events = _count("bare", a.config, a.start, a.end, a.span, Path(tmp) / "bare.out")
        full, _ = _count("full", a.config, a.start, a.end, a.span, Path(tmp) / "full.out")
    what = "engine build + run + results" if a.span == "all" else "the span backtest_throughput.py times"
    print(f"events: {events:,} ({a.start} → {a.end}); instructions (callgrind, {what})")
    print(f"bare engine + idle strategy: {bare:>16,}")
    print(f"full carry strategy:         {full:>16,}")
    print(f"ratio bare/full:             {bare / full:16.3f}   (full's overhead {100 * (full / bare - 1):.1f}%)")


if __name__ == "__main__":
    main()
