"""The backtest's event stream, hour by hour, with each bar's intra-hour path replayed only where something could
act inside it.

The feed (`basisbot.backtest.feed`) traces every bar: spot and perp trade prices and the perp mark along the bar's
path. Inside most hours of a carry nothing can use them: no order is in flight or due, no decision falls in the
hour, and every mark of the path sits inside every band of the mark watch (`basisbot.core.mark_watch`: the venue's
liquidation side, the guard's quiet range), so the watch calls nobody and the guard's periodic sweep finds nothing.
The engine pulls the stream an hour at a time during the run (`BacktestEngine.add_data_iterator`), so `QuietGate`
decides each hour from the run's own state, just before it:

- ``full``: the whole path (anything could act: a pair in flight, a band awake, a mark of the path on or past a band,
  a decision or funding update that could trade, cross margin, a compounding budget);
- ``last``: the path's last trade prices (spot and perp) and its last mark, what the strategy reads at the close
  when it may trade there;
- ``none``: the path's last trade prices, the settlements and the close. nautilus' risk engine checks an order's
  notional and the balance against the last trade price, whenever the order comes, so the last trade prices of an
  hour are replayed unless no order can come before the next trade prices the engine gets:
- ``quiet``: the settlements and the close only: ``none``, and nothing can act from the close to the next hour's
  first trade ticks of both legs (no settlement and no alert there, every mark up to them inside every band). By
  induction the engine's last trade price at any order is the full stream's: an hour replayed in full has all its
  ticks, ``last`` keeps its last ones and acts only at its close, ``none`` and ``quiet`` act nowhere.

Everything the gate cannot show quiet is replayed in full: it errs towards more events, never fewer. The bars at
each bar type's first time go to the engine as static data (nautilus registers their subscriptions from them), the
others with their hours.

Hours where nothing acts go to the engine as runs (`QuietGate.quiet_run`), many hours in one chunk with only what
is read inside the run or after it. A run goes on through settlements: the decision before one, the payment and
the booking after it are checked ahead on the state the run's funding updates, jobs and payments leave (the
strategy's `inert_state` and `advance_inert`; the payments' margin states bound the marks after them), and the run
keeps the updates the jobs read, the updates the strategy takes as news, the mark each payment takes and the mark
at which the venue publishes the margin state it brings (`_run_chunk`). A settlement inside its hour's path (late)
pays at the mark of its moment: with a position open that hour is replayed in full."""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections.abc import Iterator

from nautilus_trader.model.data import MarkPriceUpdate

from basisbot.backtest.feed import (
    HOUR_NS,
    PRIO_MARK,
    PRIO_PERP_BAR,
    PRIO_PREDICTION,
    PRIO_SPOT_BAR,
    HourSpan,
    SymbolFeed,
)
from basisbot.core.carry import funding_payment
from basisbot.core.guard_state import GuardState
from basisbot.core.mark_watch import mark_watch
from basisbot.nautilus.messages import PerpMarginState

FULL, LAST, NONE, QUIET = "full", "last", "none", "quiet"
SETTLEMENT_LOOKAHEAD_NS = 24 * HOUR_NS  # a quiet run's margin bands cover the settlements of the day ahead too


def _quiet_range(st, book) -> tuple[float, float]:
    """The marks inside both the guard's quiet band and the venue's band (an unchanged state's quiet hours)."""
    (g_lo, g_hi), v_lo, v_hi = st.guard.quiet_band, book.band.low, book.band.high
    return max(g_lo, v_lo), min(g_hi, v_hi)


def _inside(band: tuple[float, float], low: float, high: float) -> bool:
    return band[0] < low and high < band[1]


