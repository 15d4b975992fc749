"""Error of the causal funding predictors against the settled rates, from the backtest's own feed.

    .venv/bin/python benchmarks/predictor_error.py [--data backtests/data/binance]

For every settlement, the prediction the strategy last saw before it is compared with the rate that settled:
- `premium`: Binance's formula on the hours' premiums, bad prints kept out (`basisbot.core.data_quality`);
- `premium_raw`: the same with every print (the predictor before the print filter);
- `last_settled`: persistence;
- `expected`: what the carry rules act on, the prediction blended with the settled level (`carry.FundingMemory`,
  default weight 0.7, half-life 21 settlements), per interval.
The sign hit rate is what decides entries and exits: how often the sign of the estimate is the settled one.
"""

from __future__ import annotations

import argparse

import numpy as np

from basisbot.backtest.feed import build_feed
from basisbot.core import carry
from basisbot.data import market_data
from basisbot.nautilus.instruments import make_perp, make_spot
from basisbot.venues import get_profile
from basisbot.venues.binance import reference


def predicted_and_settled(data, symbol: str, method: str, print_filter: bool = True) -> tuple[np.ndarray, np.ndarray]:
    binance = get_profile("binance")
    spot = make_spot(symbol, 0.001, 0.001, profile=binance)
    perp = make_perp(symbol, 3, reference.brackets()[symbol], 0.0005, 0.0002, profile=binance)
    feed = build_feed(data, spot, perp, method, intrabar_step=0.0, print_filter=print_filter, funding=binance.funding)
    pts = feed.predictions["ts_ns"].to_numpy()
    preds = feed.predictions["predicted_rate"].to_numpy()
    pred, settled = [], []
    for sim_ts, _exact, rate in feed.settlements:
        i = pts.searchsorted(sim_ts, side="left") - 1
        if i >= 0:
            pred.append(preds[i])
            settled.append(rate)
    return np.array(pred), np.array(settled)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="backtests/data/binance")
    a = ap.parse_args()
    print(f"{'symbol':<9} {'method':<13} {'n':>5} {'MAE':>10} {'RMSE':>10} {'bias':>10} {'sign ok':>8}")
    for symbol in market_data.available_symbols(a.data):
        data = market_data.load_symbol(a.data, symbol, allow_perp_gaps=True)
        rows = {m: predicted_and_settled(data, symbol, m) for m in ("premium", "last_settled")}
        rows["premium_raw"] = predicted_and_settled(data, symbol, "premium", print_filter=False)
        pred, settled = rows["premium"]
        memory, blended = carry.FundingMemory(21.0), []
        for p, r in zip(pred, settled):  # the level known before this settlement, blended with its prediction
            blended.append(p if memory.hourly is None else 0.3 * p + 0.7 * memory.hourly * 8)
            memory.observe(p, 8.0)  # per interval of 8 h (a ratio: the interval cancels for 8-hourly symbols)
        rows["expected"] = (np.array(blended), settled)
        for method in ("premium", "premium_raw", "last_settled", "expected"):
            pred, settled = rows[method]
            e = pred - settled
            sign = np.mean(np.sign(pred) == np.sign(settled))
            print(f"{symbol:<9} {method:<13} {len(e):>5} {np.abs(e).mean():>10.2e} {np.sqrt((e ** 2).mean()):>10.2e} "
                  f"{e.mean():>10.2e} {sign:>8.1%}")


if __name__ == "__main__":
    main()
