"""Backtest throughput: the full carry strategy (with our funding/margin modules and the recorder) against the bare
engine with an idle strategy, on the same data, in one process. Prints events/s for both and their ratio; then the
same carry backtest from the gated stream (`basisbot.backtest.stream`: a bar's intra-hour path only where something
could act inside it) against every path replayed: events and engine time of each (before and after).

    .venv/bin/python benchmarks/backtest_throughput.py [--config config/basisbot.toml] [--repeat 3]

Target: ratio >= 0.8 on the median of 3 runs. Each side is timed around `engine.run()` only; the sides run
alternately (bare, full, gated, bare, full, ...) so that load from other processes falls on all alike; the median of
the --repeat runs of each side is reported (and the min), the ratio is of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
from nautilus_trader.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy

from basisbot.backtest.run import build_engine, prepare, run_prepared
from basisbot.config.loading import load_settings


class IdleStrategy(Strategy):
    """Subscribes to what the carry strategies subscribe to in a backtest (marks, predicted funding, spot bars; not
    trade ticks, which they read from the cache), and does nothing with it."""

    def __init__(self, perp_ids, bar_types):
        super().__init__(StrategyConfig(strategy_id="Idle-000"))
        self._perp_ids, self._bar_types = perp_ids, bar_types

    def on_start(self) -> None:
        for p in self._perp_ids:
            self.subscribe_mark_prices(p)
            self.subscribe_funding_rates(p)
        for b in self._bar_types:
            self.subscribe_bars(b)


def bare_run(p) -> float:
    from basisbot.backtest.feed import bar_type

    engine, _ = build_engine(p, simulate_perp=False)
    engine.add_strategy(IdleStrategy([i.id for i in p.perp_insts.values()], [bar_type(i) for i in p.spot_insts.values()]))
    t0 = time.perf_counter()
    engine.run(end=pd.Timestamp(p.last.value + 60_000_000_000, tz="UTC"))
    dt = time.perf_counter() - t0
    engine.dispose()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config/basisbot.toml")
    ap.add_argument("--start")
    ap.add_argument("--end")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    p = prepare(load_settings(a.config), start=a.start, end=a.end)
    n = len(p.events)
    bares, fulls, gateds = [], [], []
    gated_events = 0
    for _ in range(a.repeat):
        bares.append(bare_run(p))
        fulls.append(run_prepared(p, full_paths=True).run_seconds)
        r = run_prepared(p, full_paths=False)
        gateds.append(r.run_seconds)
        gated_events = r.events
    bare, full, gated = statistics.median(bares), statistics.median(fulls), statistics.median(gateds)
    print(f"events: {n:,} ({', '.join(p.order)}, {p.first.date()} → {p.last.date()}); median of {a.repeat} runs")
    print(f"bare engine + idle strategy: {n / bare:12,.0f} events/s  ({bare:.2f} s; best {n / min(bares):,.0f} events/s)")
    print(f"full carry strategy:         {n / full:12,.0f} events/s  ({full:.2f} s; best {n / min(fulls):,.0f} events/s)")
    print(f"ratio full/bare:             {bare / full:12.2f}   (target >= 0.80; of the best runs {min(bares) / min(fulls):.2f})")
    print("runs (bare, full; their ratio):  " + "  ".join(f"{b:.2f} s, {f:.2f} s; {b / f:.2f}"
                                                         for b, f in zip(bares, fulls)))
    print(f"every path replayed (before): {n:>9,} events, engine {full:.2f} s (best {min(fulls):.2f} s)")
    print(f"gated stream (after):         {gated_events:>9,} events, engine {gated:.2f} s (best {min(gateds):.2f} s); "
          f"{gated_events / n:.0%} of the events, {gated / full:.0%} of the engine time")


if __name__ == "__main__":
    main()
