"""Two-leg execution for a strategy that holds spot against a perpetual: the plumbing under the carry rules.

`TwoLegStrategy` is a nautilus `Strategy` that runs the same in a backtest (BacktestEngine + simulation modules) and
live (TradingNode + ccxt.pro clients); the world it runs in hands it its scheduler driver (`config.scheduler`):
- positions, read exactly (`Decimal` on the lots), the spot leg capped at what the account holds;
- leg pairs (`basisbot.core.legs` decides, this executes): both legs sent back to back, what can actually trade sent (a
  sale capped at the holdings, a reduce-only order at the position, dust not sent), retries delayed and capped,
  orders cancelled at half the leg timeout and taken as lost at three quarters of it;
- the one-leg invariant: a leg held alone is closed at once, in every phase; a leg that cannot be closed escalates
  (journaled, alerted, new pairs halted) instead of spinning;
- restart: the journal's last pair and the reconciled positions give a plan (`basisbot.core.resume`), carried out here;
- the journal stream (`JournalRecord`s on the message bus: live and paper write them, backtests ignore them);
- the operator's controls (`ControlCommand` on `CONTROL_TOPIC`, rules in `basisbot.core.control`): pause stops new
  entries (the subclass asks `control.entries_allowed`), flatten closes both legs together as one closing pair once no
  pair is in flight, then stays paused. A flatten does not wait for the settlement blackout (README "Controls").

Subclasses supply the rules: `_on_pair_done`, `_unwind`, `_exit`, `_run_guard`, `_on_job`, `_on_margin_state`,
`_on_liquidated`, and the phase.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Currency
from nautilus_trader.trading.strategy import Strategy

from basisbot.core import control, resume
from basisbot.core import defaults as D
from basisbot.core.hedge_monitor import lone_leg
from basisbot.core.legs import Instruction, Intent, LegPair, LegStatus, retry_delay_s
from basisbot.core.mark_watch import MarkBand, mark_watch
from basisbot.core.quantities import ZERO, exact, round_down
from basisbot.nautilus.messages import (
    CONTROL_TOPIC,
    JOURNAL_TOPIC,
    RESTORE_ENDPOINT,
    ControlCommand,
    JournalRecord,
    RestoreRequest,
    liquidation_topic,
    margin_topic,
    settlements_held_topic,
)
from basisbot.nautilus.scheduler import make_driver

USDT = Currency.from_str("USDT")
RESUME_GRACE_S = 6.0  # live restart: an order sent before a stop can reach the exchange until its recvWindow (5 s)


class TwoLegConfig(StrategyConfig, frozen=True):
    symbol: str
    spot_instrument_id: str
    perp_instrument_id: str
    spot_bar_type: str | None = None  # backtests price the spot leg from bars; live from quotes
    hedge_ratio: float = D.HEDGE_RATIO
    leg_timeout_s: float = D.LEG_TIMEOUT_S
    slippage_band: float = D.SLIPPAGE_BAND
    guard_enabled: bool = True
    guard_sweep_s: int = D.GUARD_SWEEP_S  # periodic backstop to the event-driven guard (0 = off)
    scheduler: str = "clock"  # "clock": nautilus time alerts (backtests); "asyncio": APScheduler on the event loop (live)
    journal: bool = True  # publish JournalRecords (live and paper write them; a backtest, which has none, says False)


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


class TwoLegStrategy(Strategy):
    def __init__(self, config: TwoLegConfig):
        super().__init__(config)
        # nautilus' `config` is a read-only attribute: the strategy reads its parameters from `cfg`, which a live
        # config reload replaces at a safe point; backtests never change it
        self.cfg = config
        self.symbol = config.symbol
        self.spot_id = InstrumentId.from_str(config.spot_instrument_id)
        self.perp_id = InstrumentId.from_str(config.perp_instrument_id)
        self.log_ = StrategyLog()
        # the marks this strategy need not see (`basisbot.core.mark_watch`): the guard keeps its quiet range; it is woken
        # while the next mark has work whatever its price (a restart to resume, positions changed outside a pair)
        self.mark_band = MarkBand()
        self._spot_bar_type: BarType | None = None
        self.phase = Phase.FLAT
        self.settlements_held = 0
        self._qty: tuple[Decimal, Decimal] | None = None  # (spot, perp) net positions, refreshed on position events
        self._idle_key: tuple | None = None  # what `idle` last checked for a lone leg, and what it found
        self._idle_lone: str | None = None
        self.pair: LegPair | None = None
        self._order_leg: dict = {}
        self._pair_seq = 0
        self._pair_logged = 0
        self._halted: str | None = None  # escalation: why new pairs are halted for this symbol
        self._stuck_count = 0
        self._stuck_retry_ns = 0
        # until then, a spot leg above the hedge is sold: the venue closed part of the perp on its own (ADL)
        self._venue_cut_until_ns = 0
        self._driver = None
        self._draining = False  # live shutdown: no new pairs
        # live restart: resume from what the exchange holds (reconciled into the cache) and the journal's last pair
        self._resume_pending = False
        self._resume_at_ns = 0
        self._resume_cancels_ns = 0
        self._restored: dict | None = None
        self.control = control.ControlState()  # the operator's pause / flatten (journaled; restored at restart)
        self._flatten_wake_ns = 0

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
        if self.cfg.spot_bar_type:
            # prices are read from the cache when needed (entry sizing, pre-checks): no handler per trade
            self._spot_bar_type = BarType.from_str(self.cfg.spot_bar_type)
            self.subscribe_bars(self._spot_bar_type)
        else:
            self.subscribe_quote_ticks(self.spot_id)
        self.subscribe_mark_prices(self.perp_id)  # the data; nautilus' own handler leaves it to the mark watch:
        mark_watch(self.msgbus, self.perp_id).add(self.mark_band, self._on_mark)
        self.subscribe_funding_rates(self.perp_id)
        self.msgbus.subscribe(margin_topic(self.symbol), self._on_margin_state)
        self.msgbus.subscribe(liquidation_topic(self.symbol), self._on_liquidated)
        self.msgbus.subscribe(CONTROL_TOPIC, self._on_control)
        self._driver = make_driver(self.cfg.scheduler, self.clock, self._on_job)
        self._set_guard_sweep()
        if self._spot_bar_type is None:
            self._prepare_resume()  # live / paper: the node has reconciled what the exchange holds (backtests: flat)

    def _set_guard_sweep(self) -> None:
        """(Re)schedule the periodic guard sweep from `cfg` (on start and after a live config change)."""
        on = self.cfg.guard_enabled and self.cfg.guard_sweep_s > 0
        self._driver.every(f"{self.symbol}:guard_sweep", self.cfg.guard_sweep_s, self._run_guard if on else None)

    def on_stop(self) -> None:
        mark_watch(self.msgbus, self.perp_id).remove(self.mark_band)
        if self.msgbus.is_subscribed(CONTROL_TOPIC, self._on_control):
            self.msgbus.unsubscribe(CONTROL_TOPIC, self._on_control)
        # legs stay hedged; nothing half-sent is left (in-flight legs finish or are unwound by the venue state)
        if self._driver is not None:
            self._driver.shutdown()

    # -- restart, positions, leg pairs, the one-leg invariant, the journal -------------------------------------------
    def halt_new_pairs(self) -> None:
        """Live shutdown: open no new pair (entry, rebalance); pairs in flight still complete or unwind."""
        self._draining = True

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
        if self._restored is not None:
            self._resume_rules(self._restored)
            self.msgbus.subscribe(settlements_held_topic(self.symbol), self._on_settlements_held)
        if state.get("settlements_held") is not None:
            self.settlements_held = int(state["settlements_held"])
        saved = state.get("control")
        if saved and saved.get("state") in ("paused", "flattening"):
            # a paused or flattening node comes back so; a flatten interrupted by the stop goes on after the resume
            self.control = control.ControlState.from_mode(saved["state"], saved.get("origin") or "",
                                                          saved.get("reason") or "", int(saved.get("ts") or 0))
            self._decide("control", f"restored {self.control.mode} (set by {self.control.origin or '?'}: "
                                    f"{self.control.reason or '-'})")
        pair = state.get("pair") or {}
        if pair and not pair.get("done"):
            # a pair was in flight when the node stopped: an order it sent may still reach the exchange (until its
            # recvWindow expires); the execution client reports it when it does. Decide after the pair's timeout.
            # A retry or catch-up sent late in the pair may reach the exchange after the pair's own timeout: wait
            # for the later of the two, plus the recvWindow grace.
            started = int(pair.get("started_ts") or pair.get("ts_last") or 0)
            last = int(pair.get("ts_last") or started)
            self._resume_at_ns = (max(started + int(self.cfg.leg_timeout_s * 1e9), last)
                                  + int(RESUME_GRACE_S * 1e9))
        self._resume_pending = True
        self.mark_band.wake()

    def _on_settlements_held(self, held: int) -> None:
        """The journal's count again: a settlement that fell while the node was down reached it after the restore
        (`settlements_held_topic`). It only adds: the journal counts each settlement once, the bookings this strategy
        made since the restore included."""
        if held > self.settlements_held:
            self._decide("settlements_held", f"{self.settlements_held} -> {held}: a settlement held while the node "
                                             "was down, read after the restore")
            self.settlements_held = held

    def _resume_rules(self, state: dict) -> None:
        """A restart with a journal: what the trading rules kept in memory, restored from `state` (`_ask_journal`)."""

    def _resume(self) -> None:
        """Derive the phase from the reconciled positions (called on marks until it has run once).

        Both legs held: in carry (an interrupted exit/unwind is completed; drift is the rebalance check's job).
        Nothing held: flat. One leg held: an interrupted entry is completed with a NEW order for the missing leg when
        the market is within the slippage band of the held leg's entry price (per `basisbot.core.legs`: a catch-up that
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
        self._positions_changed()
        spot, perp = self.spot_qty(), self.perp_qty()
        pair = (self._restored or {}).get("pair") or {}
        intent = pair.get("intent") if pair and not pair.get("done") else None
        lone = "spot" if spot > 0 and perp == 0 else "perp"
        positions = self.cache.positions_open(instrument_id=self.spot_id if lone == "spot" else self.perp_id,
                                              strategy_id=None)
        entry = positions[0].avg_px_open if positions else 0.0
        plan = resume.plan_resume(spot, perp, hedge_ratio=self.cfg.hedge_ratio, spot_lot=self._spot_lot,
                                  perp_lot=self._perp_lot, intent=intent, entry_price=entry,
                                  price=(self.spot_px if lone == "spot" else self.mark) or 0.0,
                                  slippage_band=self.cfg.slippage_band)
        self.phase = Phase(plan.phase)
        if plan.action == "unwind":
            self._unwind(plan.reason)
        elif plan.action == "exit":
            self._decide("resume", plan.reason)
            self._exit(plan.reason)
        elif plan.action == "catch_up":
            self._catch_up_after_restart(plan, entry)
        else:
            self._decide("resume", plan.reason)

    def _catch_up_after_restart(self, plan: resume.ResumePlan, entry_price: float) -> None:
        held = plan.held_leg
        missing = "perp" if held == "spot" else "spot"
        self._decide("resume", plan.reason)
        now = self.clock.timestamp_ns()
        pair, _ = LegPair.start(Intent.ENTER, now, self._cancel_after_ns, entry_price, self.cfg.slippage_band,
                                spot=(1, plan.spot), perp=(-1, plan.perp))
        kept = pair.legs[held]
        kept.filled, kept.status = kept.target, LegStatus.FILLED
        pair.history.append((now, "resume", f"{held} held {kept.target} (reconciled); catch up {missing}"))
        target = pair.legs[missing]
        self._run_pair(pair, [Instruction("send", missing, target.side, target.target, "catch up after restart")])

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
        self._positions_changed()

    def _positions_changed(self) -> None:
        """Re-read the positions from the portfolio on next use; outside a pair the next mark checks the hedge."""
        self._qty = None
        self.mark_band.wake()

    @property
    def mark(self) -> float | None:
        """The latest mark price (the cache holds the last one published)."""
        mp = self.cache.mark_price(self.perp_id)
        return None if mp is None else mp.value.as_double()

    def _on_mark(self, update, mark: float) -> None:
        """A mark outside `mark_band`: finish a restart, the risk rules (`_on_risk_mark`), then no leg may stay alone
        once the positions changed outside a pair. The band rests when the next mark has none of that to do."""
        if self._resume_pending:
            self._resume()
        self._on_risk_mark(mark)
        if self.pair is None and self._qty is None:
            self._check_hedge()
        if self.control.flattening:
            self._continue_flatten()
        if not (self._resume_pending or (self.pair is None and self._qty is None) or self.control.flattening):
            self.mark_band.rest()

    def idle(self) -> bool:
        """Nothing to do until a price, a data event or an alert says so: no pair in flight, no escalation, no
        restart to finish, no leg alone, and the next mark has no work whatever its price (a backtest's stream asks,
        `basisbot.backtest.stream`). A risk rule with work at some marks says so through its own band."""
        if (self._busy() or self._halted is not None or self._resume_pending or self.mark_band.awake
                or self._qty is None):
            return False
        # the lone-leg check, again only when what it reads changed (positions, spot held, hedge ratio)
        key = (self._qty, self._spot_held(), self.cfg.hedge_ratio)
        if key != self._idle_key:
            self._idle_key, self._idle_lone = key, self._lone_leg()
        return self._idle_lone is None

    def pending_alerts(self) -> list:
        """(fire time ns, the schedule's job or None) of the one-off alerts still to run (`NautilusClockDriver`)."""
        pending = getattr(self._driver, "pending", None)
        return pending() if pending is not None else []

    def _on_risk_mark(self, mark: float) -> None:
        """What the strategy's risk rules do at a mark outside their quiet range (the carry strategy: the guard)."""

    def _below_minimum(self, inst, qty: Decimal, px: float | None) -> str | None:
        if qty <= 0 or (inst.min_quantity and qty < inst.min_quantity.as_decimal()):
            return f"{inst.id}: quantity {qty} below the minimum {inst.min_quantity}"
        if inst.min_notional and px and float(qty) * px < inst.min_notional.as_double():
            return f"{inst.id}: notional {float(qty) * px:.2f} below the minimum {inst.min_notional}"
        return None

    @property
    def _cancel_after_ns(self) -> int:
        return int(self.cfg.leg_timeout_s * 0.5e9)

    @property
    def _expire_after_ns(self) -> int:
        return int(self.cfg.leg_timeout_s * 0.75e9)

    def _start_pair(self, intent: Intent, spot: tuple[int, Decimal], perp: tuple[int, Decimal]) -> None:
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
        reduce_only = not spot and (pair.intent != Intent.ENTER or "unwind" in ins.reason)
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
        self._positions_changed()
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

    def _lone_leg(self) -> str | None:
        return lone_leg(self.spot_qty(), self.perp_qty(), self._perp_lot, self.cfg.hedge_ratio)  # cfg: reloadable

    def _check_hedge(self) -> None:
        """Whatever happened (liquidation, rejected or lost order, reconciliation surprise), a leg held alone is closed
        at once: outside any pair in flight, in every phase, blackout or not. After an escalation the attempts go on
        at a bounded rate."""
        if self._busy() or self._resume_pending or self.spot is None:
            return
        lone = self._lone_leg()
        if lone is None:
            self._trim_after_venue_close()
            return
        now = self.clock.timestamp_ns()
        if now < self._stuck_retry_ns:
            return
        self.phase = Phase.IN_CARRY
        self._unwind(f"one leg alone: {lone} {self.spot_qty() if lone == 'spot' else self.perp_qty()}")

    def venue_closed_part(self) -> None:
        """The venue closed part of the perp on its own (auto-deleveraging, an insurance-fund close): for a while
        (the position update may come after the order update), the spot the perp no longer hedges is sold as soon
        as it shows."""
        window_ns = int(max(60.0, 10 * self.cfg.leg_timeout_s) * 1e9)
        self._venue_cut_until_ns = self.clock.timestamp_ns() + window_ns

    def _trim_after_venue_close(self) -> None:
        """After a venue-initiated partial close, sell the spot above the hedge at once (blackout or not: a spot sale
        changes no funding), rather than shorting the perp again into the deleveraging queue it just left."""
        if not self._venue_cut_until_ns:
            return
        if self.clock.timestamp_ns() > self._venue_cut_until_ns:
            self._venue_cut_until_ns = 0
            return
        spot, perp = self.spot_qty(), self.perp_qty()
        ratio = exact(self.cfg.hedge_ratio)
        if perp >= 0 or ratio <= 0:
            return
        excess = round_down(spot - abs(perp) / ratio, self._spot_lot)
        sellable = self._spot_sellable()
        if sellable is not None:
            excess = min(excess, sellable)
        if excess * ratio < self._perp_lot:  # within a perp lot of the hedge: the position update has not come yet
            return
        self._venue_cut_until_ns = 0
        self._decide("reduce", f"spot -{excess} back to the hedge of perp {perp} after the venue's own close")
        self._start_pair("reduce", spot=(-1, excess), perp=(1, ZERO))

    def _escalate(self, reason: str, now: int) -> None:
        """A leg that cannot be closed: logged, journaled (alerts follow the journal), new pairs halted for this
        symbol, and further closing attempts spaced out (doubling, at most every 5 minutes) instead of spinning."""
        self._stuck_count += 1
        wait_s = min(self.cfg.leg_timeout_s * 2 ** (self._stuck_count - 1), 300.0)
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

    def pair_in_flight(self) -> bool:
        """A leg pair is placed and not yet done (filled, caught up or unwound): not a safe point to stop or
        reconfigure."""
        return self._busy()

    def _close_both(self, intent: Intent) -> None:
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

    # -- the operator's controls ---------------------------------------------------------------------------------------
    def _on_control(self, cmd) -> None:
        if not isinstance(cmd, ControlCommand) or (cmd.symbols and self.symbol not in cmd.symbols):
            return
        now = self.clock.timestamp_ns()
        try:
            new, answer = control.apply(self.control, cmd.command, cmd.origin, cmd.reason, now)
        except ValueError as e:
            self._reply(cmd, f"refused: {e}")
            return
        if cmd.command != "status":
            changed = new != self.control
            self.control = new
            self._journal("control", now, command=cmd.command, origin=cmd.origin, reason=cmd.reason, answer=answer,
                          state=new.mode)
            self._decide("control", f"{cmd.command} from {cmd.origin}: {answer}"
                                    + (f" ({cmd.reason})" if cmd.reason else ""))
            if changed and new.flattening:
                self.mark_band.wake()
                self._continue_flatten()
        self._reply(cmd, answer)

    def _reply(self, cmd, answer: str) -> None:
        if cmd.reply is None:
            return
        pair = self.pair if self._busy() else None
        cmd.reply({"symbol": self.symbol, "command": cmd.command, "answer": answer, "state": self.control.mode,
                   "origin": self.control.origin, "reason": self.control.reason, "phase": self.phase.value,
                   "spot_qty": str(self.spot_qty()) if self.spot is not None else None,
                   "perp_qty": str(self.perp_qty()) if self.perp is not None else None,
                   "pair": None if pair is None else pair.intent, "halted": self._halted})

    def _held_nothing(self) -> bool:
        """Flat as far as a close can go: no perp, and no spot a sale could deliver (below a lot or the minimums)."""
        if self.perp_qty() != 0:
            return False
        spot = self.spot_qty()
        return spot <= 0 or self._below_minimum(self.spot, spot, self.spot_px) is not None

    def _continue_flatten(self) -> None:
        """A flatten: once no pair is in flight (and a restart has resumed), close both legs together; when nothing
        is held, the flatten is done and the symbol stays paused. A close that did not complete (a leg refused past
        its retries) escalates; the next attempt waits for the escalation's backoff."""
        if not self.control.flattening or self._busy() or self._resume_pending or self.spot is None:
            return
        if self._draining:  # stopping: no new pair; the journaled flatten carries on after the restart
            return
        now = self.clock.timestamp_ns()
        if self._held_nothing():
            self.control = control.flattened(self.control)
            self._journal("control", now, command="flattened", origin=self.control.origin,
                          reason=self.control.reason, answer="flat", state=self.control.mode)
            self._decide("control", "flatten complete: flat on both legs; paused until resume")
            return
        if now < self._stuck_retry_ns:
            if self._flatten_wake_ns != self._stuck_retry_ns:  # one wake-up per backoff, however many marks come
                self._flatten_wake_ns = self._stuck_retry_ns
                self._driver.call_at(f"{self.symbol}:flatten:{self._stuck_retry_ns}", self._stuck_retry_ns,
                                     self._continue_flatten)
            return
        self._decide("flatten", f"closing both legs: spot {self.spot_qty()}, perp {self.perp_qty()} "
                                f"({self.control.origin}: {self.control.reason or 'operator flatten'})")
        self._close_both("exit")

    def _decide(self, action: str, reason: str) -> None:
        ts = self.clock.timestamp_ns()
        self.log_.decisions.append((ts, action, reason))
        self.log.info(f"{self.symbol}: {action}: {reason}")
        self._journal("decision", ts, action=action, reason=reason, phase=self.phase.value)

    def _journal(self, kind: str, ts: int, **data) -> None:
        """Publish for the journal (live/paper write it; a backtest has none and turns this off in its config)."""
        if self.cfg.journal:
            self.msgbus.publish(JOURNAL_TOPIC, JournalRecord(kind, self.symbol, ts, data))
