"""Importers that turn real Binance data into one canonical in-memory form.

Two on-disk layouts are understood (see ``backtests/data/SOURCES.md``):

``bundled``
    A folder holding ``SYM_1h_*.parquet`` (hourly perp + spot candles, mark price at the
    bar's close) beside ``SYM_funding_*.csv`` (every funding settlement, exact time).

``binance_dump``
    Binance's public data dumps (data.binance.vision) as quants download them, rooted at DIR::

        DIR/spot/monthly/klines/SYM/1h/SYM-1h-YYYY-MM.zip            (no header; ms, µs from 2025)
        DIR/futures/um/monthly/klines/SYM/1h/SYM-1h-YYYY-MM.zip      (header row)
        DIR/futures/um/monthly/markPriceKlines/SYM/1h/SYM-1h-YYYY-MM.zip
        DIR/futures/um/monthly/fundingRate/SYM/SYM-fundingRate-YYYY-MM.zip

    Each ``.zip`` holds one CSV; the extracted ``.csv`` may sit beside it or replace it.

Whatever the layout, :func:`load_symbol` returns a :class:`SymbolData`. Bad data is never
patched: it raises :class:`DataError` naming the file, the 1-based row (for CSVs: the line
number, counting the header when there is one; for parquet: the row position) and, where
it helps, the timestamp.

Rules, and why:

* Files are validated whole when read: a monthly dump file is read when its month meets
  ``[start, end)``; of the bundled parquet, the index is checked whole (strictly increasing)
  and the rows inside the range are checked.
* Bundled parquet: ``*_perp_binance`` / ``*_spot_binance`` open/high/low/close/volume and
  ``mark_price_binance`` (the mark price at the bar's close) are used; ``vwap_*`` and the
  forward-filled ``funding_rate_raw_binance`` are ignored (settlements come from the CSV).
  A row whose spot (or perp) columns are all NaN is a missing hour; partly NaN is a DataError.
  The real files have no high < low, no close/open outside [low, high] and no non-positive
  price, so those rules stand as they are.
* Kline rows: exactly 12 fields; open time on the hour; ``close_time`` one hour (minus one
  ms/µs) later; inside the month the file is named after; strictly increasing within the
  file and across files; open/high/low/close finite and > 0, ``high >= low``,
  ``low <= close <= high`` (and the same for ``open`` on trade klines: spot and perp);
  volume finite and >= 0. Mark-price klines are checked for prices only (their volume
  columns are "ignore" fields) and their ``open`` is not used.
* Timestamps are detected per value: ``>= 1e14`` is microseconds, otherwise milliseconds
  (Binance spot switched to µs on 2025-01-01; 1e14 ms would be the year 5138).
* A header row is detected by the first field of the first line not being a number.
* Zip vs extracted CSV: when only one exists it is used. When both exist for a month the CSV is
  used *and* compared byte-for-byte with the zip's member; if they differ this is a DataError
  (a half-extracted or hand-edited CSV must not silently win or lose). A month is therefore
  never counted twice. Files that do not follow the exact monthly name (daily files,
  ``.CHECKSUM``, ``SYM-1h-2022-03 (1).zip`` browser duplicates) are ignored.
* The bar grid is every hour from the first to the last hour that has perp or mark data inside
  ``[start, end)``. Over that grid:

  - mark price must be complete (it drives funding payments and liquidation): a missing hour
    is a DataError naming the file and the hour;
  - perp candles must be complete: a missing hour is a DataError, unless the caller passes
    ``allow_perp_gaps=True``, in which case those hours are kept NaN and listed in ``gaps``.
    The real bundled SOLUSDT file needs this: its perp columns are empty for 120 hours
    (2022-02-26 00:00 - 2022-02-28 23:00 and 2022-04-01 00:00 - 2022-04-02 23:00 UTC, a
    collection hole of the third-party source, not an exchange outage; mark and spot are
    present). Loading SOLUSDT over that period without the flag fails loudly on purpose;
  - spot candles may be missing (real exchange outages, e.g. all three bundled symbols have
    no spot candle for 2023-03-24 13:00 UTC): those hours stay NaN and are listed in ``gaps``;
  - in the dump layout a whole monthly file missing inside the grid (spot, perp or mark) is a
    DataError: that is a download problem, not an outage.
  Candles outside the grid (e.g. spot months with no perp data) are dropped.
* Funding: settlement times strictly increasing (a settlement less than 30 minutes after the
  previous one is reported as a duplicate), rates finite, interval hours finite and > 0.
  ``interval_hours`` comes from the dump's ``funding_interval_hours`` when present, otherwise
  it is the gap to the previous settlement rounded to the hour (the first row uses the gap to
  the next one; computed before ``start``/``end`` filtering, so filtering never changes it).
  Binance USDⓈ-M never settles less often than every 8 hours, so within the bar grid (from the
  first bar's open to the last bar's close) no stretch longer than 8 h (+1 min of jitter
  tolerance) may pass without a settlement: otherwise a DataError names the funding file(s)
  and the uncovered period. This catches missing funding months, which would otherwise
  silently remove the carry from a backtest.
* ``start``/``end``: inclusive start, exclusive end, applied to bars by open time and to funding
  by settlement time. Naive values are UTC. An empty bar result is a DataError; an empty
  funding result is only allowed if the bar range is short enough for the 8 h rule to hold.
"""

from __future__ import annotations

import datetime as _dt
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "BAR_COLUMNS",
    "FUNDING_COLUMNS",
    "DataError",
    "SymbolData",
    "available_symbols",
    "detect_layout",
    "dump_paths",
    "load_symbol",
]

