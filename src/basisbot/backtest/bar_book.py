"""Each bar's effect on the venues' order books, as nautilus' bar execution leaves them, at a fraction of its cost.

With bar execution, nautilus' matching engine replays a LAST bar as up to four trade ticks (open, high, low, close;
each only when it moves the last price, high before low) and iterates its orders after each. Our strategies send
market orders only, and nautilus fills a market order when it processes the order, never while a bar's ticks are
iterated, so no fill can come from inside a bar: what a bar leaves behind is the book, one price level on each side
at the last tick it processed (the close, sized as nautilus sizes the close; an earlier quarter-sized tick when the
close did not move the price; nothing when no tick moved it). The venues here run without bar execution and
`BarBook` hands each matching engine that one tick, found before anyone else hears of the bar (the highest priority
on the bars' topics), just as the engine processes a bar at its venue before it publishes it, and applied when an
order for the instrument comes (only the last book before an order is ever read: `BarBook`).

Which tick a bar leaves depends on the last price before it: the last intra-hour trade of its hour, or what the
previous bar left. The gated stream (`basisbot.backtest.stream`) leaves out trades and even whole bars where nothing
reads them, so that last price is not the engine's: `book_states` derives, from the feed's full sequence (every
intra-hour path and bar, as the every-path stream replays them), the book every bar leaves, and `BarBook` applies
that book (one tick) for every bar the engine gets. The book after any bar is then the every-path stream's, whatever
was left out before it.

The synthetic tick goes to the matching engine only, never to the data engine: the cache's last trade (what
nautilus' risk engine checks a market order against) stays the last trade tick of the stream, as with bar
execution. Trade ids of the venues' fills differ (bar execution numbers its four ticks among them); none of our
outputs holds them."""

from __future__ import annotations

from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.model.data import Bar, TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.events import OrderSubmitted
from nautilus_trader.model.identifiers import TradeId
from nautilus_trader.model.objects import Price, Quantity

BAR_BOOK_PRIORITY = 1_000_000  # before the portfolio's (10) and every strategy's handlers


