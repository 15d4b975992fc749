"""Backtest-only observer: hourly equity of both accounts and per-symbol state (prices, basis, legs, margin),
plus a progress bar on stderr. It reads; it never trades."""

from __future__ import annotations

import datetime as dt
import sys
import time

import pandas as pd

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.objects import Currency

from basisbot import margin
from basisbot.hedge_monitor import HedgeMonitor
from basisbot.quantities import ZERO
from basisbot.venue_messages import PerpMarginState, margin_topic

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


class BacktestRecorder(Actor):
    def __init__(self, config: RecorderConfig, tables: dict[str, margin.BracketTable],
                 spot_closes: dict[str, list[tuple[int, float]]]):
        """`spot_closes`: per symbol, the (close time ns, close) of the spot bars the backtest replays, in order."""
        super().__init__(config)
        self.symbols = list(config.symbols)
        self.spot_ids = [InstrumentId.from_str(s) for s in config.spot_ids]
        self.perp_ids = [InstrumentId.from_str(s) for s in config.perp_ids]
        self._sym_by_perp = {p: s for p, s in zip(self.perp_ids, self.symbols)}
        self._spot_by_sym = dict(zip(self.symbols, self.spot_ids))
        self._perp_by_sym = dict(zip(self.symbols, self.perp_ids))
        self.tables = tables
        self._spot_bars = {sym: spot_closes.get(sym, []) for sym in self.symbols}
        self.equity_rows: list[tuple] = []
        self.state_rows: list[tuple] = []  # filled by `finish`
        # the margin states as published, and per symbol the index of its latest one (the hourly samples hold indices:
        # a sample of plain values only is no work for the garbage collector once it is known to hold no objects)
        self._margin_seen: list[PerpMarginState] = []
        self._margin: dict[str, int] = {}
        # the one-leg invariant, observed from the positions the venues' fills made (not from the strategy's view)
        self.hedge = {s: HedgeMonitor(s, step, ratio) for s, step, ratio
                      in zip(self.symbols, config.perp_steps or ["1"] * len(self.symbols),
                             config.hedge_ratios or ["1"] * len(self.symbols))}
        self._leg_of = {i: (s, "spot") for s, i in zip(self.symbols, self.spot_ids)}
        self._leg_of.update({i: (s, "perp") for s, i in zip(self.symbols, self.perp_ids)})
        self._legs = {s: {"spot": ZERO, "perp": ZERO} for s in self.symbols}
        self._spot_venue, self._perp_venue = Venue(config.spot_venue), Venue(config.perp_venue)
        self._base: dict[str, Currency | None] = {}  # spot base currency per symbol (on start)
        # what the hourly sample reads, kept current by the position events instead of queried each hour
        self._perp_open: dict[str, tuple[float, float]] = {}  # symbol -> (signed qty, average open price)
        self._raw: list[tuple] = []  # hourly samples per symbol, as read (see `_state_rows`)
        self._accounts: tuple | None = None  # (spot account, perp account) once both exist
        self._wall0 = time.monotonic()
        self._last_pct = -1

    def on_start(self) -> None:
        for sym, iid in self._spot_by_sym.items():
            inst = self.cache.instrument(iid)
            self._base[sym] = inst.base_currency if inst is not None else None
        self._bases = [(sym, base) for sym, base in self._base.items() if base is not None]
        self._sampled = list(zip(self.symbols, self.perp_ids))
        # the hour's spot price: the close of the last spot bar replayed by then, read from the replayed bars in
        # step with the samples (a handler on the bus for each bar cost a call into Python per bar; `cache.bar` 3.6 us)
        self._spot_close: dict[str, float] = {}
        self._next_bar = dict.fromkeys(self.symbols, 0)  # per symbol, the index of its first bar not replayed yet
        for p, s in zip(self.perp_ids, self.symbols):
            self.msgbus.subscribe(margin_topic(s), self._on_margin)
        self.msgbus.subscribe("events.position.*", self._on_position)
        # Sample once an hour, just after the hour's data (bars, prediction, closing mark) is in the cache: a timer
        # instead of a handler on every intra-hour mark.
        first = (self.config.start_ns // HOUR_NS) * HOUR_NS + 1_000
        self.clock.set_timer("recorder", dt.timedelta(hours=1), start_time=pd.Timestamp(first, tz="UTC"),
                             callback=self._sample)

    def _closes_until(self, now_ns: int) -> dict[str, float]:
        """Each symbol's close of the last spot bar replayed by `now_ns` (none yet: absent)."""
        closes, next_bar = self._spot_close, self._next_bar
        for sym, bars in self._spot_bars.items():
            i = k = next_bar[sym]
            while k < len(bars) and bars[k][0] <= now_ns:
                k += 1
            if k != i:
                closes[sym], next_bar[sym] = bars[k - 1][1], k
        return closes

    def _on_position(self, event) -> None:
        key = self._leg_of.get(event.instrument_id)
        if key is None:
            return
        symbol, leg = key
        legs = self._legs[symbol]
        legs[leg] = qty = event.quantity.as_decimal() * (-1 if event.signed_qty < 0 else 1)  # exact, signed
        if leg == "perp":  # NETTING: one position per instrument; the event carries its state after the fill
            if qty:
                self._perp_open[symbol] = (event.signed_qty, event.avg_px_open)
            else:
                self._perp_open.pop(symbol, None)
        self.hedge[symbol].observe(event.ts_event, legs["spot"], legs["perp"])

    def finish(self, ts_ns: int) -> None:
        for mon in self.hedge.values():
            mon.finish(ts_ns)
        self.state_rows = self._state_rows()

    def _on_margin(self, st: PerpMarginState) -> None:
        self._margin[st.symbol] = len(self._margin_seen)
        self._margin_seen.append(st)

    def _sample(self, event) -> None:
        """Once an hour: what the venues and the cache hold now, as it is (the per-symbol figures derived from it,
        in `finish`, in one pass: the hour's own work stays a few lookups)."""
        ts = event.ts_event - 1_000  # the hour this sample closes
        closes = self._closes_until(event.ts_event)
        cache, raw, margins, legs = self.cache, self._raw, self._margin, self._legs
        spot_px, marks = {}, {}
        for symbol, pid in self._sampled:
            spot_px[symbol] = px = closes.get(symbol)
            mp = cache.mark_price(pid)
            if mp is None:
                continue
            marks[symbol] = mark = mp.value.as_double()
            if mp.ts_event == ts:  # else no data for this hour (outside the symbol's range)
                held = legs[symbol]  # the legs as the venues' position events left them (exact)
                fr = cache.funding_rate(pid)
                raw.append((ts, symbol, px, mark, None if fr is None else fr.rate, margins.get(symbol), held["spot"],
                            held["perp"]))
        self._record_equity(ts, spot_px, marks)
        if self.config.progress:
            self._progress(ts)

    def _state_rows(self) -> list[tuple]:
        """(ts, symbol, spot, mark, basis, predicted rate, spot qty, perp qty, perp wallet, liquidation price,
        distance to it) per symbol and hour, from the raw samples."""
        rows, lps, states = [], {}, self._margin_seen
        for ts, symbol, spot_px, mark, rate, k, spot_qty, perp_qty in self._raw:
            if rate is not None:
                rate = float(rate)
            lp = dist = wallet = None
            st = states[k] if k is not None else None
            if st is not None and st.side != 0:
                wallet = st.wallet
                if k in lps:
                    lp = lps[k]  # the liquidation price depends on the margin state only
                else:
                    try:
                        lp = margin.liquidation_price(st.side, st.qty, st.entry_price, st.wallet, self.tables[symbol])
                    except ValueError:
                        lp = None
                    lps[k] = lp
                dist = margin.distance_to_liquidation(st.side, mark, lp) if lp is not None else None
            basis = (mark - spot_px) / spot_px if spot_px else None
            rows.append((ts, symbol, spot_px, mark, basis, rate, float(spot_qty), float(perp_qty), wallet, lp, dist))
        return rows

    def _record_equity(self, ts: int, spot_px: dict[str, float | None], marks: dict[str, float]) -> None:
        accounts = self._accounts
        if accounts is None:
            accounts = (self.portfolio.account(self._spot_venue), self.portfolio.account(self._perp_venue))
            if accounts[0] is not None and accounts[1] is not None:
                self._accounts = accounts  # the cache keeps one account object per venue
        spot_acct, perp_acct = accounts
        spot_usdt = spot_acct.balance_total(USDT).as_double() if spot_acct else 0.0
        assets = 0.0
        if spot_acct is not None:
            for sym, base in self._bases:
                px = spot_px[sym]
                if px is None:
                    continue
                bal = spot_acct.balance_total(base)
                if bal is not None:
                    assets += bal.as_double() * px
        perp_wallet = perp_acct.balance_total(USDT).as_double() if perp_acct else 0.0
        upnl = 0.0
        for sym in self.symbols:  # in symbol order (the sum's rounding does not depend on when positions opened)
            held = self._perp_open.get(sym)
            if held is not None and sym in marks:
                upnl += held[0] * (marks[sym] - held[1])
        self.equity_rows.append((ts, spot_usdt, assets, perp_wallet, upnl, spot_usdt + assets + perp_wallet + upnl))

    def _progress(self, ts: int) -> None:
        span = max(self.config.end_ns - self.config.start_ns, 1)
        pct = int(100 * (ts - self.config.start_ns) / span)
        if pct != self._last_pct and pct % 2 == 0:
            self._last_pct = pct
            filled = pct // 4
            elapsed = time.monotonic() - self._wall0
            sys.stderr.write(f"\r  backtest [{'#' * filled}{'.' * (25 - filled)}] {pct:3d}%  {elapsed:5.1f}s")
            sys.stderr.flush()
