"""Two-leg execution, pure: a state machine that never leaves a leg naked and never sends on top of an order still
in flight.

A `LegPair` is created for one intent (enter, exit, reduce, unwind) with the quantity each leg must trade. The caller
sends the orders it is told to, then feeds back what the venue says (`filled`, `failed`, `closed`) and the clock
(`timeout`). Each call returns `Instruction`s to carry out:

- SEND(leg, side, qty): submit an order for that leg;
- CANCEL(leg): cancel that leg's order still in flight;
- nothing, while waiting.

Rules:
- Both legs are pre-checked by the caller before the pair is created; both are sent back to back.
- Opening pairs (intent "enter"): a leg that fails while the other has (partly) filled is retried once (catch up) if
  the market has not moved more than `slippage_band` from the reference price since the pair started; otherwise what
  the other leg filled is unwound, so the pair nets to nothing.
- Closing pairs (exit, reduce, unwind): reversing the leg that did close would re-open risk, so a failed leg is retried
  for its remaining quantity (up to `max_retries` times); if it still fails the pair is STUCK and the caller must alert
  and re-evaluate (its hedge check sees the imbalance).
- At the deadline, legs still in flight are cancelled; when every order is closed the pair settles as above.
- Every transition is recorded in `history` (for the journal), so a restart can see where a pair stood.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class LegStatus(enum.Enum):
    PENDING = "pending"  # order in flight
    FILLED = "filled"
    FAILED = "failed"  # closed without filling its target (rejected, denied, cancelled, expired)


class PairStatus(enum.Enum):
    WORKING = "working"
    COMPLETE = "complete"  # both legs traded their targets
    UNWINDING = "unwinding"  # one leg failed; the other is being reversed
    CATCHING_UP = "catching_up"
    FLAT = "flat"  # unwound: net effect nothing (up to lot rounding)
    STUCK = "stuck"  # a closing leg kept failing: exposure left, caller must act


@dataclass
class Leg:
    name: str  # "spot" | "perp"
    side: int  # +1 buy, -1 sell
    target: float
    filled: float = 0.0
    status: LegStatus = LegStatus.PENDING
    retries: int = 0
    unwind_sent: float = 0.0


@dataclass(frozen=True, slots=True)
class Instruction:
    kind: str  # "send" | "cancel"
    leg: str
    side: int = 0
    qty: float = 0.0
    reason: str = ""


@dataclass
class LegPair:
    intent: str
    legs: dict[str, Leg]
    started_ns: int
    deadline_ns: int
    reference_price: float
    slippage_band: float
    max_retries: int = 1
    status: PairStatus = PairStatus.WORKING
    history: list[tuple[int, str, str]] = field(default_factory=list)
    _timed_out: bool = False
    _unwinding: dict[str, float] = field(default_factory=dict)  # leg -> qty still to unwind (in flight)

    @property
    def opening(self) -> bool:
        return self.intent == "enter"

    @classmethod
    def start(cls, intent: str, now_ns: int, timeout_ns: int, reference_price: float, slippage_band: float,
              spot: tuple[int, float], perp: tuple[int, float], max_retries: int | None = None
              ) -> tuple[LegPair, list[Instruction]]:
        legs = {}
        for name, (side, qty) in (("spot", spot), ("perp", perp)):
            if qty > 0:
                legs[name] = Leg(name, side, qty)
        retries = max_retries if max_retries is not None else (1 if intent == "enter" else 3)
        pair = cls(intent, legs, now_ns, now_ns + timeout_ns, reference_price, slippage_band, retries)
        pair._log(now_ns, "start", ", ".join(f"{n} {l.side * l.target:+g}" for n, l in legs.items()))
        if not legs:
            pair.status = PairStatus.COMPLETE
        return pair, [Instruction("send", n, l.side, l.target, intent) for n, l in legs.items()]

    # -- feedback from the venue ------------------------------------------------------------------------------------
    def filled(self, leg: str, qty: float, now_ns: int) -> list[Instruction]:
        if leg in self._unwinding:
            self._unwinding[leg] = max(0.0, self._unwinding[leg] - qty)
            self._log(now_ns, "unwind_fill", f"{leg} {qty:g}")
            return self._settle(now_ns)
        l = self.legs[leg]
        l.filled += qty
        if l.filled >= l.target - 1e-12:
            l.status = LegStatus.FILLED
        self._log(now_ns, "fill", f"{leg} {qty:g} ({l.filled:g}/{l.target:g})")
        return self._settle(now_ns)

    def failed(self, leg: str, reason: str, now_ns: int, market_price: float | None = None) -> list[Instruction]:
        """The leg's order closed without completing (rejected / denied / cancelled / expired)."""
        if leg in self._unwinding:
            self._log(now_ns, "unwind_failed", f"{leg}: {reason}")
            qty = self._unwinding[leg]
            if qty > 0:  # an unwind must not be dropped: resend it
                return [Instruction("send", leg, -self.legs[leg].side, qty, "unwind retry")]
            return []
        l = self.legs[leg]
        l.status = LegStatus.FAILED
        self._log(now_ns, "failed", f"{leg}: {reason}")
        moved = (abs(market_price / self.reference_price - 1) if market_price and self.reference_price else 0.0)
        remaining = l.target - l.filled
        if not self.opening:
            if remaining > 0 and l.retries < self.max_retries:
                l.retries += 1
                l.status = LegStatus.PENDING
                self._log(now_ns, "retry", f"{leg} {remaining:g} (attempt {l.retries + 1})")
                return [Instruction("send", leg, l.side, remaining, f"retry {self.intent}")]
            return self._settle(now_ns)
        other_traded = any(o.filled > 0 or o.status is LegStatus.PENDING for n, o in self.legs.items() if n != leg)
        if (not self._timed_out and remaining > 0 and l.retries < self.max_retries and moved <= self.slippage_band
                and other_traded):
            l.retries += 1
            l.status = LegStatus.PENDING
            self.status = PairStatus.CATCHING_UP
            self._log(now_ns, "catch_up", f"{leg} {remaining:g} (market moved {moved:.3%})")
            return [Instruction("send", leg, l.side, remaining, "catch up")]
        return self._settle(now_ns)

    def timeout(self, now_ns: int) -> list[Instruction]:
        if self.done() or now_ns < self.deadline_ns:
            return []
        self._timed_out = True
        pending = [n for n, l in self.legs.items() if l.status is LegStatus.PENDING]
        self._log(now_ns, "timeout", f"pending: {pending}")
        return [Instruction("cancel", n, reason="leg timeout") for n in pending]

    # -- settling ---------------------------------------------------------------------------------------------------
    def in_flight(self) -> bool:
        return any(l.status is LegStatus.PENDING for l in self.legs.values()) or any(
            q > 1e-12 for q in self._unwinding.values())

    def done(self) -> bool:
        return self.status in (PairStatus.COMPLETE, PairStatus.FLAT, PairStatus.STUCK)

    def _settle(self, now_ns: int) -> list[Instruction]:
        if self.in_flight():
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
            self._log(now_ns, "stuck", ", ".join(f"{n} {l.filled:g}/{l.target:g}" for n, l in self.legs.items()))
            return []
        # some leg failed: reverse what the legs did trade, so the pair nets to nothing
        out = []
        self.status = PairStatus.UNWINDING
        for n, l in self.legs.items():
            if l.filled > 0:
                self._unwinding[n] = l.filled
                out.append(Instruction("send", n, -l.side, l.filled, f"unwind {self.intent}"))
        self._log(now_ns, "unwind", ", ".join(f"{i.leg} {i.side * i.qty:+g}" for i in out) or "nothing traded")
        if not out:
            self.status = PairStatus.FLAT
        return out

    def _log(self, ts: int, event: str, detail: str) -> None:
        self.history.append((ts, event, detail))
