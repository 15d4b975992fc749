"""`basisbot sweep` arguments (argparse only, so building the parser stays quick)."""

from __future__ import annotations

from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("--grid", type=Path, required=True, help="TOML with a [grid] table: dotted config paths -> lists "
                   "(or {low, high, log, step} ranges with --search optuna)")
    p.add_argument("--out", type=Path, required=True, help="results folder (results.csv/.parquet, sweep.html, points/)")
    p.add_argument("--data", type=Path, help="data folder: bundled layout or Binance public-dump layout")
    p.add_argument("--start", help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--end", help="end day (exclusive), YYYY-MM-DD (UTC)")
    p.add_argument("--symbols", help="comma-separated subset of the config's symbols")
    p.add_argument("--workers", type=int, help="most backtests at once (default: the CPUs of the local Ray / cluster)")
    p.add_argument("--address", help="join an existing Ray cluster at HOST:PORT instead of starting a local one")
    p.add_argument("--search", choices=("optuna",), help="search the ranges with Optuna instead of running a grid")
    p.add_argument("--trials", type=int, default=20, help="trials of the search (default 20)")
    p.add_argument("--objective", default="total.net_pnl",
                   help="results column to optimise and rank by (default total.net_pnl)")
    p.add_argument("--direction", choices=("maximize", "minimize"), default="maximize")
    p.add_argument("--seed", type=int, default=0, help="search sampler seed (default 0)")
    p.add_argument("--train", help="walk-forward training window START..END (END exclusive)")
    p.add_argument("--test", help="walk-forward test window START..END")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
