"""BasisCarryStrategy: long spot, short the USDⓈ-M perpetual at a hedge ratio, to earn funding.

The carry and guard rules; the execution plumbing (positions, leg pairs, the one-leg invariant, restart, journal)
is `basisbot.strategies.two_leg.TwoLegStrategy`, and every decision is a pure function of `basisbot` (carry, guard_state,
margin, schedule, resume). Risk runs on the MARK price (`on_mark_price`), decisions on the PREDICTED funding rate
(`on_funding_rate`); last trade prices are only used to size orders.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import msgspec
from nautilus_trader.model.data import FundingRateUpdate

from basisbot.config.schema import FeeSettings
from basisbot.config.strategy_fields import TUNABLE_FIELDS
from basisbot.core import carry, guard, resume
from basisbot.core import defaults as D
from basisbot.core.guard import Thresholds
from basisbot.core.guard_state import GuardState
from basisbot.core.legs import Intent, PairStatus
from basisbot.core.portfolio import Bid, VolEstimator
from basisbot.core.quantities import ZERO
from basisbot.core.schedule import Job, JobKind, SettlementCalendar, Windows
from basisbot.core.units import HOUR_NS
from basisbot.nautilus.messages import (
    ADJUST_MARGIN_ENDPOINT,
    PORTFOLIO_ENDPOINT,
    RISK_ENDPOINT,
    AdjustMarginRequest,
    BudgetRequest,
    EntryCheck,
    Liquidated,
    PerpMarginState,
)
from basisbot.strategies.two_leg import USDT, GuardEvent, Phase, StrategyLog, TwoLegConfig, TwoLegStrategy
from basisbot.venues import DEFAULT_EXCHANGE, get_profile

__all__ = ["BasisCarryConfig", "BasisCarryStrategy", "GuardEvent", "Phase", "StrategyLog", "TUNABLE_FIELDS"]

FEES = FeeSettings()  # the default fee rates
ACTED_ON = frozenset({JobKind.DECISION, JobKind.BOOKING})  # the jobs this strategy has work for


class BasisCarryConfig(TwoLegConfig, frozen=True):
    # the perp's tier table as its venue profile's rows (`VenueProfile.tier_rows`: Binance's leverageBracket shape,
    # OKX's position tiers by size) and the venue (`[exchange] name`) whose profile reads them and supplies the
    # liquidation price the guard uses
    brackets: list[dict] = []
    exchange: str = DEFAULT_EXCHANGE
    notional_usdt: float = D.NOTIONAL_USDT
    max_notional_usdt: float | None = None
    leverage: int = D.LEVERAGE
    margin_mode: str = D.MARGIN_MODE
    entry_apr: float = D.ENTRY_APR
    exit_apr: float = D.EXIT_APR
    min_hold_intervals: int = D.MIN_HOLD_INTERVALS
    horizon_hours: float = D.HORIZON_HOURS
    persistence: float = D.PERSISTENCE
    persistence_halflife: float = D.PERSISTENCE_HALFLIFE
    spread: float = D.SPREAD
    rebalance_tolerance: float = D.REBALANCE_TOLERANCE
    spot_taker_fee: float = FEES.spot_taker
    perp_taker_fee: float = FEES.perp_taker
    guard: Thresholds | None = None  # the guard ladder; None: no thresholds (the guard only watches)
    schedule: Windows = Windows()  # the windows around each settlement


class BasisCarryStrategy(TwoLegStrategy):
    def __init__(self, config: BasisCarryConfig):
        super().__init__(config)
        self.cfg: BasisCarryConfig = config
        self.venue = get_profile(config.exchange)
        self.table = self.venue.tiers_from_rows(config.symbol, config.brackets)
        self.calendar = SettlementCalendar(config.symbol, Windows())
        self.guard: GuardState | None = None
        self._derive()
        self.predicted_rate: float | None = None
        self.interval_minutes: int = 480
        self.memory = carry.FundingMemory(config.persistence_halflife)  # the settled level (causal)
        self._rate_at_decision: tuple[float, float] | None = None
        self.margin_state: PerpMarginState | None = None
        self.vol = VolEstimator()  # recent daily volatility of the mark, for the capital budget
        self._vol_hour = -1
        self._scale = 1.0  # notional scale from the capital budget (compounding)
        self._budget_said: bool | None = None
        self._budget: bool | None = None  # whether a capital budget ranks this symbol (`_budgeted`, on first use)
        self._risk: bool | None = None  # whether risk limits ([risk]) check entries (`_risk_refusal`, on first use)
        self._guard_event_pending: GuardEvent | None = None
        self._failed_entries = 0  # entries in a row that did not complete
        self._entry_after_ns = 0  # no new entry before (backoff after failed entries)
        self._skipping: str | None = None  # the kind of entry pre-check failure logged (until an entry passes)

    def _derive(self) -> None:
        """Rebuild what derives from `cfg`: carry rules, guard thresholds, settlement windows."""
        c = self.cfg
        self.rules = carry.CarryRules(c.entry_apr, c.exit_apr, c.min_hold_intervals, c.hedge_ratio,
                                      carry.Fees(c.spot_taker_fee, c.perp_taker_fee), c.horizon_hours,
                                      c.persistence, c.spread)
        self.thresholds = c.guard
        if getattr(self, "guard", None) is None:
            self.guard = GuardState(self.thresholds, self.table, c.margin_mode == "isolated", band=self.mark_band,
                                    liquidation=self.venue.liquidation_price)
        self.guard.thresholds = self.thresholds
        self._hedge_checked = None  # the hedge ratio or tolerance may have changed: check the drift again
        self.calendar.windows = c.schedule

    def apply_config(self, fields: dict) -> dict:
        """Apply a validated live config change (`basisbot.config.reload.SymbolChange.strategy_fields()`), called by
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

    def on_funding_rate(self, update: FundingRateUpdate) -> None:
        self.predicted_rate = float(update.rate)
        mark = self.mark
        if mark is not None and self._budgeted():  # the budget's bid needs the volatility (nothing else reads it)
            hour = update.ts_event // HOUR_NS
            if hour != self._vol_hour:
                self._vol_hour = hour
                self.vol.on_price(mark)
        interval = update.interval
        if interval:
            self.interval_minutes = int(interval)
        if update.next_funding_ns != self.calendar.next_ns:  # not the settlement already announced: maybe news
            for job in self.calendar.on_funding_info(update.next_funding_ns, interval, self.clock.timestamp_ns(),
                                                     ACTED_ON):
                self._driver.schedule(job)  # the jobs of a newly announced settlement (the calendar knows what is new)
        if mark is not None:
            self._run_carry()  # entry and hedge checks follow the predicted rate (live: every mark-price message)

    def _on_risk_mark(self, mark: float) -> None:
        low, high = self.guard.quiet_band
        if not low < mark < high:
            self._run_guard()  # risk follows every mark (inside the quiet band nothing can fire)

    def _view(self) -> carry.CarryView:
        return carry.CarryView(
            predicted_rate=self.predicted_rate,
            interval_hours=self.interval_minutes / 60,
            in_carry=self.phase is Phase.IN_CARRY,
            settlements_held=self.settlements_held,
            in_blackout=self.calendar.in_blackout(self.clock.timestamp_ns()),
            persistent_hourly=self.memory.hourly,
        )

    # -- what a backtest's event stream asks (`basisbot.backtest.stream`): could this strategy act in the hour ahead?
    def _state_after(self, before: list) -> tuple:
        """(calendar, memory, settlements held, interval minutes, rate at decision) after the funding updates and
        jobs of `before` (time-ordered): what `on_funding_rate` and `_on_job` would leave. With nothing before, the
        strategy's own calendar and memory (a caller copies before changing them); otherwise copies (shallow: both
        hold only immutable values)."""
        if not before:
            return self.calendar, self.memory, self.settlements_held, self.interval_minutes, self.predicted_rate
        state = self.inert_state()
        for item in before:
            self.advance_inert(state, item)
        return tuple(state[:5])

    def inert_state(self) -> list:
        """What the funding updates and jobs ahead change of the strategy, copied (shallow: calendar and memory hold
        only immutable values): [calendar, memory, settlements held, interval minutes, predicted rate, the rate the
        last decision saw]. `advance_inert` moves it on; `prediction_is_inert` and `job_is_inert` take it as
        `state`."""
        return [copy.copy(self.calendar), copy.copy(self.memory), self.settlements_held, self.interval_minutes,
                self.predicted_rate, self._rate_at_decision]

    def advance_inert(self, state: list, item) -> list[Job]:
        """`state` (`inert_state`) after one funding update or job, as `on_funding_rate` and `_on_job` leave the
        strategy when they act on nothing else; the jobs a funding update newly announces (the ones it schedules)."""
        cal = state[0]
        if isinstance(item, Job):
            if item.kind is JobKind.DECISION and state[4] is not None:
                state[5] = (state[4], state[3] / 60)
            elif item.kind is JobKind.BOOKING:
                cal.settled(item.settlement_ns)
                if state[5] is not None:
                    state[1].observe(*state[5])
                    state[5] = None
                state[2] += self.phase is Phase.IN_CARRY
            return []
        state[4] = float(item.rate)
        if item.interval:
            state[3] = int(item.interval)
        if item.next_funding_ns != cal.next_ns:
            return cal.on_funding_info(item.next_funding_ns, item.interval, item.ts_event, ACTED_ON)
        return []

    def predictions_inert_at_any_rate(self) -> bool:
        """Whether every funding update would leave the strategy sending nothing, whatever it says, as long as
        nothing else changes: in carry a prediction only checks the hedge, once per position change."""
        return self.phase is Phase.IN_CARRY and self._hedge_settled() and self._rules_idle()

    def _rules_idle(self) -> bool:
        """No budget ranking, no pair in flight, not halted, resuming or draining: only the carry rules could act."""
        return not (self._budgeted() or self._busy() or self._halted is not None or self._resume_pending
                    or self._draining)

    def _hedge_settled(self) -> bool:
        """The hedge was checked for the positions as they are (a prediction in carry checks it once per change)."""
        return self._qty is not None and self._hedge_checked is self._qty

    def prediction_is_inert(self, rate: float, interval: int | None, next_funding_ns: int | None, at_ns: int,
                            before: list = (), prices: tuple | None = None, state: list | None = None) -> bool:
        """Whether a predicted rate at `at_ns` (after `before`: funding updates and jobs of the hour) would leave the
        strategy sending nothing, logging nothing and reading no price but whether a mark exists. Conservative: False
        when unsure. With `prices` (spot price, the marks it may read), an entry the carry rules want is inert if it
        would stop at the pre-check failure already logged at each of those marks, the accounts as they are now
        (`entry_skipped_quietly`: the caller answers for the accounts not moving until then). `state`
        (`inert_state`) instead of `before`: the state they leave."""
        if not self._rules_idle():
            return False
        if self.phase is Phase.IN_CARRY:
            return self._hedge_settled()
        if self.phase is not Phase.FLAT:
            return False
        if at_ns < self._entry_after_ns:
            return True
        cal, memory, held, interval_now, _ = self._state_after(list(before)) if state is None else state[:5]
        if interval:
            interval_now = int(interval)
        if next_funding_ns != cal.next_ns:
            cal = copy.copy(cal)
            cal.on_funding_info(next_funding_ns, interval, at_ns, ACTED_ON)
        view = carry.CarryView(rate, interval_now / 60, False, held, cal.in_blackout(at_ns), memory.hourly)
        if carry.decide(self.rules, view) is not carry.Action.ENTER:
            return True
        return prices is not None and self.entry_skipped_quietly(*prices)

    def entry_skipped_quietly(self, spot_px: float, marks: tuple[float, ...]) -> bool:
        """Whether an entry tried at `spot_px`, with the perp's mark at each of `marks`, stops at the pre-check
        failure already logged (sending nothing, logging nothing), the accounts as they are now."""
        if self._skipping is None or not marks:
            return False
        spot_qty, perp_qty = self._entry_quantities(spot_px)
        for mark in marks:
            problem = self._precheck(spot_qty, perp_qty, spot_px, mark)
            if problem is None or problem[0] != self._skipping:
                return False
        return True

    def job_is_inert(self, job: Job, at_ns: int, before: list = (), state: list | None = None) -> bool:
        """Whether `job` at `at_ns` (after `before`, or with `state` as `inert_state` has it) would send nothing and
        read no price."""
        if job.kind is JobKind.BOOKING:
            return True
        if job.kind is not JobKind.DECISION or self._busy() or self._halted is not None:
            return False
        if self.phase is Phase.FLAT:
            return True
        if self.phase is not Phase.IN_CARRY or self._budgeted():
            return False
        cal, memory, held, interval, rate = self._state_after(list(before)) if state is None else state[:5]
        view = carry.CarryView(rate, interval / 60, True, held, cal.in_blackout(at_ns), memory.hourly)
        return carry.decide(self.rules, view) is not carry.Action.EXIT

    def _run_carry(self) -> None:
        """The carry rules at a new prediction (the caller has a mark price)."""
        if self._draining or self._resume_pending:
            return
        if self._busy():
            return
        if self._halted is not None:  # escalated: no new pairs; only the hedge check closes what is left
            self._check_hedge()
            return
        if self.phase is Phase.FLAT:
            if self.clock.timestamp_ns() < self._entry_after_ns or not self.control.entries_allowed:
                return
            if carry.decide(self.rules, self._view()) is carry.Action.ENTER and self._budget_allows(held=False):
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
            elif self.phase is Phase.IN_CARRY and not self._budget_allows(held=True):
                self._exit(reason="re-ranked out of the capital budget")
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

    def _resume_rules(self, state: dict) -> None:
        """Restart: the funding memory, and the prediction still to book, of a run that never stopped (journal); a
        guard reduce begun before the stop whose margin was not put back: the guard resumes it (latched, the margin
        put back at the first margin state and mark) instead of reducing a second time at the same distance."""
        self.memory, self._rate_at_decision = resume.resume_funding(
            state.get("predictions") or (), self.clock.timestamp_ns(), self.cfg.persistence_halflife)
        if state.get("reduce_unrestored") and self.cfg.margin_mode == "isolated":
            self.guard.resume_after_reduce()
            self._decide("resume", "a guard reduce was under way at the stop: its margin is put back, not reduced again")

    def _budgeted(self) -> bool:
        """Whether a capital budget ([portfolio]) ranks this symbol: there from the start, or never (looked up once:
        `msgbus.endpoints()` builds a list on every call)."""
        if self._budget is None:
            self._budget = PORTFOLIO_ENDPOINT in self.msgbus.endpoints()
        return self._budget

    def _budget_allows(self, held: bool) -> bool:
        """With a capital budget ([portfolio]), whether this symbol's carry ranks among those the capital holds now."""
        if not self._budgeted():
            return True
        apr = carry.expected_net_apr(self.rules, self._view())
        if apr is None:
            return held
        t = self.thresholds.target_distance if self.thresholds else D.TARGET_DISTANCE
        bid = Bid(self.symbol, apr, self.cfg.notional_usdt, self.cfg.hedge_ratio, self.cfg.leverage, t,
                  self.vol.daily, held, str(self.perp_id))
        box: dict = {}
        self.msgbus.send(PORTFOLIO_ENDPOINT, BudgetRequest(bid, lambda ok, scale: box.update(ok=ok, scale=scale)))
        ok, self._scale = box.get("ok", True), box.get("scale", 1.0)
        if ok != self._budget_said:
            self._budget_said = ok
            self._decide("budget", f"{'in' if ok else 'out of'} the capital budget (expected net {apr:+.2%} APR, "
                                   f"daily vol {self.vol.daily:.2%})")
        return ok

    def _enter(self) -> None:
        spot_px = self.spot_px
        if spot_px is None:
            return  # no spot price yet
        spot_qty, perp_qty = self._entry_quantities(spot_px)
        problem = self._precheck(spot_qty, perp_qty, spot_px) or self._risk_refusal(spot_qty, perp_qty, spot_px)
        if problem:  # logged once per streak: live, the same check fails on every mark-price message until it clears
            if problem[0] != self._skipping:
                self._skipping = problem[0]
                self._decide("skip_entry", f"{problem[1]} (not logged again while it lasts)")
            return
        self._skipping = None
        self._decide("enter", f"predicted {self.predicted_rate:.6f}/{self.interval_minutes}m, "
                              f"spot {spot_qty} perp {perp_qty}")
        self.phase = Phase.ENTERING
        self.settlements_held = 0
        self._start_pair(Intent.ENTER, spot=(1, spot_qty), perp=(-1, perp_qty))

    def _risk_refusal(self, spot_qty: Decimal, perp_qty: Decimal, spot_px: float) -> tuple[str, str] | None:
        """With risk limits ([risk]), the risk actor's refusal of this entry (gross notional cap, stale data)."""
        if self._risk is None:
            self._risk = RISK_ENDPOINT in self.msgbus.endpoints()
        if not self._risk:
            return None
        box: dict = {}
        notional = float(spot_qty) * spot_px + float(perp_qty) * (self.mark or spot_px)
        self.msgbus.send(RISK_ENDPOINT, EntryCheck(self.symbol, notional, lambda why: box.update(why=why)))
        why = box.get("why")
        return None if why is None else ("risk", f"risk limit: {why}")

    def _entry_quantities(self, spot_px: float) -> tuple[Decimal, Decimal]:
        notional = self.cfg.notional_usdt * self._scale
        if self.cfg.max_notional_usdt:
            notional = min(notional, self.cfg.max_notional_usdt)
        return carry.leg_quantities(notional, spot_px, self.cfg.hedge_ratio, self._spot_lot, self._perp_lot)

    def _precheck(self, spot_qty: Decimal, perp_qty: Decimal, spot_px: float,
                  mark: float | None = None) -> tuple[str, str] | None:
        """Both legs must pass instrument limits and balances before either is sent: (kind, why) of the first
        failure. `mark`: the perp's mark to check at (default the latest)."""
        mark = self.mark if mark is None else mark
        for inst, qty, px in ((self.spot, spot_qty, spot_px), (self.perp, perp_qty, mark)):
            problem = self._below_minimum(inst, qty, px)
            if problem:
                return "minimum", problem
        spot_acct = self.portfolio.account(self.spot_id.venue)
        perp_acct = self.portfolio.account(self.perp_id.venue)
        spot_free = spot_acct.balance_free(USDT).as_double() if spot_acct else 0.0
        perp_free = perp_acct.balance_free(USDT).as_double() if perp_acct else 0.0
        spot_cost, perp_margin = carry.entry_costs(float(spot_qty), spot_px, self.cfg.spot_taker_fee, float(perp_qty),
                                                   mark, self.cfg.leverage, self.cfg.perp_taker_fee)
        if spot_cost > spot_free:
            return "spot_balance", f"spot balance {spot_free:.2f} USDT < {spot_cost:.2f} needed"
        if perp_margin > perp_free:
            return "perp_balance", f"perp balance {perp_free:.2f} USDT < {perp_margin:.2f} initial margin needed"
        return None

    def _on_pair_done(self) -> None:
        pair, self.pair = self.pair, None
        self._positions_changed()
        now = self.clock.timestamp_ns()
        if pair.status is PairStatus.STUCK:
            self._escalate(f"{pair.intent} could not complete: {pair.history[-1][2]}", now)
        if pair.intent == Intent.ENTER:
            # an entry that did not complete is not retried at once: each failure in a row doubles the wait (from
            # the leg timeout, at most an hour), so a venue that keeps refusing a leg meets no order storm
            self._failed_entries = 0 if pair.status is PairStatus.COMPLETE else self._failed_entries + 1
            if self._failed_entries:
                wait_s = self._entry_backoff_s()
                self._entry_after_ns = now + int(wait_s * 1e9)
                self._decide("entry_backoff", f"entry failed {self._failed_entries} time(s) in a row: next entry "
                                              f"in {wait_s:g}s at the earliest")
        lone = self._lone_leg()
        spot, perp = self.spot_qty(), self.perp_qty()
        if lone is None:
            self.phase = Phase.FLAT if perp == 0 and spot < self._spot_lot else Phase.IN_CARRY
            if self.phase is Phase.FLAT or pair.status is PairStatus.COMPLETE:
                if self._halted is not None and self._failed_entries:  # the backoff counts from the recovery
                    self._entry_after_ns = max(self._entry_after_ns, now + int(self._entry_backoff_s() * 1e9))
                self._clear_escalation(now)
        else:
            self.phase = Phase.IN_CARRY
        if self._guard_event_pending is not None:
            self._guard_event_pending.spot_qty_after = float(spot)
            self._guard_event_pending.perp_qty_after = float(perp)
            self._guard_event_pending = None
        self._check_hedge()
        self._continue_flatten()

    def _entry_backoff_s(self) -> float:
        return min(self.cfg.leg_timeout_s * 2 ** (self._failed_entries - 1), 3600.0)

    def _unwind(self, reason: str) -> None:
        """Close whatever is held on either leg (market), ending flat."""
        self._decide("unwind", reason)
        self._close_both(Intent.UNWIND)

    def _exit(self, reason: str) -> None:
        self._decide("exit", reason)
        self._close_both(Intent.EXIT)

    def _rebalance_if_drifted(self) -> None:
        if self._hedge_settled():
            return  # the positions have not changed since they were found on target (the usual case: checked first)
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
        delta = carry.rebalance_delta(spot, perp, self.cfg.hedge_ratio, self._perp_lot)
        if abs(drift) <= self.cfg.rebalance_tolerance or delta == 0:
            self._hedge_checked = self._qty
            return
        if self._halted is not None:
            return
        self._decide("rebalance", f"hedge drift {drift:+.2%}, perp {perp} by {-delta:+}")
        self._start_pair(Intent.REBALANCE, spot=(1, ZERO), perp=(-1 if delta > 0 else 1, abs(delta)))

    def _on_margin_state(self, state: PerpMarginState) -> None:
        self.margin_state = state
        self._restore_margin(self.guard.on_margin_state(state, self.mark))

    def _restore_margin(self, need: float) -> None:
        """Put back the margin an isolated reduce released (`GuardState.restore_due`)."""
        if need > 0:
            ts = self.clock.timestamp_ns()
            self._decide("restore_margin", f"after reduce: add {need:.2f} USDT to restore "
                                           f"{self.thresholds.target_distance:.0%} distance")
            self.msgbus.send(ADJUST_MARGIN_ENDPOINT, AdjustMarginRequest(
                self.symbol, need, True, "restore distance after reduce", ts))

    def _on_liquidated(self, event: Liquidated) -> None:
        kind = getattr(event, "kind", "liquidation")
        if kind == "liquidation":
            self._decide("liquidated", f"perp {event.side * event.qty} at {event.price:.2f}, wallet lost "
                                       f"{event.wallet_lost:.2f}")
            self.guard.liquidated()
        else:
            # auto-deleveraging or an insurance-fund close: part or all of the perp closed by the venue; the spot it
            # no longer hedges is sold (all of it when the perp is gone: the lone-leg check)
            what = "auto-deleveraged (ADL)" if kind == "adl" else "closed by the insurance fund"
            self.log.error(f"{self.symbol}: perp {event.side * event.qty:+} {what} at {event.price:.2f} by the venue")
            self._decide(kind, f"perp {event.side * event.qty:+} {what} at {event.price:.2f}; the spot is brought "
                               f"back to the hedge")
            self.venue_closed_part()
        self._positions_changed()
        # the perp leg is (partly) gone: sell the unhedged spot at once, never hold it naked. A pair in flight is
        # abandoned (its open orders cancelled): its perp orders can no longer do anything useful.
        if self._busy():
            pair = self.pair
            for oid in list(self._order_leg):
                order = self.cache.order(oid)
                if order is not None and order.is_open:
                    self.cancel_order(order)
            pair.history.append((self.clock.timestamp_ns(), "abandoned", f"perp leg closed by the venue ({kind})"))
            self._journal_pair()
            self.pair = None
        self._check_hedge()

    def _run_guard(self) -> None:
        mark = self.mark
        if not self.cfg.guard_enabled or mark is None:
            return
        self._restore_margin(self.guard.restore_due(mark))  # a margin state that came before any mark
        decision = self.guard.check(mark, self._busy())  # in every phase that holds a perp
        if decision is None:
            return
        ts = self.clock.timestamp_ns()
        ev = GuardEvent(ts, self.symbol, decision.step.name.lower(), decision.distance, decision.liquidation_price,
                        mark, decision.add_margin, decision.reduce_fraction, decision.reason)
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
            self.guard.reducing()
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
        self._start_pair(Intent.REDUCE, spot=(-1, spot_cut), perp=(1, perp_cut))
