"""OKX v5 JSON shapes of the engine's state: orders, fills, positions, balances, bills, tickers, funding. Quantities
of swaps in contracts (base units / ctVal, exact), everything else in OKX's units; numbers as strings like OKX."""

from __future__ import annotations

from decimal import Decimal

from basisbot.sim.engine.order_matching import FUT
from basisbot.sim.engine.orders import Order, Trade
from basisbot.sim.okx.instruments import OkxInstrument, dstr

STATE = {"NEW": "live", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled", "CANCELED": "canceled",
         "EXPIRED": "canceled", "REJECTED": "canceled"}


def num(x: float, places: int = 10) -> str:
    """A float as OKX prints it: plain decimal, no exponent, no trailing zeros."""
    if x == 0:
        return "0"
    return dstr(Decimal(repr(round(float(x), places))))


def contracts(inst: OkxInstrument, base_qty: float) -> str:
    """Base units -> OKX contract count (exact on the lot grid; the engine's floats are rounded to the lot first)."""
    step = inst.swap.step_base
    q = (Decimal(repr(abs(base_qty))) / step).quantize(Decimal(1)) * step
    sign = -1 if base_qty < 0 else 1
    return dstr(sign * q / inst.swap.ct_val)


def size(inst: OkxInstrument, venue: str, base_qty: float) -> str:
    return contracts(inst, base_qty) if venue == FUT else num(base_qty, 12)


def order_type(o: Order) -> str:
    if o.type in ("MARKET", "LIQUIDATION"):
        return "market"
    if o.type == "LIMIT_MAKER" or o.tif == "GTX":
        return "post_only"
    return {"IOC": "ioc", "FOK": "fok"}.get(o.tif, "limit")


def order_json(o: Order, inst: OkxInstrument, extra: dict) -> dict:
    """GET /api/v5/trade/order row (also the orders channel's row, with the fill fields)."""
    fut = o.venue == FUT
    last = o.trades[-1] if o.trades else None
    fee = -sum(t.commission for t in o.trades)
    fee_ccy = "USDT" if fut else (inst.swap.base if o.side == "BUY" else inst.swap.quote)
    pnl = sum(t.realized_pnl for t in o.trades) if fut else 0.0
    return {
        "accFillSz": size(inst, o.venue, o.executed_qty), "algoClOrdId": "", "algoId": "",
        "attachAlgoClOrdId": "", "attachAlgoOrds": [], "avgPx": num(o.avg_price) if o.executed_qty else "",
        "cTime": str(o.time), "cancelSource": "", "cancelSourceReason": "", "category": _category(o),
        "ccy": "", "clOrdId": o.client_order_id if not o.client_order_id.startswith("autoclose-") else "",
        "fee": num(fee), "feeCcy": fee_ccy, "fillPx": num(last.price) if last else "",
        "fillSz": size(inst, o.venue, last.qty) if last else "0", "fillTime": str(last.time) if last else "",
        "instId": inst.swap_id if fut else inst.spot_id, "instType": "SWAP" if fut else "SPOT", "isTpLimit": "false",
        "lever": str(extra.get("lever", "")) if fut else "", "linkedAlgoOrd": {"algoId": ""},
        "ordId": str(o.order_id), "ordType": order_type(o), "pnl": num(pnl), "posSide": "net" if fut else "",
        "px": num(o.price) if o.price else "", "pxType": "", "pxUsd": "", "pxVol": "", "quickMgnType": "",
        "rebate": "0", "rebateCcy": inst.swap.quote, "reduceOnly": "true" if o.reduce_only else "false",
        "side": o.side.lower(), "slOrdPx": "", "slTriggerPx": "", "slTriggerPxType": "", "source": "",
        "state": STATE.get(o.status, "live"), "stpId": "", "stpMode": "cancel_maker",
        "sz": extra.get("sz") or size(inst, o.venue, o.orig_qty), "tag": extra.get("tag", ""),
        "tdMode": extra.get("tdMode", "cross" if fut else "cash"), "tgtCcy": extra.get("tgtCcy", "") if not fut else "",
        "tpOrdPx": "", "tpTriggerPx": "", "tpTriggerPxType": "", "tradeId": str(last.trade_id) if last else "",
        "uTime": str(o.update_time),
    }


def ws_order_json(o: Order, inst: OkxInstrument, extra: dict, trade: Trade | None, mark: float) -> dict:
    row = order_json(o, inst, extra)
    fut = o.venue == FUT
    row.update({
        "amendResult": "", "code": "0", "msg": "", "reqId": "", "amendSource": "",
        "execType": ("M" if trade.maker else "T") if trade else "",
        "fillFee": num(-trade.commission) if trade else "0",
        "fillFeeCcy": (row["feeCcy"] if trade else ""),
        "fillNotionalUsd": num(trade.quote_qty) if trade else "",
        "fillPnl": num(trade.realized_pnl) if trade and fut else "0",
        "fillPx": num(trade.price) if trade else "", "fillSz": size(inst, o.venue, trade.qty) if trade else "0",
        "fillTime": str(trade.time) if trade else "", "tradeId": str(trade.trade_id) if trade else "",
        "fillMarkPx": num(mark) if trade and fut else "", "fillIdxPx": "", "fillMarkVol": "", "fillFwdPx": "",
        "fillPxVol": "", "fillPxUsd": "", "notionalUsd": num(o.orig_qty * (o.price or mark)),
    })
    return row


