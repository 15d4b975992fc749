"""Orders and trades of both venues, and their Binance JSON shapes (REST responses and user-stream events)."""

from __future__ import annotations

from dataclasses import dataclass, field

from basisbot.sim.engine.markets import Market, f8

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


@dataclass
class Trade:
    venue: str              # "spot" | "futures"
    trade_id: int
    order_id: int
    symbol: str
    side: str               # BUY | SELL
    price: float
    qty: float
    quote_qty: float
    commission: float
    commission_asset: str
    time: int
    maker: bool
    realized_pnl: float = 0.0


@dataclass
class Order:
    venue: str
    order_id: int
    client_order_id: str
    symbol: str
    side: str                # BUY | SELL
    type: str                # LIMIT | MARKET | LIMIT_MAKER | LIQUIDATION
    tif: str                 # GTC | IOC | FOK | GTX
    orig_qty: float
    price: float             # 0 for market orders
    time: int
    update_time: int
    status: str = "NEW"
    executed_qty: float = 0.0
    cum_quote: float = 0.0
    quote_order_qty: float = 0.0
    reduce_only: bool = False
    reserved: float = 0.0    # spot: locked funds (quote for buys, base for sells); futures: initial margin reserved
    partial_fraction: float | None = None   # fault injection: fill only this fraction, once
    hold_remaining: bool = False             # fault injection: the unfilled rest is not matched any more
    trades: list[Trade] = field(default_factory=list)
    orig_type: str = ""
    working_time: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> float:
        return max(0.0, self.orig_qty - self.executed_qty)

    @property
    def avg_price(self) -> float:
        return self.cum_quote / self.executed_qty if self.executed_qty > 0 else 0.0

    @property
    def sign(self) -> int:
        return 1 if self.side == "BUY" else -1


# -- spot JSON ----------------------------------------------------------------------------------------------------------

def spot_order_json(o: Order) -> dict:
    """GET /api/v3/order, openOrders."""
    return {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "price": f8(o.price),
        "origQty": f8(o.orig_qty),
        "executedQty": f8(o.executed_qty),
        "cummulativeQuoteQty": f8(o.cum_quote),
        "status": o.status,
        "timeInForce": o.tif,
        "type": o.type,
        "side": o.side,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": o.time,
        "updateTime": o.update_time,
        "isWorking": True,
        "workingTime": o.working_time or o.time,
        "origQuoteOrderQty": f8(o.quote_order_qty),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def spot_order_result(o: Order, resp_type: str = "FULL", fills: list[Trade] | None = None) -> dict:
    """POST /api/v3/order response (ACK / RESULT / FULL)."""
    ack = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_order_id,
           "transactTime": o.update_time}
    if resp_type == "ACK":
        return ack
    out = dict(ack)
    out.update(_spot_order_state(o))
    out["workingTime"] = o.working_time or o.time
    out["selfTradePreventionMode"] = "EXPIRE_MAKER"
    if resp_type == "FULL":
        out["fills"] = [{"price": f8(t.price), "qty": f8(t.qty), "commission": f8(t.commission),
                         "commissionAsset": t.commission_asset, "tradeId": t.trade_id}
                        for t in (fills if fills is not None else o.trades)]
    return out


def _spot_order_state(o: Order) -> dict:
    """The order-state fields that spot's order and cancel responses share, in Binance's order."""
    return {
        "price": f8(o.price),
        "origQty": f8(o.orig_qty),
        "executedQty": f8(o.executed_qty),
        "origQuoteOrderQty": f8(o.quote_order_qty),
        "cummulativeQuoteQty": f8(o.cum_quote),
        "status": o.status,
        "timeInForce": o.tif,
        "type": o.type,
        "side": o.side,
    }


def spot_cancel_json(o: Order, cancel_client_id: str) -> dict:
    return {
        "symbol": o.symbol,
        "origClientOrderId": o.client_order_id,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": cancel_client_id,
        "transactTime": o.update_time,
        **_spot_order_state(o),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def spot_trade_json(t: Trade) -> dict:
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": f8(t.price),
        "qty": f8(t.qty),
        "quoteQty": f8(t.quote_qty),
        "commission": f8(t.commission),
        "commissionAsset": t.commission_asset,
        "time": t.time,
        "isBuyer": t.side == "BUY",
        "isMaker": t.maker,
        "isBestMatch": True,
    }


