"""OKX v5 websockets on the local venue: ``/ws/v5/public`` and ``/ws/v5/private`` (ccxt.pro's okx client opens
these once ``urls['api']['ws']`` points here).

Protocol (OKX's): text ``ping`` answered ``pong``; ``{"op": "subscribe", "args": [{"channel": ..., "instId": ...}]}``
answered ``{"event": "subscribe", "arg": {...}, "connId": ...}`` per argument, an unknown channel or instrument
``{"event": "error", "code": "60018", ...}``; ``{"op": "login", "args": [{apiKey, passphrase, timestamp, sign}]}``
answered ``{"event": "login", "code": "0", "msg": "", "connId": ...}`` (private channels before a login:
``60011``). Pushes: ``{"arg": {...}, "data": [...]}``.

Public channels: ``mark-price`` (once per replay second while it moves), ``funding-rate`` (once per replay minute
and at each settlement), ``tickers`` (once per replay second), ``bbo-tbt`` (when the touch changes). Private:
``orders`` (every order event, with the fill fields), ``positions`` (a snapshot at subscription, then on every
change; a closed position is sent once with ``pos`` 0), ``account`` and ``balance_and_position`` (on every balance
change). The ``business`` endpoint (candles, algo orders) is refused.
"""

from __future__ import annotations

import json
import secrets

from aiohttp import WSMsgType, web

from basisbot.sim.engine.order_matching import FUT, SPOT
from basisbot.sim.okx import views
from basisbot.sim.okx.errors import OkxError
from basisbot.sim.ws_conn import WsConn, close_all, drop_all

PUBLIC = ("mark-price", "funding-rate", "tickers", "bbo-tbt")
PRIVATE = ("orders", "positions", "account", "balance_and_position")


class Conn(WsConn):
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, kind: str, maxsize: int):
        super().__init__(ws, request, maxsize)
        self.kind = kind  # "public" | "private"
        self.conn_id = secrets.token_hex(4)
        self.subs: dict[tuple[str, str], dict] = {}   # (channel, instId or "") -> arg as subscribed
        self.logged_in = False

    def send(self, payload) -> None:
        self.enqueue(payload)


