"""Two versions of the code on the same backtest, side by side in one run: events, engine time and wall time.

    .venv/bin/python benchmarks/backtest_versions.py --before ../basisbot-old [--config config/basisbot.toml]
        [--repeat 3] [--symbols BTCUSDT --start 2023-01-01 --end 2024-01-01]

`--before` is another checkout of the repository (e.g. `git worktree add --detach ../basisbot-old <commit>`); its
`src/` goes first on PYTHONPATH of the "before" runs, so both versions run in this environment. Each run is a fresh
process (`basisbot backtest` without the report), the versions alternate (before, after, before, ...) so that load
from other processes falls on both alike, and the medians are printed with every run. Engine time is the backtest's
own `run_seconds` (the engine's replay and the recorder's rows), wall time the whole process (imports, data, feeds,
engine, results).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RUN = """
import json, sys
from basisbot.backtest.run import run_backtest
from basisbot.backtest.results import write_results
from basisbot.config.loading import load_settings
cfg, out, start, end, symbols = sys.argv[1:6]
cfg = __import__("pathlib").Path(cfg)
s = load_settings(cfg, env_file=None)
r = run_backtest(s, config_path=cfg, start=start or None, end=end or None,
                 symbols=symbols.split(",") if symbols else None)
write_results(r, __import__("pathlib").Path(out))
print(json.dumps({"events": r.events, "engine_s": r.run_seconds}))
"""


def one(src: Path, args, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src / "src"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUN, str(args.config), str(out), args.start or "", args.end or "",
                           args.symbols or ""], env=env, capture_output=True, text=True, cwd=src)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{src}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = wall
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, type=Path)
    ap.add_argument("--config", default="config/basisbot.toml", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--symbols")
    ap.add_argument("--start")
    ap.add_argument("--end")
    a = ap.parse_args()
    a.config = a.config.resolve()
    sides = {"before": a.before.resolve(), "after": REPO}
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeat):
            for name, src in sides.items():
                runs[name].append(one(src, a, Path(tmp) / f"{name}{i}"))
        same = all((Path(tmp) / "before0" / f).read_bytes() == (Path(tmp) / "after0" / f).read_bytes()
                   for f in os.listdir(Path(tmp) / "after0") if f.endswith(".csv") or f == "summary.json")
    for name, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("engine_s", "wall_s")}
        print(f"{name:6s} {sides[name]}: {rows[0]['events']:>9,} events, engine {med['engine_s']:.2f} s, "
              f"wall {med['wall_s']:.1f} s (median of {len(rows)}; runs: "
              + ", ".join(f"{r['engine_s']:.2f}/{r['wall_s']:.1f}" for r in rows) + ")")
    print("outputs (every CSV and summary.json): " + ("byte-identical" if same else "DIFFERENT"))


if __name__ == "__main__":
    main()
