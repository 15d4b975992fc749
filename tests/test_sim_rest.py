"""Local venue, REST side, through the stock ccxt clients (hosts rewritten to 127.0.0.1, nothing else)."""

from __future__ import annotations

import ccxt
import ccxt.pro as ccxtpro
import pytest

from basisbot.exchange.ccxt_setup import non_local_urls, use_local_venue
from tests.helpers.sim_venue import BTC_PERP, BTC_SPOT, KEY, SECRET, admin, make_clients, run_scenario, state


async def sim_pause(sim):
    await admin(sim, "/admin/clock", {"pause": True})


def test_load_markets_with_default_client_options():
    """Stock clients with no options at all load their markets (ccxt also asks /dapi, /sapi: served)."""

    async def scenario(sim, spot, fut):
        plain_spot = ccxtpro.binance({"apiKey": KEY, "secret": SECRET})  # rate limiter on, as shipped
        plain_fut = ccxtpro.binanceusdm({"apiKey": KEY, "secret": SECRET})
        try:
            for ex in (plain_spot, plain_fut):
                use_local_venue(ex, sim.url)
                assert non_local_urls(ex, sim.url) == []
            await plain_spot.load_markets()
            await plain_fut.load_markets()
            assert {"BTC/USDT", "ETH/USDT", "BTC/USDT:USDT"} <= set(plain_spot.markets)
            assert set(plain_fut.markets) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
            assert "USDT" in plain_spot.currencies
        finally:
            await plain_spot.close()
            await plain_fut.close()

        await spot.load_markets()
        await fut.load_markets()
        assert set(spot.markets) == {"BTC/USDT", "ETH/USDT"}
        m = fut.market(BTC_PERP)
        # the filters of Binance's 2023 exchangeInfo row (ccxt's recording): tick 0.10, step 0.001, notional 5
        assert m["precision"]["price"] == 0.1 and m["precision"]["amount"] == 0.001
        assert m["limits"]["amount"]["min"] == 0.001 and m["limits"]["cost"]["min"] == 5
        assert m["limits"]["price"]["min"] == 556.8
        s = spot.market(BTC_SPOT)
        # spot keeps Binance's spot rules for BTCUSDT: tick 0.01, step 0.00001
        assert s["spot"] and s["precision"]["amount"] == 0.00001 and s["precision"]["price"] == 0.01

    run_scenario(scenario)


def test_funding_rate_interval_and_leverage_tiers():
    async def scenario(sim, spot, fut):
        fr = await fut.fetch_funding_rate(BTC_PERP)
        st = await state(sim)
        assert fr["fundingTimestamp"] == st["prices"]["BTCUSDT"]["nextFundingTime"]
        assert fr["fundingTimestamp"] > fr["timestamp"]
        assert abs(fr["markPrice"] - st["prices"]["BTCUSDT"]["mark"]) / fr["markPrice"] < 0.01
        assert fr["fundingRate"] is not None and fr["interestRate"] == 0.0001
        iv = await fut.fetch_funding_interval(BTC_PERP)
        assert iv["interval"] == "8h"
        hist = await fut.fetch_funding_rate_history(BTC_PERP, limit=5)
        assert len(hist) == 5 and all(h["timestamp"] <= fr["timestamp"] for h in hist)
        tiers = await fut.fetch_leverage_tiers([BTC_PERP])
        first = tiers[BTC_PERP][0]
        assert first["maxLeverage"] == 150 and first["maintenanceMarginRate"] == 0.004
        assert first["maxNotional"] == 300000

    run_scenario(scenario)


