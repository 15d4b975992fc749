"""OKX through a ccxt client (``ccxt.async_support.okx``): 1h candles of the USDT swap and the spot pair, 1h
mark-price candles and every funding settlement, written per month in the layout of the OKX data the project
reads::

    DIR/SYM_1h_YYYY-MM.parquet    index timestamp (naive UTC, the bar's open); open/high/low/close/volume/vwap
                                  _perp_okx and _spot_okx, mark_price_okx (the mark candle's close),
                                  funding_rate_raw_okx (last settled rate, forward-filled), open_interest_usd_okx
    DIR/SYM_funding_YYYY-MM.csv   datetime (UTC), funding_rate: one row per settlement

Volumes as in OKX's candles: the swap's in contracts (ccxt gives the base-coin ``volCcy``, divided back by the
contract value ``ctVal`` exactly), the spot's in the base coin. The candle endpoints give no VWAP or open interest:
those columns are empty. Requests go through ccxt's rate limiter and at most
``jobs`` at once; pages are 100 rows (the most the history and mark-price endpoints give). OKX serves funding
history for about the last three months only: an older month comes back empty and is named as missing.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from basisbot.data.download.manifest import Manifest
from basisbot.data.download.months import Month, month_of
from basisbot.data.download.report import Outcome, Report

HOUR_MS = 3_600_000
PAGE = 100
SERIES = ("perp", "spot", "mark")
COLUMNS = (
    "open_perp_okx", "high_perp_okx", "low_perp_okx", "close_perp_okx", "volume_perp_okx", "vwap_perp_okx",
    "open_spot_okx", "high_spot_okx", "low_spot_okx", "close_spot_okx", "volume_spot_okx", "vwap_spot_okx",
    "mark_price_okx", "funding_rate_raw_okx", "open_interest_usd_okx",
)


def okx_symbols(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> ccxt's ``("BTC/USDT:USDT", "BTC/USDT")`` (swap, spot)."""
    base = symbol[: -len("USDT")]
    return f"{base}/USDT:USDT", f"{base}/USDT"


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".part")
    write(tmp)
    os.replace(tmp, path)


