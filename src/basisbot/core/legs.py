"""Two-leg execution, pure: a state machine that never leaves a leg naked and never sends on top of an order still
in flight.

A `LegPair` is created for one intent (enter, exit, reduce, unwind, rebalance) with the quantity each leg must trade.
The caller sends the orders it is told to, then feeds back what the venue says (`filled`, `failed`) and the clock
(`timeout`, `expire`). Each call returns `Instruction`s to carry out:

- SEND(leg, side, qty, attempt): submit an order for that leg; `attempt` > 0 marks a retry, which the caller delays
  by `retry_delay_s(attempt, leg_timeout_s)` (never a hot loop);
- CANCEL(leg): cancel that leg's order still in flight;
- nothing, while waiting.

Quantities are exact (`Decimal`): a leg is filled when the sum of its fills reaches its target, exactly. The caller
may send less than asked when the account holds less (fees taken in the base asset, lot rounding): it says so with
`sent(leg, qty)`, and a leg that rounds to nothing tradable (dust) is done.

Rules:
- Both legs are pre-checked by the caller before the pair is created; both are sent back to back.
- Opening pairs (intent "enter"): a leg that fails while the other has (partly) filled is retried once (catch up) if
  the market has not moved more than `slippage_band` from the reference price since the pair started; otherwise what
  the other leg filled is unwound, so the pair nets to nothing.
- Closing pairs (exit, reduce, unwind, rebalance): reversing the leg that did close would re-open risk, so a failed leg
  is retried for its remaining quantity (up to `max_retries` times); if it still fails the pair is STUCK and the caller
  must escalate (alert, halt new pairs for the symbol) and keep checking its hedge.
- An unwind that fails is retried (delayed, up to `MAX_UNWIND_RETRIES`), then the pair is STUCK.
- At the deadline, legs still in flight are cancelled; an order whose fate is still unknown a grace period later
  (`expire`) is taken as lost (failed), so a pair can never stay in flight for ever.
- Every transition is recorded in `history` (for the journal), so a restart can see where a pair stood.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal

from basisbot.core.quantities import ZERO, exact

MAX_UNWIND_RETRIES = 5
# retry n (1-based) waits RETRY_DELAYS[n-1] × leg_timeout_s: all five retries fit in 0.77 × the leg timeout
RETRY_DELAYS = (0.02, 0.05, 0.1, 0.2, 0.4)


def retry_delay_s(attempt: int, leg_timeout_s: float) -> float:
    """Delay before retry `attempt` (1-based): grows, capped, and all retries fit within the leg timeout."""
    if attempt <= 0:
        return 0.0
    return RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1] * leg_timeout_s


class LegStatus(enum.Enum):
    PENDING = "pending"  # order in flight
    FILLED = "filled"
    FAILED = "failed"  # closed without filling its target (rejected, denied, cancelled, expired, lost)


class Intent(enum.StrEnum):
    """What a leg pair is for. A `str` enum: it compares equal to, and is journalled as, its plain value."""

    ENTER = "enter"  # open the carry: buy spot, sell the perp
    EXIT = "exit"  # close the carry
    UNWIND = "unwind"  # close what is left of a carry that cannot stand (a lone leg, a long perp)
    REDUCE = "reduce"  # cut both legs by a fraction (the guard)
    REBALANCE = "rebalance"  # trade the perp back to the hedge ratio


# pairs that take the whole carry off
EXITING = frozenset({Intent.EXIT, Intent.UNWIND})


class PairStatus(enum.Enum):
    WORKING = "working"
    COMPLETE = "complete"  # both legs traded their targets
    UNWINDING = "unwinding"  # one leg failed; the other is being reversed
    CATCHING_UP = "catching_up"
    FLAT = "flat"  # unwound: net effect nothing (up to dust)
    STUCK = "stuck"  # a leg kept failing: exposure left, caller must escalate


@dataclass
class Leg:
    name: str  # "spot" | "perp"
    side: int  # +1 buy, -1 sell
    target: Decimal
    filled: Decimal = ZERO
    status: LegStatus = LegStatus.PENDING
    retries: int = 0

    @property
    def remaining(self) -> Decimal:
        return max(self.target - self.filled, ZERO)


@dataclass(frozen=True, slots=True)
class Instruction:
    kind: str  # "send" | "cancel"
    leg: str
    side: int = 0
    qty: Decimal = ZERO
    reason: str = ""
    attempt: int = 0  # > 0: a retry, to be delayed by retry_delay_s(attempt, ...)


@dataclass
class LegPair:
    intent: Intent
    legs: dict[str, Leg]
    started_ns: int
    deadline_ns: int
    reference_price: float
    slippage_band: float
    max_retries: int = 1
    status: PairStatus = PairStatus.WORKING
    history: list[tuple[int, str, str]] = field(default_factory=list)
    _timed_out: bool = False
    _unwinding: dict[str, Decimal] = field(default_factory=dict)  # leg -> qty still to unwind (in flight)
    _unwind_retries: dict[str, int] = field(default_factory=dict)
    _unwind_answer: dict[str, str] = field(default_factory=dict)  # the venue's last answer to an unwind order

    @property
    def opening(self) -> bool:
        return self.intent == Intent.ENTER

    @classmethod
    def start(cls, intent: Intent, now_ns: int, timeout_ns: int, reference_price: float, slippage_band: float,
              spot: tuple[int, object], perp: tuple[int, object], max_retries: int | None = None
              ) -> tuple[LegPair, list[Instruction]]:
        legs = {}
        for name, (side, qty) in (("spot", spot), ("perp", perp)):
            q = exact(qty)
            if q < 0:
                raise ValueError(f"{name} quantity must be >= 0 (the side carries the sign), got {qty!r}")
            if q > 0:
                legs[name] = Leg(name, side, q)
        intent = Intent(intent)  # a plain value is accepted; an unknown one is refused here
        retries = max_retries if max_retries is not None else (1 if intent == Intent.ENTER else 3)
        pair = cls(intent, legs, now_ns, now_ns + timeout_ns, reference_price, slippage_band, retries)
        pair._log(now_ns, "start", ", ".join(f"{n} {l.side * l.target:+}" for n, l in legs.items()))
        if not legs:
            pair.status = PairStatus.COMPLETE
        return pair, [Instruction("send", n, l.side, l.target, intent) for n, l in legs.items()]

    # -- what the caller actually sent ------------------------------------------------------------------------------
    def sent(self, leg: str, qty, now_ns: int, why: str = "") -> list[Instruction]:
        """The caller sent `qty` (exact) for `leg`'s current instruction, possibly less than asked because the account
        holds less. 0 = nothing tradable (dust): that order is done without a fill."""
        q = exact(qty)
        if leg in self._unwinding:
            if q < self._unwinding[leg]:
                self._log(now_ns, "unwind_resized", f"{leg} {self._unwinding[leg]} -> {q} {why}".strip())
                self._unwinding[leg] = q
                return self._settle(now_ns)
            return []
        l = self.legs[leg]
        if q < l.remaining:
            self._log(now_ns, "resized", f"{leg} {l.remaining} -> {q} {why}".strip())
            l.target = l.filled + q
            if l.remaining == 0:
                l.status = LegStatus.FILLED
                return self._settle(now_ns)
        return []

    # -- feedback from the venue ------------------------------------------------------------------------------------
    def filled(self, leg: str, qty, now_ns: int) -> list[Instruction]:
        q = exact(qty)
        if leg in self._unwinding:
            self._unwinding[leg] = max(ZERO, self._unwinding[leg] - q)
            self._log(now_ns, "unwind_fill", f"{leg} {q}")
            return self._settle(now_ns)
        l = self.legs[leg]
        l.filled += q
        if l.filled >= l.target:
            l.status = LegStatus.FILLED
        self._log(now_ns, "fill", f"{leg} {q} ({l.filled}/{l.target})")
        return self._settle(now_ns)

    def failed(self, leg: str, reason: str, now_ns: int, market_price: float | None = None) -> list[Instruction]:
        """The leg's order closed without completing (rejected / denied / cancelled / expired / lost)."""
        if leg in self._unwinding:
            self._log(now_ns, "unwind_failed", f"{leg}: {reason}")
            if not reason.startswith("lost: "):
                self._unwind_answer[leg] = reason
            qty = self._unwinding[leg]
            if qty <= 0:
                return self._settle(now_ns)
            n = self._unwind_retries.get(leg, 0) + 1
            if n > MAX_UNWIND_RETRIES:
                self._unwinding[leg] = ZERO
                self.status = PairStatus.STUCK
                answer = self._unwind_answer.get(leg)
                last = f"; the venue's last answer: {answer}" if answer and answer != reason else ""
                self._log(now_ns, "stuck", f"{leg} unwind of {qty} failed {n - 1} times: {reason}{last}")
                return []
            self._unwind_retries[leg] = n
            return [Instruction("send", leg, -self.legs[leg].side, qty, "unwind retry", attempt=n)]
        l = self.legs[leg]
        if l.status is not LegStatus.PENDING:
            return []  # a late report for a leg already settled
        l.status = LegStatus.FAILED
        self._log(now_ns, "failed", f"{leg}: {reason}")
        moved = (abs(market_price / self.reference_price - 1) if market_price and self.reference_price else 0.0)
        remaining = l.remaining
        if not self.opening:
            if remaining > 0 and l.retries < self.max_retries and not self._timed_out:
                l.retries += 1
                l.status = LegStatus.PENDING
                self._log(now_ns, "retry", f"{leg} {remaining} (attempt {l.retries + 1})")
                return [Instruction("send", leg, l.side, remaining, f"retry {self.intent}", attempt=l.retries)]
            return self._settle(now_ns)
        other_traded = any(o.filled > 0 or o.status is LegStatus.PENDING for n, o in self.legs.items() if n != leg)
        if (not self._timed_out and remaining > 0 and l.retries < self.max_retries and moved <= self.slippage_band
                and other_traded):
            l.retries += 1
            l.status = LegStatus.PENDING
            self.status = PairStatus.CATCHING_UP
            self._log(now_ns, "catch_up", f"{leg} {remaining} (market moved {moved:.3%})")
            return [Instruction("send", leg, l.side, remaining, "catch up", attempt=l.retries)]
        return self._settle(now_ns)

    def timeout(self, now_ns: int) -> list[Instruction]:
        if self.done() or now_ns < self.deadline_ns:
            return []
        self._timed_out = True
        pending = [n for n, l in self.legs.items() if l.status is LegStatus.PENDING]
        self._log(now_ns, "timeout", f"pending: {pending}")
        return [Instruction("cancel", n, reason="leg timeout") for n in pending]

    def expire(self, now_ns: int, reason: str = "no answer from the venue") -> list[Instruction]:
        """A grace period after the timeout, orders whose fate is still unknown are taken as lost: their legs fail
        (an unwind still in flight is re-sent), so the pair settles instead of waiting for ever. The caller's
        reconciliation adopts a late fill of a 'lost' order through its hedge check."""
        if self.done():
            return []
        self._timed_out = True
        out: list[Instruction] = []
        unwinds_in_flight = [n for n, q in self._unwinding.items() if q > 0]
        for n, l in self.legs.items():
            if l.status is LegStatus.PENDING:
                out += self.failed(n, f"lost: {reason}", now_ns)
        for n in unwinds_in_flight:
            out += self.failed(n, f"lost: {reason}", now_ns)
        if not out and not self.done():
            out += self._settle(now_ns)
        return out

    # -- settling ---------------------------------------------------------------------------------------------------
    def in_flight(self) -> bool:
        return any(l.status is LegStatus.PENDING for l in self.legs.values()) or any(
            q > 0 for q in self._unwinding.values())

    def done(self) -> bool:
        return self.status in (PairStatus.COMPLETE, PairStatus.FLAT, PairStatus.STUCK)

    def _settle(self, now_ns: int) -> list[Instruction]:
        if self.done() or self.in_flight():
            return []
        if all(l.status is LegStatus.FILLED for l in self.legs.values()):
            self.status = PairStatus.COMPLETE
            self._log(now_ns, "complete", "")
            return []
        if self.status is PairStatus.UNWINDING:
            self.status = PairStatus.FLAT
            self._log(now_ns, "flat", "")
            return []
        if not self.opening:
            self.status = PairStatus.STUCK
            self._log(now_ns, "stuck", ", ".join(f"{n} {l.filled}/{l.target}" for n, l in self.legs.items()))
            return []
        # some leg failed: reverse what the legs did trade, so the pair nets to nothing
        out = []
        self.status = PairStatus.UNWINDING
        for n, l in self.legs.items():
            if l.filled > 0:
                self._unwinding[n] = l.filled
                out.append(Instruction("send", n, -l.side, l.filled, f"unwind {self.intent}"))
        self._log(now_ns, "unwind", ", ".join(f"{i.leg} {i.side * i.qty:+}" for i in out) or "nothing traded")
        if not out:
            self.status = PairStatus.FLAT
        return out

    def _log(self, ts: int, event: str, detail: str) -> None:
        self.history.append((ts, event, detail))