def fill_json(t: Trade, o: Order, inst: OkxInstrument, bill_id: str, mark: float) -> dict:
    """GET /api/v5/trade/fills row."""
    fut = t.venue == FUT
    fee_ccy = "USDT" if fut else t.commission_asset
    return {
        "billId": bill_id, "clOrdId": o.client_order_id if not o.client_order_id.startswith("autoclose-") else "",
        "execType": "M" if t.maker else "T", "fee": num(-t.commission), "feeCcy": fee_ccy,
        "fillFwdPx": "", "fillIdxPx": "", "fillMarkPx": num(mark) if fut else "", "fillMarkVol": "",
        "fillPnl": num(t.realized_pnl) if fut else "0", "fillPx": num(t.price), "fillPxUsd": "", "fillPxVol": "",
        "fillSz": size(inst, t.venue, t.qty), "fillTime": str(t.time), "instId": inst.swap_id if fut else inst.spot_id,
        "instType": "SWAP" if fut else "SPOT", "ordId": str(o.order_id), "posSide": "net" if fut else "",
        "side": t.side.lower(), "subType": "", "tag": "", "tradeId": str(t.trade_id), "ts": str(t.time),
    }


def _category(o: Order) -> str:
    """OKX's order category: the venue's own closes are "adl" (auto-deleveraging) or "full_liquidation"."""
    if o.client_order_id.startswith("adl_autoclose"):
        return "adl"
    return "full_liquidation" if o.type == "LIQUIDATION" else "normal"


def adl_rank(upl: float, margin: float, forced: int | None = None) -> str:
    """OKX's `adl` of an open position (0 lowest .. 5 highest priority of auto-deleveraging): the venue's model ranks
    a profitable position by its profit over its margin, in 20 % steps; a losing or flat one is "1", as in OKX's
    documented positions example (a position at a loss, "adl": "1"). The `adl_quantile` fault's value wins."""
    if forced is not None:
        return str(forced)
    if upl <= 0 or margin <= 0:
        return "1"
    return str(min(5, 1 + int(upl / margin / 0.2)))


def position_json(v, inst: OkxInstrument, lever: int, c_time: int, pos_id: str) -> dict:
    """GET /api/v5/account/positions row of a net-mode swap position (the positions channel row too)."""
    s = inst.symbol
    p = v.fut.positions[s]
    marks = v.marks()
    mark = marks[s]
    iso = v.fut.isolated(s)
    upl = v.fut.upnl(s, mark) if p.qty else 0.0
    notional = abs(p.qty) * mark
    imr = notional / lever if p.qty else 0.0
    mmr = v.fut.maint_margin(s, mark)
    margin = p.iso_wallet if iso else imr
    liq = v.fut.liquidation_price(s, marks) if p.qty else 0.0
    ratio = (margin + upl) / mmr if iso and mmr else ((v.fut.cross_wallet + v.fut.cross_upnl(marks)) / mmr if mmr
                                                      else 0.0)
    return {
        "adl": adl_rank(upl, margin, v.faults.adl_quantile.get(s)) if p.qty else "", "availPos": contracts(inst, abs(p.qty)) if p.qty else "",
        "avgPx": num(p.entry) if p.qty else "", "baseBal": "", "baseBorrowed": "", "baseInterest": "",
        "bePx": num(p.entry) if p.qty else "", "bizRefId": "", "bizRefType": "", "cTime": str(c_time),
        "ccy": "USDT", "clSpotInUseAmt": "", "closeOrderAlgo": [], "deltaBS": "", "deltaPA": "", "fee": "0",
        "fundingFee": "0", "gammaBS": "", "gammaPA": "", "idxPx": num(v.paths[s].index(v.t)),
        "imr": "" if iso else num(imr), "instId": inst.swap_id, "instType": "SWAP", "interest": "",
        "last": num(v.paths[s].perp(v.t)), "lever": str(lever), "liab": "", "liabCcy": "", "liqPenalty": "0",
        "liqPx": num(liq) if p.qty and liq > 0 else "", "margin": num(margin) if iso else "",
        "markPx": num(mark), "maxSpotInUseAmt": "", "mgnMode": "isolated" if iso else "cross",
        "mgnRatio": num(ratio) if p.qty else "", "mmr": num(mmr), "notionalUsd": num(notional), "optVal": "",
        "pTime": str(v.t), "pendingCloseOrdLiabVal": "", "pnl": "0", "pos": contracts(inst, p.qty), "posCcy": "", "posId": pos_id,
        "posSide": "net", "quoteBal": "", "quoteBorrowed": "", "quoteInterest": "", "realizedPnl": "0",
        "spotInUseAmt": "", "spotInUseCcy": "", "thetaBS": "", "thetaPA": "", "tradeId": "", "uTime": str(p.update_time),
        "upl": num(upl), "uplLastPx": num(upl), "uplRatio": num(upl / margin) if margin else "0",
        "uplRatioLastPx": num(upl / margin) if margin else "0", "usdPx": "", "vegaBS": "", "vegaPA": "",
        "nonSettleAvgPx": "", "settledPnl": "",
    }


