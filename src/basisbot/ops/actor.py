"""OpsActor: the node's operator-facing listener. It reads the same message-bus stream as the journal and feeds the
metrics (`OpsMetrics`) and the alert rules (`AlertRules`); it never calls a venue and never blocks (a metric update
is a dict write; an alert is a queue put for the dispatcher's threads).

Subscriptions: `JOURNAL_TOPIC` records (decision, guard, leg, prediction, booking), order events (submitted / filled /
rejected / denied: order and reject counts, submit→fill latency), position events (legs), `basisbot.core.margin.*`
(`PerpMarginState`: perp leg and liquidation price), `basisbot.liquidation.*` (`Liquidated`), funding settlements
(`FundingSettled`), and the market data of the configured instruments (perp mark prices and funding rates, spot
quotes). Leg gaps (time between the two legs' first fills of a pair) come from the pairs' `leg` records.
"""

from __future__ import annotations

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.identifiers import InstrumentId

from basisbot.nautilus.journal_actor import FUNDING_SETTLED_TOPIC, FundingSettled, classify_instrument
from basisbot.nautilus.messages import JOURNAL_TOPIC, JournalRecord, Liquidated, PerpMarginState
from basisbot.venues import DEFAULT_EXCHANGE, get_profile

ORDER_TOPIC = "events.order.*"
POSITION_TOPIC = "events.position.*"
MARGIN_TOPICS = "basisbot.core.margin.*"
LIQUIDATION_TOPICS = "basisbot.liquidation.*"


class OpsActorConfig(ActorConfig, frozen=True):
    # carry symbol -> [spot instrument id, perp instrument id]
    instruments: dict[str, list[str]] = {}
    # carry symbol -> leverage brackets in the venue's bracket shape (liquidation price of the perp leg); default: the
    # venue profile's bundled ones
    brackets: dict[str, list[dict]] = {}
    exchange: str = DEFAULT_EXCHANGE  # the venue profile: bundled tiers and the liquidation price formula


