"""Risk limits, pure: what `[risk]` (`basisbot.config.risk`) allows, evaluated on the equity and the entry asked.

    book = RiskBook(Limits(max_daily_loss_usdt=500, max_drawdown_pct=5, action="pause"))
    for breach in book.on_equity(ts_ns, equity): ...      # a new breach: journal it, take breach.action
    book.entry_refusal(gross_now, added)                   # why a new entry is refused, or None
    book.stale(now_ns, last_mark_ns)                       # why the data is too old for an entry, or None
    book.rearm(ts_ns, equity)                              # the operator's resume: the limits count from here

Equity is what both accounts are worth at market: cash, spot assets at their price, the perp wallet, and the perp
position's unrealised PnL (funding is in the wallet once settled). The daily loss counts from the first equity seen in
each UTC day; the drawdown from the highest equity seen since the start or the last `rearm`. A breach is reported
once and then latched: it stays (and nothing re-fires for that limit) until `rearm`, so a bot whose loss keeps
growing raises one breach, not one per price tick, and clears only on an explicit resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from basisbot.core.units import DAY_NS

ACTIONS = ("pause", "flatten")


@dataclass(frozen=True)
class Limits:
    max_daily_loss_usdt: float | None = None
    max_drawdown_pct: float | None = None  # percent: 5 = 5%
    max_gross_notional_usdt: float | None = None
    stale_data_s: float | None = None
    action: str = "pause"

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"risk action must be one of {ACTIONS}, not {self.action!r}")


@dataclass(frozen=True)
class Breach:
    ts_ns: int
    limit: str  # "max_daily_loss_usdt" | "max_drawdown_pct"
    value: float  # the loss (USDT) or the drawdown (percent) that crossed it
    threshold: float
    equity: float
    reference: float  # the day's first equity, or the peak
    action: str

    def describe(self) -> str:
        if self.limit == "max_daily_loss_usdt":
            return (f"daily loss {self.value:.2f} USDT > max_daily_loss_usdt {self.threshold:g} (equity "
                    f"{self.equity:.2f}, day start {self.reference:.2f}): {self.action}")
        return (f"drawdown {self.value:.3f}% > max_drawdown_pct {self.threshold:g} (equity {self.equity:.2f}, "
                f"peak {self.reference:.2f}): {self.action}")

    def as_dict(self) -> dict:
        return {"ts_ns": self.ts_ns, "limit": self.limit, "value": self.value, "threshold": self.threshold,
                "equity": self.equity, "reference": self.reference, "action": self.action}


@dataclass
class RiskBook:
    limits: Limits
    day: int | None = None
    day_start: float | None = None
    peak: float | None = None
    tripped: dict[str, Breach] = field(default_factory=dict)

    def on_equity(self, ts_ns: int, equity: float) -> list[Breach]:
        """The new breaches at this equity (empty when none, or when the limit already tripped)."""
        lim = self.limits
        day = ts_ns // DAY_NS
        if day != self.day:
            self.day, self.day_start = day, equity
        if self.peak is None or equity > self.peak:
            self.peak = equity
        out = []
        if lim.max_daily_loss_usdt is not None and "max_daily_loss_usdt" not in self.tripped:
            loss = self.day_start - equity
            if loss > lim.max_daily_loss_usdt:
                out.append(Breach(ts_ns, "max_daily_loss_usdt", loss, lim.max_daily_loss_usdt, equity,
                                  self.day_start, lim.action))
        if lim.max_drawdown_pct is not None and "max_drawdown_pct" not in self.tripped and self.peak > 0:
            dd = (self.peak - equity) / self.peak * 100.0
            if dd > lim.max_drawdown_pct:
                out.append(Breach(ts_ns, "max_drawdown_pct", dd, lim.max_drawdown_pct, equity, self.peak, lim.action))
        for b in out:
            self.tripped[b.limit] = b
        return out

    def rearm(self, ts_ns: int, equity: float | None) -> list[Breach]:
        """Clear the latched breaches (returned) and count from `equity`: the day's start and the peak are reset."""
        cleared = list(self.tripped.values())
        self.tripped.clear()
        if equity is not None:
            self.day, self.day_start, self.peak = ts_ns // DAY_NS, equity, equity
        return cleared

    def entry_refusal(self, gross_now: float, added: float) -> str | None:
        cap = self.limits.max_gross_notional_usdt
        if cap is not None and gross_now + added > cap:
            return (f"gross notional {gross_now:.2f} + {added:.2f} USDT of the new carry > max_gross_notional_usdt "
                    f"{cap:g}")
        return None

    def stale(self, now_ns: int, last_mark_ns: int | None) -> str | None:
        limit = self.limits.stale_data_s
        if limit is None:
            return None
        if last_mark_ns is None:
            return f"no mark price yet (stale_data_s {limit:g})"
        age = (now_ns - last_mark_ns) / 1e9
        if age > limit:
            return f"last mark price {age:.1f}s old > stale_data_s {limit:g}"
        return None


def gross_notional(legs: list[tuple[float, float, float, float]]) -> float:
    """Both legs of every carry at market: sum of |spot qty| x spot price + |perp qty| x mark over (spot qty, spot
    price, perp qty, mark)."""
    return sum(abs(sq) * sp + abs(pq) * m for sq, sp, pq, m in legs)


__all__ = ["ACTIONS", "Breach", "Limits", "RiskBook", "gross_notional"]