def execution_report(o: Order, exec_type: str, event_time: int, trade: Trade | None = None,
                     cancel_client_id: str | None = None, reject_reason: str = "NONE") -> dict:
    """Spot user-stream event. On a cancel, ``c`` is the cancel request's id and ``C`` the order's own id."""
    return {
        "e": "executionReport",
        "E": event_time,
        "s": o.symbol,
        "c": cancel_client_id if cancel_client_id else o.client_order_id,
        "S": o.side,
        "o": o.type,
        "f": o.tif,
        "q": f8(o.orig_qty),
        "p": f8(o.price),
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": o.client_order_id if cancel_client_id else "",
        "x": exec_type,
        "X": o.status,
        "r": reject_reason,
        "i": o.order_id,
        "l": f8(trade.qty if trade else 0.0),
        "z": f8(o.executed_qty),
        "L": f8(trade.price if trade else 0.0),
        "n": f8(trade.commission if trade else 0.0),
        "N": trade.commission_asset if trade else None,
        "T": trade.time if trade else event_time,
        "t": trade.trade_id if trade else -1,
        "v": 0,
        "I": 0,
        "w": o.is_open,
        "m": bool(trade.maker) if trade else False,
        "M": False,
        "O": o.time,
        "Z": f8(o.cum_quote),
        "Y": f8(trade.quote_qty if trade else 0.0),
        "Q": f8(o.quote_order_qty),
        "W": o.working_time or o.time,
        "V": "EXPIRE_MAKER",
    }


# -- futures JSON -------------------------------------------------------------------------------------------------------

def futures_order_json(o: Order, m: Market, with_time: bool = True) -> dict:
    out = {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_order_id,
        "price": m.fmt_perp_price(o.price) if o.price else "0",
        "avgPrice": m.fmt_perp_price(o.avg_price) if o.executed_qty else "0",
        "origQty": m.fmt_perp_qty(o.orig_qty),
        "executedQty": m.fmt_perp_qty(o.executed_qty),
        "cumQty": m.fmt_perp_qty(o.executed_qty),
        "cumQuote": f8(o.cum_quote),
        "timeInForce": o.tif,
        "type": o.type,
        "reduceOnly": o.reduce_only,
        "closePosition": False,
        "side": o.side,
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": o.orig_type or o.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": o.update_time,
    }
    if with_time:
        out["time"] = o.time
    return out


def futures_trade_json(t: Trade, m: Market) -> dict:
    return {
        "buyer": t.side == "BUY",
        "commission": f8(t.commission),
        "commissionAsset": t.commission_asset,
        "id": t.trade_id,
        "maker": t.maker,
        "orderId": t.order_id,
        "price": m.fmt_perp_price(t.price),
        "qty": m.fmt_perp_qty(t.qty),
        "quoteQty": f8(t.quote_qty),
        "realizedPnl": f8(t.realized_pnl),
        "side": t.side,
        "positionSide": "BOTH",
        "symbol": t.symbol,
        "time": t.time,
    }


def order_trade_update(o: Order, m: Market, exec_type: str, event_time: int, trade: Trade | None = None,
                       status: str | None = None) -> dict:
    """USDⓈ-M user-stream order event. ``status`` overrides ``X`` where Binance's stream shows another status than
    the order's final one (an auto-deleveraging fill is pushed as ``NEW_ADL``, an insurance-fund close as
    ``NEW_INSURANCE``, both with execution type ``CALCULATED``; REST shows such an order FILLED)."""
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": event_time,
        "T": trade.time if trade else event_time,
        "o": {
            "s": o.symbol,
            "c": o.client_order_id,
            "S": o.side,
            "o": o.type,
            "f": o.tif,
            "q": m.fmt_perp_qty(o.orig_qty),
            "p": m.fmt_perp_price(o.price) if o.price else "0",
            "ap": m.fmt_perp_price(o.avg_price) if o.executed_qty else "0",
            "sp": "0",
            "x": exec_type,
            "X": status or o.status,
            "i": o.order_id,
            "l": m.fmt_perp_qty(trade.qty if trade else 0.0),
            "z": m.fmt_perp_qty(o.executed_qty),
            "L": m.fmt_perp_price(trade.price) if trade else "0",
            "N": trade.commission_asset if trade else "USDT",
            "n": f8(trade.commission if trade else 0.0),
            "T": trade.time if trade else event_time,
            "t": trade.trade_id if trade else 0,
            "b": "0",
            "a": "0",
            "m": bool(trade.maker) if trade else False,
            "R": o.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": o.orig_type or o.type,
            "ps": "BOTH",
            "cp": False,
            "rp": f8(trade.realized_pnl if trade else 0.0),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        },
    }
