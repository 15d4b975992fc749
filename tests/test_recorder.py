"""The recorder derives its hourly samples after the run: each must be what the venues and the cache held at that
hour. The oracle here is an hourly timer in the same engine that reads them live (what the recorder itself did before
it derived them): both must give the same rows, float for float, with trading, margin transfers and liquidations.
The runs replay every event (`stream = "every_path"`): the gated stream leaves out marks nothing reads, so the cache
there does not hold every hour's mark; that its outputs are every path's is `tests/test_stream.py`'s to show."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from nautilus_trader.model.objects import Currency

from basisbot.backtest import run as backtest_run
from basisbot.backtest.recorder import BacktestRecorder
from basisbot.config.loading import load_settings
from basisbot.core.units import HOUR_NS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"
USDT = Currency.from_str("USDT")


class ProbedRecorder(BacktestRecorder):
    """The recorder plus an hourly timer at hour + 1 µs that reads the accounts, the cache's marks and predictions,
    and the legs and margin state the recorder has heard so far."""

    def on_start(self) -> None:
        super().on_start()
        self.probe_equity: list[tuple] = []
        self.probe_state: list[tuple] = []
        first = (self.config.start_ns // HOUR_NS) * HOUR_NS + 1_000
        self.clock.set_timer("probe", dt.timedelta(hours=1), start_time=pd.Timestamp(first, tz="UTC"),
                             callback=self._probe)

    def _probe(self, event) -> None:
        t, ts = event.ts_event, event.ts_event - 1_000
        spot_acct = self.portfolio.account(self._spot_venue)
        perp_acct = self.portfolio.account(self._perp_venue)
        spot_px, marks, assets, upnl = {}, {}, 0.0, 0.0
        for symbol, spot_id, perp_id in zip(self.symbols, self.spot_ids, self.perp_ids):
            bars = [c for c_ts, c in self._spot_bars[symbol] if c_ts <= t]
            spot_px[symbol] = bars[-1] if bars else None
            mp = self.cache.mark_price(perp_id)
            if mp is None:
                continue
            marks[symbol] = mark = mp.value.as_double()
            if mp.ts_event == ts:
                fr = self.cache.funding_rate(perp_id)
                seen = [k for k, st in enumerate(self._margin_seen) if st.symbol == symbol]  # all heard by now
                legs = self._legs_at[symbol]  # the legs the recorder has heard by now
                spot, perp = legs[-1][1:3] if legs else (0, 0)
                self.probe_state.append((ts, symbol, spot_px[symbol], mark, None if fr is None else float(fr.rate),
                                         seen[-1] if seen else None, float(spot), float(perp)))
        for symbol, spot_id in zip(self.symbols, self.spot_ids):
            base = self.cache.instrument(spot_id).base_currency
            bal = spot_acct.balance_total(base)
            if spot_px[symbol] is not None and bal is not None:
                assets += bal.as_double() * spot_px[symbol]
        for symbol, perp_id in zip(self.symbols, self.perp_ids):
            pos = self.cache.positions_open(None, perp_id)
            if pos and symbol in marks:
                upnl += pos[0].signed_qty * (marks[symbol] - pos[0].avg_px_open)
        spot_usdt = spot_acct.balance_total(USDT).as_double()
        perp_wallet = perp_acct.balance_total(USDT).as_double()
        self.probe_equity.append((ts, spot_usdt, assets, perp_wallet, upnl, spot_usdt + assets + perp_wallet + upnl))


CONFIGS = {
    # the shipped config: four symbols, entries and exits, margin transfers from the spot account
    "shipped": ((REPO / "config" / "basisbot.toml").read_text().replace(
        'data = "backtests/data/binance"', f'data = "{DATA}"\nstream = "every_path"'), "2023-01-01", "2023-03-01"),
    # isolated 20x without the guard and without intra-bar paths: liquidations at the bars' worst marks
    "liquidations": (f"""
[backtest]
data = "{DATA}"
stream = "every_path"
spot_balance_usdt = 100000
perp_balance_usdt = 50000
intrabar_step = 0
[symbols.ETHUSDT]
enabled = true
notional_usdt = 20000
leverage = 20
entry_apr = -1000
exit_apr = -2000
[symbols.ETHUSDT.guard]
enabled = false
[symbols.SOLUSDT]
enabled = true
notional_usdt = 20000
leverage = 20
margin_mode = "cross"
entry_apr = -1000
exit_apr = -2000
[symbols.SOLUSDT.guard]
enabled = false
""", "2022-04-01", "2022-07-01"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_derived_hourly_samples_equal_what_the_venues_held_at_each_hour(tmp_path, monkeypatch, name):
    text, start, end = CONFIGS[name]
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(text)
    monkeypatch.setattr(backtest_run, "BacktestRecorder", ProbedRecorder)
    result = backtest_run.run_backtest(load_settings(cfg), config_path=cfg, start=start, end=end)
    rec = result.recorder
    assert len(rec.equity_rows) == len(rec.probe_equity) > 1000
    assert rec.equity_rows == rec.probe_equity
    # the state rows' inputs (spot, mark, prediction, margin state, legs) as read live, hour by hour
    derived = [(r[0], r[1], r[2], r[3], r[5], r[6], r[7]) for r in rec.state_rows]
    live = [(ts, sym, px, mark, rate, qs, qp) for ts, sym, px, mark, rate, _k, qs, qp in rec.probe_state]
    assert derived == live
    wallets = {k: st.wallet for k, st in enumerate(rec._margin_seen) if st.side != 0}
    assert [r[8] for r in rec.state_rows] == [wallets.get(p[5]) for p in rec.probe_state]
    assert sum(1 for r in rec.state_rows if r[6] != 0) > 100  # legs held for a good part of it
    if name == "liquidations":
        assert result.ledger.liquidations
    else:
        assert result.ledger.transfers
