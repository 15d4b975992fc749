"""The sweep grid file and applying a point onto the settings.

A grid file is TOML with one `[grid]` table whose keys are dotted config paths:

    [grid]
    "symbols.*.entry_apr" = [0.02, 0.10]          # a list: every value is tried (grid), or a choice (search)
    "symbols.BTCUSDT.leverage" = [2, 3]
    "fees.perp_taker" = {low = 0.0002, high = 0.0006}           # a range: searches only (--search optuna)
    "symbols.*.min_hold_intervals" = {low = 1, high = 9, step = 2}
    "symbols.*.notional_usdt" = {low = 1000, high = 50000, log = true}

`symbols.*.KEY` applies to every symbol of the config, `symbols.SYM.KEY` to that one (it must be in the config).
A point is applied onto the loaded settings' values and re-validated through `basisbot.config.settings` exactly like a config
file (field bounds, cross-field rules, the venue's leverage brackets); problems are `ConfigError`s naming the grid
file, the key and the value.
"""

from __future__ import annotations

import copy
import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from basisbot.config.settings import ConfigError, Settings, _format_errors, _venue_checks

MAX_SHOWN = 12  # problems listed in one refusal


@dataclass(frozen=True)
class Range:
    """A search range: integers when low, high (and step) are integers, floats otherwise."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high)) and (
            self.step is None or (isinstance(self.step, int) and not isinstance(self.step, bool)))


@dataclass(frozen=True)
class Grid:
    path: Path
    keys: tuple[str, ...]  # as written in the file, in its order
    values: Mapping[str, tuple | Range]

    @property
    def has_ranges(self) -> bool:
        return any(isinstance(v, Range) for v in self.values.values())

    def size(self) -> int:
        return math.prod(len(v) for v in self.values.values() if not isinstance(v, Range))

    def points(self) -> list[dict[str, Any]]:
        """Every combination, the first key varying slowest (the order of the file)."""
        if self.has_ranges:
            raise ConfigError(str(self.path), ["ranges ({low, high, ...}) need --search optuna; a grid takes lists"])
        return [dict(zip(self.keys, combo)) for combo in itertools.product(*(self.values[k] for k in self.keys))]


def _range(path: str, key: str, spec: Mapping[str, Any]) -> tuple[Range | None, list[str]]:
    where = f"{path}: [grid] {key!r}"
    unknown = sorted(set(spec) - {"low", "high", "log", "step"})
    problems = [f"{where}: unknown range field(s) {unknown} (allowed: low, high, log, step)"] if unknown else []
    for name in ("low", "high"):
        if name not in spec:
            problems.append(f"{where}: range needs {name!r}")
        elif not isinstance(spec[name], (int, float)) or isinstance(spec[name], bool):
            problems.append(f"{where}: {name} = {spec[name]!r} is not a number")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        problems.append(f"{where}: log = {log!r} must be true or false")
    if step is not None and (not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0):
        problems.append(f"{where}: step = {step!r} must be a positive number")
    if problems:
        return None, problems
    low, high = spec["low"], spec["high"]
    if not low < high:
        problems.append(f"{where}: low ({low}) must be < high ({high})")
    if log and low <= 0:
        problems.append(f"{where}: a log range needs low > 0 (got {low})")
    if log and step is not None:
        problems.append(f"{where}: log and step cannot be combined")
    return (None if problems else Range(low, high, log, step)), problems


def read_grid(path: str | Path) -> Grid:
    """Parse the grid file's shape (lists, ranges). Values are checked against the config by `validate_grid`."""
    p = Path(path)
    src = str(p)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(src, [f"grid file not found: {p}"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(src, [f"cannot read the grid file: {e}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(src, [f"TOML syntax error: {e}"]) from None
    problems = [f"{src}: unknown table or key {k!r} (a grid file has one [grid] table)" for k in data if k != "grid"]
    table = data.get("grid")
    if not isinstance(table, dict) or not table:
        problems.append(f"{src}: no [grid] table with at least one key, e.g. \"symbols.*.entry_apr\" = [0.02, 0.10]")
        raise ConfigError(src, problems)
    values: dict[str, tuple | Range] = {}
    for key, v in table.items():
        if isinstance(v, dict) and not any(k in v for k in ("low", "high", "log", "step")):
            problems.append(f"{src}: [grid] {key!r} is a table: write the dotted path as one quoted key, "
                            f"e.g. \"{key}.{next(iter(v), 'field')}\" = [...]")
            continue
        if isinstance(v, dict):
            rng, errs = _range(src, key, v)
            problems += errs
            if rng is not None:
                values[key] = rng
        elif isinstance(v, list):
            if not v:
                problems.append(f"{src}: [grid] {key!r} is an empty list")
            elif len({repr(x) for x in v}) != len(v):
                problems.append(f"{src}: [grid] {key!r} lists a value twice: {v}")
            else:
                values[key] = tuple(v)
        else:
            problems.append(f"{src}: [grid] {key!r} = {v!r}: give a list of values, or a range {{low, high}} "
                            "for --search optuna")
        if not all(part for part in key.split(".")):
            problems.append(f"{src}: [grid] {key!r} is not a dotted config path like \"symbols.*.entry_apr\"")
    if problems:
        raise ConfigError(src, problems)
    return Grid(p, tuple(table), values)


# ---------------------------------------------------------------------------------------------------------------------
# applying a point


def _concrete_paths(data: Mapping[str, Any], key: str) -> list[tuple[str, ...]]:
    parts = tuple(key.split("."))
    if parts[0] != "symbols" or len(parts) < 3:
        if parts[0] == "symbols":
            raise ValueError("give symbols.*.KEY (every symbol) or symbols.SYM.KEY (one symbol)")
        return [parts]
    symbols = list(data.get("symbols") or {})
    if parts[1] == "*":
        if not symbols:
            raise ValueError("the config has no [symbols.*] table to apply it to")
        return [("symbols", s, *parts[2:]) for s in symbols]
    if parts[1] not in symbols:
        raise ValueError(f"symbol {parts[1]} is not in the config (configured: {symbols}); use symbols.*.KEY for all")
    return [parts]


def _assign(data: dict, path: tuple[str, ...], value: Any) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, dict):
            raise ValueError(f"{'.'.join(path[:i + 1])} is a value ({nxt!r}), not a table")
        node = nxt
    node[path[-1]] = copy.deepcopy(value)


@dataclass
class PointErrors(Exception):
    """Why a point is refused: formatted lines, plus the raw locations (for telling field errors from cross-field)."""

    lines: list[str]
    field_level: bool  # a problem with a key or a value on its own (unknown key, out of bounds), not a combination
    unknown_key: bool = False  # the key itself is wrong, whatever the value


def apply_point(base: Settings, point: Mapping[str, Any], label: str) -> Settings:
    """`base` with the point's values set, validated like a config (pydantic rules, then the venue checks).
    Raises PointErrors."""
    data = base.model_dump()
    paths: dict[tuple[str, ...], str] = {}
    for key, value in point.items():
        try:
            for path in _concrete_paths(data, key):
                _assign(data, path, value)
                paths[path] = key
        except ValueError as e:
            raise PointErrors([f"{label}: {e}"], True, True) from None
    _follow_venue(base, data, point)
    try:
        settings = Settings.model_validate(data)  # no sources: the loaded settings already hold file, .env and env
    except ValidationError as e:
        lines = _format_errors(e, label, {})
        field_level = unknown = False
        for err in e.errors(include_url=False):
            loc = tuple(str(x) for x in err["loc"])
            for path in paths:
                shared = loc[:len(path)] == path[:len(loc)]
                if shared and (len(loc) >= len(path) or err["type"] == "extra_forbidden"):
                    field_level = True
                    unknown = unknown or err["type"] == "extra_forbidden"
        raise PointErrors(lines, field_level, unknown) from None
    problems = _venue_checks(settings, label)
    if problems:
        raise PointErrors(problems, False)
    return settings


VENUE_KEY = "exchange.name"


def _follow_venue(base: Settings, data: dict, point: Mapping[str, Any]) -> None:
    """What follows the venue when a point changes `exchange.name`: a data folder the config left at its default
    (the bundled data of each venue, `basisbot.backtest.run.data_folder`) and fee rates left at the base venue's
    regular-user defaults (the new venue's defaults apply)."""
    if "data" not in base.backtest.model_fields_set and "backtest.data" not in point:
        data["backtest"].pop("data", None)  # unset: the run reads backtests/data/<exchange>
    name = data.get("exchange", {}).get("name")
    if VENUE_KEY not in point or name == base.exchange.name:
        return
    base_fees = base.venue.fees
    for k in ("spot_maker", "spot_taker", "perp_maker", "perp_taker"):
        if f"fees.{k}" not in point and data["fees"].get(k) == getattr(base_fees, k):
            data["fees"].pop(k)


def _show(value: Any) -> str:
    return repr(value)


def validate_grid(base: Settings, grid: Grid) -> list[dict[str, Any]] | None:
    """Refuse (ConfigError) a grid with an unknown key or a value the config would refuse, before anything runs.

    Each value alone is checked first (so the message names the key and the value); then, for a grid, every
    combination (cross-field rules such as exit_apr <= entry_apr, the leverage the bracket allows at the notional).
    Returns the grid's points (None for a search: its combinations are drawn later; a combination refused then is
    recorded as a failed trial)."""
    src = str(grid.path)
    problems: list[str] = []
    for key in grid.keys:
        spec = grid.values[key]
        candidates = [spec.low, spec.high] if isinstance(spec, Range) else list(spec)
        for value in candidates:
            try:
                apply_point(base, {key: value}, f"[grid] {key!r} = {_show(value)}")
            except PointErrors as e:
                if not e.field_level:
                    continue  # a combination problem: judged with the other keys' values below
                more = len(e.lines) - 1  # the same problem for every symbol of symbols.*: say it once
                problems.append(e.lines[0] + (f" (same for {more} more field(s) of this key)" if more else ""))
                if e.unknown_key:
                    break  # the key is wrong whatever the value
    if problems:
        raise ConfigError(src, problems[:MAX_SHOWN] + ([f"... and {len(problems) - MAX_SHOWN} more"]
                                                        if len(problems) > MAX_SHOWN else []))
    if grid.has_ranges:
        return None
    points = grid.points()
    refused = 0
    for i, point in enumerate(points):
        shown = ", ".join(f"{k}={_show(v)}" for k, v in point.items())
        try:
            apply_point(base, point, f"point {i + 1} ({shown})")
        except PointErrors as e:
            refused += 1
            more = len(e.lines) - 1
            problems.append(e.lines[0] + (f" (and {more} more problem(s) in this point)" if more else ""))
    if problems:
        head = [f"{refused} of {len(points)} grid points are refused by the config rules:"]
        raise ConfigError(src, head + problems[:MAX_SHOWN] + ([f"... and {len(problems) - MAX_SHOWN} more"]
                                                               if len(problems) > MAX_SHOWN else []))
    return points
