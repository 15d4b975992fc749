"""Live execution, orders: MARKET / LIMIT (GTC, IOC, FOK; post-only as GTX / LIMIT_MAKER), `reduceOnly` on the perp.

The nautilus ClientOrderId is sent as Binance's `newClientOrderId`, so the exchange, the cache and the journal name an
order the same way. Idempotent: an order is sent once per process; when a send's outcome is unknown (timeout, 5xx,
dropped connection) the client asks the exchange for that client order id instead of sending again, until the request
can no longer execute (`recvWindow` + margin after it was signed: the exchange refuses it after that); only then is it
reported rejected, and the strategy decides what to do (its leg rules catch up with a NEW order). A duplicate refusal
from the exchange (spot -2010 "Duplicate order sent.", futures -4116) is recognised the same way: the existing order is
looked up and adopted, never sent again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal

import ccxt
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import (
    BatchCancelOrders,
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    QueryOrder,
    SubmitOrder,
    SubmitOrderList,
)
from nautilus_trader.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId, TradeId, VenueOrderId
from nautilus_trader.model.objects import Money, Price, Quantity

from basisbot.live.venue_hooks.base import ONE
from basisbot.nautilus.instruments import currency

ORDER_STATUS = {
    "open": OrderStatus.ACCEPTED,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "GTX": TimeInForce.GTC,
        "GTD": TimeInForce.GTD}


@dataclass
class OrderTrack:
    """What this client knows about one order it sent (or adopted from the cache)."""

    cid: str
    instrument_id: InstrumentId
    strategy_id: object
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    symbol: str
    venue_order_id: str | None = None
    accepted: bool = False
    filled: Decimal = Decimal(0)
    venue_filled: Decimal = Decimal(0)
    trade_ids: set = field(default_factory=set)
    terminal: bool = False
    pending_terminal: str | None = None  # "canceled" | "expired" | "rejected" once all fills are in
    sent_at: float = 0.0  # monotonic
    outcome_unknown: bool = False
    immediate: bool = True  # executes when it reaches the venue (market, IOC, FOK), never rests
    t_send_ns: int = 0  # perf_counter_ns just before the HTTP request (benchmark)
    t_fill_ns: int = 0  # perf_counter_ns of the first fill event generated
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _executes_at_once(order) -> bool:
    return order.order_type == OrderType.MARKET or order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)


def _dec(v) -> Decimal:
    if v is None or v == "":
        return Decimal(0)
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v))


def is_duplicate_order(e: Exception) -> bool:
    """Binance's duplicate refusals (the venue hooks add their own: OKX 51016)."""
    s = str(e)
    return "Duplicate order sent" in s or '"code":-4116' in s or "ClientOrderId is duplicated" in s


