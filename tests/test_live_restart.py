"""`python -m basisbot.live live --config F` in a subprocess against the local venue: SIGKILL in the middle of an entry,
restart, and the strategy resumes from what the exchange holds (both legs hedged, no client order id sent twice);
SIGINT stops it cleanly (exit status 0). Also the command's refusals (exit status 2)."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import sys
import time
from pathlib import Path

import ccxt.pro as ccxtpro
import pytest

from basisbot.exchange.ccxt_setup import SPOT_CLIENT_OPTIONS, use_local_venue
from basisbot.sim import SimServer
from tests.helpers.live_node import sim_config, subprocess_env, write_config
from tests.helpers.sim_venue import KEY, SECRET, admin, state

ROOT = Path(__file__).resolve().parents[1]
SYM = "BTCUSDT"
T_SETTLE = 1646035200001  # 2022-02-28 08:00:00.001Z


class Bot:
    """The bot as an operator runs it, its output collected line by line."""

    def __init__(self, config: Path, env: dict):
        self.config, self.env = config, env
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "basisbot.live", "live", "--config", str(self.config), "--env-file", "/nonexistent",
            cwd=str(ROOT), env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                return
            self.lines.append(line.decode(errors="replace").rstrip())

    async def wait_for(self, pattern: str, timeout: float) -> str:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if rx.search(line):
                    return line
            seen = len(self.lines)
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.02)
        tail = "\n".join(self.lines[-30:])
        raise AssertionError(f"{pattern!r} not seen within {timeout}s (exit {self.proc.returncode}); output:\n{tail}")

    async def wait(self, timeout: float) -> int:
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return rc

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, sig)


async def venue_client_ids(sim) -> list[str]:
    spot = ccxtpro.binance({"apiKey": KEY, "secret": SECRET, "options": dict(SPOT_CLIENT_OPTIONS)})
    fut = ccxtpro.binanceusdm({"apiKey": KEY, "secret": SECRET})
    try:
        for ex in (spot, fut):
            use_local_venue(ex, sim.url)
        orders = await spot.fetch_orders("BTC/USDT") + await fut.fetch_orders("BTC/USDT:USDT")
        return [o["clientOrderId"] for o in orders]
    finally:
        await spot.close()
        await fut.close()


def test_sigkill_mid_entry_then_restart_resumes_hedged_without_resending(tmp_path):
    """The spot leg fills, the perp leg's send fails ambiguously (a 503 from the gateway: the venue never saw it) and
    the bot is SIGKILLed while it is still asking the exchange about that order. On restart the exchange holds the
    spot leg only; the journal's pair is an entry in flight: the strategy waits out the pair's timeout + recvWindow,
    then completes the entry with a NEW perp order. A second SIGKILL in carry and restart: both legs reconciled,
    nothing sent. SIGINT: clean stop, exit status 0, still hedged."""

    async def scenario():
        # entries are blocked until T + 8 s (blackout), so the fault is in place when the entry is sent
        async with SimServer(sim_config(start="2022-02-28T07:59:57Z")) as sim:
            cfg = write_config(tmp_path, sim.url, symbols={SYM: {
                "notional_usdt": 2000.0, "leverage": 3, "entry_apr": -1000.0, "exit_apr": -2000.0,
                "leg_timeout_s": 3.0, "slippage_band": 0.01}},
                schedule={"decision_before_s": 10, "blackout_before_s": 5, "blackout_after_s": 8})
            env = subprocess_env()
            bot = Bot(cfg, env)
            await bot.start()
            await bot.wait_for(r"basisbot live: running BTCUSDT", 90)
            await admin(sim, "/admin/faults", {"fail_next": {"count": 1, "status": 503, "path_prefix": "/fapi/v1/order"}})
            await bot.wait_for(r"BTCUSDT: enter:", 60)
            line = await bot.wait_for(r"O-[\w-]+: outcome unknown", 5)
            first_perp_cid = re.search(r"(O-[\w-]+): outcome unknown", line).group(1)
            await asyncio.sleep(0.3)
            bot.kill(signal.SIGKILL)  # mid-entry: spot filled, perp outcome still being looked up
            assert await bot.wait(10) == -signal.SIGKILL
            st = await state(sim)
            held = st["spot"]["BTC"]["free"]
            assert held > 0 and st["futures"]["positions"] == []

            bot2 = Bot(cfg, env)
            await bot2.start()
            await bot2.wait_for(r"basisbot live: running BTCUSDT", 90)
            await bot2.wait_for(r"resume: .*completing the entry with the perp leg", 20)
            for _ in range(100):  # hedged at the venue
                st = await state(sim)
                if st["futures"]["positions"]:
                    break
                await asyncio.sleep(0.1)
            (pos,) = st["futures"]["positions"]
            assert pos["positionAmt"] == pytest.approx(-math.floor(held * 1000) / 1000, abs=1e-9)  # perp lot 0.001
            assert st["spot"]["BTC"]["free"] == pytest.approx(held)
            await bot2.wait_for(r"ENTER.*OrderFilled|OrderFilled.*BTCUSDT-PERP", 5)
            await asyncio.sleep(0.5)
            bot2.kill(signal.SIGKILL)
            assert await bot2.wait(10) == -signal.SIGKILL

            bot3 = Bot(cfg, env)  # in carry: reconciliation finds both legs, the strategy sends nothing
            await bot3.start()
            await bot3.wait_for(r"basisbot live: running BTCUSDT", 90)
            await bot3.wait_for(r"resume: .*both legs held, in carry", 10)
            await asyncio.sleep(1.0)
            bot3.kill(signal.SIGINT)
            assert await bot3.wait(20) == 0
            assert any("stopping (open carries stay hedged)" in line for line in bot3.lines)
            assert not any("SubmitOrder" in line for line in bot3.lines)

            cids = await venue_client_ids(sim)
            assert len(cids) == len(set(cids)) == 2, cids  # spot entry + perp catch-up
            assert first_perp_cid not in cids  # the ambiguous order never reached the venue and was never resent
            st = await state(sim)
            (pos,) = st["futures"]["positions"]  # still hedged after the clean stop
            assert pos["positionAmt"] == pytest.approx(-math.floor(held * 1000) / 1000, abs=1e-9)

    asyncio.run(asyncio.wait_for(scenario(), 58))


def test_live_command_refuses_bad_config_and_missing_credentials(tmp_path, monkeypatch, capsys):
    from argparse import Namespace

    from basisbot.live.node import live_main, paper_main

    for var in [k for k in os.environ if k.startswith("BASISBOT_")]:
        monkeypatch.delenv(var)
    cfg = write_config(tmp_path, "http://127.0.0.1:9", symbols={SYM: {"leverage": 3}})
    assert live_main(Namespace(config=str(cfg), env_file=None)) == 2
    err = capsys.readouterr().err
    assert "BASISBOT_API_KEY" in err and "BASISBOT_API_SECRET" in err

    # other variable names, as the config names them
    other = tmp_path / "other"
    cfg2 = write_config(other, "http://127.0.0.1:9", symbols={SYM: {"leverage": 3}})
    cfg2.write_text(cfg2.read_text() + '[exchange]\napi_key_env = "MY_KEY"\napi_secret_env = "MY_SECRET"\n')
    monkeypatch.setenv("MY_KEY", KEY)
    assert live_main(Namespace(config=str(cfg2), env_file=None)) == 2
    err = capsys.readouterr().err
    assert "MY_SECRET" in err and "MY_KEY" not in err

    bad = write_config(tmp_path / "bad", "http://127.0.0.1:9", symbols={SYM: {"leverage": 3, "hedge_ratio": 9}})
    assert live_main(Namespace(config=str(bad), env_file=None)) == 2
    assert "hedge_ratio" in capsys.readouterr().err
    assert paper_main(Namespace(config=str(bad), env_file=None)) == 2

    # paper needs no credentials: it gets as far as the (unreachable) venue
    assert paper_main(Namespace(config=str(cfg), env_file=None)) == 1
    assert "cannot reach the exchange" in capsys.readouterr().err


async def venue_perp_orders(sim) -> list[dict]:
    fut = ccxtpro.binanceusdm({"apiKey": KEY, "secret": SECRET})
    try:
        use_local_venue(fut, sim.url)
        return await fut.fetch_orders("BTC/USDT:USDT")
    finally:
        await fut.close()


@pytest.mark.slow  # the default run holds this through the fault-matrix smoke's kill9_guard cell (one reduce)
def test_sigkill_mid_guard_reduce_then_restart_puts_the_margin_back_instead_of_reducing_again(tmp_path):
    """5x isolated with a guard that reduces at 30% from liquidation (5x sits near 19.5%): right after the entry the
    guard reduces, and the bot is SIGKILLed the moment it decides to. The restarted bot finds the reduce in the
    journal with its margin not put back: it puts the margin back (whatever part of the reduce the venue executed)
    and does not reduce a second time at the same distance. At most one reduce order reaches the venue."""

    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T07:59:57Z")) as sim:
            cfg = write_config(tmp_path, sim.url, symbols={SYM: {
                "notional_usdt": 2000.0, "leverage": 5, "entry_apr": -1000.0, "exit_apr": -2000.0,
                "leg_timeout_s": 3.0, "slippage_band": 0.01,
                "guard": {"enabled": True, "warn_distance": 0.40, "add_margin_distance": 0.35, "reduce_distance": 0.30,
                          "close_distance": 0.03, "target_distance": 0.36, "hysteresis": 0.05,
                          "transfer_from_spot": True}}},
                schedule={"decision_before_s": 10, "blackout_before_s": 5, "blackout_after_s": 1})
            env = subprocess_env()
            bot = Bot(cfg, env)
            await bot.start()
            await bot.wait_for(r"basisbot live: running BTCUSDT", 90)
            await bot.wait_for(r"BTCUSDT: reduce: ", 60)
            bot.kill(signal.SIGKILL)  # the moment the guard decided to reduce
            assert await bot.wait(10) == -signal.SIGKILL

            bot2 = Bot(cfg, env)
            await bot2.start()
            await bot2.wait_for(r"basisbot live: running BTCUSDT", 90)
            await bot2.wait_for(r"BTCUSDT: resume: a guard reduce was under way at the stop", 20)
            await bot2.wait_for(r"BTCUSDT: restore_margin: ", 20)
            await asyncio.sleep(2.0)
            assert not any(re.search(r"BTCUSDT: reduce: ", line) for line in bot2.lines), bot2.lines[-20:]
            bot2.kill(signal.SIGINT)
            assert await bot2.wait(20) == 0

            reduces = [o for o in await venue_perp_orders(sim) if o["side"] == "buy"]
            assert len(reduces) <= 1, reduces
            st = await state(sim)
            (pos,) = st["futures"]["positions"]
            held = st["spot"]["BTC"]["free"]
            assert -pos["positionAmt"] == pytest.approx(held, rel=0.02)  # still hedged
            distance = (pos["liquidationPrice"] - pos["markPrice"]) / pos["markPrice"]
            assert distance > 0.30  # the margin went back: above the distance the guard reduces at

    asyncio.run(asyncio.wait_for(scenario(), 100))
