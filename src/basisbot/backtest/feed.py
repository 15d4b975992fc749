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

from basisbot.core.carry import FundingPredictor, premium
from basisbot.core.data_quality import Flag, PrintFilter
from basisbot.data.market_data import SymbolData
from basisbot.venues.profile import FundingRules

HOUR_NS = 3_600_000_000_000
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


def _intrabar(events, instrument, t_open, path, size, mark_shift, pp, ids, marks: tuple | None) -> None:
    """TradeTicks (and, given `marks`, marks: their times and prices also listed there) along the path, strictly
    inside the bar; the bar itself closes it at t_open + 1h."""
    iid = instrument.id
    prec = instrument.price_precision
    for frac, px in path[:-1]:
        t = t_open + int(frac * HOUR_NS)
        if t <= t_open or t >= t_open + HOUR_NS:
            continue
        ids[0] += 1
        events.append((t, PRIO_TICK, TradeTick(iid, Price(px, prec), size, AggressorSide.NO_AGGRESSOR,
                                               TradeId(str(ids[0])), t, t)))
        if marks is not None:
            mark = Price(px + mark_shift, pp)
            events.append((t, PRIO_MARK, MarkPriceUpdate(iid, mark, t, t)))
            marks[0].append(t)
            marks[1].append(mark.as_double())