class QuietGate:
    """Decides, hour by hour, how much of each symbol's path the engine replays (see the module)."""

    def __init__(self, feeds: dict[str, SymbolFeed], leave_out: bool = True):
        """`leave_out`: hand the engine only what the hour after a quiet run reads of it (`_run_chunk`); off when
        something reads the data as it comes (the `[risk]` actor's stale-data limit and equity checks at marks)."""
        self.feeds = feeds
        self.leave_out = leave_out
        self.left_out = 0  # events of quiet runs not handed to the engine
        # each symbol's settlement times (as the venue applies them), sorted: an hour's are found by bisection
        self._settle_ts = {s: [e[0] for e in f.settlements] for s, f in feeds.items()}
        self.strategies: dict = {}
        self.ledger = None
        self.compounding = False
        self.modes = {FULL: 0, LAST: 0, NONE: 0, QUIET: 0}
        self.emitted = 0  # events handed to the engine (`basisbot.backtest.run.build_engine` counts them)
        self._cross: list[str] = []  # the symbols in cross margin
        self._by_perp: dict = {}  # perp instrument id -> its strategy
        self._watches: dict = {}  # perp instrument id -> its mark watch (one per instrument for the run)
        self._on_accounts: set[str] = set()  # symbols of the hour whose close is inert only if the accounts stay
        self._known: dict[str, tuple] = {}  # symbol -> (signature, earliest alert) of the last hour shown quiet
        self._band_cache: dict[tuple, tuple] = {}  # (state, settlements) -> (mark bound, the margin states' bands)
        self._runs = {s: _QuietFacts(f, self._settle_ts[s]) for s, f in feeds.items()}
        self.runs = 0  # hours replayed quiet as part of a run (`quiet_run`)
        self.joined = 0  # symbol-hours found quiet one by one and handed over with the run after them
        self.settled_in_runs = 0  # settlements (of a symbol) inside quiet runs
        # what `_run_chunk` needs of the last run found, per symbol (`_SymbolRun`)
        self.reads: dict[str, list[int]] = {}  # symbol -> the alerts inside the last run found (`_run_chunk`)
        self.news: dict[str, list[int]] = {}  # symbol -> the times of its updates taken as news in that run
        self.wanting: dict[str, list[int]] = {}  # symbol -> its closes in that run with an entry refused quietly

    def bind(self, strategies: dict, ledger, compounding: bool) -> None:
        self.strategies, self.ledger, self.compounding = strategies, ledger, compounding
        self._cross = [s for s, spec in ledger.symbols.items() if spec.mode == "cross"]
        self._by_perp = {st.perp_id: st for st in strategies.values()}

    def plan(self, close_ns: int, spans: list[tuple[str, HourSpan, HourSpan | None, HourSpan | None]],
             pending) -> dict[str, str]:
        """{symbol: mode} for the hour closing at `close_ns`. `spans`: (symbol, this hour, the symbol's previous
        hour or None, its next hour or None); `pending`: the last event handed to the engine, which it has not
        processed yet."""
        everything = {s: FULL for s, *_ in spans}
        if not self.strategies or self.compounding or self.ledger is None:
            return everything
        books = self.ledger.books
        if any(books[s].side != 0 for s in self._cross):
            return everything  # cross margin: every mark moves every cross position's liquidation price
        loud = self._loud_pending(pending)
        if loud is None:
            return everything
        # a symbol whose closing mark (not processed yet) reaches its watchers is decided on a stale state: in full
        self._on_accounts = set()
        modes = {s: FULL if s == loud else self._mode(s, span, prev, nxt, close_ns) for s, span, prev, nxt in spans}
        if FULL in modes.values():
            # a symbol's hour replayed in full can move the accounts inside it: a symbol whose venue publishes its
            # margin state at the hour's first mark then publishes what it finds there
            for s, span, *_ in spans:
                if modes[s] != FULL and self._wakes(s, span, close_ns):
                    modes[s] = FULL
        if self._on_accounts and (FULL in modes.values() or LAST in modes.values()
                                  or any(span.settle[0] != span.settle[1] for _, span, *_ in spans)):
            # an entry found inert on the accounts as they are: another symbol trading or a settlement paying in
            # the hour could change them before the close
            for s in self._on_accounts:
                if modes[s] != FULL:
                    modes[s] = LAST
        for m in modes.values():
            self.modes[m] += 1
        return modes

    def quiet_run(self, closes: list[int], i: int, symbols: list[str], pending, limit: int) -> int:
        """How many hours from `closes[i]` on (at most `limit`) nothing acts for any of `symbols` but the jobs and
        settlements the checks ran ahead (`_SymbolRun`), from the state the engine has now: the same state as the
        hour before, found quiet (so nothing has acted since). Up to the first settlement or alert, every mark inside
        the same bands and each closing prediction inert and announcing no new settlement; from there on the run's
        funding updates, jobs and payments are folded into the state hour by hour and every one of them checked
        inert. The symbols go hour by hour together; the hours can be handed over at once (`_run_chunk`). 0: decide
        hour `i` hour by hour."""
        if not self.strategies or self.compounding or self.ledger is None or limit <= 0:
            return 0
        if self._loud_pending(pending) != "":
            return 0
        books = self.ledger.books
        if any(books[s].side != 0 for s in self._cross):
            return 0
        runs = []
        for s in symbols:
            known = self._known.get(s)
            st = self.strategies[s]
            if known is None or known[0] != self._signature(st, books[s]):
                return 0
            run = _SymbolRun.start(self, s, st, books[s], closes[i], known[1])
            if run is None:
                return 0
            runs.append(run)
        n = 0  # the symbols go hour by hour together: the run ends at the first hour one of them cannot pass
        while n < limit and all(run.step() for run in runs):
            n += 1
        if n == 0:
            return 0
        self.reads = {run.s: run.reads for run in runs}
        self.news = {run.s: run.news for run in runs}
        self.wanting = {run.s: run.wanting for run in runs}
        self.settled_in_runs += sum(bisect_right(ts, closes[i + n - 1]) - bisect_right(ts, closes[i] - HOUR_NS)
                                    for ts in (self._settle_ts[s] for s in symbols))
        self.modes[QUIET] += n * len(symbols)
        self.runs += n * len(symbols)
        return n

    def leaves_state(self, group: list) -> bool:
        """Whether the hour of `group`, found quiet for every symbol (`plan`), leaves every symbol's state as it is
        now, on all that `quiet_run` reads: no settlement and no alert in it, no band awake, and a closing
        prediction (if any) that announces the settlement already known at the interval already known. A quiet run
        after it can then be checked before the engine has it."""
        for _, s, span, *_ in group:
            st, book = self.strategies[s], self.ledger.books[s]
            if (span.settle[0] != span.settle[1] or book.band.awake or st.mark_band.awake
                    or any(at <= span.close_ns for at, _ in st.pending_alerts())):
                return False
            c0, c1 = span.close
            if c1 - c0 == 2:
                pred = self.feeds[s].events[c0][2]
                if pred.next_funding_ns not in (None, st.calendar.next_ns) or (
                        pred.interval and int(pred.interval) != st.interval_minutes):
                    return False
        return True

    def _loud_pending(self, pending) -> str | None:
        """The event the engine has not processed yet: a closing mark inside its watch's bands changes nothing ("");
        outside, it reaches the watchers of its symbol only (the symbol). None: anything else (unknown effects)."""
        if not isinstance(pending, MarkPriceUpdate):
            return None
        iid = pending.instrument_id
        st = self._by_perp.get(iid)
        if st is None:
            return None
        watch = self._watches.get(iid)
        if watch is None:
            watch = self._watches[iid] = mark_watch(st.msgbus, iid)
        return "" if watch.low < pending.value.as_double() < watch.high else st.symbol

    def _settlements(self, symbol: str, t0: int, t1: int) -> list[tuple[int, int, float]]:
        ts = self._settle_ts[symbol]
        return self.feeds[symbol].settlements[bisect_right(ts, t0):bisect_right(ts, t1)]

    def _wakes(self, symbol: str, span: HourSpan, close_ns: int) -> bool:
        book = self.ledger.books[symbol]
        return book.band.awake or (book.side != 0 and bool(self._settlements(symbol, close_ns - HOUR_NS, close_ns)))

    def _mode(self, symbol: str, span: HourSpan, prev: HourSpan | None, nxt: HourSpan | None, close_ns: int) -> str:
        st = self.strategies[symbol]
        k = self._runs[symbol].index.get(close_ns)
        if k is not None and self._runs[symbol].late[k] and self.ledger.books[symbol].side != 0:
            # a settlement inside the path pays at the mark of its moment: every mark of the hour goes
            self._known.pop(symbol, None)
            return FULL
        sig = self._signature(st, self.ledger.books[symbol])
        known = self._known.get(symbol)
        if known is not None and known[0] == sig and prev is not None and span.settle[0] == span.settle[1]:
            found = self._mode_unchanged(st, span, prev, nxt, close_ns, known[1])
            if found is not None:
                self._known[symbol] = (sig, found[1])
                return found[0]
        self._on_accounts.discard(symbol)  # the full checks decide it afresh
        mode = self._mode_checked(symbol, st, span, prev, nxt, close_ns)
        if mode in (NONE, QUIET):
            self._known[symbol] = (sig, min((f for f, _ in st.pending_alerts()), default=math.inf))
        else:
            self._known.pop(symbol, None)
        return mode

    @staticmethod
    def _signature(st, book) -> tuple:
        """What the checks of an hour without settlements read of the strategy's and the venue's state, besides
        the prices and the alerts: equal signatures, equal answers (`_mode_unchanged`)."""
        pair = st.pair
        return (st.phase, st._qty, pair, pair is None or pair.done(), st._halted, st._resume_pending, st._draining,
                st.mark_band.awake, st._hedge_checked, st._skipping, st.calendar.next_ns, st.guard.quiet_band,
                book.version, book.side, book.band.low, book.band.high, book.band.awake)

    def _mode_unchanged(self, st, span: HourSpan, prev: HourSpan, nxt: HourSpan | None, close_ns: int,
                        next_alert: float) -> tuple[str, float] | None:
        """The checks of `_mode_checked` for an hour without settlements, the state unchanged since an hour they
        found quiet (same signature; no alert added since, the earliest then `next_alert`): the marks against the
        same bands, the alerts due in the hour, the closing prediction, the next hour's head. (mode, the earliest
        alert after the hour); None: not shown quiet here (the full checks decide)."""
        if not math.isfinite(prev.close_mark):
            return None
        before = []
        if next_alert <= close_ns:
            alerts = st.pending_alerts()
            for at, job in sorted(((f, j) for f, j in alerts if f <= close_ns), key=lambda e: e[0]):
                if job is None:
                    continue  # a pair's timeout or retry: nothing to do for an idle strategy
                if not st.job_is_inert(job, at, before):
                    return None
                before.append(job)
            next_alert = min((f for f, _ in alerts if f > close_ns), default=math.inf)
        book = self.ledger.books[st.symbol]
        lo, hi = _quiet_range(st, book)
        if not (lo < min(span.low, prev.close_mark) and max(span.high, prev.close_mark) < hi):
            return None
        events = self.feeds[st.symbol].events
        c0, c1 = span.close
        pred = events[c0][2] if c1 - c0 == 2 else None
        if pred is not None:
            args = (float(pred.rate), pred.interval, pred.next_funding_ns, close_ns, before)
            if not st.prediction_is_inert(*args):
                prices = self._entry_prices(st, span, prev)
                if prices is None or not st.prediction_is_inert(*args, prices=prices):
                    return None
                self._on_accounts.add(st.symbol)
        if nxt is None or nxt.head_ns < 0 or not math.isfinite(span.close_mark):
            return NONE, next_alert
        # a settlement, an alert or a new settlement's jobs before the next hour's head: the full checks look
        head_ns = nxt.head_ns
        ts = self._settle_ts[st.symbol]
        if (next_alert <= head_ns or bisect_right(ts, head_ns) != bisect_right(ts, close_ns)
                or (pred is not None and pred.next_funding_ns not in (None, st.calendar.next_ns))):
            return None
        if lo < min(nxt.head_low, span.close_mark) and max(nxt.head_high, span.close_mark) < hi:
            return QUIET, next_alert
        return NONE, next_alert

    def _mode_checked(self, symbol: str, st, span: HourSpan, prev: HourSpan | None, nxt: HourSpan | None,
                      close_ns: int) -> str:
        t0 = close_ns - HOUR_NS
        if prev is None or not st.idle() or not math.isfinite(prev.close_mark):
            return FULL
        low, high = min(span.low, prev.close_mark), max(span.high, prev.close_mark)
        bands = self._bands(symbol, st, t0, close_ns, high)
        if not all(_inside(b, low, high) for b in bands):
            return FULL
        events = self.feeds[symbol].events
        # what reaches the strategy inside the hour, in time order: funding updates (settlements) and its alerts
        seen = [(events[i][0], events[i][2]) for i in range(*span.settle)]
        seen += [(fire_ns, job) for fire_ns, job in st.pending_alerts() if fire_ns <= close_ns]
        seen.sort(key=lambda e: e[0])
        before = []
        for ts, item in seen:
            if item is None:
                continue  # a pair's timeout or retry: nothing to do for an idle strategy
            if hasattr(item, "next_funding_ns"):
                announced = item.next_funding_ns
                if announced is not None and announced - HOUR_NS <= close_ns:
                    return FULL  # it announces a settlement whose jobs could fall in this hour
                if not st.prediction_is_inert(float(item.rate), item.interval, announced, ts, before):
                    return FULL
            elif not st.job_is_inert(item, ts, before):
                return FULL
            before.append(item)
        close = [events[i][2] for i in range(*span.close)]
        if len(close) == 2:
            pred = close[0]
            args = (float(pred.rate), pred.interval, pred.next_funding_ns, close_ns, before)
            if not st.prediction_is_inert(*args):
                prices = self._entry_prices(st, span, prev)
                if prices is None or not st.prediction_is_inert(*args, prices=prices):
                    return LAST
                self._on_accounts.add(symbol)
            before.append(pred)
        # else no prediction at the close: nothing reads the mark before the closing one
        return QUIET if self._quiet_until_next_ticks(symbol, st, span, nxt, bands, before) else NONE

    def _entry_prices(self, st, span: HourSpan, prev: HourSpan) -> tuple[float, tuple[float, ...]] | None:
        """What an entry tried at the hour's close reads: the spot price (the closing spot bar's close, newer than
        any trade tick), and the perp's mark as the full stream has it there (the hour's last mark) and as this
        stream has it when the hour's marks are left out (the previous close). None: no closing spot bar."""
        events = self.feeds[st.symbol].events
        spot = next((events[i][2] for i in range(*span.bars) if events[i][2].bar_type.instrument_id == st.spot_id),
                    None)
        if spot is None:
            return None
        full = events[span.last_mark][2].value.as_double() if span.last_mark >= 0 else prev.close_mark
        return spot.close.as_double(), (full, prev.close_mark)

    def _quiet_until_next_ticks(self, symbol: str, st, span: HourSpan, nxt: HourSpan | None, bands: list,
                                announced: list) -> bool:
        """Whether nothing can act for `symbol` from the close of `span` (an hour where nothing acts, after
        `announced`: its funding updates and alerts) up to the next hour's first trade ticks of both legs: every
        funding update (a settlement's) and alert due there inert, no settlement announced whose jobs could fall
        there, the closing mark and every mark up to those ticks inside every band (with a settlement there, the
        bands as the margin state it brings makes them)."""
        if nxt is None or nxt.head_ns < 0 or not math.isfinite(span.close_mark):
            return False
        close_ns, head_ns = span.close_ns, nxt.head_ns
        low, high = min(nxt.head_low, span.close_mark), max(nxt.head_high, span.close_mark)
        events = self.feeds[symbol].events
        seen = [(events[i][0], events[i][2]) for i in range(*nxt.settle) if events[i][0] <= head_ns]
        ts = self._settle_ts[symbol]
        if bisect_right(ts, head_ns) != bisect_right(ts, close_ns):  # a settlement before the head
            bands = self._bands(symbol, st, close_ns - HOUR_NS, head_ns, high)
        if not all(_inside(b, low, high) for b in bands):
            return False
        seen += [(fire_ns, job) for fire_ns, job in st.pending_alerts() if close_ns < fire_ns <= head_ns]
        seen.sort(key=lambda e: e[0])
        # a settlement the calendar knows has its jobs among the alerts; one announced since could have jobs here
        w, known = st.calendar.windows, st.calendar.next_ns
        lead = max(w.decision_before_s, w.blackout_before_s, 0) * 1_000_000_000
        for item in announced:
            nf = getattr(item, "next_funding_ns", None)
            if nf is not None and nf != known and nf - lead <= head_ns:
                return False
        before = list(announced)
        for at, item in seen:
            if item is None:
                continue  # a pair's timeout or retry: nothing to do for an idle strategy
            if hasattr(item, "next_funding_ns"):
                nf = item.next_funding_ns
                if nf is not None and nf != known and nf - lead <= head_ns:
                    return False
                if not st.prediction_is_inert(float(item.rate), item.interval, nf, at, before):
                    return False
            elif not st.job_is_inert(item, at, before):
                return False
            before.append(item)
        return True

    def _bands(self, symbol: str, st, t0: int, t1: int, high: float) -> list[tuple[float, float]]:
        """The quiet ranges every mark of the hour must sit in: the guard's and the venue's as they are, and, when
        the venue will publish a new margin state at the hour's first mark (a settlement, a change), both as that
        state will make them, for any funding payment the hour's settlements can bring."""
        book = self.ledger.books[symbol]
        bands = [st.guard.quiet_band, (book.band.low, book.band.high) if not book.band.awake else book.band.quiet]
        settles = self._settlements(symbol, t0, t1) if book.side != 0 else []
        if not (book.band.awake or settles):
            return bands
        if book.side == 0:
            return bands + [(-math.inf, math.inf)]
        return bands + self._payment_bands(symbol, st, book, settles, high)

    def _payment_bands(self, symbol: str, st, book, settles: list, high: float) -> list[tuple[float, float]]:
        """The quiet ranges of the margin states `settles` (with a position) can bring: the venue's and the guard's
        for the wallet moved by up to the sum of their payments either way, at marks up to `high` (`_bands`, and a
        quiet run through settlements: `_SymbolRun`)."""
        wallet = self.ledger.effective_wallet(symbol)
        mark = max(book.entry, high, st.mark or 0.0) * 1.01  # a bound on the marks the payments use
        # the same state and settlements give the same bands: kept for a bound on the mark at least as high (the
        # next hour asks again for the settlement just after this hour's close)
        key = (symbol, book.version, book.side, book.qty, book.entry, wallet, tuple(settles), id(st.thresholds))
        kept = self._band_cache.get(key)
        if kept is None or kept[0] < mark:
            bound = mark * 1.05  # kept for marks a little higher too (a wider swing only narrows the bands)
            kept = self._band_cache[key] = (bound, self._margin_bands(symbol, st, book, wallet, settles, bound))
        return kept[1]

    def _margin_bands(self, symbol: str, st, book, wallet: float, settles: list, mark: float) -> list:
        spec = self.ledger.symbols[symbol]
        swing = sum(abs(funding_payment(book.qty, mark, rate)) for _, _, rate in settles) + 1e-6
        bands = []
        for w in (wallet - swing, wallet, wallet + swing) if settles else (wallet,):
            try:
                lp = self.ledger.formula(book.side, book.qty, book.entry, w, spec.table)
            except (ValueError, ZeroDivisionError):
                return [(math.inf, -math.inf)]
            if lp is None or lp <= 0:
                bands.append((-math.inf, math.inf))
            else:
                bands.append((-math.inf, lp) if book.side < 0 else (lp, math.inf))
            g = GuardState(st.thresholds, spec.table, spec.mode == "isolated", liquidation=self.ledger.formula)
            g.on_margin_state(PerpMarginState(symbol, spec.mode, book.side, book.qty, book.entry, w, 0.0, 0.0, 0), None)
            bands.append(g.quiet_band)
        return bands


