"""Turn canonical market data (`SymbolData`) into the nautilus data stream of a backtest, causally.

Per hour, at the bar's CLOSE time T (bars are stamped at close, as nautilus expects):
  spot bar, perp bar, predicted FundingRateUpdate, MarkPriceUpdate (in that order, so the strategy's mark-price
  handler sees the fresh spot price and prediction).
Inside each hour (unless `intrabar_step` is 0): spot and perp trade prices and the perp mark move along
  `bar_path` (open → first extreme → second extreme → close, legs subdivided so no step exceeds `intrabar_step`), as
  TradeTicks and MarkPriceUpdates, so the guard sees a spike build up and acts on it as it would live, and orders fill at
  the prices of that moment. The mark path is the perp path shifted by the bar's closing basis (mark - last).
Per settlement (exact time S from the data): a FundingRateUpdate announcing the next settlement, at
  sim_ts = max(S, hour(S) + 1 ns): the funding module applies the settlement at that point, with the mark price of the
  hour it belongs to (never a stale one when the exchange's jitter put S a millisecond before the hour).

The predicted rate at T is `FundingPredictor.predict()` after feeding only bars closed at or before T and settlements
at or before T: nothing from the future enters. The settled rate only ever enters as the settlement itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
from nautilus_trader.model.data import Bar, BarType, FundingRateUpdate, MarkPriceUpdate, TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.identifiers import TradeId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Price, Quantity

from basisbot.backtest.bar_book import book_after
from basisbot.core.carry import FundingPredictor, premium
from basisbot.core.data_quality import Flag, PrintFilter
from basisbot.core.units import HOUR_NS
from basisbot.data.market_data import SymbolData
from basisbot.venues.profile import FundingRules

# ordering of events sharing one timestamp
PRIO_SPOT_BAR, PRIO_PERP_BAR, PRIO_PREDICTION, PRIO_MARK, PRIO_SETTLEMENT = range(5)
PRIO_TICK = 0
MAX_PATH_POINTS = 64


def bar_path(o: float, h: float, l: float, c: float, step: float) -> list[tuple[float, float]]:
    """Price path inside one bar as (fraction of the bar elapsed, price), excluding the open, ending at the close.

    Up bars (c >= o) go open → low → high → close, down bars open → high → low → close (the usual conservative
    assumption: the bar visits the extreme against its direction first). Each leg is cut into equal steps no larger
    than `step` (relative), with at most MAX_PATH_POINTS points; time is shared in proportion to the distance moved.
    """
    pts = [o, l, h, c] if c >= o else [o, h, l, c]
    legs = []
    for a, b in zip(pts, pts[1:]):
        n = max(1, math.ceil(abs(b - a) / (a * step) - 1e-9)) if step > 0 and a > 0 else 1
        legs.append((a, b, n))
    total_n = sum(n for _, _, n in legs)
    if total_n > MAX_PATH_POINTS:  # keep the shape, thin the steps
        scale = MAX_PATH_POINTS / total_n
        legs = [(a, b, max(1, int(n * scale))) for a, b, n in legs]
    dist = sum(abs(b - a) for a, b, _ in legs) or 1.0
    out, elapsed = [], 0.0
    for a, b, n in legs:
        share = (abs(b - a) / dist) if dist else 1 / 3
        for i in range(1, n + 1):
            out.append((elapsed + share * i / n, a + (b - a) * i / n))
        elapsed += share
    # drop zero-length repeats and pin the close at exactly the end of the bar
    path = [(min(f, 1.0), p) for f, p in out if f > 0]
    if not path:
        return [(1.0, c)]  # a flat bar: nothing moves inside it
    path[-1] = (1.0, c)
    return path


def bar_type(instrument: Instrument) -> BarType:
    return BarType.from_str(f"{instrument.id}-1-HOUR-LAST-EXTERNAL")


@dataclass
class SymbolFeed:
    symbol: str
    events: list[tuple[int, int, object]]  # (ts, priority, nautilus data)
    settlements: list[tuple[int, int, float]]  # (sim_ts, exact_ts, rate)
    worst: dict[int, tuple[float, float]]  # bar close ns -> (worst high mark, worst low mark)
    predictions: pd.DataFrame  # ts, predicted_rate, interval_minutes, next_funding_ns (what the strategy saw)
    spot_gaps: int
    perp_gaps: int
    flags: list = field(default_factory=list)  # data_quality.Flag: prints kept out of the prediction
    # the spot bars' (close time ns, close as the venue's Price has it), in order: what the recorder values spot at
    spot_closes: list[tuple[int, float]] = field(default_factory=list)
    # every mark published: times (ns) and prices (as the venue's Price has them), in order: what the recorder values
    # the perp at
    marks: tuple[np.ndarray, np.ndarray] = (np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    hours: list[HourSpan] = field(default_factory=list)  # each bar's share of `events`, in order
    tail: tuple[int, int] = (0, 0)  # the settlements after the last bar's close
    # the books the bars leave in the matching engines: instrument id -> {bar time: (price raw, size raw) or None}
    # (`basisbot.backtest.bar_book.book_states`)
    books: dict | None = None


def _settlement_sim_ts(exact_ns: int) -> int:
    hour = ((exact_ns + HOUR_NS // 2) // HOUR_NS) * HOUR_NS
    return max(exact_ns, hour + 1)


def _worst_marks(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Worst mark inside each bar. The mark's own high/low where the data has them; the perp's high/low shifted by
    the bar's close basis (mark - last) in any case, since the bundled data has only the closing mark."""
    mark = bars["mark_close"].to_numpy()
    shift_hi = mark + (bars["perp_high"].to_numpy() - bars["perp_close"].to_numpy())
    shift_lo = mark + (bars["perp_low"].to_numpy() - bars["perp_close"].to_numpy())
    mh = bars["mark_high"].to_numpy()
    ml = bars["mark_low"].to_numpy()
    hi = np.fmax(np.where(np.isnan(mh), mark, mh), shift_hi)  # fmax/fmin skip NaN: perp holes fall back to the mark
    lo = np.fmin(np.where(np.isnan(ml), mark, ml), shift_lo)
    return hi, lo


