"""BasisCarryStrategy: long spot, short the USDⓈ-M perpetual at a hedge ratio, to earn funding.

One strategy, two worlds: it never knows whether it runs in a backtest (BacktestEngine + simulation modules) or live
(TradingNode + ccxt.pro clients). Every decision is delegated to pure functions in `basisbot` (carry, guard, margin,
schedule). Risk runs on the MARK price (`on_mark_price`), decisions on the PREDICTED funding rate (`on_funding_rate`);
last trade prices are only used to size orders.

Leg discipline: both legs are pre-checked before either is sent; if one leg fails or lags past `leg_timeout_s`, the
other is unwound; after a liquidation of the perp the spot leg is sold at once. Nothing stays naked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType, FundingRateUpdate, MarkPriceUpdate, QuoteTick
from nautilus_trader.model.enums import OrderSide, OrderStatus
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Currency
from nautilus_trader.trading.strategy import Strategy

from basisbot import carry, guard, margin
from basisbot.schedule import Job, JobKind, NautilusClockDriver, SettlementCalendar, Windows
from basisbot.venue_messages import (
    ADJUST_MARGIN_ENDPOINT,
    AdjustMarginRequest,
    Liquidated,
    PerpMarginState,
    liquidation_topic,
    margin_topic,
)

USDT = Currency.from_str("USDT")


class BasisCarryConfig(StrategyConfig, frozen=True):
    symbol: str
    spot_instrument_id: str
    perp_instrument_id: str
    brackets: list[dict]  # Binance leverage brackets of the perp (GET /fapi/v1/leverageBracket shape)
    spot_bar_type: str | None = None  # backtests price the spot leg from bars; live from quotes
    hedge_ratio: float = 1.0
    notional_usdt: float = 10_000.0
    max_notional_usdt: float | None = None
    leverage: int = 3
    margin_mode: str = "isolated"
    entry_apr: float = 0.10
    exit_apr: float = 0.02
    min_hold_intervals: int = 3
    rebalance_tolerance: float = 0.02
    spot_taker_fee: float = 0.001
    perp_taker_fee: float = 0.0005
    leg_timeout_s: float = 10.0
    guard_enabled: bool = True
    guard: dict = {}
    schedule: dict = {}


class Phase(enum.Enum):
    FLAT = "flat"
    ENTERING = "entering"
    IN_CARRY = "in_carry"
    EXITING = "exiting"


@dataclass
class GuardEvent:
    ts_ns: int
    symbol: str
    step: str
    distance: float
    liquidation_price: float
    mark: float
    add_margin: float
    reduce_fraction: float
    reason: str
    spot_qty_after: float | None = None
    perp_qty_after: float | None = None


@dataclass
class Prediction:
    settlement_ns: int
    predicted_rate: float
    interval_minutes: int
    in_carry: bool


@dataclass
class StrategyLog:
    guard: list[GuardEvent] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    decisions: list[tuple[int, str, str]] = field(default_factory=list)  # (ts, action, reason)


class BasisCarryStrategy(Strategy):
    def __init__(self, config: BasisCarryConfig):
        super().__init__(config)
        c = config
        self.symbol = c.symbol
        self.spot_id = InstrumentId.from_str(c.spot_instrument_id)
        self.perp_id = InstrumentId.from_str(c.perp_instrument_id)
        self.table = margin.parse_brackets([{"symbol": c.symbol, "brackets": c.brackets}], source="strategy config")[c.symbol]
        self.rules = carry.CarryRules(c.entry_apr, c.exit_apr, c.min_hold_intervals, c.hedge_ratio,
                                      carry.Fees(c.spot_taker_fee, c.perp_taker_fee))
        self.thresholds = guard.Thresholds(**c.guard) if c.guard else None
        self.calendar = SettlementCalendar(c.symbol, Windows(**c.schedule) if c.schedule else Windows())
        self.log_ = StrategyLog()
        # market state
        self.mark: float | None = None
        self.spot_px: float | None = None
        self.predicted_rate: float | None = None
        self.interval_minutes: int = 480
        # position state
        self.phase = Phase.FLAT
        self.settlements_held = 0
        self.margin_state: PerpMarginState | None = None
        self.guard_latched = guard.Step.NONE
        self._leg_orders: dict[str, object] = {}
        self._driver: NautilusClockDriver | None = None
        self._leg_deadline_name = f"{c.symbol}:leg_timeout"

    # -- lifecycle --------------------------------------------------------------------------------------------------
    def on_start(self) -> None:
        self.spot = self.cache.instrument(self.spot_id)
        self.perp = self.cache.instrument(self.perp_id)
        if self.spot is None or self.perp is None:
            self.log.error(f"{self.symbol}: instruments not found ({self.spot_id}, {self.perp_id}); not starting")
            self.stop()
            return
        if self.config.spot_bar_type:
            self.subscribe_bars(BarType.from_str(self.config.spot_bar_type))
        else:
            self.subscribe_quote_ticks(self.spot_id)
        self.subscribe_mark_prices(self.perp_id)
        self.subscribe_funding_rates(self.perp_id)
        self.msgbus.subscribe(margin_topic(self.symbol), self._on_margin_state)
        self.msgbus.subscribe(liquidation_topic(self.symbol), self._on_liquidated)
        self._driver = NautilusClockDriver(self.clock, self._on_job)

    def on_stop(self) -> None:
        pass  # legs stay hedged; nothing half-sent is left (in-flight legs finish or are unwound by the venue state)

    # -- market data ------------------------------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        if bar.bar_type.instrument_id == self.spot_id:
            self.spot_px = bar.close.as_double()

    def on_quote_tick(self, tick: QuoteTick) -> None:
        if tick.instrument_id == self.spot_id:
            self.spot_px = (tick.bid_price.as_double() + tick.ask_price.as_double()) / 2

    def on_funding_rate(self, update: FundingRateUpdate) -> None:
        self.predicted_rate = float(update.rate)
        if update.interval:
            self.interval_minutes = int(update.interval)
        jobs = self.calendar.on_funding_info(update.next_funding_ns, update.interval, self.clock.timestamp_ns())
        for job in jobs:
            self._driver.schedule(job)

    def on_mark_price(self, update: MarkPriceUpdate) -> None:
        self.mark = update.value.as_double()
        self._run_guard()
        self._run_carry()

    # -- carry ------------------------------------------------------------------------------------------------------
    def _view(self) -> carry.CarryView:
        return carry.CarryView(
            predicted_rate=self.predicted_rate,
            interval_hours=self.interval_minutes / 60,
            in_carry=self.phase is Phase.IN_CARRY,
            settlements_held=self.settlements_held,
            in_blackout=self.calendar.in_blackout(self.clock.timestamp_ns()),
        )

    def _run_carry(self) -> None:
        if self.mark is None or self.spot_px is None:
            return
        if self.phase is Phase.FLAT:
            if carry.decide(self.rules, self._view()) is carry.Action.ENTER:
                self._enter()
        elif self.phase is Phase.IN_CARRY:
            self._rebalance_if_drifted()

    def _on_job(self, job: Job) -> None:
        if job.kind is JobKind.DECISION:
            if self.predicted_rate is not None:
                self.log_.predictions.append(Prediction(job.settlement_ns, self.predicted_rate, self.interval_minutes,
                                                        self.phase is Phase.IN_CARRY))
            if self.phase is Phase.IN_CARRY and carry.decide(self.rules, self._view()) is carry.Action.EXIT:
                self._exit(reason=f"predicted {self.predicted_rate:.6f} below exit_apr before settlement")
        elif job.kind is JobKind.BOOKING:
            self.calendar.settled(job.settlement_ns)
            if self.phase is Phase.IN_CARRY:
                self.settlements_held += 1

    def spot_qty(self) -> float:
        return float(self.portfolio.net_position(self.spot_id))

    def perp_qty(self) -> float:
        return float(self.portfolio.net_position(self.perp_id))

    def _enter(self) -> None:
        notional = self.config.notional_usdt
        if self.config.max_notional_usdt:
            notional = min(notional, self.config.max_notional_usdt)
        spot_qty, perp_qty = carry.leg_quantities(
            notional, self.spot_px, self.config.hedge_ratio,
            self.spot.size_increment.as_double(), self.perp.size_increment.as_double(),
        )
        problem = self._precheck(spot_qty, perp_qty)
        if problem:
            self._decide("skip_entry", problem)
            return
        self._decide("enter", f"predicted {self.predicted_rate:.6f}/{self.interval_minutes}m, "
                              f"spot {spot_qty} perp {perp_qty}")
        self.phase = Phase.ENTERING
        self.settlements_held = 0
        self._send_legs(spot_side=OrderSide.BUY, spot_qty=spot_qty, perp_side=OrderSide.SELL, perp_qty=perp_qty,
                        tag="ENTRY")

    def _precheck(self, spot_qty: float, perp_qty: float) -> str | None:
        """Both legs must pass instrument limits and balances before either is sent."""
        for inst, qty, px in ((self.spot, spot_qty, self.spot_px), (self.perp, perp_qty, self.mark)):
            if qty <= 0 or (inst.min_quantity and qty < inst.min_quantity.as_double()):
                return f"{inst.id}: quantity {qty} below the minimum {inst.min_quantity}"
            if inst.min_notional and qty * px < inst.min_notional.as_double():
                return f"{inst.id}: notional {qty * px:.2f} below the minimum {inst.min_notional}"
        spot_acct = self.portfolio.account(self.spot_id.venue)
        perp_acct = self.portfolio.account(self.perp_id.venue)
        spot_free = spot_acct.balance_free(USDT).as_double() if spot_acct else 0.0
        perp_free = perp_acct.balance_free(USDT).as_double() if perp_acct else 0.0
        spot_cost = spot_qty * self.spot_px * (1 + self.config.spot_taker_fee) * 1.01
        if spot_cost > spot_free:
            return f"spot balance {spot_free:.2f} USDT < {spot_cost:.2f} needed"
        perp_margin = perp_qty * self.mark / self.config.leverage * 1.01 + perp_qty * self.mark * self.config.perp_taker_fee
        if perp_margin > perp_free:
            return f"perp balance {perp_free:.2f} USDT < {perp_margin:.2f} initial margin needed"
        return None

    def _send_legs(self, *, spot_side, spot_qty: float, perp_side, perp_qty: float, tag: str,
                   perp_reduce_only: bool = False) -> None:
        self._leg_orders = {}
        if spot_qty > 0:
            o = self.order_factory.market(self.spot_id, spot_side, self.spot.make_qty(spot_qty), tags=[tag])
            self._leg_orders["spot"] = o
        if perp_qty > 0:
            p = self.order_factory.market(self.perp_id, perp_side, self.perp.make_qty(perp_qty),
                                          reduce_only=perp_reduce_only, tags=[tag])
            self._leg_orders["perp"] = p
        # send back to back: the gap between the legs is what the benchmark measures
        for o in self._leg_orders.values():
            self.submit_order(o)
        self.clock.set_time_alert_ns(self._leg_deadline_name + tag + str(self.clock.timestamp_ns()),
                                     self.clock.timestamp_ns() + int(self.config.leg_timeout_s * 1e9),
                                     self._on_leg_timeout)

    def _legs_done(self) -> bool:
        return all(o.status == OrderStatus.FILLED for o in self._leg_orders.values())

    def _legs_failed(self) -> bool:
        return any(o.status in (OrderStatus.REJECTED, OrderStatus.DENIED, OrderStatus.CANCELED, OrderStatus.EXPIRED)
                   for o in self._leg_orders.values())

    def on_order_filled(self, event) -> None:
        self._after_leg_event()

    def on_order_rejected(self, event) -> None:
        self._decide("leg_rejected", f"{event.client_order_id}: {event.reason}")
        self._after_leg_event()

    def on_order_denied(self, event) -> None:
        self._decide("leg_denied", f"{event.client_order_id}: {event.reason}")
        self._after_leg_event()

    def _after_leg_event(self) -> None:
        if self.phase is Phase.ENTERING:
            if self._legs_done():
                self.phase = Phase.IN_CARRY
            elif self._legs_failed():
                self._unwind("entry leg failed")
        elif self.phase is Phase.EXITING:
            if self._legs_done() or (self._legs_failed() and abs(self.perp_qty()) == 0 and self.spot_qty() <= 0):
                self.phase = Phase.FLAT
            elif self._legs_failed():
                self._unwind("exit leg failed")

    def _on_leg_timeout(self, _event) -> None:
        if self.phase in (Phase.ENTERING, Phase.EXITING) and not self._legs_done():
            for o in self._leg_orders.values():
                if o.is_open:
                    self.cancel_order(o)
            self._unwind(f"legs not filled within {self.config.leg_timeout_s}s")

    def _unwind(self, reason: str) -> None:
        """Close whatever is held on either leg (market), ending flat."""
        self._decide("unwind", reason)
        self._unwind_to_flat(tag="UNWIND")

    def _exit(self, reason: str) -> None:
        self._decide("exit", reason)
        self._unwind_to_flat(tag="EXIT")

    def _unwind_to_flat(self, tag: str) -> None:
        spot = carry.round_down(max(self.spot_qty(), 0.0), self.spot.size_increment.as_double())
        perp = self.perp_qty()
        self.phase = Phase.EXITING
        self._send_legs(spot_side=OrderSide.SELL, spot_qty=spot, perp_side=OrderSide.BUY if perp < 0 else OrderSide.SELL,
                        perp_qty=abs(perp), tag=tag, perp_reduce_only=True)
        if not self._leg_orders:
            self.phase = Phase.FLAT

    def _rebalance_if_drifted(self) -> None:
        if self.calendar.in_blackout(self.clock.timestamp_ns()):
            return  # no perp-leg rebalancing around settlements
        spot, perp = self.spot_qty(), self.perp_qty()
        if spot <= 0 and perp == 0:
            self.phase = Phase.FLAT
            return
        if spot <= 0 or perp >= 0:
            self._unwind("one leg missing")
            return
        drift = carry.hedge_drift(spot, perp, self.config.hedge_ratio)
        if abs(drift) <= self.config.rebalance_tolerance:
            return
        target = spot * self.config.hedge_ratio
        step = self.perp.size_increment.as_double()
        delta = round((target - abs(perp)) / step) * step
        if abs(delta) < step / 2:
            return
        self._decide("rebalance", f"hedge drift {drift:+.2%}, perp {perp} → {-target:.6f}")
        side = OrderSide.SELL if delta > 0 else OrderSide.BUY
        self.submit_order(self.order_factory.market(self.perp_id, side, self.perp.make_qty(abs(delta)),
                                                    reduce_only=delta < 0, tags=["REBALANCE"]))

    # -- margin and guard -------------------------------------------------------------------------------------------
    def _on_margin_state(self, state: PerpMarginState) -> None:
        self.margin_state = state

    def _on_liquidated(self, event: Liquidated) -> None:
        self._decide("liquidated", f"perp {event.side * event.qty} at {event.price:.2f}, wallet lost {event.wallet_lost:.2f}")
        self.guard_latched = guard.Step.NONE
        # the perp leg is gone: sell the spot leg at once, never hold it naked
        self._unwind_to_flat(tag="LIQ_UNWIND")

    def _run_guard(self) -> None:
        st = self.margin_state
        if not self.config.guard_enabled or self.thresholds is None or st is None or st.side == 0 or self.mark is None:
            return
        if self.phase is not Phase.IN_CARRY:
            return
        decision, self.guard_latched = guard.evaluate(
            self.thresholds, side=st.side, qty=st.qty, entry=st.entry_price, mark=self.mark, wallet=st.wallet,
            table=self.table, free_collateral=st.perp_free + st.spot_free, latched=self.guard_latched,
        )
        if decision.step is guard.Step.NONE:
            return
        ts = self.clock.timestamp_ns()
        ev = GuardEvent(ts, self.symbol, decision.step.name.lower(), decision.distance, decision.liquidation_price,
                        self.mark, decision.add_margin, decision.reduce_fraction, decision.reason)
        self.log_.guard.append(ev)
        self.log.warning(f"guard {self.symbol}: {decision.step.name} {decision.reason}")
        if decision.add_margin > 0:
            self.msgbus.send(ADJUST_MARGIN_ENDPOINT, AdjustMarginRequest(self.symbol, decision.add_margin, True,
                                                                         decision.reason, ts))
        if decision.step is guard.Step.CLOSE:
            self._exit(reason=f"guard: {decision.reason}")
        elif decision.step is guard.Step.REDUCE and decision.reduce_fraction > 0:
            self._reduce_both(decision.reduce_fraction, decision.reason)
        ev.spot_qty_after, ev.perp_qty_after = self.spot_qty(), self.perp_qty()

    def _reduce_both(self, fraction: float, reason: str) -> None:
        """Reduce both legs by `fraction`, keeping the hedge ratio: the perp first (it is the leg at risk)."""
        spot, perp = self.spot_qty(), self.perp_qty()
        perp_step, spot_step = self.perp.size_increment.as_double(), self.spot.size_increment.as_double()
        perp_cut = min(abs(perp), max(perp_step, round(abs(perp) * fraction / perp_step + 0.4999) * perp_step))
        remaining_perp = abs(perp) - perp_cut
        spot_keep = remaining_perp / self.config.hedge_ratio
        spot_cut = carry.round_down(max(spot - spot_keep, 0.0), spot_step)
        if remaining_perp <= perp_step / 2:
            self._exit(reason=f"guard reduce to zero: {reason}")
            return
        self._decide("reduce", f"{fraction:.1%}: perp -{perp_cut}, spot -{spot_cut} ({reason})")
        self.submit_order(self.order_factory.market(self.perp_id, OrderSide.BUY, self.perp.make_qty(perp_cut),
                                                    reduce_only=True, tags=["GUARD_REDUCE"]))
        if spot_cut > 0:
            self.submit_order(self.order_factory.market(self.spot_id, OrderSide.SELL, self.spot.make_qty(spot_cut),
                                                        tags=["GUARD_REDUCE"]))

    def _decide(self, action: str, reason: str) -> None:
        self.log_.decisions.append((self.clock.timestamp_ns(), action, reason))
        self.log.info(f"{self.symbol}: {action}: {reason}")
