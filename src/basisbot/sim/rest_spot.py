"""Spot REST API (``/api/v3``) and the wallet endpoints ccxt uses under ``/sapi``.

One function per endpoint, each ``handler(sim, ctx)``; :data:`ROUTES` is the table of (method, path, security,
handler) and :func:`spot_routes` binds it to a running server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from basisbot.sim import errors, marketdata
from basisbot.sim.markets import f8
from basisbot.sim.orders import spot_cancel_json, spot_order_json, spot_order_result, spot_trade_json
from basisbot.sim.routing import (
    API_KEY,
    NONE,
    SIGNED,
    Ctx,
    Routes,
    RouteTable,
    bind_routes,
    order_history,
    trade_history,
)
from basisbot.sim.venue_orders import SPOT

if TYPE_CHECKING:
    from basisbot.sim.host import VenueHost


def _symbols_param(ctx: Ctx, sim: VenueHost) -> list[str] | None:
    import json

    one = ctx.get("symbol")
    many = ctx.get("symbols")
    if one:
        return [sim.venue.market(one).symbol]
    if many:
        try:
            names = json.loads(many)
        except ValueError:
            raise errors.bad_param("symbols") from None
        return [sim.venue.market(n).symbol for n in names]
    return None


# -- general -----------------------------------------------------------------------------------------------
async def ping(sim: VenueHost, ctx: Ctx):
    return {}


async def server_time(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    return {"serverTime": v.sync()}


async def exchange_info(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    info = marketdata.spot_exchange_info(v.markets, t)
    wanted = _symbols_param(ctx, sim)
    if wanted:
        info["symbols"] = [s for s in info["symbols"] if s["symbol"] in wanted]
    return info


# -- market data -------------------------------------------------------------------------------------------
def _each(sim: VenueHost, ctx: Ctx) -> tuple[list[str], bool]:
    """The symbols asked for (`symbol` or `symbols`) or every listed one, and whether one object is answered."""
    wanted = _symbols_param(ctx, sim)
    single = ctx.get("symbol") is not None
    return (wanted or list(sim.venue.markets)), single


async def book_ticker(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    syms, single = _each(sim, ctx)
    out = [marketdata.book_ticker_rest(v.spot_quote(s, t), v.markets[s], t, futures=False) for s in syms]
    return out[0] if single else out


async def ticker_price(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    syms, single = _each(sim, ctx)
    out = [{"symbol": s, "price": f8(v.paths[s].spot(t))} for s in syms]
    return out[0] if single else out


async def ticker_24h(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    syms, single = _each(sim, ctx)
    out = [marketdata.ticker_24h(v.paths[s], v.markets[s], "spot", t, False, v.spot_quote(s, t)) for s in syms]
    return out[0] if single else out


async def depth(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    m = v.market(ctx.get("symbol"))
    return marketdata.depth(v.spot_quote(m.symbol, t), m, t, False, ctx.int("limit", 100))


async def klines(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    m = v.market(ctx.get("symbol"))
    return marketdata.klines(v.paths[m.symbol], m, "spot", ctx.get("interval"), ctx.int("startTime"),
                             ctx.int("endTime"), ctx.int("limit"), t, futures=False)


async def avg_price(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    m = v.market(ctx.get("symbol"))
    return {"mins": 5, "price": f8(v.paths[m.symbol].spot(t)), "closeTime": t}


# -- account -----------------------------------------------------------------------------------------------
async def account(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    fee = f8(v.cfg.spot_fee)
    bps = int(round(v.cfg.spot_fee * 10_000))
    balances = v.spot.balances_json()
    if ctx.get("omitZeroBalances") == "true":
        balances = [b for b in balances if float(b["free"]) or float(b["locked"])]
    return {
        "makerCommission": bps, "takerCommission": bps, "buyerCommission": 0, "sellerCommission": 0,
        "commissionRates": {"maker": fee, "taker": fee, "buyer": "0.00000000", "seller": "0.00000000"},
        "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False, "updateTime": v.spot.update_time or t,
        "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 1,
    }


async def commission(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    m = v.market(ctx.get("symbol"))
    fee = f8(v.cfg.spot_fee)
    z = "0.00000000"
    return {"symbol": m.symbol, "standardCommission": {"maker": fee, "taker": fee, "buyer": z, "seller": z},
            "taxCommission": {"maker": z, "taker": z, "buyer": z, "seller": z},
            "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB",
                         "discount": z}}


# -- orders ------------------------------------------------------------------------------------------------
async def new_order(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    resp_type = (ctx.get("newOrderRespType") or "FULL").upper()
    o, fills = v.spot_new_order(ctx.params)
    return spot_order_result(o, resp_type, fills)


async def test_order(sim: VenueHost, ctx: Ctx):
    return {}


async def get_order(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    m = v.market(ctx.get("symbol"))
    o = v.find_order(SPOT, m.symbol, ctx.get("orderId"), ctx.get("origClientOrderId"))
    if o is None:
        raise errors.order_does_not_exist()
    return spot_order_json(o)


async def cancel_order(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    o, cancel_id = v.spot_cancel(ctx.params)
    return spot_cancel_json(o, cancel_id)


async def open_orders(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    sym = v.market(ctx.get("symbol")).symbol if ctx.get("symbol") else None
    return [spot_order_json(o) for o in v.open_orders[SPOT].values() if sym is None or o.symbol == sym]


async def cancel_open(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    orders = v.spot_cancel_all(ctx.params)
    return [spot_cancel_json(o, "sim-cancel-all") for o in orders]


async def all_orders(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    m = v.market(ctx.get("symbol"))
    rows = order_history(ctx, [o for o in v.orders[SPOT].values() if o.symbol == m.symbol])
    return [spot_order_json(o) for o in rows]


async def my_trades(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    m = v.market(ctx.get("symbol"))
    rows = trade_history(ctx, [t for t in v.trades[SPOT] if t.symbol == m.symbol])
    return [spot_trade_json(t) for t in rows]


# -- listen keys (legacy spot user stream) -----------------------------------------------------------------
async def uds_new(sim: VenueHost, ctx: Ctx):
    return {"listenKey": sim.listen_keys.create(SPOT)}


async def uds_keepalive(sim: VenueHost, ctx: Ctx):
    key = ctx.get("listenKey")
    if not key:
        raise errors.mandatory("listenKey")
    sim.listen_keys.keepalive(key, SPOT)
    return {}


async def uds_close(sim: VenueHost, ctx: Ctx):
    key = ctx.get("listenKey")
    if not key:
        raise errors.mandatory("listenKey")
    sim.listen_keys.delete(key, SPOT)
    await sim.hub.close_listen_key(key)
    return {}


# -- sapi --------------------------------------------------------------------------------------------------
async def system_status(sim: VenueHost, ctx: Ctx):
    return {"status": 0, "msg": "normal"}


async def capital_config(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    assets = sorted({m.base for m in v.markets.values()} | {"USDT"} | set(v.spot.balances))
    out = []
    for a in assets:
        out.append({
            "coin": a, "name": a, "depositAllEnable": True, "withdrawAllEnable": True, "free": f8(v.spot.free(a)),
            "locked": f8(v.spot.locked(a)), "freeze": "0", "withdrawing": "0", "ipoing": "0", "ipoable": "0",
            "storage": "0", "isLegalMoney": False, "trading": True,
            "networkList": [{"network": a, "coin": a, "withdrawIntegerMultiple": "0.00000001",
                             "isDefault": True, "depositEnable": True, "withdrawEnable": True,
                             "depositDesc": "", "withdrawDesc": "", "specialTips": "", "name": a,
                             "resetAddressStatus": False, "addressRegex": "", "memoRegex": "",
                             "withdrawFee": "0", "withdrawMin": "0", "withdrawMax": "9999999999",
                             "minConfirm": 1, "unLockConfirm": 0, "sameAddress": False,
                             "estimatedArrivalTime": 1, "busy": False}],
        })
    return out


async def margin_pairs(sim: VenueHost, ctx: Ctx):
    return []


async def isolated_pairs(sim: VenueHost, ctx: Ctx):
    return []


async def trade_fee(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    fee = f8(v.cfg.spot_fee)
    syms = [v.market(ctx.get("symbol")).symbol] if ctx.get("symbol") else list(v.markets)
    return [{"symbol": s, "makerCommission": fee, "takerCommission": fee} for s in syms]


async def asset_transfer(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    return v.transfer(ctx.get("type"), ctx.get("asset"), ctx.get("amount"))


async def asset_transfers(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    kind = (ctx.get("type") or "").upper()
    if not kind:
        raise errors.mandatory("type")
    rows = [dict(row) for row in v.transfers if row["type"] == kind]
    start, end = ctx.int("startTime"), ctx.int("endTime")
    if start is not None:
        rows = [x for x in rows if x["timestamp"] >= start]
    if end is not None:
        rows = [x for x in rows if x["timestamp"] <= end]
    return {"total": len(rows), "rows": rows}


async def futures_transfer(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    kind = {"1": "MAIN_UMFUTURE", "2": "UMFUTURE_MAIN"}.get(ctx.get("type") or "")
    if kind is None:
        raise errors.bad_param("type") if ctx.get("type") else errors.mandatory("type")
    return v.transfer(kind, ctx.get("asset"), ctx.get("amount"))


ROUTES: RouteTable = [
    ("GET", "/api/v3/ping", NONE, ping),
    ("GET", "/api/v3/time", NONE, server_time),
    ("GET", "/api/v3/exchangeInfo", NONE, exchange_info),
    ("GET", "/api/v3/ticker/bookTicker", NONE, book_ticker),
    ("GET", "/api/v3/ticker/price", NONE, ticker_price),
    ("GET", "/api/v3/ticker/24hr", NONE, ticker_24h),
    ("GET", "/api/v3/depth", NONE, depth),
    ("GET", "/api/v3/klines", NONE, klines),
    ("GET", "/api/v3/uiKlines", NONE, klines),
    ("GET", "/api/v3/avgPrice", NONE, avg_price),
    ("GET", "/api/v3/account", SIGNED, account),
    ("GET", "/api/v3/account/commission", SIGNED, commission),
    ("POST", "/api/v3/order", SIGNED, new_order),
    ("POST", "/api/v3/order/test", SIGNED, test_order),
    ("GET", "/api/v3/order", SIGNED, get_order),
    ("DELETE", "/api/v3/order", SIGNED, cancel_order),
    ("GET", "/api/v3/openOrders", SIGNED, open_orders),
    ("DELETE", "/api/v3/openOrders", SIGNED, cancel_open),
    ("GET", "/api/v3/allOrders", SIGNED, all_orders),
    ("GET", "/api/v3/myTrades", SIGNED, my_trades),
    ("POST", "/api/v3/userDataStream", API_KEY, uds_new),
    ("PUT", "/api/v3/userDataStream", API_KEY, uds_keepalive),
    ("DELETE", "/api/v3/userDataStream", API_KEY, uds_close),
    ("GET", "/sapi/v1/system/status", NONE, system_status),
    ("GET", "/sapi/v1/capital/config/getall", SIGNED, capital_config),
    ("GET", "/sapi/v1/margin/allPairs", SIGNED, margin_pairs),
    ("GET", "/sapi/v1/margin/isolated/allPairs", SIGNED, isolated_pairs),
    ("GET", "/sapi/v1/asset/tradeFee", SIGNED, trade_fee),
    ("POST", "/sapi/v1/asset/transfer", SIGNED, asset_transfer),
    ("GET", "/sapi/v1/asset/transfer", SIGNED, asset_transfers),
    ("POST", "/sapi/v1/futures/transfer", SIGNED, futures_transfer),
]


def spot_routes(sim: VenueHost) -> Routes:
    return bind_routes(ROUTES, sim)
