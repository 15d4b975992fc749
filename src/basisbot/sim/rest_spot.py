"""Spot REST API (``/api/v3``) and the wallet endpoints ccxt uses under ``/sapi``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from basisbot.sim import errors, marketdata
from basisbot.sim.markets import f8
from basisbot.sim.orders import spot_cancel_json, spot_order_json, spot_order_result, spot_trade_json
from basisbot.sim.routing import API_KEY, SIGNED, Ctx, Routes, order_history, trade_history
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


def spot_routes(sim: VenueHost) -> Routes:
    r = Routes()
    v = sim.venue

    # -- general -----------------------------------------------------------------------------------------------
    @r.add("GET", "/api/v3/ping")
    async def ping(ctx: Ctx):
        return {}

    @r.add("GET", "/api/v3/time")
    async def time_(ctx: Ctx):
        return {"serverTime": v.sync()}

    @r.add("GET", "/api/v3/exchangeInfo")
    async def exchange_info(ctx: Ctx):
        t = v.sync()
        info = marketdata.spot_exchange_info(v.markets, t)
        wanted = _symbols_param(ctx, sim)
        if wanted:
            info["symbols"] = [s for s in info["symbols"] if s["symbol"] in wanted]
        return info

    # -- market data -------------------------------------------------------------------------------------------
    def _each(ctx: Ctx):
        wanted = _symbols_param(ctx, sim)
        single = ctx.get("symbol") is not None
        return (wanted or list(v.markets)), single

    @r.add("GET", "/api/v3/ticker/bookTicker")
    async def book_ticker(ctx: Ctx):
        t = v.sync()
        syms, single = _each(ctx)
        out = [marketdata.book_ticker_rest(v.spot_quote(s, t), v.markets[s], t, futures=False) for s in syms]
        return out[0] if single else out

    @r.add("GET", "/api/v3/ticker/price")
    async def ticker_price(ctx: Ctx):
        t = v.sync()
        syms, single = _each(ctx)
        out = [{"symbol": s, "price": f8(v.paths[s].spot(t))} for s in syms]
        return out[0] if single else out

    @r.add("GET", "/api/v3/ticker/24hr")
    async def ticker_24h(ctx: Ctx):
        t = v.sync()
        syms, single = _each(ctx)
        out = [marketdata.ticker_24h(v.paths[s], v.markets[s], "spot", t, False, v.spot_quote(s, t)) for s in syms]
        return out[0] if single else out

    @r.add("GET", "/api/v3/depth")
    async def depth(ctx: Ctx):
        t = v.sync()
        m = v.market(ctx.get("symbol"))
        return marketdata.depth(v.spot_quote(m.symbol, t), m, t, False, ctx.int("limit", 100))

    async def _klines(ctx: Ctx):
        t = v.sync()
        m = v.market(ctx.get("symbol"))
        return marketdata.klines(v.paths[m.symbol], m, "spot", ctx.get("interval"), ctx.int("startTime"),
                                 ctx.int("endTime"), ctx.int("limit"), t, futures=False)

    r.add("GET", "/api/v3/klines")(_klines)
    r.add("GET", "/api/v3/uiKlines")(_klines)

    @r.add("GET", "/api/v3/avgPrice")
    async def avg_price(ctx: Ctx):
        t = v.sync()
        m = v.market(ctx.get("symbol"))
        return {"mins": 5, "price": f8(v.paths[m.symbol].spot(t)), "closeTime": t}

    # -- account -----------------------------------------------------------------------------------------------
    @r.add("GET", "/api/v3/account", SIGNED)
    async def account(ctx: Ctx):
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

    @r.add("GET", "/api/v3/account/commission", SIGNED)
    async def commission(ctx: Ctx):
        m = v.market(ctx.get("symbol"))
        fee = f8(v.cfg.spot_fee)
        z = "0.00000000"
        return {"symbol": m.symbol, "standardCommission": {"maker": fee, "taker": fee, "buyer": z, "seller": z},
                "taxCommission": {"maker": z, "taker": z, "buyer": z, "seller": z},
                "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB",
                             "discount": z}}

    # -- orders ------------------------------------------------------------------------------------------------
    @r.add("POST", "/api/v3/order", SIGNED)
    async def new_order(ctx: Ctx):
        resp_type = (ctx.get("newOrderRespType") or "FULL").upper()
        o, fills = v.spot_new_order(ctx.params)
        return spot_order_result(o, resp_type, fills)

    @r.add("POST", "/api/v3/order/test", SIGNED)
    async def test_order(ctx: Ctx):
        return {}

    @r.add("GET", "/api/v3/order", SIGNED)
    async def get_order(ctx: Ctx):
        v.sync()
        m = v.market(ctx.get("symbol"))
        o = v.find_order(SPOT, m.symbol, ctx.get("orderId"), ctx.get("origClientOrderId"))
        if o is None:
            raise errors.order_does_not_exist()
        return spot_order_json(o)

    @r.add("DELETE", "/api/v3/order", SIGNED)
    async def cancel_order(ctx: Ctx):
        o, cancel_id = v.spot_cancel(ctx.params)
        return spot_cancel_json(o, cancel_id)

    @r.add("GET", "/api/v3/openOrders", SIGNED)
    async def open_orders(ctx: Ctx):
        v.sync()
        sym = v.market(ctx.get("symbol")).symbol if ctx.get("symbol") else None
        return [spot_order_json(o) for o in v.open_orders[SPOT].values() if sym is None or o.symbol == sym]

    @r.add("DELETE", "/api/v3/openOrders", SIGNED)
    async def cancel_open(ctx: Ctx):
        orders = v.spot_cancel_all(ctx.params)
        return [spot_cancel_json(o, "sim-cancel-all") for o in orders]

    @r.add("GET", "/api/v3/allOrders", SIGNED)
    async def all_orders(ctx: Ctx):
        v.sync()
        m = v.market(ctx.get("symbol"))
        rows = order_history(ctx, [o for o in v.orders[SPOT].values() if o.symbol == m.symbol])
        return [spot_order_json(o) for o in rows]

    @r.add("GET", "/api/v3/myTrades", SIGNED)
    async def my_trades(ctx: Ctx):
        v.sync()
        m = v.market(ctx.get("symbol"))
        rows = trade_history(ctx, [t for t in v.trades[SPOT] if t.symbol == m.symbol])
        return [spot_trade_json(t) for t in rows]

    # -- listen keys (legacy spot user stream) -----------------------------------------------------------------
    @r.add("POST", "/api/v3/userDataStream", API_KEY)
    async def uds_new(ctx: Ctx):
        return {"listenKey": sim.listen_keys.create(SPOT)}

    @r.add("PUT", "/api/v3/userDataStream", API_KEY)
    async def uds_keepalive(ctx: Ctx):
        key = ctx.get("listenKey")
        if not key:
            raise errors.mandatory("listenKey")
        sim.listen_keys.keepalive(key, SPOT)
        return {}

    @r.add("DELETE", "/api/v3/userDataStream", API_KEY)
    async def uds_close(ctx: Ctx):
        key = ctx.get("listenKey")
        if not key:
            raise errors.mandatory("listenKey")
        sim.listen_keys.delete(key, SPOT)
        await sim.hub.close_listen_key(key)
        return {}

    # -- sapi --------------------------------------------------------------------------------------------------
    @r.add("GET", "/sapi/v1/system/status")
    async def system_status(ctx: Ctx):
        return {"status": 0, "msg": "normal"}

    @r.add("GET", "/sapi/v1/capital/config/getall", SIGNED)
    async def capital_config(ctx: Ctx):
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

    @r.add("GET", "/sapi/v1/margin/allPairs", SIGNED)
    async def margin_pairs(ctx: Ctx):
        return []

    @r.add("GET", "/sapi/v1/margin/isolated/allPairs", SIGNED)
    async def isolated_pairs(ctx: Ctx):
        return []

    @r.add("GET", "/sapi/v1/asset/tradeFee", SIGNED)
    async def trade_fee(ctx: Ctx):
        fee = f8(v.cfg.spot_fee)
        syms = [v.market(ctx.get("symbol")).symbol] if ctx.get("symbol") else list(v.markets)
        return [{"symbol": s, "makerCommission": fee, "takerCommission": fee} for s in syms]

    @r.add("POST", "/sapi/v1/asset/transfer", SIGNED)
    async def asset_transfer(ctx: Ctx):
        return v.transfer(ctx.get("type"), ctx.get("asset"), ctx.get("amount"))

    @r.add("GET", "/sapi/v1/asset/transfer", SIGNED)
    async def asset_transfers(ctx: Ctx):
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

    @r.add("POST", "/sapi/v1/futures/transfer", SIGNED)
    async def futures_transfer(ctx: Ctx):
        kind = {"1": "MAIN_UMFUTURE", "2": "UMFUTURE_MAIN"}.get(ctx.get("type") or "")
        if kind is None:
            raise errors.bad_param("type") if ctx.get("type") else errors.mandatory("type")
        return v.transfer(kind, ctx.get("asset"), ctx.get("amount"))

    return r

