"""The canonical in-memory market data of one symbol (`SymbolData`), its columns, the source file headers,
`DataError`, and the timestamp helpers every importer shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from basisbot.core.units import HOUR_NS, MINUTE_NS

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






US_THRESHOLD = 10**14          # >= this: microseconds, below: milliseconds


MAX_FUNDING_GAP_NS = 8 * HOUR_NS + MINUTE_NS


MIN_FUNDING_GAP_NS = 30 * MINUTE_NS


OHLC = ("open", "high", "low", "close")


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


def to_utc(value, what: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{what}={value!r} is not a date/time: {exc}") from None
    if ts is pd.NaT:
        raise DataError(f"{what}={value!r} is not a date/time")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def index_ns(index: pd.DatetimeIndex) -> np.ndarray:
    """int64 nanoseconds since the epoch of a tz-aware (or naive = UTC) DatetimeIndex."""
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.astype("datetime64[ns]")).view(np.int64)


def fmt_ts(ns: int) -> str:
    ts = pd.Timestamp(int(ns), tz="UTC")
    if ts.second == 0 and ts.microsecond == 0 and ts.nanosecond == 0:
        return ts.strftime("%Y-%m-%d %H:%M")
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")


def month_floor_ns(ns: int) -> int:
    ts = pd.Timestamp(int(ns), tz="UTC")
    return pd.Timestamp(year=ts.year, month=ts.month, day=1, tz="UTC").value


def next_month_ns(month_ns: int) -> int:
    ts = pd.Timestamp(int(month_ns), tz="UTC")
    y, m = (ts.year + 1, 1) if ts.month == 12 else (ts.year, ts.month + 1)
    return pd.Timestamp(year=y, month=m, day=1, tz="UTC").value
