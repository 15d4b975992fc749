"""OKX v5 error answers: ``{"code": "...", "msg": "...", "data": []}``, and the engine's refusals translated.

An order-level refusal (place / cancel) is OKX's ``{"code": "1", "msg": "All operations failed", "data": [{"sCode":
"51008", "sMsg": "...", "ordId": "", "clOrdId": ..., "tag": ""}]}`` with HTTP 200; a request-level one carries the code
itself (``50011`` rate limit with HTTP 429, ``50001`` service unavailable with 503, ``50113`` bad signature with 401...).
Codes and messages from OKX's v5 error-code table (www.okx.com/docs-v5/en/#error-code), the same ones ccxt maps in
its okx ``exceptions['exact']`` table.
"""

from __future__ import annotations

from basisbot.sim.engine.errors import BinanceError


class OkxError(Exception):
    def __init__(self, code: str, msg: str, status: int = 200, *, order_level: bool = False):
        super().__init__(f"{code} {msg}")
        self.code = str(code)
        self.msg = msg
        self.status = status
        self.order_level = order_level

    def body(self, cl_ord_id: str = "", ord_id: str = "") -> dict:
        if self.order_level:
            return {"code": "1", "msg": "All operations failed",
                    "data": [{"clOrdId": cl_ord_id, "ordId": ord_id, "sCode": self.code, "sMsg": self.msg,
                              "tag": "", "ts": ""}]}
        return {"code": self.code, "msg": self.msg, "data": []}


# request-level
def rate_limited() -> OkxError:
    return OkxError("50011", "Too Many Requests", 429)


def service_unavailable(status: int = 503) -> OkxError:
    return OkxError("50001", "Service temporarily unavailable. Please try again later.", status)


def missing_header(name: str) -> OkxError:
    code = {"OK-ACCESS-KEY": "50103", "OK-ACCESS-PASSPHRASE": "50104", "OK-ACCESS-TIMESTAMP": "50107",
            "OK-ACCESS-SIGN": "50106"}[name]
    return OkxError(code, f"Request header {name} can't be empty.", 401)


def invalid_key() -> OkxError:
    return OkxError("50111", "Invalid OK-ACCESS-KEY.", 401)


def bad_passphrase() -> OkxError:
    return OkxError("50105", "Request header OK-ACCESS-PASSPHRASE incorrect.", 401)


def invalid_timestamp() -> OkxError:
    return OkxError("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)


def expired_timestamp() -> OkxError:
    return OkxError("50102", "Timestamp request expired.", 401)


def bad_signature() -> OkxError:
    return OkxError("50113", "Invalid Sign.", 401)


def param_error(name: str) -> OkxError:
    return OkxError("51000", f"Parameter {name} error", 400)


def param_empty(name: str) -> OkxError:
    return OkxError("50014", f"Parameter {name} can not be empty.", 400)


def no_instrument(inst_id: str = "") -> OkxError:
    return OkxError("51001", "Instrument ID does not exist.", 400)


def not_found(path: str) -> OkxError:
    return OkxError("50000", f"Body can not be empty or the endpoint {path} does not exist.", 404)


# order-level (HTTP 200, code "1", the reason in data[0].sCode)
def order_error(code: str, msg: str) -> OkxError:
    return OkxError(code, msg, 200, order_level=True)


def insufficient() -> OkxError:
    return order_error("51008", "Order failed. Insufficient USDT balance in account.")


def duplicate_cl_ord_id() -> OkxError:
    return order_error("51016", "Duplicated clOrdId")


def order_missing() -> OkxError:
    return OkxError("51603", "Order does not exist", 200)


def cancel_missing() -> OkxError:
    return order_error("51400", "Order cancellation failed as the order has been filled, canceled or does not "
                                "exist.")


def lot_error() -> OkxError:
    return order_error("51121", "Order quantity must be a multiple of the lot size.")


def below_min() -> OkxError:
    return order_error("51020", "Your order should meet or exceed the minimum order amount.")


def tier_limit() -> OkxError:
    return order_error("51004", "Order failed. The order amount exceeds the current tier limit.")


def rejected(msg: str = "Order placement failed.") -> OkxError:
    return order_error("51000", msg)


# the engine speaks Binance's codes; each one it raises on an order, as OKX says it
_FROM_BINANCE = {
    -2010: insufficient, -2019: insufficient, -2018: insufficient, -5013: insufficient,
    -4116: duplicate_cl_ord_id, -2022: lambda: order_error("51169", "Order failed because you don't have any "
                                                            "positions in this direction for this contract to reduce "
                                                            "or close."),
    -1013: lambda: order_error("51020", "Your order should meet or exceed the minimum order amount."),
    -4164: below_min, -2027: tier_limit, -2011: cancel_missing, -2013: order_missing,
    # USDⓈ-M's own filter codes (off the tick or lot, outside min/max quantity): OKX's lot refusal, as for spot's
    # `Filter failure` codes above
    -4004: below_min, -4005: lot_error, -4014: lot_error, -4023: lot_error,
    -1121: lambda: OkxError("51001", "Instrument ID does not exist.", 400),
}


def from_binance(e: BinanceError, *, order: bool = True) -> OkxError:
    """The OKX refusal for an error the engine raised in Binance's terms."""
    msg = e.msg.lower()
    if "duplicate" in msg:
        err = duplicate_cl_ord_id()
    elif "market is closed" in msg:
        err = order_error("51001", "Instrument ID does not exist.")
    elif "would immediately match" in msg:
        err = order_error("51026", "Post-only order would be filled immediately.")
    elif "filter failure" in msg:
        err = below_min() if "notional" in msg or "min" in msg else lot_error()
    else:
        make = _FROM_BINANCE.get(e.code)
        err = make() if make is not None else order_error("51000", f"Parameter error: {e.msg}")
    if not order:
        err.order_level = False
        err.status = 400
    return err