class OkxDownload:
    def __init__(self, out: Path, manifest: Manifest, client, *, jobs: int = 4, today: _dt.date | None = None,
                 tick: Callable[[], None] = lambda: None):
        self.out, self.manifest, self.client, self.tick = out, manifest, client, tick
        self.limit = asyncio.Semaphore(jobs)
        self.today = today or _dt.datetime.now(_dt.UTC).date()
        self.report = Report()

    def plan(self, symbols: list[str], months: list[Month]) -> list[tuple[str, Month]]:
        return [(s, m) for s in symbols for m in months]

    @staticmethod
    def rels(symbol: str, m: Month) -> tuple[str, str]:
        return f"{symbol}_1h_{m}.parquet", f"{symbol}_funding_{m}.csv"

    async def run(self, symbols: list[str], months: list[Month]) -> Report:
        try:
            await self.client.load_markets()
            listed = [s for s in symbols if self._listed(s, months)]
            await asyncio.gather(*(self._symbol(s, months) for s in listed))
        finally:
            await self.client.close()
        return self.report

    def _listed(self, symbol: str, months: list[Month]) -> bool:
        swap, spot = okx_symbols(symbol)
        lacking = [f"{s} ({kind})" for s, kind in ((swap, "USDT swap"), (spot, "spot")) if s not in self.client.markets]
        if lacking:
            self.report.add(Outcome("missing", symbol, f"OKX lists no {' and no '.join(lacking)}"))
            for _ in months:
                self.tick()
            return False
        return True

    async def _symbol(self, symbol: str, months: list[Month]) -> None:
        for m in months:  # in order: a month's funding column carries the previous month's last settlement
            try:
                self.report.add(await self._month(symbol, m))
            except Exception as exc:  # ccxt raises many types (network, exchange errors): each names the request
                self.report.add(Outcome("failed", f"{symbol} {m}", f"{type(exc).__name__}: {exc}"))
            self.tick()

    async def _month(self, symbol: str, m: Month) -> Outcome:
        bars_rel, funding_rel = self.rels(symbol, m)
        label = f"{symbol} {m}"
        is_open = m == month_of(self.today)
        if not is_open and self.manifest.verified(bars_rel) and self.manifest.verified(funding_rel):
            return Outcome("kept", label)
        swap, spot = okx_symbols(symbol)
        start = m.start_ms()
        end = min(m.next().start_ms(), int(pd.Timestamp(self.today).value // 1_000_000) + 24 * HOUR_MS)
        perp, spot_c, mark, funding = await asyncio.gather(
            self._candles(swap, start, end, {}), self._candles(spot, start, end, {}),
            self._candles(swap, start, end, {"price": "mark"}), self._funding(swap, start, end))
        empty = [name for name, rows in (("swap candles", perp), ("spot candles", spot_c),
                                          ("mark-price candles", mark), ("funding history", funding)) if not rows]
        if empty:
            why = " (OKX keeps about three months of funding history)" if empty == ["funding history"] else ""
            return Outcome("missing", label, f"OKX returned no {', no '.join(empty)} for {m}{why}")
        previous = self._last_settlement_before(symbol, m)
        ct_val = Decimal(str(self.client.markets[swap]["contractSize"]))
        perp = [[*r[:5], None if r[5] is None else float(Decimal(str(r[5])) / ct_val)] for r in perp]
        frame = self._frame(perp, spot_c, mark, funding, previous)
        _write_atomic(self.out / bars_rel, lambda p: frame.to_parquet(p, engine="pyarrow"))
        fund = pd.DataFrame({"datetime": pd.to_datetime([t for t, _ in funding], unit="ms", utc=True),
                             "funding_rate": [r for _, r in funding]})
        _write_atomic(self.out / funding_rel, lambda p: fund.to_csv(p, index=False))
        source = f"okx {self.client.urls['api']['rest']}"
        self.manifest.record(bars_rel, url=source, symbol=symbol, dataset="candles", month=str(m), rows=len(frame))
        self.manifest.record(funding_rel, url=source, symbol=symbol, dataset="funding", month=str(m),
                             rows=len(fund))
        return Outcome("fetched", label)

    async def _candles(self, market: str, start: int, end: int, params: dict) -> list[list]:
        rows: dict[int, list] = {}
        since = start
        while since < end:
            until = min(since + PAGE * HOUR_MS, end)
            async with self.limit:
                page = await self.client.fetch_ohlcv(market, "1h", since, PAGE, dict(params, until=until))
            rows.update({int(r[0]): r for r in page if since <= int(r[0]) < until})
            since = until
        return [rows[t] for t in sorted(rows)]

    async def _funding(self, swap: str, start: int, end: int) -> list[tuple[int, float]]:
        """Settlements in [start, end), paging backwards from ``end`` (OKX answers newest first)."""
        out: dict[int, float] = {}
        after = end
        while True:
            async with self.limit:
                page = await self.client.fetch_funding_rate_history(swap, start, PAGE, {"after": after})
            got = [(int(r["timestamp"]), r) for r in page if start <= int(r["timestamp"]) < after]
            for t, r in got:
                info = r.get("info") or {}
                rate = info.get("realizedRate") or info.get("fundingRate") or r["fundingRate"]
                out[t] = float(rate)
            if len(page) < PAGE or not got:
                break
            after = min(t for t, _ in got)
        return sorted(out.items())

    def _last_settlement_before(self, symbol: str, m: Month) -> float | None:
        """The previous month's last settled rate, from its funding file in the folder (if downloaded)."""
        prev = Month(m.year - 1, 12) if m.month == 1 else Month(m.year, m.month - 1)
        path = self.out / self.rels(symbol, prev)[1]
        if not path.is_file():
            return None
        df = pd.read_csv(path)
        return float(df["funding_rate"].iloc[-1]) if len(df) else None

    @staticmethod
    def _frame(perp, spot, mark, funding, previous: float | None) -> pd.DataFrame:
        times = sorted({int(r[0]) for rows in (perp, spot, mark) for r in rows})
        index = pd.DatetimeIndex(pd.to_datetime(times, unit="ms"), name="timestamp").as_unit("us")
        df = pd.DataFrame(index=index, columns=list(COLUMNS), dtype=np.float64)
        for name, rows in (("perp", perp), ("spot", spot)):
            at = pd.to_datetime([int(r[0]) for r in rows], unit="ms")
            for j, field in enumerate(("open", "high", "low", "close", "volume"), start=1):
                df.loc[at, f"{field}_{name}_okx"] = [float(r[j]) if r[j] is not None else np.nan for r in rows]
        df.loc[pd.to_datetime([int(r[0]) for r in mark], unit="ms"), "mark_price_okx"] = [float(r[4]) for r in mark]
        settle_ms = np.array([t for t, _ in funding], dtype=np.int64)
        rates = np.array([r for _, r in funding], dtype=np.float64)
        hours = np.array(times, dtype=np.int64)
        i = np.searchsorted(settle_ms, hours, side="right") - 1
        before = np.nan if previous is None else previous
        df["funding_rate_raw_okx"] = np.where(i >= 0, rates[np.maximum(i, 0)], before)
        return df