def hour_chunks(feeds: dict[str, SymbolFeed], order: list[str], gate: QuietGate, static: frozenset = frozenset(),
                ) -> Iterator[list]:
    """The engine's data, an hour per chunk (a quiet run's hours in one), in the engine's order (time, then the
    priority within a time, then the symbol's place in `order`). The bars at the times in `static` are static data
    (`basisbot.backtest.run.build_engine`), not in the chunks."""
    by_close: dict[int, list[tuple[int, str, HourSpan, HourSpan | None, HourSpan | None]]] = {}
    for idx, s in enumerate(order):
        hours = feeds[s].hours
        for k, span in enumerate(hours):
            by_close.setdefault(span.close_ns, []).append(
                (idx, s, span, hours[k - 1] if k else None, hours[k + 1] if k + 1 < len(hours) else None))
    pending = None
    closes = sorted(by_close)
    runnable = _contiguous(closes, by_close, len(order))
    i = 0
    while i < len(closes):
        close_ns = closes[i]
        group = by_close[close_ns]
        run = gate.quiet_run(closes, i, order, pending, runnable[i])
        if run:
            groups = [by_close[closes[k]] for k in range(i, i + run)]
            out = _run_chunk(feeds, groups, static, gate) if gate.leave_out else [
                e for g in groups for e in _quiet_chunk(feeds, g, static)]
            i += run
            pending = out[-1]
            yield out
            continue
        i += 1
        modes = gate.plan(close_ns, [g[1:] for g in group], pending)
        out = _quiet_chunk(feeds, group, static) if all(m == QUIET for m in modes.values()) else None
        if out:
            if gate.leave_out and i < len(closes) and runnable[i - 1] and gate.leaves_state(group):
                # the state after this hour is the state now: a quiet run from the next hour, checked now, makes
                # one run with it (nothing acts in either), which hands over only what the hour after it reads
                run = gate.quiet_run(closes, i, order, out[-1], runnable[i])
                if run:
                    out = _run_chunk(feeds, [group] + [by_close[closes[k]] for k in range(i, i + run)], static, gate)
                    gate.joined += len(group)
                    i += run
            pending = out[-1]
            yield out
            continue
        chunk = []
        for idx, s, span, *_ in group:
            events = feeds[s].events
            picks = list(range(*span.settle))
            mode = modes[s]
            if mode == FULL:
                picks += range(*span.intra)
            elif mode != QUIET:
                picks += span.last_ticks  # the last trade prices: the risk engine checks any order against them
                if mode == LAST and span.last_mark >= 0:
                    picks.append(span.last_mark)
            if span.bars[1] > span.bars[0] and close_ns not in static:
                picks.append(span.bars[0])  # the spot bar (carrying the perp bar), or the perp bar alone
            picks += range(*span.close)
            chunk.extend((events[i][0], events[i][1], idx, events[i][2]) for i in picks)
        chunk.sort(key=lambda e: e[:3])
        pending = chunk[-1][3]
        yield [e[3] for e in chunk]
    tail = []
    for idx, s in enumerate(order):
        events = feeds[s].events
        tail.extend((events[i][0], events[i][1], idx, events[i][2]) for i in range(*feeds[s].tail))
    if tail:
        tail.sort(key=lambda e: e[:3])
        yield [e[3] for e in tail]


