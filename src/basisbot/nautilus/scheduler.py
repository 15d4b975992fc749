"""The drivers that run the settlement schedule's jobs (`basisbot.core.schedule`): `NautilusClockDriver` (backtests and
anything on a nautilus clock: time alerts, in order with the data) or `AsyncIOSchedulerDriver` (live: APScheduler's
AsyncIOScheduler on the node's event loop). One schedule, one set of jobs, two worlds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial

from apscheduler.triggers.interval import IntervalTrigger

from basisbot.core.schedule import UTC, Job, ns_to_dt
from basisbot.core.units import NS


class NautilusClockDriver:
    """Runs jobs as nautilus time alerts: in a backtest they fire at their simulated time, in order with the data.

    nautilus' test clock keeps the callback of every alert ever set (it does not release it once fired), so every
    alert here shares one callback, and what a name runs is kept here only until it fires."""

    def __init__(self, clock, handler: Callable[[Job], None]):
        self._clock = clock
        self._handler = handler
        self._pending: dict[str, Callable[[], None]] = {}  # alert name -> what it runs
        self._due: dict[str, tuple[int, Job | None]] = {}  # alert name -> (fire time, the job or None)
        self._on_alert = self._fire  # the one callback (a bound method made once)

    def _fire(self, event) -> None:
        fn = self._pending.pop(event.name, None)
        self._due.pop(event.name, None)
        if fn is not None:
            fn()

    def schedule(self, job: Job) -> None:
        if job.name in self._pending:
            return
        self._clock.set_time_alert_ns(job.name, job.fire_ns, self._on_alert)
        self._pending[job.name] = partial(self._handler, job)
        self._due[job.name] = (job.fire_ns, job)

    def call_at(self, name: str, fire_ns: int, fn: Callable[[], None]) -> None:
        """One-off callback at `fire_ns` (leg timeouts, delayed retries), in order with the data."""
        at = max(fire_ns, self._clock.timestamp_ns())
        self._clock.set_time_alert_ns(name, at, self._on_alert)
        self._pending[name] = fn
        self._due[name] = (at, None)

    def pending(self) -> list[tuple[int, Job | None]]:
        """(fire time ns, the job, or None for a one-off callback) of every alert still to run."""
        return list(self._due.values())

    def every(self, name: str, seconds: float, fn: Callable[[], None] | None) -> None:
        """(Re)start a periodic callback; `fn=None` stops it."""
        if name in self._clock.timer_names:
            self._clock.cancel_timer(name)
        if fn is not None and seconds > 0:
            self._clock.set_timer(name, dt.timedelta(seconds=seconds), callback=lambda _event: fn())

    def shutdown(self) -> None:
        pass


class AsyncIOSchedulerDriver:
    """Runs the same jobs on an APScheduler `AsyncIOScheduler` bound to the live node's event loop."""

    def __init__(self, scheduler, handler: Callable[[Job], None], loop=None, now_ns: Callable[[], int] | None = None):
        self._scheduler = scheduler
        self._handler = handler
        self._loop = loop
        self._now_ns = now_ns

    def schedule(self, job: Job) -> None:
        self._scheduler.add_job(self._handler, trigger=job.trigger, args=[job], id=job.name, replace_existing=True,
                                misfire_grace_time=30)

    def call_at(self, name: str, fire_ns: int, fn: Callable[[], None]) -> None:
        """One-off callback at `fire_ns` on the event loop's thread (nautilus' live clock fires its alerts on a
        thread of its own, where nothing of the strategy or the journal may run)."""
        delay = max(0.0, (fire_ns - self._now_ns()) / NS) if self._now_ns is not None else 0.0
        self._loop.call_later(delay, fn)

    def every(self, name: str, seconds: float, fn: Callable[[], None] | None) -> None:
        """(Re)start a periodic callback on the event loop; `fn=None` stops it."""
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)
        if fn is not None and seconds > 0:
            async def run():
                fn()

            self._scheduler.add_job(run, trigger=IntervalTrigger(seconds=seconds, start_date=ns_to_dt(self._now_ns()),
                                                                 timezone=UTC), id=name, replace_existing=True)

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=False)


def make_driver(kind: str, clock, handler: Callable[[Job], None]):
    """The driver of the world a strategy runs in: "clock" (backtests: nautilus time alerts, in order with the data)
    or "asyncio" (live: APScheduler's AsyncIOScheduler on the node's event loop; jobs run as coroutines on the loop's
    thread, as APScheduler would otherwise run plain functions in a thread pool, where nothing of nautilus may run)."""
    if kind == "clock":
        return NautilusClockDriver(clock, handler)
    if kind != "asyncio":
        raise ValueError(f"unknown scheduler {kind!r}: allowed 'clock', 'asyncio'")
    import asyncio

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    loop = asyncio.get_event_loop()
    scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
    scheduler.start()

    async def on_job(job):
        handler(job)

    return AsyncIOSchedulerDriver(scheduler, on_job, loop, clock.timestamp_ns)
