"""Injected faults, each observed through the stock ccxt.pro clients the way the real exchange would show it."""

from __future__ import annotations

import asyncio
import time

import ccxt
import pytest

from tests.helpers.sim_venue import BTC_PERP, BTC_SPOT, admin, run_scenario


def test_429_is_ddos_protection_then_requests_flow_again():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/faults", {"fail_next": {"count": 2, "status": 429}})
        for _ in range(2):
            with pytest.raises(ccxt.DDoSProtection) as err:  # ccxt's binance maps 429 (and 418) to DDoSProtection
                await fut.fetch_funding_rate(BTC_PERP)
            assert '"code":-1003' in str(err.value)
        assert (await fut.fetch_funding_rate(BTC_PERP))["symbol"] == BTC_PERP

    run_scenario(scenario)


def test_5xx_is_exchange_not_available_and_delay_slows_requests():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/faults", {"fail_next": {"count": 1, "status": 503}})
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await fut.fetch_balance()
        await admin(sim, "/admin/faults", {"fail_next": {"count": 1, "status": 502, "path_prefix": "/api/"}})
        assert (await fut.fetch_balance())["USDT"]["total"] > 0  # /fapi is not affected by that one
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await spot.fetch_time()
        await admin(sim, "/admin/faults", {"delay_ms": 300})
        t0 = time.monotonic()
        await fut.fetch_time()
        assert time.monotonic() - t0 >= 0.3
        await admin(sim, "/admin/faults", {"clear": True})
        t0 = time.monotonic()
        await fut.fetch_time()
        assert time.monotonic() - t0 < 0.3

    run_scenario(scenario)


def test_rejected_orders_raise_the_mapped_exception():
    async def scenario(sim, spot, fut):
        await spot.load_markets()
        await fut.load_markets()
        await admin(sim, "/admin/faults", {"reject_next_order": {"venue": "spot"}})
        with pytest.raises(ccxt.InsufficientFunds):  # -2010 "Account has insufficient balance for requested action."
            await spot.create_order(BTC_SPOT, "market", "buy", 0.01)
        assert (await spot.create_order(BTC_SPOT, "market", "buy", 0.01))["status"] == "closed"
        await admin(sim, "/admin/faults", {"reject_next_order": {"venue": "futures"}})
        with pytest.raises(ccxt.ExchangeError) as err:  # -2019, see test_make_clients_restore_error_mapping
            await fut.create_order(BTC_PERP, "market", "sell", 0.01)
        assert '"code":-2019' in str(err.value)
        await admin(sim, "/admin/faults", {"reject_next_order": {"venue": "futures", "code": -1013,
                                                                 "msg": "Filter failure: PERCENT_PRICE_BY_SIDE"}})
        with pytest.raises(ccxt.InvalidOrder):
            await fut.create_order(BTC_PERP, "market", "sell", 0.01)
        assert (await fut.create_order(BTC_PERP, "market", "sell", 0.01))["status"] == "closed"

    run_scenario(scenario)


def test_partial_fill_shows_in_status_and_filled_amount():
    async def scenario(sim, spot, fut):
        await spot.load_markets()
        await fut.load_markets()
        await admin(sim, "/admin/faults", {"partial_fill_next": {"venue": "futures", "fraction": 0.5}})
        o = await fut.create_order(BTC_PERP, "market", "sell", 0.02)
        assert o["status"] == "expired" and o["filled"] == 0.01 and o["remaining"] == pytest.approx(0.01)
        (pos,) = await fut.fetch_positions([BTC_PERP])
        assert pos["contracts"] == 0.01

        await admin(sim, "/admin/faults", {"partial_fill_next": {"venue": "spot", "fraction": 0.25}})
        t = await spot.fetch_ticker(BTC_SPOT)
        price = float(spot.price_to_precision(BTC_SPOT, t["ask"] * 1.01))  # marketable GTC limit
        lo = await spot.create_order(BTC_SPOT, "limit", "buy", 0.04, price)
        assert lo["status"] == "open" and lo["filled"] == 0.01
        again = await spot.fetch_order(lo["id"], BTC_SPOT)
        assert again["info"]["status"] == "PARTIALLY_FILLED" and again["filled"] == 0.01
        c = await spot.cancel_order(lo["id"], BTC_SPOT)
        assert c["status"] == "canceled" and c["filled"] == 0.01
        assert (await spot.fetch_balance())["USDT"]["used"] == 0

    run_scenario(scenario)


def test_dropped_websockets_reject_pending_watches_and_clients_reconnect():
    async def scenario(sim, spot, fut):
        await fut.watch_mark_price(BTC_PERP)
        pending = asyncio.create_task(fut.watch_mark_price(BTC_PERP))
        await asyncio.sleep(0)
        await admin(sim, "/admin/faults", {"drop_ws": True})
        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(pending, 5)
        again = await asyncio.wait_for(fut.watch_mark_price(BTC_PERP), 5)  # a new connection, re-subscribed
        assert again["info"]["e"] == "markPriceUpdate"
        state = await admin(sim, "/admin/state", method="GET")
        assert state["faults"]["injected"]["ws_dropped"] >= 1

        # user streams too: spot (WebSocket API subscription) and futures (listen key) come back after a drop
        await spot.load_markets()
        await fut.load_markets()
        user = [asyncio.create_task(spot.watch_orders(BTC_SPOT)), asyncio.create_task(fut.watch_orders(BTC_PERP))]
        await asyncio.sleep(0.3)
        await admin(sim, "/admin/faults", {"drop_ws": True})
        for task in user:
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(task, 5)
        user = [asyncio.create_task(spot.watch_orders(BTC_SPOT)), asyncio.create_task(fut.watch_orders(BTC_PERP))]
        await asyncio.sleep(0.3)
        s_order = await spot.create_order(BTC_SPOT, "market", "buy", 0.01)
        f_order = await fut.create_order(BTC_PERP, "market", "sell", 0.01)
        s_seen, f_seen = [await asyncio.wait_for(task, 5) for task in user]
        assert s_seen[-1]["id"] == s_order["id"] and f_seen[-1]["id"] == f_order["id"]

    run_scenario(scenario)


def test_frozen_mark_stream_sends_nothing_until_thawed():
    async def scenario(sim, spot, fut):
        first = await fut.watch_mark_price(BTC_PERP)
        await admin(sim, "/admin/faults", {"freeze_mark": True})
        await asyncio.sleep(0.1)  # let an update already in flight arrive
        with pytest.raises(asyncio.TimeoutError):
            while True:  # at 60x, one wall second is 60 replay seconds: 60 missed @1s updates
                await asyncio.wait_for(fut.watch_mark_price(BTC_PERP), 1.0)
        fr = await fut.fetch_funding_rate(BTC_PERP)  # REST still answers, the replay went on
        assert fr["timestamp"] > first["timestamp"] + 30_000
        await admin(sim, "/admin/faults", {"freeze_mark": False})
        thawed = await asyncio.wait_for(fut.watch_mark_price(BTC_PERP), 2.0)
        assert thawed["timestamp"] >= fr["timestamp"]

    run_scenario(scenario)
