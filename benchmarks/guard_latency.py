"""Mark-price update → guard decision latency, in process (target p99 < 1 ms).

    .venv/bin/python benchmarks/guard_latency.py [--symbol SOLUSDT] [--start 2023-01-01] [--end 2024-01-01]

Runs a real backtest (5x isolated, always in, guard on: SOL's 2023 rally keeps the guard busy) with the mark path
timed with perf_counter_ns: from the mark reaching the mark watch (`basisbot.core.mark_watch`, the one handler of the
symbol's marks) to the guard's decision made: the watch's band tests when the mark is inside the guard's quiet band
(the strategy is not called at all), else the quiet check or the full ladder evaluation in the strategy.
Reported over every mark with an open perp leg, over the marks where the ladder was evaluated (distance near the
thresholds), over those where it acted, and, for the latter, the whole handler including executing the action (in a
backtest the venue applies a margin transfer synchronously). The venue module's liquidation check, which the watch
runs first in a backtest (live has none), is included when the watch calls it (after a change to the position).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import basisbot.strategies.basis_carry as carry_strategy
from basisbot.backtest import run as bt_run
from basisbot.config.loading import load_settings
from basisbot.core import guard, mark_watch
from basisbot.strategies.basis_carry import BasisCarryStrategy

SAMPLES: dict[str, list[int]] = {"decision (all marks)": [], "decision (ladder evaluated)": [],
                                  "decision (action taken)": [], "handler incl. executing the action": []}
_decided_at = [0]
_watch_t0 = [0]  # when the mark reached the watch
_strategy_called = [False]  # whether the watch called the strategy for this mark
_carries: list = []  # the timed strategy (one symbol)
_evaluate = guard.evaluate


def timed_evaluate(*args, **kwargs):
    out = _evaluate(*args, **kwargs)
    _decided_at[0] = time.perf_counter_ns()
    return out


class TimedWatch(mark_watch.MarkWatch):
    """`MarkWatch.on_mark` as it is, timed from the mark's arrival. A mark the strategy is not called for (inside its
    band) was decided by the watch's own tests."""

    def on_mark(self, mark) -> None:
        _watch_t0[0] = t0 = time.perf_counter_ns()
        _strategy_called[0] = False
        super().on_mark(mark)
        t1 = time.perf_counter_ns()
        if not _strategy_called[0]:
            st = _carries[0].guard.state if _carries else None
            if st is not None and st.side != 0:
                SAMPLES["decision (all marks)"].append(t1 - t0)


class TimedCarry(BasisCarryStrategy):
    def on_start(self) -> None:
        super().on_start()
        _carries.append(self)

    def _on_mark(self, update, mark: float) -> None:
        _strategy_called[0] = True
        n_guard = len(self.log_.guard)
        _decided_at[0] = 0
        t0 = _watch_t0[0]
        self._t_quiet = 0
        super()._on_mark(update, mark)
        t_end = time.perf_counter_ns()
        acted = len(self.log_.guard) != n_guard
        if _decided_at[0]:
            d = _decided_at[0] - t0
            SAMPLES["decision (ladder evaluated)"].append(d)
            if acted:
                SAMPLES["decision (action taken)"].append(d)
                SAMPLES["handler incl. executing the action"].append(t_end - t0)
        elif self._t_quiet:
            d = self._t_quiet - t0
        elif self.guard.state is not None and self.guard.state.side != 0:
            d = t_end - t0
        else:
            return  # no open perp leg: nothing for the guard to decide
        SAMPLES["decision (all marks)"].append(d)

    def _run_guard(self) -> None:
        super()._run_guard()
        self._t_quiet = time.perf_counter_ns()  # quiet check done (or full evaluation, timed by the wrapper)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbol", default="SOLUSDT")
    ap.add_argument("--start", default="2023-01-01")
    ap.add_argument("--end", default="2024-01-01")
    a = ap.parse_args()
    import tempfile
    from pathlib import Path

    cfg = Path(tempfile.mkdtemp()) / "bench.toml"
    cfg.write_text(f"""
[backtest]
data = "{Path(__file__).resolve().parents[1] / 'backtests/data/binance'}"
start = {a.start}
end = {a.end}
stream = "every_path"  # every mark, as live receives them (the gated stream leaves out marks nothing acts on)
[symbols.{a.symbol}]
notional_usdt = 20000
leverage = 5
entry_apr = -1000
exit_apr = -2000
""")
    bt_run.BasisCarryStrategy = TimedCarry  # the runner builds this class
    mark_watch.MarkWatch = TimedWatch  # the watch the venue module and the strategy find
    carry_strategy.guard.evaluate = timed_evaluate
    result = bt_run.run_backtest(load_settings(cfg), config_path=cfg)
    s = result.strategies[a.symbol]
    print(f"{a.symbol} {a.start} → {a.end}: {len(SAMPLES['decision (all marks)']):,} marks with a perp leg, {len(s.log_.guard)} guard actions, "
          f"{sum(1 for r in result.ledger.liquidations)} liquidations")
    for name, xs in SAMPLES.items():
        if xs:
            arr = np.array(xs) / 1000.0
            print(f"  {name:<36} n={len(arr):>7,}  p50 {np.percentile(arr, 50):7.1f} µs  p99 {np.percentile(arr, 99):7.1f} µs"
                  f"  max {arr.max():8.1f} µs")
    print("  target: p99 < 1000 µs")


if __name__ == "__main__":
    main()
