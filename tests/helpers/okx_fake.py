"""A small local stand-in for the few OKX v5 REST endpoints ccxt's ``okx`` client calls to download history
(instruments, candles and history-candles, mark-price candles, funding-rate history), serving slices of the real
OKX data (``SYM_1h_*.parquet`` + ``SYM_funding_*.csv``) in OKX's documented answer shapes and paging rules:
newest first, ``after`` = older than, ``before`` = newer than (both exclusive), ``limit`` capped per endpoint.
Runs on 127.0.0.1 from a thread of its own; every request path is logged."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
CANDIDATES = (REPO / "backtests" / "data" / "okx", Path("/work/shared/data/okx"))
# USDT swaps' contract values (ctVal, base coin per contract) as OKX lists them
CT_VAL = {"BTC": "0.01", "ETH": "0.1", "SOL": "1", "AVAX": "1"}
LIMITS = {"candles": 300, "history-candles": 100, "mark-price-candles": 100, "history-mark-price-candles": 100}


def okx_data_dir() -> Path | None:
    return next((p for p in CANDIDATES if any(p.glob("*_1h_*.parquet"))), None)


def _fmt(x: float) -> str:
    return np.format_float_positional(float(x), unique=True, trim="-")


class OkxFake:
    def __init__(self, data: Path, symbols: list[str], start: str, end: str):
        self.requests: list[str] = []
        self.bars: dict[str, pd.DataFrame] = {}
        self.funding: dict[str, pd.DataFrame] = {}
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        for sym in symbols:
            df = pd.read_parquet(next(data.glob(f"{sym}_1h_*.parquet")))
            self.bars[sym] = df[(df.index >= lo) & (df.index < hi)]
            f = pd.read_csv(next(data.glob(f"{sym}_funding_*.csv")))
            t = pd.to_datetime(f["datetime"], utc=True).dt.tz_convert(None)
            self.funding[sym] = f[(t >= lo) & (t < hi)].assign(ms=(t.astype("datetime64[ms]").astype("int64")))
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # -- answers ----------------------------------------------------------------------------------------------
    @staticmethod
    def ok(data) -> web.Response:
        return web.json_response({"code": "0", "msg": "", "data": data})

    def instruments(self, request: web.Request) -> web.Response:
        kind = request.query.get("instType")
        out = []
        for sym in self.bars:
            base = sym[:-4]
            common = {"baseCcy": "", "quoteCcy": "", "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "",
                      "ctType": "", "uly": "", "instFamily": "", "alias": "", "expTime": "", "listTime":
                      "1606468572000", "lever": "10", "tickSz": "0.1", "lotSz": "1", "minSz": "1", "state": "live",
                      "category": "1", "optType": "", "stk": "", "maxLmtSz": "100000000", "maxMktSz": "10000"}
            if kind == "SWAP":
                out.append(common | {"instType": "SWAP", "instId": f"{base}-USDT-SWAP", "settleCcy": "USDT",
                                     "ctVal": CT_VAL.get(base, "1"), "ctMult": "1", "ctValCcy": base,
                                     "ctType": "linear", "uly": f"{base}-USDT", "instFamily": f"{base}-USDT"})
            elif kind == "SPOT":
                out.append(common | {"instType": "SPOT", "instId": f"{base}-USDT", "baseCcy": base,
                                     "quoteCcy": "USDT", "lotSz": "0.00000001", "minSz": "0.00001"})
        return self.ok(out)

    def _window(self, request: web.Request, times: np.ndarray, cap: int) -> np.ndarray:
        """Indices of ``times`` (ms, ascending) OKX would answer with: newest first, after/before exclusive."""
        q = request.query
        limit = min(int(q.get("limit", cap)), cap)
        sel = np.ones(len(times), bool)
        if "after" in q:
            sel &= times < int(q["after"])
        if "before" in q:
            sel &= times > int(q["before"])
        idx = np.flatnonzero(sel)[::-1]
        if "before" in q and "after" not in q:
            idx = idx[-limit:]  # only `before`: the records just newer than it
        return idx[:limit]

    def candles(self, request: web.Request) -> web.Response:
        endpoint = request.path.rsplit("/", 1)[1]
        inst = request.query["instId"]
        sym = inst.replace("-SWAP", "").replace("-", "")
        if sym not in self.bars or request.query.get("bar") != "1H":
            return web.json_response({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        df = self.bars[sym]
        times = df.index.to_numpy().astype("datetime64[ms]").astype("int64")
        rows = []
        for i in self._window(request, times, LIMITS[endpoint]):
            r = df.iloc[i]
            if "mark-price" in endpoint:
                m = _fmt(r["mark_price_okx"])
                rows.append([str(times[i]), m, m, m, m, "1"])
                continue
            leg = "perp" if inst.endswith("-SWAP") else "spot"
            o, h, lo, c, v = (r[f"{k}_{leg}_okx"] for k in ("open", "high", "low", "close", "volume"))
            if np.isnan(c):
                continue  # an hour the source lacks
            # vol: contracts (swap) or base coin (spot); volCcy: base coin; volCcyQuote: not in the source
            ccy = Decimal(_fmt(v)) * Decimal(CT_VAL.get(sym[:-4], "1")) if leg == "perp" else Decimal(_fmt(v))
            rows.append([str(times[i]), _fmt(o), _fmt(h), _fmt(lo), _fmt(c), _fmt(v), str(ccy), "0", "1"])
        return self.ok(rows)

    def funding_history(self, request: web.Request) -> web.Response:
        inst = request.query["instId"]
        f = self.funding.get(inst.replace("-SWAP", "").replace("-", ""))
        if f is None:
            return web.json_response({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        times = f["ms"].to_numpy()
        rows = [{"instType": "SWAP", "instId": inst, "formulaType": "noRate", "method": "current_period",
                 "fundingRate": _fmt(f["funding_rate"].iloc[i]), "realizedRate": _fmt(f["funding_rate"].iloc[i]),
                 "fundingTime": str(times[i])} for i in self._window(request, times, 400)]
        return self.ok(rows)

    def now_ms(self) -> int:
        """The stand-in's clock: the close of the last hour it serves."""
        return max(int(df.index[-1].value // 1_000_000) for df in self.bars.values()) + 3_600_000

    def tickers(self, request: web.Request) -> web.Response:
        out = []
        for sym, df in self.bars.items():
            base, last = sym[:-4], df.iloc[-24:]
            swap = request.query.get("instType") == "SWAP"
            leg = "perp" if swap else "spot"
            vol = Decimal(_fmt(last[f"volume_{leg}_okx"].sum()))
            ccy = vol * Decimal(CT_VAL.get(base, "1")) if swap else vol
            close = last[f"close_{leg}_okx"]
            out.append({"instType": "SWAP" if swap else "SPOT", "instId": f"{base}-USDT" + ("-SWAP" if swap else ""),
                        "last": _fmt(close.iloc[-1]), "open24h": _fmt(last[f"open_{leg}_okx"].iloc[0]),
                        "high24h": _fmt(last[f"high_{leg}_okx"].max()), "low24h": _fmt(last[f"low_{leg}_okx"].min()),
                        "vol24h": str(vol), "volCcy24h": str(ccy), "ts": str(self.now_ms())})
        return self.ok(out)

    def current_funding(self, request: web.Request) -> web.Response:
        out = []
        for sym, f in self.funding.items():
            inst = f"{sym[:-4]}-USDT-SWAP"
            if request.query.get("instId") not in ("ANY", inst):
                continue
            last = f.iloc[-1]
            out.append({"instType": "SWAP", "instId": inst, "fundingRate": _fmt(last["funding_rate"]),
                        "fundingTime": str(int(last["ms"]) + 8 * 3_600_000), "method": "current_period",
                        "nextFundingTime": str(int(last["ms"]) + 16 * 3_600_000), "formulaType": "noRate"})
        return self.ok(out)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        path = request.path
        if path == "/api/v5/public/time":
            return self.ok([{"ts": str(self.now_ms())}])
        if path == "/api/v5/market/tickers":
            return self.tickers(request)
        if path == "/api/v5/public/funding-rate":
            return self.current_funding(request)
        if path == "/api/v5/public/instruments":
            return self.instruments(request)
        if path == "/api/v5/public/funding-rate-history":
            return self.funding_history(request)
        if path.rsplit("/", 1)[1] in LIMITS and path.startswith("/api/v5/market/"):
            return self.candles(request)
        return web.json_response({"code": "50000", "msg": f"not served here: {path}", "data": []}, status=404)

    # -- the server -------------------------------------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> OkxFake:
        self._thread.start()
        assert self._ready.wait(10), "OKX stand-in did not start"
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
