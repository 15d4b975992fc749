"""Binance's public-dump layout (data.binance.vision): monthly kline, mark-price kline and funding-rate
zips or CSVs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from basisbot.core.units import HOUR_NS, MINUTE_NS
from basisbot.data.csv_table import parse_table
from basisbot.data.discovery import dump_paths, unknown_symbol
from basisbot.data.dump_files import MonthFile, monthly_files
from basisbot.data.symbol_data import (
    FUNDING_HEADER,
    KLINE_HEADER,
    OHLC,
    DataError,
    SymbolData,
    fmt_ts,
    month_floor_ns,
    next_month_ns,
)
from basisbot.data.validation import (
    FundingRows,
    Klines,
    Series,
    assemble,
    check_funding_values,
    check_klines,
    check_order,
    first_failure,
    merge_funding,
    merge_klines,
    range_mask,
    row_error,
)


def _read_kline_file(mf: MonthFile, kind: str) -> Klines:
    label = mf.label
    t = parse_table(mf.read(), label, KLINE_HEADER, required=7)
    rows = t.rows
    opens = t.epochs(0, "open_time")
    closes = t.epochs(6, "close_time")
    values = {n: t.floats(j, n, opens) for j, n in enumerate(OHLC, start=1)}
    if kind != "mark":  # mark-price klines carry no volume ("ignore" fields)
        values["volume"] = t.floats(5, "volume", opens)
    month_end = next_month_ns(mf.month_ns)
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
    first_failure(label, rows, opens, checks)
    check_order(label, opens, rows)
    k = Klines(label, opens, values, rows)
    check_klines(k, check_open=kind != "mark", check_volume=kind != "mark")
    return k


def _read_dump_funding(mf: MonthFile) -> FundingRows:
    label = mf.label
    t = parse_table(mf.read(), label, FUNDING_HEADER, required=0)
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
        raise row_error(label, int(rows[i]), int(ts[i]),
                         f"funding_interval_hours {iv_cells.iloc[i]!r} is not a number")
    lo, hi = mf.month_ns - MINUTE_NS, next_month_ns(mf.month_ns) + MINUTE_NS
    first_failure(label, rows, ts, [(
        (ts < lo) | (ts >= hi),
        lambda i: f"calc_time outside the month {pd.Timestamp(mf.month_ns, tz='UTC'):%Y-%m} "
                  "the file is named after",
    )])
    f = FundingRows(label, ts, rate, interval, rows)
    check_funding_values(f)
    return f


def _months_in_range(files: dict[int, MonthFile], start_ns: int | None,
                     end_ns: int | None, pad_before: bool = False) -> list[MonthFile]:
    lo = None if start_ns is None else month_floor_ns(start_ns)
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


def load_dump(root: Path, symbol: str, start_ns: int | None, end_ns: int | None,
               allow_perp_gaps: bool) -> SymbolData:
    dirs = dump_paths(root, symbol)
    files = {kind: monthly_files(folder, symbol, kind) for kind, folder in dirs.items()}
    if not all(files.values()):
        unknown_symbol(root, symbol, {f"{kind} ({dirs[kind]})": bool(files[kind]) for kind in dirs})

    def locator(kind: str) -> Callable[[int], str]:
        def locate(ns: int) -> str:
            mf = files[kind].get(month_floor_ns(ns))
            return mf.label if mf else "no file"
        return locate

    series: dict[str, Series] = {}
    for kind in ("spot", "perp", "mark"):
        parts = []
        for mf in _months_in_range(files[kind], start_ns, end_ns):
            k = _read_kline_file(mf, kind)
            keep = range_mask(k.times, start_ns, end_ns)
            parts.append(Klines(k.label, k.times[keep], {n: v[keep] for n, v in k.values.items()},
                                 k.rows[keep]))
        times, values = merge_klines(kind, parts)
        series[kind] = Series(kind, times, values, locator(kind))

    def month_check(first: int, last: int) -> None:
        m = month_floor_ns(first)
        while m <= last:
            for kind in ("spot", "perp", "mark"):
                if m not in files[kind]:
                    stem = f"{symbol}-1h-{pd.Timestamp(m, tz='UTC'):%Y-%m}"
                    raise DataError(
                        f"{symbol}: no {kind} kline file for {pd.Timestamp(m, tz='UTC'):%Y-%m} although "
                        f"the bars span {fmt_ts(first)} to {fmt_ts(last)}: expected "
                        f"{dirs[kind] / (stem + '.zip')} (or .csv)"
                    )
            m = next_month_ns(m)

    fparts = [_read_dump_funding(mf) for mf in _months_in_range(files["funding"], start_ns, end_ns,
                                                                 pad_before=True)]
    funding = merge_funding(fparts)
    return assemble(symbol, str(root), series, funding, str(dirs["funding"]), start_ns, end_ns,
                     allow_perp_gaps, month_check)
