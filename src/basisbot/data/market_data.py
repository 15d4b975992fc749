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
from pathlib import Path

import pandas as pd

from basisbot.data.binance_dump import load_dump
from basisbot.data.bundled import check_exchange, folder_venue, load_bundled
from basisbot.data.discovery import available_symbols, bundled_inventory, detect_layout, dump_paths
from basisbot.data.symbol_data import BAR_COLUMNS, FUNDING_COLUMNS, DataError, SymbolData, to_utc

__all__ = [
    "BAR_COLUMNS",
    "FUNDING_COLUMNS",
    "DataError",
    "SymbolData",
    "available_symbols",
    "data_venue",
    "detect_layout",
    "dump_paths",
    "load_symbol",
]


def load_symbol(data_dir: str | Path, symbol: str,
                start: str | _dt.date | _dt.datetime | pd.Timestamp | None = None,
                end: str | _dt.date | _dt.datetime | pd.Timestamp | None = None,
                *, allow_perp_gaps: bool = False, exchange: str | None = None,
                contract_value=None) -> SymbolData:
    """Load one symbol from either layout into the canonical :class:`SymbolData`.

    ``start`` (inclusive) and ``end`` (exclusive) filter bars by open time and funding by
    settlement time; naive values are UTC. ``allow_perp_gaps=True`` keeps hours without a perp
    candle as NaN rows (listed in ``gaps``) instead of raising.

    ``exchange`` (the config's ``[exchange] name``), when given, must match the venue of the data: OKX data (columns
    ``*_okx``) with "binance", or Binance data (``*_binance`` columns, the public-dump tree) with "okx", is a
    DataError naming what to supply. ``contract_value`` (base units per OKX swap contract) converts OKX swap volumes;
    by default it comes from the bundled OKX snapshot.
    """
    root = Path(data_dir).resolve()
    layout = detect_layout(root)
    start_ts, end_ts = to_utc(start, "start"), to_utc(end, "end")
    if start_ts is not None and end_ts is not None and end_ts <= start_ts:
        raise DataError(f"end {end_ts} is not after start {start_ts}")
    start_ns = None if start_ts is None else start_ts.value
    end_ns = None if end_ts is None else end_ts.value
    symbol = symbol.strip().upper()
    if layout == "bundled":
        return load_bundled(root, symbol, start_ns, end_ns, allow_perp_gaps, exchange, contract_value)
    check_exchange(root, "binance", exchange)  # the public-dump tree is Binance's
    return load_dump(root, symbol, start_ns, end_ns, allow_perp_gaps)


def data_venue(data_dir: str | Path) -> str:
    """The venue of a data folder: "okx" or "binance" (bundled layout: from the parquet columns; dump: binance)."""
    root = Path(data_dir).resolve()
    if detect_layout(root) != "bundled":
        return "binance"
    return folder_venue(root, bundled_inventory(root)[0])
