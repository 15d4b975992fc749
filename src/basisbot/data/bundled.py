"""The bundled layout: `SYM_1h_*.parquet` (spot, perp, mark at the bar's close) and `SYM_funding_*.csv`.

The venue is read from the parquet's column suffix: `*_binance` (backtests/data/binance) or `*_okx`
(backtests/data/okx). OKX swap candles count volume in contracts; the loader converts it to base units with the
symbol's contract value (`basisbot.venues.okx.contracts`), so `SymbolData` means the same on every venue. OKX's
settlement series may pause up to 10 h (the 2022-12-19 settlement came 2 h late) where Binance's never exceeds 8 h."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from basisbot.data.csv_table import parse_table
from basisbot.data.discovery import bundled_inventory, unknown_symbol
from basisbot.data.symbol_data import HOUR_NS, MINUTE_NS, DataError, SymbolData, index_ns
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
from basisbot.venues import get_profile
from basisbot.venues.okx.contracts import OkxDataError, spec_for


def _read_bundled_funding(path: Path) -> FundingRows:
    label = f"file {path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{label}: cannot read: {exc}") from None
    t = parse_table(data, label, ("datetime", "funding_rate"), required=2)
    rows = t.rows
    if t.names is None:
        raise DataError(f"{label}, row 1: expected the header 'datetime,funding_rate'")
    cells = t.raw(0)
    parsed = pd.to_datetime(cells, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise row_error(label, int(rows[i]), None, f"datetime {cells.iloc[i]!r} is not a date/time")
    ts = index_ns(pd.DatetimeIndex(parsed))
    rate = t.floats(1, "funding_rate", ts)
    f = FundingRows(label, ts, rate, np.full(len(ts), np.nan), rows)
    check_funding_values(f)
    return f


VENUES = ("binance", "okx")


def _bundled_cols(venue: str) -> dict[str, dict[str, str]]:
    return {
        "spot": {n: f"{n}_spot_{venue}" for n in ("open", "high", "low", "close", "volume")},
        "perp": {n: f"{n}_perp_{venue}" for n in ("open", "high", "low", "close", "volume")},
        "mark": {"close": f"mark_price_{venue}"},
    }


def file_venue(path: Path) -> str:
    """The venue of a bundled parquet file, from its column suffix (`close_perp_binance` / `close_perp_okx`)."""
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataError(f"file {path}: cannot read parquet: {exc}") from None
    found = [v for v in VENUES if f"close_perp_{v}" in names]
    if len(found) != 1:
        raise DataError(f"file {path}: cannot tell the venue: expected exactly one of the columns "
                        f"{', '.join(f'close_perp_{v}' for v in VENUES)} (got {', '.join(names[:8])}...)")
    return found[0]


def _read_bundled_bars(path: Path, start_ns: int | None, end_ns: int | None,
                       venue: str = "binance") -> dict[str, Klines]:
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
        raise row_error(label, i + 1, None, "timestamp is empty")
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    times_all = index_ns(idx)
    bundled_cols = _bundled_cols(venue)
    needed = [c for cols in bundled_cols.values() for c in cols.values()]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise DataError(f"{label}: missing columns {absent}")
    rows_all = np.arange(1, len(df) + 1, dtype=np.int64)
    check_order(label, times_all, rows_all, "timestamp")
    keep = range_mask(times_all, start_ns, end_ns)
    times, rows = times_all[keep], rows_all[keep]
    first_failure(label, rows, times, [
        (times % HOUR_NS != 0, lambda i: "timestamp is not on the hour (not hourly bars?)"),
    ])
    out: dict[str, Klines] = {}
    for kind, mapping in bundled_cols.items():
        vals = {n: df[c].to_numpy(dtype=np.float64, na_value=np.nan)[keep] for n, c in mapping.items()}
        nan = np.column_stack([np.isnan(v) for v in vals.values()])
        partial = nan.any(axis=1) & ~nan.all(axis=1)
        infinite = np.column_stack([np.isinf(v) for v in vals.values()]).any(axis=1)
        def empty_cols(i: int, vals=vals, mapping=mapping) -> str:
            return ", ".join(mapping[n] for n, v in vals.items() if np.isnan(v[i]))

        first_failure(label, rows, times, [
            (partial, lambda i, k=kind, f=empty_cols: f"{k} columns partly empty ({f(i)})"),
            (infinite, lambda i, k=kind: f"{k} value is infinite"),
        ])
        present = ~nan.all(axis=1)  # an all-NaN row is a missing hour (reported by assemble)
        k = Klines(label, times[present], {n: v[present] for n, v in vals.items()}, rows[present])
        if kind == "mark":
            mc = k.values["close"]
            first_failure(label, k.rows, k.times, [
                (mc <= 0, lambda i: f"non-positive mark price {float(mc[i])!r}"),
            ])
            k.values["high"] = np.full(len(mc), np.nan)
            k.values["low"] = np.full(len(mc), np.nan)
        else:
            k.label = f"{label} ({kind})"
            check_klines(k, check_open=True, check_volume=True)
            k.label = label
        out[kind] = k
    return out


def folder_venue(root: Path, bars_files: dict[str, list[Path]]) -> str:
    """The one venue of a bundled folder's parquet files; files of two venues in one folder is a DataError."""
    seen: dict[str, Path] = {}
    for paths in bars_files.values():
        for p in paths:
            seen.setdefault(file_venue(p), p)
    if len(seen) > 1:
        raise DataError(f"{root}: holds data of several venues ({', '.join(f'{v}: {p.name}' for v, p in seen.items())}"
                        "); keep one venue per folder")
    return next(iter(seen), "binance")


