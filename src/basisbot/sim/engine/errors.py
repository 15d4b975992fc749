"""Binance error responses: ``{"code": -1022, "msg": "..."}`` with the HTTP status Binance uses.

Raise :class:`BinanceError` anywhere inside a request; the server turns it into the JSON body and status.
The helpers below carry Binance's exact messages, because ccxt matches some of them verbatim (e.g. "Account has
insufficient balance for requested action." -> InsufficientFunds, "Market is closed." -> MarketClosed).
"""

from __future__ import annotations


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


# -- auth / request ---------------------------------------------------------------------------------------------------

def api_key_format_invalid() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", 401)


def invalid_api_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def bad_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.", 400)


def outside_recv_window() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.", 400)


def ahead_of_server() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.", 400)


def bad_recv_window() -> BinanceError:
    return BinanceError(-1131, "recvWindow must be less than 60000", 400)


def mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.", 400)


def bad_param(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.", 400)


def illegal_chars(name: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.", 400)


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.", 400)


def too_many_requests() -> BinanceError:
    return BinanceError(
        -1003,
        "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. Please use WebSocket Streams "
        "for live updates to avoid polling the API.",
        429,
        {"Retry-After": "1"},
    )


def listen_key_missing() -> BinanceError:
    return BinanceError(-1125, "This listenKey does not exist.", 400)


# -- orders -------------------------------------------------------------------------------------------------------------

def unknown_order_cancel() -> BinanceError:
    return BinanceError(-2011, "Unknown order sent.", 400)


def order_does_not_exist() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.", 400)


def spot_duplicate() -> BinanceError:
    return BinanceError(-2010, "Duplicate order sent.", 400)


def futures_duplicate() -> BinanceError:
    return BinanceError(-4116, "ClientOrderId is duplicated.", 400)


def spot_insufficient() -> BinanceError:
    return BinanceError(-2010, "Account has insufficient balance for requested action.", 400)


def margin_insufficient() -> BinanceError:
    return BinanceError(-2019, "Margin is insufficient.", 400)


def market_closed() -> BinanceError:
    return BinanceError(-1013, "Market is closed.", 400)


def filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {name}", 400)


def invalid_order_type() -> BinanceError:
    return BinanceError(-1116, "Invalid orderType.", 400)


def invalid_side() -> BinanceError:
    return BinanceError(-1117, "Invalid side.", 400)


def invalid_tif() -> BinanceError:
    return BinanceError(-1115, "Invalid timeInForce.", 400)


def tif_not_required() -> BinanceError:
    return BinanceError(-1106, "Parameter 'timeInForce' sent when not required.", 400)


def would_take() -> BinanceError:
    return BinanceError(-2010, "Order would immediately match and take.", 400)


def reduce_only_rejected() -> BinanceError:
    return BinanceError(-2022, "ReduceOnly Order is rejected.", 400)


def max_position_at_leverage() -> BinanceError:
    return BinanceError(-2027, "Exceeded the maximum allowable position at current leverage.", 400)


def min_notional_futures(minimum: str) -> BinanceError:
    return BinanceError(-4164, f"Order's notional must be no smaller than {minimum} (unless you choose reduce only).", 400)


def qty_not_positive() -> BinanceError:
    return BinanceError(-4003, "Quantity less than or equal to zero.", 400)


def price_above_cap() -> BinanceError:
    return BinanceError(-4016, "Price is higher than mark price multiplier cap.", 400)


def price_below_floor() -> BinanceError:
    return BinanceError(-4024, "Price is lower than mark price multiplier floor.", 400)


def price_off_tick() -> BinanceError:
    return BinanceError(-4014, "Price not increased by tick size.", 400)


def qty_below_min() -> BinanceError:
    return BinanceError(-4004, "Quantity less than min quantity.", 400)


def qty_above_max() -> BinanceError:
    return BinanceError(-4005, "Quantity greater than max quantity.", 400)


def qty_off_step() -> BinanceError:
    return BinanceError(-4023, "Qty not increased by step size.", 400)


def precision_over() -> BinanceError:
    return BinanceError(-1111, "Precision is over the maximum defined for this asset.", 400)


# -- futures account ----------------------------------------------------------------------------------------------------

def invalid_leverage() -> BinanceError:
    return BinanceError(-4028, "Leverage is not valid", 400)


def no_need_margin_type() -> BinanceError:
    return BinanceError(-4046, "No need to change margin type.", 400)


def margin_type_with_position() -> BinanceError:
    return BinanceError(-4048, "Margin type cannot be changed if there exists position.", 400)


def margin_type_with_orders() -> BinanceError:
    return BinanceError(-4047, "Margin type cannot be changed if there exists open orders.", 400)


def add_margin_not_isolated() -> BinanceError:
    return BinanceError(-4049, "Add margin only support for isolated position.", 400)


def cross_balance_insufficient() -> BinanceError:
    return BinanceError(-4050, "Cross balance insufficient.", 400)


def isolated_balance_insufficient() -> BinanceError:
    return BinanceError(-4051, "Isolated balance insufficient.", 400)


def position_is_zero() -> BinanceError:
    return BinanceError(-4054, "Cannot add position margin: position is 0.", 400)


def amount_not_positive() -> BinanceError:
    return BinanceError(-4055, "Amount must be positive.", 400)


def transfer_insufficient() -> BinanceError:
    return BinanceError(-5013, "Asset transfer failed: insufficient balance", 400)
