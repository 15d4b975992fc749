"""Walk-forward: run the grid (or the search) on a training window, rank its points by the objective, and run the
best five on the test window next to always-in (every symbol entered at once and held: entry_apr = -1000,
exit_apr = -2000) on the same window. Out of sample is what the test columns show.

Output: `DIR/train/` and `DIR/test/` (each a sweep folder: results.csv/.parquet, sweep.html, points/),
`DIR/walkforward.csv` / `.json` / `.html`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from basisbot.config.loading import ConfigError
from basisbot.config.schema import Settings
from basisbot.sweep.grid import Grid
from basisbot.sweep.page import esc, page, table_html, write_sweep_page
from basisbot.sweep.plan import RunScope, plan_point
from basisbot.sweep.results import METRICS, write_table
from basisbot.sweep.runner import RayPool, run_points

TOP = 5
ALWAYS_IN = {"symbols.*.entry_apr": -1000, "symbols.*.exit_apr": -2000}


@dataclass(frozen=True)
class Window:
    start: str
    end: str

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


def parse_window(text: str, flag: str) -> Window:
    start, sep, end = (text or "").partition("..")
    try:
        a, b = pd.Timestamp(start.strip()), pd.Timestamp(end.strip())
    except (ValueError, TypeError):
        a = b = None
    if not sep or a is None or b is None or pd.isna(a) or pd.isna(b):
        raise ConfigError(flag, [f"{flag} {text!r}: give START..END as days, e.g. 2022-01-01..2023-01-01 "
                                 "(END exclusive)"])
    if b <= a:
        raise ConfigError(flag, [f"{flag} {text!r}: END must be after START"])
    return Window(a.date().isoformat(), b.date().isoformat())


def rank(rows: list[dict], objective: str, direction: str) -> list[dict]:
    def value(r):
        v = r.get(objective)
        return None if r.get("status") != "ok" or v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    scored = [r for r in rows if value(r) is not None]
    return sorted(scored, key=value, reverse=direction == "maximize")


def run_walkforward(base: Settings, grid: Grid, scope: RunScope, out: Path, pool: RayPool, *, train: Window,
                    test: Window, objective: str, direction: str, run_train, progress: bool = True) -> pd.DataFrame:
    """`run_train(scope, folder)` runs the grid or the search on the training window and returns its rows."""
    train_rows = run_train(scope.with_window(train.start, train.end), out / "train")
    ranked = rank(train_rows, objective, direction)[:TOP]
    if not ranked:
        raise RuntimeError(f"no training point produced {objective}: see {out / 'train' / 'results.csv'}")
    test_scope = scope.with_window(test.start, test.end)
    points = [plan_point(base, {k: r[k] for k in grid.keys}, i, test_scope) for i, r in enumerate(ranked)]
    points.append(plan_point(base, dict(ALWAYS_IN), len(points), test_scope))
    test_rows = run_points(points, out / "test", pool, label="test", progress=progress)
    test_keys = list(grid.keys) + [k for k in ALWAYS_IN if k not in grid.keys]
    test_frame = write_table(out / "test", test_keys, test_rows)
    write_sweep_page(out / "test", test_frame, test_keys, title=f"basisbot walk-forward test runs: {out / 'test'}",
                     subtitle=f"best {len(ranked)} training points and always-in on {test}", heatmap=False)

    table = []
    for i, (tr, te) in enumerate(zip(ranked + [None], test_rows)):
        row = {"rank": str(i + 1) if tr is not None else "always-in"}
        for k in grid.keys:
            row[k] = tr[k] if tr is not None else None
        row[f"train.{objective}"] = tr.get(objective) if tr is not None else None
        if objective != "total.net_pnl":
            row["train.total.net_pnl"] = tr.get("total.net_pnl") if tr is not None else None
        for m in METRICS:
            row[f"test.{m}"] = te.get(f"total.{m}")
        if objective not in (f"total.{m}" for m in METRICS):
            row[f"test.{objective}"] = te.get(objective)
        row["test.status"] = te["status"]
        row["test.error"] = te.get("error", "")
        row["train.folder"] = f"train/{tr['folder']}" if tr is not None else ""
        row["test.folder"] = f"test/{te['folder']}"
        table.append(row)
    frame = pd.DataFrame(table, dtype=object)  # key columns keep their values (no NaN-forced floats)
    frame.to_csv(out / "walkforward.csv", index=False)
    (out / "walkforward.json").write_text(json.dumps({
        "train": str(train), "test": str(test), "objective": objective, "direction": direction,
        "rows": json.loads(frame.to_json(orient="records"))}, indent=2) + "\n")
    _write_page(out, frame, list(grid.keys), train, test, objective)
    return frame


def _write_page(out: Path, frame: pd.DataFrame, keys: list[str], train: Window, test: Window, objective: str) -> None:
    shown = frame.rename(columns={"test.folder": "folder"}).drop(columns=["train.folder"])
    sections = [("", f"<p>Best {TOP} points of the training window {esc(train)} by {esc(objective)}, run on the "
                     f"test window {esc(test)}, next to always-in on the test window. "
                     '<a href="train/sweep.html">training sweep</a> · <a href="test/sweep.html">test runs</a></p>'),
                ("Out of sample", table_html(shown, keys + ["rank"]))]
    (out / "walkforward.html").write_text(page("basisbot walk-forward", f"train {train}, test {test}", sections),
                                          encoding="utf-8")