def _contiguous(closes: list[int], by_close: dict, n_symbols: int) -> list[int]:
    """For each hour, how many hours from it a quiet run may span: consecutive hours of every symbol, each with an
    hour of every symbol after it (its head is checked)."""
    out = [0] * len(closes)
    for i in range(len(closes) - 2, -1, -1):
        if (closes[i + 1] - closes[i] == HOUR_NS and len(by_close[closes[i]]) == n_symbols
                and len(by_close[closes[i + 1]]) == n_symbols):
            out[i] = out[i + 1] + 1
    return out


class _QuietFacts:
    """What `QuietGate.quiet_run` reads of a symbol's hours that does not depend on the run: per hour (index in
    `SymbolFeed.hours`) whether it can be quiet at all (`base`), and with no settlement from the previous close to
    the next hour's head as well (`ok`), the range of the marks from the previous close to the next hour's head,
    the next hour's head time, the closing prediction, and whether every settlement inside it comes before its
    path (`settle_first`: the settlement's payment takes the previous close's mark in every stream)."""

    def __init__(self, feed: SymbolFeed, settle_ts: list[int]):
        hours = self.hours = feed.hours
        self.events = feed.events
        self.settle_ts, self.settlements = settle_ts, feed.settlements
        self.index = {h.close_ns: k for k, h in enumerate(hours)}
        self.ok, self.base, self.low, self.high, self.head, self.pred, self.settle_first = [], [], [], [], [], [], []
        self.late = []  # a settlement inside the hour's path (its payment takes the mark of that moment)
        self.rate = []  # the closing prediction's rate as a float
        for k, span in enumerate(hours):
            prev = hours[k - 1] if k else None
            nxt = hours[k + 1] if k + 1 < len(hours) else None
            base = (prev is not None and nxt is not None and math.isfinite(prev.close_mark)
                    and math.isfinite(span.close_mark) and nxt.head_ns >= 0)
            self.base.append(base)
            # the venue's settlements (a funding update with each, or none before the first prediction) from the
            # previous close to the next hour's head
            self.ok.append(base and bisect_right(settle_ts, nxt.head_ns) == bisect_right(settle_ts, prev.close_ns))
            i0, i1 = span.intra
            first = self.events[i0][0] if i1 > i0 else math.inf
            inside = settle_ts[bisect_right(settle_ts, span.close_ns - HOUR_NS):bisect_right(settle_ts, span.close_ns)]
            self.late.append(any(t >= first for t in inside))
            self.settle_first.append(base and not self.late[-1])
            if base:
                self.low.append(min(span.low, prev.close_mark, nxt.head_low, span.close_mark))
                self.high.append(max(span.high, prev.close_mark, nxt.head_high, span.close_mark))
            else:
                self.low.append(math.nan)
                self.high.append(math.nan)
            self.head.append(nxt.head_ns if nxt is not None else -1)
            c0, c1 = span.close
            self.pred.append(feed.events[c0][2] if c1 - c0 == 2 else None)
            self.rate.append(float(self.pred[-1].rate) if self.pred[-1] is not None else math.nan)


