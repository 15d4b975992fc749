"""OKX funding on the real bundled settlements: the formula and caps, every settlement's interval, and the causal
predictor's error."""

from pathlib import Path

import numpy as np
import pytest

from basisbot.data.market_data import load_symbol
from basisbot.venues.okx import funding
from basisbot.venues.okx.funding import OkxFundingPredictor

OKX = Path(__file__).resolve().parents[1] / "backtests" / "data" / "okx"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "AVAXUSDT")


@pytest.fixture(scope="module")
def data():
    return {s: load_symbol(OKX, s, exchange="okx") for s in SYMBOLS}


def test_formula_and_caps():
    assert funding.rate_from_premium(0.0003) == 0.0003  # interest 0: the rate is the average premium
    assert funding.rate_from_premium(0.01, 8, funding.cap("BTCUSDT")) == 0.00375
    assert [funding.cap(s) for s in SYMBOLS] == [0.00375, 0.0075, 0.015, 0.0075]


def test_settled_rates_respect_the_caps_except_sols_raised_cap(data):
    for s, d in data.items():
        over = d.funding[d.funding.rate.abs() > funding.cap(s) + 1e-12]
        if s == "SOLUSDT":  # OKX raised SOL's cap during the FTX collapse: -4.5 %, -6 %, -4.5 %, -2.9 %
            assert [str(t)[:16] for t in over.ts] == ["2022-11-10 08:00", "2022-11-10 16:00", "2022-11-11 00:00",
                                                     "2022-11-11 08:00"]
            assert (d.funding.rate == -0.015).sum() == 3  # at the published 1.5 % cap
        else:
            assert over.empty


def test_every_settlement_interval_is_read(data):
    for s, d in data.items():
        f = d.funding
        assert len(f) == 2013
        ts = f.ts.astype("int64").to_numpy()
        assert funding.settlement_intervals(ts) == f.interval_hours.tolist()
        # 8-hourly except the 2022-12-19 settlement made at 02:00 (10 h after the previous, 6 h before the next)
        odd = f[f.interval_hours != 8]
        assert [(str(t)[:16], h) for t, h in zip(odd.ts, odd.interval_hours)] == [
            ("2022-12-19 02:00", 10.0), ("2022-12-19 08:00", 6.0)]


def _predictor_mae(d, symbol, lag):
    """Replay as the backtest feed does: each bar's mark premium over spot closes at open + 1 h; a settlement at T
    is seen after the bars that closed by T."""
    p = OkxFundingPredictor(cap=funding.cap(symbol), lag_periods=lag)
    bars = d.bars
    prem = ((bars.mark_close - bars.spot_close) / bars.spot_close).to_numpy()
    close_ns = bars.index.astype("int64").to_numpy() + funding.HOUR_NS
    fts = d.funding.ts.astype("int64").to_numpy()
    i, errs = 0, []
    for t, rate, h in zip(fts, d.funding.rate, d.funding.interval_hours):
        while i < len(close_ns) and close_ns[i] <= t:
            p.on_premium(prem[i])
            i += 1
        guess = p.predict()
        if guess is not None:
            errs.append(abs(guess - rate))
        p.on_settlement(rate, h)
    return float(np.mean(errs))


def test_predictor_error_on_real_settlements(data):
    mae = {s: {lag: _predictor_mae(d, s, lag) for lag in (0, 1, 2)} for s, d in data.items()}
    for s in SYMBOLS:
        # the bundled rates follow the premium of the period two back: lag 2 is the best of the three everywhere
        assert mae[s][2] < mae[s][1] and mae[s][2] < mae[s][0], (s, mae[s])
    assert mae["BTCUSDT"][2] == pytest.approx(1.12e-4, rel=0.03)
    assert mae["SOLUSDT"][2] == pytest.approx(3.96e-4, rel=0.03)


def test_predictor_is_causal():
    p = OkxFundingPredictor(cap=0.01, lag_periods=2)
    assert p.predict() is None
    for x in (0.001, 0.003):
        p.on_premium(x)
    p.on_settlement(0.0005, 8)
    assert p.predict() == 0.0005  # one closed period only: the last settled rate
    p.on_premium(0.02)
    p.on_settlement(0.0007, 8)
    assert p.predict() == pytest.approx(0.002)  # the period two back
    p.on_premium(0.5)  # the current period does not move a lag-2 prediction
    assert p.predict() == pytest.approx(0.002)
    p.on_settlement(0.0009, 8)
    assert p.predict() == 0.01  # 0.02 clamped to the cap
    with pytest.raises(ValueError, match="lag_periods"):
        OkxFundingPredictor(cap=0.01, lag_periods=3)
