"""The OKX API layer of the local venue: builds OKX's markets for the engine, and answers every non-admin request
(REST ``/api/v5/...`` and websockets ``/ws/v5/...``) in OKX's terms.

Faults (``POST /admin/faults``, the same spec as on the Binance layer) come out as OKX sends them: ``fail_next``
429 -> HTTP 429 ``{"code": "50011", "msg": "Too Many Requests"}``; 5xx -> the gateway's page, or with ``"body":
"json"`` ``{"code": "50001", "msg": "Service temporarily unavailable. Please try again later."}``;
``reject_next_order`` -> the order-level refusal (``sCode`` 51008, insufficient balance, by default);
``timeout_next_order`` -> the order is placed, the answer dropped or late; ``clock_skew`` -> 50102; ``delay_ms``,
``drop_ws``, ``freeze_mark``, ``bad_print`` (``mark`` -> mark-price channel, ``book`` -> bbo-tbt) and ``outage`` as
on the Binance layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path

from aiohttp import web

from basisbot.data.market_data import DataError, data_venue
from basisbot.sim.engine.faults import FaultState, failure_response_parts
from basisbot.sim.engine.order_matching import FUT, SPOT
from basisbot.sim.okx import errors, instruments
from basisbot.sim.okx.auth import OkxAuth
from basisbot.sim.okx.errors import OkxError
from basisbot.sim.okx.rest import Envelope, OkxRest, Req, parse_body
from basisbot.sim.okx.ws import OkxHub

log = logging.getLogger("basisbot.sim.okx")


def build_markets(symbols: list[str], paths: dict, start_ms: int, exchange_info: Path | None,
                  brackets: Path | None, data_dir: Path | None = None, taker_fee: float | None = None):
    """Engine markets and OKX instruments of `symbols` (ValueError naming what to supply); `taker_fee` is the venue's
    futures taker fee, which OKX's liquidation condition counts (OKX's regular-user rate when None)."""
    if data_dir is not None and (venue := data_venue(data_dir)) != "okx":
        raise DataError(f"{data_dir}: this is {venue.capitalize()} data (its columns); --exchange okx replays OKX "
                        "data (the backtests/data/okx layout: *_okx columns)")
    prices = {s: paths[s].mark(start_ms) for s in symbols}
    return instruments.build(symbols, prices, markets_file=exchange_info, tiers_file=brackets, taker_fee=taker_fee)


def _json(data, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":")), status=status, content_type="application/json",
                        headers=headers)


class OkxApi:
    def __init__(self, cfg, venue, insts: dict, faults: FaultState):
        self.cfg = cfg
        self.faults = faults
        if not cfg.api_passphrase:
            raise ValueError("--exchange okx needs --api-passphrase (OKX signs every private request with key, "
                             "secret and passphrase)")
        self.auth = OkxAuth(cfg.api_key, cfg.api_secret, cfg.api_passphrase,
                            wall_ms=lambda: int(time.time() * 1000) + faults.clock_skew_ms())
        self.rest = OkxRest(venue, insts)
        self.hub = OkxHub(self)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if OkxHub.is_ws_path(path) and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.hub.handle(request)
        faults = self.faults
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        failed = self._injected_failure(path)
        if failed is not None:
            return failed
        handler, private, known = self.rest.lookup(request.method, path)
        if handler is None:
            if known:
                return _json(OkxError("50000", f"Method {request.method} not allowed", 405).body(), 405)
            return _json(errors.not_found(path).body(), 404)
        raw_body = await request.text() if request.can_read_body else ""
        try:
            data = await self._call(request, handler, private, raw_body)
        except OkxError as e:
            p = dict(request.query)
            if request.method == "POST" and e.order_level:
                with contextlib.suppress(OkxError):
                    body = parse_body(raw_body)
                    p.update(body[0] if isinstance(body, list) and body else body)
            return _json(e.body(str(p.get("clOrdId") or ""), str(p.get("ordId") or "")), e.status)
        except Exception:
            log.exception("%s %s failed", request.method, path)
            return _json({"code": "50013", "msg": "System is busy, please try again later.", "data": []}, 503)
        code, msg = "0", ""
        if isinstance(data, Envelope):
            data, code, msg = data.data, data.code, data.msg
        if request.method == "POST" and path in ("/api/v5/trade/order", "/api/v5/trade/batch-orders"):
            timeout = self._timeout_fault(data)
            if timeout is not None:  # the order is booked; the client never hears so in time
                if timeout.mode == "drop":
                    if request.transport is not None:
                        request.transport.close()
                    return web.Response(status=504, text="dropped")
                await asyncio.sleep(timeout.delay_ms / 1000)
        return _json({"code": code, "msg": msg, "data": data})

    def _injected_failure(self, path: str) -> web.Response | None:
        """The answer of an injected failure on `path` (rate limit, service unavailable, a raw HTTP error), or None."""
        rule = self.faults.take_failure(path)
        if rule is None:
            return None
        if rule.status in (418, 429):
            return _json(errors.rate_limited().body(), 429, {"Retry-After": "1"})
        if rule.body == "json":
            return _json(errors.service_unavailable().body(), rule.status)
        status, ctype, body, headers = failure_response_parts(rule)
        return web.Response(status=status, text=body, content_type=ctype, headers=headers)

    async def _call(self, request: web.Request, handler, private: bool, raw_body: str):
        """Authenticates a private request, parses its parameters (query, JSON body or a batch list) and runs it."""
        path = request.path
        if private:
            qs = request.rel_url.raw_query_string
            self.auth.verify_rest(request.headers, request.method, path + (f"?{qs}" if qs else ""), raw_body)
        params: dict = dict(request.query)
        items = None
        if request.method == "POST":
            body = parse_body(raw_body)
            if isinstance(body, list):
                items = body
            else:
                params.update(body)
        return await handler(Req(request.method, path, params, items))

    def _timeout_fault(self, data: list):
        if not data or not data[0].get("ordId"):
            return None
        oid = int(data[0]["ordId"])
        for venue in (SPOT, FUT):
            o = self.rest.v.orders[venue].get(oid)
            if o is not None:
                return self.faults.take_timeout(venue, o.symbol)
        return None

