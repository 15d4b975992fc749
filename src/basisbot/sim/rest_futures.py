"""USDⓈ-M futures REST API (``/fapi/v1``, ``/fapi/v2``, ``/fapi/v3``) and the empty COIN-M answers ccxt's
default ``load_markets`` asks for (``/dapi/v1``).

One function per endpoint, each ``handler(sim, ctx)``; :data:`ROUTES` is the table of (method, path, security,
handler) and :func:`futures_routes` binds it to a running server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from basisbot.sim import errors, marketdata
from basisbot.sim.markets import bracket_entry, f8
from basisbot.sim.orders import futures_order_json, futures_trade_json
from basisbot.sim.prices import HOUR_MS
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
from basisbot.sim.venue_orders import FUT

if TYPE_CHECKING:
    from basisbot.sim.host import VenueHost
    from basisbot.sim.venue import Venue


def _syms(v: Venue, ctx: Ctx) -> tuple[list[str], bool]:
    """The `symbol` asked for (and True: answer one object), or every listed symbol (and False: answer a list)."""
    s = ctx.get("symbol")
    if s:
        return [v.market(s).symbol], True
    return list(v.markets), False


def _one_or_all(out: list, single: bool):
    return out[0] if single else out


def _limit(ctx: Ctx) -> int:
    return max(1, min(ctx.int("limit", 100) or 100, 1000))


def _open_order_im(v: Venue, symbol: str) -> float:
    return sum(o.reserved for o in v.open_orders[FUT].values() if o.symbol == symbol)


def _isolated_margin(p, iso: bool, upnl: float) -> float:
    return p.iso_wallet + upnl if iso and p.qty else 0.0


# -- general -----------------------------------------------------------------------------------------------------
async def ping(sim: VenueHost, ctx: Ctx):
    return {}


async def server_time(sim: VenueHost, ctx: Ctx):
    return {"serverTime": sim.venue.sync()}


async def exchange_info(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    return marketdata.futures_exchange_info(v.markets, v.sync())


# -- market data -------------------------------------------------------------------------------------------------
async def premium_index(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    names, single = _syms(v, ctx)
    return _one_or_all([marketdata.premium_index(v.paths[s], v.markets[s], t, v.cfg.predicted_rate)
                        for s in names], single)


async def funding_rate(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    names, _ = _syms(v, ctx)
    limit = _limit(ctx)
    rows = []
    for s in names:
        p = v.paths[s]
        for ts, rate in p.funding_history(ctx.int("startTime"), ctx.int("endTime"), limit, t):
            rows.append({"symbol": s, "fundingRate": f8(rate), "fundingTime": ts, "markPrice": f8(p.mark(ts))})
    rows.sort(key=lambda x: x["fundingTime"])
    return rows[:limit] if ctx.get("startTime") else rows[-limit:]


async def funding_info(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    return [marketdata.funding_info(v.paths[s], v.markets[s], t) for s in v.markets]


async def book_ticker(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    names, single = _syms(v, ctx)
    return _one_or_all([marketdata.book_ticker_rest(v.perp_quote(s, t), v.markets[s], t, True) for s in names],
                       single)


async def ticker_price(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    names, single = _syms(v, ctx)
    return _one_or_all([{"symbol": s, "price": v.markets[s].fmt_perp_price(v.paths[s].perp(t)), "time": t}
                        for s in names], single)


async def ticker_24h(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    names, single = _syms(v, ctx)
    return _one_or_all([marketdata.ticker_24h(v.paths[s], v.markets[s], "perp", t, True) for s in names], single)


async def depth(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    t = v.sync()
    m = v.market(ctx.get("symbol"))
    return marketdata.depth(v.perp_quote(m.symbol, t), m, t, True, ctx.int("limit", 500))


def _klines(sim: VenueHost, ctx: Ctx, kind: str):
    v = sim.venue
    t = v.sync()
    m = v.market(ctx.get("symbol") or ctx.get("pair"))
    return marketdata.klines(v.paths[m.symbol], m, kind, ctx.get("interval"), ctx.int("startTime"),
                             ctx.int("endTime"), ctx.int("limit"), t, futures=True)


async def klines(sim: VenueHost, ctx: Ctx):
    return _klines(sim, ctx, "perp")


async def mark_price_klines(sim: VenueHost, ctx: Ctx):
    return _klines(sim, ctx, "mark")


async def index_price_klines(sim: VenueHost, ctx: Ctx):
    return _klines(sim, ctx, "spot")


# -- account -----------------------------------------------------------------------------------------------------
async def leverage_bracket(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    names, single = _syms(v, ctx)
    return _one_or_all([bracket_entry(v.markets[s]) for s in names], single)


def _position_row(v: Venue, s: str, version: int) -> dict:
    """One symbol's positionRisk row, in the v2 or the v3 layout."""
    p = v.fut.positions[s]
    mark = v.mark(s)
    iso = v.fut.isolated(s)
    up = v.fut.upnl(s, mark)
    notional = p.qty * mark
    lev = v.fut.leverage[s]
    lp = v.fut.liquidation_price(s, v.marks()) if p.qty else 0.0
    head = {"symbol": s, "positionAmt": v.markets[s].fmt_perp_qty(p.qty), "entryPrice": f8(p.entry),
            "breakEvenPrice": f8(p.entry), "markPrice": f8(mark), "unRealizedProfit": f8(up),
            "liquidationPrice": f8(lp)}
    if version == 2:
        return {**head, "leverage": str(lev), "maxNotionalValue": f"{v.fut.max_notional(s, lev):.0f}",
                "marginType": "isolated" if iso else "cross", "isolatedMargin": f8(_isolated_margin(p, iso, up)),
                "isAutoAddMargin": "false", "positionSide": "BOTH", "notional": f8(notional),
                "isolatedWallet": f8(p.iso_wallet), "updateTime": p.update_time, "isolated": iso, "adlQuantile": 0}
    oo_im = _open_order_im(v, s)
    pos_im = abs(notional) / lev
    return {"symbol": s, "positionSide": "BOTH", **{k: head[k] for k in list(head)[1:]},
            "isolatedMargin": f8(_isolated_margin(p, iso, up)), "notional": f8(notional), "marginAsset": "USDT",
            "isolatedWallet": f8(p.iso_wallet), "initialMargin": f8(pos_im + oo_im),
            "maintMargin": f8(v.fut.maint_margin(s, mark)), "positionInitialMargin": f8(pos_im),
            "openOrderInitialMargin": f8(oo_im), "adl": 0, "bidNotional": "0", "askNotional": "0",
            "updateTime": p.update_time}


