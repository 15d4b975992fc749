"""Local venue, websocket side and replay-driven events (funding, liquidation), through stock ccxt.pro clients."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from basisbot.core import margin
from basisbot.core.carry import funding_payment
from basisbot.sim.engine.prices import load_paths
from basisbot.venues.binance import reference
from tests.helpers.sim_venue import BTC_PERP, BTC_SPOT, DATA, admin, run_scenario, state


def test_watch_mark_price_has_predicted_rate_and_next_funding_time():
    async def scenario(sim, spot, fut):
        first = await fut.watch_mark_price(BTC_PERP)
        second = await fut.watch_mark_price(BTC_PERP)
        for t in (first, second):
            info = t["info"]
            assert info["e"] == "markPriceUpdate" and info["s"] == "BTCUSDT"
            assert "r" in info and "T" in info and "i" in info
            assert t["markPrice"] == float(info["p"])
        assert second["timestamp"] > first["timestamp"]
        st = await state(sim)
        assert second["info"]["T"] == st["prices"]["BTCUSDT"]["nextFundingTime"]
        fr = await fut.fetch_funding_rate(BTC_PERP)
        assert abs(float(second["info"]["r"]) - fr["fundingRate"]) < 1e-4
        # spot book ticker and futures klines on their own paths
        ba = await spot.watch_bids_asks([BTC_SPOT])
        q = ba[BTC_SPOT]
        assert q["bid"] < q["ask"] and q["ask"] - q["bid"] == pytest.approx(0.01)
        fba = await fut.watch_bids_asks([BTC_PERP])
        assert fba[BTC_PERP]["bid"] < fba[BTC_PERP]["ask"]
        candles = await fut.watch_ohlcv(BTC_PERP, "1h")
        o, h, lo, c = candles[-1][1:5]
        assert lo <= min(o, c) <= max(o, c) <= h

    run_scenario(scenario)


def test_raw_combined_stream_and_subscribe():
    async def scenario(sim, spot, fut):
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(sim.ws_url + "/stream?streams=btcusdt@bookTicker/btcusdt@kline_1h") as ws:
                seen = set()
                while len(seen) < 2:
                    msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                    seen.add(msg["stream"])
                    if msg["stream"] == "btcusdt@bookTicker":
                        assert set(msg["data"]) == {"u", "s", "b", "B", "a", "A"}  # spot shape: no "e"
            async with s.ws_connect(sim.ws_url + "/market/ws") as ws:
                await ws.send_json({"method": "SUBSCRIBE", "params": ["!markPrice@arr@1s"], "id": 7})
                assert json.loads((await ws.receive()).data) == {"result": None, "id": 7}
                arr = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                assert {x["s"] for x in arr} == {"BTCUSDT", "ETHUSDT"}
                await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 8})
                while True:
                    reply = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                    if isinstance(reply, dict) and reply.get("id") == 8:
                        break
                assert reply["error"]["code"] == 2  # not produced by this venue: refused, never silent

    run_scenario(scenario)


def test_orders_and_trades_on_the_user_streams():
    async def scenario(sim, spot, fut):
        await spot.load_markets()
        await fut.load_markets()
        spot_orders = asyncio.create_task(spot.watch_orders(BTC_SPOT))
        spot_trades = asyncio.create_task(spot.watch_my_trades(BTC_SPOT))
        fut_orders = asyncio.create_task(fut.watch_orders(BTC_PERP))
        fut_trades = asyncio.create_task(fut.watch_my_trades(BTC_PERP))
        await asyncio.sleep(0.3)  # subscriptions in place
        buy = await spot.create_order(BTC_SPOT, "market", "buy", 0.01, params={"clientOrderId": "ws-spot-1"})
        short = await fut.create_order(BTC_PERP, "market", "sell", 0.01, params={"clientOrderId": "ws-perp-1"})

        async def until(task_or_coro_factory, pred):
            for _ in range(10):
                res = await asyncio.wait_for(task_or_coro_factory(), 5)
                if pred(res):
                    return res
            raise AssertionError("not seen")

        first = await asyncio.wait_for(spot_orders, 5)
        so = await until(lambda: spot.watch_orders(BTC_SPOT), lambda r: r[-1]["status"] == "closed") \
            if first[-1]["status"] != "closed" else first
        assert so[-1]["id"] == buy["id"] and so[-1]["clientOrderId"] == "ws-spot-1" and so[-1]["filled"] == 0.01
        st = await asyncio.wait_for(spot_trades, 5)
        assert st[-1]["order"] == buy["id"] and st[-1]["symbol"] == BTC_SPOT and st[-1]["fee"]["currency"] == "BTC"
        first = await asyncio.wait_for(fut_orders, 5)
        fo = await until(lambda: fut.watch_orders(BTC_PERP), lambda r: r[-1]["status"] == "closed") \
            if first[-1]["status"] != "closed" else first
        assert fo[-1]["id"] == short["id"] and fo[-1]["clientOrderId"] == "ws-perp-1" and fo[-1]["side"] == "sell"
        ft = await asyncio.wait_for(fut_trades, 5)
        assert ft[-1]["order"] == short["id"] and ft[-1]["symbol"] == BTC_PERP
        assert ft[-1]["price"] == short["average"]
        # balances on the user streams
        bal = await asyncio.wait_for(fut.watch_balance(), 5)
        assert bal["info"]["e"] == "ACCOUNT_UPDATE"
        pos = await fut.fetch_positions([BTC_PERP])
        assert pos[0]["contracts"] == 0.01 and pos[0]["side"] == "short"

    run_scenario(scenario)


def test_funding_settles_into_the_isolated_wallet_at_the_real_time():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await fut.set_margin_mode("isolated", BTC_PERP)
        await fut.set_leverage(5, BTC_PERP)
        await fut.create_order(BTC_PERP, "market", "sell", 0.05)
        (pos,) = await fut.fetch_positions([BTC_PERP])
        wallet0 = float(pos["info"]["isolatedWallet"])
        pending = asyncio.create_task(fut.watch_balance())  # opens the user stream
        await asyncio.sleep(0.3)
        fr = await fut.fetch_funding_rate(BTC_PERP)
        settle_at = fr["fundingTimestamp"]
        await admin(sim, "/admin/clock", {"time": settle_at - 3000})  # 3 s of replay before the settlement

        event = None
        for _ in range(50):
            b = await asyncio.wait_for(pending, 10)
            if b["info"]["a"]["m"] == "FUNDING_FEE":
                event = b["info"]
                break
            pending = asyncio.ensure_future(fut.watch_balance())
        assert event is not None and event["E"] == settle_at
        (p_upd,) = event["a"]["P"]  # isolated: the position is in the event, with its isolated wallet
        assert p_upd["s"] == "BTCUSDT" and p_upd["mt"] == "isolated"

        paths = load_paths(str(DATA), "BTCUSDT")
        i = paths.next_settlement_index(settle_at - 1)
        assert int(paths.fund_ts[i]) == settle_at
        rate = float(paths.fund_rate[i])
        expected = funding_payment(-0.05, paths.mark(settle_at), rate)
        assert float(event["a"]["B"][0]["bc"]) == pytest.approx(expected, abs=1e-8)
        assert float(p_upd["iw"]) == pytest.approx(wallet0 + expected, abs=1e-8)

        hist = await fut.fetch_funding_history(BTC_PERP)
        assert hist[-1]["timestamp"] == settle_at and hist[-1]["amount"] == pytest.approx(expected, abs=1e-8)
        rates = await fut.fetch_funding_rate_history(BTC_PERP, since=settle_at)
        assert rates[0]["fundingRate"] == pytest.approx(rate)

    run_scenario(scenario)


def test_isolated_short_is_liquidated_in_a_rally_and_the_wallet_is_lost():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/clock", {"pause": True})
        await fut.set_margin_mode("isolated", BTC_PERP)
        await fut.set_leverage(50, BTC_PERP)
        total0 = (await fut.fetch_balance())["USDT"]["total"]
        short = await fut.create_order(BTC_PERP, "market", "sell", 0.1)
        fee = 0.1 * short["average"] * 0.0005
        (pos,) = await fut.fetch_positions([BTC_PERP])
        im = float(pos["info"]["isolatedWallet"])
        lp = pos["liquidationPrice"]
        assert im == pytest.approx(0.1 * short["average"] / 50)

        paths = load_paths(str(DATA), "BTCUSDT")
        t0 = (await state(sim))["time"]
        day = paths.vertex_times(t0, t0 + 86_400_000)
        assert max(paths.mark(int(t)) for t in day) > lp  # 2022-03-01: BTC rallied ~4%

        pending = asyncio.create_task(fut.watch_orders(BTC_PERP))  # opens the user stream
        await asyncio.sleep(0.3)
        await admin(sim, "/admin/clock", {"advance_s": 86400})
        assert await fut.fetch_positions([BTC_PERP]) == []
        total1 = (await fut.fetch_balance())["USDT"]["total"]
        # everything in the isolated wallet (initial margin + funding received meanwhile) is gone
        assert total1 == pytest.approx(total0 - fee - im, abs=1e-6)
        st = await state(sim)
        (liq,) = st["liquidations"]
        assert liq["marginType"] == "isolated" and liq["positionAmt"] == pytest.approx(-0.1)
        # at basisbot.core.margin's liquidation price for the wallet it had then (funding moved it since the open)
        table = reference.brackets()["BTCUSDT"]
        assert liq["price"] == pytest.approx(
            margin.liquidation_price(-1, 0.1, short["average"], liq["isolatedWalletLost"], table), rel=1e-9)
        assert liq["price"] == pytest.approx(lp, rel=2e-3)
        income = await fut.fapiPrivateGetIncome({"symbol": "BTCUSDT", "startTime": t0})
        kinds = [x["incomeType"] for x in income]
        assert "REALIZED_PNL" in kinds and "INSURANCE_CLEAR" in kinds
        # the liquidation fill on the user stream (Binance's "autoclose-" client id)
        for _ in range(20):
            orders = await asyncio.wait_for(pending, 5)
            if any(str(o["clientOrderId"]).startswith("autoclose-") for o in orders):
                break
            pending = asyncio.ensure_future(fut.watch_orders(BTC_PERP))
        else:
            raise AssertionError("no liquidation order on the user stream")

    run_scenario(scenario)


def test_closing_a_listen_key_closes_the_user_stream_that_only_carries_it():
    """DELETE /fapi/v1/listenKey: the socket subscribed to nothing else is closed normally (1000), as Binance does."""
    from tests.helpers.sim_venue import KEY

    async def scenario(sim, spot, fut):
        async with aiohttp.ClientSession() as s:
            async with s.post(sim.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY}) as r:
                key = (await r.json())["listenKey"]
            async with s.ws_connect(f"{sim.ws_url}/ws/{key}") as ws:
                async with s.delete(sim.url + "/fapi/v1/listenKey", params={"listenKey": key},
                                    headers={"X-MBX-APIKEY": KEY}) as r:
                    assert r.status == 200
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000

    run_scenario(scenario)
