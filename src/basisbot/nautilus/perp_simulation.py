"""What nautilus' BacktestEngine does not simulate for a USDT-margined perpetual, as `SimulationModule`s (one per venue):

- `PerpMarginModule` (perp venue): an isolated wallet per position (initial margin from leverage + funding + margin
  added), the venue's tiered maintenance margin and liquidation price (the profile's formula), checked against the
  worst mark inside each bar; a liquidation closes the position AT the liquidation price through the matching engine
  and the isolated wallet is lost. Cross mode uses the whole perp wallet instead. It also serves the strategy's
  `AdjustMarginRequest`s: margin comes from free perp balance first, then is moved from the spot account (a unified
  account, OKX: from the account's available USDT, no transfer).
  Given the data's settlements (backtest), it also applies funding: at each real settlement in the data, every open
  perp position pays or receives -position_qty × mark_price × rate, credited once to the perp account (and to the
  isolated wallet). Paper trading plugs its own funding module (on the live settlement times) beside it instead.
- `SpotCollateralModule` (spot venue): gives the ledger a handle on the spot account, so margin transfers move real
  balance between the two simulated accounts (nothing is created from nothing).

Neither has per-data-point work: `detach_from_loop` takes them out of the exchange's per-data-point calls.

The modules share one `PerpLedger`. They run inside the engine's loop (time alerts, handlers on the message bus),
so all state changes are ordered with the market data and the strategy's orders.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.enums import LiquiditySide, OrderSide, PositionSide, TimeInForce
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId
from nautilus_trader.model.objects import Currency, Money, Price
from nautilus_trader.model.orders import LimitOrder

from basisbot.core import isolated as iso_wallet
from basisbot.core import margin
from basisbot.core.carry import funding_payment
from basisbot.core.mark_watch import EVERY_MARK_QUIET, MarkBand, mark_watch
from basisbot.nautilus.messages import (
    ADJUST_MARGIN_ENDPOINT,
    AdjustMarginRequest,
    Liquidated,
    MarginAdjusted,
    PerpMarginState,
    liquidation_topic,
    margin_topic,
)
from basisbot.venues.profile import LiquidationPrice

USDT = Currency.from_str("USDT")


@dataclass
class PerpSymbol:
    """Static facts the perp venue needs about one symbol."""

    symbol: str
    instrument_id: InstrumentId
    table: margin.BracketTable
    leverage: int
    mode: str  # "isolated" | "cross"
    # worst mark inside each bar, keyed by the bar's close time (ns): (highest, lowest)
    worst: dict[int, tuple[float, float]] = field(default_factory=dict)


@dataclass
class _PositionBook:
    side: int = 0
    qty: float = 0.0
    entry: float = 0.0
    wallet: float = 0.0  # isolated wallet (isolated mode only)
    opened_ns: int = 0
    last_checked_bar: int = 0
    version: int = 0  # bumped on every change (side, size, entry, wallet): what publishing and caches key on
    # the marks the venue need not look at for this position (`basisbot.core.mark_watch`); every change opens it
    band: MarkBand = field(default_factory=MarkBand)

    def changed(self) -> None:
        """Side, size, entry or wallet changed: a new version, and the venue looks at the next mark."""
        self.version += 1
        self.band.wake()

    def reset(self) -> None:
        """Flat again; the version keeps counting (and the band is the same) so the change is always published."""
        version, band = self.version, self.band
        self.__init__(band=band)
        self.version = version
        self.changed()


@dataclass
class FundingRow:
    ts_ns: int  # the settlement's exact time from the data
    symbol: str
    rate: float
    mark_price: float
    position_qty: float
    payment: float


@dataclass
class LiquidationRow:
    ts_ns: int
    symbol: str
    side: int
    qty: float
    price: float
    entry: float
    wallet_lost: float
    bar_worst: float
    insurance_loss: float  # what was taken beyond the fill at the liquidation price (the margin left at LP)


@dataclass
class TransferRow:
    ts_ns: int
    symbol: str
    requested: float
    from_perp: float
    from_spot: float
    reason: str


class PerpLedger:
    """Shared state of the simulated perp venue: isolated wallets, and handles on both simulated exchanges."""

    def __init__(self, symbols: list[PerpSymbol], liquidation_price: LiquidationPrice = margin.liquidation_price,
                 unified: bool = False):
        """`liquidation_price` is the venue profile's isolated formula (side, qty, entry, wallet, tier table).
        `unified`: the venue holds both legs' money in one account (OKX, `AccountModel.UNIFIED`): margin added to
        an isolated position comes from the account's available USDT with no transfer (the engine's spot and perp
        accounts are two books of that one account: their balances move together, nothing is reported as a transfer);
        otherwise separate wallets with transfers from spot (Binance)."""
        self.formula = liquidation_price  # the venue's isolated liquidation price (side, qty, entry, wallet, table)
        self.unified = unified
        self.symbols = {s.symbol: s for s in symbols}
        self.by_instrument = {s.instrument_id: s for s in symbols}
        self.books = {s.symbol: _PositionBook() for s in symbols}
        self.perp_exchange = None
        self.spot_exchange = None
        # the latest mark of each symbol, read only for cross positions (the margin module plugs in the cache's)
        self.marks: Callable[[], dict[str, float]] = dict
        self.funding: list[FundingRow] = []
        self.liquidations: list[LiquidationRow] = []
        self.transfers: list[TransferRow] = []
        self.settlements_seen: dict[str, int] = {s.symbol: 0 for s in symbols}

    # -- balances -------------------------------------------------------------------------------------------------
    @staticmethod
    def _usdt(exchange) -> tuple[float, float]:
        account = exchange.get_account()
        bal = account.balance(USDT) if account is not None else None
        if bal is None:
            return 0.0, 0.0
        return bal.total.as_double(), bal.free.as_double()

    def perp_total(self) -> float:
        return self._usdt(self.perp_exchange)[0]

    def spot_free(self) -> float:
        return self._usdt(self.spot_exchange)[1] if self.spot_exchange is not None else 0.0

    def isolated_total(self) -> float:
        return sum(b.wallet for s, b in self.books.items() if self.symbols[s].mode == "isolated")

    def perp_unallocated(self) -> float:
        """Perp wallet not committed to isolated wallets (what can be added as margin without a transfer)."""
        return self.perp_total() - self.isolated_total()

    def effective_wallet(self, symbol: str) -> float:
        """Wallet backing this position: the isolated wallet, or (cross) the account wallet less what the other
        cross positions' losses and maintenance margins use."""
        book = self.books[symbol]
        spec = self.symbols[symbol]
        if spec.mode == "isolated":
            return book.wallet
        wallet = self.perp_total() - self.isolated_total()
        marks = self.marks()
        for other, ob in self.books.items():
            ospec = self.symbols[other]
            if other == symbol or ob.side == 0 or ospec.mode != "cross":
                continue
            mark = marks.get(other, ob.entry)
            wallet += margin.unrealized_pnl(ob.side, ob.qty, ob.entry, mark)
            wallet -= ospec.table.maintenance_at(ob.qty, mark)
        return wallet

    def liquidation_price(self, symbol: str) -> float | None:
        book = self.books[symbol]
        if book.side == 0:
            return None
        return self.formula(book.side, book.qty, book.entry, self.effective_wallet(symbol), self.symbols[symbol].table)

    def state(self, symbol: str, ts_ns: int) -> PerpMarginState:
        book = self.books[symbol]
        return PerpMarginState(
            symbol=symbol,
            mode=self.symbols[symbol].mode,
            side=book.side,
            qty=book.qty,
            entry_price=book.entry,
            wallet=self.effective_wallet(symbol) if book.side else book.wallet,
            perp_free=self.perp_unallocated(),
            spot_free=self.spot_free(),
            ts_ns=ts_ns,
        )