class _SymbolRun:
    """One symbol's hours of a quiet run (`QuietGate.quiet_run`), one hour a `step`, from the state the engine has
    now. Hours without a settlement or an alert up to the next hour's head are checked against the state as it is
    (the marks inside the quiet range, the closing prediction inert and announcing the known settlement). From the
    first hour with one on, against the strategy's state as the run's funding updates, jobs and settlements leave it
    (`inert_state`, `advance_inert`); such an hour is in the run when, up to the next hour's head:

    - every funding update (closing prediction or settlement) and every job (decision, booking, and the jobs the run's
      updates announce) is inert, in time order; an alert at the time of an update is not decided here;
    - an update that announces a settlement the strategy does not know (news: it schedules that settlement's jobs)
      is handed to the engine at its time (`news`), and so is the last update before each job (`reads`);
    - every mark is inside every quiet band: the guard's and the venue's as they are and, once a settlement with a
      position is in the run, as its margin state makes them for any payment the run's settlements can bring
      (`QuietGate._margin_bands`, the swing of all of them);
    - every settlement comes before its hour's path, so its payment takes the previous close's mark (which
      `_run_chunk` keeps) in every stream."""

    @classmethod
    def start(cls, gate: QuietGate, s: str, st, book, close_ns: int, next_alert: float) -> _SymbolRun | None:
        f = gate._runs[s]
        k0 = f.index.get(close_ns)
        if not k0:
            return None
        return cls(gate, s, st, book, f, k0, next_alert)

    def __init__(self, gate: QuietGate, s: str, st, book, f: _QuietFacts, k0: int, next_alert: float):
        self.gate, self.s, self.st, self.book, self.f, self.k0, self.k = gate, s, st, book, f, k0, k0
        self.quiet = self.band = _quiet_range(st, book)
        self.known_next, self.next_alert = st.calendar.next_ns, next_alert
        self.any_rate = st.predictions_inert_at_any_rate()  # constant through a run: nothing in it acts
        self.passed: list = []  # the predictions of the hours before the first with a settlement or an alert
        self.sim = None  # the strategy's state as the run leaves it, from that hour on
        self.reads: list[int] = []  # the jobs' times
        self.news: list[int] = []  # the times of the funding updates the strategy takes as news
        self.wanting: list[int] = []  # the closes whose prediction would enter but stops quietly (`_skipped`)
        # the settlements the bands cover (the run's first with a position, the end of those covered: index in the
        # symbol's settlements) and the highest mark their payments were bounded with
        self.covered = (0, 0, -math.inf)

    def step(self) -> bool:
        """Whether hour `k` is in the run (then the next one is `k`)."""
        f, k = self.f, self.k
        if k >= len(f.ok):
            return False
        if self.sim is None:
            lo, hi = self.quiet
            if f.ok[k] and lo < f.low[k] and f.high[k] < hi and self.next_alert > f.head[k]:
                p = f.pred[k]
                if p is not None:
                    if p.next_funding_ns not in (None, self.known_next) or not self._inert(k, p, p.ts_event, None):
                        return False
                    self.passed.append(p)
                self.k += 1
                return True
            if not f.base[k] or self.book.band.awake or self.st.mark_band.awake:
                return False
            self._begin(k)
        if not self._hour(k):
            return False
        self.k += 1
        return True

    def _inert(self, k: int, update, ts: int, state: list | None) -> bool:
        """Whether a funding update at `ts` in hour `k` (a settlement's, or the closing prediction) leaves the strategy
        sending nothing, with `state` (`inert_state`; None: the strategy's own): in carry at any rate; the closing
        prediction also when it would enter and the pre-check refuses quietly (`_skipped`)."""
        if self.any_rate:
            return True
        closing = update is self.f.pred[k]
        rate = self.f.rate[k] if closing else float(update.rate)
        return (self.st.prediction_is_inert(rate, update.interval, update.next_funding_ns, ts, state=state)
                or (closing and self._skipped(k, update, state)))

    def _skipped(self, k: int, p, state: list | None) -> bool:
        """Whether a closing prediction the carry rules would enter on stops at the entry pre-check failure already
        logged (sending nothing, logging nothing), at the prices either stream has there: the hour's closing spot
        bar, and the perp's mark as the full stream has it (the hour's last) and as the run has it when the engine
        gets the prediction (the previous close: `_run_picks` then hands over that bar and that mark with it; left
        out, the prediction does nothing). Only a failure the run cannot change: an instrument minimum or the spot
        balance (nothing trades in a run and the settlements pay into the perp account)."""
        st = self.st
        if st._skipping not in ("minimum", "spot_balance"):
            return False
        prices = self.gate._entry_prices(st, self.f.hours[k], self.f.hours[k - 1])
        if prices is None or not st.prediction_is_inert(float(p.rate), p.interval, p.next_funding_ns, p.ts_event,
                                                        prices=prices, state=state):
            return False
        self.wanting.append(p.ts_event)
        return True

    def _begin(self, k: int) -> None:
        st = self.st
        self.sim = st.inert_state()
        for p in self.passed:
            st.advance_inert(self.sim, p)
        self.alerts = [(at, n, job) for n, (at, job) in enumerate(st.pending_alerts())]
        heapq.heapify(self.alerts)
        self.seq = len(self.alerts)
        # the jobs waiting, by name: the strategy's driver schedules a name once while it waits
        self.waiting = {job.name for _, _, job in self.alerts if job is not None}
        self.high = -math.inf
        self.until = self.f.hours[k - 1].close_ns if k == self.k0 else self.f.hours[k].head_ns  # checked up to

    def _hour(self, k: int) -> bool:
        f, st, sim = self.f, self.st, self.sim
        w1 = f.head[k]
        if f.ok[k] and not (self.alerts and self.alerts[0][0] <= w1):
            # no settlement and no job up to the next hour's head: the closing prediction and the marks
            p = f.pred[k]
            if p is not None:
                if not self._inert(k, p, p.ts_event, sim):
                    return False
                self._advance(p, p.ts_event)
            self.high = max(self.high, f.high[k])
            if not (self.band[0] < f.low[k] and f.high[k] < self.band[1]):
                return False
            self.until = w1
            return True
        if not (f.base[k] and f.settle_first[k]):
            return False
        events, span, nxt = f.events, f.hours[k], f.hours[k + 1]
        w0 = self.until
        # the funding updates up to the next hour's head, in time order: the settlements' inside the hour, the closing
        # prediction, the settlements' before the next hour's head
        data = [(events[i][0], events[i][2]) for i in range(*span.settle) if events[i][0] > w0]
        p = f.pred[k]
        if p is not None:
            data.append((span.close_ns, p))
        data += [(events[i][0], events[i][2]) for i in range(*nxt.settle) if events[i][0] <= w1]
        for ts, ev in data:
            if not self._jobs(ts, True):
                return False
            if not self._inert(k, ev, ts, sim):
                return False
            self._advance(ev, ts)
        if not self._jobs(w1, False):
            return False
        self.high = max(self.high, f.high[k])
        ts = f.settle_ts
        a, b = bisect_right(ts, w0), bisect_right(ts, w1)
        if b > a and self.book.side != 0 and (b > self.covered[1] or self.high > self.covered[2]):
            # the bands of the margin states the settlements can bring, for these and those of the day ahead (one
            # computation for several settlements: a wider swing only narrows them)
            first = self.covered[0] if self.covered[1] else a
            self.covered = (first, bisect_right(ts, w1 + SETTLEMENT_LOOKAHEAD_NS), self.high)
            bands = self.gate._payment_bands(self.s, st, self.book, f.settlements[first:self.covered[1]], self.high)
            self.band = (max([self.quiet[0]] + [lo for lo, _ in bands]),
                         min([self.quiet[1]] + [hi for _, hi in bands]))
        if not (self.band[0] < f.low[k] and f.high[k] < self.band[1]):
            return False
        self.until = w1
        return True

    def _jobs(self, until: int, before: bool) -> bool:
        """The jobs due up to `until` (`before`: strictly before it, none at it), each inert, in order."""
        alerts, st, sim = self.alerts, self.st, self.sim
        while alerts and alerts[0][0] <= until:
            at, _, job = heapq.heappop(alerts)
            if before and at == until:
                return False  # an alert at an update's time: its order against the data is not decided here
            if job is None:
                continue  # a pair's timeout or retry: nothing to do for an idle strategy
            self.waiting.discard(job.name)
            if not st.job_is_inert(job, at, state=sim):
                return False
            st.advance_inert(sim, job)
            self.reads.append(at)
        return True

    def _advance(self, update, ts: int) -> None:
        """The state after a funding update; an update the strategy takes as news (a settlement it does not know)
        goes to the engine (`news`), and the jobs it announces are due in the run."""
        if update.next_funding_ns != self.sim[0].next_ns:
            self.news.append(ts)
        for job in self.st.advance_inert(self.sim, update):
            if job.name not in self.waiting:
                self.waiting.add(job.name)
                heapq.heappush(self.alerts, (job.fire_ns, self.seq, job))
                self.seq += 1