def check_exchange(root: Path, venue: str, exchange: str | None) -> None:
    """A folder of one venue's data given with another exchange name is a clear error naming what to supply."""
    if exchange is None or exchange == venue:
        return
    raise DataError(f"{root}: this is {venue} data (columns *_{venue}) but the exchange is {exchange!r}: set "
                    f"[exchange] name = \"{venue}\" in the config, or pass a folder of {exchange} data "
                    f"(SYM_1h_*.parquet with *_{exchange} columns beside SYM_funding_*.csv)")


def _okx_contract_value(root: Path, symbol: str, contract_value) -> float:
    if contract_value is not None:
        return float(contract_value)
    try:
        return float(spec_for(symbol).ct_val)
    except OkxDataError as e:
        raise DataError(f"{root}: OKX swap volumes are in contracts and {e}") from None


def load_bundled(root: Path, symbol: str, start_ns: int | None, end_ns: int | None,
                  allow_perp_gaps: bool, exchange: str | None = None, contract_value=None) -> SymbolData:
    bars_files, funding_files = bundled_inventory(root)
    venue = folder_venue(root, bars_files)
    check_exchange(root, venue, exchange)
    if symbol not in bars_files or symbol not in funding_files:
        unknown_symbol(root, symbol, {"bars (SYM_1h_*.parquet)": symbol in bars_files,
                                       "funding (SYM_funding_*.csv)": symbol in funding_files})
    per_kind: dict[str, list[Klines]] = {"spot": [], "perp": [], "mark": []}
    spans: list[tuple[int, int, str]] = []
    for path in bars_files[symbol]:
        parts = _read_bundled_bars(path, start_ns, end_ns, venue)
        for kind, k in parts.items():
            per_kind[kind].append(k)
        allt = np.concatenate([k.times for k in parts.values()])
        if len(allt):
            spans.append((int(allt.min()), int(allt.max()), f"file {path}"))
    if venue == "okx":  # swap volume in contracts -> base units
        ct = _okx_contract_value(root, symbol, contract_value)
        for k in per_kind["perp"]:
            k.values["volume"] = k.values["volume"] * ct

    def locate(ns: int) -> str:
        hits = [lab for lo, hi, lab in spans if lo <= ns <= hi]
        return ", ".join(hits or [lab for _, _, lab in spans])

    series = {}
    for kind, parts in per_kind.items():
        times, values = merge_klines(kind, parts)
        series[kind] = Series(kind, times, values, locate)
    funding = merge_funding([_read_bundled_funding(p) for p in funding_files[symbol]])
    files = ", ".join(str(p) for p in funding_files[symbol])
    rules = funding_rules(venue)
    return assemble(symbol, str(root), series, funding, files, start_ns, end_ns,
                     allow_perp_gaps, None, **rules)


def funding_rules(venue: str) -> dict:
    """The settlement-coverage rule of a venue: the longest silence that is still a complete series (the profile's
    `max_interval_hours`, plus a minute of jitter) and its wording."""
    hours = get_profile(venue).funding.max_interval_hours
    return {"max_gap_ns": int(hours * HOUR_NS) + MINUTE_NS, "coverage_rule": COVERAGE_RULES[venue]}


# how each venue's rule reads in an error
COVERAGE_RULES = {
    "binance": "Binance settles at least every 8 h",
    "okx": "OKX settles at least every 8 h (10 h once, when the 2022-12-19 settlement came 2 h late)",
}