def build_feed(data: SymbolData, spot, perp, predictor_method: str = "premium", intrabar_step: float = 0.0,
               print_filter: bool = True, premium_source: str = "mark", *, funding: FundingRules) -> SymbolFeed:
    """The symbol's event stream and causal predictions; `funding` is the venue profile's funding rules (formula,
    cap, default interval) the predictor reproduces."""
    bars = data.bars
    close_ns = (bars.index.asi8.astype(np.int64) * (1 if bars.index.unit == "ns" else _unit_mult(bars.index))
                + HOUR_NS)
    spot_bt, perp_bt = bar_type(spot), bar_type(perp)
    sp, pp = spot.price_precision, perp.price_precision
    ssz, psz = spot.size_precision, perp.size_precision
    events: list[tuple[int, int, object]] = []
    spot_closes: list[tuple[int, float]] = []
    marks: tuple[list[int], list[float]] = ([], [])
    cols = {c: bars[c].to_numpy() for c in bars.columns}
    if intrabar_step > 0:
        worst = {}  # the marks themselves trace each bar: the margin module checks every one
    else:
        hi, lo = _worst_marks(bars)
        worst = {int(t): (float(h), float(l)) for t, h, l in zip(close_ns, hi, lo)}
    ids = [0]
    spot_tick_size = Quantity(spot.size_increment.as_double(), ssz)
    perp_tick_size = Quantity(perp.size_increment.as_double(), psz)

    fund = data.funding
    f_ns = fund["ts"].astype("datetime64[ns, UTC]").astype("int64").to_numpy() if len(fund) else np.array([], dtype=np.int64)
    f_rate = fund["rate"].to_numpy()
    f_int = fund["interval_hours"].to_numpy()
    settlements = [(_settlement_sim_ts(int(t)), int(t), float(r)) for t, r in zip(f_ns, f_rate)]

    predictor = FundingPredictor(predictor_method,
                                 default_interval_hours=float(f_int[0]) if len(f_int) else funding.default_interval_hours,
                                 cap=funding.cap(data.symbol), rate_from_premium=funding.rate_from_premium,
                                 lag_periods=funding.predictor_lag_periods)
    spot_filter, perp_filter = PrintFilter("spot"), PrintFilter("perp")
    flags: list[Flag] = []
    use_mark = premium_source == "mark"
    held: tuple[int, float] | None = None  # (ts, premium) of a suspect hour, counted if the next hour confirms it
    pred_rows = []
    si = 0  # next settlement index
    n_settle = len(settlements)
    spot_gaps = 0
    perp_gaps = 0

    def next_info(i: int) -> tuple[int | None, int]:
        if i < n_settle:
            return settlements[i][1], int(round(f_int[i] * 60))
        return None, int(round(predictor.interval_hours * 60))

    for k in range(len(bars)):
        t = int(close_ns[k])
        # settlements strictly before this bar's close apply first (in time order)
        while si < n_settle and settlements[si][0] < t:
            si = _emit_settlement(settlements, si, f_int, predictor, perp, events, pred_rows, next_info)
        s_close = cols["spot_close"][k]
        p_close = cols["perp_close"][k]
        if intrabar_step > 0:
            t_open = t - HOUR_NS
            if not math.isnan(p_close):
                ppath = bar_path(cols["perp_open"][k], cols["perp_high"][k], cols["perp_low"][k], p_close,
                                 intrabar_step)
                _intrabar(events, perp, t_open, ppath, perp_tick_size, cols["mark_close"][k] - p_close, pp, ids,
                          marks)
            if not math.isnan(s_close):
                spath = bar_path(cols["spot_open"][k], cols["spot_high"][k], cols["spot_low"][k], s_close,
                                 intrabar_step)
                _intrabar(events, spot, t_open, spath, spot_tick_size, 0.0, sp, ids, None)
        if math.isnan(s_close):
            spot_gaps += 1
        else:
            close = Price(s_close, sp)
            events.append((t, PRIO_SPOT_BAR, Bar(
                spot_bt,
                Price(cols["spot_open"][k], sp), Price(cols["spot_high"][k], sp),
                Price(cols["spot_low"][k], sp), close,
                Quantity(cols["spot_volume"][k], ssz), t, t)))
            spot_closes.append((t, close.as_double()))
        if math.isnan(p_close):
            perp_gaps += 1  # a hole in the source (reported by the loader); the mark still drives risk and funding
        else:
            events.append((t, PRIO_PERP_BAR, Bar(
                perp_bt,
                Price(cols["perp_open"][k], pp), Price(cols["perp_high"][k], pp),
                Price(cols["perp_low"][k], pp), Price(p_close, pp),
                Quantity(cols["perp_volume"][k], psz), t, t)))
        if not (math.isnan(s_close) or math.isnan(p_close)):
            # a bad print (spot or perp inconsistent with the mark and its recent basis) never enters the prediction
            m_close = cols["mark_close"][k]
            if print_filter:
                (fs, cs), (fp, cp) = spot_filter.check(t, s_close, m_close), perp_filter.check(t, p_close, m_close)
            else:  # benchmarks only: every print counts
                (fs, cs), (fp, cp) = (None, False), (None, False)
            if held is not None and (cs or cp):  # the suspect print before was the market moving: it counts
                predictor.on_premium(held[1])
                flags[:] = [f for f in flags if f.ts_ns != held[0]]
            held = None
            if fs or fp:
                flags.extend(f for f in (fs, fp) if f)
                held = (t, premium(m_close if (use_mark and m_close > 0) else p_close, s_close))
            else:
                predictor.on_premium(premium(m_close if (use_mark and m_close > 0) else p_close, s_close))
        pred = predictor.predict()
        nxt, interval_min = next_info(si)
        if pred is not None:
            events.append((t, PRIO_PREDICTION, FundingRateUpdate(perp.id, Decimal(repr(float(pred))), t, t,
                                                                 interval=interval_min, next_funding_ns=nxt)))
            pred_rows.append((t, pred, interval_min, nxt))
        mark = Price(cols["mark_close"][k], pp)
        events.append((t, PRIO_MARK, MarkPriceUpdate(perp.id, mark, t, t)))
        marks[0].append(t)
        marks[1].append(mark.as_double())
    end_t = int(close_ns[-1]) if len(close_ns) else 0
    while si < n_settle and settlements[si][0] <= end_t + HOUR_NS:
        si = _emit_settlement(settlements, si, f_int, predictor, perp, events, pred_rows, next_info)

    predictions = pd.DataFrame(pred_rows, columns=["ts_ns", "predicted_rate", "interval_minutes", "next_funding_ns"])
    return SymbolFeed(data.symbol, events, settlements, worst, predictions, spot_gaps, perp_gaps, flags, spot_closes,
                      (np.array(marks[0], dtype=np.int64), np.array(marks[1], dtype=np.float64)))


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
