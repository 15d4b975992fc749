"""`BarBook` against nautilus' own bar execution: the venues of a backtest run without bar execution and `BarBook`
hands each matching engine the one trade tick bar execution would leave in its L1 book. Two engines are fed the same
events (a month of the quick start's real data, both legs of two symbols with their intra-hour ticks, then synthetic
hours for the edge cases: flat bars, zero volume, a close at the last price, volumes of a few increments): one as
nautilus runs bars (`bar_execution=True`, no BarBook), one as `build_engine` builds it. After every bar the L1 book
of every instrument must be the same, and market orders sent right after a bar must fill at the same prices and
sizes, the part beyond the book's top size included."""

from __future__ import annotations

import dataclasses
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.accounting.margin_models import StandardMarginModel
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import MakerTakerFeeModel
from nautilus_trader.config import BacktestEngineConfig, LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import Bar, TradeTick
from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType, OrderSide
from nautilus_trader.model.identifiers import TradeId, TraderId
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from basisbot.backtest.bar_book import BarBook, VenueHandle, book_states, last_tick, quarter_sizes
from basisbot.backtest.feed import bar_type
from basisbot.backtest.run import build_engine, prepare
from basisbot.config.loading import load_settings
from basisbot.nautilus.instruments import perp_venue, spot_venue

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "basisbot.toml"
DATA = ROOT / "backtests" / "data" / "binance"
HOUR_NS = 3_600_000_000_000


# -- quarter_sizes and last_tick ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("volume, step, expected", [
    (0, 1, (1, 1)),         # no volume: one increment each
    (3, 1, (1, 1)),         # fewer than 4 increments: the quarter rounds to 0, raised to one increment; 3 >= 3
    (4, 1, (1, 1)),         # exactly divisible: a quarter each, the close the last quarter
    (8, 1, (2, 2)),
    (5, 1, (1, 2)),         # the close takes the rest
    (11, 1, (2, 5)),
    (7, 10, (10, 10)),      # less than one increment: one increment each
    (35, 10, (10, 10)),     # quarter 8 rounds down to 0 -> 10; rest 5 rounds down to 0 -> 10
    (100, 10, (20, 40)),    # quarter 25 -> 20; rest 40
    (119, 10, (20, 50)),    # rest 59 rounds down to 50
    (30, 10, (10, 10)),     # three quarters exactly the volume: the close one increment
    (40, 10, (10, 10)),
    (2_000_000_000_000, 1_000_000_000, (500_000_000_000, 500_000_000_000)),
])
def test_quarter_sizes_follow_nautilus(volume, step, expected):
    assert quarter_sizes(volume, step) == expected


@pytest.mark.parametrize("last, o, h, lo, c, expected", [
    (None, 10, 10, 10, 10, (10, False)),  # nothing before: the open always ticks, even on a flat bar
    (None, 10, 12, 8, 9, (9, True)),      # nothing before, every price moves: the close
    (10, 10, 10, 10, 10, None),           # a flat bar at the last price: no tick at all
    (10, 12, 12, 12, 12, (12, False)),    # a flat bar elsewhere: the open only, quarter-sized
    (10, 10, 12, 8, 8, (8, False)),       # the close at the low: the low was the last tick
    (10, 11, 11, 9, 9, (9, False)),       # open moves, high does not (== open), the close at the low
    (10, 12, 14, 11, 10, (10, True)),     # the close at the last price before the bar still moves it (from the low)
    (10, 10, 13, 10, 13, (13, True)),     # low equals the open: it ticks after the high; the close moves back up
    (10, 10, 10, 7, 7, (7, False)),       # only the low moves
    (10, 11, 11, 11, 11, (11, False)),    # open only
    (10, 10, 11, 9, 10, (10, True)),      # the close back at the open
])
def test_last_tick_branches(last, o, h, lo, c, expected):
    assert last_tick(last, o, h, lo, c) == expected


