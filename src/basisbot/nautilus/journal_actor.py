"""JournalActor: the nautilus actor that writes the trading journal in live and paper mode (the journal's one writer).

It listens on the message bus, never calls a venue, and never blocks for long (each write is one small SQLite
transaction, ~0.1 ms; see `Journal.latency_stats()`):

- `JOURNAL_TOPIC` `JournalRecord`s published by `BasisCarryStrategy` (decision, guard, prediction, leg, booking);
- order events (`events.order.*`: initialized, submitted, accepted, rejected, denied, canceled, expired, filled, ...)
  → `orders` and `fills`; the leg (spot | perp) and the carry symbol come from the instrument id (the configured
  instruments first, else: a perp is an instrument whose symbol ends in ``-PERP`` or holds ``:`` (ccxt
  ``BTC/USDT:USDT``) or whose venue name contains PERP / FUTURE / SWAP / USDM);
- position events (`events.position.*`) and `margin_topic(symbol)` `PerpMarginState` → throttled `positions`
  snapshots: one when a leg quantity, the perp entry or the isolated wallet changes, else at most one every
  `snapshot_interval_s` (refreshing mark and liquidation distance);
- mark prices of the configured perps: at each settlement T announced by a prediction, the position and the last mark
  at or before T are captured as the ones the exchange uses;
- `FUNDING_SETTLED_TOPIC` `FundingSettled` (published by the live execution client after it reads the exchange's
  funding income) → reconciled against the predicted row: expected = -position_qty × mark × settled rate, a difference
  above both tolerances (`funding_abs_tol` USDT and `funding_rel_tol` relative) is flagged and logged as a warning.
  Those the client published while connecting (before actors start) it reads at start from
  `FUNDING_PUBLISHED_ENDPOINT`, so that a strategy's restore counts the settlements held while the node was down;
  one of those read only after the restores (the connection's read failed and was retried) makes the journal publish
  its count again on `settlements_held_topic(symbol)`;
- Threads: every handler runs on the node's event-loop thread. `on_start` binds the journal to that loop
  (`Journal.bind_loop`); a message delivered on another thread (a strategy handler run by a nautilus live-clock
  time alert is on a Rust/tokio thread, an APScheduler job in its thread pool, an executor callback...) is handed to
  the loop with ``call_soon_threadsafe`` and handled there, in order: no journal write ever runs off the loop.
- `RESTORE_ENDPOINT` `RestoreRequest` → `req.reply({"phase", "settlements_held", "pair", "position",
  "predictions"})` (or None when the journal knows nothing of the symbol). Actors start before strategies, so the
  endpoint is there when a strategy's `on_start` asks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import MarkPriceUpdate
from nautilus_trader.model.enums import PriceType, liquidity_side_to_str, order_side_to_str, order_type_to_str
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderEmulated,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderRejected,
    OrderReleased,
    OrderSubmitted,
    OrderTriggered,
    OrderUpdated,
)
from nautilus_trader.model.identifiers import InstrumentId

from basisbot.core import margin
from basisbot.journal.writer import Journal
from basisbot.nautilus.messages import (
    JOURNAL_TOPIC,
    RESTORE_ENDPOINT,
    JournalRecord,
    PerpMarginState,
    RestoreRequest,
    settlements_held_topic,
)
from basisbot.venues import DEFAULT_EXCHANGE, get_profile

FUNDING_SETTLED_TOPIC = "basisbot.funding.settled"
# an execution client answers with the `FundingSettled` it has published, to a callback: the journal reads those of
# the connection (the settlements that fell while the node was down) when it starts, before a strategy's restore
FUNDING_PUBLISHED_ENDPOINT = "basisbot.funding.published"
MARGIN_TOPICS = "basisbot.core.margin.*"
NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FundingSettled:
    """A settled funding payment as the exchange booked it (live: from the income history, FUNDING_FEE).

    `payment` is signed as the exchange books it (positive = received). `position_qty` (signed, short < 0) and
    `mark_price` are optional: when the execution client knows them for T they fill in what the journal lacks."""

    symbol: str
    settlement_ts_ns: int
    rate: float
    payment: float
    source: str  # e.g. "binance:income" or "sim"
    position_qty: float | None = None
    mark_price: float | None = None


SETTLEMENT_MATCH_S = 60.0  # the exchange stamps its income records within this of the settlement (venue seconds)


class JournalActorConfig(ActorConfig, frozen=True):
    journal_path: str
    # carry symbol -> [spot instrument id, perp instrument id] (e.g. {"BTCUSDT": ["BTCUSDT.<SPOT VENUE>",
    # "BTCUSDT-PERP.<PERP VENUE>"]}); instruments not listed are classified by name
    instruments: dict[str, list[str]] = {}
    # carry symbol -> leverage brackets in the venue's bracket shape, for the liquidation price in snapshots; a symbol
    # not given falls back to the venue profile's bundled tiers
    brackets: dict[str, list[dict]] = {}
    exchange: str = DEFAULT_EXCHANGE  # the venue profile: bundled tiers and the liquidation price formula
    snapshot_interval_s: float = 300.0
    funding_abs_tol: float = 0.01  # USDT
    funding_rel_tol: float = 1e-6
    settlement_match_s: float = SETTLEMENT_MATCH_S  # income stamped within this of T (local clock) belongs to T
    capture_settlement_marks: bool = True
    synchronous: str = "NORMAL"  # SQLite synchronous: NORMAL (no fsync per commit) or FULL
    mark_interval_s: float = 1.0  # latest mark per symbol (`marks`, what `status` shows): at most once per this (wall)


_STATUS = {
    OrderInitialized: "initialized", OrderDenied: "denied", OrderEmulated: "emulated", OrderReleased: "released",
    OrderSubmitted: "submitted", OrderAccepted: "accepted", OrderRejected: "rejected", OrderCanceled: "canceled",
    OrderExpired: "expired", OrderTriggered: "triggered", OrderPendingUpdate: None, OrderPendingCancel: None,
    OrderUpdated: None,
}


@dataclass
class _SymbolState:
    spot_qty: float | None = None
    perp_qty: float | None = None
    perp_entry: float | None = None
    wallet: float | None = None
    margin_mode: str | None = None
    liquidation_price: float | None = None
    mark: float | None = None
    mark_ts: int = 0
    last_key: tuple | None = None
    last_snapshot_ns: int = 0
    pending_settlements: list[int] = field(default_factory=list)  # announced settlements T not yet captured
    mark_written: float = -1e18  # monotonic time of the last `marks` write


def classify_instrument(instrument_id: InstrumentId | str) -> tuple[str, str]:
    """(carry symbol, leg) from an instrument id nobody configured: BTCUSDT-PERP.BINANCE_PERP → (BTCUSDT, perp),
    BTCUSDT.BINANCE_SPOT → (BTCUSDT, spot), BTC/USDT:USDT.BINANCE → (BTCUSDT, perp), BTC/USDT.BINANCE → (BTCUSDT, spot)."""
    s = str(instrument_id)
    sym, _, venue = s.rpartition(".")
    if not sym:
        sym, venue = venue, ""
    perp = (sym.upper().endswith("-PERP") or ":" in sym
            or any(w in venue.upper() for w in ("PERP", "FUTURE", "SWAP", "USDM")))
    base = sym.upper().removesuffix("-PERP").split(":")[0].replace("/", "").replace("-", "")
    return base, "perp" if perp else "spot"


class JournalActor(Actor):
    """Writes the journal from message-bus traffic. `journal` may be passed in (tests, or a node that wants the same
    object for the config watcher); otherwise the actor opens `config.journal_path` itself. Either way the actor
    closes it on dispose."""

    def __init__(self, config: JournalActorConfig, journal: Journal | None = None):
        super().__init__(config)
        self.journal = journal if journal is not None else Journal(
            Path(config.journal_path), synchronous=config.synchronous, settlement_match_s=config.settlement_match_s)
        self._by_instrument: dict[str, tuple[str, str]] = {}
        self._ids: dict[str, tuple[InstrumentId | None, InstrumentId | None]] = {}
        for symbol, ids in config.instruments.items():
            spot = InstrumentId.from_str(ids[0]) if len(ids) > 0 and ids[0] else None
            perp = InstrumentId.from_str(ids[1]) if len(ids) > 1 and ids[1] else None
            self._ids[symbol] = (spot, perp)
            if spot is not None:
                self._by_instrument[spot.value] = (symbol, "spot")
            if perp is not None:
                self._by_instrument[perp.value] = (symbol, "perp")
        self._perp_symbol: dict[InstrumentId, str] = {p: s for s, (_, p) in self._ids.items() if p is not None}
        self._state: dict[str, _SymbolState] = {}
        self._tables: dict[str, margin.BracketTable] = {}
        self.errors = 0
        self.flagged: list[dict] = []  # settlements flagged since start (also in the journal)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.handed_over = 0  # messages delivered on another thread and handled on the loop
        self._started_ns: int | None = None

    def _off_loop(self, handler, msg) -> bool:
        """True when this call is not on the loop's thread: `handler(msg)` is then scheduled on the loop."""
        if self._loop_thread is None or threading.get_ident() == self._loop_thread:
            return False
        loop = self._loop
        if loop is None or loop.is_closed():
            return False  # nothing to hand it to: the journal raises JournalThreadError, logged by _guarded
        self.handed_over += 1
        try:
            loop.call_soon_threadsafe(handler, msg)
        except RuntimeError:  # the loop closed meanwhile
            return False
        return True

    # -- lifecycle --------------------------------------------------------------------------------------------------
    def on_start(self) -> None:
        try:  # a live/paper node starts actors on its event loop: that thread is the journal's writer
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # backtests and plain tests: no loop, the caller's thread writes
        if self._loop is not None:
            self._loop_thread = threading.get_ident()
            self.journal.bind_loop(self._loop)
        self._started_ns = self._now()
        bus = self.msgbus
        bus.subscribe(JOURNAL_TOPIC, self._on_record)
        bus.subscribe("events.order.*", self._on_order_event)
        bus.subscribe("events.position.*", self._on_position_event)
        bus.subscribe(MARGIN_TOPICS, self._on_margin_state)
        bus.subscribe(FUNDING_SETTLED_TOPIC, self._on_funding_settled)
        if FUNDING_PUBLISHED_ENDPOINT in bus.endpoints():  # read while connecting: journaled before the restores
            bus.send(FUNDING_PUBLISHED_ENDPOINT, self._on_funding_settled)
        if RESTORE_ENDPOINT not in bus.endpoints():
            bus.register(RESTORE_ENDPOINT, self._on_restore)
        else:
            self.log.warning(f"{RESTORE_ENDPOINT} is already registered: the journal does not answer restores")
        for symbol, (spot, perp) in self._ids.items():
            st = self._st(symbol)
            try:  # after a restart the node has reconciled positions before actors start
                if spot is not None:
                    st.spot_qty = float(self.portfolio.net_position(spot))
                if perp is not None:
                    st.perp_qty = float(self.portfolio.net_position(perp))
            except Exception:  # pragma: no cover - a portfolio without the instrument
                pass
            if perp is not None and self.config.capture_settlement_marks:
                self.subscribe_mark_prices(perp)
        self.log.info(f"journal {self.journal.path} (WAL), symbols: {sorted(self._ids) or 'from instrument ids'}")

    def on_stop(self) -> None:
        bus = self.msgbus
        for topic, handler in ((JOURNAL_TOPIC, self._on_record), ("events.order.*", self._on_order_event),
                               ("events.position.*", self._on_position_event), (MARGIN_TOPICS, self._on_margin_state),
                               (FUNDING_SETTLED_TOPIC, self._on_funding_settled)):
            if bus.is_subscribed(topic, handler):
                bus.unsubscribe(topic, handler)
        if RESTORE_ENDPOINT in bus.endpoints():
            try:
                bus.deregister(RESTORE_ENDPOINT, self._on_restore)
            except Exception:  # pragma: no cover - registered by someone else
                pass
        s = self.journal.latency_stats()
        self.log.info(f"journal writes: {s['writes']}, mean {s['mean_us']:.0f} us, p99 {s['p99_us']:.0f} us, "
                      f"max {s['max_us']:.0f} us; errors {self.errors}")

    def on_dispose(self) -> None:
        try:
            self.journal.close()
        except Exception:  # pragma: no cover
            pass

    # -- helpers ----------------------------------------------------------------------------------------------------
    def _st(self, symbol: str) -> _SymbolState:
        st = self._state.get(symbol)
        if st is None:
            st = self._state[symbol] = _SymbolState()
        return st

    def _classify(self, instrument_id: InstrumentId) -> tuple[str, str]:
        key = instrument_id.value
        hit = self._by_instrument.get(key)
        if hit is None:
            hit = self._by_instrument[key] = classify_instrument(key)
        return hit

    def _guarded(self, what: str, fn, *args) -> None:
        """A journal failure is logged, never raised into the event loop (trading goes on)."""
        try:
            fn(*args)
        except Exception as e:
            self.errors += 1
            self.log.error(f"journal: {what} not written: {type(e).__name__}: {e}")

    def _now(self) -> int:
        return self.clock.timestamp_ns()

    def _table(self, symbol: str) -> margin.BracketTable | None:
        if symbol in self._tables:
            return self._tables[symbol]
        table = None
        raw = self.config.brackets.get(symbol)
        try:
            if raw:
                table = get_profile(self.config.exchange).tiers_from_rows(symbol, raw)
            else:
                table = get_profile(self.config.exchange).bundled_tiers().get(symbol)
        except Exception as e:  # pragma: no cover - bad bracket data: snapshots go without a liquidation price
            self.log.warning(f"journal: no brackets for {symbol} ({e}); snapshots without liquidation price")
        self._tables[symbol] = table
        return table

    # -- journal records --------------------------------------------------------------------------------------------
    def _on_record(self, rec: JournalRecord) -> None:
        if self._off_loop(self._on_record, rec):
            return
        self._guarded(f"{rec.kind} record", self.journal.record, rec)
        if rec.kind == "prediction" and self.config.capture_settlement_marks:
            pending = self._st(rec.symbol).pending_settlements
            t_settle = int(rec.data.get("settlement_ns") or 0)
            if t_settle and t_settle not in pending:
                pending.append(t_settle)
                pending.sort()

    # -- orders -----------------------------------------------------------------------------------------------------
    def _order_fields(self, event) -> dict:
        symbol, leg = self._classify(event.instrument_id)
        fields = {"symbol": symbol, "leg": leg, "instrument_id": event.instrument_id.value,
                  "strategy_id": event.strategy_id.value}
        order = self.cache.order(event.client_order_id) if self.cache is not None else None
        if order is not None:
            fields.update(side=order_side_to_str(order.side), qty=order.quantity.as_double(),
                          type=order_type_to_str(order.order_type), tags=order.tags)
            if order.has_price and order.price is not None:
                fields["price"] = order.price.as_double()
            if order.venue_order_id is not None:
                fields["venue_order_id"] = order.venue_order_id.value
        elif isinstance(event, OrderInitialized):
            fields.update(side=order_side_to_str(event.side), qty=event.quantity.as_double(),
                          type=order_type_to_str(event.order_type), tags=event.tags)
        venue_order_id = getattr(event, "venue_order_id", None)
        if venue_order_id is not None:
            fields["venue_order_id"] = venue_order_id.value
        reason = getattr(event, "reason", None)
        if reason:
            fields["reason"] = str(reason)
        if isinstance(event, OrderUpdated):
            fields["qty"] = event.quantity.as_double()
            if event.price is not None:
                fields["price"] = event.price.as_double()
        return fields

    def _on_order_event(self, event) -> None:
        if self._off_loop(self._on_order_event, event):
            return
        self._guarded(f"{type(event).__name__} {event.client_order_id}", self._write_order_event, event)

    def _write_order_event(self, event) -> None:
        j = self.journal
        fields = self._order_fields(event)
        oid = event.client_order_id.value
        if isinstance(event, OrderFilled):
            # make sure the order row (qty, type, tags) exists before the fill brings its status forward
            j.record_order(oid, ts=event.ts_event, status=None, **fields)
            j.record_fill(
                trade_id=event.trade_id.value, instrument_id=event.instrument_id.value, client_order_id=oid,
                venue_order_id=event.venue_order_id.value if event.venue_order_id is not None else None,
                symbol=fields["symbol"], leg=fields["leg"], side=order_side_to_str(event.order_side),
                qty=event.last_qty.as_double(), price=event.last_px.as_double(),
                fee=event.commission.as_double() if event.commission is not None else 0.0,
                fee_currency=event.commission.currency.code if event.commission is not None else "",
                liquidity=liquidity_side_to_str(event.liquidity_side), ts=event.ts_event,
            )
            return
        status = _STATUS.get(type(event), None)
        j.record_order(oid, ts=event.ts_event, status=status, **fields)

    # -- positions --------------------------------------------------------------------------------------------------
    def _on_position_event(self, event) -> None:
        if self._off_loop(self._on_position_event, event):
            return
        signed = getattr(event, "signed_qty", None)
        if signed is None:
            return
        symbol, leg = self._classify(event.instrument_id)
        st = self._st(symbol)
        if leg == "spot":
            st.spot_qty = float(signed)
        else:
            st.perp_qty = float(signed)
            st.perp_entry = float(event.avg_px_open) if signed else None
        self._guarded(f"position snapshot {symbol}", self._snapshot, symbol, event.ts_event, False)

    def _on_margin_state(self, state) -> None:
        if self._off_loop(self._on_margin_state, state):
            return
        if not isinstance(state, PerpMarginState):
            return
        st = self._st(state.symbol)
        st.perp_qty = state.side * state.qty if state.side != 0 else 0.0
        st.perp_entry = state.entry_price if state.side != 0 else None
        st.wallet = state.wallet
        st.margin_mode = state.mode
        st.liquidation_price = None
        if state.side != 0 and state.qty > 0:
            table = self._table(state.symbol)
            if table is not None:
                try:
                    st.liquidation_price = get_profile(self.config.exchange).liquidation_price(state.side, state.qty, state.entry_price,
                                                                    state.wallet, table)
                except Exception:  # pragma: no cover - an unreachable state: no price, keep journaling
                    st.liquidation_price = None
        self._guarded(f"position snapshot {state.symbol}", self._snapshot, state.symbol, state.ts_ns, False)

    def _spot_price(self, symbol: str) -> float | None:
        ids = self._ids.get(symbol)
        if not ids or ids[0] is None or self.cache is None:
            return None
        for pt in (PriceType.MID, PriceType.LAST):
            try:
                px = self.cache.price(ids[0], pt)
            except Exception:  # pragma: no cover
                px = None
            if px is not None:
                return px.as_double()
        return None

    def _snapshot(self, symbol: str, ts: int, timed_only: bool) -> None:
        """Write a position snapshot when something but the mark changed, or when the last one is older than
        `snapshot_interval_s` (then the mark and liquidation distance are refreshed)."""
        st = self._st(symbol)
        key = (st.spot_qty, st.perp_qty, st.perp_entry, None if st.wallet is None else round(st.wallet, 6))
        due = ts - st.last_snapshot_ns >= self.config.snapshot_interval_s * NS
        if (timed_only or key == st.last_key) and not due:
            return
        if st.spot_qty is None and st.perp_qty is None:
            return
        self.journal.record_position(
            symbol, ts, spot_qty=st.spot_qty, perp_qty=st.perp_qty, perp_entry=st.perp_entry,
            isolated_wallet=st.wallet, liquidation_price=st.liquidation_price, mark=st.mark,
            spot_price=self._spot_price(symbol), margin_mode=st.margin_mode)
        st.last_key = key
        st.last_snapshot_ns = ts

    # -- marks and settlements --------------------------------------------------------------------------------------
    def on_mark_price(self, update: MarkPriceUpdate) -> None:
        if self._off_loop(self.on_mark_price, update):
            return
        symbol = self._perp_symbol.get(update.instrument_id)
        if symbol is None:
            return
        st = self._st(symbol)
        ts = update.ts_event
        pending = st.pending_settlements
        while pending and ts >= pending[0]:
            # the exchange uses the mark at T: the last mark at or before T (this one when stamped exactly at T)
            t_settle = pending.pop(0)
            mark = update.value.as_double() if (ts == t_settle or st.mark is None) else st.mark
            if st.perp_qty is not None:
                self._guarded(f"settlement capture {symbol}", lambda: self.journal.record_settlement_capture(
                    symbol, t_settle, position_qty=st.perp_qty, mark=mark))
        st.mark = update.value.as_double()
        st.mark_ts = ts
        wall = time.monotonic()
        if wall - st.mark_written >= self.config.mark_interval_s:
            st.mark_written = wall
            self._guarded(f"mark {symbol}", lambda: self.journal.record_mark(
                symbol, ts, mark=st.mark, spot_price=self._spot_price(symbol)))
        if ts - st.last_snapshot_ns >= self.config.snapshot_interval_s * NS:
            self._guarded(f"position snapshot {symbol}", self._snapshot, symbol, ts, True)

    def _on_funding_settled(self, msg) -> None:
        if self._off_loop(self._on_funding_settled, msg):
            return
        if not isinstance(msg, FundingSettled):
            return
        st = self._st(msg.symbol)
        holder: dict = {}

        def write():
            holder["row"] = self.journal.record_funding_settled(
                msg.symbol, msg.settlement_ts_ns, rate=msg.rate, payment=msg.payment, source=msg.source,
                ts=self._now(), abs_tol=self.config.funding_abs_tol, rel_tol=self.config.funding_rel_tol,
                position_qty=msg.position_qty if msg.position_qty is not None else st.perp_qty,
                mark=msg.mark_price if msg.mark_price is not None else st.mark)

        self._guarded(f"funding settled {msg.symbol}", write)
        row = holder.get("row")
        if row is None:
            return
        if self._started_ns is not None and int(row["settlement_ts"]) < self._started_ns:
            # a settlement that fell before the node started, read after it (the connection's income catch-up failed
            # or finished late): the strategies restored without it; they take the journal's count again
            self._guarded(f"settlements held {msg.symbol}", self._publish_held, msg.symbol)
        if row["newly_flagged"]:
            self.flagged.append(row)
            when = dt.datetime.fromtimestamp(row["settlement_ts"] / NS, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
            self.log.warning(
                f"funding {msg.symbol} {when}Z: settled {row['settled_payment']:.8f} USDT at rate "
                f"{row['settled_rate']:.8f}, expected {row['expected_payment']:.8f} "
                f"(position {row['position_qty']}, mark {row['mark_price']}): difference {row['difference']:+.8f}")

    def _publish_held(self, symbol: str) -> None:
        self.msgbus.publish(settlements_held_topic(symbol), self.journal.settlements_held(symbol))

    # -- restore ----------------------------------------------------------------------------------------------------
    def restore_state(self, symbol: str) -> dict | None:
        return self.journal.restore_state(symbol)

    def _on_restore(self, req: RestoreRequest) -> None:
        if self._off_loop(self._on_restore, req):
            return
        try:
            state = self.journal.restore_state(req.symbol)
        except Exception as e:
            self.errors += 1
            self.log.error(f"journal: restore {req.symbol} failed: {type(e).__name__}: {e}")
            state = None
        req.reply(state)


def journal_actor_config(settings, instruments: dict[str, tuple[str, str]],
                         brackets: dict[str, list[dict]] | None = None, **overrides) -> JournalActorConfig:
    """JournalActorConfig for a live/paper node: the journal path from the settings (relative to the current
    directory), the carry symbols' (spot, perp) instrument ids, their leverage brackets."""
    return JournalActorConfig(
        component_id="JournalActor",
        journal_path=str(settings.journal),
        instruments={s: [str(a), str(b)] for s, (a, b) in instruments.items()},
        brackets=dict(brackets or {}),
        exchange=settings.exchange.name,
        **overrides,
    )