class OkxHub:
    def __init__(self, api):
        self.api = api
        self.rest = api.rest
        self.v = api.rest.v
        self.faults = api.faults
        self.conns: set[Conn] = set()
        self._last: dict[tuple[str, str, str], object] = {}
        self._closed_sent: set[str] = set()
        self.v.user_listeners.append(self.on_engine_event)

    @staticmethod
    def is_ws_path(path: str) -> bool:
        return path.startswith("/ws/v5/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind = request.path.rstrip("/").rsplit("/", 1)[-1]
        if kind not in ("public", "private"):
            return web.Response(status=404, text="Not Found")
        ws = web.WebSocketResponse(heartbeat=None, autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws, request, kind, self.api.cfg.ws_queue_max)
        self.conns.add(conn)
        conn.start_sender()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._control(conn, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.conns.discard(conn)
            await conn.close()
        return ws

    # -- requests ----------------------------------------------------------------------------------------------
    def _error(self, conn: Conn, code: str, msg: str) -> None:
        conn.send({"event": "error", "code": code, "msg": msg, "connId": conn.conn_id})

    def _control(self, conn: Conn, text: str) -> None:
        if text == "ping":
            conn.send("pong")
            return
        try:
            req = json.loads(text)
        except json.JSONDecodeError:
            self._error(conn, "60012", f"Invalid request: {text}")
            return
        if not isinstance(req, dict):
            self._error(conn, "60012", f"Invalid request: {text}")
            return
        op, args = req.get("op"), req.get("args")
        if op == "login":
            self._login(conn, args, text)
        elif op in ("subscribe", "unsubscribe") and isinstance(args, list):
            for arg in args:
                self._subscribe(conn, op, arg, text)
        else:
            self._error(conn, "60012", f"Illegal request: {text}")

    def _login(self, conn: Conn, args, text: str) -> None:
        if conn.kind != "private":
            self._error(conn, "60012", f"Illegal request: {text}")
            return
        try:
            if not isinstance(args, list) or not args:
                raise OkxError("60012", f"Illegal request: {text}")
            self.api.auth.verify_login(args[0])
        except OkxError as e:
            self._error(conn, e.code, e.msg)
            return
        conn.logged_in = True
        conn.send({"event": "login", "code": "0", "msg": "", "connId": conn.conn_id})

    def _subscribe(self, conn: Conn, op: str, arg, text: str) -> None:
        if not isinstance(arg, dict) or not arg.get("channel"):
            self._error(conn, "60012", f"Illegal request: {text}")
            return
        ch = str(arg["channel"])
        inst_id = str(arg.get("instId") or "")
        allowed = PUBLIC if conn.kind == "public" else PRIVATE
        if ch not in allowed:
            self._error(conn, "60018", f"Wrong URL or channel:{ch},instId:{inst_id or 'None'} doesn't exist. Please "
                                       f"use the correct URL, channel and parameters referring to API document.")
            return
        if conn.kind == "private" and not conn.logged_in:
            self._error(conn, "60011", "Please log in")
            return
        if ch in PUBLIC and inst_id not in self.rest.by_id:
            self._error(conn, "60018", f"Wrong URL or channel:{ch},instId:{inst_id} doesn't exist. Please use the "
                                       f"correct URL, channel and parameters referring to API document.")
            return
        if ch in ("mark-price", "funding-rate") and self.rest.by_id[inst_id][1] != FUT and ch == "funding-rate":
            self._error(conn, "60018", f"Wrong URL or channel:{ch},instId:{inst_id} doesn't exist.")
            return
        echo = dict(arg)
        if conn.kind == "private":
            echo.setdefault("uid", "44705892343619584")
        key = (ch, inst_id or str(arg.get("instType") or ""))
        if op == "unsubscribe":
            conn.subs.pop(key, None)
            conn.send({"event": "unsubscribe", "arg": arg, "connId": conn.conn_id})
            return
        conn.subs[key] = echo
        conn.send({"event": "subscribe", "arg": arg, "connId": conn.conn_id})
        self.v.sync()
        if ch in PUBLIC:
            payload = self._public_row(ch, inst_id, self.v.t, force=True)
            if payload is not None:
                conn.send({"arg": echo, "data": [payload]})
        elif ch == "positions":
            rows = [r for r in self.rest.position_rows() if self._matches(echo, r)]
            conn.send({"arg": echo, "data": rows})
        elif ch in ("account", "balance_and_position"):
            conn.send({"arg": echo, "data": [self._private_row(ch, [])]})

    # -- private pushes ------------------------------------------------------------------------------------------
    @staticmethod
    def _matches(arg: dict, row: dict) -> bool:
        it = str(arg.get("instType") or "ANY").upper()
        if it not in ("ANY", row.get("instType")) and not (it == "MARGIN" and row.get("instType") == "SPOT"):
            return False
        if arg.get("instId") and arg["instId"] != row.get("instId"):
            return False
        fam = arg.get("instFamily")
        return not (fam and not str(row.get("instId", "")).startswith(fam))

    def _private_row(self, ch: str, symbols: list[str]) -> dict:
        if ch == "account":
            return views.balance_json(self.v, self.rest.currencies_held(), self.rest.prices())
        t = self.v.t
        pos = [r for r in self.rest.position_rows(symbols or None, include_flat=True)
               if r["pos"] != "0" or r["instId"] in symbols or not symbols]
        return {"pTime": str(t), "eventType": "snapshot" if not symbols else "filled",
                "balData": [{"ccy": "USDT", "cashBal": views.num(self.rest.unified_usdt()), "uTime": str(t)}],
                "posData": [{"posId": r["posId"], "tradeId": r["tradeId"], "instId": r["instId"], "instType": "SWAP",
                             "mgnMode": r["mgnMode"], "posSide": "net", "pos": r["pos"], "ccy": "USDT",
                             "posCcy": "", "avgPx": r["avgPx"], "nonSettleAvgPx": "", "settledPnl": "",
                             "uTime": r["uTime"]} for r in pos if r["pos"] != "0" or symbols],
                "trades": []}

    def _push_private(self, ch: str, rows: list[dict]) -> None:
        for conn in list(self.conns):
            if conn.kind != "private" or not conn.logged_in:
                continue
            for (c, _), arg in conn.subs.items():
                if c != ch:
                    continue
                mine = [r for r in rows if ch in ("account", "balance_and_position") or self._matches(arg, r)]
                if mine:
                    conn.send({"arg": arg, "data": mine})

    def on_engine_event(self, account: str, payload: dict) -> None:
        if not any(c.kind == "private" and c.logged_in for c in self.conns):
            return
        e = payload.get("e")
        if e in ("ORDER_TRADE_UPDATE", "executionReport"):
            o_ev = payload["o"] if e == "ORDER_TRADE_UPDATE" else payload
            venue = FUT if e == "ORDER_TRADE_UPDATE" else SPOT
            o = self.v.orders[venue].get(int(o_ev["i"]))
            if o is None:
                return
            trade = None
            if o_ev.get("x") == "TRADE":
                trade = next((tr for tr in o.trades if tr.trade_id == int(o_ev["t"])), None)
            ex = dict(self.rest.extra.get(o.order_id, {}))
            if venue == FUT:
                ex.setdefault("lever", self.v.fut.leverage[o.symbol])
                ex.setdefault("tdMode", "isolated" if self.v.fut.isolated(o.symbol) else "cross")
            row = views.ws_order_json(o, self.rest.insts[o.symbol], ex, trade, self.v.mark(o.symbol))
            if o_ev.get("x") == "TRADE" and o.status in ("PARTIALLY_FILLED", "FILLED"):
                row["state"] = views.STATE[o.status]
            self._push_private("orders", [row])
        elif e == "ACCOUNT_UPDATE":
            syms = [p["s"] for p in payload["a"].get("P", [])]
            rows = self.rest.position_rows(syms or None, include_flat=bool(syms))
            if rows:
                self._push_private("positions", rows)
            self._push_private("account", [self._private_row("account", [])])
            self._push_private("balance_and_position", [self._private_row("balance_and_position", syms)])
        elif e in ("outboundAccountPosition", "balanceUpdate"):
            self._push_private("account", [self._private_row("account", [])])

    # -- public pushes -------------------------------------------------------------------------------------------
    def _public_row(self, ch: str, inst_id: str, t: int, force: bool = False) -> dict | None:
        inst, venue = self.rest.by_id[inst_id]
        s = inst.symbol
        key = (ch, inst_id, "")
        if ch == "mark-price":
            if venue == FUT and self.faults.mark_frozen(s):
                return None
            bucket = t // 1000
            if not force and self._last.get(key) == bucket:
                return None
            self._last[key] = bucket
            px = self.v.mark(s, t) if venue == FUT else self.v.paths[s].spot(t)
            factor = self.faults.take_bad_print(s, "mark") if venue == FUT and not force else None
            if factor is not None:
                px *= factor
            return {"instId": inst_id, "instType": "SWAP" if venue == FUT else "MARGIN", "markPx": views.num(px),
                    "ts": str(t)}
        if ch == "funding-rate":
            p = self.v.paths[s]
            bucket = (t // 60_000, p.next_settlement_index(t))
            if not force and self._last.get(key) == bucket:
                return None
            self._last[key] = bucket
            return self.rest.funding_row(inst, t)
        if ch == "tickers":
            bucket = t // 1000
            if not force and self._last.get(key) == bucket:
                return None
            self._last[key] = bucket
            return self.rest._ticker_row(inst, venue, t)
        if ch == "bbo-tbt":
            q = self.v.perp_quote(s, t) if venue == FUT else self.v.spot_quote(s, t)
            touch = (q.bid, q.ask)
            if not force and self._last.get(key) == touch:
                return None
            self._last[key] = touch
            bid, ask = q.bid, q.ask
            factor = self.faults.take_bad_print(s, "book") if not force else None
            if factor is not None:
                bid, ask = bid * factor, ask * factor
            sz = views.contracts(inst, q.bid_qty) if venue == FUT else views.num(q.bid_qty)
            return {"asks": [[views.num(ask), sz, "0", "1"]], "bids": [[views.num(bid), sz, "0", "1"]],
                    "ts": str(t), "seqId": int(t)}
        return None

    def tick(self, t: int) -> None:
        wanted: dict[tuple[str, str], list[tuple[Conn, dict]]] = {}
        for conn in list(self.conns):
            if conn.dead or conn.kind != "public":
                continue
            for (ch, inst_id), arg in conn.subs.items():
                wanted.setdefault((ch, inst_id), []).append((conn, arg))
        for (ch, inst_id), subs in wanted.items():
            row = self._public_row(ch, inst_id, t)
            if row is None:
                continue
            for conn, arg in subs:
                conn.send({"arg": arg, "data": [row]})

    # -- faults / shutdown ---------------------------------------------------------------------------------------
    def expire_all_listen_keys(self, t: int) -> int:
        return 0  # OKX has no listen keys

    def drop_all(self, mode: str = "abort") -> int:
        n = drop_all(self.conns, mode)
        self.faults.injected["ws_dropped"] += n
        return n

    async def close_all(self) -> None:
        await close_all(self.conns)
