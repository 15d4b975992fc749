"""Parameter sweeps, searches and walk-forward over full backtests, run as Ray tasks (one fresh process per point).

- `grid`: the `[grid]` TOML file (lists or ranges per dotted config path) and applying a point onto the settings,
  re-validated like any config.
- `plan`: the points of a run, each with its settings, window, data and folder id.
- `point`: one point's backtest inside a worker (the `basisbot backtest` code path, data served from the object store).
- `runner`: Ray (embedded on loopback, or an existing cluster), shared data, resume, progress.
- `results` / `page`: `results.csv`, `results.parquet`, `sweep.html`.
- `search`: Optuna over ranges. `walkforward`: best on a training window, judged on a test window.
- `command`: `basisbot sweep`.
"""