async def position_risk_v2(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    names, _ = _syms(v, ctx)
    return [_position_row(v, s, 2) for s in names]


async def position_risk_v3(sim: VenueHost, ctx: Ctx):
    """v3 lists only symbols with a position or an open order."""
    v = sim.venue
    v.sync()
    names, _ = _syms(v, ctx)
    active = {o.symbol for o in v.open_orders[FUT].values()}
    return [_position_row(v, s, 3) for s in names if v.fut.positions[s].qty or s in active]


def _totals(v: Venue) -> dict:
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


def _asset_row(v: Venue, t: int) -> dict:
    tot = _totals(v)
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


def _account_position(v: Venue, s: str, mark: float, version: int) -> dict:
    p = v.fut.positions[s]
    lev = v.fut.leverage[s]
    iso = v.fut.isolated(s)
    up = v.fut.upnl(s, mark)
    oo_im = _open_order_im(v, s)
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
    return row


def _account(v: Venue, version: int) -> dict:
    """The futures account in the v2 layout (every symbol, account flags) or v3 (open positions only)."""
    t = v.sync()
    out: dict = {}
    if version == 2:
        out.update({"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True,
                    "canWithdraw": True, "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1})
    out.update(_totals(v))
    out["assets"] = [_asset_row(v, t)]
    marks = v.marks()
    out["positions"] = [_account_position(v, s, marks[s], version) for s, p in v.fut.positions.items()
                        if version == 2 or p.qty]
    return out


async def account_v2(sim: VenueHost, ctx: Ctx):
    return _account(sim.venue, 2)


async def account_v3(sim: VenueHost, ctx: Ctx):
    return _account(sim.venue, 3)


async def balance(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    a = _asset_row(v, v.sync())
    return [{"accountAlias": "SimFutures", "asset": "USDT", "balance": a["walletBalance"],
             "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
             "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
             "marginAvailable": True, "updateTime": a["updateTime"]}]


async def income(sim: VenueHost, ctx: Ctx):
    """Income history: by symbol and type, within startTime/endTime (the last 7 days when neither), paged."""
    v = sim.venue
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
    limit = _limit(ctx)
    return rows[:limit] if ctx.get("startTime") else rows[-limit:]


async def commission_rate(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    m = v.market(ctx.get("symbol"))
    return {"symbol": m.symbol, "makerCommissionRate": f"{v.cfg.futures_maker_fee:.6f}",
            "takerCommissionRate": f"{v.cfg.futures_taker_fee:.6f}"}


async def symbol_config(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    names, _ = _syms(v, ctx)
    return [{"symbol": s, "marginType": v.fut.margin_type[s], "isAutoAddMargin": False,
             "leverage": v.fut.leverage[s], "maxNotionalValue": f"{v.fut.max_notional(s, v.fut.leverage[s]):.0f}"}
            for s in names]


async def position_mode(sim: VenueHost, ctx: Ctx):
    return {"dualSidePosition": False}


async def multi_assets_margin(sim: VenueHost, ctx: Ctx):
    return {"multiAssetsMargin": False}


async def set_leverage(sim: VenueHost, ctx: Ctx):
    return sim.venue.set_leverage(ctx.get("symbol"), ctx.get("leverage"))


async def set_margin_type(sim: VenueHost, ctx: Ctx):
    return sim.venue.set_margin_type(ctx.get("symbol"), ctx.get("marginType"))


async def position_margin(sim: VenueHost, ctx: Ctx):
    return sim.venue.position_margin(ctx.get("symbol"), ctx.get("amount"), ctx.get("type"))


# -- orders ------------------------------------------------------------------------------------------------------
async def new_order(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    o = v.futures_new_order(ctx.params)
    return futures_order_json(o, v.markets[o.symbol], with_time=False)


async def get_order(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    m = v.market(ctx.get("symbol"))
    o = v.find_order(FUT, m.symbol, ctx.get("orderId"), ctx.get("origClientOrderId"))
    if o is None:
        raise errors.order_does_not_exist()
    return futures_order_json(o, m)


async def cancel_order(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    o = v.futures_cancel(ctx.params)
    return futures_order_json(o, v.markets[o.symbol], with_time=False)


async def open_orders(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    sym = v.market(ctx.get("symbol")).symbol if ctx.get("symbol") else None
    return [futures_order_json(o, v.markets[o.symbol]) for o in v.open_orders[FUT].values()
            if sym is None or o.symbol == sym]


async def open_order(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    m = v.market(ctx.get("symbol"))
    o = v.find_order(FUT, m.symbol, ctx.get("orderId"), ctx.get("origClientOrderId"))
    if o is None or not o.is_open:
        raise errors.BinanceError(-2013, "Order does not exist.", 400)
    return futures_order_json(o, m)


async def cancel_all(sim: VenueHost, ctx: Ctx):
    sim.venue.futures_cancel_all(ctx.params)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


async def all_orders(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    m = v.market(ctx.get("symbol"))
    rows = order_history(ctx, [o for o in v.orders[FUT].values() if o.symbol == m.symbol])
    return [futures_order_json(o, m) for o in rows]


async def user_trades(sim: VenueHost, ctx: Ctx):
    v = sim.venue
    v.sync()
    m = v.market(ctx.get("symbol"))
    rows = trade_history(ctx, [t for t in v.trades[FUT] if t.symbol == m.symbol])
    return [futures_trade_json(t, m) for t in rows]


# -- listen key --------------------------------------------------------------------------------------------------
async def listen_key_new(sim: VenueHost, ctx: Ctx):
    return {"listenKey": sim.listen_keys.create(FUT)}


async def listen_key_keepalive(sim: VenueHost, ctx: Ctx):
    key = sim.listen_keys.active(FUT)
    if key is None:
        raise errors.listen_key_missing()
    sim.listen_keys.keepalive(key, FUT)
    return {"listenKey": key}


async def listen_key_close(sim: VenueHost, ctx: Ctx):
    key = sim.listen_keys.active(FUT)
    if key is not None:
        sim.listen_keys.delete(key, FUT)
        await sim.hub.close_listen_key(key)
    return {}


# -- COIN-M: nothing listed (ccxt's default load_markets asks) ---------------------------------------------------
async def coinm_exchange_info(sim: VenueHost, ctx: Ctx):
    return {"timezone": "UTC", "serverTime": sim.venue.sync(), "rateLimits": [], "exchangeFilters": [], "symbols": []}


ROUTES: RouteTable = [
    ("GET", "/fapi/v1/ping", NONE, ping),
    ("GET", "/fapi/v1/time", NONE, server_time),
    ("GET", "/fapi/v1/exchangeInfo", NONE, exchange_info),
    ("GET", "/fapi/v1/premiumIndex", NONE, premium_index),
    ("GET", "/fapi/v1/fundingRate", NONE, funding_rate),
    ("GET", "/fapi/v1/fundingInfo", NONE, funding_info),
    ("GET", "/fapi/v1/ticker/bookTicker", NONE, book_ticker),
    ("GET", "/fapi/v1/ticker/price", NONE, ticker_price),
    ("GET", "/fapi/v2/ticker/price", NONE, ticker_price),
    ("GET", "/fapi/v1/ticker/24hr", NONE, ticker_24h),
    ("GET", "/fapi/v1/depth", NONE, depth),
    ("GET", "/fapi/v1/klines", NONE, klines),
    ("GET", "/fapi/v1/markPriceKlines", NONE, mark_price_klines),
    ("GET", "/fapi/v1/indexPriceKlines", NONE, index_price_klines),
    ("GET", "/fapi/v1/leverageBracket", SIGNED, leverage_bracket),
    ("GET", "/fapi/v2/positionRisk", SIGNED, position_risk_v2),
    ("GET", "/fapi/v3/positionRisk", SIGNED, position_risk_v3),
    ("GET", "/fapi/v2/account", SIGNED, account_v2),
    ("GET", "/fapi/v3/account", SIGNED, account_v3),
    ("GET", "/fapi/v2/balance", SIGNED, balance),
    ("GET", "/fapi/v3/balance", SIGNED, balance),
    ("GET", "/fapi/v1/income", SIGNED, income),
    ("GET", "/fapi/v1/commissionRate", SIGNED, commission_rate),
    ("GET", "/fapi/v1/symbolConfig", SIGNED, symbol_config),
    ("GET", "/fapi/v1/positionSide/dual", SIGNED, position_mode),
    ("GET", "/fapi/v1/multiAssetsMargin", SIGNED, multi_assets_margin),
    ("POST", "/fapi/v1/leverage", SIGNED, set_leverage),
    ("POST", "/fapi/v1/marginType", SIGNED, set_margin_type),
    ("POST", "/fapi/v1/positionMargin", SIGNED, position_margin),
    ("POST", "/fapi/v1/order", SIGNED, new_order),
    ("GET", "/fapi/v1/order", SIGNED, get_order),
    ("DELETE", "/fapi/v1/order", SIGNED, cancel_order),
    ("GET", "/fapi/v1/openOrders", SIGNED, open_orders),
    ("GET", "/fapi/v1/openOrder", SIGNED, open_order),
    ("DELETE", "/fapi/v1/allOpenOrders", SIGNED, cancel_all),
    ("GET", "/fapi/v1/allOrders", SIGNED, all_orders),
    ("GET", "/fapi/v1/userTrades", SIGNED, user_trades),
    ("POST", "/fapi/v1/listenKey", API_KEY, listen_key_new),
    ("PUT", "/fapi/v1/listenKey", API_KEY, listen_key_keepalive),
    ("DELETE", "/fapi/v1/listenKey", API_KEY, listen_key_close),
    ("GET", "/dapi/v1/ping", NONE, ping),
    ("GET", "/dapi/v1/time", NONE, server_time),
    ("GET", "/dapi/v1/exchangeInfo", NONE, coinm_exchange_info),
]


def futures_routes(sim: VenueHost) -> Routes:
    return bind_routes(ROUTES, sim)