BAR_COLUMNS: tuple[str, ...] = (
    "spot_open", "spot_high", "spot_low", "spot_close", "spot_volume",
    "perp_open", "perp_high", "perp_low", "perp_close", "perp_volume",
    "mark_close", "mark_high", "mark_low",
)
FUNDING_COLUMNS: tuple[str, ...] = ("ts", "rate", "interval_hours")

KLINE_HEADER: tuple[str, ...] = (
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
FUNDING_HEADER: tuple[str, ...] = ("calc_time", "funding_interval_hours", "last_funding_rate")

HOUR_NS = 3_600_000_000_000
_MINUTE_NS = 60_000_000_000
_US_THRESHOLD = 10**14          # >= this: microseconds, below: milliseconds
_MAX_FUNDING_GAP_NS = 8 * HOUR_NS + _MINUTE_NS
_MIN_FUNDING_GAP_NS = 30 * _MINUTE_NS
_OHLC = ("open", "high", "low", "close")


class DataError(ValueError):
    """Market data is missing or malformed. The message names the file and, where applicable,
    the 1-based row and timestamp, and says what is wrong."""


@dataclass(frozen=True, eq=False)  # eq=False: DataFrames do not compare to a bool
class SymbolData:
    """Canonical market data of one symbol (see module docstring for the rules).

    ``bars``: index = bar open time (tz-aware UTC, strictly increasing, hourly, no holes),
    float64 columns :data:`BAR_COLUMNS`. ``mark_close`` is the mark price at the bar's close;
    ``mark_high``/``mark_low`` are NaN when the source has no mark OHLC (bundled layout).
    ``spot_*`` (and ``perp_*`` only with ``allow_perp_gaps=True``) may be NaN for hours listed
    in ``gaps``.

    ``funding``: columns ``ts`` (UTC, exact settlement time), ``rate``, ``interval_hours``.
    """

    symbol: str
    bars: pd.DataFrame
    funding: pd.DataFrame
    gaps: tuple[str, ...]
    source: str


# --------------------------------------------------------------------------------------
# layout discovery
# --------------------------------------------------------------------------------------

_BUNDLED_BARS_RE = re.compile(r"^([A-Z0-9]+)_1h_(.+)\.parquet$")
_BUNDLED_FUNDING_RE = re.compile(r"^([A-Z0-9]+)_funding_(.+)\.csv$")
_SYMBOL_RE = re.compile(r"^[A-Z0-9]+$")


def dump_paths(data_dir: str | Path, symbol: str) -> dict[str, Path]:
    """Directories of the four datasets of ``symbol`` in the public-dump layout under ``data_dir``."""
    root = Path(data_dir)
    um = root / "futures" / "um" / "monthly"
    return {
        "spot": root / "spot" / "monthly" / "klines" / symbol / "1h",
        "perp": um / "klines" / symbol / "1h",
        "mark": um / "markPriceKlines" / symbol / "1h",
        "funding": um / "fundingRate" / symbol,
    }


def detect_layout(data_dir: str | Path) -> Literal["bundled", "binance_dump"]:
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    bundled = any(_BUNDLED_BARS_RE.match(p.name) for p in root.glob("*_1h_*.parquet"))
    dump = (root / "spot" / "monthly").is_dir() or (root / "futures" / "um" / "monthly").is_dir()
    if bundled and dump:
        raise DataError(
            f"{root}: holds both bundled SYM_1h_*.parquet files and a spot/ or futures/ dump tree; "
            "point at one of them"
        )
    if bundled:
        return "bundled"
    if dump:
        return "binance_dump"
    hint = ""
    if (root / "data" / "futures").is_dir() or (root / "data" / "spot").is_dir():
        hint = f" (the dump tree seems to be under {root / 'data'}: pass that folder)"
    raise DataError(
        f"{root}: unrecognised layout{hint}: expected SYM_1h_*.parquet + SYM_funding_*.csv files, "
        "or Binance's public-dump tree spot/monthly/klines/... and futures/um/monthly/..."
    )


def _bundled_inventory(root: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    bars: dict[str, list[Path]] = {}
    funding: dict[str, list[Path]] = {}
    for p in sorted(root.iterdir()):
        if m := _BUNDLED_BARS_RE.match(p.name):
            bars.setdefault(m.group(1), []).append(p)
        elif m := _BUNDLED_FUNDING_RE.match(p.name):
            funding.setdefault(m.group(1), []).append(p)
    return bars, funding


def _dump_symbols(root: Path) -> dict[str, set[str]]:
    """dataset -> symbols that have at least one correctly named monthly file."""
    um = root / "futures" / "um" / "monthly"
    bases = {
        "spot": (root / "spot" / "monthly" / "klines", "1h"),
        "perp": (um / "klines", "1h"),
        "mark": (um / "markPriceKlines", "1h"),
        "funding": (um / "fundingRate", None),
    }
    out: dict[str, set[str]] = {}
    for kind, (base, sub) in bases.items():
        syms: set[str] = set()
        if base.is_dir():
            for d in base.iterdir():
                if not (d.is_dir() and _SYMBOL_RE.match(d.name)):
                    continue
                folder = d / sub if sub else d
                if folder.is_dir() and _monthly_files(folder, d.name, kind):
                    syms.add(d.name)
        out[kind] = syms
    return out


def available_symbols(data_dir: str | Path) -> list[str]:
    """Symbols that have every dataset needed by :func:`load_symbol`, sorted."""
    root = Path(data_dir)
    if detect_layout(root) == "bundled":
        bars, funding = _bundled_inventory(root)
        return sorted(set(bars) & set(funding))
    per_kind = _dump_symbols(root)
    return sorted(set.intersection(*per_kind.values()))


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def _to_utc(value, what: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{what}={value!r} is not a date/time: {exc}") from None
    if ts is pd.NaT:
        raise DataError(f"{what}={value!r} is not a date/time")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    """int64 nanoseconds since the epoch of a tz-aware (or naive = UTC) DatetimeIndex."""
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.astype("datetime64[ns]")).view(np.int64)


def _fmt_ts(ns: int) -> str:
    ts = pd.Timestamp(int(ns), tz="UTC")
    if ts.second == 0 and ts.microsecond == 0 and ts.nanosecond == 0:
        return ts.strftime("%Y-%m-%d %H:%M")
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")


def _month_floor_ns(ns: int) -> int:
    ts = pd.Timestamp(int(ns), tz="UTC")
    return pd.Timestamp(year=ts.year, month=ts.month, day=1, tz="UTC").value


def _next_month_ns(month_ns: int) -> int:
    ts = pd.Timestamp(int(month_ns), tz="UTC")
    y, m = (ts.year + 1, 1) if ts.month == 12 else (ts.year, ts.month + 1)
    return pd.Timestamp(year=y, month=m, day=1, tz="UTC").value


def _runs(hours_ns: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive hourly runs as (first, last) pairs of a sorted array of hour timestamps."""
    if len(hours_ns) == 0:
        return []
    breaks = np.flatnonzero(np.diff(hours_ns) != HOUR_NS)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(hours_ns) - 1]))
    return [(int(hours_ns[s]), int(hours_ns[e])) for s, e in zip(starts, ends)]


def _describe_missing(kind: str, hours_ns: np.ndarray, locate: Callable[[int], str]) -> list[str]:
    """One note per run of missing hours and per file (runs are split where the file changes)."""
    notes: list[str] = []
    for first, last in _runs(hours_ns):
        seg_start = first
        while seg_start <= last:
            where = locate(seg_start)
            seg_end = seg_start
            while seg_end + HOUR_NS <= last and locate(seg_end + HOUR_NS) == where:
                seg_end += HOUR_NS
            n = (seg_end - seg_start) // HOUR_NS + 1
            if n == 1:
                notes.append(f"{kind}: {_fmt_ts(seg_start)} missing ({where})")
            else:
                notes.append(
                    f"{kind}: {_fmt_ts(seg_start)} to {_fmt_ts(seg_end)} missing, {n} hours ({where})"
                )
            seg_start = seg_end + HOUR_NS
    return notes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _row_error(label: str, row: int, ts_ns: int | None, what: str) -> DataError:
    when = f" ({_fmt_ts(ts_ns)} UTC)" if ts_ns is not None else ""
    return DataError(f"{label}, row {row}{when}: {what}")


def _first_failure(label: str, rows: np.ndarray, times: np.ndarray | None,
                   checks: list[tuple[np.ndarray, Callable[[int], str]]]) -> None:
    """Raise for the earliest row failing any check (with a count of all failing rows)."""
    any_bad = np.zeros(len(rows), dtype=bool)
    first: tuple[int, Callable[[int], str]] | None = None
    for mask, describe in checks:
        if mask.any():
            any_bad |= mask
            i = int(np.argmax(mask))
            if first is None or i < first[0]:
                first = (i, describe)
    if first is None:
        return
    i, describe = first
    more = int(any_bad.sum()) - 1
    extra = f" (and {more} more bad row{'s' if more != 1 else ''} in this file)" if more else ""
    raise _row_error(label, int(rows[i]), None if times is None else int(times[i]), describe(i) + extra)


# --------------------------------------------------------------------------------------
# CSV reading (dump layout)
# --------------------------------------------------------------------------------------


def _zip_member(path: Path) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith(".csv") and not n.endswith("/")]
            if len(members) != 1:
                raise DataError(
                    f"file {path}: expected exactly one CSV inside the zip, found {len(members)} ({members})"
                )
            return members[0], zf.read(members[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"file {path}: cannot read zip: {exc}") from None


@dataclass
class _MonthFile:
    month_ns: int
    path: Path        # the file that is read
    other: Path | None  # the zip when the CSV was preferred

    @property
    def label(self) -> str:
        return f"file {self.path}"

    def read(self) -> bytes:
        if self.path.suffix == ".zip":
            _, data = _zip_member(self.path)
            return data
        data = self.path.read_bytes()
        if self.other is not None:
            _, zipped = _zip_member(self.other)
            if zipped != data:
                raise DataError(
                    f"file {self.path} differs from the CSV inside {self.other}: the extracted file was "
                    "edited or only partly extracted; delete one of the two"
                )
        return data


def _monthly_files(folder: Path, symbol: str, kind: str) -> dict[int, _MonthFile]:
    stem_re = (
        re.compile(rf"^{re.escape(symbol)}-fundingRate-(\d{{4}})-(\d{{2}})\.(csv|zip)$")
        if kind == "funding"
        else re.compile(rf"^{re.escape(symbol)}-1h-(\d{{4}})-(\d{{2}})\.(csv|zip)$")
    )
    found: dict[int, dict[str, Path]] = {}
    if not folder.is_dir():
        return {}
    for p in folder.iterdir():
        m = stem_re.match(p.name)
        if not m or not p.is_file():
            continue
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            continue
        key = pd.Timestamp(year=year, month=month, day=1, tz="UTC").value
        found.setdefault(key, {})[m.group(3)] = p
    out: dict[int, _MonthFile] = {}
    for key, by_ext in found.items():
        if "csv" in by_ext:
            out[key] = _MonthFile(key, by_ext["csv"], by_ext.get("zip"))
        else:
            out[key] = _MonthFile(key, by_ext["zip"], None)
    return out


@dataclass
class _Table:
    """A parsed CSV: cells (columns 0..n-1, numeric where pandas could infer it), the 1-based line
    number of each row, the header names (None if there is none) and the raw lines, so that
    error messages quote the text exactly as it is in the file."""

    label: str
    df: pd.DataFrame
    rows: np.ndarray
    names: tuple[str, ...] | None
    lines: list[str]

    def raw(self, j: int) -> pd.Series:
        return pd.Series([ln.split(",")[j].strip() for ln in self.lines], dtype=object)

    def floats(self, j: int, name: str, times: np.ndarray | None = None) -> np.ndarray:
        cells = self.df[j]
        if pd.api.types.is_numeric_dtype(cells.dtype) and not pd.api.types.is_bool_dtype(cells.dtype):
            vals = cells.to_numpy(dtype=np.float64)
        else:
            vals = pd.to_numeric(self.raw(j), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(vals)
        if bad.any():
            i = int(np.argmax(bad))
            raise _row_error(self.label, int(self.rows[i]), None if times is None else int(times[i]),
                             f"{name} {self.raw(j).iloc[i]!r} is not a finite number")
        return vals

    def epochs(self, j: int, name: str) -> np.ndarray:
        """Epoch integers in ms or µs (detected per value) -> ns since the epoch."""
        cells = self.df[j]
        if pd.api.types.is_integer_dtype(cells.dtype):
            raw = cells.to_numpy(dtype=np.int64)
            bad = raw < 0
        else:
            text = self.raw(j)
            bad = ~text.str.fullmatch(r"\d{1,18}").to_numpy(dtype=bool)
            raw = pd.to_numeric(text.where(~bad, "0")).to_numpy(dtype=np.int64)
        if bad.any():
            i = int(np.argmax(bad))
            raise _row_error(self.label, int(self.rows[i]), None,
                             f"{name} {self.raw(j).iloc[i]!r} is not an integer epoch timestamp")
        too_big = raw >= 10**17
        if too_big.any():
            i = int(np.argmax(too_big))
            raise _row_error(self.label, int(self.rows[i]), None,
                             f"{name} {raw[i]} is too large for milliseconds or microseconds")
        return np.where(raw >= _US_THRESHOLD, raw * 1_000, raw * 1_000_000)


def _parse_table(data: bytes, label: str, header: tuple[str, ...], required: int) -> _Table:
    """Parse a CSV without trusting it.

    A header is detected by the first field of the first line not being a number; its first
    ``required`` names must match ``header``. Blank lines are skipped but still counted, so the
    row numbers in error messages are the file's line numbers."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not a UTF-8 text file: {exc}") from None
    all_lines = text.splitlines()
    numbered = [(i, ln) for i, ln in enumerate(all_lines, start=1) if ln.strip()]
    names: tuple[str, ...] | None = None
    if numbered and not _is_number(numbered[0][1].split(",", 1)[0].strip()):
        line_no, head = numbered.pop(0)
        names = tuple(n.strip().lower() for n in head.split(","))
        if len(names) != len(header) or names[:required] != header[:required]:
            raise DataError(
                f"{label}, row {line_no}: unexpected header {head.strip()!r}, expected "
                f"{','.join(header)!r}"
            )
    rows = np.fromiter((i for i, _ in numbered), dtype=np.int64, count=len(numbered))
    lines = [ln for _, ln in numbered]
    if not lines:
        empty = pd.DataFrame({j: pd.Series(dtype=object) for j in range(len(header))})
        return _Table(label, empty, rows, names, lines)
    # count fields ourselves, so the message names the line as numbered in the file
    counts = np.fromiter((ln.count(",") + 1 for ln in lines), dtype=np.int64, count=len(lines))
    bad = counts != len(header)
    if bad.any():
        i = int(np.argmax(bad))
        raise _row_error(label, int(rows[i]), None,
                         f"{counts[i]} fields, expected {len(header)} ({','.join(header)})")
    try:
        df = pd.read_csv(io.StringIO("\n".join(lines)), header=None, na_filter=False,
                         names=range(len(header)), index_col=False, quoting=3)  # 3 = QUOTE_NONE
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{label}: not a valid CSV with {len(header)} columns: {exc}") from None
    return _Table(label, df, rows, names, lines)


@dataclass
class _Klines:
    """Valid candles of one dataset from one file: hour open times (ns) and OHLCV."""

    label: str
    times: np.ndarray
    values: dict[str, np.ndarray]
    rows: np.ndarray


def _check_klines(k: _Klines, *, check_open: bool, check_volume: bool) -> None:
    o, h, lo, c = (k.values[n] for n in _OHLC)

    def rng(i: int) -> str:
        return f"[low {float(lo[i])!r}, high {float(h[i])!r}]"

    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
         lambda i: f"non-positive price (open={float(o[i])!r}, high={float(h[i])!r}, "
                   f"low={float(lo[i])!r}, close={float(c[i])!r})"),
        (h < lo, lambda i: f"high {float(h[i])!r} < low {float(lo[i])!r}"),
        ((c < lo) | (c > h), lambda i: f"close {float(c[i])!r} outside {rng(i)}"),
    ]
    if check_open:  # trade klines: the first trade lies within the range by construction
        checks.append(((o < lo) | (o > h), lambda i: f"open {float(o[i])!r} outside {rng(i)}"))
    if check_volume:
        v = k.values["volume"]
        checks.append((v < 0, lambda i: f"negative volume {float(v[i])!r}"))
    _first_failure(k.label, k.rows, k.times, checks)


def _check_order(label: str, times: np.ndarray, rows: np.ndarray, what: str = "open_time") -> None:
    if len(times) < 2:
        return
    d = np.diff(times)
    bad = d <= 0
    if bad.any():
        i = int(np.argmax(bad)) + 1
        kind = "duplicate" if d[i - 1] == 0 else "out of order"
        raise _row_error(label, int(rows[i]), int(times[i]),
                         f"{kind} {what}: not after row {int(rows[i - 1])} ({_fmt_ts(int(times[i - 1]))})")


def _read_kline_file(mf: _MonthFile, kind: str) -> _Klines:
    label = mf.label
    t = _parse_table(mf.read(), label, KLINE_HEADER, required=7)
    rows = t.rows
    opens = t.epochs(0, "open_time")
    closes = t.epochs(6, "close_time")
    values = {n: t.floats(j, n, opens) for j, n in enumerate(_OHLC, start=1)}
    if kind != "mark":  # mark-price klines carry no volume ("ignore" fields)
        values["volume"] = t.floats(5, "volume", opens)
    month_end = _next_month_ns(mf.month_ns)
    span = closes - opens
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        (opens % HOUR_NS != 0, lambda i: "open_time is not on the hour (not a 1h kline file?)"),
        ((span < HOUR_NS - 1_000_000_000) | (span >= HOUR_NS),
         lambda i: f"close_time is {span[i] / 1e9:.3f} s after open_time, expected just under 3600 s "
                   "(not a 1h kline file?)"),
        ((opens < mf.month_ns) | (opens >= month_end),
         lambda i: f"open_time outside the month {pd.Timestamp(mf.month_ns, tz='UTC'):%Y-%m} "
                   "the file is named after"),
    ]
    _first_failure(label, rows, opens, checks)
    _check_order(label, opens, rows)
    k = _Klines(label, opens, values, rows)
    _check_klines(k, check_open=kind != "mark", check_volume=kind != "mark")
    return k