def test_last_tick_high_is_last_when_the_low_is_not_below_it():
    # in a consistent bar (low <= open < high) the low always ticks after a high that moved; the high stays the
    # last tick only for prices no bar has (a low above the open), the branch is still nautilus' order
    assert last_tick(10, 10, 12, 12, 12) == (12, False)


# -- two engines over real data ---------------------------------------------------------------------------------------


def _every_bar_an_event(p) -> list:
    """The stream with each carried perp bar back as an event of its own, where the full stream has it: after the
    spot bars of its time (`carry_perp_bars`)."""
    out, pending = [], []
    for i, e in enumerate(p.events):
        out.append(e)
        if type(e) is Bar and e.bar_type.instrument_id in p.carried:
            perp = p.carried[e.bar_type.instrument_id].get(e.ts_init)
            if perp is not None:
                pending.append(perp)
        nxt = p.events[i + 1] if i + 1 < len(p.events) else None
        if pending and not (type(nxt) is Bar and nxt.ts_init == e.ts_init and nxt.bar_type.instrument_id in p.carried):
            out.extend(pending)
            pending = []
    return out


@pytest.fixture(scope="module")
def carried():
    """The month as `prepare` makes it: perp bars carried by their spot bars."""
    settings = load_settings(CONFIG, env_file=None)
    return prepare(settings, config_path=CONFIG, data_dir=DATA, start="2022-06-01", end="2022-07-01",
                   symbols=["BTCUSDT", "ETHUSDT"])


@pytest.fixture(scope="module")
def prepared(carried):
    """Every bar an event (BarBook applies each as it arrives), and the synthetic hours after the month."""
    p = dataclasses.replace(carried, events=_every_bar_an_event(carried), carried={})
    return dataclasses.replace(p, events=p.events + _synthetic_hours(p))


def test_carried_perp_bars_leave_the_books_as_their_own_events(carried):
    """A perp bar carried by its spot bar leaves every book as when it comes as an event of its own, by the end of
    each time's bars (before anything at that time can trade), with one event fewer per carried bar."""
    assert len(carried.events) < len(_every_bar_an_event(carried))
    n_carried = sum(len(v) for v in carried.carried.values())
    assert n_carried > 1000 and len(_every_bar_an_event(carried)) - len(carried.events) == n_carried
    own = dataclasses.replace(carried, events=_every_bar_an_event(carried), carried={})
    rows = []
    for p in (own, carried):
        engine, engines = _bar_book_engine(p)
        watch = _Watch(engine, engines)
        engine.run()
        rows.append({ts: books for ts, _, books in watch.rows})  # the last row of each time
        engine.dispose()
    assert len(rows[0]) > 700 and rows[0] == rows[1]


def _real_end(p) -> int:
    """The last real bar's time: the synthetic hours follow it."""
    return max(ts for f in p.feeds.values() for ts, _, e in f.events if type(e) is Bar)


def _instruments(p) -> list:
    return [i for s in p.enabled for i in (p.spot_insts[s], p.perp_insts[s])]


def _unit(inst) -> int:
    """The raw size of the orders of the synthetic hours: above the 5 USDT minimum notional on either leg, and
    above every synthetic bar's top size except the large one's."""
    return Quantity(Decimal("0.01"), inst.size_precision).raw


# Synthetic hours after the real month, per instrument, prices in increments from the last real close L and volumes
# in size increments: (open, high, low, close, volume, an intra-hour trade before the bar or None).
SYNTHETIC = [
    (0, 0, 0, 0, 0, None),          # flat at the last price, no volume: the book keeps the real close
    (5, 5, 5, 5, 0, None),          # flat elsewhere, no volume: the open, one increment
    (5, 8, 2, 2, 10, None),         # the close at the low: the low's quarter (2)
    (6, 9, 1, 4, 7, 4),             # the close at the last price (an intra-hour trade at 4): the close size (4)
    (4, 4, 4, 4, 3, None),          # flat at the last price with volume: no tick
    (4, 4, 1, 1, 3, None),          # only the low moves, 3 increments: one increment
    (2, 2, 2, 2, 8, None),          # flat elsewhere, 8 increments: the open's quarter (2)
    (2, 6, 2, 6, 8, None),          # low == open ticks after the high; the close back up: the close size (2)
    (3, 3, 0, 3, 9, 1),             # an intra-hour trade, then open, low, close: the close size (3)
    (3, 7, 0, 5, None, None),       # a large volume: top size above the order size
    (5, 5, 5, 5, None, None),       # flat at the last price after it
]


