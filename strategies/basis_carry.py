"""BasisCarryStrategy: long spot, short the USDⓈ-M perpetual at a hedge ratio, to earn funding.

One strategy, two worlds: it never knows whether it runs in a backtest (BacktestEngine + simulation modules) or live
(TradingNode + ccxt.pro clients). Every decision is delegated to pure functions in `basisbot` (carry, guard, margin,
schedule). Risk runs on the MARK price (`on_mark_price`), decisions on the PREDICTED funding rate (`on_funding_rate`);
last trade prices are only used to size orders.

Leg discipline: both legs are pre-checked before either is sent; if one leg fails or lags past `leg_timeout_s`, the
other is unwound; after a liquidation of the perp the spot leg is sold at once. Nothing stays naked.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass, field

import msgspec
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import BarType, FundingRateUpdate, MarkPriceUpdate
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Currency
from nautilus_trader.trading.strategy import Strategy

from basisbot import carry, guard, margin
from basisbot.legs import Instruction, LegPair, LegStatus, PairStatus
from basisbot.schedule import (
    AsyncIOSchedulerDriver,
    Job,
    JobKind,
    NautilusClockDriver,
    SettlementCalendar,
    Windows,
    guard_sweep_trigger,
)
from basisbot.venue_messages import (
    ADJUST_MARGIN_ENDPOINT,
    JOURNAL_TOPIC,
    AdjustMarginRequest,
    JournalRecord,
    Liquidated,
    PerpMarginState,
    RESTORE_ENDPOINT,
    RestoreRequest,
    liquidation_topic,
    margin_topic,
)

USDT = Currency.from_str("USDT")
ACTED_ON = frozenset({JobKind.DECISION, JobKind.BOOKING})  # the jobs this strategy has work for
RESUME_GRACE_S = 6.0  # live restart: an order sent before a stop can reach the exchange until its recvWindow (5 s)
# the parameters a live config reload may change (`apply_config`); the rest (leverage, margin mode, instruments,
# scheduler) is set up at start and changes only with a restart
TUNABLE_FIELDS = frozenset({
    "hedge_ratio", "notional_usdt", "max_notional_usdt", "entry_apr", "exit_apr", "min_hold_intervals",
    "rebalance_tolerance", "spot_taker_fee", "perp_taker_fee", "leg_timeout_s", "slippage_band", "guard_enabled",
    "guard", "schedule", "guard_sweep_s",
})


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
    slippage_band: float = 0.002
    guard_enabled: bool = True
    guard_sweep_s: int = 60  # periodic backstop to the event-driven guard (0 = off)
    scheduler: str = "clock"  # "clock": nautilus time alerts (backtests); "asyncio": APScheduler on the event loop (live)
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
class StrategyLog:
    guard: list[GuardEvent] = field(default_factory=list)
    decisions: list[tuple[int, str, str]] = field(default_factory=list)  # (ts, action, reason)


class BasisCarryStrategy(Strategy):
    def __init__(self, config: BasisCarryConfig):
        super().__init__(config)
        c = config
        # nautilus' `config` is a read-only attribute: the strategy reads its parameters from `cfg`, which a live
        # config reload replaces at a safe point (`apply_config`); backtests never change it
        self.cfg: BasisCarryConfig = config
        self.symbol = c.symbol
        self.spot_id = InstrumentId.from_str(c.spot_instrument_id)
        self.perp_id = InstrumentId.from_str(c.perp_instrument_id)
        self.table = margin.parse_brackets([{"symbol": c.symbol, "brackets": c.brackets}], source="strategy config")[c.symbol]
        self.calendar = SettlementCalendar(c.symbol, Windows())
        self._derive()
        self.log_ = StrategyLog()
        # market state
        self.mark: float | None = None
        self._spot_bar_type: BarType | None = None
        self.predicted_rate: float | None = None
        self.interval_minutes: int = 480
        # position state
        self.phase = Phase.FLAT
        self.settlements_held = 0
        self.margin_state: PerpMarginState | None = None
        self._lp: float | None = None
        self._qty: tuple[float, float] | None = None  # (spot, perp) net positions, refreshed on position events
        self.guard_latched = guard.Step.NONE
        self.pair: LegPair | None = None
        self._order_leg: dict = {}
        self._liquidation_pending = False
        self._restore_after_reduce = False
        self._guard_event_pending: GuardEvent | None = None
        self._pair_logged = 0
        self._driver: NautilusClockDriver | AsyncIOSchedulerDriver | None = None
        self._scheduler = None
        self._draining = False  # live shutdown: no new pairs
        # live restart: resume from what the exchange holds (reconciled into the cache) and the journal's last pair
        self._resume_pending = False
        self._resume_at_ns = 0
        self._resume_cancels_ns = 0
        self._restored: dict | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------------
    def on_start(self) -> None:
        self.spot = self.cache.instrument(self.spot_id)
        self.perp = self.cache.instrument(self.perp_id)
        if self.spot is None or self.perp is None:
            self.log.error(f"{self.symbol}: instruments not found ({self.spot_id}, {self.perp_id}); not starting")
            self.stop()
            return
        if self.cfg.spot_bar_type:
            # prices are read from the cache when needed (entry sizing, pre-checks): no handler per trade
            self._spot_bar_type = BarType.from_str(self.cfg.spot_bar_type)
            self.subscribe_bars(self._spot_bar_type)
        else:
            self.subscribe_quote_ticks(self.spot_id)
        self.subscribe_mark_prices(self.perp_id)
        self.subscribe_funding_rates(self.perp_id)
        self.msgbus.subscribe(margin_topic(self.symbol), self._on_margin_state)
        self.msgbus.subscribe(liquidation_topic(self.symbol), self._on_liquidated)
        if self.cfg.scheduler == "asyncio":
            # live: the settlement jobs run on an APScheduler AsyncIOScheduler bound to the node's event loop
            import asyncio

            from apscheduler.schedulers.asyncio import AsyncIOScheduler

            self._scheduler = AsyncIOScheduler(event_loop=asyncio.get_event_loop(), timezone="UTC")
            self._scheduler.start()
            # APScheduler runs plain functions in a thread pool: hand it coroutines so every job runs on the
            # event loop's thread, like every other handler of this strategy (nautilus objects are not thread-safe)
            async def on_job(job):
                self._on_job(job)

            self._driver = AsyncIOSchedulerDriver(self._scheduler, on_job)
        else:
            # backtests: the same jobs as nautilus time alerts, fired in order with the data
            self._driver = NautilusClockDriver(self.clock, self._on_job)
        self._set_guard_sweep()
        if self._spot_bar_type is None:
            self._prepare_resume()  # live / paper: the node has reconciled what the exchange holds (backtests: flat)

    def _derive(self) -> None:
        """Rebuild what derives from `cfg`: carry rules, guard thresholds, settlement windows."""
        c = self.cfg
        self.rules = carry.CarryRules(c.entry_apr, c.exit_apr, c.min_hold_intervals, c.hedge_ratio,
                                      carry.Fees(c.spot_taker_fee, c.perp_taker_fee))
        self.thresholds = guard.Thresholds(**c.guard) if c.guard else None
        self.calendar.windows = Windows(**c.schedule) if c.schedule else Windows()

    def apply_config(self, fields: dict) -> dict:
        """Apply a validated live config change (`basisbot.config_reload.SymbolChange.strategy_fields()`), called by
        the live node at this symbol's safe point (no leg pair in flight, not in the settlement blackout). Only
        `TUNABLE_FIELDS` change; a different value of any other field (leverage, margin mode, instruments...) is
        ignored with a warning (those take effect at a restart). Returns {field: [old, new]} of what changed."""
        changed, ignored = {}, {}
        for k, v in fields.items():
            old = getattr(self.cfg, k, None)
            if old == v:
                continue
            (changed if k in TUNABLE_FIELDS else ignored)[k] = [old, v]
        if ignored:
            self.log.warning(f"{self.symbol}: config fields that cannot change while running ignored: "
                             + ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in ignored.items()))
        if not changed:
            return {}
        if self._busy():  # the caller checks the safe point; never change a pair's parameters under it
            raise RuntimeError(f"{self.symbol}: apply_config while a leg pair is in flight")
        old_sweep = (self.cfg.guard_enabled, self.cfg.guard_sweep_s)
        self.cfg = msgspec.structs.replace(self.cfg, **{k: n for k, (_, n) in changed.items()})
        self._derive()
        if (self.cfg.guard_enabled, self.cfg.guard_sweep_s) != old_sweep and self._driver is not None:
            self._set_guard_sweep()
        self._decide("config_applied", ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in changed.items()))
        return changed

    def _set_guard_sweep(self) -> None:
        """(Re)schedule the periodic guard sweep from `cfg` (on start and after a live config change)."""
        name = f"{self.symbol}:guard_sweep"
        on = self.cfg.guard_enabled and self.cfg.guard_sweep_s > 0
        if self._scheduler is not None:
            if self._scheduler.get_job(name) is not None:
                self._scheduler.remove_job(name)
            if on:
                async def sweep_guard():
                    self._run_guard()

                self._scheduler.add_job(sweep_guard, trigger=guard_sweep_trigger(
                    Windows(guard_sweep_s=self.cfg.guard_sweep_s), self.clock.timestamp_ns()),
                    id=name, replace_existing=True)
        else:
            if name in self.clock.timer_names:
                self.clock.cancel_timer(name)
            if on:
                self.clock.set_timer(name, dt.timedelta(seconds=self.cfg.guard_sweep_s),
                                     callback=lambda _e: self._run_guard())

    def halt_new_pairs(self) -> None:
        """Live shutdown: open no new pair (entry, rebalance); pairs in flight still complete or unwind."""
        self._draining = True

    # -- restart (live / paper) -------------------------------------------------------------------------------------
    def _ask_journal(self) -> dict | None:
        """The journal's view of this symbol ({phase, settlements_held, pair, position}) or None without a journal."""
        if RESTORE_ENDPOINT not in self.msgbus.endpoints():
            return None
        box: dict = {}
        self.msgbus.send(RESTORE_ENDPOINT, RestoreRequest(self.symbol, lambda state: box.setdefault("state", state)))
        return box.get("state")

    def _prepare_resume(self) -> None:
        self._restored = self._ask_journal()
        state = self._restored or {}
        if state.get("settlements_held") is not None:
            self.settlements_held = int(state["settlements_held"])
        pair = state.get("pair") or {}
        if pair and not pair.get("done"):
            # a pair was in flight when the node stopped: an order it sent may still reach the exchange (until its
            # recvWindow expires); the execution client reports it when it does. Decide after the pair's timeout.
            started = int(pair.get("started_ts") or pair.get("ts_last") or 0)
            self._resume_at_ns = started + int((self.cfg.leg_timeout_s + RESUME_GRACE_S) * 1e9)
        self._resume_pending = True

    def _resume(self) -> None:
        """Derive the phase from the reconciled positions (called on marks until it has run once).

        Both legs held: in carry (an interrupted exit/unwind is completed; drift is the rebalance check's job).
        Nothing held: flat. One leg held: an interrupted entry is completed with a NEW order for the missing leg when
        the market is within the slippage band of the held leg's entry price (per `basisbot.legs`: a catch-up that
        fails unwinds the held leg); otherwise, or after an interrupted exit/reduce, the held leg is unwound. Orders
        sent before the restart are never sent again: the exchange has them or not, and reconciliation put the ones
        it has (and their fills) in the cache, claimed by this strategy."""
        now = self.clock.timestamp_ns()
        if now < self._resume_at_ns or self.spot_px is None or self.mark is None:
            return
        stale = [o for o in self.cache.orders_open(strategy_id=self.id)
                 if o.instrument_id in (self.spot_id, self.perp_id)]
        if stale:
            if not self._resume_cancels_ns:
                self._resume_cancels_ns = now
                self._decide("resume", f"cancelling {len(stale)} open order(s) left from before the restart")
                for o in stale:
                    self.cancel_order(o)
            if now - self._resume_cancels_ns < int(self.cfg.leg_timeout_s * 1e9):
                return
        self._resume_pending = False
        self._qty = None
        spot, perp = self.spot_qty(), self.perp_qty()
        spot_lot, perp_lot = self.spot.size_increment.as_double(), self.perp.size_increment.as_double()
        has_spot = carry.round_down(max(spot, 0.0), spot_lot) > 0
        has_perp = perp <= -perp_lot / 2
        pair = (self._restored or {}).get("pair") or {}
        intent = pair.get("intent") if pair and not pair.get("done") else None
        held = f"spot {spot:g}, perp {perp:g}" + (f"; journal: {intent} in flight" if intent else "")
        if perp >= perp_lot / 2:
            self.phase = Phase.IN_CARRY
            self._unwind(f"resume: {held}: the perp leg is long, not a carry")
        elif not has_spot and not has_perp:
            self.phase = Phase.FLAT
            self._decide("resume", f"{held}: flat")
        elif has_spot and has_perp:
            self.phase = Phase.IN_CARRY
            self._decide("resume", f"{held}: both legs held, in carry")
            if intent in ("exit", "unwind"):
                self._exit(f"resume: completing the interrupted {intent}")
        elif intent in ("exit", "unwind", "reduce"):
            self.phase = Phase.IN_CARRY
            self._unwind(f"resume: {held}: one leg left by the interrupted {intent}")
        else:
            leg = "spot" if has_spot else "perp"
            iid = self.spot_id if has_spot else self.perp_id
            positions = self.cache.positions_open(instrument_id=iid, strategy_id=None)
            ref = positions[0].avg_px_open if positions else 0.0
            px = self.spot_px if has_spot else self.mark
            moved = abs(px / ref - 1) if ref else float("inf")
            if moved > self.cfg.slippage_band:
                self.phase = Phase.IN_CARRY
                self._unwind(f"resume: {held}: only the {leg} leg is held and the market moved {moved:.3%} from its "
                             f"entry (band {self.cfg.slippage_band:.3%})")
            else:
                self._catch_up_after_restart(leg, spot, perp, ref, held)

    def _catch_up_after_restart(self, held: str, spot: float, perp: float, ref: float, why: str) -> None:
        spot_lot, perp_lot = self.spot.size_increment.as_double(), self.perp.size_increment.as_double()
        if held == "spot":
            spot_t, perp_t = spot, carry.round_down(spot * self.cfg.hedge_ratio, perp_lot)
        else:
            spot_t, perp_t = carry.round_down(abs(perp) / self.cfg.hedge_ratio, spot_lot), abs(perp)
        missing = "perp" if held == "spot" else "spot"
        if (perp_t if missing == "perp" else spot_t) <= 0:
            self.phase = Phase.IN_CARRY
            self._unwind(f"resume: {why}: the missing leg rounds to zero")
            return
        self._decide("resume", f"{why}: completing the entry with the {missing} leg (within the slippage band)")
        now = self.clock.timestamp_ns()
        pair, _ = LegPair.start("enter", now, int(self.cfg.leg_timeout_s * 1e9), ref, self.cfg.slippage_band,
                                spot=(1, spot_t), perp=(-1, perp_t))
        kept = pair.legs[held]
        kept.filled, kept.status = kept.target, LegStatus.FILLED
        pair.history.append((now, "resume", f"{held} held {kept.target:g} (reconciled); catch up {missing}"))
        self.phase = Phase.ENTERING
        self.pair = pair
        self._order_leg = {}
        self._pair_logged = 0
        target = pair.legs[missing]
        self._execute([Instruction("send", missing, target.side, target.target, "catch up after restart")])
        if not pair.done():
            self.clock.set_time_alert_ns(f"{self.symbol}:legs:resume:{now}", pair.deadline_ns, self._on_pair_deadline)

    def on_stop(self) -> None:
        # legs stay hedged; nothing half-sent is left (in-flight legs finish or are unwound by the venue state)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    # -- market data ------------------------------------------------------------------------------------------------
    @property
    def spot_px(self) -> float | None:
        """Latest spot price: the newer of the last trade and the last bar close (backtest), or the quote mid (live)."""
        if self._spot_bar_type is None:
            q = self.cache.quote_tick(self.spot_id)
            return None if q is None else (q.bid_price.as_double() + q.ask_price.as_double()) / 2
        tick = self.cache.trade_tick(self.spot_id)
        bar = self.cache.bar(self._spot_bar_type)
        if tick is not None and (bar is None or tick.ts_event > bar.ts_event):
            return tick.price.as_double()
        return None if bar is None else bar.close.as_double()

    def on_funding_rate(self, update: FundingRateUpdate) -> None:
        self.predicted_rate = float(update.rate)
        if update.interval:
            self.interval_minutes = int(update.interval)
        jobs = self.calendar.on_funding_info(update.next_funding_ns, update.interval, self.clock.timestamp_ns(),
                                             ACTED_ON)
        for job in jobs:
            self._driver.schedule(job)
        self._run_carry()  # entry and hedge checks follow the predicted rate (live: every mark-price message)

    def on_mark_price(self, update: MarkPriceUpdate) -> None:
        self.mark = update.value.as_double()
        if self._resume_pending:
            self._resume()
        self._run_guard()  # risk follows every mark

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
        if self.mark is None or self._draining or self._resume_pending:
            return
        if self._busy():
            return
        if self.phase is Phase.FLAT:
            if carry.decide(self.rules, self._view()) is carry.Action.ENTER:
                self._enter()
        elif self.phase is Phase.IN_CARRY:
            self._rebalance_if_drifted()

    def _on_job(self, job: Job) -> None:
        if job.kind is JobKind.DECISION:
            if self.predicted_rate is not None:
                self._journal("prediction", self.clock.timestamp_ns(), settlement_ns=job.settlement_ns,
                              predicted_rate=self.predicted_rate, interval_minutes=self.interval_minutes,
                              position_qty=self.perp_qty(), mark=self.mark)
            if self.phase is Phase.IN_CARRY and carry.decide(self.rules, self._view()) is carry.Action.EXIT:
                self._exit(reason=f"predicted {self.predicted_rate:.6f} below exit_apr before settlement")
        elif job.kind is JobKind.BOOKING:
            self.calendar.settled(job.settlement_ns)
            self._journal("booking", self.clock.timestamp_ns(), settlement_ns=job.settlement_ns,
                          predicted_rate=self.predicted_rate, position_qty=self.perp_qty(),
                          phase=self.phase.value)
            if self.phase is Phase.IN_CARRY:
                self.settlements_held += 1

    def _positions(self) -> tuple[float, float]:
        if self._qty is None:
            self._qty = (float(self.portfolio.net_position(self.spot_id)), float(self.portfolio.net_position(self.perp_id)))
        return self._qty

    def spot_qty(self) -> float:
        q = self._positions()[0]
        if self._spot_bar_type is None and q > 0:
            # live: what the spot account holds, on the lot (the position can exceed it by a fraction of a lot:
            # the exchange takes the buy fee in the base asset, nautilus keeps the position on the size precision)
            q = carry.round_down(min(q, self._spot_held()), self.spot.size_increment.as_double())
        return q

    def perp_qty(self) -> float:
        return self._positions()[1]

    def on_position_event(self, event) -> None:
        self._qty = None  # re-read from the portfolio on next use

    def _enter(self) -> None:
        spot_px = self.spot_px
        if spot_px is None:
            return  # no spot price yet
        notional = self.cfg.notional_usdt
        if self.cfg.max_notional_usdt:
            notional = min(notional, self.cfg.max_notional_usdt)
        spot_qty, perp_qty = carry.leg_quantities(
            notional, spot_px, self.cfg.hedge_ratio,
            self.spot.size_increment.as_double(), self.perp.size_increment.as_double(),
        )
        problem = self._precheck(spot_qty, perp_qty, spot_px)
        if problem:
            self._decide("skip_entry", problem)
            return
        self._decide("enter", f"predicted {self.predicted_rate:.6f}/{self.interval_minutes}m, "
                              f"spot {spot_qty} perp {perp_qty}")
        self.phase = Phase.ENTERING
        self.settlements_held = 0
        self._start_pair("enter", spot=(1, spot_qty), perp=(-1, perp_qty))

    def _precheck(self, spot_qty: float, perp_qty: float, spot_px: float) -> str | None:
        """Both legs must pass instrument limits and balances before either is sent."""
        for inst, qty, px in ((self.spot, spot_qty, spot_px), (self.perp, perp_qty, self.mark)):
            if qty <= 0 or (inst.min_quantity and qty < inst.min_quantity.as_double()):
                return f"{inst.id}: quantity {qty} below the minimum {inst.min_quantity}"
            if inst.min_notional and qty * px < inst.min_notional.as_double():
                return f"{inst.id}: notional {qty * px:.2f} below the minimum {inst.min_notional}"
        spot_acct = self.portfolio.account(self.spot_id.venue)
        perp_acct = self.portfolio.account(self.perp_id.venue)
        spot_free = spot_acct.balance_free(USDT).as_double() if spot_acct else 0.0
        perp_free = perp_acct.balance_free(USDT).as_double() if perp_acct else 0.0
        spot_cost = spot_qty * spot_px * (1 + self.cfg.spot_taker_fee) * 1.01
        if spot_cost > spot_free:
            return f"spot balance {spot_free:.2f} USDT < {spot_cost:.2f} needed"
        perp_margin = perp_qty * self.mark / self.cfg.leverage * 1.01 + perp_qty * self.mark * self.cfg.perp_taker_fee
        if perp_margin > perp_free:
            return f"perp balance {perp_free:.2f} USDT < {perp_margin:.2f} initial margin needed"
        return None

    # -- two-leg execution (basisbot.legs decides, this executes) ----------------------------------------------------
    def _start_pair(self, intent: str, spot: tuple[int, float], perp: tuple[int, float]) -> None:
        now = self.clock.timestamp_ns()
        pair, instructions = LegPair.start(intent, now, int(self.cfg.leg_timeout_s * 1e9), self.mark or 0.0,
                                           self.cfg.slippage_band, spot=spot, perp=perp)
        self.pair = pair
        self._order_leg = {}
        self._pair_logged = 0
        self._execute(instructions)
        if not pair.done():
            self.clock.set_time_alert_ns(f"{self.symbol}:legs:{intent}:{now}", pair.deadline_ns, self._on_pair_deadline)

    def _journal_pair(self) -> None:
        pair = self.pair
        if pair is None:
            return
        for ts, event, detail in pair.history[self._pair_logged:]:
            self._journal("leg", ts, pair_id=f"{self.symbol}-{pair.intent}-{pair.started_ns}", intent=pair.intent,
                          event=event, detail=detail, status=pair.status.value,
                          targets={n: l.side * l.target for n, l in pair.legs.items()},
                          filled={n: l.filled for n, l in pair.legs.items()})
        self._pair_logged = len(pair.history)

    def _execute(self, instructions: list[Instruction]) -> None:
        # send back to back: the gap between the legs is what the benchmark measures
        for ins in instructions:
            if ins.kind == "send":
                inst, iid = (self.spot, self.spot_id) if ins.leg == "spot" else (self.perp, self.perp_id)
                qty = carry.round_down(ins.qty, inst.size_increment.as_double())
                if qty <= 0:
                    continue
                side = OrderSide.BUY if ins.side > 0 else OrderSide.SELL
                reduce_only = ins.leg == "perp" and self.pair.intent != "enter" or "unwind" in ins.reason
                order = self.order_factory.market(iid, side, inst.make_qty(qty),
                                                  reduce_only=reduce_only and ins.leg == "perp",
                                                  tags=[self.pair.intent.upper()])
                self._order_leg[order.client_order_id] = ins.leg
                self.submit_order(order)
            elif ins.kind == "cancel":
                for oid, leg in self._order_leg.items():
                    order = self.cache.order(oid)
                    if leg == ins.leg and order is not None and order.is_open:
                        self.cancel_order(order)
        self._journal_pair()
        if self.pair is not None and self.pair.done():
            self._on_pair_done()

    def _on_pair_deadline(self, _event) -> None:
        if self.pair is not None and not self.pair.done():
            self._decide("leg_timeout", f"{self.pair.intent}: legs not filled within {self.cfg.leg_timeout_s}s")
            self._execute(self.pair.timeout(self.clock.timestamp_ns()))

    def _leg_of(self, event) -> str | None:
        return self._order_leg.get(event.client_order_id) if self.pair is not None else None

    def on_order_filled(self, event) -> None:
        self._qty = None
        leg = self._leg_of(event)
        if leg is not None:
            self._execute(self.pair.filled(leg, event.last_qty.as_double(), self.clock.timestamp_ns()))

    def _on_leg_failed(self, event, what: str) -> None:
        leg = self._leg_of(event)
        if leg is None:
            return
        reason = f"{what}: {getattr(event, 'reason', '')}".strip(": ")
        self._decide("leg_failed", f"{leg} {event.client_order_id} {reason}")
        px = self.spot_px if leg == "spot" else self.mark
        self._execute(self.pair.failed(leg, reason, self.clock.timestamp_ns(), px))

    def on_order_rejected(self, event) -> None:
        self._on_leg_failed(event, "rejected")

    def on_order_denied(self, event) -> None:
        self._on_leg_failed(event, "denied")

    def on_order_canceled(self, event) -> None:
        self._on_leg_failed(event, "canceled")

    def on_order_expired(self, event) -> None:
        self._on_leg_failed(event, "expired")

    def _on_pair_done(self) -> None:
        pair = self.pair
        if pair.status is PairStatus.STUCK:
            self.log.error(f"{self.symbol}: {pair.intent} could not complete: {pair.history[-1]}")
        if pair.intent == "enter":
            self.phase = Phase.IN_CARRY if pair.status is PairStatus.COMPLETE else Phase.FLAT
        elif pair.intent == "reduce":
            self.phase = Phase.IN_CARRY
        else:
            flat = self.spot_qty() < self.spot.size_increment.as_double() and self.perp_qty() == 0
            self.phase = Phase.FLAT if flat else Phase.IN_CARRY
        self.pair = None
        if self._guard_event_pending is not None:
            self._guard_event_pending.spot_qty_after = self.spot_qty()
            self._guard_event_pending.perp_qty_after = self.perp_qty()
            self._guard_event_pending = None
        if self._liquidation_pending:
            self._liquidation_pending = False
            self._unwind("perp leg liquidated")

    def _busy(self) -> bool:
        return self.pair is not None and not self.pair.done()

    def _unwind(self, reason: str) -> None:
        """Close whatever is held on either leg (market), ending flat."""
        self._decide("unwind", reason)
        self._close_both("unwind")

    def _exit(self, reason: str) -> None:
        self._decide("exit", reason)
        self._close_both("exit")

    def _close_both(self, intent: str) -> None:
        if self._busy():
            return
        spot = carry.round_down(max(self.spot_qty(), 0.0), self.spot.size_increment.as_double())
        if self._spot_bar_type is None:
            spot = min(spot, self._spot_sellable())
        perp = self.perp_qty()
        self.phase = Phase.EXITING
        self._start_pair(intent, spot=(-1, spot), perp=(1 if perp < 0 else -1, abs(perp)))

    def _spot_held(self) -> float:
        acct = self.portfolio.account(self.spot_id.venue)
        total = acct.balance_total(self.spot.base_currency) if acct is not None else None
        return float("inf") if total is None else total.as_double()

    def _spot_sellable(self) -> float:
        """Live: the base asset the spot account holds, on the lot. The exchange takes the buy fee in the base asset
        and nautilus keeps the position on the instrument's size precision, so the position can exceed it by a
        fraction of a lot; selling the position would be refused."""
        acct = self.portfolio.account(self.spot_id.venue)
        free = acct.balance_free(self.spot.base_currency) if acct is not None else None
        if free is None:
            return float("inf")
        return carry.round_down(free.as_double(), self.spot.size_increment.as_double())

    def _rebalance_if_drifted(self) -> None:
        if self._busy() or self.calendar.in_blackout(self.clock.timestamp_ns()):
            return  # no perp-leg rebalancing around settlements
        spot, perp = self.spot_qty(), self.perp_qty()
        if spot <= 0 and perp == 0:
            self.phase = Phase.FLAT
            return
        if spot <= 0 or perp >= 0:
            self._unwind("one leg missing")
            return
        drift = carry.hedge_drift(spot, perp, self.cfg.hedge_ratio)
        if abs(drift) <= self.cfg.rebalance_tolerance:
            return
        target = spot * self.cfg.hedge_ratio
        step = self.perp.size_increment.as_double()
        delta = round((target - abs(perp)) / step) * step
        if abs(delta) < step / 2:
            return
        self._decide("rebalance", f"hedge drift {drift:+.2%}, perp {perp} → {-target:.6f}")
        self._start_pair("rebalance", spot=(1, 0.0), perp=(-1 if delta > 0 else 1, abs(delta)))

    # -- margin and guard -------------------------------------------------------------------------------------------
    def _on_margin_state(self, state: PerpMarginState) -> None:
        prev, self.margin_state = self.margin_state, state
        # the liquidation price depends on the state, not on the mark: compute it once per state
        self._lp = (margin.liquidation_price(state.side, state.qty, state.entry_price, state.wallet, self.table)
                    if state.side != 0 and state.qty > 0 else None)
        if (self._restore_after_reduce and state.side != 0 and prev is not None and state.qty < prev.qty
                and self.mark is not None and self.thresholds is not None):
            # Binance releases isolated margin pro rata on a reduce, which leaves the liquidation price where it was:
            # put back what restores the target distance for the smaller position (the released margin covers it).
            self._restore_after_reduce = False
            need = margin.margin_to_add(state.side, state.qty, state.entry_price, self.mark, state.wallet,
                                        self.thresholds.target_distance, self.table)
            if need > 0:
                ts = self.clock.timestamp_ns()
                self._decide("restore_margin", f"after reduce: add {need:.2f} USDT to restore "
                                               f"{self.thresholds.target_distance:.0%} distance")
                self.msgbus.send(ADJUST_MARGIN_ENDPOINT, AdjustMarginRequest(
                    self.symbol, need, True, "restore distance after reduce", ts))

    def _on_liquidated(self, event: Liquidated) -> None:
        self._decide("liquidated", f"perp {event.side * event.qty} at {event.price:.2f}, wallet lost {event.wallet_lost:.2f}")
        self.guard_latched = guard.Step.NONE
        # the perp leg is gone: sell the spot leg at once, never hold it naked
        if self._busy():
            self._liquidation_pending = True
        else:
            self._unwind("perp leg liquidated")

    def _run_guard(self) -> None:
        st = self.margin_state
        if not self.cfg.guard_enabled or self.thresholds is None or st is None or st.side == 0 or self.mark is None:
            return
        if self.phase is not Phase.IN_CARRY or self._lp is None:
            return
        if guard.quiet(self.thresholds, self.guard_latched, margin.distance_to_liquidation(st.side, self.mark, self._lp)):
            return
        decision, self.guard_latched = guard.evaluate(
            self.thresholds, side=st.side, qty=st.qty, entry=st.entry_price, mark=self.mark, wallet=st.wallet,
            table=self.table, free_collateral=st.perp_free + st.spot_free, latched=self.guard_latched,
            liquidation_price=self._lp,
        )
        if decision.step is guard.Step.NONE:
            return
        ts = self.clock.timestamp_ns()
        ev = GuardEvent(ts, self.symbol, decision.step.name.lower(), decision.distance, decision.liquidation_price,
                        self.mark, decision.add_margin, decision.reduce_fraction, decision.reason)
        self.log_.guard.append(ev)
        self.log.warning(f"guard {self.symbol}: {decision.step.name} {decision.reason}")
        self._journal("guard", ts, step=ev.step, distance=ev.distance, liquidation_price=ev.liquidation_price,
                      mark=ev.mark, add_margin=ev.add_margin, reduce_fraction=ev.reduce_fraction, reason=ev.reason)
        if decision.add_margin > 0:
            self.msgbus.send(ADJUST_MARGIN_ENDPOINT, AdjustMarginRequest(self.symbol, decision.add_margin, True,
                                                                         decision.reason, ts))
        if decision.step is guard.Step.CLOSE:
            self._exit(reason=f"guard: {decision.reason}")
        elif decision.step is guard.Step.REDUCE and decision.reduce_fraction > 0:
            self._restore_after_reduce = self.cfg.margin_mode == "isolated"
            self._reduce_both(decision.reduce_fraction, decision.reason)
        if self._busy():
            self._guard_event_pending = ev  # quantities after the action are known when its legs complete
        else:
            ev.spot_qty_after, ev.perp_qty_after = self.spot_qty(), self.perp_qty()

    def _reduce_both(self, fraction: float, reason: str) -> None:
        """Reduce both legs by `fraction`, keeping the hedge ratio (perp rounded up to its lot, spot to match)."""
        if self._busy():
            return
        spot, perp = self.spot_qty(), self.perp_qty()
        perp_step, spot_step = self.perp.size_increment.as_double(), self.spot.size_increment.as_double()
        perp_cut = min(abs(perp), max(perp_step, math.ceil(abs(perp) * fraction / perp_step - 1e-9) * perp_step))
        remaining_perp = abs(perp) - perp_cut
        if remaining_perp <= perp_step / 2:
            self._exit(reason=f"guard reduce to zero: {reason}")
            return
        spot_cut = carry.round_down(max(spot - remaining_perp / self.cfg.hedge_ratio, 0.0), spot_step)
        self._decide("reduce", f"{fraction:.1%}: perp -{perp_cut:g}, spot -{spot_cut:g} ({reason})")
        self._start_pair("reduce", spot=(-1, spot_cut), perp=(1, perp_cut))

    def _decide(self, action: str, reason: str) -> None:
        ts = self.clock.timestamp_ns()
        self.log_.decisions.append((ts, action, reason))
        self.log.info(f"{self.symbol}: {action}: {reason}")
        self._journal("decision", ts, action=action, reason=reason, phase=self.phase.value)

    def _journal(self, kind: str, ts: int, **data) -> None:
        """Publish for the journal (live/paper write it; nothing subscribes in a backtest)."""
        self.msgbus.publish(JOURNAL_TOPIC, JournalRecord(kind, self.symbol, ts, data))
