"""The local venue's orders: spot and USDⓈ-M order entry with Binance's checks and errors, matching (market orders at
the touch, resting limit orders filled when the replayed price crosses them), cancels and lookups."""

from __future__ import annotations

import secrets

from basisbot.sim.engine import errors
from basisbot.sim.engine.book import check_price, check_qty, floor_to_step, parse_decimal
from basisbot.sim.engine.errors import BinanceError
from basisbot.sim.engine.orders import (
    Order,
    Trade,
    execution_report,
    order_trade_update,
)

SPOT, FUT = "spot", "futures"


_CLIENT_ID_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:/_-")


def _client_id(value: str | None) -> str:
    if value is None or value == "":
        return "sim" + secrets.token_hex(10)
    if len(value) > 36 or not set(value) <= _CLIENT_ID_OK:
        raise BinanceError(-1100,
                           "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                           "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.", 400)
    return value


def _bool(value: str | None) -> bool:
    return str(value).lower() == "true"


def _side_and_type(p: dict, order_types: tuple[str, ...]) -> tuple[str, str]:
    side = (p.get("side") or "").upper()
    if side not in ("BUY", "SELL"):
        raise errors.invalid_side() if side else errors.mandatory("side")
    otype = (p.get("type") or "").upper()
    if otype not in order_types:
        raise errors.invalid_order_type() if otype else errors.mandatory("type")
    return side, otype


def _spot_tif(p: dict, otype: str) -> str:
    """A spot LIMIT order's timeInForce (required); the other types are GTC."""
    if otype != "LIMIT":
        return "GTC"
    tif = (p.get("timeInForce") or "").upper()
    if not tif:
        raise errors.mandatory("timeInForce")
    if tif not in ("GTC", "IOC", "FOK"):
        raise errors.invalid_tif()
    return tif


def _spot_limit_terms(m, p: dict, otype: str, side: str, q) -> tuple[float, float]:
    """(qty, price) of a spot LIMIT / LIMIT_MAKER order, through the symbol's filters."""
    dprice = parse_decimal(p.get("price"), "price")
    check_price(m.spot, dprice, futures=False)
    price = float(dprice)
    dqty = parse_decimal(p.get("quantity"), "quantity")
    check_qty(m.spot, dqty, futures=False)
    qty = float(dqty)
    if qty * price < float(m.spot.min_notional):
        raise errors.filter_failure("NOTIONAL")
    if otype == "LIMIT_MAKER" and q.marketable(side, price):
        raise errors.would_take()
    return qty, price


def _spot_market_size(m, p: dict, touch: float) -> tuple[float, float]:
    """(qty, quoteOrderQty) of a spot MARKET order: exactly one of `quantity` and `quoteOrderQty`, the latter
    converted at the touch and floored to the step size."""
    has_q = p.get("quantity") not in (None, "")
    has_qq = p.get("quoteOrderQty") not in (None, "")
    if has_q == has_qq:
        msg = ("Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!" if not has_q
               else "Parameter 'quoteOrderQty' sent when not required.")
        raise errors.BinanceError(-1102 if not has_q else -1106, msg, 400)
    quote_qty = 0.0
    if has_q:
        dqty = parse_decimal(p.get("quantity"), "quantity")
        check_qty(m.spot, dqty, futures=False)
        qty = float(dqty)
    else:
        quote_qty = float(parse_decimal(p.get("quoteOrderQty"), "quoteOrderQty"))
        if quote_qty <= 0:
            raise errors.BinanceError(-1013, "Invalid quoteOrderQty.", 400)
        qty = float(floor_to_step(quote_qty / touch, m.spot.step_size))
        if qty < float(m.spot.min_qty):
            raise errors.filter_failure("LOT_SIZE")
    if qty * touch < float(m.spot.min_notional):
        raise errors.filter_failure("NOTIONAL")
    return qty, quote_qty


def _futures_limit_terms(m, p: dict, otype: str, side: str, mark: float) -> tuple[str, float]:
    """(timeInForce, price) of a futures LIMIT order: the filters and the percent-price band around the mark."""
    tif = (p.get("timeInForce") or "").upper()
    if not tif:
        raise errors.mandatory("timeInForce")
    if tif not in ("GTC", "IOC", "FOK", "GTX"):
        raise errors.invalid_tif()
    dprice = parse_decimal(p.get("price"), "price")
    check_price(m.perp, dprice, futures=True, precision=m.perp_price_precision)
    price = float(dprice)
    up, down = m.percent_price()
    if side == "BUY" and price > mark * up:
        raise errors.price_above_cap()
    if side == "SELL" and price < mark * down:
        raise errors.price_below_floor()
    return tif, price


class OrderMatching:
    """Orders of both markets: validation, matching against the replayed touch and resting fills, cancels,
    lookups, and the user-stream events they produce."""

    # ------------------------------------------------------------------------------------------------------------
    # shared order plumbing
    # ------------------------------------------------------------------------------------------------------------
    def _check_duplicate(self, venue: str, cid: str) -> None:
        known = self.client_ids[venue].get(cid)
        if known is None:
            return
        if self.cfg.duplicate_client_id == "open" and not self.orders[venue][known].is_open:
            return
        raise errors.spot_duplicate() if venue == SPOT else errors.futures_duplicate()

    def _register(self, o: Order) -> None:
        self.orders[o.venue][o.order_id] = o
        self.client_ids[o.venue][o.client_order_id] = o.order_id
        if o.is_open:
            self.open_orders[o.venue][o.order_id] = o

    def _close(self, o: Order, status: str, t: int) -> None:
        o.status = status
        o.update_time = t
        self.open_orders[o.venue].pop(o.order_id, None)
        if o.venue == SPOT and o.reserved > 0:
            m = self.markets[o.symbol]
            self.spot.unlock(m.quote if o.side == "BUY" else m.base, o.reserved)
        o.reserved = 0.0

    def find_order(self, venue: str, symbol: str, order_id: str | None, client_id: str | None) -> Order:
        o = None
        if order_id not in (None, ""):
            try:
                o = self.orders[venue].get(int(order_id))
            except ValueError:
                raise errors.illegal_chars("orderId") from None
        elif client_id not in (None, ""):
            oid = self.client_ids[venue].get(client_id)
            o = self.orders[venue].get(oid) if oid is not None else None
        else:
            raise errors.BinanceError(
                -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!", 400)
        if o is None or o.symbol != symbol:
            return None  # type: ignore[return-value]
        return o

    def _match(self, o: Order, price: float, maker: bool, t: int) -> None:
        """Execute ``o`` at ``price`` for its remaining quantity (or the fault's fraction)."""
        m = self.markets[o.symbol]
        step = m.spot.step_size if o.venue == SPOT else m.perp.step_size
        qty = o.remaining
        partial = False
        if o.partial_fraction is not None:
            qty = float(floor_to_step(o.orig_qty * o.partial_fraction, step))
            o.partial_fraction = None
            partial = True
            if o.tif == "FOK":
                qty = 0.0  # fill-or-kill: all or nothing
        if o.venue == FUT and o.reduce_only:
            pos = self.fut.positions[o.symbol].qty
            cap = abs(pos) if pos and (pos > 0) != (o.side == "BUY") else 0.0
            qty = min(qty, cap)
        if qty > 1e-12:
            if o.venue == SPOT:
                self._fill_spot(o, qty, price, maker, t)
                self.emit(SPOT, self.spot.position_event([m.base, m.quote], t))
            else:
                self._fill_futures(o, qty, price, maker, t)
        if o.remaining <= 1e-12:
            o.status = "FILLED"
            self._close(o, "FILLED", t)
            return
        if o.type == "MARKET" or o.tif in ("IOC", "FOK") or (o.venue == FUT and o.reduce_only and qty <= 1e-12):
            self._close(o, "EXPIRED", t)
            self._emit_order(o, "EXPIRED", t)
            return
        if partial:
            o.hold_remaining = True

    def _emit_order(self, o: Order, exec_type: str, t: int, trade: Trade | None = None,
                    cancel_client_id: str | None = None) -> None:
        if o.venue == SPOT:
            self.emit(SPOT, execution_report(o, exec_type, t, trade, cancel_client_id))
        else:
            self.emit(FUT, order_trade_update(o, self.markets[o.symbol], exec_type, t, trade))

    def _cancel_all(self, venue: str, symbol: str, t: int, reason: str = "CANCELED") -> list[Order]:
        out = []
        for o in [o for o in self.open_orders[venue].values() if o.symbol == symbol]:
            self._close(o, reason, t)
            self._emit_order(o, reason, t)
            out.append(o)
        if out and venue == SPOT:
            m = self.markets[symbol]
            self.emit(SPOT, self.spot.position_event([m.base, m.quote], t))
        return out

    # ------------------------------------------------------------------------------------------------------------
    # spot
    # ------------------------------------------------------------------------------------------------------------
    def spot_new_order(self, p: dict) -> tuple[Order, list[Trade]]:
        t = self.sync()
        m = self.market(p.get("symbol"))
        side, otype = _side_and_type(p, ("LIMIT", "MARKET", "LIMIT_MAKER"))
        cid = _client_id(p.get("newClientOrderId"))
        self._check_duplicate(SPOT, cid)
        rejected = self.faults.take_reject(SPOT, m.symbol, side)
        if rejected is not None:
            raise rejected
        if not self.paths[m.symbol].spot_is_open(t):
            raise errors.market_closed()
        q = self.spot_quote(m.symbol, t)
        tif = _spot_tif(p, otype)
        price = quote_qty = 0.0
        if otype == "MARKET":
            qty, quote_qty = _spot_market_size(m, p, q.touch(side))
        else:
            qty, price = _spot_limit_terms(m, p, otype, side, q)
        immediate = otype == "MARKET" or (otype == "LIMIT" and q.marketable(side, price))
        self._check_spot_funds(m, side, qty, q.ask if otype == "MARKET" else price)
        o = Order(SPOT, next(self._order_ids[SPOT]), cid, m.symbol, side, otype, tif, qty, price, t, t,
                  quote_order_qty=quote_qty, working_time=t)
        o.partial_fraction = self.faults.take_partial(SPOT, m.symbol)
        if otype != "MARKET":
            if side == "BUY":
                o.reserved = qty * price
                self.spot.lock(m.quote, o.reserved)
            else:
                o.reserved = qty
                self.spot.lock(m.base, qty)
        self._register(o)
        self._emit_order(o, "NEW", t)
        if otype != "MARKET":
            self.emit(SPOT, self.spot.position_event([m.base, m.quote], t))
        if immediate:
            self._match(o, q.touch(side), maker=False, t=t)
        elif tif in ("IOC", "FOK"):
            self._close(o, "EXPIRED", t)
            self._emit_order(o, "EXPIRED", t)
            self.emit(SPOT, self.spot.position_event([m.base, m.quote], t))
        return o, list(o.trades)

    def _check_spot_funds(self, m, side: str, qty: float, price: float) -> None:
        """A buy needs the quote asset for qty at `price`, a sell the base asset itself."""
        if side == "BUY":
            if self.spot.free(m.quote) + 1e-9 < qty * price:
                raise errors.spot_insufficient()
        elif self.spot.free(m.base) + 1e-12 < qty:
            raise errors.spot_insufficient()

    def _fill_spot(self, o: Order, qty: float, price: float, maker: bool, t: int) -> None:
        m = self.markets[o.symbol]
        rate = self.cfg.spot_fee
        cost = qty * price
        if o.side == "BUY":
            if o.type == "MARKET":
                self.spot.debit(m.quote, cost)
            else:
                reserved = qty * o.price
                self.spot.unlock(m.quote, reserved)
                o.reserved = max(0.0, o.reserved - reserved)
                self.spot.debit(m.quote, cost)
            fee = qty * rate
            self.spot.credit(m.base, qty - fee)
            fee_asset = m.base
        else:
            if o.type == "MARKET":
                self.spot.debit(m.base, qty)
            else:
                self.spot.unlock(m.base, qty)
                o.reserved = max(0.0, o.reserved - qty)
                self.spot.debit(m.base, qty)
            fee = cost * rate
            self.spot.credit(m.quote, cost - fee)
            fee_asset = m.quote
        tr = Trade(SPOT, next(self._trade_ids[SPOT]), o.order_id, o.symbol, o.side, price, qty, cost, fee, fee_asset,
                   t, maker)
        self._book_fill(SPOT, o, tr, t)
        self.spot.update_time = t
        self._emit_order(o, "TRADE", t, tr)

    def _book_fill(self, venue: str, o, tr, t: int) -> bool:
        """Record a trade on its order (either venue): executed quantity, status, out of the book once filled.
        Returns True when the order is now filled."""
        o.trades.append(tr)
        self.trades[venue].append(tr)
        o.executed_qty = round(o.executed_qty + tr.qty, 12)
        o.cum_quote += tr.quote_qty
        o.update_time = t
        o.status = "FILLED" if o.remaining <= 1e-12 else "PARTIALLY_FILLED"
        if o.status == "FILLED":
            self.open_orders[venue].pop(o.order_id, None)
            return True
        return False

    def spot_cancel(self, p: dict) -> tuple[Order, str]:
        t = self.sync()
        m = self.market(p.get("symbol"))
        o = self.find_order(SPOT, m.symbol, p.get("orderId"), p.get("origClientOrderId"))
        if o is None or not o.is_open:
            raise errors.unknown_order_cancel()
        cancel_id = p.get("newClientOrderId") or ("sim" + secrets.token_hex(10))
        self._close(o, "CANCELED", t)
        self._emit_order(o, "CANCELED", t, cancel_client_id=cancel_id)
        self.emit(SPOT, self.spot.position_event([m.base, m.quote], t))
        return o, cancel_id

    def spot_cancel_all(self, p: dict) -> list[Order]:
        t = self.sync()
        m = self.market(p.get("symbol"))
        return self._cancel_all(SPOT, m.symbol, t)

    # ------------------------------------------------------------------------------------------------------------
    # futures
    # ------------------------------------------------------------------------------------------------------------
    def futures_new_order(self, p: dict) -> Order:
        t = self.sync()
        m = self.market(p.get("symbol"))
        sym = m.symbol
        side, otype = _side_and_type(p, ("LIMIT", "MARKET"))
        ps = (p.get("positionSide") or "BOTH").upper()
        if ps != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.", 400)
        cid = _client_id(p.get("newClientOrderId"))
        self._check_duplicate(FUT, cid)
        rejected = self.faults.take_reject(FUT, sym, side)
        if rejected is not None:
            raise rejected
        reduce_only = _bool(p.get("reduceOnly"))
        dqty = parse_decimal(p.get("quantity"), "quantity")
        check_qty(m.perp, dqty, futures=True, precision=m.perp_qty_precision)
        qty = float(dqty)
        q = self.perp_quote(sym, t)
        mark = self.mark(sym, t)
        tif, price = _futures_limit_terms(m, p, otype, side, mark) if otype == "LIMIT" else ("GTC", 0.0)
        marketable = otype == "MARKET" or q.marketable(side, price)
        est = q.touch(side) if marketable else price
        if not reduce_only and qty * (price if otype == "LIMIT" else mark) < float(m.perp.min_notional):
            raise errors.min_notional_futures(f"{m.perp.min_notional}")
        im = self._futures_initial_margin(sym, side, qty, est, reduce_only)
        if otype == "LIMIT" and tif == "GTX" and marketable:  # post-only that would take: expired at once
            o = Order(FUT, next(self._order_ids[FUT]), cid, sym, side, otype, tif, qty, price, t, t,
                      reduce_only=reduce_only, status="EXPIRED")
            self._register(o)
            self._emit_order(o, "NEW", t)
            self._emit_order(o, "EXPIRED", t)
            return o
        o = Order(FUT, next(self._order_ids[FUT]), cid, sym, side, otype, tif, qty, price, t, t,
                  reduce_only=reduce_only, working_time=t)
        o.partial_fraction = self.faults.take_partial(FUT, sym)
        o.reserved = 0.0 if marketable else im
        self._register(o)
        self._emit_order(o, "NEW", t)
        if marketable:
            self._match(o, q.touch(side), maker=False, t=t)
        elif tif in ("IOC", "FOK"):
            self._close(o, "EXPIRED", t)
            self._emit_order(o, "EXPIRED", t)
        return o

    def _futures_initial_margin(self, sym: str, side: str, qty: float, est: float, reduce_only: bool) -> float:
        """The initial margin the part of the order that grows the position needs at price `est`, after the
        reduce-only, max-notional-at-leverage and available-margin checks."""
        pos = self.fut.positions[sym].qty
        sign = 1 if side == "BUY" else -1
        reduce_part = min(qty, abs(pos)) if pos and (pos > 0) != (sign > 0) else 0.0
        inc = qty - reduce_part
        if reduce_only and reduce_part <= 0:
            raise errors.reduce_only_rejected()
        if reduce_only:
            inc = 0.0
        if inc <= 0:
            return 0.0
        lev = self.fut.leverage[sym]
        new_notional = (abs(pos) - reduce_part + inc) * est
        if new_notional > self.fut.max_notional(sym, lev):
            raise errors.max_position_at_leverage()
        im = inc * est / lev
        if im > self.available() + 1e-9:
            raise errors.margin_insufficient()
        return im

    def _fill_futures(self, o: Order, qty: float, price: float, maker: bool, t: int) -> None:
        rate = self.cfg.futures_maker_fee if maker else self.cfg.futures_taker_fee
        cost = qty * price
        fee = cost * rate
        before_remaining = o.remaining
        realized = self.fut.apply_fill(o.symbol, qty * o.sign, price, fee, t)
        if o.reserved and before_remaining > 0:
            o.reserved = max(0.0, o.reserved * (1 - qty / before_remaining))
        tr = Trade(FUT, next(self._trade_ids[FUT]), o.order_id, o.symbol, o.side, price, qty, cost, fee, "USDT",
                   t, maker, realized)
        if self._book_fill(FUT, o, tr, t):
            o.reserved = 0.0
        self._emit_order(o, "TRADE", t, tr)
        self.emit(FUT, self.fut.account_update("ORDER", [o.symbol], self.marks(t), t, 0.0))

    def futures_cancel(self, p: dict) -> Order:
        t = self.sync()
        m = self.market(p.get("symbol"))
        o = self.find_order(FUT, m.symbol, p.get("orderId"), p.get("origClientOrderId"))
        if o is None or not o.is_open:
            raise errors.unknown_order_cancel()
        self._close(o, "CANCELED", t)
        self._emit_order(o, "CANCELED", t)
        return o

    def futures_cancel_all(self, p: dict) -> None:
        t = self.sync()
        m = self.market(p.get("symbol"))
        self._cancel_all(FUT, m.symbol, t)
