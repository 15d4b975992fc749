"""USDⓈ-M futures REST API (``/fapi/v1``, ``/fapi/v2``, ``/fapi/v3``) and the empty COIN-M answers ccxt's
default ``load_markets`` asks for (``/dapi/v1``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from basisbot.core.units import HOUR_MS
from basisbot.sim import errors, marketdata
from basisbot.sim.markets import bracket_entry, f8
from basisbot.sim.orders import futures_order_json, futures_trade_json
from basisbot.sim.routing import API_KEY, SIGNED, Ctx, Routes, order_history, trade_history
from basisbot.sim.venue_orders import FUT

if TYPE_CHECKING:
    from basisbot.sim.host import VenueHost


def futures_routes(sim: VenueHost) -> Routes:
    r = Routes()
    v = sim.venue

    def syms(ctx: Ctx) -> tuple[list[str], bool]:
        s = ctx.get("symbol")
        if s:
            return [v.market(s).symbol], True
        return list(v.markets), False

    # -- general -----------------------------------------------------------------------------------------------
    @r.add("GET", "/fapi/v1/ping")
    async def ping(ctx: Ctx):
        return {}

    @r.add("GET", "/fapi/v1/time")
    async def time_(ctx: Ctx):
        return {"serverTime": v.sync()}

    @r.add("GET", "/fapi/v1/exchangeInfo")
    async def exchange_info(ctx: Ctx):
        return marketdata.futures_exchange_info(v.markets, v.sync())

    # -- market data -------------------------------------------------------------------------------------------
    @r.add("GET", "/fapi/v1/premiumIndex")
    async def premium_index(ctx: Ctx):
        t = v.sync()
        names, single = syms(ctx)
        out = [marketdata.premium_index(v.paths[s], v.markets[s], t, v.cfg.predicted_rate) for s in names]
        return out[0] if single else out

    @r.add("GET", "/fapi/v1/fundingRate")
    async def funding_rate(ctx: Ctx):
        t = v.sync()
        names, _ = syms(ctx)
        limit = max(1, min(ctx.int("limit", 100) or 100, 1000))
        rows = []
        for s in names:
            p = v.paths[s]
            for ts, rate in p.funding_history(ctx.int("startTime"), ctx.int("endTime"), limit, t):
                rows.append({"symbol": s, "fundingRate": f8(rate), "fundingTime": ts,
                             "markPrice": f8(p.mark(ts))})
        rows.sort(key=lambda x: x["fundingTime"])
        return rows[:limit] if ctx.get("startTime") else rows[-limit:]

    @r.add("GET", "/fapi/v1/fundingInfo")
    async def funding_info(ctx: Ctx):
        t = v.sync()
        return [marketdata.funding_info(v.paths[s], v.markets[s], t) for s in v.markets]

    @r.add("GET", "/fapi/v1/ticker/bookTicker")
    async def book_ticker(ctx: Ctx):
        t = v.sync()
        names, single = syms(ctx)
        out = [marketdata.book_ticker_rest(v.perp_quote(s, t), v.markets[s], t, True) for s in names]
        return out[0] if single else out

    async def _price(ctx: Ctx):
        t = v.sync()
        names, single = syms(ctx)
        out = [{"symbol": s, "price": v.markets[s].fmt_perp_price(v.paths[s].perp(t)), "time": t} for s in names]
        return out[0] if single else out

    r.add("GET", "/fapi/v1/ticker/price")(_price)
    r.add("GET", "/fapi/v2/ticker/price")(_price)

    @r.add("GET", "/fapi/v1/ticker/24hr")
    async def ticker_24h(ctx: Ctx):
        t = v.sync()
        names, single = syms(ctx)
        out = [marketdata.ticker_24h(v.paths[s], v.markets[s], "perp", t, True) for s in names]
        return out[0] if single else out

    @r.add("GET", "/fapi/v1/depth")
    async def depth(ctx: Ctx):
        t = v.sync()
        m = v.market(ctx.get("symbol"))
        return marketdata.depth(v.perp_quote(m.symbol, t), m, t, True, ctx.int("limit", 500))

    def _klines(kind: str):
        async def handler(ctx: Ctx):
            t = v.sync()
            m = v.market(ctx.get("symbol") or ctx.get("pair"))
            return marketdata.klines(v.paths[m.symbol], m, kind, ctx.get("interval"), ctx.int("startTime"),
                                     ctx.int("endTime"), ctx.int("limit"), t, futures=True)
        return handler

    r.add("GET", "/fapi/v1/klines")(_klines("perp"))
    r.add("GET", "/fapi/v1/markPriceKlines")(_klines("mark"))
    r.add("GET", "/fapi/v1/indexPriceKlines")(_klines("spot"))

    # -- account -----------------------------------------------------------------------------------------------
    @r.add("GET", "/fapi/v1/leverageBracket", SIGNED)
    async def leverage_bracket(ctx: Ctx):
        names, single = syms(ctx)
        out = [bracket_entry(v.markets[s]) for s in names]
        return out[0] if single else out

    def position_row(s: str, version: int, t: int) -> dict:
        p = v.fut.positions[s]
        m = v.markets[s]
        mark = v.mark(s)
        marks = v.marks()
        iso = v.fut.isolated(s)
        up = v.fut.upnl(s, mark)
        notional = p.qty * mark
        lev = v.fut.leverage[s]
        lp = v.fut.liquidation_price(s, marks) if p.qty else 0.0
        oo_im = sum(o.reserved for o in v.open_orders[FUT].values() if o.symbol == s)
        pos_im = abs(notional) / lev
        row = {
            "symbol": s,
            "positionAmt": m.fmt_perp_qty(p.qty),
            "entryPrice": f8(p.entry),
            "breakEvenPrice": f8(p.entry),
            "markPrice": f8(mark),
            "unRealizedProfit": f8(up),
            "liquidationPrice": f8(lp),
        }
        if version == 2:
            row.update({
                "leverage": str(lev),
                "maxNotionalValue": f"{v.fut.max_notional(s, lev):.0f}",
                "marginType": "isolated" if iso else "cross",
                "isolatedMargin": f8(p.iso_wallet + up if iso and p.qty else 0.0),
                "isAutoAddMargin": "false",
                "positionSide": "BOTH",
                "notional": f8(notional),
                "isolatedWallet": f8(p.iso_wallet),
                "updateTime": p.update_time,
                "isolated": iso,
                "adlQuantile": 0,
            })
        else:
            row = {"symbol": s, "positionSide": "BOTH", **{k: row[k] for k in list(row)[1:]}}
            row.update({
                "isolatedMargin": f8(p.iso_wallet + up if iso and p.qty else 0.0),
                "notional": f8(notional),
                "marginAsset": "USDT",
                "isolatedWallet": f8(p.iso_wallet),
                "initialMargin": f8(pos_im + oo_im),
                "maintMargin": f8(v.fut.maint_margin(s, mark)),
                "positionInitialMargin": f8(pos_im),
                "openOrderInitialMargin": f8(oo_im),
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": p.update_time,
            })
        return row

    def _position_risk(version: int):
        async def handler(ctx: Ctx):
            t = v.sync()
            names, _ = syms(ctx)
            if version == 3:
                active = {o.symbol for o in v.open_orders[FUT].values()}
                names = [s for s in names if v.fut.positions[s].qty or s in active]
            return [position_row(s, version, t) for s in names]
        return handler

    r.add("GET", "/fapi/v2/positionRisk", SIGNED)(_position_risk(2))
    r.add("GET", "/fapi/v3/positionRisk", SIGNED)(_position_risk(3))

    def totals() -> dict:
        marks = v.marks()
        oo_im = v.open_order_im()
        upnl = sum(v.fut.upnl(s, marks[s]) for s in v.markets)
        pos_im = sum(v.fut.position_im(s, marks[s]) for s in v.markets)
        mm = sum(v.fut.maint_margin(s, marks[s]) for s in v.markets)
        wb = v.fut.wallet_balance()
        avail = v.fut.available(marks, oo_im)
        return {
            "totalInitialMargin": f8(pos_im + oo_im),
            "totalMaintMargin": f8(mm),
            "totalWalletBalance": f8(wb),
            "totalUnrealizedProfit": f8(upnl),
            "totalMarginBalance": f8(wb + upnl),
            "totalPositionInitialMargin": f8(pos_im),
            "totalOpenOrderInitialMargin": f8(oo_im),
            "totalCrossWalletBalance": f8(v.fut.cross_wallet),
            "totalCrossUnPnl": f8(v.fut.cross_upnl(marks)),
            "availableBalance": f8(avail),
            "maxWithdrawAmount": f8(v.fut.max_withdraw(marks, oo_im)),
        }

    def asset_row(t: int) -> dict:
        tot = totals()
        return {
            "asset": "USDT",
            "walletBalance": tot["totalWalletBalance"],
            "unrealizedProfit": tot["totalUnrealizedProfit"],
            "marginBalance": tot["totalMarginBalance"],
            "maintMargin": tot["totalMaintMargin"],
            "initialMargin": tot["totalInitialMargin"],
            "positionInitialMargin": tot["totalPositionInitialMargin"],
            "openOrderInitialMargin": tot["totalOpenOrderInitialMargin"],
            "crossWalletBalance": tot["totalCrossWalletBalance"],
            "crossUnPnl": tot["totalCrossUnPnl"],
            "availableBalance": tot["availableBalance"],
            "maxWithdrawAmount": tot["maxWithdrawAmount"],
            "marginAvailable": True,
            "updateTime": v.fut.update_time or t,
        }

    def _account(version: int):
        async def handler(ctx: Ctx):
            t = v.sync()
            out: dict = {}
            if version == 2:
                out.update({"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True,
                            "canWithdraw": True, "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1})
            out.update(totals())
            out["assets"] = [asset_row(t)]
            positions = []
            marks = v.marks()
            for s, p in v.fut.positions.items():
                if version == 3 and not p.qty:
                    continue
                mark = marks[s]
                lev = v.fut.leverage[s]
                iso = v.fut.isolated(s)
                up = v.fut.upnl(s, mark)
                oo_im = sum(o.reserved for o in v.open_orders[FUT].values() if o.symbol == s)
                pos_im = abs(p.qty) * mark / lev
                row = {"symbol": s, "positionSide": "BOTH", "positionAmt": v.markets[s].fmt_perp_qty(p.qty),
                       "unrealizedProfit": f8(up), "isolatedMargin": f8(p.iso_wallet + up if iso and p.qty else 0),
                       "notional": f8(p.qty * mark), "isolatedWallet": f8(p.iso_wallet),
                       "initialMargin": f8(pos_im + oo_im), "maintMargin": f8(v.fut.maint_margin(s, mark)),
                       "updateTime": p.update_time}
                if version == 2:
                    row.update({"positionInitialMargin": f8(pos_im), "openOrderInitialMargin": f8(oo_im),
                                "leverage": str(lev), "isolated": iso, "entryPrice": f8(p.entry),
                                "breakEvenPrice": f8(p.entry), "maxNotional": f"{v.fut.max_notional(s, lev):.0f}",
                                "bidNotional": "0", "askNotional": "0"})
                positions.append(row)
            out["positions"] = positions
            return out
        return handler

    r.add("GET", "/fapi/v2/account", SIGNED)(_account(2))
    r.add("GET", "/fapi/v3/account", SIGNED)(_account(3))

    async def _balance(ctx: Ctx):
        t = v.sync()
        a = asset_row(t)
        return [{"accountAlias": "SimFutures", "asset": "USDT", "balance": a["walletBalance"],
                 "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                 "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                 "marginAvailable": True, "updateTime": a["updateTime"]}]

    r.add("GET", "/fapi/v2/balance", SIGNED)(_balance)
    r.add("GET", "/fapi/v3/balance", SIGNED)(_balance)

    @r.add("GET", "/fapi/v1/income", SIGNED)
    async def income(ctx: Ctx):
        t = v.sync()
        rows = v.fut.income
        sym = ctx.get("symbol")
        if sym:
            sym = v.market(sym).symbol
            rows = [x for x in rows if x["symbol"] == sym]
        kind = ctx.get("incomeType")
        if kind:
            rows = [x for x in rows if x["incomeType"] == kind]
        start, end = ctx.int("startTime"), ctx.int("endTime")
        if start is None and end is None:
            start = t - 7 * 24 * HOUR_MS
        if start is not None:
            rows = [x for x in rows if x["time"] >= start]
        if end is not None:
            rows = [x for x in rows if x["time"] <= end]
        limit = max(1, min(ctx.int("limit", 100) or 100, 1000))
        return rows[:limit] if ctx.get("startTime") else rows[-limit:]

    @r.add("GET", "/fapi/v1/commissionRate", SIGNED)
    async def commission_rate(ctx: Ctx):
        m = v.market(ctx.get("symbol"))
        return {"symbol": m.symbol, "makerCommissionRate": f"{v.cfg.futures_maker_fee:.6f}",
                "takerCommissionRate": f"{v.cfg.futures_taker_fee:.6f}"}

    @r.add("GET", "/fapi/v1/symbolConfig", SIGNED)
    async def symbol_config(ctx: Ctx):
        names, _ = syms(ctx)
        return [{"symbol": s, "marginType": v.fut.margin_type[s], "isAutoAddMargin": False,
                 "leverage": v.fut.leverage[s], "maxNotionalValue": f"{v.fut.max_notional(s, v.fut.leverage[s]):.0f}"}
                for s in names]

    @r.add("GET", "/fapi/v1/positionSide/dual", SIGNED)
    async def position_mode(ctx: Ctx):
        return {"dualSidePosition": False}

    @r.add("GET", "/fapi/v1/multiAssetsMargin", SIGNED)
    async def multi_assets(ctx: Ctx):
        return {"multiAssetsMargin": False}

    @r.add("POST", "/fapi/v1/leverage", SIGNED)
    async def leverage(ctx: Ctx):
        return v.set_leverage(ctx.get("symbol"), ctx.get("leverage"))

    @r.add("POST", "/fapi/v1/marginType", SIGNED)
    async def margin_type(ctx: Ctx):
        return v.set_margin_type(ctx.get("symbol"), ctx.get("marginType"))

    @r.add("POST", "/fapi/v1/positionMargin", SIGNED)
    async def position_margin(ctx: Ctx):
        return v.position_margin(ctx.get("symbol"), ctx.get("amount"), ctx.get("type"))

    # -- orders ------------------------------------------------------------------------------------------------
    @r.add("POST", "/fapi/v1/order", SIGNED)
    async def new_order(ctx: Ctx):
        o = v.futures_new_order(ctx.params)
        return futures_order_json(o, v.markets[o.symbol], with_time=False)

    @r.add("GET", "/fapi/v1/order", SIGNED)
    async def get_order(ctx: Ctx):
        v.sync()
        m = v.market(ctx.get("symbol"))
        o = v.find_order(FUT, m.symbol, ctx.get("orderId"), ctx.get("origClientOrderId"))
        if o is None:
            raise errors.order_does_not_exist()
        return futures_order_json(o, m)

    @r.add("DELETE", "/fapi/v1/order", SIGNED)
    async def cancel_order(ctx: Ctx):
        o = v.futures_cancel(ctx.params)
        return futures_order_json(o, v.markets[o.symbol], with_time=False)

    @r.add("GET", "/fapi/v1/openOrders", SIGNED)
    async def open_orders(ctx: Ctx):
        v.sync()
        sym = v.market(ctx.get("symbol")).symbol if ctx.get("symbol") else None
        return [futures_order_json(o, v.markets[o.symbol]) for o in v.open_orders[FUT].values()
                if sym is None or o.symbol == sym]

    @r.add("GET", "/fapi/v1/openOrder", SIGNED)
    async def open_order(ctx: Ctx):
        v.sync()
        m = v.market(ctx.get("symbol"))
        o = v.find_order(FUT, m.symbol, ctx.get("orderId"), ctx.get("origClientOrderId"))
        if o is None or not o.is_open:
            raise errors.BinanceError(-2013, "Order does not exist.", 400)
        return futures_order_json(o, m)

    @r.add("DELETE", "/fapi/v1/allOpenOrders", SIGNED)
    async def cancel_all(ctx: Ctx):
        v.futures_cancel_all(ctx.params)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    @r.add("GET", "/fapi/v1/allOrders", SIGNED)
    async def all_orders(ctx: Ctx):
        v.sync()
        m = v.market(ctx.get("symbol"))
        rows = order_history(ctx, [o for o in v.orders[FUT].values() if o.symbol == m.symbol])
        return [futures_order_json(o, m) for o in rows]

    @r.add("GET", "/fapi/v1/userTrades", SIGNED)
    async def user_trades(ctx: Ctx):
        v.sync()
        m = v.market(ctx.get("symbol"))
        rows = trade_history(ctx, [t for t in v.trades[FUT] if t.symbol == m.symbol])
        return [futures_trade_json(t, m) for t in rows]

    # -- listen key --------------------------------------------------------------------------------------------
    @r.add("POST", "/fapi/v1/listenKey", API_KEY)
    async def listen_key_new(ctx: Ctx):
        return {"listenKey": sim.listen_keys.create(FUT)}

    @r.add("PUT", "/fapi/v1/listenKey", API_KEY)
    async def listen_key_keepalive(ctx: Ctx):
        key = sim.listen_keys.active(FUT)
        if key is None:
            raise errors.listen_key_missing()
        sim.listen_keys.keepalive(key, FUT)
        return {"listenKey": key}

    @r.add("DELETE", "/fapi/v1/listenKey", API_KEY)
    async def listen_key_close(ctx: Ctx):
        key = sim.listen_keys.active(FUT)
        if key is not None:
            sim.listen_keys.delete(key, FUT)
            await sim.hub.close_listen_key(key)
        return {}

    # -- COIN-M: nothing listed (ccxt's default load_markets asks) ---------------------------------------------
    @r.add("GET", "/dapi/v1/ping")
    async def dapi_ping(ctx: Ctx):
        return {}

    @r.add("GET", "/dapi/v1/time")
    async def dapi_time(ctx: Ctx):
        return {"serverTime": v.sync()}

    @r.add("GET", "/dapi/v1/exchangeInfo")
    async def dapi_info(ctx: Ctx):
        return {"timezone": "UTC", "serverTime": v.sync(), "rateLimits": [], "exchangeFilters": [], "symbols": []}

    return r
