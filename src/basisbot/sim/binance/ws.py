"""WebSockets on the paths ccxt.pro opens once its ``urls['api']['ws']`` hosts point here.

Spot (``wss://stream.binance.com:9443/ws`` -> ``/ws``):
    ``/ws``, ``/ws/<stream>[/<stream>...]``, ``/ws/<listenKey>`` (legacy spot user stream), ``/stream?streams=a/b``
    (combined: every message wrapped as ``{"stream": name, "data": payload}``).
USDⓈ-M futures (``wss://fstream.binance.com/ws`` -> ccxt's category routing):
    ``/public/ws`` (bookTicker), ``/market/ws`` (markPrice, kline, forceOrder), ``/private/ws?listenKey=K``
    (user stream), each also as ``.../ws/<...>`` and combined ``.../stream?streams=``.
WebSocket API (``/ws-api/v3``): ``userDataStream.subscribe.signature`` (how ccxt subscribes the spot user stream),
    ``userDataStream.unsubscribe``, ``session.subscriptions``, ``ping``, ``time``; events arrive as
    ``{"subscriptionId": n, "event": {...}}``.

Control messages: ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` / ``GET_PROPERTY``
(``{"method": ..., "params": [...], "id": n}`` answered ``{"result": null, "id": n}``). Subscribing to a listen key
as a stream name attaches that user stream.

Market streams implemented: ``<symbol>@markPrice[@1s]``, ``!markPrice@arr[@1s]`` (futures data whatever the
path), ``<symbol>@bookTicker`` (spot quotes on spot paths, perp quotes on futures paths), ``!bookTicker`` (futures),
``<symbol>@kline_<interval>``, ``<symbol>@forceOrder``, ``!forceOrder@arr``. Any other stream type is refused with
an error (so a client never waits forever on data this venue does not produce); unknown symbols are accepted
silently, as Binance does.

Periodic streams are pushed from the engine tick: markPrice once per replay second (@1s) or 3 s, at most once per
tick (at speeds above ``1 / tick_s`` replay seconds per wall second the stream carries the latest second of each
tick); bookTicker when the touch changed; kline on every tick with the final ``"x": true`` candle when a candle closes.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from basisbot.sim.engine import marketdata
from basisbot.sim.engine.errors import BinanceError
from basisbot.sim.ws_conn import WsConn, close_all, drop_all

if TYPE_CHECKING:
    from basisbot.sim.binance.host import StreamHost

SPOT, FUT, WSAPI = "spot", "futures", "wsapi"
_KEY_RE = re.compile(r"^[A-Za-z0-9]{40,80}$")
_KLINE_RE = re.compile(r"^kline_(\w+)$")


class Conn(WsConn):
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, family: str, combined: bool, maxsize: int):
        super().__init__(ws, request, maxsize)
        self.family = family
        self.combined = combined
        self.streams: set[str] = set()
        self.listen_keys: set[str] = set()
        self.wsapi_subs: dict[int, str] = {}

    def send(self, payload, stream: str | None = None) -> None:
        if self.combined and stream is not None:
            payload = {"stream": stream, "data": payload}
        self.enqueue(payload)


def parse_stream(name: str) -> tuple[str, str, object] | None:
    """(kind, SYMBOL or '*', arg) of a market stream name, None if not implemented."""
    parts = name.split("@")
    head = parts[0]
    rest = parts[1:]
    if head.startswith("!"):
        chan = head[1:]
        if chan == "markPrice" and rest[:1] == ["arr"]:
            return ("markPrice", "*", 1000 if rest[1:] == ["1s"] else 3000)
        if chan == "bookTicker" and not rest:
            return ("bookTicker", "*", None)
        if chan == "forceOrder" and rest == ["arr"]:
            return ("forceOrder", "*", None)
        return None
    if not rest:
        return None
    sym = head.upper()
    chan = rest[0]
    if chan == "markPrice":
        if rest[1:] in ([], ["1s"]):
            return ("markPrice", sym, 1000 if rest[1:] == ["1s"] else 3000)
        return None
    if chan == "bookTicker" and len(rest) == 1:
        return ("bookTicker", sym, None)
    if chan == "forceOrder" and len(rest) == 1:
        return ("forceOrder", sym, None)
    m = _KLINE_RE.match(chan)
    if m and len(rest) == 1 and m.group(1) in marketdata.INTERVALS_MS:
        return ("kline", sym, m.group(1))
    return None


class Hub:
    def __init__(self, sim: StreamHost):
        self.sim = sim
        self.venue = sim.venue
        self.keys = sim.listen_keys
        self.conns: set[Conn] = set()
        self._state: dict[tuple[str, str], object] = {}
        self._sub_ids = 0
        self._book_ids = 1
        self.venue.user_listeners.append(self.on_user_event)
        self.venue.public_listeners.append(self.on_public_event)

    # -- connection handling ---------------------------------------------------------------------------------------
    @staticmethod
    def is_ws_path(path: str) -> bool:
        if path in ("/ws", "/stream", "/ws-api/v3", "/ws-fapi/v1") or path.startswith("/ws/"):
            return True
        for cat in ("public", "market", "private"):
            base = f"/{cat}"
            if path in (f"{base}/ws", f"{base}/stream") or path.startswith(f"{base}/ws/"):
                return True
        return False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/ws-api/v3", "/ws-fapi/v1"):
            family, combined, tokens = WSAPI, False, []
        elif path == "/stream":
            family, combined, tokens = SPOT, True, _split(request.query.get("streams", ""))
        elif path == "/ws" or path.startswith("/ws/"):
            family, combined, tokens = SPOT, False, _split(path[4:])
        else:
            cat, kind = path.strip("/").split("/", 2)[:2]
            family = FUT
            combined = kind == "stream"
            tail = path[len(f"/{cat}/ws"):] if not combined else ""
            tokens = _split(request.query.get("streams", "")) if combined else _split(tail)
            lk = request.query.get("listenKey")
            if lk:
                tokens.append(lk)
        # refuse an unknown listen key before upgrading, as Binance does
        for tok in tokens:
            if "@" not in tok and _KEY_RE.match(tok) and self.keys.account_of(tok) is None and family != WSAPI:
                if path.startswith("/private") or request.query.get("listenKey") == tok:
                    return web.Response(status=400, text='{"code":-1125,"msg":"This listenKey does not exist."}',
                                        content_type="application/json")
        ws = web.WebSocketResponse(heartbeat=None, autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws, request, family, combined, self.sim.cfg.ws_queue_max)
        self.conns.add(conn)
        conn.start_sender()
        try:
            for tok in tokens:
                self._attach(conn, tok)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if family == WSAPI:
                        self._wsapi(conn, msg.data, path)
                    else:
                        self._control(conn, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.conns.discard(conn)
            await conn.close()
        return ws

    def _attach(self, conn: Conn, token: str) -> str | None:
        """Attach a stream name or listen key; returns an error message if refused."""
        if not token or token.isdigit():
            return None  # ccxt's stream index suffix: a bare connection
        if "@" not in token and _KEY_RE.match(token):
            if self.keys.account_of(token) is None:
                return f"Invalid request: unknown listenKey {token}"
            conn.listen_keys.add(token)
            return None
        if parse_stream(token) is None:
            return f"Invalid request: stream {token!r} is not served by the local venue"
        conn.streams.add(token)
        return None

    def _control(self, conn: Conn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            conn.send({"error": {"code": 3, "msg": "Invalid JSON: expected a JSON object"}, "id": None})
            return
        if not isinstance(msg, dict):
            conn.send({"error": {"code": 3, "msg": "Invalid JSON: expected a JSON object"}, "id": None})
            return
        mid = msg.get("id")
        method = msg.get("method")
        params = msg.get("params") or []
        if method == "SUBSCRIBE":
            if not isinstance(params, list):
                conn.send({"error": {"code": 2, "msg": "Invalid request: params must be an array"}, "id": mid})
                return
            for tok in params:
                err = self._attach(conn, str(tok))
                if err:
                    conn.send({"error": {"code": 2, "msg": err}, "id": mid})
                    return
            conn.send({"result": None, "id": mid})
        elif method == "UNSUBSCRIBE":
            for tok in params:
                conn.streams.discard(str(tok))
                conn.listen_keys.discard(str(tok))
            conn.send({"result": None, "id": mid})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send({"result": sorted(conn.streams | conn.listen_keys), "id": mid})
        elif method == "SET_PROPERTY":
            if params[:1] == ["combined"] and len(params) == 2:
                conn.combined = bool(params[1])
            conn.send({"result": None, "id": mid})
        elif method == "GET_PROPERTY":
            conn.send({"result": conn.combined if params[:1] == ["combined"] else None, "id": mid})
        else:
            conn.send({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": mid})

    def _wsapi(self, conn: Conn, text: str, path: str) -> None:
        try:
            msg = json.loads(text)
            mid = msg.get("id")
            method = msg.get("method")
            params = msg.get("params") or {}
        except (ValueError, AttributeError):
            conn.send({"id": None, "status": 400, "error": {"code": -1000, "msg": "Malformed request."}})
            return

        def ok(result) -> None:
            conn.send({"id": mid, "status": 200, "result": result, "rateLimits": []})

        try:
            if method == "ping":
                ok({})
            elif method == "time":
                ok({"serverTime": self.venue.sync()})
            elif method == "userDataStream.subscribe.signature":
                if path != "/ws-api/v3":
                    raise BinanceError(-1020, "This operation is not supported.", 400)
                self.sim.auth.verify_ws_params(params)
                self._sub_ids += 1
                conn.wsapi_subs[self._sub_ids] = SPOT
                ok({"subscriptionId": self._sub_ids})
            elif method == "userDataStream.unsubscribe":
                sid = params.get("subscriptionId") if isinstance(params, dict) else None
                if sid is None:
                    conn.wsapi_subs.clear()
                else:
                    conn.wsapi_subs.pop(int(sid), None)
                ok({})
            elif method == "session.subscriptions":
                ok([{"subscriptionId": s} for s in sorted(conn.wsapi_subs)])
            else:
                raise BinanceError(-1020, "This operation is not supported by the local venue.", 400)
        except BinanceError as e:
            conn.send({"id": mid, "status": e.status, "error": e.body(), "rateLimits": []})

    # -- pushing -----------------------------------------------------------------------------------------------
    def on_user_event(self, account: str, payload: dict) -> None:
        for conn in list(self.conns):
            for key in conn.listen_keys:
                if self.keys.account_of(key) == account:
                    conn.send(payload, stream=key)
            for sid, acct in conn.wsapi_subs.items():
                if acct == account:
                    conn.send({"subscriptionId": sid, "event": payload})

    def on_public_event(self, stream: str, payload: dict) -> None:
        for conn in list(self.conns):
            if conn.family != FUT and conn.family != SPOT:
                continue
            if stream in conn.streams:
                conn.send(payload, stream=stream)
            elif "!forceOrder@arr" in conn.streams and stream.endswith("@forceOrder"):
                conn.send(payload, stream="!forceOrder@arr")

    def tick(self, t: int) -> None:
        wanted: dict[tuple[str, str], list[Conn]] = {}
        for conn in list(self.conns):
            if conn.dead or conn.family == WSAPI:
                continue
            for s in conn.streams:
                wanted.setdefault((conn.family, s), []).append(conn)
        for (family, stream), conns in wanted.items():
            for payload in self._due(family, stream, t):
                for conn in conns:
                    conn.send(payload, stream=stream)
        for key in self.keys.expired():
            self._expire(key, t)

    def _due(self, family: str, stream: str, t: int) -> list:
        """The events one subscribed stream owes at replay time `t`."""
        parsed = parse_stream(stream)
        if parsed is None:
            return []
        kind, sym, arg = parsed
        state_key = (family, stream)
        if kind == "markPrice":
            return self._due_mark_price(state_key, sym, int(arg), t)  # type: ignore[arg-type]
        if kind == "bookTicker":
            return self._due_book_ticker(state_key, family == FUT, sym, t)
        if kind == "kline":
            return self._due_kline(state_key, family == FUT, sym, str(arg), t)
        return []  # forceOrder: event driven

    def _due_mark_price(self, state_key: tuple, sym: str, every_ms: int, t: int) -> list:
        """One markPrice update per `every_ms` bucket (all symbols in one array for `!markPrice@arr`)."""
        v = self.venue
        bucket = t // every_ms
        if self._state.get(state_key) == bucket:
            return []
        self._state[state_key] = bucket
        syms = list(v.markets) if sym == "*" else [sym] if sym in v.markets else []
        syms = [s for s in syms if not self.sim.faults.mark_frozen(s)]
        if not syms:
            return []
        ups = [marketdata.mark_price_update(v.paths[s], v.markets[s], t, v.cfg.predicted_rate) for s in syms]
        for u in ups:
            factor = self.sim.faults.take_bad_print(u["s"], "mark") if self.sim.faults.bad_prints else None
            if factor is not None:
                u["p"] = marketdata.f8(float(u["p"]) * factor)
        return [ups] if sym == "*" else ups

    def _due_book_ticker(self, state_key: tuple, futures: bool, sym: str, t: int) -> list:
        """A bookTicker event per symbol whose top of book changed (spot: only while its market is open)."""
        v = self.venue
        syms = list(v.markets) if sym == "*" else [sym] if sym in v.markets else []
        if sym == "*" and not futures:
            return []
        last: dict = self._state.setdefault(state_key, {})  # type: ignore[assignment]
        out = []
        for s in syms:
            if not futures and not v.paths[s].spot_is_open(t):
                continue
            q = v.perp_quote(s, t) if futures else v.spot_quote(s, t)
            if last.get(s) == (q.bid, q.ask):
                continue
            last[s] = (q.bid, q.ask)
            self._book_ids += 1
            msg = marketdata.book_ticker_ws(q, v.markets[s], t, futures, self._book_ids)
            factor = self.sim.faults.take_bad_print(s, "book") if self.sim.faults.bad_prints else None
            if factor is not None:
                msg["b"], msg["a"] = (marketdata.f8(float(msg["b"]) * factor),
                                      marketdata.f8(float(msg["a"]) * factor))
            out.append(msg)
        return out

    def _due_kline(self, state_key: tuple, futures: bool, sym: str, interval: str, t: int) -> list:
        """The running kline, preceded by the closed one when `t` crossed an interval boundary."""
        v = self.venue
        if sym not in v.markets:
            return []
        step = marketdata.INTERVALS_MS[interval]
        prev = self._state.get(state_key)
        out = []
        path_kind = "perp" if futures else "spot"
        if isinstance(prev, int):
            if prev >= t:
                return []
            if prev // step != t // step:
                close_t = (prev // step) * step + step - 1
                out.append(marketdata.kline_event(v.paths[sym], v.markets[sym], path_kind, interval, close_t,
                                                  futures))
        self._state[state_key] = t
        out.append(marketdata.kline_event(v.paths[sym], v.markets[sym], path_kind, interval, t, futures))
        return out

    def _expire(self, key: str, t: int) -> None:
        for conn in list(self.conns):
            if key in conn.listen_keys:
                conn.send({"e": "listenKeyExpired", "E": t, "listenKey": key}, stream=key)
                conn.listen_keys.discard(key)

    def expire_all_listen_keys(self, t: int) -> int:
        """Fault: every listen key expires now (listenKeyExpired to its subscribers). Returns how many."""
        keys = list(self.keys.keys)
        for key in keys:
            self.keys.keys.pop(key, None)
            self._expire(key, t)
        return len(keys)

    async def close_listen_key(self, key: str) -> None:
        for conn in list(self.conns):
            if key in conn.listen_keys:
                conn.listen_keys.discard(key)
                if not conn.streams:
                    await conn.close_socket(1000)

    # -- faults / shutdown -------------------------------------------------------------------------------------
    def drop_all(self, mode: str = "abort") -> int:
        n = drop_all(self.conns, mode)
        self.sim.faults.injected["ws_dropped"] += n
        return n

    async def close_all(self) -> None:
        await close_all(self.conns)


def _split(text: str) -> list[str]:
    return [t for t in text.strip("/").split("/") if t]