def test_spot_buy_perp_short_positions_margin_transfer():
    async def scenario(sim, spot, fut):
        await spot.load_markets()
        await fut.load_markets()
        bal0 = await spot.fetch_balance()
        buy = await spot.create_order(BTC_SPOT, "market", "buy", 0.02, params={"clientOrderId": "leg-spot-1"})
        assert buy["status"] == "closed" and buy["filled"] == 0.02 and buy["clientOrderId"] == "leg-spot-1"
        fee = buy["trades"][0]["fee"]
        assert fee["currency"] == "BTC" and fee["cost"] == pytest.approx(0.02 * 0.001)
        bal1 = await spot.fetch_balance()
        assert bal1["BTC"]["free"] == pytest.approx(0.02 * 0.999)
        assert bal1["USDT"]["free"] == pytest.approx(bal0["USDT"]["free"] - buy["cost"])

        await fut.set_margin_mode("isolated", BTC_PERP)
        await fut.set_leverage(3, BTC_PERP)
        short = await fut.create_order(BTC_PERP, "market", "sell", 0.02)
        assert short["status"] == "closed" and short["filled"] == 0.02 and short["side"] == "sell"
        again = await fut.fetch_order(short["id"], BTC_PERP)
        assert again["status"] == "closed" and again["average"] == short["average"]
        trades = await fut.fetch_my_trades(BTC_PERP)
        assert trades[-1]["order"] == short["id"]
        assert trades[-1]["fee"]["cost"] == pytest.approx(0.02 * short["average"] * 0.0005)

        (pos,) = await fut.fetch_positions([BTC_PERP])
        assert pos["side"] == "short" and pos["contracts"] == 0.02 and pos["marginMode"] == "isolated"
        wallet0 = float(pos["info"]["isolatedWallet"])
        assert wallet0 == pytest.approx(0.02 * short["average"] / 3)
        assert pos["liquidationPrice"] > short["average"]

        mod = await fut.add_margin(BTC_PERP, 50)
        assert mod["status"] == "ok" and mod["type"] == "add"
        (pos2,) = await fut.fetch_positions([BTC_PERP])
        assert float(pos2["info"]["isolatedWallet"]) == pytest.approx(wallet0 + 50)
        assert pos2["liquidationPrice"] > pos["liquidationPrice"]
        red = await fut.reduce_margin(BTC_PERP, 20)
        assert red["type"] == "reduce"

        # v2 positionRisk carries marginType and leverage too (ccxt reads v3 by default)
        await sim_pause(sim)
        (pos3,) = await fut.fetch_positions([BTC_PERP])
        v2 = await fut.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})
        assert v2[0]["marginType"] == "isolated" and v2[0]["leverage"] == "3"
        assert float(v2[0]["isolatedWallet"]) == pytest.approx(wallet0 + 30)
        assert float(v2[0]["liquidationPrice"]) == pytest.approx(pos3["liquidationPrice"])
        await admin(sim, "/admin/clock", {"resume": True})

        fb0 = (await fut.fetch_balance())["USDT"]["total"]
        tr = await spot.transfer("USDT", 1000, "spot", "swap")
        assert tr["id"]
        fb1 = (await fut.fetch_balance())["USDT"]["total"]
        assert fb1 - fb0 == pytest.approx(1000, abs=5)  # unrealized PnL moves with the replay
        back = await fut.transfer("USDT", 400, "swap", "spot")
        assert back["id"]
        sb = await spot.fetch_balance()
        assert sb["USDT"]["free"] == pytest.approx(bal1["USDT"]["free"] - 1000 + 400)
        with pytest.raises(ccxt.ExchangeError) as err:  # InsufficientFunds with restore_error_mapping
            await spot.transfer("USDT", 10_000_000, "spot", "swap")
        assert '"code":-5013' in str(err.value)

    run_scenario(scenario)