def _quiet_chunk(feeds: dict[str, SymbolFeed], group: list, static: frozenset = frozenset()) -> list | None:
    """The chunk of an hour quiet for every symbol, in the engine's order without a sort of everything: the
    settlements inside the hour (before the close), then at the close every symbol's bar (spot bars, then the perp
    bars no spot bar carries), prediction and closing mark (their priorities), each in the symbols' order. None:
    something else at the close."""
    settles, spot_bars, perp_bars, preds, marks = [], [], [], [], []
    for idx, s, span, *_ in group:
        events = feeds[s].events
        s0, s1 = span.settle
        if s1 > s0:
            settles.extend((events[i][0], events[i][1], idx, events[i][2]) for i in range(s0, s1))
        b0, b1 = span.bars
        if b1 > b0 and span.close_ns not in static:
            # the spot bar carries the perp bar (`carry_perp_bars`); without one the perp bar comes alone
            (spot_bars if events[b0][1] == PRIO_SPOT_BAR else perp_bars).append(events[b0][2])
        for i in range(*span.close):
            prio = events[i][1]
            if prio == PRIO_PREDICTION:
                preds.append(events[i][2])
            elif prio == PRIO_MARK:
                marks.append(events[i][2])
            else:
                return None
    if settles:
        settles.sort(key=lambda e: e[:3])
        return [e[3] for e in settles] + spot_bars + perp_bars + preds + marks
    return spot_bars + perp_bars + preds + marks