def _synthetic_hours(p) -> list:
    insts = _instruments(p)
    last_bar = {}
    for e in p.events:
        if type(e) is Bar:
            last_bar[e.bar_type.instrument_id] = e
    t0 = _real_end(p)
    events = []
    for k, (o, h, lo, c, vol, trade) in enumerate(SYNTHETIC, start=1):
        t = t0 + k * HOUR_NS
        for n, inst in enumerate(insts):
            iid, pp, sp = inst.id, inst.price_precision, inst.size_precision
            base, step, inc = last_bar[iid].close.raw, inst.price_increment.raw, inst.size_increment.raw
            if trade is not None:
                events.append(TradeTick(iid, Price.from_raw(base + trade * step, pp), Quantity.from_raw(inc, sp),
                                        AggressorSide.NO_AGGRESSOR, TradeId(f"S{k}-{n}"), t - HOUR_NS // 2,
                                        t - HOUR_NS // 2))
            size = 400 * _unit(inst) if vol is None else vol * inc
            events.append(Bar(bar_type(inst), *(Price.from_raw(base + x * step, pp) for x in (o, h, lo, c)),
                              Quantity.from_raw(size, sp), t, t))
    events.sort(key=lambda e: e.ts_init)  # stable: each hour's trades before its bars
    return events


def _reference_engine(p) -> tuple[BacktestEngine, dict]:
    """The venues as `build_engine` configures them, with nautilus' bar execution and no BarBook."""
    bt, profile = p.settings.backtest, p.settings.venue
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BASISBOT-001"), run_analysis=False,
                                                 logging=LoggingConfig(log_level="ERROR", print_config=False)))
    handles = VenueHandle(), VenueHandle()
    engine.add_venue(
        venue=spot_venue(profile), oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None,
        starting_balances=[Money(bt.spot_balance_usdt, USDT)], fee_model=MakerTakerFeeModel(), modules=[handles[0]],
        bar_execution=True,
    )
    engine.add_venue(
        venue=perp_venue(profile), oms_type=OmsType.NETTING, account_type=AccountType.MARGIN, base_currency=USDT,
        starting_balances=[Money(bt.perp_balance_usdt, USDT)], fee_model=MakerTakerFeeModel(),
        margin_model=StandardMarginModel(), default_leverage=Decimal(1), modules=[handles[1]], bar_execution=True,
    )
    spot_exchange, perp_exchange = (h.detach() for h in handles)
    for inst in _instruments(p):
        engine.add_instrument(inst)
    engine.add_data(p.events, sort=True)
    engines = {i.id: spot_exchange.get_matching_engine(i.id) for i in p.spot_insts.values()}
    engines.update({i.id: perp_exchange.get_matching_engine(i.id) for i in p.perp_insts.values()})
    return engine, engines


def _bar_book_engine(p) -> tuple[BacktestEngine, dict]:
    """`build_engine`'s engine and the matching engines its BarBook feeds."""
    engine, _ = build_engine(p)
    books = {id(s.handler.__self__): s.handler.__self__ for s in engine.kernel.msgbus.subscriptions("data.bars.*")
             if isinstance(getattr(s.handler, "__self__", None), BarBook)}
    assert len(books) == 1, "build_engine wires one BarBook on the bars' topics"
    (bar_book,) = books.values()
    return engine, {iid: _Pending(entry[0], bar_book) for iid, entry in bar_book._engines.items()}


