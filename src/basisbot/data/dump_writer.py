"""Write canonical :class:`~basisbot.data.market_data.SymbolData` in Binance's public-dump layout.

Used by tests and demos to show that the same backtest on a folder in the data.binance.vision
layout gives identical results. Files written (one per calendar month, UTC)::

    OUT/spot/monthly/klines/SYM/1h/SYM-1h-YYYY-MM.zip              no header; ms, µs from 2025-01-01
    OUT/futures/um/monthly/klines/SYM/1h/SYM-1h-YYYY-MM.zip        header row
    OUT/futures/um/monthly/markPriceKlines/SYM/1h/SYM-1h-YYYY-MM.zip  header row
    OUT/futures/um/monthly/fundingRate/SYM/SYM-fundingRate-YYYY-MM.zip
        header calc_time,funding_interval_hours,last_funding_rate; calc_time in ms

(``zipped=False`` writes the ``.csv`` instead of the ``.zip``.)

What is *not* reproduced, because the canonical form does not carry it:

* kline columns quote_volume, count, taker_buy_volume, taker_buy_quote_volume, ignore are written
  as ``0`` (the loader ignores them);
* mark-price klines: ``open`` is written equal to ``close`` and, when ``mark_high``/``mark_low``
  are NaN (bundled layout), ``high = low = close = mark_close``. Loading the written dump
  therefore gives ``mark_high == mark_low == mark_close`` where the original had NaN; every other
  bar column and all funding columns round-trip exactly (floats are written in their shortest
  exact decimal form);
* hours whose spot (or perp) candle is NaN are simply absent from that month's file, as in
  Binance's own dumps for exchange outages.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from basisbot.core.units import HOUR_NS
from basisbot.data.discovery import dump_paths
from basisbot.data.market_data import load_symbol
from basisbot.data.symbol_data import FUNDING_HEADER, KLINE_HEADER, SymbolData, index_ns

__all__ = ["export_binance_dump", "write_binance_dump"]

_SPOT_US_FROM_NS = pd.Timestamp("2025-01-01", tz="UTC").value
_OHLCV = ("open", "high", "low", "close", "volume")


def _fmt_float(x: float) -> str:
    return np.format_float_positional(float(x), unique=True, trim="-")


def _write(folder: Path, stem: str, text: str, zipped: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if zipped:
        path = folder / f"{stem}.zip"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{stem}.csv", text)
        path.write_bytes(buf.getvalue())
    else:
        path = folder / f"{stem}.csv"
        path.write_text(text, encoding="utf-8", newline="")
    return path


def _kline_lines(open_ns: np.ndarray, o, h, lo, c, v, *, spot: bool) -> list[str]:
    lines = []
    for t, *vals in zip(open_ns.tolist(), o, h, lo, c, v):
        # Binance spot dumps switched to microseconds on 2025-01-01; everything else is ms
        div = 1_000 if spot and t >= _SPOT_US_FROM_NS else 1_000_000
        ot = t // div
        ct = (t + HOUR_NS) // div - 1
        fields = [str(ot), *(_fmt_float(x) for x in vals), str(ct), "0", "0", "0", "0", "0"]
        lines.append(",".join(fields))
    return lines


def _months(index: pd.DatetimeIndex) -> pd.PeriodIndex:
    return index.tz_convert("UTC").tz_localize(None).to_period("M")


def write_binance_dump(symbol_data: SymbolData, out_dir: str | Path, *, zipped: bool = True) -> list[Path]:
    """Write ``symbol_data`` under ``out_dir`` in the public-dump layout; returns the files written.

    A file is written for every month that has bars (even if, say, all its spot hours are NaN),
    and for every month that has funding settlements.
    """
    sym = symbol_data.symbol
    bars = symbol_data.bars
    if bars.empty:
        raise ValueError(f"{sym}: no bars to write")
    if bars["mark_close"].isna().any():
        raise ValueError(f"{sym}: mark_close has NaN; the canonical form requires a complete mark price")
    dirs = dump_paths(out_dir, sym)
    written: list[Path] = []
    open_ns = index_ns(bars.index)
    months = _months(bars.index)
    for period in months.unique():
        in_month = np.asarray(months == period)
        stem = f"{sym}-1h-{period.year:04d}-{period.month:02d}"
        t = open_ns[in_month]
        m = bars.loc[in_month]
        for kind, spot in (("spot", True), ("perp", False)):
            cols = [m[f"{kind}_{n}"].to_numpy(np.float64) for n in _OHLCV]
            present = ~np.isnan(np.column_stack(cols)).any(axis=1)
            lines = _kline_lines(t[present], *(c[present] for c in cols), spot=spot)
            if not spot:
                lines.insert(0, ",".join(KLINE_HEADER))
            written.append(_write(dirs[kind], stem, "".join(x + "\n" for x in lines), zipped))
        close = m["mark_close"].to_numpy(np.float64)
        high = m["mark_high"].to_numpy(np.float64)
        low = m["mark_low"].to_numpy(np.float64)
        no_ohlc = np.isnan(high) | np.isnan(low)
        high = np.where(no_ohlc, close, high)
        low = np.where(no_ohlc, close, low)
        zeros = np.zeros(len(close))
        lines = [",".join(KLINE_HEADER), *_kline_lines(t, close, high, low, close, zeros, spot=False)]
        written.append(_write(dirs["mark"], stem, "".join(x + "\n" for x in lines), zipped))

    funding = symbol_data.funding
    if len(funding):
        ts = pd.DatetimeIndex(funding["ts"])
        ts_ns = index_ns(ts)
        if (ts_ns % 1_000_000).any():
            raise ValueError(f"{sym}: funding times finer than a millisecond cannot be written as calc_time")
        fmonths = _months(ts)
        for period in fmonths.unique():
            sel = np.asarray(fmonths == period)
            lines = [",".join(FUNDING_HEADER)]
            for t, iv, r in zip((ts_ns[sel] // 1_000_000).tolist(),
                                funding["interval_hours"].to_numpy(np.float64)[sel],
                                funding["rate"].to_numpy(np.float64)[sel]):
                ivs = str(int(iv)) if float(iv).is_integer() else _fmt_float(iv)
                lines.append(f"{t},{ivs},{_fmt_float(r)}")
            stem = f"{sym}-fundingRate-{period.year:04d}-{period.month:02d}"
            written.append(_write(dirs["funding"], stem, "".join(x + "\n" for x in lines), zipped))
    return written


def export_binance_dump(data_dir: str | Path, symbol: str, out_dir: str | Path, start=None, end=None,
                        *, zipped: bool = True, allow_perp_gaps: bool = False) -> list[Path]:
    """Load ``symbol`` from ``data_dir`` (any layout) and write it to ``out_dir`` in the dump layout."""
    data = load_symbol(data_dir, symbol, start, end, allow_perp_gaps=allow_perp_gaps)
    return write_binance_dump(data, out_dir, zipped=zipped)