class OrderCommands:
    """Orders: submit, cancel, query; idempotent sends (an unknown outcome is resolved by client order id,
    never re-sent); order and trade updates applied to the order's track, fills deduplicated by trade id."""

    async def _submit_order(self, command: SubmitOrder) -> None:
        order = command.order
        cid = order.client_order_id.value
        if cid in self._tracks:
            self._log.warning(f"{cid}: already sent by this client; not sending it twice")
            return
        iid = order.instrument_id
        symbol = self._symbols.get(iid)
        track = OrderTrack(cid, iid, order.strategy_id, order.side, order.order_type, order.quantity.as_decimal(),
                       symbol or "", immediate=_executes_at_once(order))
        self._tracks[cid] = track
        ts = self._clock.timestamp_ns()
        if symbol is None or order.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            self.generate_order_submitted(order.strategy_id, iid, order.client_order_id, ts)
            why = "unknown instrument" if symbol is None else f"order type {order.order_type} not supported"
            self._reject(track, why)
            return
        price = None
        otype = "market"
        if order.order_type == OrderType.LIMIT:
            otype = "limit"
            price = float(order.price)
        margin_mode = self.opts.margin.get(self._exchange_ids[iid], (None, "isolated"))[1] \
            if self.kind == "perp" else None
        otype, params = self.hooks.order_request(
            self.kind, cid, otype=otype, post_only=order.order_type == OrderType.LIMIT and order.is_post_only,
            tif={TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}.get(order.time_in_force, "GTC"),
            reduce_only=order.is_reduce_only, margin_mode=margin_mode)
        # the exchange's amount: contracts on an OKX swap (the quantity is on the contract lot: exact)
        amount = order.quantity.as_decimal() / self._ct.get(iid, ONE)
        side = "buy" if order.side == OrderSide.BUY else "sell"
        track.sent_at = time.monotonic()
        track.t_send_ns = time.perf_counter_ns()
        if self.on_send is not None:
            self.on_send(cid, track.t_send_ns)
        self.generate_order_submitted(order.strategy_id, iid, order.client_order_id, ts)
        try:
            resp = await self.ex.create_order(symbol, otype, side, float(amount), price, params)
        except ccxt.InvalidNonce as e:
            # Binance -1021 (timestamp outside recvWindow / ahead of the server): refused at the gateway before the
            # order reached the engine, so it is a definitive rejection (ccxt files it under NetworkError); the
            # strategy's delayed retries or unwind follow now instead of after a recvWindow of lookups
            self._reject(track, f"{type(e).__name__}: {e}")
            return
        except (ccxt.NetworkError, ccxt.ExchangeNotAvailable) as e:
            self._log.warning(f"{cid}: outcome unknown ({type(e).__name__}: {e}); asking the exchange")
            track.outcome_unknown = True
            await self._resolve_unknown(track)
            return
        except ccxt.BaseError as e:
            if is_duplicate_order(e) or self.hooks.is_duplicate_order(e):
                self._log.warning(f"{cid}: exchange says duplicate; adopting the existing order")
                track.outcome_unknown = True
                await self._resolve_unknown(track)
                return
            self._reject(track, f"{type(e).__name__}: {e}")
            return
        await self._apply_order(track, resp)

    async def _resolve_unknown(self, track: OrderTrack) -> None:
        """Find out whether an order whose send failed ambiguously exists; never send it again."""
        deadline = track.sent_at + self.opts.recv_window_ms / 1000 + self.opts.lookup_margin_s
        delay = 0.2
        while self._running and not track.terminal:
            try:
                o = await self.ex.fetch_order(None, track.symbol, self.hooks.by_client_id(track.cid))
            except ccxt.OrderNotFound:
                if time.monotonic() >= deadline:
                    self._reject(track, "not received by the exchange (looked up by client order id after the "
                                        "request's recvWindow)")
                    return
            except ccxt.BaseError as e:
                self._log.warning(f"{track.cid}: lookup failed ({type(e).__name__}); retrying")
            else:
                track.outcome_unknown = False
                await self._apply_order(track, o)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _fills_in_flight(self) -> bool:
        """Whether a fill of ours may have happened at the venue without reaching us yet: an order sent in the last
        `balance_hold_max_s` that executes at once (market, IOC, FOK) and is still open here, or one whose fills the
        venue reported and we have not applied. An order adopted from the cache (not sent by this process) does not
        count: the account read at start-up holds what it did."""
        since = time.monotonic() - self.opts.balance_hold_max_s
        return any(not t.terminal and (t.immediate or t.venue_filled > t.filled) and t.sent_at and t.sent_at > since
                   for t in self._tracks.values())

    def _order_done(self) -> None:
        """An order is done: a balance read held back while it was in flight can be published now."""
        if self._refresh_deferred:
            self._schedule_refresh()

    def _reject(self, track: OrderTrack, reason: str) -> None:
        if track.terminal:
            return
        track.terminal = True
        self._order_done()
        self._log.warning(f"{track.cid} rejected: {reason}")
        self.generate_order_rejected(track.strategy_id, track.instrument_id, ClientOrderId(track.cid), reason,
                                     self._clock.timestamp_ns())

    async def _cancel_order(self, command: CancelOrder) -> None:
        cid = command.client_order_id.value
        track = self._tracks.get(cid) or self._adopt(cid)
        if track is None or track.terminal:
            return
        try:
            if track.venue_order_id:
                o = await self.ex.cancel_order(track.venue_order_id, track.symbol)
            else:
                o = await self.ex.cancel_order(None, track.symbol, self.hooks.cancel_by_client_id(cid))
        except ccxt.OrderNotFound as e:
            # already closed (filled / expired) or not (yet) at the exchange: its real state settles it
            self.generate_order_cancel_rejected(track.strategy_id, track.instrument_id, command.client_order_id,
                                                VenueOrderId(track.venue_order_id) if track.venue_order_id else None,
                                                str(e), self._clock.timestamp_ns())
            self.create_task(self._sync_track(track), log_msg=f"sync {cid}")
            return
        except ccxt.BaseError as e:
            self.generate_order_cancel_rejected(track.strategy_id, track.instrument_id, command.client_order_id,
                                                VenueOrderId(track.venue_order_id) if track.venue_order_id else None,
                                                f"{type(e).__name__}: {e}", self._clock.timestamp_ns())
            return
        await self._apply_order(track, o)

    async def _cancel_all_orders(self, command: CancelAllOrders) -> None:
        for order in self._cache.orders_open(instrument_id=command.instrument_id):
            if order.strategy_id == command.strategy_id:
                await self._cancel_order(CancelOrder(order.trader_id, order.strategy_id, order.instrument_id,
                                                     order.client_order_id, order.venue_order_id, UUID4(),
                                                     self._clock.timestamp_ns()))

    async def _batch_cancel_orders(self, command: BatchCancelOrders) -> None:
        for c in command.cancels:
            await self._cancel_order(c)

    async def _modify_order(self, command: ModifyOrder) -> None:
        self.generate_order_modify_rejected(command.strategy_id, command.instrument_id, command.client_order_id,
                                            command.venue_order_id, "modify is not supported (cancel and resend)",
                                            self._clock.timestamp_ns())

    async def _submit_order_list(self, command: SubmitOrderList) -> None:
        for order in command.order_list.orders:
            await self._submit_order(SubmitOrder(command.trader_id, command.strategy_id, order, UUID4(),
                                                 self._clock.timestamp_ns()))

    async def _query_order(self, command: QueryOrder) -> None:
        track = self._tracks.get(command.client_order_id.value) or self._adopt(command.client_order_id.value)
        if track is not None:
            await self._sync_track(track)

    def _adopt(self, cid: str) -> OrderTrack | None:
        """A track for an order of ours the cache knows (sent before a restart, reconciled)."""
        order = self._cache.order(ClientOrderId(cid))
        if order is None or order.instrument_id not in self._symbols:
            return None
        t = OrderTrack(cid, order.instrument_id, order.strategy_id, order.side, order.order_type,
                   order.quantity.as_decimal(), self._symbols[order.instrument_id], immediate=_executes_at_once(order))
        t.venue_order_id = order.venue_order_id.value if order.venue_order_id else None
        t.accepted = order.status not in (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED)
        t.filled = order.filled_qty.as_decimal()
        t.trade_ids = {tid.value for tid in order.trade_ids}
        t.terminal = order.is_closed
        self._tracks[cid] = t
        if t.venue_order_id:
            self._by_venue_id[t.venue_order_id] = cid
        return t

    def _track_for(self, cid: str | None, venue_order_id: str | None) -> OrderTrack | None:
        if cid and cid in self._tracks:
            return self._tracks[cid]
        if venue_order_id and venue_order_id in self._by_venue_id:
            return self._tracks.get(self._by_venue_id[venue_order_id])
        if cid:
            return self._adopt(cid)
        if venue_order_id:
            known = self._cache.client_order_id(VenueOrderId(venue_order_id))
            if known is not None:
                return self._adopt(known.value)
        return None

    def _ensure_accepted(self, track: OrderTrack, venue_order_id: str | None, ts_ms=None) -> None:
        if venue_order_id and not track.venue_order_id:
            track.venue_order_id = str(venue_order_id)
            self._by_venue_id[track.venue_order_id] = track.cid
        if not track.accepted and track.venue_order_id:
            track.accepted = True
            self.generate_order_accepted(track.strategy_id, track.instrument_id, ClientOrderId(track.cid),
                                         VenueOrderId(track.venue_order_id), self._ts(ts_ms))

    async def _apply_order(self, track: OrderTrack, o: dict) -> None:
        """An order snapshot (REST response, fetch, or user stream): accept, fill, close, in that order."""
        status = o.get("status")
        if status == "rejected":
            self._reject(track, str((o.get("info") or {}).get("msg") or "rejected by the exchange"))
            return
        self._ensure_accepted(track, o.get("id"), o.get("timestamp"))
        for t in o.get("trades") or []:
            if t.get("id"):
                self._apply_trade(track, t)
        filled = self._base(track.instrument_id, o.get("filled"))
        if filled > track.venue_filled:
            track.venue_filled = filled
        if status in ("canceled", "expired"):
            track.pending_terminal = status
        if track.venue_filled > track.filled:
            # the fills are on their way on the trade stream; fetch them if they do not arrive
            self.create_task(self._trades_fallback(track), log_msg=f"trades fallback {track.cid}")
        else:
            self._maybe_close(track)

    def _maybe_close(self, track: OrderTrack, ts_ms=None) -> None:
        if track.terminal or track.pending_terminal is None or track.filled < track.venue_filled:
            return
        track.terminal = True
        self._order_done()
        vid = VenueOrderId(track.venue_order_id) if track.venue_order_id else None
        if track.pending_terminal == "canceled":
            self.generate_order_canceled(track.strategy_id, track.instrument_id, ClientOrderId(track.cid), vid,
                                         self._ts(ts_ms))
        else:
            self.generate_order_expired(track.strategy_id, track.instrument_id, ClientOrderId(track.cid), vid,
                                        self._ts(ts_ms))

    def _apply_trade(self, track: OrderTrack, t: dict) -> None:
        tid = str(t.get("id"))
        if tid in track.trade_ids or track.terminal and track.filled >= track.quantity:
            return
        inst = self._instruments[track.instrument_id]
        qty = self._base(track.instrument_id, t.get("amount"))
        if qty <= 0:
            return
        track.trade_ids.add(tid)
        self._ensure_accepted(track, t.get("order"), t.get("timestamp"))
        fee = t.get("fee") or {}
        cost = fee.get("cost")
        code = fee.get("currency") or "USDT"
        commission = Money(float(cost or 0.0), currency(code))
        liq = {"maker": LiquiditySide.MAKER, "taker": LiquiditySide.TAKER}.get(t.get("takerOrMaker"),
                                                                               LiquiditySide.TAKER)
        track.filled += qty
        if track.filled > track.venue_filled:
            track.venue_filled = track.filled
        if self.kind == "spot" and not self._account_calculated():
            # the account first, then the fill: whoever reacts to the fill sees the balance it produced
            self._apply_fill_to_balances(inst, track.side, float(qty), float(t["price"]), float(cost or 0.0), code)
        self._fills_seen += 1
        if not track.t_fill_ns:
            track.t_fill_ns = time.perf_counter_ns()
            if self.on_fill is not None:
                self.on_fill(track.cid, track.t_fill_ns)
        self.generate_order_filled(
            strategy_id=track.strategy_id,
            instrument_id=track.instrument_id,
            client_order_id=ClientOrderId(track.cid),
            venue_order_id=VenueOrderId(track.venue_order_id or str(t.get("order"))),
            venue_position_id=None,
            trade_id=TradeId(tid),
            order_side=track.side,
            order_type=track.order_type,
            last_qty=Quantity(float(qty), inst.size_precision),
            last_px=Price(float(t["price"]), inst.price_precision),
            quote_currency=inst.quote_currency,
            commission=commission,
            liquidity_side=liq,
            ts_event=self._ts(t.get("timestamp")),
        )
        if track.filled >= track.quantity:
            track.terminal = True  # FILLED: nautilus closes the order on the last fill
        else:
            self._maybe_close(track)
        self._schedule_refresh()

    async def _trades_fallback(self, track: OrderTrack) -> None:
        await asyncio.sleep(self.opts.trades_fallback_s)
        if track.filled < track.venue_filled:
            await self._fetch_trades(track)
        self._maybe_close(track)

    async def _fetch_trades(self, track: OrderTrack) -> None:
        if not track.venue_order_id:
            return
        async with track.lock:
            try:
                trades = await self.ex.fetch_my_trades(track.symbol,
                                                       params=self.hooks.trades_of_order(track.venue_order_id))
            except ccxt.BaseError as e:
                self._log.warning(f"{track.cid}: trades query failed: {type(e).__name__}: {e}")
                return
            for t in trades:
                if str(t.get("order")) == track.venue_order_id:
                    self._apply_trade(track, t)

    async def _sync_track(self, track: OrderTrack) -> None:
        """REST truth for one order: its state, then its trades."""
        try:
            if track.venue_order_id:
                o = await self.ex.fetch_order(track.venue_order_id, track.symbol)
            else:
                o = await self.ex.fetch_order(None, track.symbol, self.hooks.by_client_id(track.cid))
        except ccxt.OrderNotFound:
            return
        except ccxt.BaseError as e:
            self._log.warning(f"{track.cid}: order query failed: {type(e).__name__}: {e}")
            return
        track.outcome_unknown = False
        filled = self._base(track.instrument_id, o.get("filled"))
        if filled > track.filled:
            track.venue_filled = max(track.venue_filled, filled)
            self._ensure_accepted(track, o.get("id"), o.get("timestamp"))
            await self._fetch_trades(track)
        await self._apply_order(track, o)
