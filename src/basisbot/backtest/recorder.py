"""Backtest-only observer: hourly equity of both accounts and per-symbol state (prices, basis, legs, margin),
plus a progress bar on stderr. It reads; it never trades."""

from __future__ import annotations

import math
import sys

import numpy as np
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.objects import Currency
from tqdm import tqdm

from basisbot.core import margin
from basisbot.core.hedge_monitor import HedgeMonitor
from basisbot.core.quantities import ZERO
from basisbot.nautilus.messages import PerpMarginState, margin_topic
from basisbot.venues import DEFAULT_EXCHANGE, get_profile

USDT = Currency.from_str("USDT")
HOUR_NS = 3_600_000_000_000


class RecorderConfig(ActorConfig, frozen=True):
    symbols: list[str]
    spot_ids: list[str]
    perp_ids: list[str]
    spot_venue: str
    perp_venue: str
    start_ns: int
    end_ns: int
    hedge_ratios: list[str] = []  # per symbol, exact (decimal strings)
    perp_steps: list[str] = []  # perp lot step per symbol (decimal strings)
    progress: bool = True
    exchange: str = DEFAULT_EXCHANGE  # the venue profile: the liquidation price formula of the reported samples


class BacktestRecorder(Actor):
    """The hourly samples are derived after the run, not taken during it: what they read changes only at events the
    recorder keeps as they happen (position events, margin states; the accounts keep their own states) or comes from
    the replayed data itself (spot closes, marks, predictions). A sample is what the venues and the cache held just
    after the hour's data (hour + 1 µs), exactly as an hourly timer reading them would have found it, without one
    (17.5k timer events and reads in the 2-year quick start): the derivation is one vectorised pass at the end."""

    def __init__(self, config: RecorderConfig, tables: dict[str, margin.BracketTable],
                 spot_closes: dict[str, list[tuple[int, float]]], marks: dict[str, tuple[np.ndarray, np.ndarray]],
                 rates: dict[str, tuple[np.ndarray, np.ndarray]]):
        """Per symbol, in time order, as the backtest replays them: `spot_closes` the spot bars' (close time ns,
        close); `marks` every mark's times (ns) and prices, `rates` every predicted funding rate's times and rates."""
        super().__init__(config)
        self.symbols = list(config.symbols)
        self.spot_ids = [InstrumentId.from_str(s) for s in config.spot_ids]
        self.perp_ids = [InstrumentId.from_str(s) for s in config.perp_ids]
        self._spot_by_sym = dict(zip(self.symbols, self.spot_ids))
        self.tables = tables
        self._spot_bars = {sym: spot_closes.get(sym, []) for sym in self.symbols}
        none = (np.array([], dtype=np.int64), np.array([], dtype=np.float64))
        self._marks = {sym: marks.get(sym, none) for sym in self.symbols}
        self._rates = {sym: rates.get(sym, none) for sym in self.symbols}
        self.equity_rows: list[tuple] = []
        self.state_rows: list[tuple] = []  # filled by `finish`
        self._margin_seen: list[PerpMarginState] = []  # the margin states as published, in order
        # the one-leg invariant, observed from the positions the venues' fills made (not from the strategy's view)
        self.hedge = {s: HedgeMonitor(s, step, ratio) for s, step, ratio
                      in zip(self.symbols, config.perp_steps or ["1"] * len(self.symbols),
                             config.hedge_ratios or ["1"] * len(self.symbols))}
        self._leg_of = {i: (s, "spot") for s, i in zip(self.symbols, self.spot_ids)}
        self._leg_of.update({i: (s, "perp") for s, i in zip(self.symbols, self.perp_ids)})
        # per symbol, each change of the legs: (time, spot, perp, the open perp's (signed qty, average open) or None)
        self._legs_at: dict[str, list[tuple]] = {s: [] for s in self.symbols}
        self._spot_venue, self._perp_venue = Venue(config.spot_venue), Venue(config.perp_venue)
        self._bar: tqdm | None = None  # the progress bar (stderr), opened at the first progress tick

    def _sample_times(self) -> range:
        """The samples' times: every hour + 1 µs after the start (the first closes the first whole hour)."""
        first = (self.config.start_ns // HOUR_NS) * HOUR_NS + 1_000 + HOUR_NS
        return range(first, self.config.end_ns + 1_000 + 1, HOUR_NS)

    def on_start(self) -> None:
        for s in self.symbols:
            self.msgbus.subscribe(margin_topic(s), self._on_margin)
        self.msgbus.subscribe("events.position.*", self._on_position)
        times = self._sample_times()
        if len(times):
            # the last sample's time: the clock reaches it only if the engine ran to the end (`finish` samples up to
            # where the clock got, so a run stopped early has samples up to its stop, as before)
            self.clock.set_time_alert_ns("recorder-end", times[-1], lambda _event: None)
        if self.config.progress and len(times) > 1:
            step = max(1, len(times) // 100) * HOUR_NS
            self.clock.set_timer_ns("recorder-progress", step, times[0], times[-1],
                                    lambda e: self._progress(e.ts_event))

    def _on_position(self, event) -> None:
        key = self._leg_of.get(event.instrument_id)
        if key is None:
            return
        symbol, leg = key
        qty = event.quantity.as_decimal() * (-1 if event.signed_qty < 0 else 1)  # exact, signed
        history = self._legs_at[symbol]
        _, spot, perp, perp_open = history[-1] if history else (0, ZERO, ZERO, None)
        if leg == "perp":  # NETTING: one position per instrument; the event carries its state after the fill
            perp, perp_open = qty, ((event.signed_qty, event.avg_px_open) if qty else None)
        else:
            spot = qty
        history.append((event.ts_event, spot, perp, perp_open))
        self.hedge[symbol].observe(event.ts_event, spot, perp)

    def _on_margin(self, st: PerpMarginState) -> None:
        self._margin_seen.append(st)

    def finish(self, ts_ns: int) -> None:
        for mon in self.hedge.values():
            mon.finish(ts_ns)
        self._derive_samples(self.clock.timestamp_ns())

    def _derive_samples(self, now_ns: int) -> None:
        """The hourly samples up to `now_ns` (where the engine's clock got), each as of its time (what happened at or
        before it): the equity of both accounts, and per symbol and hour of data (its mark at the hour) the state row.
        Vectorised over the hours (a binary search of each history per column); the sums run in the order an
        hourly loop adds them (symbol by symbol), so every figure is the float that loop would give."""
        times = np.array([t for t in self._sample_times() if t <= now_ns], dtype=np.int64)
        hours = times - 1_000  # the hour each sample closes
        n = len(times)
        spot_acct, perp_acct = self.portfolio.account(self._spot_venue), self.portfolio.account(self._perp_venue)
        bases = []
        for sym, iid in self._spot_by_sym.items():
            inst = self.cache.instrument(iid)
            if inst is not None:
                bases.append((sym, inst.base_currency))
        spot_bal = _balances_asof(spot_acct, [USDT] + [b for _, b in bases], times)
        perp_bal = _balances_asof(perp_acct, [USDT], times)
        spot_usdt = np.where(np.isnan(spot_bal[USDT]), 0.0, spot_bal[USDT])
        perp_wallet = np.where(np.isnan(perp_bal[USDT]), 0.0, perp_bal[USDT])
        px: dict[str, np.ndarray] = {}
        for sym in self.symbols:
            px[sym] = _values_asof(self._spot_bars[sym], times)
        assets = np.zeros(n)
        for sym, base in bases:
            bal = spot_bal[base]
            ok = ~np.isnan(px[sym]) & ~np.isnan(bal)
            assets = np.where(ok, assets + bal * px[sym], assets)
        upnl = np.zeros(n)
        columns = []  # per symbol: the state rows' columns at the hours it has data
        for si, sym in enumerate(self.symbols):
            m_ts, m_px = self._marks[sym]
            i_m = _asof(m_ts, times)
            has_mark = i_m >= 0
            mark = _at(m_px, i_m, np.nan)
            legs = self._legs_at[sym]
            i_l = _asof(np.array([r[0] for r in legs], dtype=np.int64), times)
            open_qty = np.array([r[3][0] if r[3] is not None else np.nan for r in legs] + [np.nan])[i_l]  # -1: none
            open_px = np.array([r[3][1] if r[3] is not None else np.nan for r in legs] + [np.nan])[i_l]
            ok = has_mark & ~np.isnan(open_qty)
            upnl = np.where(ok, upnl + open_qty * (mark - open_px), upnl)
            own = _at(m_ts, i_m, -1) == hours  # the symbol's mark at the hour itself
            at = np.nonzero(own)[0]
            r_ts, r_val = self._rates[sym]
            r_val = r_val.tolist()
            i_r = _asof(r_ts, times[at])
            margin_at = [(st.ts_ns, k) for k, st in enumerate(self._margin_seen) if st.symbol == sym]
            i_k = _asof(np.array([r[0] for r in margin_at], dtype=np.int64), times[at])
            ks = [margin_at[i][1] if i >= 0 else None for i in i_k.tolist()]
            qty = [(float(r[1]), float(r[2])) for r in legs] + [(0.0, 0.0)]  # -1: none yet
            rates = [r_val[i] if i >= 0 else None for i in i_r.tolist()]
            columns.append((at * len(self.symbols) + si, sym, hours[at], px[sym][at], mark[at], rates, ks,
                            [qty[i] for i in i_l[at].tolist()]))
        total = spot_usdt + assets + perp_wallet + upnl
        self.equity_rows = list(zip(hours.tolist(), spot_usdt.tolist(), assets.tolist(), perp_wallet.tolist(),
                                    upnl.tolist(), total.tolist()))
        self.state_rows = self._state_rows(columns)

    def _state_rows(self, columns: list) -> list[tuple]:
        """(ts, symbol, spot, mark, basis, predicted rate, spot qty, perp qty, perp wallet, liquidation price,
        distance to it) per hour and symbol (in that order), from the per-symbol columns of `_derive_samples`."""
        rows, lps, states = [], {}, self._margin_seen
        venue_lp = get_profile(self.config.exchange).liquidation_price
        for order, symbol, ts_col, px_col, mark_col, rate_col, k_col, qty_col in columns:
            for key, ts, spot_px, mark, rate, k, (spot_qty, perp_qty) in zip(
                    order.tolist(), ts_col.tolist(), px_col.tolist(), mark_col.tolist(), rate_col, k_col, qty_col):
                if spot_px != spot_px:  # NaN: no spot bar yet
                    spot_px = None
                lp = dist = wallet = None
                st = states[k] if k is not None else None
                if st is not None and st.side != 0:
                    wallet = st.wallet
                    if k in lps:
                        lp = lps[k]  # the liquidation price depends on the margin state only
                    else:
                        try:
                            lp = venue_lp(st.side, st.qty, st.entry_price, st.wallet, self.tables[symbol])
                        except ValueError:
                            lp = None
                        lps[k] = lp
                    dist = margin.distance_to_liquidation(st.side, mark, lp) if lp is not None else None
                basis = (mark - spot_px) / spot_px if spot_px else None
                rows.append((key, (ts, symbol, spot_px, mark, basis, rate, spot_qty, perp_qty, wallet, lp, dist)))
        rows.sort(key=lambda r: r[0])
        return [r for _, r in rows]

    def _progress(self, ts: int) -> None:
        span = max(self.config.end_ns - self.config.start_ns, 1)
        pct = min(100, int(100 * (ts - self.config.start_ns) / span))
        if self._bar is None:
            self._bar = tqdm(total=100, desc="backtest", file=sys.stderr, dynamic_ncols=True, leave=True,
                             bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
        if pct > self._bar.n:
            self._bar.update(pct - self._bar.n)

    def close_progress(self, complete: bool) -> None:
        """Close the progress bar, at 100% when the run reached its end (the last timer tick may fall short)."""
        if self._bar is not None:
            if complete:
                self._bar.update(100 - self._bar.n)
            self._bar.close()
            self._bar = None


def _asof(ts: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each time, the index of the last of the time-ordered `ts` at or before it (-1: none)."""
    return np.searchsorted(ts, times, side="right") - 1


def _at(values: np.ndarray, i: np.ndarray, missing) -> np.ndarray:
    """`values[i]`, `missing` where `i` is -1 (`_asof`: nothing yet)."""
    return np.where(i >= 0, values[np.maximum(i, 0)] if len(values) else missing, missing)


def _values_asof(rows: list[tuple[int, float]], times: np.ndarray) -> np.ndarray:
    """The value of the last of the time-ordered (time ns, value) `rows` at or before each time (NaN before the
    first)."""
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    return _at(np.array([r[1] for r in rows], dtype=np.float64), _asof(ts, times), np.nan)


def _balances_asof(account, currencies: list, times: np.ndarray) -> dict:
    """Per currency, the account's total balance (float; NaN: none) as of each time, from the states the account
    applied, in order: each state replaces the balances it carries (nautilus' `Account.update_balances`)."""
    states = account.events if account is not None else []
    i = _asof(np.array([s.ts_event for s in states], dtype=np.int64), times)
    held = dict.fromkeys(currencies, math.nan)
    columns = {c: [] for c in currencies}
    for state in states:
        for b in state.balances:
            if b.currency in held:
                held[b.currency] = b.total.as_double()
        for c in currencies:
            columns[c].append(held[c])
    return {c: np.array(col + [math.nan], dtype=np.float64)[i] for c, col in columns.items()}  # -1: none yet
