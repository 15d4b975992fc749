"""Error of the causal funding predictors against the settled rates, from the backtest's own feed.

    .venv/bin/python benchmarks/predictor_error.py [--exchange binance|okx] [--data DIR] [--start D --end D]

`--exchange` picks the venue profile (its funding formula, cap and the closed period its predictor reads: OKX's lag
of 2 periods on the bundled data) and, without `--data`, its bundled data (backtests/data/<exchange>).

For every settlement, the prediction the strategy last saw before it is compared with the rate that settled:
- `premium`: the venue's formula on the hours' premiums, bad prints kept out (`basisbot.core.data_quality`);
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


def predicted_and_settled(data, symbol: str, method: str, print_filter: bool = True,
                          exchange: str = "binance") -> tuple[np.ndarray, np.ndarray]:
    venue = get_profile(exchange)
    tables = venue.bundled_tiers()
    # the predictor reads no tiers: a symbol without bundled ones borrows another's for its instrument
    table = tables[symbol] if symbol in tables else next(iter(tables.values()))
    spot = make_spot(symbol, 0.001, 0.001, profile=venue)
    perp = make_perp(symbol, 3, table, 0.0005, 0.0002, profile=venue)
    feed = build_feed(data, spot, perp, method, intrabar_step=0.0, print_filter=print_filter, funding=venue.funding)
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
    ap.add_argument("--exchange", default="binance", help="venue profile (default binance)")
    ap.add_argument("--data", default=None, help="data folder (default backtests/data/<exchange>)")
    ap.add_argument("--start", default=None, help="first day (YYYY-MM-DD), default: the data's first")
    ap.add_argument("--end", default=None, help="day after the last (YYYY-MM-DD), default: the data's end")
    ap.add_argument("--symbols", default=None, help="comma-separated, default: every symbol of the folder")
    a = ap.parse_args()
    data_dir = a.data or f"backtests/data/{a.exchange}"
    symbols = a.symbols.split(",") if a.symbols else market_data.available_symbols(data_dir)
    ex = get_profile(a.exchange).data_suffix
    print(f"{'symbol':<9} {'method':<13} {'n':>5} {'MAE':>10} {'RMSE':>10} {'bias':>10} {'sign ok':>8}")
    for symbol in symbols:
        data = market_data.load_symbol(data_dir, symbol, a.start, a.end, allow_perp_gaps=True, exchange=ex)
        rows = {m: predicted_and_settled(data, symbol, m, exchange=a.exchange) for m in ("premium", "last_settled")}
        rows["premium_raw"] = predicted_and_settled(data, symbol, "premium", print_filter=False, exchange=a.exchange)
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
