"""OKX's funding rule for USDT-margined swaps, its caps, the interval of each settlement, and a causal predictor.

The rule (OKX help, "Introduction to perpetual swap funding fee", https://www.okx.com/help/360053909272):

    funding rate = clamp(MA(premium index - interest), floor, cap),   interest = 0,
    premium index = ((best bid + best ask) / 2 - spot index) / spot index, sampled every minute,

MA being the average over the funding period. Cap and floor per instrument (same page): BTC ±0.375 %; ETH, AVAX and
other majors ±0.75 %; other currencies (SOL among them) ±1.5 %. The bundled settlements confirm them: SOLUSDT settles at
exactly -1.5 % on 2022-11-09 16:00 and 2023-01-04 08:00; during the FTX collapse OKX raised SOL's cap (-4.5 %, -6 % on
2022-11-10), so a cap is a snapshot, not a law.

Which period's premium a settlement pays: until January 2024 OKX used cross-period collection (the rate settled at S
is the one fixed at the previous settlement, from the premium of the period before it); it then moved every swap to
current-period collection (OKX announcements of 2023-12-10 and 2024-01-19). `lag_periods` says which closed period
the predictor reads: 0 = the current one (current-period collection), 1 = the one that ended at the last settlement
(cross-period collection as documented). On the bundled 2022-2023 data the settled rates track the premium of the
period two back (lag 2): MAE of the mark-premium predictor, BTC 1.12e-4 (lag 2) vs 1.39e-4 (lag 1) vs 1.37e-4
(lag 0); the rates there lag Binance's by 16 h (correlation peak), one period more than the documented rule, so the
collection's timestamps appear one period late (backtests/data/SOURCES.md). `BUNDLED_DATA_LAG` = 2 is the default
that fits the bundled data; live trading reads OKX's published rate instead.

Intervals: OKX settled these swaps every 8 hours at 00:00/08:00/16:00 UTC (the 2022-12-19 00:00 settlement came at
02:00), and since 2026-04 may shorten a swap's interval one step (8 → 4 → 2 → 1 h) while the rate sits at its cap:
the interval of each settlement is read from the settlement times (`settlement_intervals`), never assumed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

HOUR_NS = 3_600_000_000_000
INTEREST = 0.0  # OKX's interest component: 0
BUNDLED_DATA_LAG = 2
# |rate| cap per base coin (OKX help 360053909272); any other coin: OTHER_CAP
CAPS: dict[str, float] = {"BTC": 0.00375, "ETH": 0.0075, "AVAX": 0.0075, "ADA": 0.0075, "BCH": 0.0075,
                          "DOT": 0.0075, "EOS": 0.0075, "ETC": 0.0075, "FIL": 0.0075, "LINK": 0.0075,
                          "LTC": 0.0075, "TRX": 0.0075, "XRP": 0.0075}
OTHER_CAP = 0.015
# the longest silence between settlements that is still a complete series: 8 h plus the 2 h delay OKX made on
# 2022-12-19 (a missing settlement leaves 16 h)
MAX_GAP_HOURS = 10.0


def cap(symbol: str) -> float:
    """|rate| cap of a carry symbol (BTCUSDT -> 0.00375)."""
    base = symbol[:-4] if symbol.endswith("USDT") else symbol
    return CAPS.get(base, OTHER_CAP)


def rate_from_premium(avg_premium: float, interval_hours: float = 8.0, cap_: float | None = None) -> float:
    """OKX's rate from the period's average premium: avg - interest (0), clamped to ±cap when a cap is given. The
    interval does not enter OKX's formula (no interest term); it is accepted so every venue's formula has one shape."""
    rate = avg_premium - INTEREST
    if cap_ is None:
        return rate
    return min(max(rate, -cap_), cap_)


def settlement_intervals(ts_ns: Sequence[int]) -> list[float]:
    """Hours each settlement covers: the gap to the previous settlement, rounded to the hour (the first takes the
    gap to the next one). Needs at least two settlements."""
    if len(ts_ns) < 2:
        raise ValueError("at least two settlements are needed to read an interval")
    gaps = [round((b - a) / HOUR_NS) for a, b in zip(ts_ns, ts_ns[1:])]
    if any(g <= 0 for g in gaps):
        raise ValueError("settlement times must be strictly increasing, at least 30 min apart")
    return [float(gaps[0])] + [float(g) for g in gaps]


class OkxFundingPredictor:
    """Causal predictor of OKX's next settled rate from the premium inputs.

    Feed in time order: `on_premium(p)` for each closed bar's premium (mark, else perp close, over spot), and
    `on_settlement(rate, interval_hours)` once a settlement has happened; `predict()` uses only what was fed before.
    The premium average of each period (bars between two settlements) is kept; the prediction is the average of the
    period `lag_periods` back (0 = the current period so far), minus OKX's zero interest, clamped to ±`cap`. Before
    that period exists, the last settled rate."""

    def __init__(self, cap: float, lag_periods: int = BUNDLED_DATA_LAG):
        if not cap > 0:
            raise ValueError(f"cap must be > 0, got {cap}")
        if lag_periods not in (0, 1, 2):
            raise ValueError(f"lag_periods must be 0, 1 or 2, got {lag_periods}")
        self.cap = cap
        self.lag = lag_periods
        self.interval_hours: float | None = None
        self.last_settled: float | None = None
        self._current: list[float] = []
        self._closed: list[float | None] = []  # average premium of each closed period, oldest first

    def on_premium(self, value: float) -> None:
        if math.isfinite(value):
            self._current.append(value)

    def on_settlement(self, rate: float, interval_hours: float | None = None) -> None:
        self.last_settled = rate
        self._closed.append(sum(self._current) / len(self._current) if self._current else None)
        del self._closed[:-2]
        self._current = []
        if interval_hours:
            self.interval_hours = interval_hours

    def predict(self) -> float | None:
        if self.lag == 0:
            avg = sum(self._current) / len(self._current) if self._current else None
        else:
            avg = self._closed[-self.lag] if len(self._closed) >= self.lag else None
        if avg is None:
            return self.last_settled
        return rate_from_premium(avg, self.interval_hours or 8.0, self.cap)