class _Pending:
    """A matching engine as an order would find it: with the book BarBook holds back for it (`BarBook._pending`,
    applied when an order for the instrument is submitted) in place of the engine's own, without applying it."""

    def __init__(self, me, bar_book: BarBook):
        self.me, self.bar_book, self.instrument = me, bar_book, me.instrument

    def _waiting(self):
        state = self.bar_book._pending.get(self.me.instrument.id)
        if state is None:
            return None
        return (Price.from_raw(state[0], self.instrument.price_precision),
                Quantity.from_raw(state[1], self.instrument.size_precision))

    def get_book(self):
        waiting = self._waiting()
        return self.me.get_book() if waiting is None else _L1(*waiting)

    def best_bid_price(self):
        waiting = self._waiting()
        return self.me.best_bid_price() if waiting is None else waiting[0]

    def best_ask_price(self):
        waiting = self._waiting()
        return self.me.best_ask_price() if waiting is None else waiting[0]


class _L1:
    """The L1 book one trade tick leaves: both sides at its price and size."""

    def __init__(self, price, size):
        self.price, self.size = price, size

    def best_bid_price(self):
        return self.price

    def best_ask_price(self):
        return self.price

    def best_bid_size(self):
        return self.size

    def best_ask_size(self):
        return self.size


class _Watch:
    """After every bar (after BarBook, which comes before every other handler), the L1 book of every instrument; the engine's last price per
    instrument just before each bar (from the stream's trades and the books after bars) to classify the bars."""

    def __init__(self, engine: BacktestEngine, engines: dict):
        self.engines = engines
        self.cache = engine.cache
        self.rows: list = []
        self.cases: list = []
        self.last: dict = {}
        bus = engine.kernel.msgbus
        bus.subscribe("data.bars.*", self.on_bar, priority=0)
        bus.subscribe("data.trades.*", self.on_trade, priority=0)

    def on_trade(self, tick: TradeTick) -> None:
        self.last[tick.instrument_id] = tick.price.raw

    def on_bar(self, bar: Bar) -> None:
        iid = bar.bar_type.instrument_id
        before = self.last.get(iid)
        books = []
        for i, me in sorted(self.engines.items(), key=lambda kv: str(kv[0])):
            book = me.get_book()
            trade = self.cache.trade_tick(i)
            books.append((str(i), book.best_bid_price(), book.best_bid_size(), book.best_ask_price(),
                          book.best_ask_size(), me.best_bid_price(), me.best_ask_price(),
                          None if trade is None else trade.price))
        self.rows.append((bar.ts_init, str(bar.bar_type), tuple(books)))
        found = last_tick(before, bar.open.raw, bar.high.raw, bar.low.raw, bar.close.raw)
        self.cases.append((bar, before, found))
        top = self.engines[iid].get_book().best_bid_price()
        self.last[iid] = top.raw if top is not None else None


def _run_both(p, strategy=None):
    ref, ref_engines = _reference_engine(p)
    ours, our_engines = _bar_book_engine(p)
    assert set(ref_engines) == set(our_engines) == {i.id for i in _instruments(p)}
    watches = _Watch(ref, ref_engines), _Watch(ours, our_engines)
    strategies = []
    if strategy is not None:
        for engine in (ref, ours):
            strategies.append(strategy())
            engine.add_strategy(strategies[-1])
    for engine in (ref, ours):
        engine.run()
    return watches, strategies


