"""Alert delivery: never blocks the trading loop, never fatal.

`AlertDispatcher.submit(alert)` is a non-blocking queue put (safe from any thread). Each channel (one apprise URL) has
its own worker thread, so a dead channel delays nobody else. A worker:

- **coalesces repeats**: the first alert with a given key (`Alert.key`, default event + symbol) goes out at once;
  repeats within `coalesce_s` are counted, and when the window ends one summary ("N more like this") goes out with the
  last repeat's text; a steady stream of repeats therefore costs one message per window;
- **rate limits** with a token bucket (`max_per_minute` per channel; a burst of up to that many, then evenly spaced);
  alerts over the limit wait in order, none is dropped (unless the inbox of `queue_max` overflows: counted, warned);
- **retries** a failed send `retries` times, `backoff_s` × 2^i apart (capped at 60 s);
- a send that still fails is **logged** (`warn`, at most one warning per channel per coalescing window, counting what
  was suppressed) and **reported** (`on_failure`, same throttle: the node journals it). Nothing is raised.

The queue logic runs in `_Channel.pump`, which tests drive synchronously with a fake clock; the thread only loops it.
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from basisbot.config.schema import AlertSettings

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True, slots=True)
class Alert:
    event: str  # an ALERT_EVENTS name (basisbot.config.schema)
    severity: str  # info | warning | error | critical
    title: str
    body: str
    symbol: str | None = None
    key: str | None = None  # coalescing key; default event:symbol
    created: float = 0.0  # monotonic time of submission (set by the dispatcher)
    repeats: int = 0  # >0: a coalescing summary standing for this many suppressed repeats

    @property
    def coalesce_key(self) -> str:
        return self.key or f"{self.event}:{self.symbol or '*'}"


class SendError(Exception):
    """A channel could not deliver (message says why, without the channel's secret parts)."""


class Coalescer:
    """Repeats of one key within `window_s` become one summary at the window's end (pure: the caller's clock)."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._open: dict[str, list] = {}  # key -> [window start, suppressed count, last suppressed alert]

    def offer(self, alert: Alert, now: float) -> Alert | None:
        """The alert to send now, or None when it is a repeat inside its key's window."""
        if self.window_s <= 0:
            return alert
        k = alert.coalesce_key
        w = self._open.get(k)
        if w is not None and now - w[0] < self.window_s:
            w[1] += 1
            w[2] = alert
            return None
        self._open[k] = [now, 0, None]
        return alert

    def due(self, now: float) -> list[Alert]:
        """Summaries of windows that ended with repeats (each opens a new window), in key order of opening."""
        out = []
        for k, w in list(self._open.items()):
            if now - w[0] < self.window_s:
                continue
            if w[1]:
                last: Alert = w[2]
                out.append(dataclasses.replace(
                    last, title=f"{last.title} (x{w[1]} in {self.window_s:g}s)", repeats=w[1],
                    body=f"{last.body}\n({w[1]} alert(s) like this in the last {self.window_s:g}s; this is the last)"))
                self._open[k] = [now, 0, None]
            else:
                del self._open[k]
        return out

    def next_due(self) -> float | None:
        """Earliest time a window with repeats ends (None: nothing waiting)."""
        ends = [w[0] + self.window_s for w in self._open.values() if w[1]]
        return min(ends) if ends else None


class RateLimiter:
    """Token bucket: `per_minute` tokens, refilled evenly; starts full."""

    def __init__(self, per_minute: int, now: float):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self.at = now

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_s(self, now: float) -> float:
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


def backoff_delays(retries: int, backoff_s: float) -> list[float]:
    """Delays before each retry: backoff_s, 2×, 4×, ... capped at MAX_BACKOFF_S."""
    return [min(backoff_s * (2 ** i), MAX_BACKOFF_S) for i in range(retries)]


@dataclass
class ChannelStats:
    sent: int = 0
    failed: int = 0  # alerts not delivered after all retries
    attempts: int = 0
    retried: int = 0
    coalesced: int = 0  # repeats folded into summaries
    dropped: int = 0  # inbox overflow
    warnings: int = 0  # warnings logged
    last_error: str | None = None
    last_latency_s: float | None = None  # submit -> delivered, last alert


class _Channel:
    def __init__(self, label: str, send: Callable[[Alert], None], *, coalesce_s: float, max_per_minute: int,
                 retries: int, backoff_s: float, clock: Callable[[], float], sleep: Callable[[float], bool],
                 warn: Callable[[str], None], on_failure: Callable[[str, Alert, str, int], None],
                 on_sent: Callable[[str, Alert], None] | None = None, queue_max: int = 1000):
        self.label = label
        self.send = send
        self.coalesce_s = coalesce_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.clock = clock
        self.sleep = sleep  # returns True when asked to stop (threads: Event.wait)
        self.warn = warn
        self.on_failure = on_failure
        self.on_sent = on_sent
        self.inbox: queue.Queue[Alert] = queue.Queue(maxsize=queue_max)
        self.pending: collections.deque[Alert] = collections.deque()
        self.coalescer = Coalescer(coalesce_s)
        self.limiter = RateLimiter(max_per_minute, clock())
        self.stats = ChannelStats()
        self._warned_at: float | None = None
        self._unreported = 0  # failures since the last warning
        self._dropped_reported = 0

    # -- producer side ----------------------------------------------------------------------------------------------
    def offer(self, alert: Alert) -> None:
        try:
            self.inbox.put_nowait(alert)
        except queue.Full:
            self.stats.dropped += 1

    # -- worker side --------------------------------------------------------------------------------------------------
    def pump(self, block_s: float = 0.0) -> float:
        """Take what arrived (waiting up to `block_s` for the first), coalesce, send what the rate limit allows.
        Returns how long until something is due (for the next wait)."""
        got = []
        try:
            got.append(self.inbox.get(timeout=block_s) if block_s > 0 else self.inbox.get_nowait())
            while True:
                got.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        now = self.clock()
        for a in got:
            keep = self.coalescer.offer(a, now)
            if keep is None:
                self.stats.coalesced += 1
            else:
                self.pending.append(keep)
        self.pending.extend(self.coalescer.due(now))
        if self.stats.dropped > self._dropped_reported:
            self._failure(None, f"{self.stats.dropped - self._dropped_reported} alert(s) dropped: inbox full")
            self._dropped_reported = self.stats.dropped
        while self.pending:
            if not self.limiter.take(self.clock()):
                break
            if self._deliver(self.pending.popleft()):
                return 0.0  # asked to stop while backing off
        now = self.clock()
        waits = [60.0]  # nothing due: the worker wakes on the next alert anyway
        if self.pending:
            waits.append(self.limiter.wait_s(now))
        nd = self.coalescer.next_due()
        if nd is not None:
            waits.append(max(nd - now, 0.0))
        return max(min(waits), 0.0)

    def _deliver(self, alert: Alert) -> bool:
        """Send with retries. True when asked to stop meanwhile."""
        delays = backoff_delays(self.retries, self.backoff_s)
        error = ""
        for attempt in range(self.retries + 1):
            self.stats.attempts += 1
            try:
                self.send(alert)
            except Exception as e:  # any failure of a channel is the channel's, never the caller's
                error = str(e) or type(e).__name__
                if attempt < self.retries:
                    self.stats.retried += 1
                    if self.sleep(delays[attempt]):
                        self._failure(alert, f"{error} (stopping)")
                        return True
                continue
            self.stats.sent += 1
            self.stats.last_latency_s = self.clock() - alert.created if alert.created else None
            if self.on_sent is not None:
                self.on_sent(self.label, alert)
            return False
        self._failure(alert, f"{error} after {self.retries + 1} attempt(s)")
        return False

    def _failure(self, alert: Alert | None, error: str) -> None:
        if alert is not None:
            self.stats.failed += 1
        self.stats.last_error = error
        self._unreported += 1
        now = self.clock()
        if self._warned_at is not None and now - self._warned_at < self.coalesce_s:
            return
        n, self._unreported, self._warned_at = self._unreported, 0, now
        what = f"'{alert.title}'" if alert is not None else "alerts"
        more = f" ({n - 1} more failure(s) since the last warning)" if n > 1 else ""
        window = f"; next warning for this channel at the earliest in {self.coalesce_s:g}s" if self.coalesce_s else ""
        self.stats.warnings += 1
        try:
            self.warn(f"alert channel {self.label}: {what} not delivered: {error}{more}{window}")
        except Exception:  # pragma: no cover - a broken logger must not kill the worker
            pass
        try:
            self.on_failure(self.label, alert or Alert("alerts", "warning", "dropped", error), error, n)
        except Exception:  # pragma: no cover
            pass

    def flush(self, deadline: float) -> None:
        """On stop: send what waits (summaries included), without retries, until `deadline` (clock time)."""
        self.retries = 0
        self.pump(0.0)
        for a in self.coalescer.due(float("inf")):
            self.pending.append(a)
        while self.pending and self.clock() < deadline:
            self._deliver(self.pending.popleft())


ALERTS = AlertSettings()  # the [alerts] defaults


class AlertDispatcher:
    """One worker thread per channel. `channels`: [(label, send)], `send(alert)` raises on failure (`SendError`).

    `min_severity` drops lower alerts at `submit` (the per-event levels are the rules' business)."""

    def __init__(self, channels: list[tuple[str, Callable[[Alert], None]]], *, coalesce_s: float = ALERTS.coalesce_s,
                 max_per_minute: int = ALERTS.max_per_minute, retries: int = ALERTS.retries,
                 backoff_s: float = ALERTS.backoff_s, min_severity: str = ALERTS.min_severity,
                 warn: Callable[[str], None] = print, on_failure: Callable[[str, Alert, str, int], None] | None = None,
                 on_sent: Callable[[str, Alert], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 queue_max: int = 1000):
        self.min_rank = SEVERITY_RANK[min_severity]
        self.clock = clock
        self._stop = threading.Event()
        self.channels = [
            _Channel(label, send, coalesce_s=coalesce_s, max_per_minute=max_per_minute, retries=retries,
                     backoff_s=backoff_s, clock=clock, sleep=self._stop.wait, warn=warn,
                     on_failure=on_failure or (lambda *a: None), on_sent=on_sent, queue_max=queue_max)
            for label, send in channels]
        self._threads: list[threading.Thread] = []
        self.submitted = 0
        self.filtered = 0

    def submit(self, alert: Alert) -> bool:
        """Queue for every channel (non-blocking). False when filtered out by `min_severity`."""
        if SEVERITY_RANK.get(alert.severity, 0) < self.min_rank:
            self.filtered += 1
            return False
        a = dataclasses.replace(alert, created=self.clock())
        self.submitted += 1
        for ch in self.channels:
            ch.offer(a)
        return True

    def start(self) -> None:
        for ch in self.channels:
            t = threading.Thread(target=self._run, args=(ch,), name=f"basisbot-alerts-{len(self._threads)}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, ch: _Channel) -> None:
        wait = 0.0
        while not self._stop.is_set():
            try:
                wait = ch.pump(block_s=min(max(wait, 0.05), 1.0))
            except Exception as e:  # pragma: no cover - the worker must survive anything
                ch.stats.last_error = f"{type(e).__name__}: {e}"
                self._stop.wait(1.0)

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the workers, then give what still waits `timeout_s` to go out (no retries)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)
        deadline = self.clock() + timeout_s
        for i, ch in enumerate(self.channels):
            if i < len(self._threads) and self._threads[i].is_alive():
                continue  # still inside a send: leave it (daemon thread)
            try:
                ch.flush(deadline)
            except Exception:  # pragma: no cover
                pass
        self._threads = []

    def stats(self) -> dict[str, ChannelStats]:
        return {ch.label: ch.stats for ch in self.channels}


__all__ = ["Alert", "AlertDispatcher", "ChannelStats", "Coalescer", "RateLimiter", "SendError", "SEVERITY_RANK",
           "backoff_delays"]
