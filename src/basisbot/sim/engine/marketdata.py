"""Public market data in Binance's JSON shapes (REST and websocket payloads), computed from the replay paths."""

from __future__ import annotations

import numpy as np

from basisbot.core.units import HOUR_MS
from basisbot.sim.engine import errors
from basisbot.sim.engine.markets import (
    Market,
    f8,
    futures_symbol_info,
    raw_exchange_info,
    spot_symbol_info,
)
from basisbot.sim.engine.prices import SymbolPaths

INTERVALS_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": HOUR_MS, "2h": 2 * HOUR_MS, "4h": 4 * HOUR_MS, "6h": 6 * HOUR_MS, "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS, "1d": 24 * HOUR_MS,
}
_RATE_LIMITS_SPOT = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def spot_exchange_info(markets: dict[str, Market], t: int) -> dict:
    return {"timezone": "UTC", "serverTime": t, "rateLimits": _RATE_LIMITS_SPOT, "exchangeFilters": [],
            "symbols": [spot_symbol_info(m) for m in markets.values()]}


def futures_exchange_info(markets: dict[str, Market], t: int) -> dict:
    raw = raw_exchange_info()
    assets = [a for a in raw.get("assets", []) if a.get("asset") == "USDT"] or [
        {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
    return {"timezone": "UTC", "serverTime": t, "futuresType": "U_MARGINED", "rateLimits": raw.get("rateLimits", []),
            "exchangeFilters": [], "assets": assets,
            "symbols": [futures_symbol_info(m) for m in markets.values()]}


def premium_index(p: SymbolPaths, m: Market, t: int, mode: str) -> dict:
    nxt = p.next_funding_time(t)
    ih = p.interval_hours(t)
    return {
        "symbol": m.symbol,
        "markPrice": f8(p.mark(t)),
        "indexPrice": f8(p.index(t)),
        "estimatedSettlePrice": f8(p.index(t)),
        "lastFundingRate": f8(p.predicted_rate(t, mode)),
        "interestRate": f8(0.0003 * ih / 24),
        "nextFundingTime": nxt,
        "time": t,
    }


def funding_info(p: SymbolPaths, m: Market, t: int) -> dict:
    return {"symbol": m.symbol, "adjustedFundingRateCap": "0.02000000", "adjustedFundingRateFloor": "-0.02000000",
            "fundingIntervalHours": int(round(p.interval_hours(t))), "disclaimer": False}


def mark_price_update(p: SymbolPaths, m: Market, t: int, mode: str) -> dict:
    mark = p.mark(t)
    return {"e": "markPriceUpdate", "E": t, "s": m.symbol, "p": f8(mark), "ap": f8(mark), "i": f8(p.index(t)),
            "P": f8(p.index(t)), "r": f8(p.predicted_rate(t, mode)), "T": p.next_funding_time(t)}


def book_ticker_ws(q, m: Market, t: int, futures: bool, update_id: int) -> dict:
    if futures:
        return {"e": "bookTicker", "u": update_id, "E": t, "T": t, "s": m.symbol,
                "b": m.fmt_perp_price(q.bid), "B": m.fmt_perp_qty(q.bid_qty),
                "a": m.fmt_perp_price(q.ask), "A": m.fmt_perp_qty(q.ask_qty)}
    return {"u": update_id, "s": m.symbol, "b": f8(q.bid), "B": f8(q.bid_qty), "a": f8(q.ask), "A": f8(q.ask_qty)}


def book_ticker_rest(q, m: Market, t: int, futures: bool) -> dict:
    if futures:
        return {"symbol": m.symbol, "bidPrice": m.fmt_perp_price(q.bid), "bidQty": m.fmt_perp_qty(q.bid_qty),
                "askPrice": m.fmt_perp_price(q.ask), "askQty": m.fmt_perp_qty(q.ask_qty), "time": t,
                "lastUpdateId": t}
    return {"symbol": m.symbol, "bidPrice": f8(q.bid), "bidQty": f8(q.bid_qty), "askPrice": f8(q.ask),
            "askQty": f8(q.ask_qty)}


def depth(q, m: Market, t: int, futures: bool, limit: int) -> dict:
    levels = max(1, min(limit, 20))
    tick = m.perp_tick if futures else m.spot_tick
    fp = m.fmt_perp_price if futures else f8
    fq = m.fmt_perp_qty if futures else f8
    bids = [[fp(q.bid - i * tick), fq(q.bid_qty)] for i in range(levels) if q.bid - i * tick > 0]
    asks = [[fp(q.ask + i * tick), fq(q.ask_qty)] for i in range(levels)]
    out = {"lastUpdateId": t, "bids": bids, "asks": asks}
    if futures:
        out.update({"E": t, "T": t})
    return out


def _values(p: SymbolPaths, kind: str) -> np.ndarray:
    return {"perp": p.perp_v, "mark": p.mark_v, "spot": p.spot_v}[kind]


def window_stats(p: SymbolPaths, kind: str, a: int, b: int) -> tuple[float, float, float, float]:
    """open, high, low, close of the path over [a, b]."""
    vals = _values(p, kind)
    o = float(np.interp(a, p.times, vals))
    c = float(np.interp(b, p.times, vals))
    i = np.searchsorted(p.times, a, side="right")
    j = np.searchsorted(p.times, b, side="left")
    inner = vals[i:j]
    hi = max(o, c, float(inner.max()) if len(inner) else o)
    lo = min(o, c, float(inner.min()) if len(inner) else o)
    return o, hi, lo, c


def window_volume(p: SymbolPaths, kind: str, a: int, b: int) -> float:
    vol = {"perp": p.perp_volume, "spot": p.spot_volume}.get(kind)
    if vol is None or b < a:
        return 0.0
    first, last = p.bar_index(a), p.bar_index(b)
    total = 0.0
    for i in range(first, last + 1):
        s = int(p.open_ms[i])
        e = s + HOUR_MS
        overlap = max(0, min(e, b + 1) - max(s, a))
        total += float(vol[i]) * overlap / HOUR_MS
    return total


def klines(p: SymbolPaths, m: Market, kind: str, interval: str | None, start: int | None, end: int | None,
           limit: int | None, now: int, futures: bool) -> list[list]:
    if not interval:
        raise errors.mandatory("interval")
    step = INTERVALS_MS.get(interval)
    if step is None:
        raise errors.BinanceError(-1120, "Invalid interval.", 400)
    max_limit = 1500 if futures else 1000
    limit = 500 if limit is None else max(1, min(int(limit), max_limit))
    first = p.first_open
    last_open = (min(now, p.end_ms) // step) * step
    if end is not None:
        last_open = min(last_open, (end // step) * step)
    if start is not None:
        o0 = max(((start + step - 1) // step) * step, (first // step) * step)
        opens = range(o0, last_open + 1, step)[:limit]
    else:
        o_first = max((first // step) * step, last_open - (limit - 1) * step)
        opens = range(o_first, last_open + 1, step)
    fp = m.fmt_perp_price if futures else f8
    rows = []
    for o_t in opens:
        a = max(o_t, first)
        b = min(o_t + step - 1, now, p.end_ms)
        if b < a:
            continue
        o, h, lo, c = window_stats(p, kind, a, b)
        v = window_volume(p, kind, a, b)
        rows.append([o_t, fp(o), fp(h), fp(lo), fp(c), f"{v:.8f}", o_t + step - 1, f"{v * c:.8f}", 0,
                     f"{v / 2:.8f}", f"{v * c / 2:.8f}", "0"])
    return rows


def kline_event(p: SymbolPaths, m: Market, kind: str, interval: str, t: int, futures: bool) -> dict:
    step = INTERVALS_MS[interval]
    o_t = (t // step) * step
    a = max(o_t, p.first_open)
    b = min(t, p.end_ms)
    o, h, lo, c = window_stats(p, kind, a, b)
    v = window_volume(p, kind, a, b)
    fp = m.fmt_perp_price if futures else f8
    closed = t >= o_t + step - 1
    return {"e": "kline", "E": t, "s": m.symbol, "k": {
        "t": o_t, "T": o_t + step - 1, "s": m.symbol, "i": interval, "f": 0, "L": 0,
        "o": fp(o), "c": fp(c), "h": fp(h), "l": fp(lo), "v": f"{v:.8f}", "n": 0, "x": closed,
        "q": f"{v * c:.8f}", "V": f"{v / 2:.8f}", "Q": f"{v * c / 2:.8f}", "B": "0"}}


def ticker_24h(p: SymbolPaths, m: Market, kind: str, t: int, futures: bool, q=None) -> dict:
    a = max(p.first_open, t - 24 * HOUR_MS)
    o, h, lo, c = window_stats(p, kind, a, t)
    v = window_volume(p, kind, a, t)
    fp = m.fmt_perp_price if futures else f8
    out = {
        "symbol": m.symbol,
        "priceChange": fp(c - o),
        "priceChangePercent": f"{(c - o) / o * 100:.3f}" if o else "0",
        "weightedAvgPrice": fp((h + lo + c) / 3),
        "lastPrice": fp(c),
        "lastQty": "0",
        "openPrice": fp(o),
        "highPrice": fp(h),
        "lowPrice": fp(lo),
        "volume": f"{v:.8f}",
        "quoteVolume": f"{v * c:.8f}",
        "openTime": a,
        "closeTime": t,
        "firstId": 0,
        "lastId": 0,
        "count": 0,
    }
    if not futures:
        out["prevClosePrice"] = fp(o)
        if q is not None:
            out.update({"bidPrice": f8(q.bid), "bidQty": f8(q.bid_qty), "askPrice": f8(q.ask),
                        "askQty": f8(q.ask_qty)})
    return out