def test_books_after_every_bar_equal_bar_execution(prepared):
    (ref, ours), _ = _run_both(prepared)
    n_bars = sum(type(e) is Bar for e in prepared.events)
    assert len(ref.rows) == len(ours.rows) == n_bars
    for a, b in zip(ref.rows, ours.rows):
        assert a == b, f"L1 books differ after the bar {a[1]} at {a[0]}:\n bar execution {a[2]}\n BarBook       {b[2]}"

    # the cases the comparison went through, on the real month alone and with the synthetic hours
    def kinds(cases):
        out = Counter()
        for bar, before, found in cases:
            o, h, lo, c = bar.open.raw, bar.high.raw, bar.low.raw, bar.close.raw
            if found is None:
                out["no tick"] += 1
            elif found[1]:
                out["close tick"] += 1
            else:
                out["open tick last" if o == h == lo != before else "low tick last"] += 1
            out["zero volume"] += bar.volume.raw == 0
            out["flat"] += o == h == lo == c
            out["close at the last price"] += before == c
            inc = bar.volume.raw // max(1, ref.engines[bar.bar_type.instrument_id].instrument.size_increment.raw)
            out["under 4 increments"] += inc < 4
        return out

    n_real = sum(type(e) is Bar and e.ts_init <= _real_end(prepared) for e in prepared.events)
    real, every = kinds(ref.cases[:n_real]), kinds(ref.cases)
    # the real month: mostly closes that move the price, a few closing at the low (its flat and zero-volume bars
    # and closes at the last price come from the synthetic hours)
    assert real["close tick"] > 2000 and real["low tick last"] > 0, real
    for kind in ("no tick", "close tick", "open tick last", "low tick last", "zero volume", "flat",
                 "close at the last price", "under 4 increments"):
        assert every[kind] > 0, f"no bar of kind {kind!r}: {every}"
    # the book's top size after a bar is the close's size or a quarter's: both sizes occur
    sizes = Counter()
    for (bar, _, found), row in zip(ref.cases, ref.rows):
        if found is None:
            continue
        iid = bar.bar_type.instrument_id
        top = dict((r[0], r[2]) for r in row[2])[str(iid)]
        quarter, close = quarter_sizes(bar.volume.raw, ref.engines[iid].instrument.size_increment.raw)
        sizes["close" if found[1] else "quarter"] += top.raw == (close if found[1] else quarter)
    assert sizes["close"] > 1000 and sizes["quarter"] > 0, sizes


def _own_books(watch: _Watch) -> dict:
    """(bar time, bar type) -> the L1 book of the bar's own instrument after it (the cache's last trade left out)."""
    out = {}
    for ts, bt, books in watch.rows:
        iid = bt.rsplit("-", 4)[0]  # "{instrument id}-1-HOUR-LAST-EXTERNAL"
        out[(ts, bt)] = next(b[1:7] for b in books if b[0] == iid)
    return out


def _left_out(p, keep_bar) -> list:
    """The month's stream with every trade left out and the bars `keep_bar(bar, hour index)` refuses, as the gated
    stream leaves them out in its quiet hours and runs."""
    hours = sorted({e.ts_init for e in p.events if type(e) is Bar})
    index = {t: k for k, t in enumerate(hours)}
    return [e for e in p.events if type(e) is Bar and keep_bar(e, index[e.ts_init])]


def test_feed_books_are_book_states(carried):
    """The books the feed records as it builds the bars are what `book_states` derives from its events."""
    for s, feed in carried.feeds.items():
        insts = (carried.spot_insts[s], carried.perp_insts[s])
        derived = book_states(feed, {i.id: i.size_increment.raw for i in insts})
        assert set(derived) == {i.id for i in insts} and sum(map(len, derived.values())) > 1400
        assert feed.books == derived, s