# --------------------------------------------------------------------------------------
# funding
# --------------------------------------------------------------------------------------


@dataclass
class _Funding:
    label: str
    ts: np.ndarray          # ns
    rate: np.ndarray
    interval: np.ndarray    # hours, NaN when the source has none
    rows: np.ndarray
    row_labels: list[str] | None = None   # per-row file label after merging several files

    def label_of(self, i: int) -> str:
        return self.row_labels[i] if self.row_labels is not None else self.label


def _check_funding_values(f: _Funding) -> None:
    _check_order(f.label, f.ts, f.rows, "settlement time")
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        (~np.isfinite(f.rate), lambda i: f"funding rate {float(f.rate[i])!r} is not finite"),
    ]
    given = ~np.isnan(f.interval)
    checks.append((given & ~(np.isfinite(f.interval) & (f.interval > 0)),
                   lambda i: f"funding interval {float(f.interval[i])!r} h is not a positive number"))
    _first_failure(f.label, f.rows, f.ts, checks)


def _read_dump_funding(mf: _MonthFile) -> _Funding:
    label = mf.label
    t = _parse_table(mf.read(), label, FUNDING_HEADER, required=0)
    rows, names = t.rows, t.names
    cols = {n: i for i, n in enumerate(FUNDING_HEADER)}  # no header: Binance's column order
    if names is not None:
        if sorted(names) != sorted(FUNDING_HEADER):
            raise DataError(f"{label}, row 1: unexpected header {','.join(names)!r}, expected "
                            f"{','.join(FUNDING_HEADER)!r}")
        cols = {n: names.index(n) for n in FUNDING_HEADER}
    ts = t.epochs(cols["calc_time"], "calc_time")
    rate = t.floats(cols["last_funding_rate"], "last_funding_rate", ts)
    iv_cells = t.raw(cols["funding_interval_hours"])
    interval = pd.to_numeric(iv_cells, errors="coerce").to_numpy(dtype=np.float64)
    bad = (iv_cells != "").to_numpy() & ~np.isfinite(interval)
    if bad.any():
        i = int(np.argmax(bad))
        raise _row_error(label, int(rows[i]), int(ts[i]),
                         f"funding_interval_hours {iv_cells.iloc[i]!r} is not a number")
    lo, hi = mf.month_ns - _MINUTE_NS, _next_month_ns(mf.month_ns) + _MINUTE_NS
    _first_failure(label, rows, ts, [(
        (ts < lo) | (ts >= hi),
        lambda i: f"calc_time outside the month {pd.Timestamp(mf.month_ns, tz='UTC'):%Y-%m} "
                  "the file is named after",
    )])
    f = _Funding(label, ts, rate, interval, rows)
    _check_funding_values(f)
    return f


