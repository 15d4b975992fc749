"""What the local venue does on its own, in Binance's shapes: liquidation, auto-deleveraging (the `adl` fault, partial
and full), insurance-fund closes, and each position's ADL quantile (`GET /fapi/v1/adlQuantile`), through the stock
ccxt.pro client and on the raw user stream.

The expected user-stream shapes are recorded Binance ORDER_TRADE_UPDATE messages as the nautilus_trader Binance
adapter keeps them for its own tests (nautechsystems/nautilus_trader,
crates/adapters/binance/test_data/futures/user_data_json/order_update_calculated.json, order_update_adl.json,
order_update_insurance.json; its SOURCES.md: taken from Binance's documented USDⓈ-M "Event: Order Update" example),
reduced below to the fields that identify a venue-initiated close. Binance's documented ACCOUNT_UPDATE reason types
("Event: Balance and Position Update", field `m`) have no ADL reason: the position change comes as "ORDER".
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from basisbot.live.venue_hooks import hooks_for
from tests.helpers.sim_venue import BTC_PERP, admin, run_scenario, state

# the nautilus_trader fixtures named above, the fields a venue-initiated close is recognised by
RECORDED = {
    "liquidation": {"c": "autoclose-1234567890", "x": "CALCULATED", "X": "FILLED", "f": "IOC", "R": True,
                    "l": "0.014", "z": "0.014"},
    "adl": {"c": "adl_autoclose_12345", "x": "CALCULATED", "X": "NEW_ADL", "f": "IOC", "R": True,
            "l": "0.005", "z": "0.005"},
    "insurance": {"c": "autoclose-insurance-5678", "x": "CALCULATED", "X": "NEW_INSURANCE", "f": "IOC", "R": True,
                  "l": "0.020", "z": "0.020"},
}
# every key of the recorded order object ("o"), less the ones Binance added later that the venue leaves out
RECORDED_KEYS = {"s", "c", "S", "o", "f", "q", "p", "ap", "sp", "x", "X", "i", "l", "z", "L", "N", "n", "T", "t",
                 "b", "a", "m", "R", "wt", "ot", "ps", "cp", "pP", "si", "ss", "rp", "V"}
ACCOUNT_REASONS = {"DEPOSIT", "WITHDRAW", "ORDER", "FUNDING_FEE", "WITHDRAW_REJECT", "ADJUSTMENT", "INSURANCE_CLEAR",
                   "ADMIN_DEPOSIT", "ADMIN_WITHDRAW", "MARGIN_TRANSFER", "MARGIN_TYPE_CHANGE", "ASSET_TRANSFER"}


def _same_shape(event: dict, kind: str) -> None:
    o = event["o"]
    rec = RECORDED[kind]
    assert RECORDED_KEYS <= set(o), RECORDED_KEYS - set(o)
    assert (o["x"], o["X"], o["f"], o["R"]) == (rec["x"], rec["X"], rec["f"], rec["R"])
    prefix = "adl_autoclose" if kind == "adl" else "autoclose-"
    assert o["c"].startswith(prefix) and rec["c"].startswith(prefix)
    assert o["o"] == o["ot"] == "LIQUIDATION"
    assert float(o["l"]) == float(o["z"]) > 0 and o["n"] == "0.00000000"  # one fill, no commission


async def refused(sim, body: dict) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.post(sim.url + "/admin/faults", json=body) as r:
            assert r.status == 400
            return await r.json()


def _listen(sim) -> list[dict]:
    events: list[dict] = []
    sim.venue.user_listeners.append(lambda account, payload: events.append(payload) if account == "futures" else None)
    return events


def test_adl_partial_then_insurance_close_in_binance_shapes():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/clock", {"pause": True})
        await fut.set_margin_mode("isolated", BTC_PERP)
        await fut.set_leverage(2, BTC_PERP)
        short = await fut.create_order(BTC_PERP, "market", "sell", 0.105)
        wallet0 = float((await fut.fetch_positions([BTC_PERP]))[0]["info"]["isolatedWallet"])
        events = _listen(sim)
        pending = asyncio.ensure_future(fut.watch_orders(BTC_PERP))
        await asyncio.sleep(0.3)

        # half the short deleveraged at the mark: 0.0525 rounds down to the lot (0.001) -> 0.052
        res = await admin(sim, "/admin/faults", {"adl": {"symbol": "BTCUSDT", "fraction": 0.5}})
        (rec,) = res["adl"]
        assert rec["kind"] == "adl" and rec["closedQty"] == pytest.approx(0.052)
        order_ev, acct_ev = events[0], events[1]
        _same_shape(order_ev, "adl")
        assert order_ev["o"]["c"] == "adl_autoclose" and order_ev["o"]["S"] == "BUY"
        assert float(order_ev["o"]["rp"]) == pytest.approx(0.052 * (short["average"] - rec["price"]), abs=1e-6)
        assert acct_ev["e"] == "ACCOUNT_UPDATE" and acct_ev["a"]["m"] == "ORDER"
        assert acct_ev["a"]["m"] in ACCOUNT_REASONS
        (p,) = acct_ev["a"]["P"]
        assert float(p["pa"]) == pytest.approx(-0.053)
        # the isolated wallet shrinks in proportion to the part closed
        assert float(p["iw"]) == pytest.approx(wallet0 * 0.053 / 0.105, rel=1e-9)

        # through ccxt.pro: the stream shows status NEW_ADL (ccxt passes unknown statuses through), REST FILLED
        seen = []
        for _ in range(10):
            seen += await asyncio.wait_for(pending, 5)
            if any(o["clientOrderId"] == "adl_autoclose" for o in seen):
                break
            pending = asyncio.ensure_future(fut.watch_orders(BTC_PERP))
        adl = next(o for o in seen if o["clientOrderId"] == "adl_autoclose")
        assert adl["status"] == "NEW_ADL" and adl["filled"] == pytest.approx(0.052)
        rest = await fut.fetch_order(adl["id"], BTC_PERP)
        assert rest["status"] == "closed" and rest["filled"] == pytest.approx(0.052)
        trades = await fut.fetch_my_trades(BTC_PERP)
        assert any(t["order"] == adl["id"] and t["amount"] == pytest.approx(0.052) for t in trades)
        (pos,) = await fut.fetch_positions([BTC_PERP])
        assert pos["contracts"] == pytest.approx(0.053) and pos["side"] == "short"

        # the rest by the insurance fund: the position is gone
        events.clear()
        res = await admin(sim, "/admin/faults", {"adl": {"symbol": "BTCUSDT", "fraction": 1, "via": "insurance"}})
        assert res["adl"][0]["closedQty"] == pytest.approx(0.053)
        _same_shape(events[0], "insurance")
        assert events[1]["a"]["m"] == "ORDER" and float(events[1]["a"]["P"][0]["pa"]) == 0.0
        assert await fut.fetch_positions([BTC_PERP]) == []
        st = await state(sim)
        assert [x["kind"] for x in st["liquidations"]] == ["adl", "insurance"]
        assert st["faults"]["injected"]["adl"] == 2

    run_scenario(scenario)


def test_adl_refused_without_a_position_or_with_bad_input():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        for spec, msg in [({"symbol": "BTCUSDT"}, "holds no futures position"),
                          ({"symbol": "BTCUSDT", "fraction": 1.5}, "fraction must be in (0, 1]"),
                          ({"fraction": 0.5}, "adl.symbol is required"),
                          ({"symbol": "BTCUSDT", "via": "magic"}, "adl.via"),
                          ({"symbol": "BTCUSDT", "price": -3}, "adl.price")]:
            res = await refused(sim, {"adl": spec})
            assert msg in res["error"], (spec, res)
        await fut.create_order(BTC_PERP, "market", "sell", 0.001)
        res = await refused(sim, {"adl": {"symbol": "BTCUSDT", "fraction": 0.5}})
        assert "less than one lot" in res["error"]

    run_scenario(scenario)


def test_adl_quantile_served_and_read_by_ccxt():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/clock", {"pause": True})
        assert await fut.fetch_positions_adl_rank([BTC_PERP]) == []  # no position: not listed
        await fut.create_order(BTC_PERP, "market", "sell", 0.01)
        (rank,) = await fut.fetch_positions_adl_rank([BTC_PERP])
        assert rank["symbol"] == BTC_PERP and rank["info"]["adlQuantile"]["BOTH"] in (1, 2, 3, 4)
        await admin(sim, "/admin/faults", {"adl_quantile": {"symbol": "BTCUSDT", "value": 4}})
        (rank,) = await fut.fetch_positions_adl_rank([BTC_PERP])
        assert rank["rank"] == 4 and rank["info"]["adlQuantile"] == {"LONG": 0, "SHORT": 0, "BOTH": 4}
        # the node reads it through the Binance hook: {ccxt symbol: quantile}, the top bucket 4
        hooks = hooks_for("binance")
        assert await hooks.adl_ranks(fut, [BTC_PERP]) == {BTC_PERP: 4} and hooks.adl_top == 4
        v2 = await fut.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})
        v3 = await fut.fapiPrivateV3GetPositionRisk({"symbol": "BTCUSDT"})
        assert v2[0]["adlQuantile"] == 4 and v3[0]["adl"] == 4
        res = await refused(sim, {"adl_quantile": {"symbol": "BTCUSDT", "value": 7}})
        assert "0..4" in res["error"]
        await admin(sim, "/admin/faults", {"adl_quantile": {"symbol": "BTCUSDT", "value": None}})
        (rank,) = await fut.fetch_positions_adl_rank([BTC_PERP])
        assert rank["rank"] != 4 or sim.venue.adl_quantile("BTCUSDT") == 4

    run_scenario(scenario)


def test_liquidation_is_pushed_as_calculated_with_the_position_and_insurance_updates():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        await admin(sim, "/admin/clock", {"pause": True})
        await fut.set_margin_mode("isolated", BTC_PERP)
        await fut.set_leverage(50, BTC_PERP)
        await fut.create_order(BTC_PERP, "market", "sell", 0.1)
        events = _listen(sim)
        await admin(sim, "/admin/clock", {"advance_s": 86400})  # 2022-03-01: BTC rallied past the 50x short's price
        i = next(i for i, e in enumerate(events) if e["e"] == "ORDER_TRADE_UPDATE")
        _same_shape(events[i], "liquidation")
        assert events[i + 1]["a"]["m"] == "ORDER" and float(events[i + 1]["a"]["P"][0]["pa"]) == 0.0
        clear = events[i + 2]
        assert clear["a"]["m"] == "INSURANCE_CLEAR" and clear["a"]["P"] == []
        assert float(clear["a"]["B"][0]["bc"]) == pytest.approx((await state(sim))["liquidations"][0]["insuranceClear"])

    run_scenario(scenario)
