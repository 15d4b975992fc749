"""The local venue speaking OKX's v5 API (``basisbot sim --exchange okx``) on the bundled OKX data: the stock
ccxt.pro ``okx`` client trades against it (hosts rewritten to 127.0.0.1, nothing else) and every result is checked
from the venue's own state; every answer the bot uses is compared, key for key and type for type, with OKX's
recorded answers (tests/data/okx_v5_recorded.json: OKX's documented examples as ccxt 4.5.90 reproduces them next
to each request, and ccxt's recorded createOrder answer from ts/src/test/static/response/okx.json)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
from decimal import Decimal
from pathlib import Path

import aiohttp
import ccxt
import ccxt.pro as ccxtpro
import pytest

from basisbot.exchange.ccxt_setup import non_local_urls, use_local_okx_venue
from basisbot.sim import SimConfig, SimServer
from basisbot.sim.server import config_from_args
from basisbot.venues.okx.contracts import BUNDLED

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "backtests" / "data" / "okx"
KEY, SECRET, PASS = "okxkey", "okxsecret", "okx-pass"
RECORDED = json.loads((ROOT / "tests" / "data" / "okx_v5_recorded.json").read_text())["endpoints"]
BTC, BTC_SWAP = "BTC/USDT", "BTC/USDT:USDT"


def run(scenario, **cfg):
    async def main():
        conf = SimConfig(data_dir=DATA, api_key=KEY, api_secret=SECRET, exchange="okx", api_passphrase=PASS,
                         speed=60.0, start="2022-03-01", symbols=["BTCUSDT", "ETHUSDT"], **cfg)
        async with SimServer(conf) as sim:
            ex = ccxtpro.okx({"apiKey": KEY, "secret": SECRET, "password": PASS})
            use_local_okx_venue(ex, sim.url)
            try:
                await scenario(sim, ex)
            finally:
                await ex.close()
    asyncio.run(asyncio.wait_for(main(), 60))


async def admin(sim, path, body=None):
    async with aiohttp.ClientSession() as s:
        async with (s.post(sim.url + path, json=body) if body is not None else s.get(sim.url + path)) as r:
            return await r.json()


def signed_headers(method: str, path: str, body: str = "", *, secret=SECRET, passphrase=PASS, skew_s: float = 0):
    ts = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew_s)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    sig = base64.b64encode(hmac.new(secret.encode(), (ts + method + path + body).encode(), hashlib.sha256)
                           .digest()).decode()
    return {"OK-ACCESS-KEY": KEY, "OK-ACCESS-SIGN": sig, "OK-ACCESS-TIMESTAMP": ts, "OK-ACCESS-PASSPHRASE": passphrase,
            "Content-Type": "application/json"}


async def call(sim, method: str, path: str, body=None, **kw):
    text = json.dumps(body) if body is not None else ""
    async with aiohttp.ClientSession() as s:
        async with s.request(method, sim.url + path, data=text or None,
                             headers=signed_headers(method, path, text, **kw)) as r:
            return r.status, await r.json()


def test_ccxt_okx_client_trades_both_legs_against_the_venue():
    """load_markets, balance, set_leverage, market orders on spot and swap with clientOrderId, fetch_order,
    fetch_my_trades, positions, isolated margin added, a repeated clOrdId refused, funding booked as a bill."""

    async def scenario(sim, ex):
        assert non_local_urls(ex, sim.url) == []
        await ex.load_markets()
        assert set(ex.markets) == {"BTC/USDT", "ETH/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"}
        swap = ex.market(BTC_SWAP)
        assert swap["contractSize"] == float(BUNDLED["BTCUSDT"].ct_val) == 0.01
        assert swap["precision"]["price"] == 0.1 and swap["limits"]["amount"]["min"] == 1
        bal = await ex.fetch_balance()
        assert bal["total"]["USDT"] == 150_000.0  # one account: the engine's spot and swap wallets together

        lev = await ex.set_leverage(2, BTC_SWAP, {"marginMode": "isolated"})
        assert lev["data"][0]["lever"] == "2"
        spot = await ex.create_order(BTC, "market", "buy", 0.1, None, {"clientOrderId": "spotleg1"})
        perp = await ex.create_order(BTC_SWAP, "market", "sell", 10, None,
                                     {"clientOrderId": "perpleg1", "marginMode": "isolated"})
        st = await admin(sim, "/admin/state")
        pos = next(p for p in st["futures"]["positions"] if p["symbol"] == "BTCUSDT")
        assert Decimal(str(pos["positionAmt"])) == Decimal("-0.1")  # 10 contracts x 0.01 BTC
        assert pos["marginType"] == "ISOLATED" and pos["leverage"] == 2
        assert st["spot"]["BTC"]["free"] == pytest.approx(0.1 * (1 - 0.001))  # fee taken in the asset received

        o = await ex.fetch_order(perp["id"], BTC_SWAP)
        assert o["clientOrderId"] == "perpleg1" and o["status"] == "closed" and o["filled"] == 10
        o2 = await ex.fetch_order(None, BTC, {"clOrdId": "spotleg1"})
        assert o2["id"] == spot["id"] and o2["filled"] == pytest.approx(0.1)
        fills = await ex.fetch_my_trades(BTC_SWAP)
        assert [(f["order"], f["amount"], f["side"]) for f in fills] == [(perp["id"], 10, "sell")]
        orders = await admin(sim, "/admin/orders")
        venue_fill = orders["futures"][0]["trades"][0]
        assert fills[0]["price"] == pytest.approx(venue_fill["price"])
        assert fills[0]["fee"]["cost"] == pytest.approx(venue_fill["commission"])

        [p] = await ex.fetch_positions([BTC_SWAP])
        assert (p["contracts"], p["side"], p["marginMode"], p["leverage"]) == (10, "short", "isolated", 2)
        assert p["liquidationPrice"] == pytest.approx(pos["liquidationPrice"])
        assert p["info"]["adl"] in {"1", "2", "3", "4", "5"}

        # add margin: ccxt 4.5.90's add_margin sends this request and then fails parsing OKX's answer
        # (parse_margin_modification indexes a string), so the implicit method is called as add_margin calls it
        res = await ex.privatePostAccountPositionMarginBalance(
            {"instId": "BTC-USDT-SWAP", "posSide": "net", "type": "add", "amt": "100"})
        assert res["code"] == "0" and res["data"][0]["amt"] == "100"
        st2 = await admin(sim, "/admin/state")
        pos2 = next(p for p in st2["futures"]["positions"] if p["symbol"] == "BTCUSDT")
        assert pos2["isolatedWallet"] == pytest.approx(pos["isolatedWallet"] + 100)

        with pytest.raises(ccxt.InvalidOrder, match="51016"):  # a repeated clOrdId is refused, as OKX does
            await ex.create_order(BTC_SWAP, "market", "sell", 1, None,
                                  {"clientOrderId": "perpleg1", "marginMode": "isolated"})
        orders = await admin(sim, "/admin/orders")
        assert [o["clientOrderId"] for o in orders["futures"]] == ["perpleg1"]

        await admin(sim, "/admin/clock", {"time": "2022-03-01T08:00:01Z"})
        st3 = await admin(sim, "/admin/state")
        [paid] = [f for f in st3["funding"] if f["symbol"] == "BTCUSDT"]
        hist = await ex.fetch_funding_history(BTC_SWAP)
        assert [(h["timestamp"], h["amount"]) for h in hist] == [(paid["time"], pytest.approx(paid["payment"]))]
        bills = await ex.privateGetAccountBills({"type": "8"})
        assert bills["data"][0]["subType"] in ("173", "174") and bills["data"][0]["sz"] == "10"
        rates = await ex.fetch_funding_rate_history(BTC_SWAP, limit=5)
        assert rates[-1]["timestamp"] == paid["time"] and rates[-1]["fundingRate"] == pytest.approx(paid["rate"])

    run(scenario)


def test_ccxt_okx_market_data_and_streams():
    """fetch_funding_rate, fetch_mark_price, watch_mark_price, watch_funding_rate, watch_orders, watch_positions."""

    async def scenario(sim, ex):
        await ex.load_markets()
        st = await admin(sim, "/admin/state")
        fr = await ex.fetch_funding_rate(BTC_SWAP)
        assert fr["fundingTimestamp"] == st["prices"]["BTCUSDT"]["nextFundingTime"]
        assert fr["interval"] == "8h" and fr["fundingRate"] == pytest.approx(
            st["prices"]["BTCUSDT"]["predictedFundingRate"], abs=1e-6)
        mp = await ex.fetch_mark_price(BTC_SWAP)
        assert mp["markPrice"] == pytest.approx(st["prices"]["BTCUSDT"]["mark"], rel=1e-3)
        wm = await asyncio.wait_for(ex.watch_mark_price(BTC_SWAP), 5)
        assert wm["markPrice"] == pytest.approx(st["prices"]["BTCUSDT"]["mark"], rel=1e-3)
        wf = await asyncio.wait_for(ex.watch_funding_rate(BTC_SWAP), 5)
        assert wf["fundingTimestamp"] == fr["fundingTimestamp"]

        watch_o = asyncio.ensure_future(ex.watch_orders())
        await asyncio.sleep(0.3)
        snapshot = await asyncio.wait_for(ex.watch_positions(), 5)  # OKX sends a snapshot on subscription
        assert snapshot == [] or all(p["contracts"] == 0 for p in snapshot)
        watch_p = asyncio.ensure_future(ex.watch_positions())
        await asyncio.sleep(0.2)
        await ex.create_order(BTC_SWAP, "market", "sell", 3, None, {"clientOrderId": "wsleg1"})
        got = await asyncio.wait_for(watch_o, 5)
        assert got[-1]["clientOrderId"] == "wsleg1"
        pushed = await asyncio.wait_for(watch_p, 5)
        st = await admin(sim, "/admin/state")
        venue_pos = next(p for p in st["futures"]["positions"] if p["symbol"] == "BTCUSDT")
        assert [(p["symbol"], p["contracts"], p["side"]) for p in pushed] == [(BTC_SWAP, 3, "short")]
        assert Decimal(str(venue_pos["positionAmt"])) == Decimal("-0.03")
        assert venue_pos["marginType"] == "CROSSED"  # ccxt's default tdMode

    run(scenario)


def _type_name(v) -> str:
    return type(v).__name__


def _check_shape(name: str, got: dict, want: dict) -> list[str]:
    problems = [f"{name}: missing {k}" for k in want if k not in got]
    problems += [f"{name}: {k} is {_type_name(got[k])}, OKX sends {_type_name(v)}" for k, v in want.items()
                 if k in got and type(got[k]) is not type(v)]
    return problems


def test_every_endpoint_answers_like_okx():
    """Each endpoint the bot uses: OKX's envelope, and its data row has every key of OKX's recorded answer, each with
    the same JSON type."""

    async def scenario(sim, ex):
        problems: list[str] = []
        await call(sim, "POST", "/api/v5/account/set-leverage",
                   {"instId": "BTC-USDT-SWAP", "lever": "3", "mgnMode": "isolated"})
        status, placed = await call(sim, "POST", "/api/v5/trade/order", {
            "instId": "BTC-USDT-SWAP", "tdMode": "isolated", "side": "sell", "ordType": "market", "sz": "5",
            "clOrdId": "shape1"})
        assert status == 200 and placed["code"] == "0"
        await call(sim, "POST", "/api/v5/trade/order", {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy",
                                                        "ordType": "market", "sz": "0.05", "tgtCcy": "base_ccy"})
        status, resting = await call(sim, "POST", "/api/v5/trade/batch-orders", [{
            "instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "0.01", "px": "30000",
            "clOrdId": "rest1"}])
        await admin(sim, "/admin/clock", {"time": "2022-03-01T08:00:01Z"})
        ws_rows = await _ws_rows(sim)
        for key, want in RECORDED.items():
            if key.startswith("WS "):
                got = ws_rows[key[3:]]
            else:
                method, _, target = key.partition(" ")
                target = target.split(" ")[0]
                body = None
                if key == "POST /api/v5/account/set-leverage":
                    body = {"instId": "BTC-USDT-SWAP", "lever": "3", "mgnMode": "isolated"}
                elif key == "POST /api/v5/account/position/margin-balance":
                    body = {"instId": "BTC-USDT-SWAP", "posSide": "net", "type": "add", "amt": "10"}
                elif key == "POST /api/v5/trade/batch-orders":
                    got = resting["data"][0]
                    problems += _check_shape(key, got, want)
                    continue
                elif key == "POST /api/v5/trade/order":
                    body = {"instId": "ETH-USDT-SWAP", "tdMode": "cross", "side": "sell", "ordType": "market",
                            "sz": "1"}
                elif key == "POST /api/v5/trade/cancel-order":
                    body = {"instId": "BTC-USDT", "clOrdId": "rest1"}
                elif key == "GET /api/v5/trade/order":
                    target = "/api/v5/trade/order?instId=BTC-USDT-SWAP&clOrdId=shape1"
                elif key == "GET /api/v5/trade/orders-pending":
                    await call(sim, "POST", "/api/v5/trade/order", {
                        "instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "0.01",
                        "px": "30000", "clOrdId": "rest2"})
                status, answer = await call(sim, method, target, body)
                assert status == 200 and answer["code"] == "0" and answer["msg"] == "", (key, answer)
                assert isinstance(answer["data"], list) and answer["data"], (key, answer)
                got = answer["data"][0]
                if key.endswith("details[0]"):
                    got = got["details"][0]
            problems += _check_shape(key, got, want)
        assert problems == []

    run(scenario)


async def _ws_rows(sim) -> dict:
    """The first data row of each channel, public and private."""
    rows: dict = {}
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(sim.ws_url + "/ws/v5/public") as pub:
            await pub.send_json({"op": "subscribe", "args": [
                {"channel": "mark-price", "instId": "BTC-USDT-SWAP"},
                {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"},
                {"channel": "tickers", "instId": "BTC-USDT"}]})
            while len(rows) < 3:
                msg = json.loads((await pub.receive(timeout=5)).data)
                if "data" in msg:
                    rows.setdefault(msg["arg"]["channel"], msg["data"][0])
        async with s.ws_connect(sim.ws_url + "/ws/v5/private") as prv:
            ts = str(int(dt.datetime.now(dt.UTC).timestamp()))
            sign = base64.b64encode(hmac.new(SECRET.encode(), (ts + "GET/users/self/verify").encode(),
                                             hashlib.sha256).digest()).decode()
            await prv.send_json({"op": "login", "args": [{"apiKey": KEY, "passphrase": PASS, "timestamp": ts,
                                                          "sign": sign}]})
            login = json.loads((await prv.receive(timeout=5)).data)
            assert login["event"] == "login" and login["code"] == "0"
            await prv.send_json({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"},
                                                             {"channel": "positions", "instType": "ANY"},
                                                             {"channel": "account"}]})
            await asyncio.sleep(0.2)
            await call(sim, "POST", "/api/v5/trade/order", {"instId": "BTC-USDT-SWAP", "tdMode": "isolated",
                                                            "side": "sell", "ordType": "market", "sz": "1"})
            while len(rows) < 6:
                msg = json.loads((await prv.receive(timeout=5)).data)
                if msg.get("data"):
                    rows.setdefault(msg["arg"]["channel"], msg["data"][0])
    return rows


def test_okx_authentication_and_refusals():
    async def scenario(sim, ex):
        path = "/api/v5/account/balance"
        status, ok = await call(sim, "GET", path)
        assert status == 200 and ok["code"] == "0"
        status, bad = await call(sim, "GET", path, secret="wrong")
        assert (status, bad["code"]) == (401, "50113")
        status, bad = await call(sim, "GET", path, passphrase="wrong")
        assert (status, bad["code"]) == (401, "50105")
        status, bad = await call(sim, "GET", path, skew_s=-31)
        assert (status, bad["code"]) == (401, "50102")
        async with aiohttp.ClientSession() as s:
            async with s.get(sim.url + path) as r:
                assert r.status == 401 and (await r.json())["code"] == "50103"
        # websocket login with a bad sign, then a private subscription before login
        async with aiohttp.ClientSession() as s, s.ws_connect(sim.ws_url + "/ws/v5/private") as ws:
            ts = str(int(dt.datetime.now(dt.UTC).timestamp()))
            await ws.send_json({"op": "login", "args": [{"apiKey": KEY, "passphrase": PASS, "timestamp": ts,
                                                         "sign": "x"}]})
            assert json.loads((await ws.receive(timeout=5)).data)["code"] == "60007"
            await ws.send_json({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
            assert json.loads((await ws.receive(timeout=5)).data)["code"] == "60011"
            await ws.send_str("ping")
            assert (await ws.receive(timeout=5)).data == "pong"
        # order-level refusals, as ccxt maps them
        await ex.load_markets()
        with pytest.raises(ccxt.InsufficientFunds):  # 1,000 BTC: beyond BTC's recorded tier 1, not beyond OKX's tiers
            await ex.create_order(BTC_SWAP, "market", "sell", 100_000, None, {"marginMode": "isolated"})
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.create_order("ETH/USDT:USDT", "market", "sell", 100_000, None, {"marginMode": "isolated"})
        with pytest.raises(ccxt.InvalidOrder, match="51121"):  # not a whole contract (lot 1): ccxt would round it
            await ex.privatePostTradeOrder({"instId": "BTC-USDT-SWAP", "tdMode": "cross", "side": "sell",
                                            "ordType": "market", "sz": "1.5"})
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order("123", BTC_SWAP)
        with pytest.raises(ccxt.BadSymbol):
            await ex.publicGetPublicFundingRate({"instId": "DOGE-USDT-SWAP"})

    run(scenario)


def test_fault_matrix_faults_come_out_as_okx_errors():
    async def scenario(sim, ex):
        await ex.load_markets()
        await admin(sim, "/admin/faults", {"fail_next": {"count": 1, "status": 429}})
        with pytest.raises(ccxt.RateLimitExceeded):
            await ex.fetch_balance()
        await admin(sim, "/admin/faults", {"fail_next": {"count": 1, "status": 503, "body": "json"}})
        with pytest.raises(ccxt.OnMaintenance):  # 50001
            await ex.fetch_balance()
        await admin(sim, "/admin/faults", {"reject_next_order": {"venue": "futures"}})
        with pytest.raises(ccxt.InsufficientFunds, match="51008"):
            await ex.create_order(BTC_SWAP, "market", "sell", 1, None, {"clientOrderId": "rej1"})
        await admin(sim, "/admin/faults", {"partial_fill_next": {"venue": "futures", "fraction": 0.5}})
        o = await ex.create_order(BTC_SWAP, "market", "sell", 4, None, {"clientOrderId": "part1"})
        got = await ex.fetch_order(o["id"], BTC_SWAP)
        assert (got["filled"], got["status"]) == (2, "canceled")  # market rest cancelled, as OKX reports it
        await admin(sim, "/admin/faults", {"timeout_next_order": {"venue": "spot", "mode": "drop"}})
        with pytest.raises(ccxt.NetworkError):
            await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "lost1"})
        orders = await admin(sim, "/admin/orders")
        assert [o["clientOrderId"] for o in orders["spot"]] == ["lost1"]  # booked although the answer was lost
        assert (await ex.fetch_order(None, BTC, {"clOrdId": "lost1"}))["status"] == "closed"

    run(scenario)


def test_cli_config_and_data_venue():
    ns = argparse.Namespace(data=str(DATA), port=0, speed=60.0, start="2022-03-01", api_key="k", api_secret="s",
                            exchange="okx", api_passphrase="p")
    cfg, _ = config_from_args(ns)
    assert (cfg.exchange, cfg.api_passphrase) == ("okx", "p")
    with pytest.raises(ValueError, match="Binance"):
        asyncio.run(SimServer(SimConfig(data_dir=ROOT / "backtests" / "data" / "binance", api_key="k",
                                        api_secret="s", exchange="okx", api_passphrase="p")).start())


def test_position_tiers_are_okx_tiers_where_bundled():
    """SOLUSDT has OKX's own tier table (venues/okx/tiers.py): position-tiers serves it in contracts, and the engine
    liquidates by it (tier 1 mmr 1 % up to 500 contracts)."""

    async def scenario(sim, ex):
        status, ans = await call(sim, "GET", "/api/v5/public/position-tiers?instType=SWAP&tdMode=isolated"
                                             "&instFamily=SOL-USDT")
        assert status == 200
        rows = [(r["tier"], r["minSz"], r["maxSz"], r["mmr"], r["imr"], r["maxLever"]) for r in ans["data"]]
        assert rows[:4] == [
            ("1", "0", "500", "0.01", "0.013", "75"), ("2", "500", "1000", "0.015", "0.02", "50"),
            ("3", "1000", "4000", "0.02", "0.05", "20"), ("4", "4000", "8000", "0.025", "0.055", "18.18")]
        # beyond the listed tiers, OKX's step rule (+4,000 contracts, +0.5 %) up to the tier at 1x
        assert rows[4] == ("5", "8000", "12000", "0.03", "0.06", "16.66")
        assert rows[-1] == (str(len(rows)), str(8000 + 4000 * (len(rows) - 5)), str(8000 + 4000 * (len(rows) - 4)),
                            "0.97", "1", "1") and len(rows) == 193
        table = sim.markets["SOLUSDT"].table
        mark = sim.venue.mark("SOLUSDT")
        assert table.brackets[0].mmr == 0.01
        assert table.brackets[0].notional_cap == pytest.approx(500 * mark, rel=0.05)  # sizes at the start price

    conf_symbols = ["SOLUSDT"]

    async def main():
        conf = SimConfig(data_dir=DATA, api_key=KEY, api_secret=SECRET, exchange="okx", api_passphrase=PASS,
                         speed=60.0, start="2022-11-10", symbols=conf_symbols)
        async with SimServer(conf) as sim:
            await scenario(sim, None)
    asyncio.run(asyncio.wait_for(main(), 60))


def _okx_engine(fee: float, leverage: int, usdt: float = 100_000.0):
    """The engine behind the local OKX venue, driven directly on the bundled OKX BTCUSDT data from 2022-03-01 07:00
    (paused replay clock), with its markets built as `basisbot sim --exchange okx` builds them."""
    from basisbot.sim.engine.clock import ReplayClock
    from basisbot.sim.engine.core import Venue
    from basisbot.sim.engine.faults import FaultState
    from basisbot.sim.engine.prices import load_paths
    from basisbot.sim.okx.api import build_markets

    cfg = SimConfig(data_dir=DATA, api_key=KEY, api_secret=SECRET, exchange="okx", api_passphrase=PASS,
                    futures_taker_fee=fee, futures_usdt=usdt, default_leverage=leverage,
                    default_margin_type="ISOLATED")
    paths = {"BTCUSDT": load_paths(str(DATA), "BTCUSDT")}
    start = int(dt.datetime(2022, 3, 1, 7, tzinfo=dt.UTC).timestamp() * 1000)
    markets, _ = build_markets(["BTCUSDT"], paths, start, None, None, DATA, taker_fee=fee)
    clock = ReplayClock(start, paths["BTCUSDT"].end_ms, speed=1, paused=True)
    return Venue(cfg, markets, paths, clock, FaultState(adl_top=5))


def _okx_short_liquidation(v, qty: str) -> dict:
    """Open an isolated short of `qty` BTC and replay hour by hour until the venue liquidates it (90 days at most)."""
    o = v.futures_new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": qty})
    assert o.status == "FILLED"
    for _ in range(90 * 24):
        if v.liquidations:
            break
        v.clock.jump_to(v.t + 3_600_000)
        v.sync()
    [liq] = v.liquidations
    return liq


@pytest.mark.parametrize(("qty", "mmr"), [("1", "0.004"), ("10", "0.005")])
def test_okx_engine_liquidates_an_isolated_short_at_okx_price(qty, mmr):
    """The local OKX venue liquidates an isolated short where OKX's pinned formula puts it (venues/okx/tiers.py:
    P = (q·E + M) / (q·(1 + mmr + f)), f the venue's taker fee), not at Binance's (mmr and cum, no fee): 1 BTC is in
    OKX's recorded tier 1 (mmr 0.4 %); 10 BTC is beyond it, where the venue takes the size (real OKX does) and
    margins it by the bundled USDⓈ-M stand-in (about 430,000 USDT at the start price: mmr 0.5 %)."""
    from basisbot.core import margin
    from basisbot.venues.okx import tiers

    fee = 0.0007  # a taker fee above OKX's regular 0.05 %: the venue's own fee moves the price
    v = _okx_engine(fee, leverage=50)
    m = v.markets["BTCUSDT"]
    assert v.fut.max_notional("BTCUSDT", 50) > 30 * v.mark("BTCUSDT")  # no cap at OKX's recorded tier 1 (5 BTC)
    liq = _okx_short_liquidation(v, qty)
    q, entry, wallet = Decimal(qty), Decimal(repr(liq["entryPrice"])), Decimal(repr(liq["isolatedWalletLost"]))
    okx_price = tiers.liquidation_price(-1, q, entry, wallet, Decimal(mmr), Decimal(repr(fee)))
    assert liq["positionAmt"] == -float(q) and liq["marginType"] == "isolated"
    assert liq["price"] == pytest.approx(float(okx_price), rel=1e-12)
    binance_price = margin.liquidation_price(-1, float(q), liq["entryPrice"], liq["isolatedWalletLost"], m.table)
    assert binance_price - liq["price"] > 0.0006 * liq["price"]  # the fee term f / (1 + mmr): Binance's is later
    # the market carries OKX's tiers with the venue's fee, the tier of the size being the one the price used
    assert m.tiers.fee == Decimal(repr(fee)) and m.tiers.mmr_for(q) == Decimal(mmr)



def test_venue_tiers_cap_only_where_the_table_is_complete():
    """A partial OKX table (BTCUSDT: tier 1 only) is completed beyond its last tier by the bundled USDⓈ-M stand-in,
    never looser than the listed tier; a complete table without a step rule (OKX's own answer) is the cap."""
    from dataclasses import replace

    from basisbot.sim.okx.instruments import venue_tiers
    from basisbot.venues.binance import reference
    from basisbot.venues.okx import tiers

    btc, stand_in, ct = tiers.BUNDLED["BTCUSDT"], reference.bracket_tables()["BTCUSDT"], Decimal("0.01")
    assert btc.partial and not tiers.BUNDLED["SOLUSDT"].partial
    t = venue_tiers("BTCUSDT", btc, stand_in, 40_000.0, ct)
    assert t.tiers[0] == btc.tiers[0] and not t.partial
    # Binance's first bracket (150x, up to 300,000 USDT = 750 BTC-USDT-SWAP contracts at 40,000) no looser than 125x
    assert (t.tiers[1].min_qty, t.tiers[1].max_qty, t.tiers[1].mmr, t.tiers[1].max_leverage) == (
        Decimal(5), Decimal("7.50"), Decimal("0.004"), Decimal(125))
    assert t.tiers[2].mmr == Decimal("0.005") and t.tiers[2].max_leverage == 100
    assert t.tiers[-1].max_qty == Decimal(45_000) and t.tiers[-1].max_leverage == 1  # 1.8e9 USDT at 40,000
    assert venue_tiers("BTCUSDT", btc, None, 40_000.0, ct).tiers == btc.tiers  # nothing known beyond: listed only
    whole = replace(btc, partial=False)  # e.g. OKX's own answer of one tier: its last tier is OKX's largest size
    assert venue_tiers("BTCUSDT", whole, stand_in, 40_000.0, ct).tiers == btc.tiers
    assert tiers.table_from_rows("BTCUSDT", tiers.table_rows(btc)) == btc  # the flag survives a strategy config