def _intrabar(events, instrument, t_open, path, size, mark_shift, pp, ids, marks: tuple | None) -> Price | None:
    """TradeTicks (and, given `marks`, marks: their times and prices also listed there) along the path, strictly
    inside the bar; the bar itself closes it at t_open + 1h. The last tick's price (None: no tick)."""
    iid = instrument.id
    prec = instrument.price_precision
    last = None
    for frac, px in path[:-1]:
        t = t_open + int(frac * HOUR_NS)
        if t <= t_open or t >= t_open + HOUR_NS:
            continue
        ids[0] += 1
        last = Price(px, prec)
        events.append((t, PRIO_TICK, TradeTick(iid, last, size, AggressorSide.NO_AGGRESSOR, TradeId(str(ids[0])), t, t)))
        if marks is not None:
            mark = Price(px + mark_shift, pp)
            events.append((t, PRIO_MARK, MarkPriceUpdate(iid, mark, t, t)))
            marks[0].append(t)
            marks[1].append(mark.as_double())
    return last


@dataclass(slots=True)
class HourSpan:
    """One bar's share of `SymbolFeed.events` (index ranges), for a stream that replays its intra-hour path only
    where something could act inside it (`basisbot.backtest.stream`)."""

    close_ns: int
    settle: tuple[int, int]  # the settlements' funding updates applied inside the hour (before its close)
    intra: tuple[int, int]  # the intra-hour path: trade ticks and marks
    bars: tuple[int, int]  # the spot and perp bars at the close
    close: tuple[int, int]  # the rest at the close: the predicted rate, the closing mark
    last_mark: int = -1  # index of the last intra-hour mark (-1: none)
    last_ticks: tuple[int, ...] = ()  # indices of the last intra-hour trade tick of the perp and of the spot
    low: float = math.inf  # the intra-hour marks' range (inf, -inf: none)
    high: float = -math.inf
    close_mark: float = math.nan  # the closing mark, as its Price has it
    # the path's head: the later of the first perp and the first spot trade tick (-1: a leg has no tick in the hour),
    # and the range of the marks up to it
    head_ns: int = -1
    head_low: float = math.inf
    head_high: float = -math.inf