def test_book_states_where_the_book_before_the_bar_matters(carried):
    """Bars whose tick depends on the book before them (real instruments, synthetic prices): a flat bar at the last
    trade's price leaves that trade's book (its one-increment size), not the previous bar's; a bar after an
    intra-hour trade at its open leaves the close; a leg with no trade and no tick yet leaves no book."""
    feed = carried.feeds["BTCUSDT"]
    spot, perp = carried.spot_insts["BTCUSDT"], carried.perp_insts["BTCUSDT"]
    sizes = {spot.id: spot.size_increment.raw, perp.id: perp.size_increment.raw}
    inc, pp, sp = spot.size_increment.raw, spot.price_precision, spot.size_precision

    def px(x):
        return Price.from_raw(x * spot.price_increment.raw, pp)

    def bar(t, o, h, lo, c, vol):
        return Bar(bar_type(spot), px(o), px(h), px(lo), px(c), Quantity.from_raw(vol * inc, sp), t, t)

    def trade(t, x):
        return TradeTick(spot.id, px(x), Quantity.from_raw(inc, sp), AggressorSide.NO_AGGRESSOR, TradeId(str(t)), t, t)

    T = 100 * HOUR_NS
    hours = [  # (intra-hour trade or None, bar), one hour each
        (None, bar(T, 10, 12, 9, 11, 20)),            # the close: the rest after three quarters (20 - 3*5)
        (trade(2 * T - 5, 11), bar(2 * T, 11, 11, 11, 11, 8)),  # flat at the trade's price: the trade's book
        (None, bar(3 * T, 11, 11, 11, 11, 8)),        # flat again, no trade: still the trade's book
        (trade(4 * T - 5, 13), bar(4 * T, 13, 14, 12, 13, 8)),  # open at the trade: high, low, close
    ]
    events, spans = [], []
    for t_trade, b in hours:
        k = len(events)
        last = ()
        if t_trade is not None:
            events.append((t_trade.ts_init, 0, t_trade))
            last = (len(events) - 1,)
        events.append((b.ts_init, 0, b))
        spans.append(dataclasses.replace(feed.hours[0], close_ns=b.ts_init, last_ticks=last, bars=(k + len(last),
                                                                                               len(events))))
    fake = dataclasses.replace(feed, events=events, hours=spans, books=None)
    states = book_states(fake, sizes)[spot.id]
    one = spot.price_increment.raw
    assert states == {T: (11 * one, 5 * inc), 2 * T: (11 * one, inc), 3 * T: (11 * one, inc),
                      4 * T: (13 * one, 2 * inc)}
    # the rule on the engine's own book, the trade before the flat bar left out: the first bar's book stays
    assert last_tick(11 * one, 11 * one, 11 * one, 11 * one, 11 * one) is None
    # a perp with no bar and no trade yet: nothing
    assert perp.id not in states and book_states(dataclasses.replace(fake, hours=[]), sizes) == {}


@pytest.mark.parametrize("name, keep_bar", [
    ("bars alone", lambda bar, k: True),
    # the last of three hours (a quiet run of three), and of the perp's bars only every other such hour
    ("runs", lambda bar, k: k % 3 == 2 and ("PERP" not in str(bar.bar_type) or k % 6 == 5)),
])
def test_books_after_bars_with_events_left_out_equal_the_full_stream(carried, name, keep_bar):
    """Trades and whole bars left out before a bar (quiet hours, quiet runs): the book the bar leaves is still the
    one bar execution leaves on the full stream (`book_states`); the engine's own book before the bar, which the
    rule without them reads, would give another one for some bars."""
    full = dataclasses.replace(carried, events=_every_bar_an_event(carried), carried={})
    ref, ref_engines = _reference_engine(full)
    ref_watch = _Watch(ref, ref_engines)
    ref.run()
    expected = _own_books(ref_watch)
    ref.dispose()
    thinned = dataclasses.replace(full, events=_left_out(full, keep_bar))
    # the same stream with BarBook's rule read from the engine's own book (no `book_states`)
    no_states = dataclasses.replace(thinned, feeds={s: dataclasses.replace(f, books={})
                                                     for s, f in thinned.feeds.items()})
    found = []
    for p in (thinned, no_states):
        engine, engines = _bar_book_engine(p)
        watch = _Watch(engine, engines)
        engine.run()
        found.append(_own_books(watch))
        engine.dispose()
    ours, rule_alone = found
    assert len(ours) == len(thinned.events) > 700
    assert ours == {k: expected[k] for k in ours}, name
    # on real bars the close moves the price nearly always, so the engine's own book gives the same (the bars where
    # it cannot: `test_book_states_where_the_book_before_the_bar_matters`)
    assert rule_alone == {k: expected[k] for k in rule_alone}, name


