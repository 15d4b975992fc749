"""Harness for driving the local venue from tests: an in-process server plus stock ccxt.pro clients.

Each scenario runs the server in-process on a free port and drives it with the stock ccxt.pro clients, whose
``urls['api']`` hosts are rewritten to it; nothing leaves 127.0.0.1 (checked for every client).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import ccxt.pro as ccxtpro

from basisbot.exchange.ccxt_setup import SPOT_CLIENT_OPTIONS, non_local_urls, use_local_venue
from basisbot.sim import SimConfig, SimServer

DATA = Path(__file__).resolve().parents[2] / "backtests" / "data" / "binance"
KEY = "simkey" + "a" * 58
SECRET = "simsecret" + "b" * 55
BTC_SPOT, BTC_PERP = "BTC/USDT", "BTC/USDT:USDT"
SCENARIO_TIMEOUT_S = 45


def config(**overrides) -> SimConfig:
    base = dict(data_dir=DATA, api_key=KEY, api_secret=SECRET, speed=60.0, start="2022-03-01",
                symbols=["BTCUSDT", "ETHUSDT"])
    base.update(overrides)
    return SimConfig(**base)


def make_clients(sim: SimServer, *, key: str = KEY, secret: str = SECRET, spot_options: dict | None = None,
                 restore_errors: bool = False, rate_limit: bool = False):
    """Stock ccxt.pro ``binance`` (spot) and ``binanceusdm`` clients pointed at ``sim``.

    ``rate_limit=False`` only switches off ccxt's client-side throttle (50 ms+ per request) to keep tests fast.
    """
    spot = ccxtpro.binance({"apiKey": key, "secret": secret, "enableRateLimit": rate_limit,
                            "options": dict(SPOT_CLIENT_OPTIONS if spot_options is None else spot_options)})
    fut = ccxtpro.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": rate_limit})
    for ex in (spot, fut):
        use_local_venue(ex, sim.url, restore_errors=restore_errors)
        assert non_local_urls(ex, sim.url) == [], non_local_urls(ex, sim.url)
    return spot, fut


def run_scenario(scenario, timeout: float = SCENARIO_TIMEOUT_S, **cfg_overrides):
    """Start a server, build both clients, run ``await scenario(sim, spot, fut)``, tear everything down."""

    async def main():
        async with SimServer(config(**cfg_overrides)) as sim:
            spot, fut = make_clients(sim)
            try:
                return await scenario(sim, spot, fut)
            finally:
                for ex in (spot, fut):
                    with contextlib.suppress(Exception):
                        await ex.close()

    return asyncio.run(asyncio.wait_for(main(), timeout))


async def admin(sim: SimServer, path: str, body: dict | None = None, method: str = "POST") -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.request(method, sim.url + path, json=body) as r:
            data = await r.json()
            assert r.status == 200, data
            return data


async def state(sim: SimServer) -> dict:
    return await admin(sim, "/admin/state", method="GET")


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll an async predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)