def quarter_sizes(volume_raw: int, min_size_raw: int) -> tuple[int, int]:
    """nautilus' `compute_bar_quarter_sizes`: the size of the open, high and low ticks (a quarter of the volume, down
    to the size increment, at least one increment) and of the close (the rest, likewise)."""
    quarter = (volume_raw // 4) // min_size_raw * min_size_raw
    if quarter < min_size_raw:
        quarter = min_size_raw
    if quarter * 3 >= volume_raw:
        return quarter, min_size_raw
    close = (volume_raw - quarter * 3) // min_size_raw * min_size_raw
    return quarter, max(close, min_size_raw)


def last_tick(last: int | None, o: int, h: int, lo: int, c: int) -> tuple[int, bool] | None:
    """The last tick nautilus processes for a bar (raw prices; `last` the engine's last price, None before any):
    (its price, whether it is the close tick, sized as the close), None when no tick moves the price."""
    found = None
    if last is None or o != last:
        found, last = (o, False), o
    if h > last:
        found, last = (h, False), h
    if lo < last:
        found, last = (lo, False), lo
    if c != last:
        found = (c, True)
    return found


def book_after(book: tuple[int, int] | None, o: int, h: int, lo: int, c: int, volume_raw: int,
               min_size_raw: int) -> tuple[int, int] | None:
    """The book (price raw, size raw) a bar leaves, given the book before it (None: empty): the tick `last_tick`
    finds, sized by `quarter_sizes`; the book before it, the same object, when no tick moves the price."""
    found = last_tick(None if book is None else book[0], o, h, lo, c)
    if found is None:
        return book
    quarter, close = quarter_sizes(volume_raw, min_size_raw)
    return found[0], close if found[1] else quarter


def book_states(feed, min_sizes: dict) -> dict:
    """{instrument id: {bar time: (price raw, size raw) of the book the bar leaves, or None: no book yet}} for the
    bars of `feed` (a `SymbolFeed`) as the every-path stream replays them: per hour, the last intra-hour trade of each
    leg (`HourSpan.last_ticks`) sets the book (its price, its size), then each bar leaves the tick `last_tick` finds
    from that book's price, or the book as it was when no tick moves the price. `min_sizes`: instrument id -> the
    raw size increment."""
    events = feed.events
    out: dict = {}
    book: dict = {}
    for span in feed.hours:
        for i in span.last_ticks:
            tick = events[i][2]
            book[tick.instrument_id] = (tick.price.raw, tick.size.raw)
        for i in range(*span.bars):
            bar = events[i][2]
            iid = bar.bar_type.instrument_id
            now = book[iid] = book_after(book.get(iid), bar.open.raw, bar.high.raw, bar.low.raw, bar.close.raw,
                                         bar.volume.raw, min_sizes[iid])
            out.setdefault(iid, {})[bar.ts_init] = now
    return out


class VenueHandle(SimulationModule):
    """Hands over its venue's simulated exchange (nautilus gives its modules their exchange, and nobody else) and
    then leaves the exchange's per-data-point calls (`detach`)."""

    def __init__(self):
        super().__init__(SimulationModuleConfig())

    def detach(self):
        """The exchange, with this module out of its list."""
        if self in self.exchange.modules:
            self.exchange.modules.remove(self)
        return self.exchange

    def process(self, ts_now: int) -> None:
        pass


def carry_perp_bars(events: list, pairs: dict) -> tuple[list, dict]:
    """(the events without the perp bars a spot bar of the same symbol and time carries, {spot instrument id: {time:
    the perp bar it carries}}). `pairs`: spot instrument id -> perp instrument id. Nothing reads a perp bar but its
    matching engine (the strategies read the mark, the recorder the marks it is given), so a perp bar needs no event
    of its own when its spot bar comes at the same time: both go to their books when the spot bar arrives, before
    anything at that time can trade (at one time, the spot bars come first). A perp bar without one stays an event."""
    perp_of = {str(p): s for s, p in pairs.items()}
    spot_ts = {(b.bar_type.instrument_id, b.ts_init) for b in events if type(b) is Bar
               and b.bar_type.instrument_id in pairs}
    carried: dict = {s: {} for s in pairs}
    kept = []
    for e in events:
        if type(e) is Bar:
            spot = perp_of.get(str(e.bar_type.instrument_id))
            if spot is not None and (spot, e.ts_init) in spot_ts:
                carried[spot][e.ts_init] = e
                continue
        kept.append(e)
    return kept, carried


class BarBook:
    """Subscribes to every bar of `bar_types` and applies each to its venue's matching engine (see the module), and
    with each spot bar the perp bar it carries (`carry_perp_bars`).

    Lazily: a matching engine's L1 book is read only when it processes an order, and a bar's tick sets that book
    whole (both sides, at one price), as a trade tick of the stream does. So only the last book a bar left before an
    order matters: each bar's book waits (`_pending`) until an order for its instrument is submitted (nautilus'
    `OrderSubmitted`, published before the exchange gets the order, which it processes at that same time, before
    any later data), or until a trade tick of the stream, which the engine applies itself, replaces it. The book a
    matching engine holds when it fills an order is the one the bars and ticks before the order left, as when every
    bar's tick is applied when it comes; the ticks of the bars no order follows are never computed into the engine.
    """

    def __init__(self, msgbus, exchanges: dict, bar_types: list, carried: dict | None = None,
                 states: dict | None = None):
        """`exchanges`: instrument id -> the SimulatedExchange of its venue; `states`: the books the bars leave
        (`book_states`). A bar not there leaves the tick `last_tick` finds from the book before it."""
        self._engines = {}
        self._ids = 0
        self._carried = carried or {}
        self._states = states or {}
        self._pending: dict = {}  # instrument id -> (price raw, size raw, ts) of the book waiting to be applied
        for bt in bar_types:
            iid = bt.instrument_id
            me = exchanges[iid].get_matching_engine(iid)
            inst = me.instrument
            self._engines[iid] = (me, inst.size_increment.raw, inst.price_precision, inst.size_precision)
            msgbus.subscribe(f"data.bars.{bt}", self.on_bar, priority=BAR_BOOK_PRIORITY)
            msgbus.subscribe(f"data.trades.{iid.venue}.{iid.symbol}", self.on_trade, priority=BAR_BOOK_PRIORITY)
        msgbus.subscribe("events.order.*", self.on_order_event, priority=BAR_BOOK_PRIORITY)

    def on_bar(self, bar: Bar) -> None:
        iid = bar.bar_type.instrument_id
        self._take(iid, bar)
        carried = self._carried.get(iid)
        if carried:
            perp = carried.get(bar.ts_init)
            if perp is not None:
                self._take(perp.bar_type.instrument_id, perp)

    def on_trade(self, tick: TradeTick) -> None:
        """A trade tick of the stream: the engine has applied it to the matching engine; it replaces the book
        waiting there."""
        self._pending.pop(tick.instrument_id, None)

    def on_order_event(self, event) -> None:
        if type(event) is OrderSubmitted:
            self.apply(event.instrument_id)

    def apply(self, iid) -> None:
        """Hand the matching engine of `iid` the book waiting for it (if any)."""
        state = self._pending.pop(iid, None)
        if state is None:
            return
        me, _, pp, sp = self._engines[iid]
        price_raw, size_raw, ts = state
        self._ids += 1
        me.process_trade_tick(TradeTick(
            iid, Price.from_raw(price_raw, pp), Quantity.from_raw(size_raw, sp),
            AggressorSide.NO_AGGRESSOR, TradeId(f"B{self._ids}"), ts, ts))

    def _take(self, iid, bar: Bar) -> None:
        states = self._states.get(iid)
        if states is not None and bar.ts_init in states:
            state = states[bar.ts_init]
            if state is None:
                return  # no trade and no tick before it: the book stays empty
        else:
            me, min_raw, _, _ = self._engines[iid]
            waiting = self._pending.get(iid)
            if waiting is not None:
                before = (waiting[0], 0)
            else:
                best = me.best_bid_price()
                before = None if best is None else (best.raw, 0)
            state = book_after(before, bar.open.raw, bar.high.raw, bar.low.raw, bar.close.raw, bar.volume.raw,
                               min_raw)
            if state is before:
                return  # no tick moves the price: the book stays as it is
        self._pending[iid] = (state[0], state[1], bar.ts_init)