def balance_detail(ccy: str, cash: float, avail: float, frozen: float, ord_frozen: float, upl: float, iso_eq: float,
                   usd_px: float, t: int) -> dict:
    eq = cash + upl
    return {
        "accAvgPx": "", "availBal": num(avail), "availEq": num(avail), "borrowFroz": "", "cashBal": num(cash),
        "ccy": ccy, "clSpotInUseAmt": "", "colBorrAutoConversion": "0", "collateralEnabled": False,
        "collateralRestrict": False, "crossLiab": "", "disEq": num(eq * usd_px), "eq": num(eq),
        "eqUsd": num(eq * usd_px), "fixedBal": "0", "frozenBal": num(frozen), "imr": "", "interest": "",
        "isoEq": num(iso_eq), "isoLiab": "", "isoUpl": "0", "liab": "", "maxLoan": "", "maxSpotInUse": "",
        "mgnRatio": "", "mmr": "", "notionalLever": "", "openAvgPx": "", "ordFrozen": num(ord_frozen),
        "rewardBal": "", "smtSyncEq": "0", "spotBal": "", "spotCopyTradingEq": "0", "spotInUseAmt": "",
        "spotIsoBal": "0", "spotUpl": "", "spotUplRatio": "", "stgyEq": "0", "totalPnl": "", "totalPnlRatio": "",
        "twap": "0", "uTime": str(t), "upl": num(upl), "uplLiab": "",
    }


def balance_json(v, currencies: list[str], prices: dict[str, float]) -> dict:
    """GET /api/v5/account/balance data[0]: one unified account (spot holdings and the swap wallet together)."""
    t = v.t
    marks = v.marks()
    fut = v.fut
    details = []
    total = 0.0
    for ccy in currencies:
        free, locked = v.spot.free(ccy), v.spot.locked(ccy)
        if ccy == "USDT":
            iso = sum(p.iso_wallet for p in fut.positions.values())
            upl = sum(fut.upnl(s, marks[s]) for s, p in fut.positions.items() if p.qty)
            cross_im = fut.cross_im(marks)
            ord_im = v.open_order_im()
            cash = free + locked + fut.wallet_balance()
            avail = free + max(0.0, v.available() - fut.cross_upnl(marks))
            frozen = locked + iso + cross_im + ord_im
            iso_eq = iso + sum(fut.upnl(s, marks[s]) for s, p in fut.positions.items() if p.qty and fut.isolated(s))
            d = balance_detail(ccy, cash, avail, frozen, locked + ord_im, upl, iso_eq, 1.0, t)
        else:
            if free == 0 and locked == 0:
                continue
            d = balance_detail(ccy, free + locked, free, locked, locked, 0.0, 0.0, prices.get(ccy, 0.0), t)
        total += float(d["eqUsd"])
        details.append(d)
    return {"adjEq": "", "borrowFroz": "", "details": details, "imr": "", "isoEq": "", "mgnRatio": "", "mmr": "",
            "notionalUsd": "", "notionalUsdForBorrow": "", "notionalUsdForFutures": "", "notionalUsdForOption": "",
            "notionalUsdForSwap": "", "ordFroz": "", "totalEq": num(total), "uTime": str(t), "upl": ""}


def bill_json(bill_id: str, inst_id: str, inst_type: str, mgn_mode: str, kind: str, sub: str, bal_chg: float,
              bal: float, sz: str, px: str, pnl: float, fee: float, t: int, ord_id: str = "",
              ccy: str = "USDT", pos_bal: float = 0.0, pos_bal_chg: float = 0.0) -> dict:
    """GET /api/v5/account/bills row."""
    return {"bal": num(bal), "balChg": num(bal_chg), "billId": bill_id, "ccy": ccy, "clOrdId": "", "earnAmt": "",
            "earnApr": "", "execType": "", "fee": num(fee), "fillFwdPx": "", "fillIdxPx": "", "fillMarkPx": "",
            "fillMarkVol": "", "fillPxUsd": "", "fillPxVol": "", "fillTime": str(t), "from": "", "instId": inst_id,
            "instType": inst_type, "interest": "0", "mgnMode": mgn_mode, "notes": "", "ordId": ord_id,
            "pnl": num(pnl), "posBal": num(pos_bal), "posBalChg": num(pos_bal_chg), "px": px, "subType": sub, "sz": sz, "tag": "",
            "to": "", "tradeId": "", "ts": str(t), "type": kind}


def exact(x: float) -> str:
    """A float as a plain decimal with every digit it holds (a settled rate of the data, served as recorded)."""
    return "0" if x == 0 else dstr(Decimal(repr(float(x))))
