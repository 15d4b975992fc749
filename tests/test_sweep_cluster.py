"""`basisbot sweep --address` joins an existing Ray cluster: a head started here with `ray start --head` on 127.0.0.1
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps every Ray socket on loopback), token authentication on, free ports picked
for every Ray port, stopped afterwards whatever happens. Ray traffic goes to 127.0.0.1 only."""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"
BIN = Path(sys.executable).parent

CONFIG = f"""
[backtest]
data = "{DATA}"
start = 2023-11-01
end = 2023-12-01
[symbols.BTCUSDT]
notional_usdt = 20000
leverage = 3
entry_apr = 0.05
exit_apr = 0.0
min_hold_intervals = 90
"""


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def group_pids(pgid: int) -> set[int]:
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.add(int(stat.parent.name))
    return pids


def listeners_of(pids: set[int]) -> list[str]:
    """Local addresses that these processes listen on (TCP), from `ss`."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            found.append(line.split()[3])
    return found


def stop_group(proc: subprocess.Popen) -> None:
    """The head and everything it started share its process group: SIGTERM, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_pids(proc.pid):
            time.sleep(0.2)
        if not group_pids(proc.pid):
            break
    proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to check the listening addresses")
def test_sweep_on_a_ray_head_on_loopback_with_token_auth(tmp_path):
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    gcs, agent_http, agent_grpc, metrics, runtime_env, nm, om = free_ports(7)
    lo = free_ports(1)[0]
    temp = tempfile.mkdtemp(prefix="bbrt-", dir="/tmp")  # short: Ray's socket paths live under it
    log = (tmp_path / "head.log").open("w")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
         "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp,
         "--dashboard-agent-listen-port", str(agent_http),
         "--dashboard-agent-grpc-port", str(agent_grpc), "--metrics-export-port", str(metrics),
         "--runtime-env-agent-port", str(runtime_env), "--node-manager-port", str(nm),
         "--object-manager-port", str(om), "--min-worker-port", str(lo), "--max-worker-port", str(lo + 40)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in (tmp_path / "head.log").read_text():
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Ray head did not start in 120 s"
            time.sleep(0.5)
        assert "Token authentication is disabled" not in (tmp_path / "head.log").read_text()

        cfg, grid, out = tmp_path / "c.toml", tmp_path / "g.toml", tmp_path / "out"
        cfg.write_text(CONFIG)
        grid.write_text('[grid]\n"symbols.*.leverage" = [2, 4]\n')
        cmd = [str(BIN / "basisbot"), "sweep", "--config", str(cfg), "--env-file", str(tmp_path / "none.env"),
               "--grid", str(grid), "--out", str(out), "--address", f"127.0.0.1:{gcs}"]
        # without the token the cluster refuses the driver
        no_token = {k: v for k, v in env.items() if k not in ("RAY_AUTH_TOKEN_PATH",)}
        no_token["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
        refused = subprocess.run(cmd + ["--quiet"], env=no_token, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 1 and "could not join the Ray cluster" in refused.stderr
        assert not (out / "results.csv").exists()

        ran = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert "2/2" in ran.stderr  # the progress bar
        with (out / "results.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert [r["symbols.*.leverage"] for r in rows] == ["2", "4"] and all(r["status"] == "ok" for r in rows)
        for r in rows:
            summary = json.loads((out / r["folder"] / "summary.json").read_text())
            assert float(r["total.net_pnl"]) == summary["total"]["net_pnl"] and summary["total"]["entries"] == 1

        # every socket of the cluster is on loopback
        addrs = listeners_of(group_pids(head.pid))
        loopback = re.compile(r"^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]):\d+$")
        assert addrs and all(loopback.match(a) for a in addrs), addrs
    finally:
        stop_group(head)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
    assert head.returncode is not None
