"""``basisbot.sim.main(args)`` (what ``basisbot sim`` calls): serves until SIGTERM, exits 0; bad input exits 2."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from basisbot.sim import SimServer
from tests.helpers.sim_venue import DATA, config

SCRIPT = """
import argparse, sys
from basisbot.sim import add_sim_arguments, main
p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--data", required=True)
p.add_argument("--speed", type=float, default=60.0)
p.add_argument("--start")
p.add_argument("--api-key")
p.add_argument("--api-secret")
add_sim_arguments(p)
sys.exit(main(p.parse_args(sys.argv[1:])))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_main_serves_until_sigterm():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "--port", str(port), "--data", str(DATA), "--start", "2023-01-01",
         "--symbols", "BTCUSDT", "--speed", "3600", "--fault-freeze-mark"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/fapi/v1/time", timeout=5) as r:
            t = json.loads(r.read())["serverTime"]
        assert 1672531200000 <= t < 1672531200000 + 3_600_000  # replay time, not wall time
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/state", timeout=5) as r:
            st = json.loads(r.read())
        assert st["symbols"] == ["BTCUSDT"] and st["faults"]["freeze_mark"] == ["*"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()


def test_main_refuses_bad_input():
    out = subprocess.run([sys.executable, "-c", SCRIPT, "--port", str(_free_port()), "--data", str(DATA),
                          "--symbols", "DOGEUSDT"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "DOGEUSDT" in out.stderr


def test_start_outside_the_data_is_refused():
    async def start():
        await SimServer(config(start="2030-01-01")).start()

    with pytest.raises(ValueError, match="outside the data"):
        asyncio.run(start())