class _OutOfLoopModule(SimulationModule):
    """A module with no per-data-point work: registered with its exchange, it can leave the exchange's calls after
    every data point (`pre_process`/`process`)."""

    def detach_from_loop(self) -> None:
        modules = self.exchange.modules
        if self in modules:
            modules.remove(self)

    def process(self, ts_now: int) -> None:
        pass


class SpotCollateralModule(_OutOfLoopModule):
    """Registers the spot exchange with the ledger so margin transfers debit the real spot balance (it only hands the
    ledger the spot exchange)."""

    def __init__(self, ledger: PerpLedger):
        super().__init__(SimulationModuleConfig())
        self.ledger = ledger

    def register_venue(self, exchange) -> None:
        super().register_venue(exchange)
        self.ledger.spot_exchange = exchange

    def log_diagnostics(self, logger) -> None:
        pass

    def reset(self) -> None:
        pass


class PerpMarginModule(_OutOfLoopModule):
    """Isolated wallets, margin requests and liquidations for the perp venue; with `settlements`, funding too.

    `settlements[symbol]` is a time-ordered list of (sim_ts_ns, exact_ts_ns, rate). sim_ts is the time the engine
    applies it: the exact time, or just after the top of the hour the settlement belongs to when the exchange's
    jitter put it a few ms before (so the mark price used is the one at the settlement, never an hour stale). Each is
    applied once, to every open perp position, by a time alert at sim_ts: the engine runs it after the data points
    at sim_ts (the feed puts the settlement's own funding update there) and the venue's processing of them, before
    any later one. The module has no per-data-point work (`detach_from_loop`).
    """

    def __init__(self, ledger: PerpLedger, settlements: dict[str, list[tuple[int, int, float]]] | None = None):
        super().__init__(SimulationModuleConfig())
        self.ledger = ledger
        self._published: dict[str, int] = {}  # symbol -> the book version last published
        self.settlements = settlements or {}
        self._next = {s: 0 for s in self.settlements}
        self._due = self._earliest()
        self._alerts = 0
        # nautilus' test clock keeps every alert's callback for good: one bound method, made once
        self._on_due = self._settle_due

    def register_venue(self, exchange) -> None:
        super().register_venue(exchange)
        self.ledger.perp_exchange = exchange
        self._alert_due()
        self.ledger.marks = self._marks
        self.msgbus.register(ADJUST_MARGIN_ENDPOINT, self._on_adjust_margin)
        # Event-driven: react to the perp's mark prices (before the strategies: priority) and to position events,
        # instead of polling after every data point.
        self.msgbus.subscribe("events.position.*", self._on_position_event, priority=10)
        # one handler per symbol's marks, shared with the strategy's guard; called for the marks outside the book's
        # band (an open position near its liquidation price, a change to publish), before the strategy (priority)
        for spec in self.ledger.symbols.values():
            band = self.ledger.books[spec.symbol].band
            band.wake()  # the first mark publishes the (flat) state
            mark_watch(self.msgbus, spec.instrument_id).add(band, self._mark_handler(spec), priority=10)

    def _marks(self) -> dict[str, float]:
        """The latest mark of each symbol (the cache holds the last one the engine published); the ledger reads it
        for cross positions only."""
        marks = {}
        for symbol, spec in self.ledger.symbols.items():
            mp = self.cache.mark_price(spec.instrument_id)
            if mp is not None:
                marks[symbol] = mp.value.as_double()
        return marks

    # -- funding ----------------------------------------------------------------------------------------------------
    def _earliest(self) -> int:
        pending = [ev[self._next[s]][0] for s, ev in self.settlements.items() if self._next[s] < len(ev)]
        return min(pending) if pending else 2**63

    def _alert_due(self) -> None:
        """A time alert at the next settlement due (if any)."""
        if self._due < 2**63 and self.exchange is not None:
            self._alerts += 1
            self.clock.set_time_alert_ns(f"PerpMarginModule-settle-{self._alerts}", self._due, self._on_due)

    def _settle_due(self, event) -> None:
        """Apply every settlement due by now (those of several symbols at one time together), then wait for the next."""
        ts_now = event.ts_event
        total = None
        for symbol, events in self.settlements.items():
            i = self._next[symbol]
            while i < len(events) and events[i][0] <= ts_now:
                payment = self._settle(symbol, events[i])
                if payment is not None:
                    total = payment if total is None else total + payment
                i += 1
            self._next[symbol] = i
        if total is not None:
            # one account adjustment for the settlements applied together (the fixed-point sum of the payments:
            # the balance is exactly what one adjustment per payment gives)
            self.exchange.adjust_account(total)
        self._due = self._earliest()
        self._alert_due()

    def _settle(self, symbol: str, event: tuple[int, int, float]) -> Money | None:
        """Book one settlement (ledger, isolated wallet); returns the payment for the account, None when flat."""
        _, exact_ts, rate = event
        spec = self.ledger.symbols[symbol]
        self.ledger.settlements_seen[symbol] += 1
        qty = 0.0
        for pos in self.cache.positions_open(None, spec.instrument_id):
            qty += pos.signed_qty
        if qty == 0.0:
            return None
        mark = self.cache.mark_price(spec.instrument_id)
        if mark is None:
            raise RuntimeError(f"{symbol}: funding settlement at {exact_ts} with an open position but no mark price")
        mark_px = mark.value.as_double()
        payment = funding_payment(qty, mark_px, rate)
        book = self.ledger.books[symbol]
        if spec.mode == "isolated" and book.side != 0:
            book.wallet = iso_wallet.credit(book.wallet, payment)  # the venue credits it to the isolated margin
        book.changed()
        self.ledger.funding.append(FundingRow(exact_ts, symbol, rate, mark_px, qty, payment))
        return Money(payment, USDT)

    def _on_position_event(self, event) -> None:
        spec = self.ledger.by_instrument.get(event.instrument_id)
        if spec is not None and self._sync_position(spec.symbol, spec):
            self._publish(spec.symbol)

    def _mark_handler(self, spec: PerpSymbol):
        """The handler of one symbol's marks outside the book's band. The band is the side of the liquidation price
        the position is safe on (isolated: the price is cached per book version); it is open after every change to
        the book (to publish it and recompute the price), in cross mode (the price moves with every symbol's mark)
        and without intra-bar marks (each bar is checked at its worst mark)."""
        symbol, book, published = spec.symbol, self.ledger.books[spec.symbol], self._published
        cross = spec.mode == "cross"
        worst_of_bar = spec.worst
        ledger_lp = self.ledger.liquidation_price
        band = book.band
        cached = [-1, None]  # isolated: (book version, liquidation price); every change to the book bumps its version

        def liquidation_price() -> float | None:
            if cross:  # on the whole account, at every check
                return ledger_lp(symbol)
            if cached[0] != book.version:
                cached[0], cached[1] = book.version, ledger_lp(symbol)
            return cached[1]

        def on_mark(mark, px: float) -> None:
            side = book.side
            if side != 0:
                ts = mark.ts_event
                # a position opened at this mark's time did not live through it; each bar is checked once
                if book.opened_ns < ts and book.last_checked_bar != ts:
                    book.last_checked_bar = ts
                    lp = liquidation_price()
                    if lp is not None and lp > 0:
                        hi_lo = worst_of_bar.get(ts)
                        worst = px if hi_lo is None else (hi_lo[0] if side < 0 else hi_lo[1])
                        if (worst >= lp) if side < 0 else (worst <= lp):
                            self._liquidate(symbol, spec, lp, worst)
            # isolated state does not move with the mark: publish on change only; cross depends on every mark
            if cross or published.get(symbol) != book.version:
                self._publish(symbol)
            if cross or worst_of_bar:
                return  # every mark is looked at: the band stays open
            lp = liquidation_price() if book.side != 0 else None
            if lp is None or lp <= 0:
                band.set_quiet(*EVERY_MARK_QUIET)  # flat, or no liquidation price: nothing can happen
            elif book.side < 0:
                band.set_quiet(-math.inf, lp)  # short: liquidated at a mark >= lp
            else:
                band.set_quiet(lp, math.inf)  # long: liquidated at a mark <= lp
            band.rest()

        return on_mark

    def _publish(self, symbol: str) -> None:
        self._published[symbol] = self.ledger.books[symbol].version
        self.msgbus.publish(margin_topic(symbol), self.ledger.state(symbol, self.clock.timestamp_ns()))

    def _sync_position(self, symbol: str, spec: PerpSymbol) -> bool:
        """Follow the venue's position; in isolated mode its wallet follows it (`basisbot.core.isolated`)."""
        book = self.ledger.books[symbol]
        positions = self.cache.positions_open(None, spec.instrument_id)
        pos = positions[0] if positions else None
        qty = pos.quantity.as_double() if pos is not None else 0.0
        side = 0 if pos is None else (1 if pos.side == PositionSide.LONG else -1)
        if side == book.side and abs(qty - book.qty) < 1e-12:
            return False
        if side == 0:
            book.reset()
            return True
        entry = pos.avg_px_open
        book.changed()
        if spec.mode == "isolated":
            book.wallet = iso_wallet.follow_position(book.wallet, (book.side, book.qty, book.entry), (side, qty, entry),
                                                     spec.leverage).wallet
        if book.side != side:  # new position (or flipped)
            book.side, book.qty, book.entry = side, qty, entry
            book.opened_ns = pos.ts_opened
            return True
        book.qty, book.entry = qty, entry
        return True

    def _liquidate(self, symbol: str, spec: PerpSymbol, lp: float, worst: float) -> None:
        book = self.ledger.books[symbol]
        side, qty, entry = book.side, book.qty, book.entry  # the fill's position event resets the book
        wallet = self.ledger.effective_wallet(symbol)
        engine = self.exchange.get_matching_engine(spec.instrument_id)
        instrument = self.cache.instrument(spec.instrument_id)
        positions = self.cache.positions_open(None, spec.instrument_id)
        if not positions:
            return
        position = positions[0]
        before = self.ledger.perp_total()
        # A limit order at the liquidation price, filled in full at that price (a market order cannot rest in the
        # matching core, which accept_order requires to emit the venue's OrderAccepted).
        lp_price = Price(lp, instrument.price_precision)
        order = LimitOrder(
            trader_id=position.trader_id,
            strategy_id=position.strategy_id,
            instrument_id=position.instrument_id,
            # named by the symbol and the time: the same run gives the same id, and a paper session restarted on
            # its journal never reuses one (one liquidation per symbol and time: it flattens the book)
            client_order_id=ClientOrderId(f"LIQ-{symbol}-{self.clock.timestamp_ns()}"),
            order_side=OrderSide.BUY if position.side == PositionSide.SHORT else OrderSide.SELL,
            quantity=position.quantity,
            price=lp_price,
            init_id=UUID4(),
            ts_init=self.clock.timestamp_ns(),
            time_in_force=TimeInForce.GTC,
            reduce_only=True,
            tags=["LIQUIDATION"],
        )
        self.cache.add_order(order, position_id=position.id)
        engine.accept_order(order)
        engine.apply_fills(
            order=order,
            fills=[(lp_price, position.quantity)],
            liquidity_side=LiquiditySide.TAKER,
            venue_position_id=position.id,
            position=position,
        )
        # The fill realised the loss down to the liquidation price; the margin left (the maintenance margin) goes to
        # the insurance fund, so in total the whole isolated wallet is lost.
        fill_delta = self.ledger.perp_total() - before
        residual = min(0.0, -(wallet + fill_delta))
        if residual < 0:
            self.exchange.adjust_account(Money(residual, USDT))
        ts = self.clock.timestamp_ns()
        self.ledger.liquidations.append(
            LiquidationRow(ts, symbol, side, qty, lp, entry, wallet, worst, -residual)
        )
        self.msgbus.publish(liquidation_topic(symbol), Liquidated(symbol, side, qty, lp, wallet, ts))
        book.reset()

    # -- requests from the strategy -------------------------------------------------------------------------------
    def _on_adjust_margin(self, req: AdjustMarginRequest) -> None:
        book = self.ledger.books.get(req.symbol)
        spec = self.ledger.symbols.get(req.symbol)
        if book is None or spec is None or book.side == 0 or req.amount <= 0:
            self._reply(req, 0.0, 0.0, False, "no open position or non-positive amount")
            return
        isolated = spec.mode == "isolated"
        unified = self.ledger.unified
        spot_allowed = (req.from_spot or unified) and self.ledger.spot_exchange is not None
        top_up = margin.split_margin_request(
            req.amount, max(0.0, self.ledger.perp_unallocated() - 1e-9) if isolated else 0.0,
            max(0.0, self.ledger.spot_free() - 1e-9) if spot_allowed else 0.0,
            isolated=isolated, spot_allowed=spot_allowed)
        from_perp, from_spot = top_up.from_perp, top_up.from_spot
        if from_spot > 0:
            self.ledger.spot_exchange.adjust_account(Money(-from_spot, USDT))
            self.exchange.adjust_account(Money(from_spot, USDT))
        if isolated:
            book.wallet = iso_wallet.credit(book.wallet, from_perp + from_spot)
        book.changed()
        if unified:  # one account: all of it came from the account's available USDT, none was transferred
            from_perp, from_spot = from_perp + from_spot, 0.0
        self.ledger.transfers.append(
            TransferRow(self.clock.timestamp_ns(), req.symbol, req.amount, from_perp, from_spot, req.reason)
        )
        moved = from_perp + from_spot
        self._reply(req, from_perp, from_spot, moved > 0, f"added {moved:.2f} of {req.amount:.2f} USDT")
        self._publish(req.symbol)

    def _reply(self, req: AdjustMarginRequest, from_perp: float, from_spot: float, ok: bool, msg: str) -> None:
        self.msgbus.publish(
            margin_topic(req.symbol) + ".adjusted",
            MarginAdjusted(req.symbol, req.amount, from_perp, from_spot, ok, msg, self.clock.timestamp_ns()),
        )

    def log_diagnostics(self, logger) -> None:
        if self.settlements:
            logger.info(f"Funding settlements applied: {len(self.ledger.funding)}")
        logger.info(f"Liquidations: {len(self.ledger.liquidations)}")

    def reset(self) -> None:
        for b in self.ledger.books.values():
            b.reset()
        self._next = {s: 0 for s in self.settlements}
        self._due = self._earliest()
        self._alert_due()