class _Builder:
    """The event list of one symbol, bar by bar (`build_feed`)."""

    def __init__(self, data: SymbolData, spot, perp, predictor_method: str, intrabar_step: float,
                 print_filter: bool, premium_source: str, funding: FundingRules):
        self.spot, self.perp, self.step = spot, perp, intrabar_step
        self.spot_bt, self.perp_bt = bar_type(spot), bar_type(perp)
        self.sp, self.pp = spot.price_precision, perp.price_precision
        self.ssz, self.psz = spot.size_precision, perp.size_precision
        self.events: list[tuple[int, int, object]] = []
        self.spot_closes: list[tuple[int, float]] = []
        self.marks: tuple[list[int], list[float]] = ([], [])
        self.hours: list[HourSpan] = []
        self.ids = [0]
        self.spot_tick_size = Quantity(spot.size_increment.as_double(), self.ssz)
        self.perp_tick_size = Quantity(perp.size_increment.as_double(), self.psz)
        # the book each leg's matching engine holds in the every-path stream (price raw, size raw), and the one each
        # bar leaves (`basisbot.backtest.bar_book.book_states` derives the same from the events)
        self.book: dict = {}
        self.books: dict = {spot.id: {}, perp.id: {}}
        fund = data.funding
        f_ns = (fund["ts"].astype("datetime64[ns, UTC]").astype("int64").to_numpy() if len(fund)
                else np.array([], dtype=np.int64))
        self.f_int = fund["interval_hours"].to_numpy()
        self.settlements = [(_settlement_sim_ts(int(t)), int(t), float(r)) for t, r in zip(f_ns, fund["rate"].to_numpy())]
        self.predictor = FundingPredictor(
            predictor_method,
            default_interval_hours=float(self.f_int[0]) if len(self.f_int) else funding.default_interval_hours,
            cap=funding.cap(data.symbol), rate_from_premium=funding.rate_from_premium,
            lag_periods=funding.predictor_lag_periods)
        self.filters = (PrintFilter("spot"), PrintFilter("perp")) if print_filter else None
        self.flags: list[Flag] = []
        self.use_mark = premium_source == "mark"
        self.held: tuple[int, float] | None = None  # (ts, premium) of a suspect hour, counted if the next confirms it
        self.pred_rows: list[tuple] = []
        self.si = 0  # next settlement index
        self.spot_gaps = 0
        self.perp_gaps = 0

    def next_info(self, i: int) -> tuple[int | None, int]:
        if i < len(self.settlements):
            return self.settlements[i][1], int(round(self.f_int[i] * 60))
        return None, int(round(self.predictor.interval_hours * 60))

    def settle_until(self, t: int, inclusive: bool = False) -> None:
        """Apply the settlements before `t` (at or before with `inclusive`), in time order."""
        s = self.settlements
        while self.si < len(s) and (s[self.si][0] <= t if inclusive else s[self.si][0] < t):
            self.si = _emit_settlement(s, self.si, self.f_int, self.predictor, self.perp, self.events, self.pred_rows,
                                       self.next_info)

    def bar(self, t: int, row: dict) -> None:
        """Everything of the bar closing at `t`: settlements inside the hour, the intra-hour path, the close."""
        events = self.events
        lo = len(events)
        self.settle_until(t)
        span = HourSpan(t, (lo, len(events)), (0, 0), (0, 0), (0, 0))
        span.intra = (len(events), len(events))
        if self.step > 0:
            self._path(t, row, span)
            span.intra = (span.intra[0], len(events))
        b0 = len(events)
        self._bars(t, row)
        span.bars = (b0, len(events))
        c0 = len(events)
        self._prediction(t, row)
        mark = Price(row["mark_close"], self.pp)
        events.append((t, PRIO_MARK, MarkPriceUpdate(self.perp.id, mark, t, t)))
        span.close_mark = mark.as_double()
        self.marks[0].append(t)
        self.marks[1].append(span.close_mark)
        span.close = (c0, len(events))
        self.hours.append(span)

    def _path(self, t: int, row: dict, span: HourSpan) -> None:
        t_open = t - HOUR_NS
        e0, n_marks = len(self.events), len(self.marks[0])
        if not math.isnan(row["perp_close"]):
            ppath = bar_path(row["perp_open"], row["perp_high"], row["perp_low"], row["perp_close"], self.step)
            n0 = len(self.marks[0])
            last = _intrabar(self.events, self.perp, t_open, ppath, self.perp_tick_size,
                             row["mark_close"] - row["perp_close"], self.pp, self.ids, self.marks)
            if last is not None:
                self.book[self.perp.id] = (last.raw, self.perp_tick_size.raw)
            seen = self.marks[1][n0:]
            if seen:
                span.low, span.high = min(seen), max(seen)
                span.last_mark = len(self.events) - 1  # the path ends with a tick and its mark
                span.last_ticks = (len(self.events) - 2,)
        if not math.isnan(row["spot_close"]):
            spath = bar_path(row["spot_open"], row["spot_high"], row["spot_low"], row["spot_close"], self.step)
            n0 = len(self.events)
            last = _intrabar(self.events, self.spot, t_open, spath, self.spot_tick_size, 0.0, self.sp, self.ids, None)
            if last is not None:
                self.book[self.spot.id] = (last.raw, self.spot_tick_size.raw)
            if len(self.events) > n0:
                span.last_ticks += (len(self.events) - 1,)
            if n0 > e0 and len(self.events) > n0:  # both legs have ticks: the head ends at the later first one
                span.head_ns = max(self.events[e0][0], self.events[n0][0])
                head = [m for ts, m in zip(self.marks[0][n_marks:], self.marks[1][n_marks:]) if ts <= span.head_ns]
                if head:
                    span.head_low, span.head_high = min(head), max(head)

    def _bars(self, t: int, row: dict) -> None:
        sp, pp, ssz, psz = self.sp, self.pp, self.ssz, self.psz
        if math.isnan(row["spot_close"]):
            self.spot_gaps += 1
        else:
            o, h, lo, close = (Price(row[c], sp) for c in ("spot_open", "spot_high", "spot_low", "spot_close"))
            vol = Quantity(row["spot_volume"], ssz)
            self.events.append((t, PRIO_SPOT_BAR, Bar(self.spot_bt, o, h, lo, close, vol, t, t)))
            self.spot_closes.append((t, close.as_double()))
            self._leave(self.spot, t, o, h, lo, close, vol)
        if math.isnan(row["perp_close"]):
            self.perp_gaps += 1  # a hole in the source (reported by the loader); the mark still drives risk and funding
        else:
            o, h, lo, c = (Price(row[k], pp) for k in ("perp_open", "perp_high", "perp_low", "perp_close"))
            vol = Quantity(row["perp_volume"], psz)
            self.events.append((t, PRIO_PERP_BAR, Bar(self.perp_bt, o, h, lo, c, vol, t, t)))
            self._leave(self.perp, t, o, h, lo, c, vol)

    def _leave(self, inst, t: int, o: Price, h: Price, lo: Price, c: Price, vol: Quantity) -> None:
        """The book the bar leaves in its matching engine, after the hour's trades (`bar_book.book_states`)."""
        now = self.book[inst.id] = book_after(self.book.get(inst.id), o.raw, h.raw, lo.raw, c.raw, vol.raw,
                                              inst.size_increment.raw)
        self.books[inst.id][t] = now

    def _observe(self, t: int, s_close: float, p_close: float, m_close: float) -> None:
        """Feed the hour's premium to the predictor; a bad print (spot or perp inconsistent with the mark and its
        recent basis) never enters it."""
        if self.filters is not None:
            (fs, cs), (fp, cp) = self.filters[0].check(t, s_close, m_close), self.filters[1].check(t, p_close, m_close)
        else:  # benchmarks only: every print counts
            (fs, cs), (fp, cp) = (None, False), (None, False)
        held = self.held
        if held is not None and (cs or cp):  # the suspect print before was the market moving: it counts
            self.predictor.on_premium(held[1])
            self.flags[:] = [f for f in self.flags if f.ts_ns != held[0]]
        self.held = None
        prem = premium(m_close if (self.use_mark and m_close > 0) else p_close, s_close)
        if fs or fp:
            self.flags.extend(f for f in (fs, fp) if f)
            self.held = (t, prem)
        else:
            self.predictor.on_premium(prem)

    def _prediction(self, t: int, row: dict) -> None:
        if not (math.isnan(row["spot_close"]) or math.isnan(row["perp_close"])):
            self._observe(t, row["spot_close"], row["perp_close"], row["mark_close"])
        pred = self.predictor.predict()
        nxt, interval_min = self.next_info(self.si)
        if pred is not None:
            self.events.append((t, PRIO_PREDICTION, FundingRateUpdate(
                self.perp.id, Decimal(repr(float(pred))), t, t, interval=interval_min, next_funding_ns=nxt)))
            self.pred_rows.append((t, pred, interval_min, nxt))


