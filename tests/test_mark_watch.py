"""The shared mark handler: one subscription per instrument, each watcher called only for the marks outside its band,
in priority order; a woken band passes every mark until it rests."""

from __future__ import annotations

import math

from nautilus_trader.common.component import MessageBus, TestClock
from nautilus_trader.model.data import MarkPriceUpdate
from nautilus_trader.model.identifiers import InstrumentId, TraderId
from nautilus_trader.model.objects import Price

from basisbot.core.mark_watch import MarkBand, mark_watch

BTC = InstrumentId.from_str("BTCUSDT-PERP.BINANCE_PERP")
ETH = InstrumentId.from_str("ETHUSDT-PERP.BINANCE_PERP")


def _bus() -> MessageBus:
    return MessageBus(TraderId("TESTER-001"), TestClock())


def _publish(bus: MessageBus, iid: InstrumentId, px: float, ts: int = 1) -> None:
    bus.publish(f"data.mark_prices.{iid.venue}.{iid.symbol}", MarkPriceUpdate(iid, Price(px, 2), ts, ts))


def test_each_watcher_sees_only_the_marks_outside_its_band_in_priority_order():
    bus, seen = _bus(), []
    venue, guard = MarkBand(), MarkBand()
    venue.set_quiet(-math.inf, 50_000.0)  # a short liquidated at >= 50,000
    guard.set_quiet(-math.inf, 45_000.0)  # the guard's first step 10% before it
    mark_watch(bus, BTC).add(guard, lambda m, px: seen.append(("guard", px)))
    mark_watch(bus, BTC).add(venue, lambda m, px: seen.append(("venue", px)), priority=10)  # the same watch
    for px in (40_000.0, 44_999.99, 45_000.0, 50_000.0, 39_000.0):
        _publish(bus, BTC, px)
    assert seen == [("guard", 45_000.0), ("venue", 50_000.0), ("guard", 50_000.0)]
    _publish(bus, ETH, 60_000.0)  # another instrument's marks are not this watch's
    assert len(seen) == 3


def test_a_woken_band_passes_every_mark_until_it_rests_on_its_latest_range():
    bus, seen = _bus(), []
    band = MarkBand()  # nothing to watch yet: every mark is quiet
    mark_watch(bus, BTC).add(band, lambda m, px: seen.append(px))
    _publish(bus, BTC, 100.0)
    assert seen == []
    band.wake()
    band.set_quiet(90.0, 110.0)  # the owner's range changes while awake: still awake
    _publish(bus, BTC, 100.0)
    assert seen == [100.0] and band.awake
    band.rest()
    _publish(bus, BTC, 105.0)
    _publish(bus, BTC, 111.0)
    assert seen == [100.0, 111.0] and band.quiet == (90.0, 110.0)


def test_a_removed_band_is_not_called_and_adding_it_again_replaces_it():
    bus, calls = _bus(), []
    band = MarkBand()
    band.wake()
    watch = mark_watch(bus, BTC)
    watch.add(band, lambda m, px: calls.append("first"))
    watch.add(band, lambda m, px: calls.append("second"))  # the same band: replaced, not doubled
    _publish(bus, BTC, 1.0)
    watch.remove(band)
    _publish(bus, BTC, 2.0)
    assert calls == ["second"] and watch.watchers() == 0


def test_bands_moved_after_they_were_added_are_followed_even_by_a_handler_for_the_same_mark():
    """The watch skips a mark only when it is inside every band as the bands stand now: a band narrowed, woken or
    widened later is followed, and a band one handler moves is tested as moved for the mark being handled."""
    bus, seen = _bus(), []
    venue, guard = MarkBand(), MarkBand()
    watch = mark_watch(bus, BTC)
    watch.add(guard, lambda m, px: seen.append(("guard", px)))
    watch.add(venue, lambda m, px: (seen.append(("venue", px)), guard.wake()), priority=10)
    venue.set_quiet(-math.inf, 50_000.0)
    guard.set_quiet(-math.inf, 45_000.0)
    _publish(bus, BTC, 44_000.0)
    guard.set_quiet(-math.inf, 43_000.0)  # narrowed after it was added
    _publish(bus, BTC, 44_000.0)
    guard.set_quiet(-math.inf, 60_000.0)  # widened: the venue's band decides alone
    _publish(bus, BTC, 55_000.0)  # the venue's handler wakes the guard: it sees this mark too
    guard.rest()
    _publish(bus, BTC, 44_000.0)
    assert seen == [("guard", 44_000.0), ("venue", 55_000.0), ("guard", 55_000.0)]
    watch.remove(venue)
    _publish(bus, BTC, 55_000.0)  # the removed band no longer narrows the watch
    assert len(seen) == 3


def test_the_watch_is_on_the_bus_only_while_some_band_could_want_a_mark():
    bus, seen = _bus(), []
    topic = f"data.mark_prices.{BTC.venue}.{BTC.symbol}"
    venue, guard = MarkBand(), MarkBand()  # flat: quiet for every price
    watch = mark_watch(bus, BTC)
    watch.add(venue, lambda m, px: seen.append(("venue", px)), priority=10)
    watch.add(guard, lambda m, px: seen.append(("guard", px)))
    assert not watch.subscribed and not bus.has_subscribers(topic)
    _publish(bus, BTC, 40_000.0)
    assert seen == []
    venue.wake()  # a position opened: the venue publishes its state at the next mark
    assert watch.subscribed and bus.has_subscribers(topic)
    _publish(bus, BTC, 40_000.0)
    assert seen == [("venue", 40_000.0)]
    venue.set_quiet(-math.inf, 50_000.0)
    venue.rest()  # held, safe below its liquidation price: still watched
    _publish(bus, BTC, 51_000.0)
    assert seen[-1] == ("venue", 51_000.0) and watch.subscribed
    venue.set_quiet(-math.inf, math.inf)  # flat again
    assert not watch.subscribed and not bus.has_subscribers(topic)
    _publish(bus, BTC, 60_000.0)
    assert len(seen) == 2
    guard.wake()  # the strategy has work at the next mark (a restart to resume)
    _publish(bus, BTC, 60_000.0)
    assert seen[-1] == ("guard", 60_000.0)
    watch.remove(guard)
    watch.remove(venue)
    assert not bus.has_subscribers(topic)
