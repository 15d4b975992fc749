"""`basisbot sweep`: validate everything (config, grid, every point, data folders, objective), then run the points
on Ray and write the results. Exit status: 0 every point ran, 1 some point failed (recorded with its error) or Ray
could not be started, 2 bad config, grid or input (nothing was started)."""

from __future__ import annotations

import sys
from pathlib import Path

from basisbot.backtest.run import BacktestInputError
from basisbot.config.loading import ConfigError, load_settings
from basisbot.config.schema import Settings
from basisbot.data.market_data import DataError
from basisbot.sweep.grid import Grid, PointErrors, read_grid, validate_grid
from basisbot.sweep.page import write_sweep_page
from basisbot.sweep.plan import RunScope, plan_point
from basisbot.sweep.results import METRICS, write_table
from basisbot.sweep.runner import RayPool, SweepRuntimeError, run_points

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _objective_columns(settings: Settings, scope: RunScope) -> set[str]:
    symbols = scope.symbols or tuple(settings.symbols)
    cols = {f"total.{m}" for m in METRICS} | {f"{s}.{m}" for s in symbols for m in METRICS}
    return cols | {"max_unhedged_s"}


def _check_args(args, settings: Settings, grid: Grid, scope: RunScope) -> None:
    problems = []
    if args.workers is not None and args.workers < 1:
        problems.append(f"--workers {args.workers}: must be at least 1")
    if grid.has_ranges and not args.search:
        problems.append(f"{grid.path}: ranges ({{low, high, ...}}) need --search optuna; a grid takes lists")
    if args.search and args.trials < 1:
        problems.append(f"--trials {args.trials}: must be at least 1")
    allowed = _objective_columns(settings, scope)
    if args.objective not in allowed:
        problems.append(f"--objective {args.objective!r}: not a results column (allowed: {sorted(allowed)})")
    if bool(args.train) != bool(args.test):
        problems.append("walk-forward needs both --train START..END and --test START..END")
    if args.train and (args.start or args.end):
        problems.append("--start/--end and --train/--test exclude each other")
    if problems:
        raise ConfigError("basisbot sweep", problems)


def _print_top(frame, keys: list[str], objective: str, direction: str, out: Path, n: int = 5) -> None:
    ok = frame[frame["status"] == "ok"].sort_values(objective, ascending=direction == "minimize")
    failed = int((frame["status"] != "ok").sum())
    print(f"\n{len(frame)} points ({len(frame) - failed} ok, {failed} failed); best {min(n, len(ok))} by {objective}:")
    cols = keys + [c for c in dict.fromkeys([objective, "total.net_pnl", "total.funding_pnl", "total.fees",
                                             "total.liquidations"])]
    if len(ok):
        print(ok[cols].head(n).to_string(index=False))
    print(f"results: {out}/results.csv, results.parquet, sweep.html")


def sweep_main(args) -> int:
    settings = load_settings(args.config, env_file=args.env_file)
    grid = read_grid(args.grid)
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip()) if args.symbols else None
    scope = RunScope(args.config, args.data, args.start, args.end, symbols)
    _check_args(args, settings, grid, scope)
    grid_points = validate_grid(settings, grid)
    out = Path(args.out)
    progress = not args.quiet
    try:
        if args.train:
            from basisbot.sweep.walkforward import parse_window

            train, test = parse_window(args.train, "--train"), parse_window(args.test, "--test")
            # the data and every point are checked on both windows before anything runs
            for window in (train, test):
                _plan_all(settings, grid, grid_points, scope.with_window(window.start, window.end))
        else:
            _plan_all(settings, grid, grid_points, scope)
    except (BacktestInputError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    keys = list(grid.keys)
    try:
        with RayPool(workers=args.workers, address=args.address) as pool:
            def run(scope_: RunScope, folder: Path) -> list[dict]:
                if args.search:
                    from basisbot.sweep.search import run_search

                    rows = run_search(settings, grid, scope_, folder, pool, trials=args.trials,
                                      objective=args.objective, direction=args.direction, seed=args.seed,
                                      progress=progress, label=folder.name)
                    extra = ["trial"]
                else:
                    pts = _plan_all(settings, grid, grid_points, scope_)
                    rows = run_points(pts, folder, pool, label=folder.name, progress=progress)
                    extra = []
                frame = write_table(folder, keys, rows, extra)
                write_sweep_page(folder, frame, keys, title=f"basisbot sweep: {folder}",
                                 subtitle=_subtitle(args, scope_), heatmap=not args.search)
                if progress and not args.train:
                    _print_top(frame, keys, args.objective, args.direction, folder)
                return rows

            if args.train:
                from basisbot.sweep.walkforward import run_walkforward

                wf = run_walkforward(settings, grid, scope, out, pool, train=train, test=test,
                                     objective=args.objective, direction=args.direction, run_train=run,
                                     progress=progress)
                if progress:
                    import pandas as pd

                    with pd.option_context("display.width", 200, "display.max_columns", 30):
                        cols = ["rank", *keys, f"train.{args.objective}", "test.net_pnl", "test.funding_pnl",
                                "test.fees", "test.liquidations"]
                        print(f"\nwalk-forward: train {train}, test {test}, ranked by {args.objective}")
                        print(wf[list(dict.fromkeys(cols))].to_string(index=False))
                        print(f"results: {out}/walkforward.csv, walkforward.html, train/, test/")
                return EXIT_OK if (wf["test.status"] == "ok").all() else EXIT_FAILURE
            rows = run(scope, out)
    except SweepRuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK if all(r["status"] == "ok" for r in rows) else EXIT_FAILURE


def _plan_all(settings: Settings, grid: Grid, grid_points, scope: RunScope):
    if grid_points is None:  # a search: its points are drawn as it goes; check the data folder and window now
        return [plan_point(settings, {}, 0, scope)]
    try:
        return [plan_point(settings, values, i, scope) for i, values in enumerate(grid_points)]
    except PointErrors as e:  # validate_grid passed, so this is only reachable if the two disagree
        raise ConfigError(str(grid.path), e.lines) from None


def _subtitle(args, scope: RunScope) -> str:
    window = f"{scope.start or 'start of data'} .. {scope.end or 'end of data'}"
    mode = f"Optuna search, {args.trials} trials, {args.direction} {args.objective}" if args.search else "grid"
    return f"config {args.config}, grid {args.grid}, {mode}, window {window}"
