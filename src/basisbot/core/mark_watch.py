"""One handler per instrument's mark prices, shared by everything in the process that watches them: the simulated
perp venue's liquidation check (backtest, paper) and the strategy's guard (every world).

Every mark passes here, and almost every mark is quiet for every watcher: inside the watcher's band, the range of
marks at which it has nothing to do (the guard: farther from the liquidation price than its first step; the venue:
on the safe side of the liquidation price). One handler that tests the bands costs one call per mark instead of one
per watcher; a watcher is called only for a mark outside its band, in priority order (highest first). Each band is
kept current by its owner whenever what it depends on changes, never recomputed per mark; an owner that has work to
do at the next mark whatever its price `wake`s its band, and `rest`s it once done.

The watch is found through the message bus (an endpoint per instrument), so the venue module and the strategy need
not know of each other; whoever comes first creates it. It is subscribed to the instrument's mark topic only while a
band is not quiet for every price (a flat symbol's marks are not passed to Python at all).
"""

from __future__ import annotations

import math
from typing import Any, Callable

EVERY_MARK_QUIET = (-math.inf, math.inf)  # nothing to watch
NO_MARK_QUIET = (math.inf, -math.inf)  # every mark is looked at
WATCH_PRIORITY = 10  # on the message bus: before other subscribers of the marks (they see the state the mark left)

MarkHandler = Callable[[Any, float], None]  # (the MarkPriceUpdate, its price as a float)


class MarkBand:
    """The marks one watcher may skip: strictly inside (`low`, `high`), what the watch tests. `set_quiet` sets the
    owner's range; `wake` opens the band to every mark until `rest`."""

    __slots__ = ("low", "high", "_quiet", "_awake", "_watches")

    def __init__(self) -> None:
        self._quiet = EVERY_MARK_QUIET
        self._awake = False
        self.low, self.high = EVERY_MARK_QUIET
        self._watches: list[MarkWatch] = []  # the watches testing this band (told when it moves)

    @property
    def quiet(self) -> tuple[float, float]:
        """The owner's range (what the band returns to when it rests)."""
        return self._quiet

    @property
    def awake(self) -> bool:
        return self._awake

    def set_quiet(self, low: float, high: float) -> None:
        self._quiet = (low, high)
        if not self._awake:
            self._move(low, high)

    def wake(self) -> None:
        self._awake = True
        self._move(*NO_MARK_QUIET)

    def rest(self) -> None:
        self._awake = False
        self._move(*self._quiet)

    def _move(self, low: float, high: float) -> None:
        if low != self.low or high != self.high:
            self.low, self.high = low, high
            for watch in self._watches:
                watch._narrow()


class MarkWatch:
    """The bands watching one instrument's marks and the one handler that tests them."""

    def __init__(self, msgbus=None, topic: str | None = None) -> None:
        self._entries: list[tuple[int, int, MarkBand, MarkHandler]] = []
        self._seq = 0
        self._calls: tuple[tuple[MarkBand, MarkHandler], ...] = ()
        # the marks no watcher needs: inside every band (kept by the bands as they move). A mark inside costs one
        # test; one outside is tested against each band, as they stand then.
        self.low, self.high = EVERY_MARK_QUIET
        # on the message bus (`mark_watch`): subscribed to the marks only while some band could want one; while every
        # band is quiet for every price (nothing held, nothing to resume) the marks are not even passed here
        self._msgbus, self._topic = msgbus, topic
        self._subscribed = False

    def add(self, band: MarkBand, handler: MarkHandler, priority: int = 0) -> None:
        """Watch with `band`, calling `handler` for the marks outside it (again with the same band: replaced)."""
        self.remove(band)
        self._seq += 1
        self._entries.append((-priority, self._seq, band, handler))
        self._entries.sort(key=lambda e: e[:2])
        self._calls = tuple((b, h) for _, _, b, h in self._entries)
        band._watches.append(self)
        self._narrow()

    def remove(self, band: MarkBand) -> None:
        self._entries = [e for e in self._entries if e[2] is not band]
        self._calls = tuple((b, h) for _, _, b, h in self._entries)
        if self in band._watches:
            band._watches.remove(self)
        self._narrow()

    def _narrow(self) -> None:
        # the highest low and the lowest high of the bands (a loop: max/min over generators cost 10x as much, and
        # this runs at every band move: twice per settlement of a held symbol)
        low, high = EVERY_MARK_QUIET
        for band, _ in self._calls:
            if band.low > low:
                low = band.low
            if band.high < high:
                high = band.high
        self.low, self.high = low, high
        if self._msgbus is not None:
            wanted = (low, high) != EVERY_MARK_QUIET
            if wanted and not self._subscribed:
                self._msgbus.subscribe(self._topic, self.on_mark, priority=WATCH_PRIORITY)
            elif self._subscribed and not wanted:
                self._msgbus.unsubscribe(self._topic, self.on_mark)
            self._subscribed = wanted

    @property
    def subscribed(self) -> bool:
        """Whether the marks reach this watch (some band could want one)."""
        return self._subscribed

    def watchers(self) -> int:
        return len(self._calls)

    def on_mark(self, mark) -> None:
        px = mark.value.as_double()
        if self.low < px < self.high:
            return  # quiet for every watcher
        for band, handler in self._calls:  # a band added or removed by a handler counts from the next mark
            if not band.low < px < band.high:
                handler(mark, px)


def _endpoint(instrument_id) -> str:
    return f"basisbot.core.mark_watch.{instrument_id}"


def mark_watch(msgbus, instrument_id) -> MarkWatch:
    """The watch of this instrument's marks on this message bus, created on first use."""
    endpoint = _endpoint(instrument_id)
    if endpoint not in msgbus.endpoints():
        # subscribed to the instrument's marks by its first band that is not quiet for every price
        watch = MarkWatch(msgbus, f"data.mark_prices.{instrument_id.venue}.{instrument_id.symbol}")
        # the endpoint answers with the watch itself (nothing else is ever sent to it)
        msgbus.register(endpoint, lambda reply: reply(watch))
    box: list[MarkWatch] = []
    msgbus.send(endpoint, box.append)
    return box[0]
