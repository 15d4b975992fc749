"""REST plumbing: a route table keyed by (method, path), Binance's security types, parameter parsing from the query
string and the form body (Binance accepts both), and JSON error responses."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

if TYPE_CHECKING:
    from basisbot.sim.host import VenueHost

NONE, API_KEY, SIGNED = "NONE", "API_KEY", "SIGNED"


@dataclass
class Ctx:
    request: web.Request
    params: dict[str, str]
    raw_query: str
    raw_body: str
    api_key: str | None

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self.params.get(name)
        return default if v in (None, "") else v

    def int(self, name: str, default: int | None = None) -> int | None:
        from basisbot.sim import errors

        v = self.get(name)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise errors.illegal_chars(name) from None


Handler = Callable[[Ctx], Awaitable[Any]]
# an endpoint written as a module-level function of the server and the request
HostHandler = Callable[["VenueHost", Ctx], Awaitable[Any]]
# (method, path, security, handler): one row per endpoint
RouteTable = list[tuple[str, str, str, HostHandler]]


@dataclass
class Route:
    handler: Handler
    security: str


class Routes:
    def __init__(self) -> None:
        self.table: dict[tuple[str, str], Route] = {}

    def add(self, method: str, path: str, security: str = NONE) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.table[(method.upper(), path)] = Route(fn, security)
            return fn
        return deco

    def merge(self, other: Routes) -> None:
        self.table.update(other.table)

    def lookup(self, method: str, path: str) -> Route | None:
        return self.table.get((method.upper(), path.rstrip("/") or "/"))

    def has_path(self, path: str) -> bool:
        path = path.rstrip("/")
        return any(p == path for (_, p) in self.table)


def bind_routes(table: RouteTable, sim: VenueHost) -> Routes:
    """The table's handlers bound to a running server."""
    routes = Routes()
    for method, path, security, handler in table:
        routes.add(method, path, security)(partial(handler, sim))
    return routes


async def make_ctx(request: web.Request) -> Ctx:
    raw_query = request.rel_url.raw_query_string or ""
    raw_body = ""
    if request.can_read_body:
        raw_body = await request.text()
    params: dict[str, str] = {}
    for k, v in parse_qsl(raw_query, keep_blank_values=True):
        params[k] = v
    if raw_body and "json" not in (request.content_type or ""):
        for k, v in parse_qsl(raw_body, keep_blank_values=True):
            params[k] = v
    return Ctx(request, params, raw_query, raw_body, request.headers.get("X-MBX-APIKEY"))


def _page(ctx: Ctx, rows: list, from_start: bool) -> list:
    """Binance's paging: `limit` (default 500, at most 1000) rows, the oldest ones when a lower bound was given."""
    limit = max(1, min(ctx.int("limit", 500) or 500, 1000))
    return rows[:limit] if from_start else rows[-limit:]


def _in_time_range(ctx: Ctx, rows: list) -> list:
    start, end = ctx.int("startTime"), ctx.int("endTime")
    if start is not None:
        rows = [r for r in rows if r.time >= start]
    if end is not None:
        rows = [r for r in rows if r.time <= end]
    return rows


def order_history(ctx: Ctx, rows: list) -> list:
    """allOrders: orders from `orderId` on, within startTime/endTime, paged."""
    oid = ctx.int("orderId")
    if oid is not None:
        rows = [o for o in rows if o.order_id >= oid]
    rows = _in_time_range(ctx, rows)
    return _page(ctx, rows, oid is not None or ctx.int("startTime") is not None)


def trade_history(ctx: Ctx, rows: list) -> list:
    """myTrades / userTrades: one order's trades (`orderId`), from `fromId`, within startTime/endTime, paged."""
    oid, from_id = ctx.int("orderId"), ctx.int("fromId")
    if oid is not None:
        rows = [t for t in rows if t.order_id == oid]
    if from_id is not None:
        rows = [t for t in rows if t.trade_id >= from_id]
    rows = _in_time_range(ctx, rows)
    return _page(ctx, rows, from_id is not None or ctx.int("startTime") is not None)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":")), status=status,
                        content_type="application/json", headers=headers)