def _run_chunk(feeds: dict[str, SymbolFeed], groups: list[list], static: frozenset, gate: QuietGate) -> list:
    """The chunk of a quiet run (`QuietGate.quiet_run`; `groups`: its hours in order, each as `hour_chunks` groups
    them): every settlement's funding update in it, and of each symbol only what is read inside the run or by the
    hour after it. Nothing acts inside a run but its jobs and settlements, which read the state the updates and marks
    before them leave; the rest of its bars, predictions and marks are read by nobody before the next one of their
    kind replaces them in the cache, the portfolio and the strategy:

    - the last spot bar (the strategy's spot price, the portfolio's bar price; the recorder takes every close from the
      feed), and the bar that carries (or is) the last perp bar: `BarBook` gives each bar applied the book the
      every-path stream has after it, so the books after the run are that stream's;
    - of the funding updates (closing predictions and settlements'): every settlement's, the last, the last before
      each job of the run (`gate.reads`: a decision and a booking read the rate and the interval), each one the
      strategy takes as news (`gate.news`), and each one whose interval the next does not repeat (`_kept_updates`);
      a symbol with a prediction announcing no settlement keeps all of its events (what the calendar makes of it is
      not left to chance);
    - the last mark (the strategy's, the venue's and the recorder's latest mark); for each settlement the closing mark
      before it (the mark its payment takes; `_SymbolRun` admits only settlements before their hour's path) and the
      closing mark of its hour (the venue publishes the margin state the payment brings at its next mark, and the
      recorder samples that state at the hour); for each refused entry handed over, its hour's spot bar and the
      closing mark before it (`_SymbolRun._skipped`).

    The periodic guard sweep reads the latest mark: every mark of a run lies inside the guard's quiet range, so the
    one it reads there finds nothing as every other would."""
    per: dict[tuple[int, str], list[HourSpan]] = {}
    for group in groups:
        for idx, s, span, *_ in group:
            per.setdefault((idx, s), []).append(span)
    chunk = []
    for (idx, s), spans in per.items():
        events = feeds[s].events
        picks = _run_picks(events, spans, s, gate)
        chunk.extend((events[i][0], events[i][1], idx, events[i][2]) for i in picks
                     if events[i][1] > PRIO_PERP_BAR or events[i][0] not in static)
    chunk.sort(key=lambda e: e[:3])
    gate.left_out += sum(span.settle[1] - span.settle[0] + span.close[1] - span.close[0]
                         + (span.bars[1] > span.bars[0] and span.close_ns not in static)
                         for g in groups for _, _, span, *_ in g) - len(chunk)
    return [e[3] for e in chunk]


