"""Per-symbol settlement calendar and the jobs around each funding settlement T.

Jobs (windows per symbol, from `ScheduleSettings`):
- DECISION at T - decision_before_s: hold through the settlement or exit before it, on the predicted rate;
- BLACKOUT from T - blackout_before_s to T + blackout_after_s: no entries, no perp-leg rebalancing;
- BOOKING at T + booking_after_s: book the settled payment beside the prediction (live: reconcile with the exchange).
- GUARD_SWEEP every guard_sweep_s as a backstop to the event-driven guard.

The calendar learns settlements from the exchange's own next funding time and interval (`FundingRateUpdate`), so
intervals that differ per symbol and change over time (1h, 2h, 4h, 8h) are followed as they are announced.
Fire times come from APScheduler 3.x triggers (pure: a trigger only computes times). A driver runs them
(`basisbot.nautilus.scheduler`): one schedule, one set of jobs.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from basisbot.core import defaults as D
from basisbot.core.units import NS

UTC = dt.timezone.utc


def ns_to_dt(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC).replace(microsecond=(ns // 1000) % 1_000_000)


def dt_to_ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * NS + t.microsecond * 1000


class JobKind(enum.Enum):
    DECISION = "decision"
    BLACKOUT_START = "blackout_start"
    BLACKOUT_END = "blackout_end"
    BOOKING = "booking"


@dataclass(frozen=True, slots=True)
class Windows:
    decision_before_s: int = D.DECISION_BEFORE_S
    blackout_before_s: int = D.BLACKOUT_BEFORE_S
    blackout_after_s: int = D.BLACKOUT_AFTER_S
    booking_after_s: int = D.BOOKING_AFTER_S
    guard_sweep_s: int = D.GUARD_SWEEP_S

    def at_speed(self, speed: float) -> Windows:
        """The windows in wall seconds of a venue replaying `speed` venue seconds per wall second; the guard sweep
        stays at 1 s or more."""
        return Windows(self.decision_before_s / speed, self.blackout_before_s / speed, self.blackout_after_s / speed,
                       self.booking_after_s / speed, max(self.guard_sweep_s / speed, 1.0))


@dataclass(frozen=True, slots=True)
class Job:
    symbol: str
    kind: JobKind
    settlement_ns: int
    fire_ns: int
    name: str

    @property
    def trigger(self) -> DateTrigger:
        """The APScheduler trigger of this job (made when a live driver asks: backtests fire on the clock)."""
        return DateTrigger(run_date=ns_to_dt(self.fire_ns), timezone=UTC)


def jobs_for_settlement(symbol: str, settlement_ns: int, w: Windows,
                        kinds: frozenset[JobKind] | None = None) -> list[Job]:
    """The jobs around one settlement (of `kinds`, default all), in time order."""
    offsets = (
        (JobKind.DECISION, -w.decision_before_s),
        (JobKind.BLACKOUT_START, -w.blackout_before_s),
        (JobKind.BLACKOUT_END, w.blackout_after_s),
        (JobKind.BOOKING, w.booking_after_s),
    )
    return [Job(symbol, kind, settlement_ns, settlement_ns + int(offset * NS), f"{symbol}:{kind.value}:{settlement_ns}")
            for kind, offset in offsets if kinds is None or kind in kinds]


def guard_sweep_trigger(w: Windows, start_ns: int) -> IntervalTrigger:
    return IntervalTrigger(seconds=w.guard_sweep_s, start_date=ns_to_dt(start_ns), timezone=UTC)


def projected_settlements(next_ns: int, interval_minutes: int, count: int) -> list[int]:
    """The next `count` settlements if the interval stays as announced (for display and planning only)."""
    trig = IntervalTrigger(minutes=interval_minutes, start_date=ns_to_dt(next_ns), timezone=UTC)
    out, prev = [], None
    now = ns_to_dt(next_ns) - dt.timedelta(microseconds=1)
    for _ in range(count):
        t = trig.get_next_fire_time(prev, now)
        out.append(dt_to_ns(t))
        prev, now = t, t
    return out


class SettlementCalendar:
    """What one symbol's schedule knows: the last settlement passed and the next one announced."""

    def __init__(self, symbol: str, windows: Windows):
        self.symbol = symbol
        self.windows = windows
        self.next_ns: int | None = None
        self.prev_ns: int | None = None
        self.interval_minutes: int | None = None

    def on_funding_info(self, next_funding_ns: int | None, interval_minutes: int | None, now_ns: int,
                        kinds: frozenset[JobKind] | None = None) -> list[Job]:
        """Feed the exchange's announced next settlement; returns the jobs (of `kinds`, default all) of a newly
        announced settlement. Blackout needs no job to be enforced (`in_blackout` reads the calendar); its jobs are
        there for a driver that wants to log or alert on the window."""
        if interval_minutes:
            self.interval_minutes = int(interval_minutes)
        if not next_funding_ns or next_funding_ns == self.next_ns:
            return []
        if self.next_ns is not None and next_funding_ns > self.next_ns and self.next_ns <= now_ns:
            self.prev_ns = self.next_ns
        self.next_ns = next_funding_ns
        jobs = jobs_for_settlement(self.symbol, next_funding_ns, self.windows, kinds)
        return [j for j in jobs if j.fire_ns >= now_ns]

    def settled(self, settlement_ns: int) -> None:
        if self.prev_ns is None or settlement_ns > self.prev_ns:
            self.prev_ns = settlement_ns

    def in_blackout(self, now_ns: int) -> bool:
        w = self.windows
        for t in (self.next_ns, self.prev_ns):
            if t is not None and t - w.blackout_before_s * NS <= now_ns < t + w.blackout_after_s * NS:
                return True
        return False