def test_limit_orders_rest_cancel_and_duplicate_client_id():
    async def scenario(sim, spot, fut):
        await spot.load_markets()
        await fut.load_markets()
        t = await spot.fetch_ticker(BTC_SPOT)
        assert t["bid"] < t["ask"]
        low = spot.price_to_precision(BTC_SPOT, t["bid"] * 0.8)
        o = await spot.create_order(BTC_SPOT, "limit", "buy", 0.01, float(low), {"clientOrderId": "rest-1"})
        assert o["status"] == "open" and o["filled"] == 0
        bal = await spot.fetch_balance()
        assert bal["USDT"]["used"] == pytest.approx(0.01 * float(low))
        opens = await spot.fetch_open_orders(BTC_SPOT)
        assert [x["id"] for x in opens] == [o["id"]]
        with pytest.raises(ccxt.InvalidOrder):  # -2010 "Duplicate order sent."
            await spot.create_order(BTC_SPOT, "limit", "buy", 0.01, float(low), {"clientOrderId": "rest-1"})
        c = await spot.cancel_order(o["id"], BTC_SPOT)
        assert c["status"] == "canceled"
        assert (await spot.fetch_balance())["USDT"]["used"] == 0
        with pytest.raises(ccxt.OrderNotFound):
            await spot.cancel_order(o["id"], BTC_SPOT)
        with pytest.raises(ccxt.OrderNotFound):
            await spot.fetch_order("999", BTC_SPOT)

        ft = await fut.fetch_ticker(BTC_PERP)
        high = fut.price_to_precision(BTC_PERP, ft["last"] * 1.1)
        fo = await fut.create_order(BTC_PERP, "limit", "sell", 0.01, float(high), {"clientOrderId": "rest-f1"})
        assert fo["status"] == "open"
        acct = await fut.fapiPrivateV2GetAccount()
        assert float(acct["totalOpenOrderInitialMargin"]) > 0
        # a repeated futures client id: Binance answers -4116, which ccxt only maps (InvalidOrder) for
        # fapi.binance.com URLs; against the rewritten host it is a plain ExchangeError
        with pytest.raises(ccxt.ExchangeError) as err:
            await fut.create_order(BTC_PERP, "limit", "sell", 0.01, float(high), {"clientOrderId": "rest-f1"})
        assert "-4116" in str(err.value)
        await fut.cancel_order(fo["id"], BTC_PERP)
        assert (await fut.fetch_order(fo["id"], BTC_PERP))["status"] == "canceled"
        # filter failures in USDⓈ-M's own codes: -4005 above the LOT_SIZE maximum (1000 BTC) -> BadRequest,
        # -1111 too many decimals -> BadRequest, -4164 notional below 5 (InvalidOrder only via the linear table)
        with pytest.raises(ccxt.BadRequest) as err:
            await fut.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                            "quantity": "1001"})
        assert '"code":-4005' in str(err.value)
        with pytest.raises(ccxt.BadRequest):
            await fut.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                            "quantity": "0.0015"})
        with pytest.raises(ccxt.ExchangeError) as err:
            await fut.fapiPrivatePostOrder({"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET",
                                            "quantity": "0.001"})
        assert '"code":-4164' in str(err.value)
        with pytest.raises(ccxt.InvalidOrder):
            await spot.privatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                         "quantity": "0.01", "price": "100.001"})

    run_scenario(scenario)


def test_resting_limit_fills_when_replay_crosses():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/clock", {"pause": True})
        st = await state(sim)
        px = st["prices"]["BTCUSDT"]["perpBid"]
        price = float(fut.price_to_precision(BTC_PERP, px * 1.003))
        o = await fut.create_order(BTC_PERP, "limit", "sell", 0.01, price)
        assert o["status"] == "open"
        # jump a day ahead: somewhere the perp trades above +0.3% (2022-03-01 rallied from 43k to 44k+)
        await admin(sim, "/admin/clock", {"advance_s": 86400})
        filled = await fut.fetch_order(o["id"], BTC_PERP)
        assert filled["status"] == "closed" and filled["average"] == price
        (trade,) = [t for t in await fut.fetch_my_trades(BTC_PERP) if t["order"] == o["id"]]
        assert trade["takerOrMaker"] == "maker"
        assert trade["fee"]["cost"] == pytest.approx(0.01 * price * 0.0002)
        assert o["timestamp"] < trade["timestamp"] <= o["timestamp"] + 86_400_000

    run_scenario(scenario)