def _run_picks(events: list, spans: list[HourSpan], s: str, gate: QuietGate) -> list[int]:
    """The indices of `s`'s events a quiet run over `spans` hands to the engine (`_run_chunk`)."""
    picks = [i for span in spans for i in range(*span.settle)]
    spot, perp, updates, marks, whole = _scan(events, spans)
    if whole:
        for span in spans:
            if span.bars[1] > span.bars[0]:
                picks.append(span.bars[0])
            picks += range(*span.close)
        return picks
    keep = {i for i in (spot, perp) if i is not None}
    ts = gate._settle_ts[s]
    for j, span in enumerate(spans):
        if bisect_right(ts, span.close_ns - HOUR_NS) != bisect_right(ts, span.close_ns):
            # a settlement: its payment takes the closing mark before it (the run's first hour: the engine has it),
            # and the venue publishes the margin state it brings at the next mark (the state the recorder samples
            # at the hour)
            keep.update(m for m in (marks[j - 1] if j else None, marks[j]) if m is not None)
    if marks[-1] is not None:
        keep.add(marks[-1])
    kept = _kept_updates(events, updates, gate.reads.get(s, ()), gate.news.get(s, ()))
    keep.update(kept)
    wanting = gate.wanting.get(s)
    if wanting:
        # a prediction the engine gets where the carry rules would enter (and the pre-check refuses quietly): the
        # prices it is checked at there are the hour's spot bar and the previous closing mark (`_SymbolRun._skipped`)
        at = {span.close_ns: j for j, span in enumerate(spans)}
        for i in kept:
            j = at.get(events[i][0]) if events[i][0] in wanting else None
            if j is not None:
                keep.update(m for m in (spans[j].bars[0], marks[j - 1] if j else None) if m is not None)
    return picks + list(keep)


def _scan(events: list, spans: list[HourSpan]) -> tuple:
    """Of a run's hours: the last spot bar, the last bar carrying (or being) a perp bar, the funding updates (indices
    in time order), each hour's closing mark, and whether anything makes the hours go whole (a prediction announcing
    no settlement, anything else at a close)."""
    spot = perp = None
    updates, marks = [], []
    whole = False
    for span in spans:
        b0, b1 = span.bars
        for i in range(b0, b1):
            if events[i][1] == PRIO_SPOT_BAR:
                spot = i
            else:
                perp = b0  # the spot bar carrying it, or the perp bar alone
        updates += range(*span.settle)
        mark = None
        for i in range(*span.close):
            prio = events[i][1]
            if prio == PRIO_PREDICTION:
                updates.append(i)
                whole = whole or events[i][2].next_funding_ns is None
            elif prio == PRIO_MARK:
                mark = i
            else:
                whole = True
        marks.append(mark)
    return spot, perp, updates, marks, whole


def _kept_updates(events: list, updates: list[int], reads: list[int], news: list[int]) -> list[int]:
    """Of a run's funding updates (`updates`, indices in time order), the closing predictions the engine gets: the
    last, each one whose interval the next does not repeat, each the strategy takes as news (`news`: their times),
    and the last before each job (`reads`: the jobs' times). The others only set the rate and the interval the next
    one sets again before anything reads them."""
    kept = []
    for n, i in enumerate(updates):
        if events[i][1] != PRIO_PREDICTION:
            continue  # a settlement's: always kept
        if n + 1 == len(updates):
            kept.append(i)
            continue
        t1, _, v = events[updates[n + 1]]
        if events[i][2].interval != v.interval or events[i][0] in news:
            kept.append(i)
        elif reads:
            r = bisect_right(reads, events[i][0])  # the first job after it reads it if it comes before the next
            if r < len(reads) and reads[r] <= t1:
                kept.append(i)
    return kept
