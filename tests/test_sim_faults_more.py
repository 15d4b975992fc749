"""The venue faults the fault matrix (benchmarks/fault_matrix.py) needs, seen through the stock ccxt.pro clients: an order the venue booked
while the client saw a network error, faults limited to one symbol, a bad price print on the streams, listen keys
expired, the venue's clock skewed beyond recvWindow, a venue restart (outage), and GET /sim/clock."""

from __future__ import annotations

import asyncio
import time

import ccxt
import pytest

from tests.helpers.sim_venue import BTC_PERP, admin, run_scenario, state

ETH_PERP = "ETH/USDT:USDT"


def test_timeout_next_order_books_the_order_but_the_client_sees_a_network_error():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/faults", {"timeout_next_order": {"venue": "futures", "mode": "drop"}})
        with pytest.raises(ccxt.NetworkError):
            await fut.create_order(BTC_PERP, "market", "sell", 0.01, None, {"newClientOrderId": "X-TIMEOUT-1"})
        o = await fut.fetch_order(None, BTC_PERP, {"clientOrderId": "X-TIMEOUT-1"})  # it is there, filled
        assert o["status"] == "closed" and o["filled"] == pytest.approx(0.01)
        st = await state(sim)
        assert [p["positionAmt"] for p in st["futures"]["positions"]] == [-0.01]
        assert st["faults"]["injected"]["timed_out"] == 1
        # "delay": the answer comes after the client's timeout
        fut.timeout = 500
        await admin(sim, "/admin/faults", {"timeout_next_order": {"venue": "futures", "mode": "delay",
                                                                  "delay_ms": 1500}})
        with pytest.raises(ccxt.RequestTimeout):
            await fut.create_order(BTC_PERP, "market", "sell", 0.01, None, {"newClientOrderId": "X-TIMEOUT-2"})
        fut.timeout = 10_000
        await asyncio.sleep(1.2)
        assert (await fut.fetch_order(None, BTC_PERP, {"clientOrderId": "X-TIMEOUT-2"}))["status"] == "closed"
        orders = await admin(sim, "/admin/orders", method="GET")
        assert sorted(o["clientOrderId"] for o in orders["futures"]) == ["X-TIMEOUT-1", "X-TIMEOUT-2"]

    run_scenario(scenario)


def test_symbol_limited_reject_skips_other_symbols():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/faults", {"reject_next_order": {"venue": "futures", "symbol": "ETHUSDT",
                                                                 "count": 2}})
        assert (await fut.create_order(BTC_PERP, "market", "sell", 0.01))["status"] == "closed"
        for _ in range(2):
            with pytest.raises(ccxt.ExchangeError):
                await fut.create_order(ETH_PERP, "market", "sell", 0.1)
        assert (await fut.create_order(ETH_PERP, "market", "sell", 0.1))["status"] == "closed"

    run_scenario(scenario)


def test_clock_skew_beyond_recv_window_then_back():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/faults", {"clock_skew": {"ms": 15_000, "duration_s": 1.0}})
        with pytest.raises(ccxt.InvalidNonce):  # -1021 Timestamp for this request is outside of the recvWindow
            await fut.fetch_balance()
        await asyncio.sleep(1.1)
        assert (await fut.fetch_balance())["USDT"]["total"] > 0

    run_scenario(scenario)


def test_outage_refuses_everything_then_state_survives():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await fut.create_order(BTC_PERP, "market", "sell", 0.01)
        await admin(sim, "/admin/faults", {"outage": {"duration_s": 1.0}})
        t0 = time.monotonic()
        with pytest.raises(ccxt.NetworkError):
            await fut.fetch_balance()
        while time.monotonic() - t0 < 1.1:
            await asyncio.sleep(0.1)
        pos = await fut.fetch_positions([BTC_PERP])
        assert [p["contracts"] for p in pos if p["contracts"]] == [0.01]

    run_scenario(scenario)


def test_bad_print_mark_and_book_streams_only():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await spot.load_markets()
        first = await fut.watch_mark_price(BTC_PERP)
        await admin(sim, "/admin/faults", {"bad_print": {"symbol": "BTCUSDT", "factor": 0.5, "count": 1}})
        bad = await fut.watch_mark_price(BTC_PERP)
        assert bad["markPrice"] == pytest.approx(first["markPrice"] * 0.5, rel=0.01)
        after = await fut.watch_mark_price(BTC_PERP)
        assert after["markPrice"] == pytest.approx(first["markPrice"], rel=0.01)
        rest = await fut.fetch_funding_rate(BTC_PERP)
        assert rest["markPrice"] == pytest.approx(first["markPrice"], rel=0.01)
        st = await state(sim)
        assert st["faults"]["injected"]["bad_prints"] == 1

    run_scenario(scenario)


def test_expire_listen_keys_sends_listen_key_expired():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        watcher = asyncio.create_task(fut.watch_orders())
        await asyncio.sleep(0.5)
        out = await admin(sim, "/admin/faults", {"expire_listen_keys": True})
        assert out["injected"]["keys_expired"] == 1
        watcher.cancel()

    run_scenario(scenario)


def test_sim_clock_reports_speed_and_replay_time():
    async def scenario(sim, spot, fut):
        import aiohttp

        async with aiohttp.ClientSession() as s:
            async with s.get(sim.url + "/sim/clock") as r:
                c1 = await r.json()
            await asyncio.sleep(0.5)
            async with s.get(sim.url + "/sim/clock") as r:
                c2 = await r.json()
        assert c1["speed"] == 60.0 and not c1["paused"]
        assert 20_000 <= c2["time"] - c1["time"] <= 60_000  # ~0.5 s of wall time at 60x

    run_scenario(scenario)