def test_auth_errors_map_to_ccxt_exceptions():
    async def scenario(sim, spot, fut):
        await spot.load_markets()
        await fut.load_markets()
        bad_secret = ccxtpro.binanceusdm({"apiKey": KEY, "secret": "x" * 64})
        bad_key = ccxtpro.binance({"apiKey": "nokey" + "c" * 59, "secret": SECRET,
                                   "options": {"fetchMarkets": {"types": ["spot"]}}})
        try:
            for ex in (bad_secret, bad_key):
                use_local_venue(ex, sim.url)
                ex.markets, ex.markets_by_id = fut.markets if ex is bad_secret else spot.markets, None
                ex.set_markets(ex.markets)
            with pytest.raises(ccxt.AuthenticationError) as err:
                await bad_secret.fetch_balance()
            assert '"code":-1022' in str(err.value)
            assert "Signature for this request is not valid." in str(err.value)
            with pytest.raises(ccxt.AuthenticationError) as err:
                await bad_key.fetch_balance()
            assert '"code":-2015' in str(err.value)
        finally:
            await bad_secret.close()
            await bad_key.close()
        # a timestamp 100 s old: -1021 -> InvalidNonce
        fut.options["timeDifference"] = 100_000
        with pytest.raises(ccxt.InvalidNonce) as err:
            await fut.fetch_balance()
        assert '"code":-1021' in str(err.value)
        fut.options["timeDifference"] = 0
        assert (await fut.fetch_balance())["USDT"]["total"] > 0

    run_scenario(scenario)


def test_raw_http_status_and_body_of_a_bad_signature():
    import aiohttp

    async def scenario(sim, spot, fut):
        async with aiohttp.ClientSession() as s:
            async with s.get(sim.url + "/api/v3/account?timestamp=1&signature=00",
                             headers={"X-MBX-APIKEY": KEY}) as r:
                assert r.status == 400
                assert await r.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
            async with s.get(sim.url + "/api/v3/account?timestamp=1&signature=00") as r:
                assert r.status == 401 and (await r.json())["code"] == -2014
            async with s.get(sim.url + "/fapi/v1/nope") as r:
                assert r.status == 404

    run_scenario(scenario)


def test_make_clients_restore_error_mapping():
    """With restore_errors the client raises what it would against Binance (-2019 -> InsufficientFunds)."""

    async def scenario(sim, spot, fut):
        spot2, fut2 = make_clients(sim, restore_errors=True)
        try:
            await fut2.load_markets()
            with pytest.raises(ccxt.InsufficientFunds):
                await fut2.create_order(BTC_PERP, "market", "buy", 100)  # ~4.3M notional, 50k wallet
            with pytest.raises(ccxt.InsufficientFunds):  # -5013 from /sapi
                await fut2.transfer("USDT", 10_000_000, "spot", "swap")
            await fut2.create_order(BTC_PERP, "market", "buy", 0.01, params={"clientOrderId": "twice"})
            with pytest.raises(ccxt.InvalidOrder):  # -4116
                await fut2.create_order(BTC_PERP, "market", "buy", 0.01, params={"clientOrderId": "twice"})
            closed = await fut2.create_order(BTC_PERP, "market", "sell", 0.01, params={"reduceOnly": True})
            assert closed["filled"] == 0.01 and await fut2.fetch_positions([BTC_PERP]) == []
            with pytest.raises(ccxt.InvalidOrder):  # -2022: nothing left to reduce
                await fut2.create_order(BTC_PERP, "market", "sell", 0.01, params={"reduceOnly": True})
        finally:
            await spot2.close()
            await fut2.close()
        await fut.load_markets()
        with pytest.raises(ccxt.ExchangeError) as err:  # the stock mapping with a rewritten host
            await fut.create_order(BTC_PERP, "market", "buy", 100)
        assert not isinstance(err.value, ccxt.InsufficientFunds) and '"code":-2019' in str(err.value)

    run_scenario(scenario)