def _read_bundled_funding(path: Path) -> _Funding:
    label = f"file {path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{label}: cannot read: {exc}") from None
    t = _parse_table(data, label, ("datetime", "funding_rate"), required=2)
    rows = t.rows
    if t.names is None:
        raise DataError(f"{label}, row 1: expected the header 'datetime,funding_rate'")
    cells = t.raw(0)
    parsed = pd.to_datetime(cells, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise _row_error(label, int(rows[i]), None, f"datetime {cells.iloc[i]!r} is not a date/time")
    ts = _ns(pd.DatetimeIndex(parsed))
    rate = t.floats(1, "funding_rate", ts)
    f = _Funding(label, ts, rate, np.full(len(ts), np.nan), rows)
    _check_funding_values(f)
    return f


def _merge_funding(parts: list[_Funding]) -> _Funding:
    parts = [p for p in parts if len(p.ts)]
    if not parts:
        return _Funding("", np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
    parts.sort(key=lambda p: int(p.ts[0]))
    ts = np.concatenate([p.ts for p in parts])
    rate = np.concatenate([p.rate for p in parts])
    interval = np.concatenate([p.interval for p in parts])
    rows = np.concatenate([p.rows for p in parts])
    labels = np.concatenate([np.full(len(p.ts), i) for i, p in enumerate(parts)])
    d = np.diff(ts)
    bad = d < _MIN_FUNDING_GAP_NS
    if bad.any():
        i = int(np.argmax(bad)) + 1
        prev = f"{parts[labels[i - 1]].label}, row {int(rows[i - 1])} ({_fmt_ts(int(ts[i - 1]))})"
        if d[i - 1] <= 0:
            what = f"settlement time not after {prev}"
        else:
            what = (f"settlement only {d[i - 1] / 6e10:.1f} min after {prev}: duplicate settlement?")
        raise _row_error(parts[labels[i]].label, int(rows[i]), int(ts[i]), what)
    return _Funding(", ".join(p.label for p in parts), ts, rate, interval, rows,
                    [parts[j].label for j in labels])


def _finish_funding(f: _Funding, start_ns: int | None, end_ns: int | None,
                    grid_start: int, grid_end: int, files: str) -> pd.DataFrame:
    """Fill interval_hours, filter to [start, end), and check settlement coverage of the bars."""
    ts, rate, interval = f.ts, f.rate, f.interval.copy()
    if len(ts) >= 2:
        gaps_h = np.round(np.diff(ts) / HOUR_NS)
        inferred = np.concatenate(([gaps_h[0]], gaps_h))
    else:
        inferred = np.full(len(ts), np.nan)
    missing = np.isnan(interval)
    interval[missing] = inferred[missing]
    keep = np.ones(len(ts), dtype=bool)
    if start_ns is not None:
        keep &= ts >= start_ns
    if end_ns is not None:
        keep &= ts < end_ns
    # coverage: every stretch of the bar grid must see a settlement at least every 8 hours
    inside = keep & (ts >= grid_start) & (ts <= grid_end)
    points = np.concatenate(([grid_start], ts[inside], [grid_end]))
    d = np.diff(points)
    bad = d > _MAX_FUNDING_GAP_NS
    if bad.any():
        j = int(np.argmax(bad))
        lo, hi = int(points[j]), int(points[j + 1])
        idx = np.flatnonzero(inside)
        if j < len(idx):  # the stretch ends at a settlement: name its file and row
            k = int(idx[j])
            raise _row_error(f.label_of(k), int(f.rows[k]), int(ts[k]),
                             f"no funding settlement for {(hi - lo) / HOUR_NS:.1f} h before this one "
                             f"(since {_fmt_ts(lo)}); Binance settles at least every 8 h: "
                             "settlements are missing")
        raise DataError(
            f"funding ({files}): no settlement between {_fmt_ts(lo)} and {_fmt_ts(hi)} UTC "
            f"({(hi - lo) / HOUR_NS:.1f} h) although the bars cover that period; Binance settles at "
            "least every 8 h: funding data is missing"
        )
    if np.isnan(interval[keep]).any():
        raise DataError(f"funding ({files}): a single settlement, its interval cannot be inferred")
    return pd.DataFrame({
        "ts": pd.to_datetime(ts[keep], unit="ns", utc=True),
        "rate": rate[keep].astype(np.float64),
        "interval_hours": interval[keep].astype(np.float64),
    })


# --------------------------------------------------------------------------------------
# assembly
# --------------------------------------------------------------------------------------


@dataclass
class _Series:
    """One dataset (spot / perp / mark) over the requested range: present hours and values."""

    kind: str
    times: np.ndarray
    values: dict[str, np.ndarray]
    locate: Callable[[int], str]


def _assemble(symbol: str, source: str, series: dict[str, _Series], funding: _Funding,
              funding_files: str, start_ns: int | None, end_ns: int | None,
              allow_perp_gaps: bool, month_check: Callable[[int, int], None] | None) -> SymbolData:
    perp, mark, spot = series["perp"], series["mark"], series["spot"]
    anchor = np.concatenate((perp.times, mark.times))
    if len(anchor) == 0:
        rng = f"[{'-' if start_ns is None else _fmt_ts(start_ns)}, " \
              f"{'-' if end_ns is None else _fmt_ts(end_ns)})"
        raise DataError(f"{symbol} in {source}: no perp or mark bars in the requested range {rng}")
    first, last = int(anchor.min()), int(anchor.max())
    if month_check is not None:
        month_check(first, last)
    grid = np.arange(first, last + HOUR_NS, HOUR_NS, dtype=np.int64)
    gaps: list[str] = []
    cols: dict[str, np.ndarray] = {}
    for s, names in (
        (spot, ("open", "high", "low", "close", "volume")),
        (perp, ("open", "high", "low", "close", "volume")),
    ):
        inside = (s.times >= first) & (s.times <= last)
        pos = (s.times[inside] - first) // HOUR_NS
        present = np.zeros(len(grid), dtype=bool)
        present[pos] = True
        for n in names:
            col = np.full(len(grid), np.nan)
            col[pos] = s.values[n][inside]
            cols[f"{s.kind}_{n}"] = col
        missing = grid[~present]
        if len(missing):
            notes = _describe_missing(s.kind, missing, s.locate)
            if s.kind == "perp" and not allow_perp_gaps:
                shown = "; ".join(notes[:5]) + (f"; and {len(notes) - 5} more" if len(notes) > 5 else "")
                raise DataError(
                    f"{symbol}: perp candles missing inside the range: {shown}. Narrow start/end, or "
                    "pass allow_perp_gaps=True to keep those hours NaN"
                )
            gaps.extend(notes)
    pos = (mark.times - first) // HOUR_NS
    present = np.zeros(len(grid), dtype=bool)
    present[pos] = True
    if not present.all():
        notes = _describe_missing("mark", grid[~present], mark.locate)
        shown = "; ".join(notes[:5]) + (f"; and {len(notes) - 5} more" if len(notes) > 5 else "")
        raise DataError(f"{symbol}: mark price missing inside the range: {shown}")
    for n in ("close", "high", "low"):
        col = np.full(len(grid), np.nan)
        col[pos] = mark.values[n]
        cols[f"mark_{n}"] = col
    index = pd.DatetimeIndex(pd.to_datetime(grid, unit="ns", utc=True), name="open_time")
    bars = pd.DataFrame({c: cols[c] for c in BAR_COLUMNS}, index=index)
    fund = _finish_funding(funding, start_ns, end_ns, first, last + HOUR_NS, funding_files)
    return SymbolData(symbol=symbol, bars=bars, funding=fund, gaps=tuple(gaps), source=source)


def _range_mask(times: np.ndarray, start_ns: int | None, end_ns: int | None) -> np.ndarray:
    keep = np.ones(len(times), dtype=bool)
    if start_ns is not None:
        keep &= times >= start_ns
    if end_ns is not None:
        keep &= times < end_ns
    return keep


# --------------------------------------------------------------------------------------
# bundled layout
# --------------------------------------------------------------------------------------

_BUNDLED_COLS = {
    "spot": {n: f"{n}_spot_binance" for n in ("open", "high", "low", "close", "volume")},
    "perp": {n: f"{n}_perp_binance" for n in ("open", "high", "low", "close", "volume")},
    "mark": {"close": "mark_price_binance"},
}


def _read_bundled_bars(path: Path, start_ns: int | None, end_ns: int | None) -> dict[str, _Klines]:
    label = f"file {path}"
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataError(f"{label}: cannot read parquet: {exc}") from None
    if isinstance(df.index, pd.DatetimeIndex):
        idx = df.index
    elif "timestamp" in df.columns:
        idx = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], errors="coerce"))
    else:
        raise DataError(f"{label}: no DatetimeIndex and no 'timestamp' column")
    if idx.hasnans:
        i = int(np.argmax(idx.isna()))
        raise _row_error(label, i + 1, None, "timestamp is empty")
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    times_all = _ns(idx)
    needed = [c for cols in _BUNDLED_COLS.values() for c in cols.values()]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise DataError(f"{label}: missing columns {absent}")
    rows_all = np.arange(1, len(df) + 1, dtype=np.int64)
    _check_order(label, times_all, rows_all, "timestamp")
    keep = _range_mask(times_all, start_ns, end_ns)
    times, rows = times_all[keep], rows_all[keep]
    _first_failure(label, rows, times, [
        (times % HOUR_NS != 0, lambda i: "timestamp is not on the hour (not hourly bars?)"),
    ])
    out: dict[str, _Klines] = {}
    for kind, mapping in _BUNDLED_COLS.items():
        vals = {n: df[c].to_numpy(dtype=np.float64, na_value=np.nan)[keep] for n, c in mapping.items()}
        nan = np.column_stack([np.isnan(v) for v in vals.values()])
        partial = nan.any(axis=1) & ~nan.all(axis=1)
        infinite = np.column_stack([np.isinf(v) for v in vals.values()]).any(axis=1)
        def empty_cols(i: int, vals=vals, mapping=mapping) -> str:
            return ", ".join(mapping[n] for n, v in vals.items() if np.isnan(v[i]))

        _first_failure(label, rows, times, [
            (partial, lambda i, k=kind, f=empty_cols: f"{k} columns partly empty ({f(i)})"),
            (infinite, lambda i, k=kind: f"{k} value is infinite"),
        ])
        present = ~nan.all(axis=1)  # an all-NaN row is a missing hour (reported by _assemble)
        k = _Klines(label, times[present], {n: v[present] for n, v in vals.items()}, rows[present])
        if kind == "mark":
            mc = k.values["close"]
            _first_failure(label, k.rows, k.times, [
                (mc <= 0, lambda i: f"non-positive mark price {float(mc[i])!r}"),
            ])
            k.values["high"] = np.full(len(mc), np.nan)
            k.values["low"] = np.full(len(mc), np.nan)
        else:
            k.label = f"{label} ({kind})"
            _check_klines(k, check_open=True, check_volume=True)
            k.label = label
        out[kind] = k
    return out


