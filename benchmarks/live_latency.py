"""Live-path latency against the local venue (in process, 127.0.0.1), through the real ccxt.pro clients and TradingNode.

    .venv/bin/python benchmarks/live_latency.py [--seconds 30] [--cycles 40] [--speed 20]

Prints p50 / p99 / max of:

- mark: markPrice websocket frame handed to ccxt (`handle_message`) -> `BasisCarryStrategy.on_mark_price` returned
  (ccxt parsing, our data client, nautilus' data engine queue, the strategy's guard);
- leg submission gap: the two legs of a pair, |perp HTTP request start - spot HTTP request start| (the strategy sends
  them back to back; each goes out on its own exchange client) — target p99 < 5 ms;
- leg fill gap: |perp OrderFilled generated - spot OrderFilled generated| (from the user streams / REST responses);
- strategy submit -> HTTP request start, per leg.

The venue replays 2022-03-01 at `--speed` replay seconds per wall second (so the 1 s mark stream brings ~speed marks
per wall second); the strategy enters at once (entry_apr -1000) and the benchmark makes it exit as soon as it is in
carry, `--cycles` times (4 orders per cycle).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from basisbot.live.node import NodeOptions
from basisbot.sim import SimServer
from basisbot.strategies.basis_carry import BasisCarryStrategy, Phase
from tests.helpers.live_node import RunningNode, node_settings, sim_config, until

LOG_LEVEL = "ERROR"
ARRIVALS: dict[int, int] = {}  # venue event time (ms) -> perf_counter_ns of the frame
MARK_TS: dict[int, int] = {}  # ts_event -> venue ms
HANDLED: list[tuple[int, int]] = []  # (ts_event, perf_counter_ns when the handler returned)
SUBMITS: dict[str, tuple[int, str, int]] = {}  # client order id -> (pair number, leg, perf_counter_ns at submit)
SENT: dict[str, int] = {}
FILLED: dict[str, int] = {}


class BenchCarry(BasisCarryStrategy):
    pairs = 0
    cycles_left = 0

    def on_mark_price(self, update) -> None:
        super().on_mark_price(update)
        HANDLED.append((update.ts_event, time.perf_counter_ns()))

    def _start_pair(self, intent, spot, perp) -> None:
        BenchCarry.pairs += 1
        super()._start_pair(intent, spot, perp)

    def submit_order(self, order, *args, **kwargs) -> None:
        leg = "spot" if order.instrument_id == self.spot_id else "perp"
        SUBMITS[order.client_order_id.value] = (BenchCarry.pairs, leg, time.perf_counter_ns())
        super().submit_order(order, *args, **kwargs)

    def _on_pair_done(self) -> None:
        super()._on_pair_done()
        if self.phase is Phase.IN_CARRY and BenchCarry.cycles_left > 0:
            BenchCarry.cycles_left -= 1
            self._exit("benchmark: exit at once")


def pct(values, q):
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def row(name: str, ns: list[int]) -> str:
    us = [v / 1000 for v in ns]
    return f"{name:<48} {len(us):>6} {pct(us, 50):>10.0f} {pct(us, 99):>10.0f} {max(us) if us else float('nan'):>10.0f}"


async def main(seconds: float, cycles: int, speed: float) -> None:
    BenchCarry.cycles_left = cycles
    async with SimServer(sim_config(start="2022-03-01T00:00:00Z", speed=speed)) as sim:
        folder = Path(tempfile.mkdtemp(prefix="basisbot-latency-"))
        settings = node_settings(folder, sim.url, symbols={"BTCUSDT": {
            "notional_usdt": 1000.0, "leverage": 3, "entry_apr": -1000.0, "exit_apr": -2000.0,
            "min_hold_intervals": 0}}, schedule={"blackout_before_s": 0, "blackout_after_s": 0,
                                                 "decision_before_s": 0, "booking_after_s": 1})
        opts = NodeOptions(log_level=LOG_LEVEL, venue_speed=speed, strategy_class=BenchCarry)
        run = RunningNode(settings, "live", opts)

        # the raw frame hook must be in place before ccxt opens the websocket (it binds handle_message then)
        from basisbot.live import node as node_mod

        orig_build = node_mod.BasisNode.build

        async def build(self):
            await orig_build(self)
            ex = self.session.perp
            inner = ex.handle_message

            def handle_message(client, message):
                if isinstance(message, dict) and message.get("e") == "markPriceUpdate":
                    ARRIVALS[int(message["E"])] = time.perf_counter_ns()
                return inner(client, message)

            ex.handle_message = handle_message
            self.data_clients["perp"].on_mark_received = lambda iid, venue_ms, ts, recv: MARK_TS.__setitem__(
                ts, int(venue_ms))
            for ec in self.exec_clients.values():
                ec.on_send = lambda cid, t: SENT.__setitem__(cid, t)
                ec.on_fill = lambda cid, t: FILLED.__setitem__(cid, t)

        node_mod.BasisNode.build = build
        try:
            async with run:
                t0 = time.monotonic()
                await until(lambda: BenchCarry.cycles_left == 0 or time.monotonic() - t0 > seconds, seconds + 5,
                            interval=0.2)
                await asyncio.sleep(max(0.0, seconds - (time.monotonic() - t0)))
        finally:
            node_mod.BasisNode.build = orig_build

    mark = []
    for ts, done in HANDLED:
        venue_ms = MARK_TS.get(ts)
        if venue_ms is not None and venue_ms in ARRIVALS:
            mark.append(done - ARRIVALS[venue_ms])
    by_pair: dict[int, dict[str, str]] = {}
    for cid, (pair, leg, _) in SUBMITS.items():
        by_pair.setdefault(pair, {})[leg] = cid
    send_gap, fill_gap, submit_to_send = [], [], []
    for legs in by_pair.values():
        if len(legs) == 2 and all(c in SENT for c in legs.values()):
            send_gap.append(abs(SENT[legs["perp"]] - SENT[legs["spot"]]))
            if all(c in FILLED for c in legs.values()):
                fill_gap.append(abs(FILLED[legs["perp"]] - FILLED[legs["spot"]]))
    for cid, (_, _, t) in SUBMITS.items():
        if cid in SENT:
            submit_to_send.append(SENT[cid] - t)
    print(f"live latency against the local venue (speed {speed:g}x, {len(by_pair)} pairs, "
          f"{len(mark)} marks)")
    print(f"{'':<48} {'n':>6} {'p50 us':>10} {'p99 us':>10} {'max us':>10}")
    print(row("mark frame -> strategy handler done", mark))
    print(row("leg submission gap (HTTP request starts)", send_gap))
    print(row("leg fill gap (OrderFilled generated)", fill_gap))
    print(row("strategy submit -> HTTP request start", submit_to_send))
    p99 = pct([v / 1000 for v in send_gap], 99)
    print(f"leg-submission gap p99 {p99 / 1000:.2f} ms: target < 5 ms {'met' if p99 < 5000 else 'NOT met'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--cycles", type=int, default=40)
    ap.add_argument("--speed", type=float, default=20.0)
    a = ap.parse_args()
    asyncio.run(main(a.seconds, a.cycles, a.speed))