class OpsActor(Actor):
    def __init__(self, config: OpsActorConfig, metrics, rules):
        super().__init__(config)
        self.metrics = metrics
        self.rules = rules
        self._by_id: dict[str, tuple[str, str]] = {}
        self._ids: dict[str, tuple[InstrumentId, InstrumentId]] = {}
        for sym, (spot, perp) in config.instruments.items():
            self._ids[sym] = (InstrumentId.from_str(spot), InstrumentId.from_str(perp))
            self._by_id[spot] = (sym, "spot")
            self._by_id[perp] = (sym, "perp")
        self._tables: dict[str, object] = {}
        self._submitted: dict[str, tuple[int, str, str]] = {}  # client order id -> (ts_init, symbol, leg)
        self._first_fill: dict[str, dict[str, int]] = {}  # pair id -> {leg: ts of its first fill}
        self.errors = 0
        self.last_error: str | None = None
        self._handlers = ((JOURNAL_TOPIC, self._on_record), (ORDER_TOPIC, self._on_order),
                          (POSITION_TOPIC, self._on_position), (MARGIN_TOPICS, self._on_margin),
                          (LIQUIDATION_TOPICS, self._on_liquidation), (FUNDING_SETTLED_TOPIC, self._on_settled))

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    def on_start(self) -> None:
        for topic, handler in self._handlers:
            self.msgbus.subscribe(topic, handler)
        for sym, (spot, perp) in self._ids.items():
            self.metrics.st(sym)
            self.subscribe_mark_prices(perp)
            self.subscribe_funding_rates(perp)
            self.subscribe_quote_ticks(spot)
            try:  # after a restart the node has reconciled positions before actors start
                self.metrics.on_position(sym, "spot", float(self.portfolio.net_position(spot)))
                self.metrics.on_position(sym, "perp", float(self.portfolio.net_position(perp)))
            except Exception:  # pragma: no cover - a portfolio without the instrument
                pass

    def on_stop(self) -> None:
        for topic, handler in self._handlers:
            if self.msgbus.is_subscribed(topic, handler):
                self.msgbus.unsubscribe(topic, handler)

    # -- helpers ------------------------------------------------------------------------------------------------------
    def _guarded(self, fn, *args) -> None:
        """Ops must never disturb trading: a failure here is counted and logged, never raised."""
        try:
            fn(*args)
        except Exception as e:
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            if self.errors <= 10 or self.errors % 1000 == 0:
                self.log.error(f"ops: {fn.__name__} failed ({self.errors} so far): {self.last_error}")

    def _classify(self, instrument_id) -> tuple[str, str]:
        key = instrument_id.value
        hit = self._by_id.get(key)
        if hit is None:
            hit = self._by_id[key] = classify_instrument(key)
        return hit

    def _table(self, symbol: str):
        if symbol not in self._tables:
            table = None
            raw = self.config.brackets.get(symbol)
            try:
                if raw:
                    table = get_profile(self.config.exchange).tiers_from_rows(symbol, raw)
                else:
                    table = get_profile(self.config.exchange).bundled_tiers().get(symbol)
            except Exception:  # pragma: no cover
                table = None
            self._tables[symbol] = table
        return self._tables[symbol]

    # -- market data --------------------------------------------------------------------------------------------------
    def on_mark_price(self, update) -> None:
        sym, _ = self._classify(update.instrument_id)
        mark = update.value.as_double()
        self._guarded(self.metrics.on_mark, sym, mark)
        self.rules.mark(sym, mark)

    def on_funding_rate(self, update) -> None:
        sym, _ = self._classify(update.instrument_id)
        rate = float(update.rate)
        interval = int(update.interval) if update.interval else None
        self._guarded(self.metrics.on_funding, sym, rate, interval, update.next_funding_ns)
        self.rules.funding_rate(sym, rate, interval, update.next_funding_ns)

    def on_quote_tick(self, tick) -> None:
        sym, _ = self._classify(tick.instrument_id)
        mid = (tick.bid_price.as_double() + tick.ask_price.as_double()) / 2
        self._guarded(self.metrics.on_spot, sym, mid)
        self.rules.spot(sym, mid)

    # -- bus ----------------------------------------------------------------------------------------------------------
    def _on_record(self, rec) -> None:
        if isinstance(rec, JournalRecord):
            self._guarded(self._record, rec)

    def _record(self, rec: JournalRecord) -> None:
        if rec.kind == "guard":
            self.metrics.guard.labels(rec.symbol, rec.data.get("step") or "?").inc()
        elif rec.kind == "leg":
            self._leg_gap(rec)
        self.rules.record(rec)

    def _leg_gap(self, rec: JournalRecord) -> None:
        d = rec.data
        pair = d.get("pair_id")
        if not pair or d.get("event") != "fill":
            if pair and d.get("event") in ("complete", "flat", "stuck"):
                self._first_fill.pop(pair, None)
            return
        leg = str(d.get("detail", "")).split(" ", 1)[0]
        seen = self._first_fill.setdefault(pair, {})
        if leg in ("spot", "perp") and leg not in seen:
            seen[leg] = rec.ts_ns
            if len(seen) == 2:
                self.metrics.leg_gap.labels(rec.symbol).observe(abs(seen["spot"] - seen["perp"]) / 1e9)
        if len(self._first_fill) > 100:
            self._first_fill.pop(next(iter(self._first_fill)))

    def _on_order(self, event) -> None:
        self._guarded(self._order, event)

    def _order(self, event) -> None:
        name = type(event).__name__
        if name not in ("OrderSubmitted", "OrderFilled", "OrderRejected", "OrderDenied"):
            return
        sym, leg = self._classify(event.instrument_id)
        oid = event.client_order_id.value
        if name == "OrderSubmitted":
            self.metrics.orders.labels(sym, leg).inc()
            self._submitted[oid] = (event.ts_init, sym, leg)
            if len(self._submitted) > 1000:
                self._submitted.pop(next(iter(self._submitted)))
        elif name == "OrderFilled":
            self.metrics.fills.labels(sym, leg).inc()
            sub = self._submitted.pop(oid, None)
            if sub is not None:
                self.metrics.fill_latency.labels(sym, leg).observe(max(event.ts_init - sub[0], 0) / 1e9)
        else:
            self.metrics.rejects.labels(sym, leg).inc()
            self._submitted.pop(oid, None)

    def _on_position(self, event) -> None:
        signed = getattr(event, "signed_qty", None)
        if signed is None:
            return
        sym, leg = self._classify(event.instrument_id)
        self._guarded(self.metrics.on_position, sym, leg, float(signed))

    def _on_margin(self, state) -> None:
        if isinstance(state, PerpMarginState):
            self._guarded(self._margin, state)

    def _margin(self, state: PerpMarginState) -> None:
        qty = state.side * state.qty if state.side else 0.0
        self.metrics.on_position(state.symbol, "perp", qty)
        lp = None
        if state.side and state.qty > 0:
            table = self._table(state.symbol)
            if table is not None:
                try:
                    lp = get_profile(self.config.exchange).liquidation_price(state.side, state.qty, state.entry_price, state.wallet, table)
                except Exception:  # pragma: no cover - unreachable state: no price
                    lp = None
        self.metrics.on_liquidation_price(state.symbol, state.side, lp)

    def _on_liquidation(self, msg) -> None:
        if isinstance(msg, Liquidated):
            self._guarded(self.rules.liquidated, msg)

    def _on_settled(self, msg) -> None:
        if isinstance(msg, FundingSettled):
            self._guarded(self.metrics.on_settled, msg.symbol, msg.payment)
            self._guarded(self.rules.funding_settled, msg)


__all__ = ["OpsActor", "OpsActorConfig"]