def _merge_klines(kind: str, parts: list[_Klines]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    parts = [p for p in parts if len(p.times)]
    if not parts:
        names = ("close", "high", "low") if kind == "mark" else ("open", "high", "low", "close", "volume")
        return np.zeros(0, np.int64), {n: np.zeros(0) for n in names}
    parts.sort(key=lambda p: int(p.times[0]))
    for a, b in zip(parts, parts[1:]):
        if b.times[0] <= a.times[-1]:
            i = int(np.argmax(np.isin(b.times, a.times))) if np.isin(b.times, a.times).any() else 0
            raise _row_error(b.label, int(b.rows[i]), int(b.times[i]),
                             f"{kind} hour also present in {a.label} (overlapping files)")
    times = np.concatenate([p.times for p in parts])
    values = {n: np.concatenate([p.values[n] for p in parts]) for n in parts[0].values}
    return times, values


def _load_bundled(root: Path, symbol: str, start_ns: int | None, end_ns: int | None,
                  allow_perp_gaps: bool) -> SymbolData:
    bars_files, funding_files = _bundled_inventory(root)
    if symbol not in bars_files or symbol not in funding_files:
        _unknown_symbol(root, symbol, {"bars (SYM_1h_*.parquet)": symbol in bars_files,
                                       "funding (SYM_funding_*.csv)": symbol in funding_files})
    per_kind: dict[str, list[_Klines]] = {"spot": [], "perp": [], "mark": []}
    spans: list[tuple[int, int, str]] = []
    for path in bars_files[symbol]:
        parts = _read_bundled_bars(path, start_ns, end_ns)
        for kind, k in parts.items():
            per_kind[kind].append(k)
        allt = np.concatenate([k.times for k in parts.values()])
        if len(allt):
            spans.append((int(allt.min()), int(allt.max()), f"file {path}"))

    def locate(ns: int) -> str:
        hits = [lab for lo, hi, lab in spans if lo <= ns <= hi]
        return ", ".join(hits or [lab for _, _, lab in spans])

    series = {}
    for kind, parts in per_kind.items():
        times, values = _merge_klines(kind, parts)
        series[kind] = _Series(kind, times, values, locate)
    funding = _merge_funding([_read_bundled_funding(p) for p in funding_files[symbol]])
    files = ", ".join(str(p) for p in funding_files[symbol])
    return _assemble(symbol, str(root), series, funding, files, start_ns, end_ns,
                     allow_perp_gaps, None)


# --------------------------------------------------------------------------------------
# dump layout
# --------------------------------------------------------------------------------------


def _months_in_range(files: dict[int, _MonthFile], start_ns: int | None,
                     end_ns: int | None, pad_before: bool = False) -> list[_MonthFile]:
    lo = None if start_ns is None else _month_floor_ns(start_ns)
    if lo is not None and pad_before:
        ts = pd.Timestamp(lo, tz="UTC") - pd.DateOffset(months=1)
        lo = ts.value
    out = []
    for key in sorted(files):
        if lo is not None and key < lo:
            continue
        if end_ns is not None and key >= end_ns:
            continue
        out.append(files[key])
    return out


def _load_dump(root: Path, symbol: str, start_ns: int | None, end_ns: int | None,
               allow_perp_gaps: bool) -> SymbolData:
    dirs = dump_paths(root, symbol)
    files = {kind: _monthly_files(folder, symbol, kind) for kind, folder in dirs.items()}
    if not all(files.values()):
        _unknown_symbol(root, symbol, {f"{kind} ({dirs[kind]})": bool(files[kind]) for kind in dirs})

    def locator(kind: str) -> Callable[[int], str]:
        def locate(ns: int) -> str:
            mf = files[kind].get(_month_floor_ns(ns))
            return mf.label if mf else "no file"
        return locate

    series: dict[str, _Series] = {}
    for kind in ("spot", "perp", "mark"):
        parts = []
        for mf in _months_in_range(files[kind], start_ns, end_ns):
            k = _read_kline_file(mf, kind)
            keep = _range_mask(k.times, start_ns, end_ns)
            parts.append(_Klines(k.label, k.times[keep], {n: v[keep] for n, v in k.values.items()},
                                 k.rows[keep]))
        times, values = _merge_klines(kind, parts)
        series[kind] = _Series(kind, times, values, locator(kind))

    def month_check(first: int, last: int) -> None:
        m = _month_floor_ns(first)
        while m <= last:
            for kind in ("spot", "perp", "mark"):
                if m not in files[kind]:
                    stem = f"{symbol}-1h-{pd.Timestamp(m, tz='UTC'):%Y-%m}"
                    raise DataError(
                        f"{symbol}: no {kind} kline file for {pd.Timestamp(m, tz='UTC'):%Y-%m} although "
                        f"the bars span {_fmt_ts(first)} to {_fmt_ts(last)}: expected "
                        f"{dirs[kind] / (stem + '.zip')} (or .csv)"
                    )
            m = _next_month_ns(m)

    fparts = [_read_dump_funding(mf) for mf in _months_in_range(files["funding"], start_ns, end_ns,
                                                                 pad_before=True)]
    funding = _merge_funding(fparts)
    return _assemble(symbol, str(root), series, funding, str(dirs["funding"]), start_ns, end_ns,
                     allow_perp_gaps, month_check)


# --------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------


def _unknown_symbol(root: Path, symbol: str, have: dict[str, bool]) -> None:
    avail = available_symbols(root)
    if any(have.values()):
        lacking = [k for k, ok in have.items() if not ok]
        raise DataError(
            f"{root}: {symbol} is incomplete, missing {', '.join(lacking)}; complete symbols: "
            f"{', '.join(avail) or 'none'}"
        )
    raise DataError(f"{root}: no data for symbol {symbol!r}; available: {', '.join(avail) or 'none'}")


def load_symbol(data_dir: str | Path, symbol: str,
                start: str | _dt.date | _dt.datetime | pd.Timestamp | None = None,
                end: str | _dt.date | _dt.datetime | pd.Timestamp | None = None,
                *, allow_perp_gaps: bool = False) -> SymbolData:
    """Load one symbol from either layout into the canonical :class:`SymbolData`.

    ``start`` (inclusive) and ``end`` (exclusive) filter bars by open time and funding by
    settlement time; naive values are UTC. ``allow_perp_gaps=True`` keeps hours without a perp
    candle as NaN rows (listed in ``gaps``) instead of raising.
    """
    root = Path(data_dir).resolve()
    layout = detect_layout(root)
    start_ts, end_ts = _to_utc(start, "start"), _to_utc(end, "end")
    if start_ts is not None and end_ts is not None and end_ts <= start_ts:
        raise DataError(f"end {end_ts} is not after start {start_ts}")
    start_ns = None if start_ts is None else start_ts.value
    end_ns = None if end_ts is None else end_ts.value
    symbol = symbol.strip().upper()
    if layout == "bundled":
        return _load_bundled(root, symbol, start_ns, end_ns, allow_perp_gaps)
    return _load_dump(root, symbol, start_ns, end_ns, allow_perp_gaps)
