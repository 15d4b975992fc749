"""The points of a sweep: each with its validated settings, data folder, window and a stable id (its folder name).

The id is a hash of everything that decides the backtest (the effective settings, the data folder, the window, the
symbols), so a resumed sweep skips exactly the points whose results are already in the output folder, and a point
whose config changed in between runs again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from basisbot.backtest.run import BacktestInputError, data_folder, resolve_data_dir
from basisbot.config.settings import SECRET_FIELDS, Settings
from basisbot.sweep.grid import VENUE_KEY, apply_point


@dataclass(frozen=True)
class RunScope:
    """What the command line fixes for every point (as `basisbot backtest` takes it)."""

    config_path: Path | None
    data_dir: Path | None = None
    start: str | None = None
    end: str | None = None
    symbols: tuple[str, ...] | None = None

    def with_window(self, start: str | None, end: str | None) -> RunScope:
        return RunScope(self.config_path, self.data_dir, start, end, self.symbols)


@dataclass
class PlannedPoint:
    index: int
    values: dict[str, Any]  # grid keys as written -> value
    settings: Settings
    data_path: Path  # resolved, absolute
    start: str | None  # effective window (command line, else the config), YYYY-MM-DD or None (whole data)
    end: str | None
    symbols: tuple[str, ...]  # the symbols this backtest runs
    point_id: str
    explicit_symbols: bool = False  # --symbols given (passed on to prepare) or the config's enabled ones
    label: str = field(default="")

    @property
    def folder_name(self) -> str:
        return self.point_id


def _day(value) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def point_id(settings: Settings, data_path: Path, start, end, symbols) -> str:
    dumped = settings.model_dump(mode="json", exclude=set(SECRET_FIELDS))
    blob = json.dumps({"settings": dumped, "data": str(data_path), "start": start, "end": end,
                       "symbols": list(symbols)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def plan_point(base: Settings, values: dict[str, Any], index: int, scope: RunScope) -> PlannedPoint:
    """Apply and validate (raises grid.PointErrors), resolve the data folder (raises BacktestInputError)."""
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "base config"
    settings = apply_point(base, values, f"point {index + 1} ({shown})")
    bt = settings.backtest
    if VENUE_KEY in values and "backtest.data" not in values and (scope.data_dir or "data" in base.backtest.model_fields_set):
        fixed = f"--data {scope.data_dir}" if scope.data_dir else f"backtest.data = {str(base.backtest.data)!r}"
        raise BacktestInputError(
            f"{VENUE_KEY} is a grid key but the data folder is fixed ({fixed}): one folder holds one venue's data. "
            f"Leave backtest.data unset and drop --data (each point then reads its venue's bundled data, "
            f"backtests/data/<exchange>), or make backtest.data a grid key too")
    data_path = resolve_data_dir(Path(scope.data_dir) if scope.data_dir else data_folder(settings),
                                 scope.config_path).resolve()
    start = _day(scope.start) or _day(bt.start)
    end = _day(scope.end) or _day(bt.end)
    symbols = tuple(scope.symbols) if scope.symbols else tuple(settings.enabled_symbols())
    pid = point_id(settings, data_path, start, end, symbols)
    return PlannedPoint(index, dict(values), settings, data_path, start, end, symbols, pid,
                        explicit_symbols=bool(scope.symbols), label=shown)
