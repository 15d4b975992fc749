"""The venue's core: replay-driven matching, fills, funding settlements, liquidations, transfers.

Everything runs on the event loop's thread; REST handlers call :meth:`Venue.sync` first so the state they read or
change is the state at the current replay time. The engine steps through the price paths vertex by vertex (see
``prices.py``): between two steps every price is linear, so resting orders and liquidation prices are checked
exactly, with the crossing time interpolated.

User-stream events are handed to ``user_listeners`` (``fn(account, payload)`` with account "spot" or "futures")
as they happen; public pushes that are not periodic (forceOrder) go to ``public_listeners`` (``fn(stream, payload)``).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable

from basisbot.sim import errors
from basisbot.sim.accounts import FuturesAccount, SpotAccount
from basisbot.sim.book import (
    Quote,
    check_price,
    check_qty,
    crossing_time,
    floor_to_step,
    make_quote,
    parse_decimal,
    resting_fills,
)
from basisbot.sim.clock import ReplayClock
from basisbot.sim.config import SimConfig
from basisbot.sim.errors import BinanceError
from basisbot.sim.faults import FaultState
from basisbot.sim.markets import Market, f8
from basisbot.sim.orders import (
    Order,
    Trade,
    execution_report,
    order_trade_update,
)
from basisbot.sim.prices import SymbolPaths

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


class Venue:
    def __init__(self, cfg: SimConfig, markets: dict[str, Market], paths: dict[str, SymbolPaths],
                 clock: ReplayClock, faults: FaultState):
        self.cfg = cfg
        self.markets = markets
        self.paths = paths
        self.clock = clock
        self.faults = faults
        self.t = clock.now_ms()
        self._sym_t = {s: self.t for s in markets}
        self.spot = SpotAccount(cfg.spot_balances)
        self.fut = FuturesAccount(cfg.futures_usdt, markets, cfg.default_leverage, cfg.default_margin_type)
        self.orders: dict[str, dict[int, Order]] = {SPOT: {}, FUT: {}}
        self.open_orders: dict[str, dict[int, Order]] = {SPOT: {}, FUT: {}}
        self.client_ids: dict[str, dict[str, int]] = {SPOT: {}, FUT: {}}
        self.trades: dict[str, list[Trade]] = {SPOT: [], FUT: []}
        self._order_ids = {SPOT: itertools.count(1_000_001), FUT: itertools.count(8_100_000_001)}
        self._trade_ids = {SPOT: itertools.count(500_000_001), FUT: itertools.count(3_000_000_001)}
        self._tran_ids = itertools.count(160_000_000_001)
        self.transfers: list[dict] = []
        self.funding_log: list[dict] = []
        self.liquidations: list[dict] = []
        self.user_listeners: list[Callable[[str, dict], None]] = []
        self.public_listeners: list[Callable[[str, dict], None]] = []

    # ------------------------------------------------------------------------------------------------------------
    # time and prices
    # ------------------------------------------------------------------------------------------------------------
    def sync(self) -> int:
        self.advance_to(self.clock.now_ms())
        return self.t

    def market(self, symbol: str | None) -> Market:
        if not symbol:
            raise errors.mandatory("symbol")
        m = self.markets.get(symbol.upper())
        if m is None:
            raise errors.invalid_symbol()
        return m

    def mark(self, symbol: str, t: int | None = None) -> float:
        return self.paths[symbol].mark(self.t if t is None else t)

    def marks(self, t: int | None = None) -> dict[str, float]:
        return {s: self.mark(s, t) for s in self.markets}

    def spot_quote(self, symbol: str, t: int | None = None) -> Quote:
        p = self.paths[symbol].spot(self.t if t is None else t)
        return make_quote(p, self.markets[symbol].spot_tick, self.cfg.book_qty)

    def perp_quote(self, symbol: str, t: int | None = None) -> Quote:
        p = self.paths[symbol].perp(self.t if t is None else t)
        return make_quote(p, self.markets[symbol].perp_tick, self.cfg.book_qty)

    def open_order_im(self) -> float:
        return sum(o.reserved for o in self.open_orders[FUT].values())

    def available(self) -> float:
        return self.fut.available(self.marks(), self.open_order_im())

    # ------------------------------------------------------------------------------------------------------------
    # the engine
    # ------------------------------------------------------------------------------------------------------------
    def advance_to(self, target: int) -> None:
        target = min(int(target), self.clock.end_ms)
        if target <= self.t:
            return
        events: list[tuple[int, int, str, int]] = []
        for sym, p in self.paths.items():
            for tv in p.vertex_times(self.t, target):
                events.append((int(tv), 0, sym, -1))
            for i in p.settlements_between(self.t, target):
                events.append((int(p.fund_ts[i]), 1, sym, i))
        events.sort()
        for tv, kind, sym, idx in events:
            self._step(sym, tv)
            if kind == 1:
                self.t = max(self.t, tv)
                self._settle_funding(sym, idx, tv)
        for sym in self.paths:
            self._step(sym, target)
        self.t = target

    def _step(self, sym: str, t1: int) -> None:
        """Examine (t0, t1] of one symbol, the path being linear on it."""
        t0 = self._sym_t[sym]
        if t1 <= t0:
            return
        self._sym_t[sym] = t1
        p = self.paths[sym]
        # resting orders
        if self.open_orders[SPOT] and p.spot_is_open(t1):
            s0, s1 = p.spot(t0), p.spot(t1)
            for o in [o for o in self.open_orders[SPOT].values() if o.symbol == sym and not o.hold_remaining]:
                if o.type in ("LIMIT", "LIMIT_MAKER") and resting_fills(o.side, o.price, s1):
                    tc = crossing_time(t0, s0, t1, s1, o.price)
                    self._match(o, o.price, maker=True, t=tc)
        if self.open_orders[FUT]:
            f0, f1 = p.perp(t0), p.perp(t1)
            for o in [o for o in self.open_orders[FUT].values() if o.symbol == sym and not o.hold_remaining]:
                if o.type == "LIMIT" and resting_fills(o.side, o.price, f1):
                    tc = crossing_time(t0, f0, t1, f1, o.price)
                    self._match(o, o.price, maker=True, t=tc)
        # liquidation
        pos = self.fut.positions[sym]
        if pos.qty:
            m0, m1 = p.mark(t0), p.mark(t1)
            if self.fut.isolated(sym):
                lp = self.fut.liquidation_price(sym, self.marks(t1))
                if lp > 0 and ((pos.side > 0 and m1 <= lp) or (pos.side < 0 and m1 >= lp)):
                    self._liquidate_isolated(sym, lp, crossing_time(t0, m0, t1, m1, lp))
            else:
                self._check_cross(t1)

    # ------------------------------------------------------------------------------------------------------------
    # events
    # ------------------------------------------------------------------------------------------------------------
    def emit(self, account: str, payload: dict) -> None:
        for fn in list(self.user_listeners):
            fn(account, payload)

    def emit_public(self, stream: str, payload: dict) -> None:
        for fn in list(self.public_listeners):
            fn(stream, payload)

    # ------------------------------------------------------------------------------------------------------------
    # funding & liquidation
    # ------------------------------------------------------------------------------------------------------------
    def _settle_funding(self, sym: str, idx: int, ts: int) -> None:
        p = self.paths[sym]
        rate = float(p.fund_rate[idx])
        mark = p.mark(ts)
        pos = self.fut.positions[sym]
        qty = pos.qty
        pay = self.fut.settle_funding(sym, mark, rate, ts)
        if pay is None:
            return
        self.funding_log.append({"symbol": sym, "time": ts, "rate": rate, "markPrice": mark, "positionAmt": qty,
                                 "payment": pay})
        iso = self.fut.isolated(sym)
        self.emit(FUT, self.fut.account_update("FUNDING_FEE", [sym] if iso else [], self.marks(ts), ts, pay))

    def _liquidate_isolated(self, sym: str, lp: float, t: int) -> None:
        m = self.markets[sym]
        pos = self.fut.positions[sym]
        self._cancel_all(FUT, sym, t, reason="EXPIRED")
        entry, wallet = pos.entry, pos.iso_wallet
        qty, realized, insurance = self.fut.liquidate_isolated(sym, lp, t)
        self._book_liquidation_order(sym, qty, lp, realized, t)
        self.liquidations.append({"symbol": sym, "time": t, "price": lp, "positionAmt": -qty, "entryPrice": entry,
                                  "isolatedWalletLost": wallet, "realizedPnl": realized, "insuranceClear": insurance,
                                  "marginType": "isolated"})
        self.emit(FUT, self.fut.account_update("ORDER", [sym], self.marks(t), t, 0.0))
        self._force_order_stream(sym, qty, lp, t, m)

    def _check_cross(self, t: int) -> None:
        marks = self.marks(t)
        cps = self.fut.cross_positions(marks)
        if not cps:
            return
        from basisbot.margin import cross_margin_ratio

        if cross_margin_ratio(self.fut.cross_wallet, [cp for _, cp in cps]) < 1.0:
            return
        mm = sum(cp.maintenance_margin for _, cp in cps)
        syms = []
        for sym, cp in cps:
            self._cancel_all(FUT, sym, t, reason="EXPIRED")
            entry = self.fut.positions[sym].entry
            qty, realized = self.fut.liquidate_cross(sym, marks[sym], t)
            self._book_liquidation_order(sym, qty, marks[sym], realized, t)
            self.liquidations.append({"symbol": sym, "time": t, "price": marks[sym], "positionAmt": -qty,
                                      "entryPrice": entry, "realizedPnl": realized, "marginType": "cross"})
            syms.append(sym)
            self._force_order_stream(sym, qty, marks[sym], t, self.markets[sym])
        clear = -min(mm, max(self.fut.cross_wallet, 0.0))
        if clear:
            self.fut.cross_wallet += clear
            self.fut.add_income("", "INSURANCE_CLEAR", clear, t)
        self.emit(FUT, self.fut.account_update("ORDER", syms, marks, t, 0.0))

    def _book_liquidation_order(self, sym: str, qty: float, price: float, realized: float, t: int) -> None:
        m = self.markets[sym]
        side = "BUY" if qty > 0 else "SELL"
        o = Order(FUT, next(self._order_ids[FUT]), f"autoclose-{t}", sym, side, "LIQUIDATION", "IOC", abs(qty),
                  price, t, t, status="FILLED", executed_qty=abs(qty), cum_quote=abs(qty) * price,
                  reduce_only=True, orig_type="LIQUIDATION")
        tr = Trade(FUT, next(self._trade_ids[FUT]), o.order_id, sym, side, price, abs(qty), abs(qty) * price, 0.0,
                   "USDT", t, False, realized)
        o.trades.append(tr)
        self.orders[FUT][o.order_id] = o
        self.trades[FUT].append(tr)
        self.emit(FUT, order_trade_update(o, m, "TRADE", t, tr))

    def _force_order_stream(self, sym: str, qty: float, price: float, t: int, m: Market) -> None:
        side = "BUY" if qty > 0 else "SELL"
        payload = {"e": "forceOrder", "E": t, "o": {
            "s": sym, "S": side, "o": "LIMIT", "f": "IOC", "q": m.fmt_perp_qty(abs(qty)),
            "p": m.fmt_perp_price(price), "ap": m.fmt_perp_price(price), "X": "FILLED",
            "l": m.fmt_perp_qty(abs(qty)), "z": m.fmt_perp_qty(abs(qty)), "T": t}}
        self.emit_public(f"{sym.lower()}@forceOrder", payload)

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
        side = (p.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise errors.invalid_side() if side else errors.mandatory("side")
        otype = (p.get("type") or "").upper()
        if otype not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise errors.invalid_order_type() if otype else errors.mandatory("type")
        cid = _client_id(p.get("newClientOrderId"))
        self._check_duplicate(SPOT, cid)
        rejected = self.faults.take_reject(SPOT, m.symbol)
        if rejected is not None:
            raise rejected
        if not self.paths[m.symbol].spot_is_open(t):
            raise errors.market_closed()
        q = self.spot_quote(m.symbol, t)
        tif = (p.get("timeInForce") or "").upper()
        price = 0.0
        quote_qty = 0.0
        if otype == "LIMIT":
            if not tif:
                raise errors.mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise errors.invalid_tif()
        elif otype == "LIMIT_MAKER":
            tif = "GTC"
        else:
            tif = "GTC"
        if otype in ("LIMIT", "LIMIT_MAKER"):
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
        else:
            has_q = p.get("quantity") not in (None, "")
            has_qq = p.get("quoteOrderQty") not in (None, "")
            if has_q == has_qq:
                msg = ("Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!" if not has_q
                       else "Parameter 'quoteOrderQty' sent when not required.")
                raise errors.BinanceError(-1102 if not has_q else -1106, msg, 400)
            touch = q.touch(side)
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
        # funds
        immediate = otype == "MARKET" or (otype == "LIMIT" and q.marketable(side, price))
        if side == "BUY":
            need = qty * (q.ask if otype == "MARKET" else price)
            if self.spot.free(m.quote) + 1e-9 < need:
                raise errors.spot_insufficient()
        else:
            if self.spot.free(m.base) + 1e-12 < qty:
                raise errors.spot_insufficient()
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
        side = (p.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise errors.invalid_side() if side else errors.mandatory("side")
        otype = (p.get("type") or "").upper()
        if otype not in ("LIMIT", "MARKET"):
            raise errors.invalid_order_type() if otype else errors.mandatory("type")
        ps = (p.get("positionSide") or "BOTH").upper()
        if ps != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.", 400)
        cid = _client_id(p.get("newClientOrderId"))
        self._check_duplicate(FUT, cid)
        rejected = self.faults.take_reject(FUT, sym)
        if rejected is not None:
            raise rejected
        reduce_only = _bool(p.get("reduceOnly"))
        dqty = parse_decimal(p.get("quantity"), "quantity")
        check_qty(m.perp, dqty, futures=True)
        qty = float(dqty)
        q = self.perp_quote(sym, t)
        mark = self.mark(sym, t)
        tif = (p.get("timeInForce") or "").upper()
        price = 0.0
        if otype == "LIMIT":
            if not tif:
                raise errors.mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK", "GTX"):
                raise errors.invalid_tif()
            dprice = parse_decimal(p.get("price"), "price")
            check_price(m.perp, dprice, futures=True)
            price = float(dprice)
            up, down = m.percent_price()
            if side == "BUY" and price > mark * up:
                raise errors.price_above_cap()
            if side == "SELL" and price < mark * down:
                raise errors.price_below_floor()
        else:
            tif = "GTC"
        marketable = otype == "MARKET" or q.marketable(side, price)
        est = q.touch(side) if marketable else price
        if not reduce_only and qty * (price if otype == "LIMIT" else mark) < float(m.perp.min_notional):
            raise errors.min_notional_futures(f"{m.perp.min_notional}")
        pos = self.fut.positions[sym].qty
        sign = 1 if side == "BUY" else -1
        reduce_part = min(qty, abs(pos)) if pos and (pos > 0) != (sign > 0) else 0.0
        inc = qty - reduce_part
        if reduce_only and reduce_part <= 0:
            raise errors.reduce_only_rejected()
        if reduce_only:
            inc = 0.0
        lev = self.fut.leverage[sym]
        if inc > 0:
            new_notional = (abs(pos) - reduce_part + inc) * est
            if new_notional > self.fut.max_notional(sym, lev):
                raise errors.max_position_at_leverage()
            im = inc * est / lev
            if im > self.available() + 1e-9:
                raise errors.margin_insufficient()
        else:
            im = 0.0
        if otype == "LIMIT" and tif == "GTX" and marketable:
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

    def _fill_futures(self, o: Order, qty: float, price: float, maker: bool, t: int) -> None:
        m = self.markets[o.symbol]
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

    def set_leverage(self, symbol: str | None, leverage: str | None) -> dict:
        self.sync()
        m = self.market(symbol)
        try:
            lev = int(leverage or "")
        except ValueError:
            raise errors.mandatory("leverage") from None
        max_lev = m.table.brackets[0].initial_leverage
        if lev < 1 or lev > max_lev:
            raise BinanceError(-4028, f"Leverage {lev} is not valid", 400)
        pos = self.fut.positions[m.symbol]
        if pos.qty and abs(pos.qty) * self.mark(m.symbol) > self.fut.max_notional(m.symbol, lev):
            raise errors.max_position_at_leverage()
        self.fut.leverage[m.symbol] = lev
        return {"leverage": lev, "maxNotionalValue": f"{self.fut.max_notional(m.symbol, lev):.0f}",
                "symbol": m.symbol}

    def set_margin_type(self, symbol: str | None, margin_type: str | None) -> dict:
        self.sync()
        m = self.market(symbol)
        mt = (margin_type or "").upper()
        if mt == "CROSS":
            mt = "CROSSED"
        if mt not in ("ISOLATED", "CROSSED"):
            raise errors.mandatory("marginType") if not mt else errors.bad_param("marginType")
        if self.fut.margin_type[m.symbol] == mt:
            raise errors.no_need_margin_type()
        if self.fut.positions[m.symbol].qty:
            raise errors.margin_type_with_position()
        if any(o.symbol == m.symbol for o in self.open_orders[FUT].values()):
            raise errors.margin_type_with_orders()
        self.fut.margin_type[m.symbol] = mt
        return {"code": 200, "msg": "success"}

    def position_margin(self, symbol: str | None, amount: str | None, kind: str | None) -> dict:
        t = self.sync()
        m = self.market(symbol)
        amt = float(parse_decimal(amount, "amount"))
        if kind not in ("1", "2"):
            raise errors.mandatory("type") if not kind else errors.bad_param("type")
        if amt <= 0:
            raise errors.amount_not_positive()
        sym = m.symbol
        pos = self.fut.positions[sym]
        if not self.fut.isolated(sym):
            raise errors.add_margin_not_isolated()
        if pos.qty == 0:
            raise errors.position_is_zero()
        if kind == "1":
            if amt > self.available() + 1e-9:
                raise errors.cross_balance_insufficient()
            self.fut.cross_wallet -= amt
            pos.iso_wallet += amt
        else:
            mark = self.mark(sym)
            im = abs(pos.qty) * mark / self.fut.leverage[sym]
            removable = pos.iso_wallet + min(self.fut.upnl(sym, mark), 0.0) - im
            if amt > removable + 1e-9:
                raise errors.isolated_balance_insufficient()
            pos.iso_wallet -= amt
            self.fut.cross_wallet += amt
        pos.update_time = t
        self.emit(FUT, self.fut.account_update("MARGIN_TRANSFER", [sym], self.marks(t), t, 0.0))
        return {"amount": amt, "code": 200, "msg": "Successfully modify position margin.", "type": int(kind)}

    # ------------------------------------------------------------------------------------------------------------
    # transfers
    # ------------------------------------------------------------------------------------------------------------
    def transfer(self, kind: str | None, asset: str | None, amount: str | None) -> dict:
        t = self.sync()
        if not kind:
            raise errors.mandatory("type")
        if not asset:
            raise errors.mandatory("asset")
        amt = float(parse_decimal(amount, "amount"))
        if amt <= 0:
            raise errors.BinanceError(-1013, "Amount must be positive.", 400)
        asset = asset.upper()
        kind = kind.upper()
        if kind not in ("MAIN_UMFUTURE", "UMFUTURE_MAIN"):
            raise errors.BinanceError(-1130, "Data sent for parameter 'type' is not valid.", 400)
        if asset != "USDT":
            raise errors.BinanceError(-5013, "Asset transfer failed: this venue's USDⓈ-M wallet holds USDT only", 400)
        if kind == "MAIN_UMFUTURE":
            if self.spot.free(asset) + 1e-9 < amt:
                raise errors.transfer_insufficient()
            self.spot.debit(asset, amt)
            self.fut.cross_wallet += amt
            reason, spot_delta = "DEPOSIT", -amt
        else:
            if self.fut.max_withdraw(self.marks(), self.open_order_im()) + 1e-9 < amt:
                raise errors.transfer_insufficient()
            self.fut.cross_wallet -= amt
            self.spot.credit(asset, amt)
            reason, spot_delta = "WITHDRAW", amt
        tran = next(self._tran_ids)
        self.fut.add_income("", "TRANSFER", -spot_delta, t, info="TRANSFER")
        row = {"tranId": tran, "type": kind, "asset": asset, "amount": f8(amt), "status": "CONFIRMED",
               "timestamp": t}
        self.transfers.append(row)
        self.emit(SPOT, {"e": "balanceUpdate", "E": t, "a": asset, "d": f8(spot_delta), "T": t})
        self.emit(SPOT, self.spot.position_event([asset], t))
        self.emit(FUT, self.fut.account_update(reason, [], self.marks(t), t, -spot_delta))
        return {"tranId": tran}

    def deposit(self, account: str, asset: str, amount: float) -> None:
        """Admin: create money (test set-up)."""
        t = self.sync()
        asset = asset.upper()
        if account == SPOT:
            self.spot.credit(asset, amount)
            self.emit(SPOT, {"e": "balanceUpdate", "E": t, "a": asset, "d": f8(amount), "T": t})
            self.emit(SPOT, self.spot.position_event([asset], t))
        elif account == FUT:
            if asset != "USDT":
                raise ValueError("the futures wallet holds USDT only")
            self.fut.cross_wallet += amount
            self.emit(FUT, self.fut.account_update("ADMIN_DEPOSIT", [], self.marks(t), t, amount))
        else:
            raise ValueError("account must be 'spot' or 'futures'")

    # ------------------------------------------------------------------------------------------------------------
    # state for admin
    # ------------------------------------------------------------------------------------------------------------
    def all_orders(self, since_ms: int = 0) -> dict:
        """Admin: every order the venue holds (open or not) per venue, updated at or after `since_ms`, with its fills."""
        out = {}
        for v in (SPOT, FUT):
            out[v] = [{"orderId": o.order_id, "clientOrderId": o.client_order_id, "symbol": o.symbol, "side": o.side,
                       "type": o.type, "origQty": o.orig_qty, "executedQty": o.executed_qty, "status": o.status,
                       "time": o.time, "updateTime": o.update_time, "reduceOnly": getattr(o, "reduce_only", False),
                       "trades": [{"id": tr.trade_id, "qty": tr.qty, "price": tr.price, "commission": tr.commission,
                                   "commissionAsset": tr.commission_asset, "time": tr.time}
                                  for tr in o.trades]}
                      for o in self.orders[v].values() if o.update_time >= since_ms]
        return out

    def state(self) -> dict:
        t = self.sync()
        marks = self.marks(t)
        positions = []
        for s, p in self.fut.positions.items():
            if p.qty:
                positions.append({"symbol": s, "positionAmt": p.qty, "entryPrice": p.entry,
                                  "isolatedWallet": p.iso_wallet, "marginType": self.fut.margin_type[s],
                                  "leverage": self.fut.leverage[s], "markPrice": marks[s],
                                  "liquidationPrice": self.fut.liquidation_price(s, marks),
                                  "unRealizedProfit": self.fut.upnl(s, marks[s])})
        prices = {}
        for s in self.markets:
            sq, pq = self.spot_quote(s, t), self.perp_quote(s, t)
            p = self.paths[s]
            prices[s] = {"spotBid": sq.bid, "spotAsk": sq.ask, "perpBid": pq.bid, "perpAsk": pq.ask,
                         "mark": marks[s], "index": p.index(t), "spotOpen": p.spot_is_open(t),
                         "predictedFundingRate": p.predicted_rate(t, self.cfg.predicted_rate),
                         "nextFundingTime": p.next_funding_time(t)}
        return {
            "time": t,
            "prices": prices,
            "spot": {a: {"free": v[0], "locked": v[1]} for a, v in self.spot.balances.items()},
            "futures": {"crossWallet": self.fut.cross_wallet, "walletBalance": self.fut.wallet_balance(),
                        "available": self.available(), "positions": positions,
                        "leverage": dict(self.fut.leverage), "marginType": dict(self.fut.margin_type)},
            "openOrders": {v: [{"orderId": o.order_id, "clientOrderId": o.client_order_id, "symbol": o.symbol,
                                "side": o.side, "type": o.type, "price": o.price, "origQty": o.orig_qty,
                                "executedQty": o.executed_qty, "status": o.status}
                               for o in self.open_orders[v].values()] for v in (SPOT, FUT)},
            "funding": self.funding_log[-50:],
            "liquidations": self.liquidations[-50:],
            "transfers": self.transfers[-50:],
        }

