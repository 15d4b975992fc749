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
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import BarType, FundingRateUpdate, MarkPriceUpdate
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Currency
from nautilus_trader.trading.strategy import Strategy

from basisbot import carry, guard, margin
from basisbot.hedge_monitor import HedgeMonitor
from basisbot.legs import Instruction, LegPair, LegStatus, PairStatus, retry_delay_s
from basisbot.quantities import ZERO, exact, round_down, round_up
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
    "horizon_hours", "persistence", "spread",
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
    entry_apr: float = 0.0
    exit_apr: float = -0.05
    min_hold_intervals: int = 3
    horizon_hours: float = 720.0
    persistence: float = 0.7
    persistence_halflife: float = 21.0
    spread: float = 0.0002
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
        self.memory = carry.FundingMemory(config.persistence_halflife)  # the settled level (causal)
        self._rate_at_decision: tuple[float, float] | None = None
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
        self._pair_seq = 0
        self._halted: str | None = None  # escalation: why new pairs are halted for this symbol
        self._stuck_count = 0
        self._stuck_retry_ns = 0
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
        self._spot_lot = self.spot.size_increment.as_decimal()
        self._perp_lot = self.perp.size_increment.as_decimal()
        self._hedge = HedgeMonitor(self.symbol, self._perp_lot, exact(self.cfg.hedge_ratio))
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

            self._driver = AsyncIOSchedulerDriver(self._scheduler, on_job, asyncio.get_event_loop(),
                                                  self.clock.timestamp_ns)
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
                                      carry.Fees(c.spot_taker_fee, c.perp_taker_fee), c.horizon_hours,
                                      c.persistence, c.spread)
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
        has_spot = spot > 0 and spot * exact(self.cfg.hedge_ratio) >= self._perp_lot
        has_perp = perp <= -self._perp_lot
        pair = (self._restored or {}).get("pair") or {}
        intent = pair.get("intent") if pair and not pair.get("done") else None
        held = f"spot {spot:g}, perp {perp:g}" + (f"; journal: {intent} in flight" if intent else "")
        if perp >= self._perp_lot:
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
            moved = abs(px / ref - 1) if ref else float("inf")  # prices: floats are fine
            if moved > self.cfg.slippage_band:
                self.phase = Phase.IN_CARRY
                self._unwind(f"resume: {held}: only the {leg} leg is held and the market moved {moved:.3%} from its "
                             f"entry (band {self.cfg.slippage_band:.3%})")
            else:
                self._catch_up_after_restart(leg, spot, perp, ref, held)

    def _catch_up_after_restart(self, held: str, spot: Decimal, perp: Decimal, ref: float, why: str) -> None:
        spot_t, perp_t = carry.hedge_quantities(held, spot, perp, self.cfg.hedge_ratio, self._spot_lot, self._perp_lot)
        missing = "perp" if held == "spot" else "spot"
        if (perp_t if missing == "perp" else spot_t) <= 0:
            self.phase = Phase.IN_CARRY
            self._unwind(f"resume: {why}: the missing leg rounds to zero")
            return
        self._decide("resume", f"{why}: completing the entry with the {missing} leg (within the slippage band)")
        now = self.clock.timestamp_ns()
        pair, _ = LegPair.start("enter", now, self._cancel_after_ns, ref, self.cfg.slippage_band,
                                spot=(1, spot_t), perp=(-1, perp_t))
        kept = pair.legs[held]
        kept.filled, kept.status = kept.target, LegStatus.FILLED
        pair.history.append((now, "resume", f"{held} held {kept.target} (reconciled); catch up {missing}"))
        self.phase = Phase.ENTERING
        target = pair.legs[missing]
        self._run_pair(pair, [Instruction("send", missing, target.side, target.target, "catch up after restart")])

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
        if self.pair is None and self._qty is None:
            self._check_hedge()  # positions changed since the last look: no leg may stay alone

    # -- carry ------------------------------------------------------------------------------------------------------
    def _view(self) -> carry.CarryView:
        return carry.CarryView(
            predicted_rate=self.predicted_rate,
            interval_hours=self.interval_minutes / 60,
            in_carry=self.phase is Phase.IN_CARRY,
            settlements_held=self.settlements_held,
            in_blackout=self.calendar.in_blackout(self.clock.timestamp_ns()),
            persistent_hourly=self.memory.hourly,
        )

    def _run_carry(self) -> None:
        if self.mark is None or self._draining or self._resume_pending:
            return
        if self._busy():
            return
        if self._halted is not None:  # escalated: no new pairs; only the hedge check closes what is left
            self._check_hedge()
            return
        if self.phase is Phase.FLAT:
            if carry.decide(self.rules, self._view()) is carry.Action.ENTER:
                self._enter()
        elif self.phase is Phase.IN_CARRY:
            self._rebalance_if_drifted()

    def _on_job(self, job: Job) -> None:
        if job.kind is JobKind.DECISION:
            if self.predicted_rate is not None:
                self._rate_at_decision = (self.predicted_rate, self.interval_minutes / 60)
                self._journal("prediction", self.clock.timestamp_ns(), settlement_ns=job.settlement_ns,
                              predicted_rate=self.predicted_rate, interval_minutes=self.interval_minutes,
                              position_qty=float(self.perp_qty()), mark=self.mark)
            if self.phase is Phase.IN_CARRY and carry.decide(self.rules, self._view()) is carry.Action.EXIT:
                self._exit(reason=f"predicted {self.predicted_rate:.6f} below exit_apr before settlement")
        elif job.kind is JobKind.BOOKING:
            self.calendar.settled(job.settlement_ns)
            if self._rate_at_decision is not None:  # the last prediction before the settlement, now settled
                self.memory.observe(*self._rate_at_decision)
                self._rate_at_decision = None
            self._journal("booking", self.clock.timestamp_ns(), settlement_ns=job.settlement_ns,
                          predicted_rate=self.predicted_rate, position_qty=float(self.perp_qty()),
                          phase=self.phase.value)
            if self.phase is Phase.IN_CARRY:
                self.settlements_held += 1

    def _positions(self) -> tuple[Decimal, Decimal]:
        if self._qty is None:
            self._qty = (exact(self.portfolio.net_position(self.spot_id)), exact(self.portfolio.net_position(self.perp_id)))
        return self._qty

    def spot_qty(self) -> Decimal:
        """The spot leg: the position, capped at what the spot account holds, on the lot (the exchange may take the
        buy fee in the base asset, so the account can hold a fraction of a lot less than the fills added up)."""
        q = self._positions()[0]
        if q > 0:
            held = self._spot_held()
            q = round_down(q if held is None else min(q, held), self._spot_lot)
        return q

    def perp_qty(self) -> Decimal:
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
        spot_qty, perp_qty = carry.leg_quantities(notional, spot_px, self.cfg.hedge_ratio, self._spot_lot,
                                                  self._perp_lot)
        problem = self._precheck(spot_qty, perp_qty, spot_px)
        if problem:
            self._decide("skip_entry", problem)
            return
        self._decide("enter", f"predicted {self.predicted_rate:.6f}/{self.interval_minutes}m, "
                              f"spot {spot_qty} perp {perp_qty}")
        self.phase = Phase.ENTERING
        self.settlements_held = 0
        self._start_pair("enter", spot=(1, spot_qty), perp=(-1, perp_qty))

    def _below_minimum(self, inst, qty: Decimal, px: float | None) -> str | None:
        if qty <= 0 or (inst.min_quantity and qty < inst.min_quantity.as_decimal()):
            return f"{inst.id}: quantity {qty} below the minimum {inst.min_quantity}"
        if inst.min_notional and px and float(qty) * px < inst.min_notional.as_double():
            return f"{inst.id}: notional {float(qty) * px:.2f} below the minimum {inst.min_notional}"
        return None

    def _precheck(self, spot_qty: Decimal, perp_qty: Decimal, spot_px: float) -> str | None:
        """Both legs must pass instrument limits and balances before either is sent."""
        for inst, qty, px in ((self.spot, spot_qty, spot_px), (self.perp, perp_qty, self.mark)):
            problem = self._below_minimum(inst, qty, px)
            if problem:
                return problem
        spot_acct = self.portfolio.account(self.spot_id.venue)
        perp_acct = self.portfolio.account(self.perp_id.venue)
        spot_free = spot_acct.balance_free(USDT).as_double() if spot_acct else 0.0
        perp_free = perp_acct.balance_free(USDT).as_double() if perp_acct else 0.0
        spot_cost, perp_margin = carry.entry_costs(float(spot_qty), spot_px, self.cfg.spot_taker_fee, float(perp_qty),
                                                   self.mark, self.cfg.leverage, self.cfg.perp_taker_fee)
        if spot_cost > spot_free:
            return f"spot balance {spot_free:.2f} USDT < {spot_cost:.2f} needed"
        if perp_margin > perp_free:
            return f"perp balance {perp_free:.2f} USDT < {perp_margin:.2f} initial margin needed"
        return None

    # -- two-leg execution (basisbot.legs decides, this executes) ----------------------------------------------------
    # A pair's orders are cancelled at half the leg timeout and taken as lost at three quarters of it, so that the
    # unwind of a lone leg is on its way within `leg_timeout_s` whatever the venue does (never answers included).
    @property
    def _cancel_after_ns(self) -> int:
        return int(self.cfg.leg_timeout_s * 0.5e9)

    @property
    def _expire_after_ns(self) -> int:
        return int(self.cfg.leg_timeout_s * 0.75e9)

    def _start_pair(self, intent: str, spot: tuple[int, Decimal], perp: tuple[int, Decimal]) -> None:
        pair, instructions = LegPair.start(intent, self.clock.timestamp_ns(), self._cancel_after_ns, self.mark or 0.0,
                                           self.cfg.slippage_band, spot=spot, perp=perp)
        self._run_pair(pair, instructions)

    def _run_pair(self, pair: LegPair, instructions: list[Instruction]) -> None:
        self.pair = pair
        self._order_leg = {}
        self._pair_logged = 0
        self._pair_seq += 1
        name = f"{self.symbol}:legs:{pair.intent}:{self._pair_seq}"
        self._driver.call_at(name + ":cancel", pair.deadline_ns, lambda p=pair: self._on_pair_deadline(p))
        self._driver.call_at(name + ":lost", pair.started_ns + self._expire_after_ns,
                             lambda p=pair: self._on_pair_expired(p))
        self._execute(instructions)

    def _journal_pair(self) -> None:
        pair = self.pair
        if pair is None:
            return
        for ts, event, detail in pair.history[self._pair_logged:]:
            self._journal("leg", ts, pair_id=f"{self.symbol}-{pair.intent}-{pair.started_ns}", intent=pair.intent,
                          event=event, detail=detail, status=pair.status.value,
                          targets={n: float(l.side * l.target) for n, l in pair.legs.items()},
                          filled={n: float(l.filled) for n, l in pair.legs.items()})
        self._pair_logged = len(pair.history)

    def _execute(self, instructions: list[Instruction]) -> None:
        pair = self.pair
        queue = list(instructions)
        # send back to back: the gap between the legs is what the benchmark measures
        while queue and self.pair is pair and pair is not None:
            ins = queue.pop(0)
            if ins.kind == "send":
                if ins.attempt > 0:  # a retry: later, with backoff, never in a hot loop
                    delay = retry_delay_s(ins.attempt, self.cfg.leg_timeout_s)
                    self._pair_seq += 1
                    self._driver.call_at(
                        f"{self.symbol}:retry:{self._pair_seq}", self.clock.timestamp_ns() + int(delay * 1e9),
                        lambda p=pair, i=ins: self._send_later(p, i))
                    continue
                queue += self._send(pair, ins)
            elif ins.kind == "cancel":
                for oid, leg in self._order_leg.items():
                    order = self.cache.order(oid)
                    if leg == ins.leg and order is not None and order.is_open:
                        self.cancel_order(order)
        if self.pair is pair and pair is not None:
            self._journal_pair()
            if pair.done():
                self._on_pair_done()

    def _send_later(self, pair: LegPair, ins: Instruction) -> None:
        if self.pair is pair and not pair.done():
            self._execute([Instruction(ins.kind, ins.leg, ins.side, ins.qty, ins.reason)])

    def _send(self, pair: LegPair, ins: Instruction) -> list[Instruction]:
        """Submit one leg's order for what can actually trade: on the lot, a spot sale capped at what the account
        holds, a reduce-only perp order capped at the position, nothing below the venue's minimums (dust)."""
        spot = ins.leg == "spot"
        inst, iid = (self.spot, self.spot_id) if spot else (self.perp, self.perp_id)
        asked = exact(ins.qty)
        qty = round_down(asked, self._spot_lot if spot else self._perp_lot)
        reduce_only = not spot and (pair.intent != "enter" or "unwind" in ins.reason)
        why = ""
        if spot and ins.side < 0:
            held = self._spot_sellable()
            if held is not None and qty > held:
                qty, why = held, f"(the spot account holds {held})"
        if reduce_only:
            pos = abs(self.perp_qty())
            if qty > pos:
                qty, why = pos, f"(the perp position is {pos})"
        if qty > 0:
            small = self._below_minimum(inst, qty, self.spot_px if spot else self.mark)
            if small and (reduce_only or (spot and ins.side < 0)):
                qty, why = ZERO, f"(dust: {small})"
        follow = pair.sent(ins.leg, qty, self.clock.timestamp_ns(), why) if qty < asked else []
        if qty <= 0:
            return follow
        side = OrderSide.BUY if ins.side > 0 else OrderSide.SELL
        order = self.order_factory.market(iid, side, inst.make_qty(qty), reduce_only=reduce_only,
                                          tags=[pair.intent.upper()])
        self._order_leg[order.client_order_id] = ins.leg
        self.submit_order(order)
        return follow

    def _on_pair_deadline(self, pair: LegPair) -> None:
        if self.pair is pair and not pair.done():
            self._decide("leg_timeout", f"{pair.intent}: legs not filled within {self._cancel_after_ns / 1e9:g}s: cancel")
            self._execute(pair.timeout(self.clock.timestamp_ns()))

    def _on_pair_expired(self, pair: LegPair) -> None:
        if self.pair is pair and not pair.done():
            self._decide("leg_lost", f"{pair.intent}: no final answer within {self._expire_after_ns / 1e9:g}s: "
                                     "orders taken as lost, the hedge is restored from the positions")
            self._execute(pair.expire(self.clock.timestamp_ns()))

    def _leg_of(self, event) -> str | None:
        return self._order_leg.get(event.client_order_id) if self.pair is not None else None

    def on_order_filled(self, event) -> None:
        self._qty = None
        leg = self._leg_of(event)
        if leg is not None:
            self._execute(self.pair.filled(leg, event.last_qty.as_decimal(), self.clock.timestamp_ns()))

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
        pair, self.pair = self.pair, None
        self._qty = None
        now = self.clock.timestamp_ns()
        if pair.status is PairStatus.STUCK:
            self._escalate(f"{pair.intent} could not complete: {pair.history[-1][2]}", now)
        lone = self._lone_leg()
        spot, perp = self.spot_qty(), self.perp_qty()
        if lone is None:
            self.phase = Phase.FLAT if perp == 0 and spot < self._spot_lot else Phase.IN_CARRY
            if self.phase is Phase.FLAT or pair.status is PairStatus.COMPLETE:
                self._clear_escalation(now)
        else:
            self.phase = Phase.IN_CARRY
        if self._guard_event_pending is not None:
            self._guard_event_pending.spot_qty_after = float(spot)
            self._guard_event_pending.perp_qty_after = float(perp)
            self._guard_event_pending = None
        self._check_hedge()

    # -- the one-leg invariant --------------------------------------------------------------------------------------
    def _lone_leg(self) -> str | None:
        return self._hedge.lone_leg(self.spot_qty(), self.perp_qty())

    def _check_hedge(self) -> None:
        """Whatever happened (liquidation, rejected or lost order, reconciliation surprise), a leg held alone is closed
        at once: outside any pair in flight, in every phase, blackout or not. After an escalation the attempts go on
        at a bounded rate."""
        if self._busy() or self._resume_pending or self.spot is None:
            return
        lone = self._lone_leg()
        if lone is None:
            return
        now = self.clock.timestamp_ns()
        if now < self._stuck_retry_ns:
            return
        self.phase = Phase.IN_CARRY
        self._unwind(f"one leg alone: {lone} {self.spot_qty() if lone == 'spot' else self.perp_qty()}")

    def _escalate(self, reason: str, now: int) -> None:
        """A leg that cannot be closed: logged, journaled (alerts follow the journal), new pairs halted for this
        symbol, and further closing attempts spaced out (doubling, at most every 5 minutes) instead of spinning."""
        self._stuck_count += 1
        wait_s = min(self.cfg.leg_timeout_s * 2 ** self._stuck_count, 300.0)
        self._stuck_retry_ns = now + int(wait_s * 1e9)
        self._halted = reason
        self.log.error(f"{self.symbol}: ESCALATION: {reason}; new pairs halted, next attempt in {wait_s:g}s")
        self._decide("escalate", f"{reason}; new pairs halted; next attempt in {wait_s:g}s")
        self._driver.call_at(f"{self.symbol}:stuck:{self._stuck_count}:{now}", self._stuck_retry_ns, self._check_hedge)

    def _clear_escalation(self, now: int) -> None:
        if self._halted is not None:
            self._decide("escalation_cleared", f"hedge restored after: {self._halted}")
        self._halted = None
        self._stuck_count = 0
        self._stuck_retry_ns = 0

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
        spot = max(self.spot_qty(), ZERO)
        sellable = self._spot_sellable()
        if sellable is not None:
            spot = min(spot, sellable)
        perp = self.perp_qty()
        self.phase = Phase.EXITING
        self._start_pair(intent, spot=(-1, spot), perp=(1 if perp < 0 else -1, abs(perp)))

    def _spot_held(self) -> Decimal | None:
        acct = self.portfolio.account(self.spot_id.venue)
        total = acct.balance_total(self.spot.base_currency) if acct is not None else None
        return None if total is None else total.as_decimal()

    def _spot_sellable(self) -> Decimal | None:
        """The base asset the spot account has free, on the lot: what a sale can actually deliver."""
        acct = self.portfolio.account(self.spot_id.venue)
        free = acct.balance_free(self.spot.base_currency) if acct is not None else None
        if free is None:
            return None
        return round_down(free.as_decimal(), self._spot_lot)

    def _rebalance_if_drifted(self) -> None:
        if self._busy() or self.calendar.in_blackout(self.clock.timestamp_ns()):
            return  # no perp-leg rebalancing around settlements
        spot, perp = self.spot_qty(), self.perp_qty()
        if self._lone_leg() is not None:
            self._check_hedge()
            return
        if spot <= 0 and perp == 0:
            self.phase = Phase.FLAT
            return
        if spot <= 0 or perp >= 0:
            self._unwind("one leg missing")
            return
        drift = carry.hedge_drift(float(spot), float(perp), self.cfg.hedge_ratio)
        if abs(drift) <= self.cfg.rebalance_tolerance:
            return
        delta = carry.rebalance_delta(spot, perp, self.cfg.hedge_ratio, self._perp_lot)
        if delta == 0 or self._halted is not None:
            return
        self._decide("rebalance", f"hedge drift {drift:+.2%}, perp {perp} by {-delta:+}")
        self._start_pair("rebalance", spot=(1, ZERO), perp=(-1 if delta > 0 else 1, abs(delta)))

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
        self._qty = None
        # the perp leg is gone: sell the spot leg at once, never hold it naked. A pair in flight is abandoned (its
        # open orders cancelled): its perp orders can no longer do anything useful.
        if self._busy():
            pair = self.pair
            for oid in list(self._order_leg):
                order = self.cache.order(oid)
                if order is not None and order.is_open:
                    self.cancel_order(order)
            pair.history.append((self.clock.timestamp_ns(), "abandoned", "perp leg liquidated"))
            self._journal_pair()
            self.pair = None
        self._check_hedge()

    def _run_guard(self) -> None:
        st = self.margin_state
        if not self.cfg.guard_enabled or self.thresholds is None or st is None or st.side == 0 or self.mark is None:
            return
        if self._lp is None:  # the guard runs in every phase that holds a perp (entering and exiting included)
            return
        if guard.quiet(self.thresholds, self.guard_latched, margin.distance_to_liquidation(st.side, self.mark, self._lp)):
            return
        decision, latched = guard.evaluate(
            self.thresholds, side=st.side, qty=st.qty, entry=st.entry_price, mark=self.mark, wallet=st.wallet,
            table=self.table, free_collateral=st.perp_free + st.spot_free, latched=self.guard_latched,
            liquidation_price=self._lp,
        )
        if decision.step is guard.Step.NONE:
            self.guard_latched = latched
            return
        if self._busy() and decision.step >= guard.Step.REDUCE and decision.add_margin <= 0:
            # a pair is in flight and decides the position: the step fires again on the first mark after it settles
            self.guard_latched = min(latched, guard.Step(decision.step - 1))
            return
        self.guard_latched = latched
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
            ev.spot_qty_after, ev.perp_qty_after = float(self.spot_qty()), float(self.perp_qty())

    def _reduce_both(self, fraction: float, reason: str) -> None:
        """Reduce both legs by `fraction`, keeping the hedge ratio (perp rounded up to its lot, spot to match)."""
        if self._busy():
            return
        spot_cut, perp_cut, rest = carry.reduce_quantities(self.spot_qty(), self.perp_qty(), fraction,
                                                           self.cfg.hedge_ratio, self._spot_lot, self._perp_lot)
        if rest == 0:
            self._exit(reason=f"guard reduce to zero: {reason}")
            return
        self._decide("reduce", f"{fraction:.1%}: perp -{perp_cut}, spot -{spot_cut} ({reason})")
        self._start_pair("reduce", spot=(-1, spot_cut), perp=(1, perp_cut))

    def _decide(self, action: str, reason: str) -> None:
        ts = self.clock.timestamp_ns()
        self.log_.decisions.append((ts, action, reason))
        self.log.info(f"{self.symbol}: {action}: {reason}")
        self._journal("decision", ts, action=action, reason=reason, phase=self.phase.value)

    def _journal(self, kind: str, ts: int, **data) -> None:
        """Publish for the journal (live/paper write it; nothing subscribes in a backtest)."""
        self.msgbus.publish(JOURNAL_TOPIC, JournalRecord(kind, self.symbol, ts, data))
