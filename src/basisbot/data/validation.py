"""Validation shared by both layouts: candle and funding value checks, ordering, merging files, the hourly
bar grid with its gaps (`assemble`), and settlement coverage of the bars (`_finish_funding`).
Every failure is a `DataError` naming the file, the 1-based row and, where it helps, the time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from basisbot.data.symbol_data import (
    BAR_COLUMNS,
    HOUR_NS,
    MAX_FUNDING_GAP_NS,
    MIN_FUNDING_GAP_NS,
    OHLC,
    DataError,
    SymbolData,
    fmt_ts,
)


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
                notes.append(f"{kind}: {fmt_ts(seg_start)} missing ({where})")
            else:
                notes.append(
                    f"{kind}: {fmt_ts(seg_start)} to {fmt_ts(seg_end)} missing, {n} hours ({where})"
                )
            seg_start = seg_end + HOUR_NS
    return notes


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def row_error(label: str, row: int, ts_ns: int | None, what: str) -> DataError:
    when = f" ({fmt_ts(ts_ns)} UTC)" if ts_ns is not None else ""
    return DataError(f"{label}, row {row}{when}: {what}")


def first_failure(label: str, rows: np.ndarray, times: np.ndarray | None,
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
    raise row_error(label, int(rows[i]), None if times is None else int(times[i]), describe(i) + extra)


@dataclass
class Klines:
    """Valid candles of one dataset from one file: hour open times (ns) and OHLCV."""

    label: str
    times: np.ndarray
    values: dict[str, np.ndarray]
    rows: np.ndarray


def check_klines(k: Klines, *, check_open: bool, check_volume: bool) -> None:
    o, h, lo, c = (k.values[n] for n in OHLC)

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
    first_failure(k.label, k.rows, k.times, checks)


def check_order(label: str, times: np.ndarray, rows: np.ndarray, what: str = "open_time") -> None:
    if len(times) < 2:
        return
    d = np.diff(times)
    bad = d <= 0
    if bad.any():
        i = int(np.argmax(bad)) + 1
        kind = "duplicate" if d[i - 1] == 0 else "out of order"
        raise row_error(label, int(rows[i]), int(times[i]),
                         f"{kind} {what}: not after row {int(rows[i - 1])} ({fmt_ts(int(times[i - 1]))})")


@dataclass
class FundingRows:
    label: str
    ts: np.ndarray          # ns
    rate: np.ndarray
    interval: np.ndarray    # hours, NaN when the source has none
    rows: np.ndarray
    row_labels: list[str] | None = None   # per-row file label after merging several files

    def label_of(self, i: int) -> str:
        return self.row_labels[i] if self.row_labels is not None else self.label


def check_funding_values(f: FundingRows) -> None:
    check_order(f.label, f.ts, f.rows, "settlement time")
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        (~np.isfinite(f.rate), lambda i: f"funding rate {float(f.rate[i])!r} is not finite"),
    ]
    given = ~np.isnan(f.interval)
    checks.append((given & ~(np.isfinite(f.interval) & (f.interval > 0)),
                   lambda i: f"funding interval {float(f.interval[i])!r} h is not a positive number"))
    first_failure(f.label, f.rows, f.ts, checks)


def merge_funding(parts: list[FundingRows]) -> FundingRows:
    parts = [p for p in parts if len(p.ts)]
    if not parts:
        return FundingRows("", np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
    parts.sort(key=lambda p: int(p.ts[0]))
    ts = np.concatenate([p.ts for p in parts])
    rate = np.concatenate([p.rate for p in parts])
    interval = np.concatenate([p.interval for p in parts])
    rows = np.concatenate([p.rows for p in parts])
    labels = np.concatenate([np.full(len(p.ts), i) for i, p in enumerate(parts)])
    d = np.diff(ts)
    bad = d < MIN_FUNDING_GAP_NS
    if bad.any():
        i = int(np.argmax(bad)) + 1
        prev = f"{parts[labels[i - 1]].label}, row {int(rows[i - 1])} ({fmt_ts(int(ts[i - 1]))})"
        if d[i - 1] <= 0:
            what = f"settlement time not after {prev}"
        else:
            what = (f"settlement only {d[i - 1] / 6e10:.1f} min after {prev}: duplicate settlement?")
        raise row_error(parts[labels[i]].label, int(rows[i]), int(ts[i]), what)
    return FundingRows(", ".join(p.label for p in parts), ts, rate, interval, rows,
                    [parts[j].label for j in labels])


_BINANCE_RULE = "Binance settles at least every 8 h"


def _finish_funding(f: FundingRows, start_ns: int | None, end_ns: int | None,
                    grid_start: int, grid_end: int, files: str, max_gap_ns: int = MAX_FUNDING_GAP_NS,
                    coverage_rule: str = _BINANCE_RULE) -> pd.DataFrame:
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
    bad = d > max_gap_ns
    if bad.any():
        j = int(np.argmax(bad))
        lo, hi = int(points[j]), int(points[j + 1])
        idx = np.flatnonzero(inside)
        if j < len(idx):  # the stretch ends at a settlement: name its file and row
            k = int(idx[j])
            raise row_error(f.label_of(k), int(f.rows[k]), int(ts[k]),
                             f"no funding settlement for {(hi - lo) / HOUR_NS:.1f} h before this one "
                             f"(since {fmt_ts(lo)}); {coverage_rule}: "
                             "settlements are missing")
        raise DataError(
            f"funding ({files}): no settlement between {fmt_ts(lo)} and {fmt_ts(hi)} UTC "
            f"({(hi - lo) / HOUR_NS:.1f} h) although the bars cover that period; {coverage_rule}: "
            "funding data is missing"
        )
    if np.isnan(interval[keep]).any():
        raise DataError(f"funding ({files}): a single settlement, its interval cannot be inferred")
    return pd.DataFrame({
        "ts": pd.to_datetime(ts[keep], unit="ns", utc=True),
        "rate": rate[keep].astype(np.float64),
        "interval_hours": interval[keep].astype(np.float64),
    })


@dataclass
class Series:
    """One dataset (spot / perp / mark) over the requested range: present hours and values."""

    kind: str
    times: np.ndarray
    values: dict[str, np.ndarray]
    locate: Callable[[int], str]


def assemble(symbol: str, source: str, series: dict[str, Series], funding: FundingRows,
              funding_files: str, start_ns: int | None, end_ns: int | None,
              allow_perp_gaps: bool, month_check: Callable[[int, int], None] | None,
              max_gap_ns: int = MAX_FUNDING_GAP_NS, coverage_rule: str = _BINANCE_RULE) -> SymbolData:
    perp, mark, spot = series["perp"], series["mark"], series["spot"]
    anchor = np.concatenate((perp.times, mark.times))
    if len(anchor) == 0:
        rng = f"[{'-' if start_ns is None else fmt_ts(start_ns)}, " \
              f"{'-' if end_ns is None else fmt_ts(end_ns)})"
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
    fund = _finish_funding(funding, start_ns, end_ns, first, last + HOUR_NS, funding_files, max_gap_ns,
                           coverage_rule)
    return SymbolData(symbol=symbol, bars=bars, funding=fund, gaps=tuple(gaps), source=source)


def range_mask(times: np.ndarray, start_ns: int | None, end_ns: int | None) -> np.ndarray:
    keep = np.ones(len(times), dtype=bool)
    if start_ns is not None:
        keep &= times >= start_ns
    if end_ns is not None:
        keep &= times < end_ns
    return keep


def merge_klines(kind: str, parts: list[Klines]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    parts = [p for p in parts if len(p.times)]
    if not parts:
        names = ("close", "high", "low") if kind == "mark" else ("open", "high", "low", "close", "volume")
        return np.zeros(0, np.int64), {n: np.zeros(0) for n in names}
    parts.sort(key=lambda p: int(p.times[0]))
    for a, b in zip(parts, parts[1:]):
        if b.times[0] <= a.times[-1]:
            i = int(np.argmax(np.isin(b.times, a.times))) if np.isin(b.times, a.times).any() else 0
            raise row_error(b.label, int(b.rows[i]), int(b.times[i]),
                             f"{kind} hour also present in {a.label} (overlapping files)")
    times = np.concatenate([p.times for p in parts])
    values = {n: np.concatenate([p.values[n] for p in parts]) for n in parts[0].values}
    return times, values
