"""Live market data on ccxt.pro: spot quotes, and the perp's mark price, index price and predicted funding rate.
What the messages look like per exchange is read by the session's venue hooks (`basisbot.live.venue_hooks`); the
Binance streams are described below. OKX: quotes from `bbo-tbt`, the mark from `mark-price`, and the predicted rate,
next settlement and interval from its own `funding-rate` channel (a separate feed, `watch_funding_rate`).

One `CcxtMarketDataClient` per venue (BINANCE_SPOT, BINANCE_PERP), both on the node's shared `VenueSession`.

- Spot quotes: `watch_bids_asks` (Binance `<symbol>@bookTicker`) -> `QuoteTick` (perp quotes the same way when
  something subscribes to them, e.g. the paper-trading matching engine).
- Perp: `watch_mark_price` (`<symbol>@markPrice@1s`) -> `MarkPriceUpdate` (mark `p`), `IndexPriceUpdate` (index `i`)
  and `FundingRateUpdate(rate=r, the PREDICTED rate of the next settlement; interval; next_funding_ns=T)`, one of each
  per message (the funding update first: the strategy's entry and hedge checks run on it). Last trade, index and
  mark are kept apart: the strategy's risk runs on the mark only.
- The funding interval (minutes) comes from `fetch_funding_intervals` (`/fapi/v1/fundingInfo`; symbols not listed
  there have Binance's default 8h) and is refreshed every `interval_refresh_s` and whenever a new settlement time is
  announced.
- A dropped websocket fails the pending watch: the stream loop waits (exponential backoff from 0.5 s, capped at
  `live.reconnect_max_s`) and watches again, which makes ccxt.pro reconnect and re-subscribe.
- Polling fallback, every `live.poll_interval_s`: a stream that has been silent for longer than that (dropped,
  reconnecting, or the exchange stopped pushing) is served from REST meanwhile (`fetch_funding_rate` =
  premiumIndex: mark, index, predicted rate, next funding time; `fetch_bids_asks` for quotes), so the guard never
  waits on a reconnect. Streams ccxt.pro does not offer would be polled the same way.

Timestamps: `ts_event` is the exchange's event time mapped by `VenueTime` (identity against Binance), `ts_init` the
node's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.data.messages import (
    SubscribeFundingRates,
    SubscribeIndexPrices,
    SubscribeInstrument,
    SubscribeInstruments,
    SubscribeMarkPrices,
    SubscribeQuoteTicks,
    UnsubscribeFundingRates,
    UnsubscribeIndexPrices,
    UnsubscribeMarkPrices,
    UnsubscribeQuoteTicks,
)
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.data import FundingRateUpdate, IndexPriceUpdate, MarkPriceUpdate, QuoteTick
from nautilus_trader.model.identifiers import ClientId, InstrumentId, Venue
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Price, Quantity

from basisbot.config.schema import LiveSettings
from basisbot.live.instruments import StaticInstrumentProvider
from basisbot.live.session import VenueSession

DEFAULT_INTERVAL_MIN = 480
LIVE = LiveSettings()  # the [live] defaults


@dataclass
class DataOptions:
    reconnect_max_s: float = LIVE.reconnect_max_s
    poll_interval_s: float = LIVE.poll_interval_s
    reconnect_initial_s: float = 0.5
    interval_refresh_s: float = 3600.0


@dataclass
class _Feed:
    """One streamed thing per instrument (quotes, or the markPrice stream carrying mark/index/funding)."""

    kind: str  # "quotes" | "mark"
    instrument_id: InstrumentId
    symbol: str  # unified ccxt symbol
    wants: set = field(default_factory=set)  # for "mark": {"mark", "index", "funding"}
    task: asyncio.Task | None = None
    last_wall: float = 0.0  # monotonic time of the last message (stream or poll)
    last_stream_wall: float = 0.0
    down_since: float | None = None
    reconnects: int = 0
    messages: int = 0
    polled: int = 0
    polling_since: float | None = None  # monotonic: REST polling took over from a silent stream
    polls_while_silent: int = 0


@dataclass
class _FundingView:
    rate: Decimal | None = None
    next_ms: int | None = None
    next_ns: int | None = None  # next_ms on the node's clock, mapped once per settlement and time base
    anchor: int = -1  # VenueTime.jumps when next_ns was mapped
    interval_min: int | None = None


class CcxtMarketDataClient(LiveMarketDataClient):
    def __init__(self, loop: asyncio.AbstractEventLoop, *, venue: Venue, kind: str, session: VenueSession,
                 instruments: list[Instrument], msgbus: MessageBus, cache: Cache, clock: LiveClock,
                 options: DataOptions | None = None, on_mark_received: Callable | None = None):
        if kind not in ("spot", "perp"):
            raise ValueError(f"kind must be 'spot' or 'perp', got {kind!r}")
        super().__init__(
            loop=loop, client_id=ClientId(f"{venue.value}-DATA"), venue=venue, msgbus=msgbus, cache=cache,
            clock=clock, instrument_provider=StaticInstrumentProvider(instruments), config=None,
        )
        self.kind = kind
        self.session = session
        self.ex = session.spot if kind == "spot" else session.perp
        self.opts = options or DataOptions()
        self._instruments = {i.id: i for i in instruments}
        self._symbols = {i.id: (session.spot_symbol if kind == "spot" else session.perp_symbol)(i.raw_symbol.value)
                         for i in instruments}
        self._feeds: dict[tuple[str, InstrumentId], _Feed] = {}
        self._funding: dict[InstrumentId, _FundingView] = {}
        self._intervals: dict[str, int] = {}  # exchange id -> minutes
        self._intervals_at = 0.0
        self._poll_task: asyncio.Task | None = None
        self._interval_task: asyncio.Task | None = None
        self._running = False
        self.on_mark_received = on_mark_received  # benchmark hook: fn(instrument_id, venue_ms, ts_event, perf_ns)

    # -- lifecycle --------------------------------------------------------------------------------------------------
    async def _connect(self) -> None:
        self._running = True
        for inst in self._instruments.values():
            self._handle_data(inst)
        if self.kind == "perp":
            await self._refresh_intervals()
        self._poll_task = self.create_task(self._poll_loop(), log_msg=f"{self.id}: poll loop")

    async def _disconnect(self) -> None:
        self._running = False
        tasks = [f.task for f in self._feeds.values() if f.task] + [t for t in (self._poll_task,) if t]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._feeds.clear()

    # -- subscriptions ----------------------------------------------------------------------------------------------
    async def _subscribe_instruments(self, command: SubscribeInstruments) -> None:
        for inst in self._instruments.values():
            self._handle_data(inst)

    async def _subscribe_instrument(self, command: SubscribeInstrument) -> None:
        inst = self._instruments.get(command.instrument_id)
        if inst is not None:
            self._handle_data(inst)

    async def _subscribe_quote_ticks(self, command: SubscribeQuoteTicks) -> None:
        self._ensure("quotes", command.instrument_id, None)

    async def _unsubscribe_quote_ticks(self, command: UnsubscribeQuoteTicks) -> None:
        self._release("quotes", command.instrument_id, None)

    async def _subscribe_mark_prices(self, command: SubscribeMarkPrices) -> None:
        self._ensure("mark", command.instrument_id, "mark")

    async def _unsubscribe_mark_prices(self, command: UnsubscribeMarkPrices) -> None:
        self._release("mark", command.instrument_id, "mark")

    async def _subscribe_index_prices(self, command: SubscribeIndexPrices) -> None:
        self._ensure("mark", command.instrument_id, "index")

    async def _unsubscribe_index_prices(self, command: UnsubscribeIndexPrices) -> None:
        self._release("mark", command.instrument_id, "index")

    async def _subscribe_funding_rates(self, command: SubscribeFundingRates) -> None:
        self._ensure("mark", command.instrument_id, "funding")

    async def _unsubscribe_funding_rates(self, command: UnsubscribeFundingRates) -> None:
        self._release("mark", command.instrument_id, "funding")

    def _ensure(self, kind: str, iid: InstrumentId, what: str | None) -> None:
        if kind == "mark" and what == "funding" and self.session.hooks.separate_funding_stream:
            kind = "funding"  # OKX: the predicted rate and next settlement have their own channel
        if iid not in self._symbols:
            self._log.error(f"{iid}: not an instrument of {self.id}")
            return
        if kind in ("mark", "funding") and self.kind != "perp":
            self._log.error(f"{iid}: mark/index/funding exist for the perpetual only")
            return
        key = (kind, iid)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed(kind, iid, self._symbols[iid])
            feed.last_wall = time.monotonic()
            feed.task = self.create_task(self._stream_loop(feed), log_msg=f"{self.id}: {kind} {iid}")
        if what:
            feed.wants.add(what)

    def _release(self, kind: str, iid: InstrumentId, what: str | None) -> None:
        if kind == "mark" and what == "funding" and self.session.hooks.separate_funding_stream:
            kind = "funding"
        feed = self._feeds.get((kind, iid))
        if feed is None:
            return
        if what:
            feed.wants.discard(what)
        if not what or not feed.wants:
            if feed.task:
                feed.task.cancel()
            del self._feeds[(kind, iid)]

    # -- streams ----------------------------------------------------------------------------------------------------
    async def _stream_loop(self, feed: _Feed) -> None:
        delay = self.opts.reconnect_initial_s
        while self._running:
            try:
                if feed.kind == "mark":
                    msg = await self.ex.watch_mark_price(feed.symbol)
                    recv = time.perf_counter_ns()
                    self._on_mark_message(feed, msg, recv)
                elif feed.kind == "funding":
                    self._on_funding_message(feed, await self.ex.watch_funding_rate(feed.symbol))
                else:
                    msgs = await self.ex.watch_bids_asks([feed.symbol])
                    for m in msgs.values():
                        self._on_quote(feed, m)
                now = time.monotonic()
                feed.last_wall = feed.last_stream_wall = now
                feed.messages += 1
                if feed.down_since is not None:
                    self._log.info(f"{feed.kind} stream {feed.symbol} back after {now - feed.down_since:.1f}s")
                    feed.down_since = None
                if feed.polling_since is not None:
                    self._log.info(f"{feed.kind} stream {feed.symbol} recovered: REST polling stops (it covered "
                                   f"{now - feed.polling_since:.1f}s with {feed.polls_while_silent} poll(s))")
                    feed.polling_since = None
                    feed.polls_while_silent = 0
                delay = self.opts.reconnect_initial_s
            except asyncio.CancelledError:
                raise
            except Exception as e:  # ccxt.NetworkError on a dropped socket; anything else is logged the same way
                if not self._running:
                    return
                if feed.down_since is None:
                    feed.down_since = time.monotonic()
                feed.reconnects += 1
                self._log.warning(f"{feed.kind} stream {feed.symbol}: {type(e).__name__}: {e}; "
                                  f"reconnecting in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.opts.reconnect_max_s)

    def _on_quote(self, feed: _Feed, t: dict) -> None:
        bid, ask = t.get("bid"), t.get("ask")
        if bid is None or ask is None:
            return
        inst = self._instruments[feed.instrument_id]
        now = self._clock.timestamp_ns()
        ts = self.session.time.to_local(t["timestamp"]) if t.get("timestamp") else now
        quote = QuoteTick(
            instrument_id=inst.id,
            bid_price=Price(bid, inst.price_precision),
            ask_price=Price(ask, inst.price_precision),
            bid_size=Quantity(t.get("bidVolume") or 0.0, inst.size_precision),
            ask_size=Quantity(t.get("askVolume") or 0.0, inst.size_precision),
            ts_event=min(ts, now),
            ts_init=now,
        )
        self._handle_data(quote)

    def _on_mark_message(self, feed: _Feed, t: dict, recv_ns: int | None = None) -> None:
        venue_ms, mark, index, rate, next_ms = self.session.hooks.mark_fields(t)
        self.session.time.observe(venue_ms)
        self._publish_perp(feed, venue_ms, mark, index, rate, next_ms, recv_ns)

    def _on_funding_message(self, feed: _Feed, fr: dict) -> None:
        """A funding-rate message of its own channel (OKX): the predicted rate of the coming settlement, its time
        and the interval it states."""
        venue_ms, rate, next_ms, interval = self.session.hooks.funding_fields(fr)
        if interval:
            self._intervals[self._instruments[feed.instrument_id].raw_symbol.value] = interval
        self._publish_perp(feed, venue_ms, None, None, rate, next_ms)

    def _publish_perp(self, feed: _Feed, venue_ms, mark, index, rate, next_ms, recv_ns=None) -> None:
        inst = self._instruments[feed.instrument_id]
        now = self._clock.timestamp_ns()
        ts = min(self.session.time.to_local(venue_ms), now) if venue_ms else now
        # funding first: the strategy decides on the prediction that goes with this mark
        if "funding" in feed.wants and rate not in (None, ""):
            self._publish_funding(inst.id, Decimal(str(rate)), int(next_ms) if next_ms else None, ts, now)
        if "index" in feed.wants and index:
            self._handle_data(IndexPriceUpdate(inst.id, Price(float(index), inst.price_precision), ts, now))
        if "mark" in feed.wants and mark:
            update = MarkPriceUpdate(inst.id, Price(float(mark), inst.price_precision), ts, now)
            if self.on_mark_received is not None and recv_ns is not None:
                self.on_mark_received(inst.id, venue_ms, ts, recv_ns)
            self._handle_data(update)

    def _publish_funding(self, iid: InstrumentId, rate: Decimal, next_ms: int | None, ts: int, now: int) -> None:
        view = self._funding.setdefault(iid, _FundingView())
        if next_ms is not None and view.next_ms is not None and next_ms != view.next_ms:
            # a new settlement is announced: the interval may have changed (Binance moves symbols between 8h/4h/...)
            if self._interval_task is None or self._interval_task.done():
                self._interval_task = self.create_task(self._refresh_intervals(), log_msg="funding intervals")
        interval = self._intervals.get(self._instruments[iid].raw_symbol.value, DEFAULT_INTERVAL_MIN)
        # published with every mark-price message, changed or not: the strategy's entry and hedge checks run on it
        anchor = self.session.time.jumps
        if next_ms != view.next_ms or view.next_ns is None or anchor != view.anchor:
            # one settlement, one local time per time base (a jump of the venue's clock re-maps it)
            view.next_ns = self.session.time.to_local(next_ms) if next_ms else None
            view.anchor = anchor
        view.rate, view.next_ms, view.interval_min = rate, next_ms, interval
        next_ns = view.next_ns
        self._handle_data(FundingRateUpdate(iid, rate, ts, now, interval=interval, next_funding_ns=next_ns))

    async def _refresh_intervals(self) -> None:
        try:
            out = await self.session.hooks.funding_intervals(self.ex)
        except Exception as e:
            self._log.warning(f"funding intervals: {type(e).__name__}: {e} (keeping {self._intervals or 'defaults'})")
            return
        self._intervals.update(out)
        self._intervals_at = time.monotonic()

    # -- polling fallback -------------------------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        period = self.opts.poll_interval_s
        while self._running:
            await asyncio.sleep(period)
            now = time.monotonic()
            if self.kind == "perp" and now - self._intervals_at > self.opts.interval_refresh_s:
                await self._refresh_intervals()
            for feed in list(self._feeds.values()):
                if now - feed.last_wall < period:
                    continue
                if feed.polling_since is None:
                    silent = now - (feed.last_stream_wall or feed.last_wall)
                    feed.polling_since = now
                    self._log.warning(f"{feed.kind} stream {feed.symbol} silent for {silent:.1f}s: REST polling "
                                      f"takes over (every {period:g}s) until the stream recovers")
                try:
                    await self._poll_once(feed)
                    feed.last_wall = time.monotonic()
                    feed.polled += 1
                    feed.polls_while_silent += 1
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    self._log.warning(f"poll {feed.kind} {feed.symbol}: {type(e).__name__}: {e}")

    async def _poll_once(self, feed: _Feed) -> None:
        if feed.kind in ("mark", "funding"):
            self._publish_perp(feed, *(await self.session.hooks.poll_perp(self.ex, feed.symbol)))
        else:
            res = await self.ex.fetch_bids_asks([feed.symbol])
            t = res.get(feed.symbol)
            if t:
                self._on_quote(feed, t)

    # -- introspection (tests, status) -------------------------------------------------------------------------------
    def feed_stats(self) -> dict:
        return {f"{k[0]}:{k[1]}": {"messages": f.messages, "polled": f.polled, "reconnects": f.reconnects,
                                   "down": f.down_since is not None} for k, f in self._feeds.items()}


__all__ = ["CcxtMarketDataClient", "DataOptions"]