def build_feed(data: SymbolData, spot, perp, predictor_method: str = "premium", intrabar_step: float = 0.0,
               print_filter: bool = True, premium_source: str = "mark", *, funding: FundingRules) -> SymbolFeed:
    """The symbol's event stream and causal predictions; `funding` is the venue profile's funding rules (formula,
    cap, default interval) the predictor reproduces."""
    bars = data.bars
    close_ns = (bars.index.asi8.astype(np.int64) * (1 if bars.index.unit == "ns" else _unit_mult(bars.index))
                + HOUR_NS)
    if intrabar_step > 0:
        worst = {}  # the marks themselves trace each bar: the margin module checks every one
    else:
        hi, lo = _worst_marks(bars)
        worst = {int(t): (float(h), float(l)) for t, h, l in zip(close_ns, hi, lo)}
    b = _Builder(data, spot, perp, predictor_method, intrabar_step, print_filter, premium_source, funding)
    # numpy scalars, as the columns hold them: the predictor sums them as such (Python's float sum compensates
    # rounding for exact floats only, so Python floats would move the predictions in their last digit)
    cols = [(c, bars[c].to_numpy()) for c in bars.columns]
    for k, t in enumerate(close_ns.tolist()):
        b.bar(int(t), {c: v[k] for c, v in cols})
    end_t = int(close_ns[-1]) if len(close_ns) else 0
    tail0 = len(b.events)
    b.settle_until(end_t + HOUR_NS, inclusive=True)
    predictions = pd.DataFrame(b.pred_rows, columns=["ts_ns", "predicted_rate", "interval_minutes", "next_funding_ns"])
    feed = SymbolFeed(data.symbol, b.events, b.settlements, worst, predictions, b.spot_gaps, b.perp_gaps, b.flags,
                      b.spot_closes, (np.array(b.marks[0], dtype=np.int64), np.array(b.marks[1], dtype=np.float64)))
    feed.hours = b.hours
    feed.books = {iid: books for iid, books in b.books.items() if books}
    feed.tail = (tail0, len(b.events))
    return feed


def _emit_settlement(settlements, si, f_int, predictor, perp, events, pred_rows, next_info) -> int:
    sim_ts, _exact, rate = settlements[si]
    predictor.on_settlement(rate, float(f_int[si]))
    si += 1
    nxt, interval_min = next_info(si)
    if nxt is not None:
        predictor.set_interval(interval_min / 60)
    pred = predictor.predict()
    if pred is not None:
        events.append((sim_ts, PRIO_SETTLEMENT, FundingRateUpdate(perp.id, Decimal(repr(float(pred))), sim_ts, sim_ts,
                                                                  interval=interval_min, next_funding_ns=nxt)))
        pred_rows.append((sim_ts, pred, interval_min, nxt))
    return si


def _unit_mult(index: pd.DatetimeIndex) -> int:
    return {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[index.unit]
