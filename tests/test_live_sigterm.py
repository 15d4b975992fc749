"""SIGTERM stops the node within a bounded time in every state, tested on a real process: the node runs in
a subprocess (`run_node` with the CLI's watchdog on) against the local venue, with a strategy that is stuck:

- a pair that never completes: the drain gives up after its timeout, the node stops, says what was left, exit 1;
- a stop that hangs in a handler (the event loop itself stuck): the watchdog thread ends the process at the hard
  deadline (drain + margin), says what was left, exit 1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from basisbot.sim import SimServer
from tests.helpers.live_node import sim_config, subprocess_env, write_config

ROOT = Path(__file__).resolve().parents[1]

NODE = textwrap.dedent("""
    import asyncio, sys, time
    from basisbot.live.node import NodeOptions, run_node
    from basisbot.config.loading import load_settings
    from basisbot.strategies.basis_carry import BasisCarryStrategy

    MODE = sys.argv[2]

    class Stuck(BasisCarryStrategy):
        def _busy(self):
            return True  # a pair that never completes

        def on_stop(self):
            if MODE == "hang":
                time.sleep(600)  # the event loop is stuck in a handler
            super().on_stop()

    settings = load_settings(sys.argv[1], env_file=None)
    opts = NodeOptions(strategy_class=Stuck, exit_on_deadline=True, drain_timeout_s=2.0, stop_margin_s=4.0,
                       log_level="WARNING")
    sys.exit(asyncio.run(run_node(settings, "live", opts)))
""")


async def _run(tmp_path, mode: str) -> tuple[int, float, str]:
    async with SimServer(sim_config(speed=1.0, symbols=["BTCUSDT"])) as sim:
        cfg = write_config(tmp_path, sim.url, symbols={"BTCUSDT": {"entry_apr": 1000.0, "exit_apr": 999.0}})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", NODE, str(cfg), mode, cwd=str(ROOT), env=subprocess_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            if not line:
                break
            out.append(line.decode(errors="replace"))
            if "basisbot live: running" in out[-1]:
                break
        assert any("running" in line for line in out), "".join(out[-30:])
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stdout.read(), 60)
        rc = await proc.wait()
        return rc, time.monotonic() - t0, "".join(out) + rest.decode(errors="replace")


def test_sigterm_with_a_pair_that_never_completes_stops_after_the_drain(tmp_path):
    rc, took, out = asyncio.run(_run(tmp_path, "busy"))
    assert rc == 1, out[-2000:]
    assert took < 2.0 + 4.0 + 3.0, f"stopped after {took:.1f}s"
    assert "pairs still in flight for ['BTCUSDT']" in out


@pytest.mark.slow  # long end-to-end run: `pytest -m slow` (the default run keeps the invariant checks)
def test_sigterm_with_a_stuck_event_loop_exits_at_the_hard_deadline(tmp_path):
    rc, took, out = asyncio.run(_run(tmp_path, "hang"))
    assert rc == 1, out[-2000:]
    assert 2.0 + 4.0 - 0.5 <= took < 2.0 + 4.0 + 3.0, f"exited after {took:.1f}s"
    assert "did not stop within" in out and "Left: BTCUSDT" in out
