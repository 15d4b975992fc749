"""Intra-bar price paths built from the real hourly bars, and the funding schedule.

Each hourly bar becomes a piecewise-linear path with vertices at 0, 20, 40 and 60 minutes (the last one at the
bar's final millisecond):

* rising bar (close >= open): open -> low -> high -> close; falling bar: open -> high -> low -> close, so every bar
  touches its real high and low;
* the mark price follows the perp path plus an offset that moves linearly from the previous bar's
  (mark_close - perp_close) to this bar's, so it ends each bar exactly at the recorded ``mark_close`` and is
  continuous from one bar to the next (up to the perp's own open/close gap);
* hours without a perp candle (a hole in the source, trading went on): perp and mark go linearly from the previous
  mark close to this bar's mark close;
* hours without a spot candle (a real spot outage): the spot market is closed, its price stays at the last close;
* the index price is the spot path (the last close while spot is closed).

Between vertices prices are linear, so the extremes over any interval are at its ends or at vertices in between:
stepping the venue from vertex to vertex checks fills and liquidations exactly.

Funding: settlement times and rates straight from the data (their exact millisecond). The predicted rate shown
before a settlement is a model (see ``SimConfig.predicted_rate``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from basisbot.core.units import HOUR_MS
from basisbot.data.market_data import SymbolData, load_symbol

_OFFSETS = np.array([0, HOUR_MS // 3, 2 * HOUR_MS // 3, HOUR_MS - 1], dtype=np.int64)
_FRACS = np.array([0.0, 1 / 3, 2 / 3, 1.0])


def _ffill(values: np.ndarray, first: float) -> np.ndarray:
    out = values.copy()
    last = first
    for i in range(len(out)):
        if math.isnan(out[i]):
            out[i] = last
        else:
            last = out[i]
    return out


class SymbolPaths:
    """Price paths (perp, mark, spot, index) and funding schedule of one symbol, times in ms UTC."""

    def __init__(self, data: SymbolData):
        self.symbol = data.symbol
        bars = data.bars
        self.bars = bars  # the hourly source bars (candle endpoints serve them as they are)
        ns = bars.index.tz_convert("UTC").tz_localize(None).values.astype("datetime64[ns]").view(np.int64)
        self.open_ms = (ns // 1_000_000).astype(np.int64)
        self.n = len(self.open_ms)
        self.first_open = int(self.open_ms[0])
        self.end_ms = int(self.open_ms[-1]) + HOUR_MS - 1

        col = {c: bars[c].to_numpy(dtype=np.float64) for c in bars.columns}
        mark_c = col["mark_close"]
        perp_nan = np.isnan(col["perp_open"])
        first_mark = col["perp_open"][0] if not perp_nan[0] else mark_c[0]
        prev_mark = np.concatenate([[first_mark], mark_c[:-1]])
        o = np.where(perp_nan, prev_mark, col["perp_open"])
        c = np.where(perp_nan, mark_c, col["perp_close"])
        h = np.where(perp_nan, np.maximum(o, c), col["perp_high"])
        lo = np.where(perp_nan, np.minimum(o, c), col["perp_low"])
        perp_v = self._vertices(o, h, lo, c, linear=perp_nan)
        off = np.where(perp_nan, 0.0, mark_c - c)
        prev_off = np.concatenate([[off[0]], off[:-1]])
        offs = prev_off[:, None] + (off - prev_off)[:, None] * _FRACS[None, :]
        mark_v = perp_v + offs
        mark_v[:, 3] = mark_c  # exact

        self.spot_closed = np.isnan(col["spot_open"])
        sc = _ffill(col["spot_close"], float(mark_c[0]) if math.isnan(col["spot_close"][0]) else col["spot_close"][0])
        prev_sc = np.concatenate([[sc[0]], sc[:-1]])
        so = np.where(self.spot_closed, prev_sc, col["spot_open"])
        sh = np.where(self.spot_closed, prev_sc, col["spot_high"])
        sl = np.where(self.spot_closed, prev_sc, col["spot_low"])
        scl = np.where(self.spot_closed, prev_sc, col["spot_close"])
        spot_v = self._vertices(so, sh, sl, scl, linear=self.spot_closed)

        self.times = (self.open_ms[:, None] + _OFFSETS[None, :]).ravel()
        self.perp_v = perp_v.ravel()
        self.mark_v = mark_v.ravel()
        self.spot_v = spot_v.ravel()
        self.perp_volume = np.nan_to_num(col["perp_volume"])
        self.spot_volume = np.nan_to_num(col["spot_volume"])

        f = data.funding
        fns = f["ts"].dt.tz_convert("UTC").dt.tz_localize(None).values.astype("datetime64[ns]").view(np.int64)
        self.fund_ts = (fns // 1_000_000).astype(np.int64)
        self.fund_rate = f["rate"].to_numpy(dtype=np.float64)
        self.fund_interval_h = f["interval_hours"].to_numpy(dtype=np.float64)

    @staticmethod
    def _vertices(o, h, lo, c, linear) -> np.ndarray:
        up = c >= o
        x = np.where(up, lo, h)
        y = np.where(up, h, lo)
        # a bar without a candle of its own goes straight from open to close
        x = np.where(linear, o + (c - o) / 3, x)
        y = np.where(linear, o + 2 * (c - o) / 3, y)
        return np.stack([o, x, y, c], axis=1)

    # -- prices ---------------------------------------------------------------------------------------------------
    def _at(self, values: np.ndarray, t: int) -> float:
        return float(np.interp(t, self.times, values))

    def perp(self, t: int) -> float:
        return self._at(self.perp_v, t)

    def mark(self, t: int) -> float:
        return self._at(self.mark_v, t)

    def spot(self, t: int) -> float:
        return self._at(self.spot_v, t)

    def index(self, t: int) -> float:
        return self.spot(t)

    def bar_index(self, t: int) -> int:
        return int(min(max((t - self.first_open) // HOUR_MS, 0), self.n - 1))

    def spot_is_open(self, t: int) -> bool:
        return not bool(self.spot_closed[self.bar_index(t)])

    def vertex_times(self, t0: int, t1: int) -> np.ndarray:
        """Vertex times in (t0, t1]."""
        i = np.searchsorted(self.times, t0, side="right")
        j = np.searchsorted(self.times, t1, side="right")
        return self.times[i:j]

    def kline(self, kind: str, bar: int, t: int) -> dict:
        """OHLCV of bar ``bar`` as seen at replay time ``t`` (partial when t is inside the bar)."""
        values = {"perp": self.perp_v, "mark": self.mark_v, "spot": self.spot_v}[kind]
        start = int(self.open_ms[bar])
        end = start + HOUR_MS - 1
        t = min(max(t, start), end)
        vi = self.times[bar * 4: bar * 4 + 4]
        vv = values[bar * 4: bar * 4 + 4]
        seen = [float(v) for tv, v in zip(vi, vv) if tv <= t]
        cur = self._at(values, t)
        seen.append(cur)
        frac = (t - start + 1) / HOUR_MS
        vol = {"perp": self.perp_volume, "spot": self.spot_volume}.get(kind)
        volume = float(vol[bar]) * frac if vol is not None else 0.0
        return {"open_time": start, "close_time": end, "open": seen[0], "high": max(seen), "low": min(seen),
                "close": cur, "volume": volume, "closed": t >= end}

    # -- funding --------------------------------------------------------------------------------------------------
    def next_settlement_index(self, t: int) -> int:
        """Index of the first settlement strictly after t (len(fund_ts) if none)."""
        return int(np.searchsorted(self.fund_ts, t, side="right"))

    def settlements_between(self, t0: int, t1: int) -> range:
        """Indices of settlements with t0 < ts <= t1."""
        return range(self.next_settlement_index(t0), self.next_settlement_index(t1))

    def next_funding_time(self, t: int) -> int:
        i = self.next_settlement_index(t)
        if i < len(self.fund_ts):
            return int(self.fund_ts[i])
        if len(self.fund_ts) == 0:
            return (t // (8 * HOUR_MS) + 1) * 8 * HOUR_MS
        step = int(self.fund_interval_h[-1] * HOUR_MS)
        last = int(self.fund_ts[-1])
        return last + ((t - last) // step + 1) * step

    def interval_hours(self, t: int) -> float:
        if len(self.fund_ts) == 0:
            return 8.0
        i = min(self.next_settlement_index(t), len(self.fund_ts) - 1)
        return float(self.fund_interval_h[i])

    def last_settled_rate(self, t: int) -> float:
        i = self.next_settlement_index(t)
        if i == 0:
            return float(self.fund_rate[0]) if len(self.fund_rate) else 0.0
        return float(self.fund_rate[i - 1])

    def predicted_rate(self, t: int, mode: str = "interpolate") -> float:
        if len(self.fund_rate) == 0:
            return 0.0
        i = self.next_settlement_index(t)
        if i >= len(self.fund_ts):
            return float(self.fund_rate[-1])
        nxt = float(self.fund_rate[i])
        if mode == "next":
            return nxt
        prev = self.last_settled_rate(t)
        if mode == "last":
            return prev
        t_prev = int(self.fund_ts[i - 1]) if i > 0 else int(self.fund_ts[i]) - int(self.fund_interval_h[i] * HOUR_MS)
        span = max(1, int(self.fund_ts[i]) - t_prev)
        frac = min(max((t - t_prev) / span, 0.0), 1.0)
        return prev + (nxt - prev) * frac

    def funding_history(self, start: int | None, end: int | None, limit: int, now: int) -> list[tuple[int, float]]:
        """Settled (ts, rate) with ts <= now, Binance's rules: from startTime ascending, else the latest ``limit``."""
        hi = self.next_settlement_index(min(now, end) if end is not None else now)
        lo = 0 if start is None else int(np.searchsorted(self.fund_ts, start, side="left"))
        idx = range(lo, hi)
        if start is None:
            idx = idx[-limit:]
        else:
            idx = idx[:limit]
        return [(int(self.fund_ts[i]), float(self.fund_rate[i])) for i in idx]


@lru_cache(maxsize=16)
def load_paths(data_dir: str, symbol: str) -> SymbolPaths:
    return SymbolPaths(load_symbol(Path(data_dir), symbol, allow_perp_gaps=True))


def quote(price: float, tick: float) -> tuple[float, float]:
    """Best bid/ask one tick apart around ``price``: bid = price rounded down to the tick."""
    ticks = math.floor(price / tick + 1e-9)
    ticks = max(ticks, 1)
    return ticks * tick, (ticks + 1) * tick