# -- market orders right after a bar -----------------------------------------------------------------------------------


class _Orders(Strategy):
    """Market orders at chosen bars of each instrument (k-th bar of its type -> side, quantity); records every fill
    and every order that was not accepted."""

    def __init__(self, bar_types: list, plan: dict):
        super().__init__(StrategyConfig(strategy_id="ORDERS-001"))
        self.bar_types = bar_types
        self.plan = plan
        self.seen: Counter = Counter()
        self.fills: list = []
        self.refused: list = []

    def on_start(self) -> None:
        for bt in self.bar_types:
            self.subscribe_bars(bt)

    def on_bar(self, bar: Bar) -> None:
        key = (str(bar.bar_type), self.seen[str(bar.bar_type)])
        self.seen[str(bar.bar_type)] += 1
        if key in self.plan:
            side, qty = self.plan[key]
            self.submit_order(self.order_factory.market(bar.bar_type.instrument_id, side, qty))

    def on_order_filled(self, event) -> None:
        self.fills.append((event.ts_event, str(event.instrument_id), event.order_side, event.last_px,
                           event.last_qty, str(event.client_order_id)))

    def on_order_denied(self, event) -> None:
        self.refused.append(("denied", str(event.client_order_id), event.reason))

    def on_order_rejected(self, event) -> None:
        self.refused.append(("rejected", str(event.client_order_id), event.reason))


def test_market_orders_after_a_bar_fill_alike(prepared):
    p = prepared
    insts = _instruments(p)
    n_real = Counter(str(e.bar_type) for e in p.events if type(e) is Bar and e.ts_init <= _real_end(p))
    plan = {}
    for inst in insts:
        bt, q = str(bar_type(inst)), Quantity.from_raw(_unit(inst), inst.size_precision)
        big = Quantity.from_raw(3 * _unit(inst), inst.size_precision)
        # real bars: a buy and its sell an hour later, a few times through the month (all within the top size)
        for k in (5, 200, 480):
            plan[(bt, k)] = (OrderSide.BUY, q)
            plan[(bt, k + 1)] = (OrderSide.SELL, q)
        # synthetic hours (indexes into SYNTHETIC): every order larger than the top size but the large volume's
        base = n_real[bt]
        for k, side, qty in ((1, OrderSide.BUY, q), (2, OrderSide.SELL, q), (3, OrderSide.BUY, big),
                             (5, OrderSide.SELL, big), (6, OrderSide.BUY, q), (7, OrderSide.SELL, q),
                             (8, OrderSide.BUY, q), (9, OrderSide.BUY, q), (10, OrderSide.SELL, q)):
            plan[(bt, base + k)] = (side, qty)
    bar_types = [bar_type(i) for i in insts]
    _, (ref, ours) = _run_both(p, lambda: _Orders(bar_types, plan))
    assert not ref.refused and not ours.refused, (ref.refused, ours.refused)
    assert len(ref.fills) >= len(plan)
    assert ref.fills == ours.fills

    # every order filled its whole quantity; the orders beyond the top size split, the rest one increment worse
    by_order: dict = {}
    for ts, iid, side, px, qty, coid in ref.fills:
        by_order.setdefault(coid, []).append((iid, side, px, qty))
    split = [f for f in by_order.values() if len(f) > 1]
    assert len(by_order) == len(plan)
    assert len(split) >= 4 * len(insts), f"{len(split)} split orders"
    steps = {str(i.id): i.price_increment.raw for i in insts}
    for fills in split:
        iid, side = fills[0][0], fills[0][1]
        worse = 1 if side == OrderSide.BUY else -1
        assert fills[-1][2].raw - fills[0][2].raw == worse * steps[iid], fills
