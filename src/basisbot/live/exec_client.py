"""Live execution on ccxt (REST for commands) and ccxt.pro (user streams for events), one client per venue.

`CcxtExecutionClient(kind="spot")`: BINANCE_SPOT, CASH account (USDT and base-asset balances).
`CcxtExecutionClient(kind="perp")`: BINANCE_PERP, MARGIN account in USDT, NETTING positions; it also serves the
strategy's margin requests and publishes what the strategy's guard and the journal need:

- Orders: MARKET / LIMIT (GTC, IOC, FOK; post-only as GTX / LIMIT_MAKER), `reduceOnly` on the perp. The nautilus
  ClientOrderId is sent as Binance's `newClientOrderId`, so the exchange, the cache and the journal name an order the
  same way. Idempotent: an order is sent once per process; when a send's outcome is unknown (timeout, 5xx, dropped
  connection) the client asks the exchange for that client order id instead of sending again, until the request can
  no longer execute (`recvWindow` + margin after it was signed: the exchange refuses it after that); only then is it
  reported rejected, and the strategy decides what to do (its leg rules catch up with a NEW order). A duplicate
  refusal from the exchange (spot -2010 "Duplicate order sent.", futures -4116) is recognised the same way: the
  existing order is looked up and adopted, never sent again.
- Events: `watch_orders` (accepted / cancelled / expired), `watch_my_trades` (fills, deduplicated by trade id, so a
  trade seen in a REST response, on the stream and in a catch-up query is applied once), `watch_balance` and (perp)
  `watch_positions` (triggers for a REST refresh of the account state and of the positions). Every stream loop
  reconnects with exponential backoff (capped by `live.reconnect_max_s`) and resynchronises from REST after a drop:
  in-flight orders, their trades, balances, positions and funding income. While an order is in flight, the poll loop
  (every `live.poll_interval_s`) queries it too.
- Account state: spot CASH with every non-zero asset; perp MARGIN USDT (total = wallet balance, free = available).
- Perp margin: at connect, margin mode (isolated by default) and leverage per symbol from the config. The
  `ADJUST_MARGIN_ENDPOINT` handler adds isolated margin (`add_margin`) from the free futures balance, first moving
  the shortfall from spot (`transfer` spot -> future) when allowed; `MarginAdjusted` is published on
  `margin_topic(symbol) + ".adjusted"`. `PerpMarginState` is published on `margin_topic(symbol)` whenever the
  exchange's position (positionAmt, entryPrice, isolatedWallet, margin type) or the free balances change, and
  `Liquidated` on `liquidation_topic(symbol)` when the exchange's liquidation order (`autoclose-...`) shows up; the
  liquidation fill reaches nautilus as an order status report (claimed by the strategy via external_order_claims).
- Funding: after each settlement (the user stream's FUNDING_FEE account update, the announced settlement time +
  a booking delay, and a slow periodic check) the income history is read and one `FundingSettled` per new payment
  is published on `basisbot.funding.settled`.
- Reconciliation reports (`generate_order_status_reports`, `generate_fill_reports`,
  `generate_position_status_reports`) from `fetch_orders` / `fetch_open_orders`, `fetch_my_trades` and
  `fetch_positions` / spot balances, so a restarted node starts from what the exchange holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import ccxt
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import (
    BatchCancelOrders,
    CancelAllOrders,
    CancelOrder,
    GenerateFillReports,
    GenerateOrderStatusReport,
    GenerateOrderStatusReports,
    GeneratePositionStatusReports,
    ModifyOrder,
    QueryAccount,
    QueryOrder,
    SubmitOrder,
    SubmitOrderList,
)
from nautilus_trader.execution.reports import FillReport, OrderStatusReport, PositionStatusReport
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import (
    AccountType,
    LiquiditySide,
    OmsType,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    TimeInForce,
)
from nautilus_trader.model.identifiers import (
    AccountId,
    ClientId,
    ClientOrderId,
    InstrumentId,
    TradeId,
    Venue,
    VenueOrderId,
)
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import AccountBalance, MarginBalance, Money, Price, Quantity

from basisbot.nautilus.instruments import currency
from basisbot.live.instruments import StaticInstrumentProvider
from basisbot.live.messages import FUNDING_SETTLED_TOPIC, FundingSettled
from basisbot.live.venue import NS, VenueSession
from basisbot.venue_messages import (
    ADJUST_MARGIN_ENDPOINT,
    AdjustMarginRequest,
    Liquidated,
    MarginAdjusted,
    PerpMarginState,
    liquidation_topic,
    margin_topic,
)

_STATUS = {
    "open": OrderStatus.ACCEPTED,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_TIF = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "GTX": TimeInForce.GTC,
        "GTD": TimeInForce.GTD}


@dataclass
class ExecOptions:
    reconnect_max_s: float = 30.0
    reconnect_initial_s: float = 0.5
    poll_interval_s: float = 5.0
    recv_window_ms: int = 5000  # sent with every signed request; bounds how late an order can still execute
    lookup_margin_s: float = 1.0  # after recvWindow + this, "order does not exist" is definitive
    refresh_debounce_s: float = 0.05
    booking_delay_s: float = 3.0  # read the income history this long after a settlement (venue time)
    funding_poll_s: float = 60.0
    funding_lookback_h: float = 9.0  # at connect: publish payments of the last settlement (journal dedupes)
    trades_fallback_s: float = 1.0  # a fill known from an order update but not seen as a trade: query after this
    # per symbol (exchange id): (leverage, "isolated" | "cross"), applied at connect (perp only)
    margin: dict[str, tuple[int, str]] = field(default_factory=dict)
    allow_transfer_from_spot: bool = True


@dataclass
class _Track:
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
    t_send_ns: int = 0  # perf_counter_ns just before the HTTP request (benchmark)
    t_fill_ns: int = 0  # perf_counter_ns of the first fill event generated
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Position:
    side: int = 0
    qty: float = 0.0
    entry: float = 0.0
    wallet: float = 0.0
    mode: str = "isolated"
    update_ms: int = 0


def _dec(v) -> Decimal:
    if v is None or v == "":
        return Decimal(0)
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v))


def _is_duplicate(e: Exception) -> bool:
    s = str(e)
    return "Duplicate order sent" in s or '"code":-4116' in s or "ClientOrderId is duplicated" in s


class CcxtExecutionClient(LiveExecutionClient):
    def __init__(self, loop: asyncio.AbstractEventLoop, *, venue: Venue, kind: str, session: VenueSession,
                 instruments: list[Instrument], msgbus: MessageBus, cache: Cache, clock: LiveClock,
                 options: ExecOptions | None = None):
        if kind not in ("spot", "perp"):
            raise ValueError(f"kind must be 'spot' or 'perp', got {kind!r}")
        perp = kind == "perp"
        super().__init__(
            loop=loop, client_id=ClientId(venue.value), venue=venue, oms_type=OmsType.NETTING,
            account_type=AccountType.MARGIN if perp else AccountType.CASH, base_currency=USDT if perp else None,
            instrument_provider=StaticInstrumentProvider(instruments), msgbus=msgbus, cache=cache, clock=clock,
            config=None,
        )
        self._set_account_id(AccountId(f"{venue.value}-master"))
        self.kind = kind
        self.session = session
        self.ex = session.perp if perp else session.spot
        self.opts = options or ExecOptions()
        self.ex.options["recvWindow"] = self.opts.recv_window_ms
        self._instruments = {i.id: i for i in instruments}
        to_symbol = session.perp_symbol if perp else session.spot_symbol
        self._symbols = {i.id: to_symbol(i.raw_symbol.value) for i in instruments}  # unified ccxt symbols
        self._by_symbol = {s: iid for iid, s in self._symbols.items()}
        self._exchange_ids = {i.id: i.raw_symbol.value for i in instruments}
        self._tracks: dict[str, _Track] = {}
        self._by_venue_id: dict[str, str] = {}
        self._running = False
        self._tasks_bg: list[asyncio.Task] = []
        self._refresh_handle: asyncio.TimerHandle | None = None
        self._refresh_lock = asyncio.Lock()
        # spot: balances as last reported, moved by our own fills as they happen (the exchange's own update comes
        # later on REST); a REST read older than a fill is not published (it would undo the fill)
        self._balances: dict[str, list[float]] = {}
        self._fills_seen = 0
        self._stream_down: dict[str, float | None] = {}
        self.stream_reconnects = 0
        # perp state
        self._positions: dict[str, _Position] = {}  # exchange id -> position
        self._last_open: dict[str, _Position] = {}  # exchange id -> last position seen open (liquidation report)
        self._available = 0.0
        self._cross_wallet = 0.0
        self._published: dict[str, tuple] = {}
        self._margin_locks: dict[str, asyncio.Lock] = {}
        self._funding_seen: set[str] = set()
        self._funding_since_ms = 0
        self._funding_since: dict[str, int] = {}  # exchange id -> read the income history from here
        self._book_lock = asyncio.Lock()
        self._next_funding_ms: dict[str, int] = {}
        self._funding_timers: dict[str, asyncio.TimerHandle] = {}
        self._pre_settlement_qty: dict[str, float] = {}
        self._liquidations_seen: set[str] = set()
        self.funding_published: list = []
        self.liquidations: list[Liquidated] = []
        self.margin_replies: list[MarginAdjusted] = []
        self.on_send: Callable | None = None  # benchmark hook: fn(cid, perf_counter_ns)
        self.on_fill: Callable | None = None  # benchmark hook: fn(cid, perf_counter_ns)

    # =================================================================================================================
    # lifecycle
    # =================================================================================================================
    async def _connect(self) -> None:
        if not self.session.authenticated:
            raise RuntimeError(f"{self.id}: no API credentials (live trading needs them)")
        self._running = True
        if self.kind == "perp":
            await self._setup_margin()
            self._msgbus.register(ADJUST_MARGIN_ENDPOINT, self._on_adjust_margin_request)
        await self._refresh(publish=True)
        streams = [("orders", self.ex.watch_orders, self._on_orders),
                   ("trades", self.ex.watch_my_trades, self._on_trades),
                   ("balance", self.ex.watch_balance, self._on_balance)]
        if self.kind == "perp":
            streams.append(("positions", self.ex.watch_positions, self._on_positions))
        for name, watch, handler in streams:
            self._tasks_bg.append(self.create_task(self._stream_loop(name, watch, handler),
                                                   log_msg=f"{self.id}: {name} stream"))
        self._tasks_bg.append(self.create_task(self._poll_loop(), log_msg=f"{self.id}: poll loop"))
        if self.kind == "perp":
            now_ms = self.session.time.venue_now_ms()
            self._funding_since_ms = now_ms - int(self.opts.funding_lookback_h * 3_600_000)
            await self._schedule_funding_checks()
            self.create_task(self._book_funding(), log_msg=f"{self.id}: funding catch-up")

    async def _disconnect(self) -> None:
        self._running = False
        if self.kind == "perp":
            with contextlib.suppress(Exception):
                self._msgbus.deregister(ADJUST_MARGIN_ENDPOINT, self._on_adjust_margin_request)
        for h in list(self._funding_timers.values()) + ([self._refresh_handle] if self._refresh_handle else []):
            h.cancel()
        for t in self._tasks_bg:
            t.cancel()
        for t in self._tasks_bg:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks_bg.clear()

    async def _setup_margin(self) -> None:
        for iid, sym in self._symbols.items():
            xid = self._exchange_ids[iid]
            lev, mode = self.opts.margin.get(xid, (None, "isolated"))
            try:
                await self.ex.set_margin_mode(mode, sym)
                self._log.info(f"{xid}: margin mode {mode}")
            except ccxt.BaseError as e:
                msg = str(e)
                if "-4046" in msg or "No need to change margin type" in msg:
                    pass  # already so
                elif "-4048" in msg or "-4047" in msg:
                    self._log.warning(f"{xid}: margin mode not changed to {mode} (open position or orders): {msg}")
                else:
                    raise
            if lev:
                await self.ex.set_leverage(int(lev), sym)
                self._log.info(f"{xid}: leverage {lev}x")

    # =================================================================================================================
    # commands
    # =================================================================================================================
    async def _submit_order(self, command: SubmitOrder) -> None:
        order = command.order
        cid = order.client_order_id.value
        if cid in self._tracks:
            self._log.warning(f"{cid}: already sent by this client; not sending it twice")
            return
        iid = order.instrument_id
        symbol = self._symbols.get(iid)
        track = _Track(cid, iid, order.strategy_id, order.side, order.order_type, order.quantity.as_decimal(),
                       symbol or "")
        self._tracks[cid] = track
        ts = self._clock.timestamp_ns()
        if symbol is None or order.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            self.generate_order_submitted(order.strategy_id, iid, order.client_order_id, ts)
            why = "unknown instrument" if symbol is None else f"order type {order.order_type} not supported"
            self._reject(track, why)
            return
        params = {"newClientOrderId": cid}
        if self.kind == "perp" and order.is_reduce_only:
            params["reduceOnly"] = True
        price = None
        otype = "market"
        if order.order_type == OrderType.LIMIT:
            otype = "limit"
            price = float(order.price)
            if order.is_post_only:
                params["timeInForce"] = "GTX" if self.kind == "perp" else None
                if self.kind == "spot":
                    otype = "LIMIT_MAKER"
                    params.pop("timeInForce")
            else:
                params["timeInForce"] = {TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}.get(order.time_in_force,
                                                                                               "GTC")
        side = "buy" if order.side == OrderSide.BUY else "sell"
        track.sent_at = time.monotonic()
        track.t_send_ns = time.perf_counter_ns()
        if self.on_send is not None:
            self.on_send(cid, track.t_send_ns)
        self.generate_order_submitted(order.strategy_id, iid, order.client_order_id, ts)
        try:
            resp = await self.ex.create_order(symbol, otype, side, float(order.quantity), price, params)
        except (ccxt.NetworkError, ccxt.ExchangeNotAvailable) as e:
            self._log.warning(f"{cid}: outcome unknown ({type(e).__name__}: {e}); asking the exchange")
            track.outcome_unknown = True
            await self._resolve_unknown(track)
            return
        except ccxt.BaseError as e:
            if _is_duplicate(e):
                self._log.warning(f"{cid}: exchange says duplicate; adopting the existing order")
                track.outcome_unknown = True
                await self._resolve_unknown(track)
                return
            self._reject(track, f"{type(e).__name__}: {e}")
            return
        await self._apply_order(track, resp)

    async def _resolve_unknown(self, track: _Track) -> None:
        """Find out whether an order whose send failed ambiguously exists; never send it again."""
        deadline = track.sent_at + self.opts.recv_window_ms / 1000 + self.opts.lookup_margin_s
        delay = 0.2
        while self._running and not track.terminal:
            try:
                o = await self.ex.fetch_order(None, track.symbol, {"clientOrderId": track.cid})
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

    def _reject(self, track: _Track, reason: str) -> None:
        if track.terminal:
            return
        track.terminal = True
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
                o = await self.ex.cancel_order(None, track.symbol, {"origClientOrderId": cid})
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

    async def _query_account(self, command: QueryAccount) -> None:
        await self._refresh(publish=True)

    async def _query_order(self, command: QueryOrder) -> None:
        track = self._tracks.get(command.client_order_id.value) or self._adopt(command.client_order_id.value)
        if track is not None:
            await self._sync_track(track)

    # =================================================================================================================
    # order state
    # =================================================================================================================
    def _adopt(self, cid: str) -> _Track | None:
        """A track for an order of ours the cache knows (sent before a restart, reconciled)."""
        order = self._cache.order(ClientOrderId(cid))
        if order is None or order.instrument_id not in self._symbols:
            return None
        t = _Track(cid, order.instrument_id, order.strategy_id, order.side, order.order_type,
                   order.quantity.as_decimal(), self._symbols[order.instrument_id])
        t.venue_order_id = order.venue_order_id.value if order.venue_order_id else None
        t.accepted = order.status not in (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED)
        t.filled = order.filled_qty.as_decimal()
        t.trade_ids = {tid.value for tid in order.trade_ids}
        t.terminal = order.is_closed
        self._tracks[cid] = t
        if t.venue_order_id:
            self._by_venue_id[t.venue_order_id] = cid
        return t

    def _track_for(self, cid: str | None, venue_order_id: str | None) -> _Track | None:
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

    def _ensure_accepted(self, track: _Track, venue_order_id: str | None, ts_ms=None) -> None:
        if venue_order_id and not track.venue_order_id:
            track.venue_order_id = str(venue_order_id)
            self._by_venue_id[track.venue_order_id] = track.cid
        if not track.accepted and track.venue_order_id:
            track.accepted = True
            self.generate_order_accepted(track.strategy_id, track.instrument_id, ClientOrderId(track.cid),
                                         VenueOrderId(track.venue_order_id), self._ts(ts_ms))

    async def _apply_order(self, track: _Track, o: dict) -> None:
        """An order snapshot (REST response, fetch, or user stream): accept, fill, close, in that order."""
        status = o.get("status")
        if status == "rejected":
            self._reject(track, str((o.get("info") or {}).get("msg") or "rejected by the exchange"))
            return
        self._ensure_accepted(track, o.get("id"), o.get("timestamp"))
        for t in o.get("trades") or []:
            if t.get("id"):
                self._apply_trade(track, t)
        filled = _dec(o.get("filled"))
        if filled > track.venue_filled:
            track.venue_filled = filled
        if status in ("canceled", "expired"):
            track.pending_terminal = status
        if track.venue_filled > track.filled:
            # the fills are on their way on the trade stream; fetch them if they do not arrive
            self.create_task(self._trades_fallback(track), log_msg=f"trades fallback {track.cid}")
        else:
            self._maybe_close(track)

    def _maybe_close(self, track: _Track, ts_ms=None) -> None:
        if track.terminal or track.pending_terminal is None or track.filled < track.venue_filled:
            return
        track.terminal = True
        vid = VenueOrderId(track.venue_order_id) if track.venue_order_id else None
        if track.pending_terminal == "canceled":
            self.generate_order_canceled(track.strategy_id, track.instrument_id, ClientOrderId(track.cid), vid,
                                         self._ts(ts_ms))
        else:
            self.generate_order_expired(track.strategy_id, track.instrument_id, ClientOrderId(track.cid), vid,
                                        self._ts(ts_ms))

    def _apply_trade(self, track: _Track, t: dict) -> None:
        tid = str(t.get("id"))
        if tid in track.trade_ids or track.terminal and track.filled >= track.quantity:
            return
        inst = self._instruments[track.instrument_id]
        qty = _dec(t.get("amount"))
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

    async def _trades_fallback(self, track: _Track) -> None:
        await asyncio.sleep(self.opts.trades_fallback_s)
        if track.filled < track.venue_filled:
            await self._fetch_trades(track)
        self._maybe_close(track)

    async def _fetch_trades(self, track: _Track) -> None:
        if not track.venue_order_id:
            return
        async with track.lock:
            try:
                trades = await self.ex.fetch_my_trades(track.symbol, params={"orderId": track.venue_order_id})
            except ccxt.BaseError as e:
                self._log.warning(f"{track.cid}: trades query failed: {type(e).__name__}: {e}")
                return
            for t in trades:
                if str(t.get("order")) == track.venue_order_id:
                    self._apply_trade(track, t)

    async def _sync_track(self, track: _Track) -> None:
        """REST truth for one order: its state, then its trades."""
        try:
            if track.venue_order_id:
                o = await self.ex.fetch_order(track.venue_order_id, track.symbol)
            else:
                o = await self.ex.fetch_order(None, track.symbol, {"clientOrderId": track.cid})
        except ccxt.OrderNotFound:
            return
        except ccxt.BaseError as e:
            self._log.warning(f"{track.cid}: order query failed: {type(e).__name__}: {e}")
            return
        track.outcome_unknown = False
        filled = _dec(o.get("filled"))
        if filled > track.filled:
            track.venue_filled = max(track.venue_filled, filled)
            self._ensure_accepted(track, o.get("id"), o.get("timestamp"))
            await self._fetch_trades(track)
        await self._apply_order(track, o)

    # =================================================================================================================
    # user streams
    # =================================================================================================================
    async def _stream_loop(self, name: str, watch, handler) -> None:
        delay = self.opts.reconnect_initial_s
        while self._running:
            try:
                res = await watch()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not self._running:
                    return
                if self._stream_down.get(name) is None:
                    self._stream_down[name] = time.monotonic()
                self.stream_reconnects += 1
                self._log.warning(f"{name} stream: {type(e).__name__}: {e}; reconnecting in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.opts.reconnect_max_s)
                # the resubscription happens on the next watch; resync what may have been missed meanwhile
                self.create_task(self._resync(name), log_msg=f"{self.id}: resync after {name} drop")
                continue
            if self._stream_down.get(name) is not None:
                self._log.info(f"{name} stream back after {time.monotonic() - self._stream_down[name]:.1f}s")
                self._stream_down[name] = None
            delay = self.opts.reconnect_initial_s
            try:
                handler(res)
            except Exception as e:  # a bad message must not kill the stream
                self._log.exception(f"{name} stream handler failed", e)

    async def _resync(self, why: str) -> None:
        await asyncio.sleep(0.5)  # let the watch reconnect first
        for track in [t for t in self._tracks.values() if not t.terminal]:
            await self._sync_track(track)
        await self._refresh(publish=True, positions=True)
        if self.kind == "perp":
            await self._book_funding()
            await self._catch_up_liquidations()

    def _on_orders(self, orders: list[dict]) -> None:
        for o in orders:
            sym = o.get("symbol")
            if sym not in self._by_symbol:
                continue
            cid = o.get("clientOrderId")
            if self.kind == "perp" and cid and str(cid).startswith(("autoclose-", "adl_autoclose")):
                self._on_liquidation_order(o)
                continue
            track = self._track_for(cid, str(o.get("id")) if o.get("id") else None)
            if track is None:
                self._log.info(f"order {cid} / {o.get('id')} on {sym} is not this node's: reported for reconciliation")
                self._send_external_report(o)
                continue
            self.create_task(self._apply_order(track, o), log_msg=f"order update {track.cid}")

    def _on_trades(self, trades: list[dict]) -> None:
        for t in trades:
            if t.get("symbol") not in self._by_symbol:
                continue
            info = t.get("info") or {}
            raw = info.get("o") if isinstance(info.get("o"), dict) else info
            cid = raw.get("c") if isinstance(raw, dict) else None
            if cid and str(cid).startswith(("autoclose-", "adl_autoclose")):
                continue  # handled as a liquidation order
            track = self._track_for(cid, str(t.get("order")) if t.get("order") else None)
            if track is None:
                continue
            self._apply_trade(track, t)

    def _on_balance(self, bal: dict) -> None:
        info = bal.get("info") or {}
        if self.kind == "perp" and isinstance(info.get("a"), dict) and info["a"].get("m") == "FUNDING_FEE":
            self._loop.call_later(0.2, lambda: self.create_task(self._book_funding(), log_msg="funding booking"))
        self._schedule_refresh(positions=self.kind == "perp")

    def _on_positions(self, positions: list[dict]) -> None:
        changed = False
        for p in positions:
            xid = self._xid_of(p.get("symbol"))
            if xid is None:
                continue
            self._set_position(xid, self._norm_position(p, self._positions.get(xid)))
            changed = True
        if changed:
            self._schedule_refresh(positions=False)

    # =================================================================================================================
    # account, positions, margin state
    # =================================================================================================================
    def _schedule_refresh(self, positions: bool = True) -> None:
        if not self._running or self._refresh_handle is not None:
            return

        def fire():
            self._refresh_handle = None
            self.create_task(self._refresh(publish=True, positions=positions), log_msg=f"{self.id}: refresh")

        self._refresh_handle = self._loop.call_later(self.opts.refresh_debounce_s, fire)

    async def _refresh(self, publish: bool = True, positions: bool = True) -> None:
        async with self._refresh_lock:
            fills_before = self._fills_seen
            try:
                bal = await self.ex.fetch_balance()
                if self.kind == "perp" and positions:
                    pos = await self.ex.fetch_positions(list(self._symbols.values()))
                    seen = set()
                    for p in pos:
                        xid = self._xid_of(p.get("symbol"))
                        if xid is not None:
                            self._set_position(xid, self._norm_position(p, self._positions.get(xid)))
                            seen.add(xid)
                    for xid in self._exchange_ids.values():
                        if xid not in seen:
                            prev = self._positions.get(xid)
                            self._set_position(xid, _Position(mode=prev.mode if prev else "isolated"))
            except ccxt.BaseError as e:
                self._log.warning(f"account refresh failed: {type(e).__name__}: {e}")
                return
            if self._fills_seen != fills_before:
                self._schedule_refresh(positions)  # read before one of our fills was applied: read again
                return
            self._publish_account(bal)
            if self.kind == "perp" and publish:
                for xid in self._exchange_ids.values():
                    self._publish_margin(xid)

    def _publish_account(self, bal: dict) -> None:
        ts = self._clock.timestamp_ns()
        if self.kind == "spot":
            self._balances = {}
            for code, total in (bal.get("total") or {}).items():
                if total or code == "USDT":
                    self._balances[code] = [float(bal.get("free", {}).get(code) or 0.0),
                                            float(bal.get("used", {}).get(code) or 0.0)]
            self._publish_spot_balances(ts)
            return
        info = bal.get("info") or {}
        asset = next((a for a in info.get("assets") or [] if a.get("asset") == "USDT"), None)
        if asset is not None:
            wallet = float(asset.get("walletBalance") or 0.0)
            avail = float(asset.get("availableBalance") or 0.0)
            init = float(asset.get("initialMargin") or 0.0)
            maint = float(asset.get("maintMargin") or 0.0)
            self._cross_wallet = float(asset.get("crossWalletBalance") or wallet)
        else:  # /fapi/v2/balance shape
            row = next((a for a in info if isinstance(a, dict) and a.get("asset") == "USDT"), {}) \
                if isinstance(info, list) else {}
            wallet = float(row.get("balance") or bal.get("USDT", {}).get("total") or 0.0)
            avail = float(row.get("availableBalance") or bal.get("USDT", {}).get("free") or 0.0)
            self._cross_wallet = float(row.get("crossWalletBalance") or wallet)
            init = maint = 0.0
        self._available = avail
        free = min(avail, wallet)
        balances = [AccountBalance(Money(wallet, USDT), Money(wallet - free, USDT), Money(free, USDT))]
        margins = [MarginBalance(Money(init, USDT), Money(maint, USDT))] if init or maint else []
        self.generate_account_state(balances, margins, True, ts)

    def _account_calculated(self) -> bool:
        """Whether nautilus moves this account's balances on fills itself. Never for an exchange-reported account,
        unless a backtest or sandbox client in the same process registered this venue name as calculated (a
        process-global registry in nautilus): then applying our fills too would count them twice."""
        acct = self._cache.account(self.account_id)
        return bool(acct is not None and acct.calculate_account_state)

    def _publish_spot_balances(self, ts: int) -> None:
        balances = []
        for code, (free, used) in self._balances.items():
            if free + used <= 0 and code != "USDT":
                continue
            cur = currency(code)
            free = max(free, 0.0)
            balances.append(AccountBalance(Money(free + used, cur), Money(used, cur), Money(free, cur)))
        if not balances:
            balances = [AccountBalance(Money(0, USDT), Money(0, USDT), Money(0, USDT))]
        self.generate_account_state(balances, [], True, ts)

    def _apply_fill_to_balances(self, inst: Instrument, side: OrderSide, qty: float, px: float, fee: float,
                                fee_code: str) -> None:
        base, quote = inst.base_currency.code, inst.quote_currency.code
        sign = 1.0 if side == OrderSide.BUY else -1.0
        for code, delta in ((base, sign * qty), (quote, -sign * qty * px), (fee_code, -fee)):
            entry = self._balances.setdefault(code, [0.0, 0.0])
            entry[0] += delta
        self._publish_spot_balances(self._clock.timestamp_ns())

    def _set_position(self, xid: str, pos: _Position) -> None:
        prev = self._positions.get(xid)
        if prev is not None and prev.side != 0:
            self._last_open[xid] = prev
        self._positions[xid] = pos

    def _xid_of(self, unified: str | None) -> str | None:
        iid = self._by_symbol.get(unified)
        return self._exchange_ids[iid] if iid is not None else None

    @staticmethod
    def _norm_position(p: dict, prev: _Position | None) -> _Position:
        info = p.get("info") or {}
        amt = info.get("pa", info.get("positionAmt"))
        if amt is None:
            contracts = float(p.get("contracts") or 0.0)
            amt = -contracts if p.get("side") == "short" else contracts
        amt = float(amt)
        entry = float(info.get("ep", info.get("entryPrice")) or p.get("entryPrice") or 0.0)
        wallet = info.get("iw", info.get("isolatedWallet"))
        wallet = float(wallet) if wallet not in (None, "") else float(p.get("collateral") or 0.0)
        mt = str(info.get("mt") or info.get("marginType") or p.get("marginMode") or
                 (prev.mode if prev else "isolated")).lower()
        mode = "isolated" if mt.startswith("iso") else "cross"
        return _Position(1 if amt > 0 else -1 if amt < 0 else 0, abs(amt), entry if amt else 0.0,
                         wallet if amt else 0.0, mode, int(p.get("timestamp") or 0))

    def _spot_free_usdt(self) -> float:
        from basisbot.live.instruments import SPOT_VENUE

        acct = self._cache.account_for_venue(SPOT_VENUE)
        if acct is None:
            return 0.0
        b = acct.balance_free(USDT)
        return b.as_double() if b is not None else 0.0

    def _publish_margin(self, xid: str, force: bool = False) -> None:
        pos = self._positions.get(xid) or _Position()
        perp_free, spot_free = max(self._available, 0.0), self._spot_free_usdt()
        wallet = pos.wallet
        if pos.mode == "cross" and pos.side != 0:
            # cross: the position is backed by the cross wallet (less what other cross positions need: one carry
            # symbol per cross account is assumed here; several would need their losses and maintenance subtracted)
            wallet = self._cross_wallet
        key = (pos.side, round(pos.qty, 12), round(pos.entry, 8), round(wallet, 6), pos.mode,
               round(perp_free, 2), round(spot_free, 2))
        if not force and self._published.get(xid) == key:
            return
        self._published[xid] = key
        state = PerpMarginState(symbol=xid, mode=pos.mode, side=pos.side, qty=pos.qty, entry_price=pos.entry,
                                wallet=wallet, perp_free=perp_free, spot_free=spot_free,
                                ts_ns=self._clock.timestamp_ns())
        self._msgbus.publish(margin_topic(xid), state)

    # =================================================================================================================
    # margin requests (ADJUST_MARGIN_ENDPOINT)
    # =================================================================================================================
    def _on_adjust_margin_request(self, req: AdjustMarginRequest) -> None:
        self.create_task(self._adjust_margin(req), log_msg=f"adjust margin {req.symbol}")

    async def _adjust_margin(self, req: AdjustMarginRequest) -> None:
        lock = self._margin_locks.setdefault(req.symbol, asyncio.Lock())
        async with lock:
            iid = next((i for i, x in self._exchange_ids.items() if x == req.symbol), None)
            pos = self._positions.get(req.symbol)
            if iid is None or pos is None or pos.side == 0 or req.amount <= 0:
                self._reply(req, 0.0, 0.0, False, "no open position or non-positive amount")
                return
            amount = math.ceil(req.amount * 100) / 100  # USDT cents, rounded up: reach the target distance
            moved_spot = 0.0
            try:
                bal = await self.ex.fetch_balance()
                avail = float((bal.get("USDT") or {}).get("free") or 0.0)
                shortfall = amount - avail if pos.mode == "isolated" else amount
                if shortfall > 0 and req.from_spot and self.opts.allow_transfer_from_spot:
                    spot_bal = await self.session.spot.fetch_balance()
                    spot_free = float((spot_bal.get("USDT") or {}).get("free") or 0.0)
                    moved_spot = math.floor(min(shortfall, spot_free) * 100) / 100
                    if moved_spot > 0:
                        await self.ex.transfer("USDT", moved_spot, "spot", "linear")  # MAIN -> UMFUTURE
                        self._log.info(f"{req.symbol}: moved {moved_spot:.2f} USDT spot -> futures ({req.reason})")
                from_perp = 0.0
                if pos.mode == "isolated":
                    add = math.floor(min(amount, avail + moved_spot) * 100) / 100
                    if add > 0:
                        await self.ex.add_margin(self._symbols[iid], add)
                    from_perp = max(0.0, add - moved_spot)
                    moved = add
                else:
                    moved = moved_spot  # cross: the wallet backs the position directly
            except ccxt.BaseError as e:
                self._log.error(f"{req.symbol}: margin request {amount:.2f} failed: {type(e).__name__}: {e}")
                self._reply(req, 0.0, moved_spot, False, f"{type(e).__name__}: {e}")
                await self._refresh(publish=True)
                return
            self._reply(req, from_perp, moved_spot, moved > 0, f"added {moved:.2f} of {req.amount:.2f} USDT")
            await self._refresh(publish=True)

    def _reply(self, req: AdjustMarginRequest, from_perp: float, from_spot: float, ok: bool, msg: str) -> None:
        reply = MarginAdjusted(req.symbol, req.amount, from_perp, from_spot, ok, msg, self._clock.timestamp_ns())
        self.margin_replies.append(reply)
        self._msgbus.publish(margin_topic(req.symbol) + ".adjusted", reply)

    # =================================================================================================================
    # liquidations
    # =================================================================================================================
    def _on_liquidation_order(self, o: dict) -> None:
        vid = str(o.get("id"))
        if vid in self._liquidations_seen or o.get("status") not in ("closed", "filled"):
            return
        self._liquidations_seen.add(vid)
        xid = self._xid_of(o.get("symbol"))
        pos = self._positions.get(xid) or _Position()
        if pos.side == 0:
            pos = self._last_open.get(xid) or pos  # the exchange's position update may have come first
        qty = float(o.get("filled") or o.get("amount") or 0.0)
        price = float(o.get("average") or o.get("price") or 0.0)
        side = pos.side or (-1 if o.get("side") == "buy" else 1)
        self._log.error(f"{xid}: LIQUIDATED by the exchange: {side * qty:+g} at {price}, isolated wallet "
                        f"{pos.wallet:.2f} lost")
        self._send_external_report(o)
        liq = Liquidated(xid, side, qty, price, pos.wallet, self._ts(o.get("timestamp")))
        self.liquidations.append(liq)
        self._msgbus.publish(liquidation_topic(xid), liq)
        self._schedule_refresh()

    async def _catch_up_liquidations(self) -> None:
        since = self.session.time.venue_now_ms() - 3_600_000
        for sym in self._symbols.values():
            try:
                orders = await self.ex.fetch_orders(sym, since)
            except ccxt.BaseError:
                continue
            for o in orders:
                if str(o.get("clientOrderId") or "").startswith(("autoclose-", "adl_autoclose")):
                    self._on_liquidation_order(o)

    def _send_external_report(self, o: dict) -> None:
        report = self._order_report(o)
        if report is not None:
            self._send_order_status_report(report)

    # =================================================================================================================
    # funding income
    # =================================================================================================================
    async def _schedule_funding_checks(self) -> None:
        for iid, sym in self._symbols.items():
            xid = self._exchange_ids[iid]
            try:
                fr = await self.ex.fetch_funding_rate(sym)
            except ccxt.BaseError as e:
                self._log.warning(f"{xid}: next funding time unknown ({e}); relying on the stream and polling")
                continue
            nxt = fr.get("fundingTimestamp") or (fr.get("info") or {}).get("nextFundingTime")
            if nxt:
                self._arm_funding_timer(xid, int(nxt))

    def _arm_funding_timer(self, xid: str, next_ms: int) -> None:
        if self._next_funding_ms.get(xid) == next_ms:
            return
        self._next_funding_ms[xid] = next_ms
        old = self._funding_timers.pop(xid, None)
        if old:
            old.cancel()
        # position just before the settlement (the income entry does not carry it)
        pre_delay = (self.session.time.to_local(next_ms - 1000) - self._clock.timestamp_ns()) / NS
        book_delay = (self.session.time.to_local(next_ms) - self._clock.timestamp_ns()) / NS + \
            self.opts.booking_delay_s

        def snap():
            p = self._positions.get(xid)
            self._pre_settlement_qty[xid] = (p.side * p.qty) if p else 0.0

        if pre_delay > 0:
            self._loop.call_later(pre_delay, snap)
        else:
            snap()

        def book():
            self.create_task(self._book_funding(), log_msg="funding booking")
            self.create_task(self._schedule_funding_checks(), log_msg="next funding time")

        self._funding_timers[xid] = self._loop.call_later(max(book_delay, 0.0), book)

    async def _book_funding(self) -> None:
        async with self._book_lock:  # stream, timers, resyncs and the poll loop may all ask at once
            for iid, sym in self._symbols.items():
                await self._book_funding_symbol(self._exchange_ids[iid], sym)

    async def _book_funding_symbol(self, xid: str, sym: str) -> None:
        since = self._funding_since.get(xid, self._funding_since_ms)
        try:
            rows = await self.ex.fetch_funding_history(sym, since)
        except ccxt.BaseError as e:
            self._log.warning(f"{xid}: funding history query failed: {type(e).__name__}: {e}")
            return
        pending: list[int] = []
        newest = since
        for row in rows:
            info = row.get("info") or {}
            income_id = str(row.get("id") or info.get("tranId") or f"{xid}-{row.get('timestamp')}")
            ts_ms = int(row.get("timestamp") or info.get("time") or 0)
            newest = max(newest, ts_ms + 1)
            if income_id in self._funding_seen:
                continue
            payment = float(row.get("amount") or 0.0)
            rate = mark = None
            with contextlib.suppress(ccxt.BaseError, IndexError, TypeError, ValueError, KeyError):
                hist = await self.ex.fetch_funding_rate_history(sym, ts_ms - 60_000, 5)
                near = min(hist, key=lambda h: abs(int(h["timestamp"]) - ts_ms)) if hist else None
                if near is not None and abs(int(near["timestamp"]) - ts_ms) <= 60_000:
                    rate = float(near["fundingRate"])
                    mp = (near.get("info") or {}).get("markPrice")
                    mark = float(mp) if mp not in (None, "") else None
            qty = self._pre_settlement_qty.get(xid)
            if rate is None and qty and mark:
                rate = -payment / (qty * mark)
            if rate is None:
                self._log.warning(f"{xid}: funding {payment:+.6f} at {ts_ms}: settled rate not available yet; "
                                  "will retry")
                pending.append(ts_ms)
                continue
            self._funding_seen.add(income_id)
            msg = FundingSettled(symbol=xid, settlement_ts_ns=self.session.time.to_local(ts_ms), rate=rate,
                                 payment=payment, source=f"binance:income:{income_id}", position_qty=qty,
                                 mark_price=mark)
            self.funding_published.append(msg)
            self._log.info(f"{xid}: funding settled {payment:+.6f} USDT at rate {rate:.8f} (income {income_id})")
            self._msgbus.publish(FUNDING_SETTLED_TOPIC, msg)
        # read on from the newest entry (the exchange pages from startTime), or from the first one still unpriced
        self._funding_since[xid] = min(pending) if pending else newest

    # =================================================================================================================
    # polling fallback
    # =================================================================================================================
    async def _poll_loop(self) -> None:
        last_funding = time.monotonic()
        while self._running:
            await asyncio.sleep(self.opts.poll_interval_s)
            now = time.monotonic()
            for track in [t for t in self._tracks.values() if not t.terminal and not t.outcome_unknown]:
                if now - track.sent_at >= self.opts.poll_interval_s:
                    await self._sync_track(track)
            if any(v is not None for v in self._stream_down.values()):
                await self._refresh(publish=True)
            if self.kind == "perp" and now - last_funding >= self.opts.funding_poll_s:
                last_funding = now
                await self._book_funding()

    # =================================================================================================================
    # reconciliation reports
    # =================================================================================================================
    def _ts(self, venue_ms) -> int:
        now = self._clock.timestamp_ns()
        if not venue_ms:
            return now
        return min(self.session.time.to_local(int(venue_ms)), now)

    def _order_report(self, o: dict) -> OrderStatusReport | None:
        iid = self._by_symbol.get(o.get("symbol"))
        if iid is None or not o.get("id"):
            return None
        inst = self._instruments[iid]
        amount = float(o.get("amount") or 0.0)
        if amount <= 0:
            return None
        filled = float(o.get("filled") or 0.0)
        status = _STATUS.get(o.get("status"), OrderStatus.ACCEPTED)
        if status == OrderStatus.ACCEPTED and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        otype = OrderType.LIMIT if str(o.get("type") or "").lower().startswith("limit") else OrderType.MARKET
        tif = _TIF.get(str(o.get("timeInForce") or "GTC").upper(), TimeInForce.GTC)
        if otype == OrderType.MARKET and tif not in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK):
            tif = TimeInForce.GTC
        price = o.get("price") if otype == OrderType.LIMIT else None
        avg = o.get("average")
        ts_acc = self._ts(o.get("timestamp"))
        ts_last = self._ts(o.get("lastUpdateTimestamp") or o.get("lastTradeTimestamp") or o.get("timestamp"))
        cid = o.get("clientOrderId")
        return OrderStatusReport(
            account_id=self.account_id,
            instrument_id=iid,
            client_order_id=ClientOrderId(str(cid)) if cid else None,
            venue_order_id=VenueOrderId(str(o["id"])),
            order_side=OrderSide.BUY if o.get("side") == "buy" else OrderSide.SELL,
            order_type=otype,
            time_in_force=tif,
            order_status=status,
            quantity=Quantity(amount, inst.size_precision),
            filled_qty=Quantity(filled, inst.size_precision),
            price=Price(float(price), inst.price_precision) if price else None,
            avg_px=Decimal(str(avg)) if avg else None,
            reduce_only=bool(o.get("reduceOnly")),
            post_only=bool(o.get("postOnly")),
            report_id=UUID4(),
            ts_accepted=ts_acc,
            ts_last=max(ts_last, ts_acc),
            ts_init=self._clock.timestamp_ns(),
        )

    def _fill_report(self, t: dict) -> FillReport | None:
        iid = self._by_symbol.get(t.get("symbol"))
        if iid is None or not t.get("id") or not t.get("order"):
            return None
        inst = self._instruments[iid]
        fee = t.get("fee") or {}
        info = t.get("info") or {}
        cid = info.get("clientOrderId") or (info.get("c") if isinstance(info, dict) else None)
        return FillReport(
            account_id=self.account_id,
            instrument_id=iid,
            venue_order_id=VenueOrderId(str(t["order"])),
            trade_id=TradeId(str(t["id"])),
            order_side=OrderSide.BUY if t.get("side") == "buy" else OrderSide.SELL,
            last_qty=Quantity(float(t["amount"]), inst.size_precision),
            last_px=Price(float(t["price"]), inst.price_precision),
            commission=Money(float(fee.get("cost") or 0.0), currency(fee.get("currency") or "USDT")),
            liquidity_side=LiquiditySide.MAKER if t.get("takerOrMaker") == "maker" else LiquiditySide.TAKER,
            client_order_id=ClientOrderId(str(cid)) if cid else None,
            report_id=UUID4(),
            ts_event=self._ts(t.get("timestamp")),
            ts_init=self._clock.timestamp_ns(),
        )

    def _wanted(self, instrument_id: InstrumentId | None) -> list[InstrumentId]:
        if instrument_id is None:
            return list(self._symbols)
        return [instrument_id] if instrument_id in self._symbols else []

    @staticmethod
    def _since_ms(start) -> int | None:
        if start is None:
            return None
        return int(start.timestamp() * 1000)

    async def generate_order_status_report(self, command: GenerateOrderStatusReport) -> OrderStatusReport | None:
        iid = command.instrument_id
        if iid not in self._symbols:
            return None
        try:
            if command.venue_order_id is not None:
                o = await self.ex.fetch_order(command.venue_order_id.value, self._symbols[iid])
            elif command.client_order_id is not None:
                o = await self.ex.fetch_order(None, self._symbols[iid], {"clientOrderId": command.client_order_id.value})
            else:
                return None
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as e:
            self._log.warning(f"order status report failed: {type(e).__name__}: {e}")
            return None
        return self._order_report(o)

    async def generate_order_status_reports(self, command: GenerateOrderStatusReports) -> list[OrderStatusReport]:
        out = []
        since = self._since_ms(command.start)
        for iid in self._wanted(command.instrument_id):
            sym = self._symbols[iid]
            try:
                orders = (await self.ex.fetch_open_orders(sym) if command.open_only
                          else await self.ex.fetch_orders(sym, since))
            except ccxt.BaseError as e:
                self._log.error(f"order reports for {sym} failed: {type(e).__name__}: {e}")
                continue
            for o in orders:
                r = self._order_report(o)
                if r is not None:
                    out.append(r)
        self._log.info(f"Generated {len(out)} order status reports")
        return out

    async def generate_fill_reports(self, command: GenerateFillReports) -> list[FillReport]:
        out = []
        since = self._since_ms(command.start)
        for iid in self._wanted(command.instrument_id):
            sym = self._symbols[iid]
            params = {"orderId": command.venue_order_id.value} if command.venue_order_id else {}
            try:
                trades = await self.ex.fetch_my_trades(sym, since, None, params)
            except ccxt.BaseError as e:
                self._log.error(f"fill reports for {sym} failed: {type(e).__name__}: {e}")
                continue
            for t in trades:
                r = self._fill_report(t)
                if r is not None:
                    out.append(r)
        self._log.info(f"Generated {len(out)} fill reports")
        return out

    async def generate_position_status_reports(self, command: GeneratePositionStatusReports
                                               ) -> list[PositionStatusReport]:
        out = []
        now = self._clock.timestamp_ns()
        wanted = self._wanted(command.instrument_id)
        try:
            if self.kind == "perp":
                positions = await self.ex.fetch_positions([self._symbols[i] for i in wanted]) if wanted else []
                held = {}
                for p in positions:
                    xid = self._xid_of(p.get("symbol"))
                    if xid is None:
                        continue
                    pos = self._norm_position(p, self._positions.get(xid))
                    self._set_position(xid, pos)
                    held[self._by_symbol[p["symbol"]]] = pos
                for iid in wanted:
                    inst = self._instruments[iid]
                    pos = held.get(iid)
                    if pos is None or pos.side == 0:
                        out.append(PositionStatusReport.create_flat(self.account_id, iid, inst.size_precision, now))
                        continue
                    out.append(PositionStatusReport(
                        account_id=self.account_id, instrument_id=iid,
                        position_side=PositionSide.LONG if pos.side > 0 else PositionSide.SHORT,
                        quantity=Quantity(pos.qty, inst.size_precision), report_id=UUID4(), ts_last=now,
                        ts_init=now, avg_px_open=Decimal(str(pos.entry)) if pos.entry else None))
            else:
                # a spot "position" is the base asset held (the account is the strategy's: see README)
                bal = await self.ex.fetch_balance()
                for iid in wanted:
                    inst = self._instruments[iid]
                    code = inst.base_currency.code
                    total = float((bal.get("total") or {}).get(code) or 0.0)
                    step = inst.size_increment.as_double()
                    qty = math.floor(total / step + 1e-9) * step if step > 0 else total
                    if qty < step:
                        out.append(PositionStatusReport.create_flat(self.account_id, iid, inst.size_precision, now))
                        continue
                    out.append(PositionStatusReport(
                        account_id=self.account_id, instrument_id=iid, position_side=PositionSide.LONG,
                        quantity=Quantity(qty, inst.size_precision), report_id=UUID4(), ts_last=now, ts_init=now,
                        avg_px_open=await self._spot_avg_cost(iid, qty)))
        except ccxt.BaseError as e:
            self._log.error(f"position reports failed: {type(e).__name__}: {e}")
            return []
        self._log.info(f"Generated {len(out)} position status reports")
        return out

    async def _spot_avg_cost(self, iid: InstrumentId, qty: float) -> Decimal | None:
        """Average price of the most recent buys that make up `qty` (None when the history does not cover it)."""
        try:
            trades = await self.ex.fetch_my_trades(self._symbols[iid])
        except ccxt.BaseError:
            return None
        need, cost = qty, 0.0
        for t in sorted(trades, key=lambda x: x.get("timestamp") or 0, reverse=True):
            if t.get("side") != "buy":
                continue
            take = min(need, float(t["amount"]))
            cost += take * float(t["price"])
            need -= take
            if need <= 1e-12:
                break
        if need > qty * 0.5 or qty - need <= 0:
            return None
        return Decimal(str(round(cost / (qty - need), 8)))

    # introspection for tests / status
    def track(self, cid: str) -> _Track | None:
        return self._tracks.get(cid)

    def positions(self) -> dict[str, _Position]:
        return dict(self._positions)


__all__ = ["CcxtExecutionClient", "ExecOptions"]
