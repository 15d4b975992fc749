"""The local venue: one aiohttp server (REST + websockets) on 127.0.0.1, replaying real data.

Entry points:

* :class:`SimServer` - ``async with SimServer(config) as sim: ...`` (tests; ``sim.url`` / ``sim.port``);
* :func:`serve` - ``await serve(port, data_dir, speed, start, api_key, api_secret, symbols=None)`` runs until
  cancelled (or until ``stop`` is set);
* :func:`main` - the ``basisbot sim`` command: runs until SIGINT/SIGTERM, returns an exit status.

Admin endpoints (no auth, the server only listens on 127.0.0.1):

* ``GET /admin/state``: clock, prices, balances, positions, open orders, recent funding / liquidations, faults;
* ``POST /admin/clock`` JSON: ``{"time": ms | "2022-03-01T07:59:00Z"}`` or ``{"advance_s": 3600}`` jumps forward
  (everything in between happens: fills, funding, liquidations), ``{"pause": true}``, ``{"resume": true}``,
  ``{"speed": 600}``;
* ``POST /admin/faults`` JSON (see ``faults.py``), ``DELETE /admin/faults`` clears;
* ``POST /admin/deposit`` JSON ``{"account": "spot"|"futures", "asset": "USDT", "amount": 1000}`` (a negative
  amount withdraws);
* ``GET /admin/orders?since=ms``: every order the venue holds (open or not, with its trades) per venue, and
  ``GET /admin/funding?since=ms``: every funding payment booked;
* ``GET /sim/clock``: ``{"time": replay ms, "speed", "paused", "wall_ms"}`` - how a live node learns the replay speed
  (no auth; Binance has no such path, so a node against Binance gets a 404 and keeps 1x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import signal
import sys
import time
from pathlib import Path

import pandas as pd
from aiohttp import web

from basisbot.core import defaults as D
from basisbot.data.bundled_files import bundled_market_dir
from basisbot.data.market_data import DataError, available_symbols
from basisbot.sim.binance.auth import Auth
from basisbot.sim.binance.listen_keys import ListenKeys
from basisbot.sim.binance.rest_futures import futures_routes
from basisbot.sim.binance.rest_spot import spot_routes
from basisbot.sim.binance.routing import API_KEY, SIGNED, Route, Routes, json_response, make_ctx
from basisbot.sim.binance.ws import Hub
from basisbot.sim.cliargs import add_sim_arguments
from basisbot.sim.config import SimConfig
from basisbot.sim.engine.clock import ReplayClock
from basisbot.sim.engine.core import Venue
from basisbot.sim.engine.errors import BinanceError
from basisbot.sim.engine.faults import FaultState, failure_response_parts
from basisbot.sim.engine.markets import build_market
from basisbot.sim.engine.prices import load_paths

log = logging.getLogger("basisbot.sim")


def _to_ms(value) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


class SimServer:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._tick_task: asyncio.Task | None = None
        self._weight: list[float] = []

    # -- set-up ------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.cfg
        data_dir = str(Path(cfg.data_dir).resolve())
        have = available_symbols(data_dir)
        symbols = [s.upper() for s in (cfg.symbols or have)]
        missing = [s for s in symbols if s not in have]
        if missing:
            raise DataError(f"{data_dir}: no data for {', '.join(missing)}; available: {', '.join(have)}")
        self.paths = {s: load_paths(data_dir, s) for s in symbols}
        first = max(p.first_open for p in self.paths.values())
        last = min(p.end_ms for p in self.paths.values())
        start = first if cfg.start is None else _to_ms(cfg.start)
        if not first <= start < last:
            raise ValueError(f"start {pd.Timestamp(start, unit='ms', tz='UTC')} outside the data "
                             f"[{pd.Timestamp(first, unit='ms', tz='UTC')}, {pd.Timestamp(last, unit='ms', tz='UTC')}]")
        self.okx = None
        if cfg.exchange == "okx":
            from basisbot.sim.okx.api import build_markets

            self.markets, okx_insts = build_markets(symbols, self.paths, start, cfg.exchange_info, cfg.brackets,
                                                    data_dir, taker_fee=cfg.futures_taker_fee)
        else:
            self.markets = {s: build_market(s, exchange_info=cfg.exchange_info, brackets=cfg.brackets)
                            for s in symbols}
        self.clock = ReplayClock(start, last, cfg.speed, paused=cfg.paused)
        self.faults = FaultState(adl_top=5 if cfg.exchange == "okx" else 4)
        self.venue = Venue(cfg, self.markets, self.paths, self.clock, self.faults)
        faults = self.faults
        if cfg.exchange == "okx":  # OKX's API layer on the same engine
            from basisbot.sim.okx.api import OkxApi

            self.okx = OkxApi(cfg, self.venue, okx_insts, faults)
            self.hub = self.okx.hub
            self.listen_keys = ListenKeys(cfg.listen_key_ttl_s)
            return
        self.auth = Auth(cfg.api_key, cfg.api_secret, cfg.recv_window_default_ms,
                         wall_ms=lambda: int(time.time() * 1000) + faults.clock_skew_ms())
        self.listen_keys = ListenKeys(cfg.listen_key_ttl_s)
        self.hub = Hub(self)
        self.routes = Routes()
        self.routes.merge(spot_routes(self))
        self.routes.merge(futures_routes(self))

    async def start(self) -> SimServer:
        self._build()
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port, reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1] if sockets else self.cfg.port
        self._tick_task = asyncio.create_task(self._tick_loop())
        return self

    async def stop(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
            self._tick_task = None
        if self._runner is not None:
            await self.hub.close_all()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}"

    # -- engine ------------------------------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            try:
                t = self.venue.sync()
                self.hub.tick(t)
            except Exception:  # keep serving; the error is visible in the log
                log.exception("engine tick failed")
            await asyncio.sleep(self.cfg.tick_s)

    # -- HTTP --------------------------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/admin/"):
            return await self._admin(request)
        if path == "/sim/clock" and request.method == "GET":
            return json_response(self.sim_clock())
        faults = self.faults
        if faults.in_outage():  # a venue restart: nothing answers
            faults.injected["outage_refused"] += 1
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503, text="venue restarting")
        if self.okx is not None:
            return await self.okx.dispatch(request)
        if Hub.is_ws_path(path) and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.hub.handle(request)
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        rule = faults.take_failure(path)
        if rule is not None:
            status, ctype, body, headers = failure_response_parts(rule)
            return web.Response(status=status, text=body, content_type=ctype, headers=headers)
        route = self.routes.lookup(request.method, path)
        if route is None:
            if self.routes.has_path(path):
                return json_response({"code": -1000, "msg": f"Method {request.method} not allowed"}, 405)
            return web.Response(status=404, text="<html><body><h1>404 Not Found</h1></body></html>",
                                content_type="text/html")
        return await self._serve_route(request, route)

    async def _serve_route(self, request: web.Request, route: Route) -> web.StreamResponse:
        """Authenticate, run the endpoint, apply an order-timeout fault; Binance's JSON error on failure."""
        headers = self._weight_headers()
        try:
            ctx = await make_ctx(request)
            if route.security == SIGNED:
                self.auth.verify_signed(ctx.api_key, ctx.raw_query, ctx.raw_body, ctx.params)
            elif route.security == API_KEY:
                self.auth.check_api_key(ctx.api_key)
            data = await route.handler(ctx)
            timeout = self._order_timeout_fault(request, ctx, data)
            if timeout is not None:  # the order is booked; the client never hears so in time
                if timeout.mode == "drop":
                    if request.transport is not None:
                        request.transport.close()
                    return web.Response(status=504, text="dropped")
                await asyncio.sleep(timeout.delay_ms / 1000)
        except BinanceError as e:
            return json_response(e.body(), e.status, {**headers, **e.headers})
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return json_response({"code": -1000, "msg": "An unknown error occured while processing the request."},
                                 500, headers)
        return json_response(data, 200, headers)

    def _order_timeout_fault(self, request: web.Request, ctx, data):
        """The `timeout_next_order` rule for a successful order placement, if one applies."""
        if request.method != "POST" or request.path not in ("/api/v3/order", "/fapi/v1/order"):
            return None
        if not isinstance(data, dict) or "orderId" not in data:
            return None
        venue = "spot" if request.path.startswith("/api") else "futures"
        return self.faults.take_timeout(venue, str(data.get("symbol") or ctx.get("symbol") or "").upper() or None)

    def sim_clock(self) -> dict:
        t = self.venue.sync()
        c = self.clock.state()
        return {"time": t, "speed": c["speed"], "paused": c["paused"], "finished": c["finished"],
                "wall_ms": int(time.time() * 1000)}

    def _weight_headers(self) -> dict[str, str]:
        now = time.monotonic()
        self._weight = [t for t in self._weight if now - t < 60] + [now]
        return {"X-MBX-USED-WEIGHT-1M": str(len(self._weight)), "X-SIM-REPLAY-TIME": str(self.venue.t)}

    async def _admin(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        try:
            body = {}
            if request.method in ("POST", "PUT") and request.can_read_body:
                text = await request.text()
                body = json.loads(text) if text.strip() else {}
            if path == "/admin/state" and request.method == "GET":
                return json_response(self.admin_state())
            if path == "/admin/clock" and request.method == "POST":
                return json_response(self.admin_clock(body))
            if path == "/admin/faults" and request.method == "POST":
                actions = self.faults.apply(body)
                if actions.get("adl"):
                    self.venue.sync()
                    done = [self.venue.deleverage(a["symbol"], a["fraction"], a["price"], a["via"])
                            for a in actions["adl"]]
                    self.faults.injected["adl"] += len(done)
                    return json_response({**self.faults.state(), "adl": done})
                if actions.get("drop_ws") or actions.get("outage"):
                    self.hub.drop_all(str(body.get("drop_mode", "abort")))
                if actions.get("expire_listen_keys") or actions.get("outage"):
                    self.faults.injected["keys_expired"] += self.hub.expire_all_listen_keys(self.venue.sync())
                return json_response(self.faults.state())
            if path == "/admin/orders" and request.method == "GET":
                return json_response(self.venue.all_orders(int(request.query.get("since", 0) or 0)))
            if path == "/admin/funding" and request.method == "GET":
                since = int(request.query.get("since", 0) or 0)
                return json_response([f for f in self.venue.funding_log if f["time"] >= since])
            if path == "/admin/clock" and request.method == "GET":
                return json_response(self.sim_clock())
            if path == "/admin/faults" and request.method == "DELETE":
                self.faults.clear()
                return json_response(self.faults.state())
            if path == "/admin/deposit" and request.method == "POST":
                self.venue.deposit(str(body.get("account", "spot")).lower(), str(body.get("asset", "USDT")),
                                   float(body["amount"]))
                return json_response(self.venue.state())
        except (ValueError, KeyError, TypeError, BinanceError) as e:
            return json_response({"error": str(e)}, 400)
        return json_response({"error": f"unknown admin endpoint {request.method} {path}"}, 404)

    def admin_state(self) -> dict:
        state = self.venue.state()
        state["clock"] = self.clock.state()
        state["faults"] = self.faults.state()
        state["websockets"] = len(self.hub.conns)
        state["symbols"] = list(self.markets)
        return state

    def admin_clock(self, body: dict) -> dict:
        self.venue.sync()
        if body.get("pause"):
            self.clock.pause()
        if "speed" in body:
            self.clock.set_speed(float(body["speed"]))
        if "time" in body:
            self.clock.jump_to(_to_ms(body["time"]))
        if "advance_s" in body:
            self.clock.advance(float(body["advance_s"]))
        if body.get("resume"):
            self.clock.resume()
        self.venue.sync()
        self.hub.tick(self.venue.t)
        return self.clock.state()


# ----------------------------------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------------------------------

async def serve(port: int, data_dir, speed: float, start, api_key: str, api_secret: str,
                symbols: list[str] | None = None, *, config: SimConfig | None = None,
                stop: asyncio.Event | None = None, ready=None) -> None:
    """Run the venue until cancelled or ``stop`` is set. ``ready(server)`` is called once it listens."""
    cfg = config or SimConfig(data_dir=Path(data_dir), api_key=api_key, api_secret=api_secret)
    cfg.port, cfg.data_dir, cfg.speed = port, Path(data_dir), speed
    cfg.start, cfg.api_key, cfg.api_secret = start, api_key, api_secret
    if symbols:
        cfg.symbols = [s.upper() for s in symbols]
    server = SimServer(cfg)
    await server.start()
    try:
        if ready is not None:
            ready(server)
        if stop is None:
            await asyncio.Event().wait()
        else:
            await stop.wait()
    finally:
        await server.stop()


def config_from_args(args: argparse.Namespace) -> tuple[SimConfig, dict]:
    def g(name, default=None):  # a flag left unset (None) takes the default
        value = getattr(args, name, None)
        return default if value is None else value

    api_key = g("api_key") or secrets.token_hex(32)
    api_secret = g("api_secret") or secrets.token_hex(32)
    symbols = g("symbols")
    exchange = g("exchange", "binance") or "binance"
    if exchange not in ("binance", "okx"):
        raise ValueError(f"--exchange {exchange!r}: expected binance or okx")
    cfg = SimConfig(
        data_dir=Path(g("data")) if g("data") else bundled_market_dir(),
        api_key=api_key,
        api_secret=api_secret,
        exchange=exchange,
        api_passphrase=(g("api_passphrase") or secrets.token_urlsafe(12)) if exchange == "okx" else None,
        port=int(g("port", 0) or 0),
        speed=float(g("speed", 60.0) or 60.0),
        start=g("start"),
        symbols=[s.strip().upper() for s in symbols.split(",")] if symbols else None,
        paused=bool(g("paused", False)),
        spot_fee=float(g("spot_fee", SimConfig.spot_fee)),
        futures_taker_fee=float(g("futures_taker_fee", SimConfig.futures_taker_fee)),
        futures_maker_fee=float(g("futures_maker_fee", SimConfig.futures_maker_fee)),
        spot_balances={"USDT": float(g("spot_usdt", D.SPOT_BALANCE_USDT))},
        futures_usdt=float(g("futures_usdt", D.PERP_BALANCE_USDT)),
        default_leverage=int(g("leverage", SimConfig.default_leverage)),
        default_margin_type=g("margin_type", "CROSSED"),
        duplicate_client_id=g("duplicate_client_id", "any"),
        predicted_rate=g("predicted_rate", "interpolate"),
        exchange_info=Path(g("exchange_info")) if g("exchange_info") else None,
        brackets=Path(g("brackets")) if g("brackets") else None,
    )
    faults: dict = {}
    if g("fault_delay_ms"):
        faults["delay_ms"] = int(g("fault_delay_ms"))
    if g("fault_fail_next"):
        faults["fail_next"] = {"count": int(g("fault_fail_next")), "status": int(g("fault_fail_status", 503))}
    if g("fault_reject_next_order"):
        faults["reject_next_order"] = {"venue": g("fault_reject_next_order")}
    if g("fault_partial_fill"):
        venue, _, frac = str(g("fault_partial_fill")).partition(":")
        faults["partial_fill_next"] = {"venue": venue, "fraction": float(frac or 0.5)}
    if g("fault_freeze_mark"):
        faults["freeze_mark"] = True
    return cfg, faults


def main(args: argparse.Namespace) -> int:
    """``basisbot sim``: serve until SIGINT/SIGTERM. Exit status 0, or 2 on bad input."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg, faults = config_from_args(args)
    except (TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        server = SimServer(cfg)
        try:
            await server.start()
        except (DataError, ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        try:
            if faults:
                server.faults.apply(faults)
            c = server.clock.state()
            print(f"basisbot sim: listening on {server.url} (ws {server.ws_url}), symbols {', '.join(server.markets)}",
                  flush=True)
            print(f"  replay from {pd.Timestamp(c['time'], unit='ms', tz='UTC')} at {cfg.speed:g}x"
                  f"{' (paused)' if c['paused'] else ''}; data ends {pd.Timestamp(c['end'], unit='ms', tz='UTC')}",
                  flush=True)
            if not getattr(args, "api_key", None):
                print(f"  api key:    {cfg.api_key}\n  api secret: {cfg.api_secret}", flush=True)
            if cfg.exchange == "okx" and not getattr(args, "api_passphrase", None):
                print(f"  passphrase: {cfg.api_passphrase}", flush=True)
            setup = "use_local_okx_venue" if cfg.exchange == "okx" else "use_local_venue"
            print(f"  point ccxt at it with basisbot.exchange.ccxt_setup.{setup}(exchange, url); Ctrl-C stops",
                  flush=True)
            await stop.wait()
        finally:
            await server.stop()
        return 0

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 0


__all__ = ["SimServer", "SimConfig", "serve", "main", "add_sim_arguments", "config_from_args"]
