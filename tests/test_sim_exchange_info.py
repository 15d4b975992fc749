"""The local Binance venue's USDⓈ-M market rules at Binance's real, recent values (the 2023 exchangeInfo rows ccxt
recorded: BTCUSDT tick 0.10, step 0.001, minimum notional 5, percent-price band 0.95-1.05), the 2021 capture for the
symbols those rows lack, and an operator's own capture winning over both; orders are judged by them with Binance's
USDⓈ-M error codes, and the live adapter's instruments, built from what the venue serves, round orders so the venue
accepts them."""

from __future__ import annotations

import json
from decimal import Decimal

import ccxt.pro as ccxtpro
import pytest

from basisbot.live.instruments import market_rules, perp_from_market
from basisbot.sim.engine.markets import build_market, futures_symbol_info
from basisbot.venues.binance import reference
from tests.helpers.sim_venue import BTC_PERP, run_scenario


def test_bundled_2023_rows_are_binance_exchange_info_rows():
    rows = {s["symbol"]: s for s in reference.recent_exchange_info_json()["symbols"]}
    assert set(rows) == {"BTCUSDT", "ETHUSDT", "LTCUSDT", "ADAUSDT", "XRPUSDT", "DOGEUSDT", "TRXUSDT"}
    btc = rows["BTCUSDT"]
    # numbers as Binance gives them: precisions and dates as JSON numbers, filter values as decimal strings
    assert btc["pricePrecision"] == 2 and btc["quantityPrecision"] == 3 and btc["onboardDate"] == 1569398400000
    flt = {f["filterType"]: f for f in btc["filters"]}
    assert flt["PRICE_FILTER"]["tickSize"] == "0.10" and flt["PRICE_FILTER"]["minPrice"] == "556.80"
    assert flt["MIN_NOTIONAL"]["notional"] == "5" and flt["MAX_NUM_ORDERS"]["limit"] == 200
    assert "GTD" in btc["timeInForce"]
    specs = reference.recent_perp_specs()
    assert specs["BTCUSDT"].tick_size == Decimal("0.1") and specs["ETHUSDT"].tick_size == Decimal("0.01")
    assert specs["BTCUSDT"].liquidation_fee == Decimal("0.0125")


def test_backtest_rules_stay_the_2021_capture():
    # the backtest's rules are not moved by the venue's newer rows (the quick start stays byte-identical)
    assert reference.market_specs()["BTCUSDT"].tick_size == Decimal("0.01")
    assert reference.market_specs() is reference.perp_specs()


def test_venue_market_layers_2023_rows_over_2021_and_user_file_over_both(tmp_path):
    btc = build_market("BTCUSDT")
    assert btc.perp.tick_size == Decimal("0.1") and btc.perp_price_precision == 2
    assert btc.percent_price() == (1.05, 0.95)
    assert futures_symbol_info(btc)["filters"][0]["tickSize"] == "0.10"
    # spot keeps Binance's spot rules (0.01 tick), not the perp's newer 0.10
    assert btc.spot.tick_size == Decimal("0.01") and btc.spot.step_size == Decimal("0.00001")
    sol = build_market("SOLUSDT")  # not in the 2023 rows: the 2021 capture
    assert sol.perp.tick_size == Decimal("0.001") and sol.percent_price() == (1.15, 0.85)
    # the operator's capture wins for the symbols it lists
    row = json.loads(json.dumps(next(s for s in reference.recent_exchange_info_json()["symbols"]
                                     if s["symbol"] == "BTCUSDT")))
    row["filters"][0]["tickSize"] = "1"
    row["filters"][5]["notional"] = "100"
    mine = tmp_path / "exchangeInfo.json"
    mine.write_text(json.dumps({"symbols": [row]}))
    m = build_market("BTCUSDT", exchange_info=mine)
    assert m.perp.tick_size == Decimal("1") and m.perp.min_notional == Decimal("100")
    assert futures_symbol_info(m)["filters"][0]["tickSize"] == "1"
    assert build_market("ETHUSDT", exchange_info=mine).perp.tick_size == Decimal("0.01")


def test_venue_rejects_off_tick_and_small_btc_orders_and_accepts_adapter_rounded_ones():
    async def scenario(sim, spot, fut):
        await fut.load_markets()
        market = fut.market(BTC_PERP)
        mark = float((await fut.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"}))["markPrice"])

        async def refused(params: dict) -> str:
            with pytest.raises(ccxtpro.BaseError) as err:
                await fut.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                                "timeInForce": "GTC", **params})
            return str(err.value)

        # a price with allowed decimals (pricePrecision 2) that is off the 0.10 tick: -4014
        off_tick = f"{int(mark * 1.01)}.05"
        assert '"code":-4014' in await refused({"quantity": "0.010", "price": off_tick})
        # more decimals than pricePrecision: -1111
        assert '"code":-1111' in await refused({"quantity": "0.010", "price": f"{int(mark * 1.01)}.125"})
        rules = market_rules(market)
        assert rules.tick_size == Decimal("0.10") and rules.min_notional == Decimal("5")
        assert rules.step_size == Decimal("0.001")
        # on the tick and the lot, but a notional under the 5 USDT minimum (0.001 ETH): -4164
        eth = fut.market("ETH/USDT:USDT")
        eth_mark = float((await fut.fapiPublicGetPremiumIndex({"symbol": "ETHUSDT"}))["markPrice"])
        eth_price = Decimal(str(eth_mark * 1.01)).quantize(Decimal(market_rules(eth).tick_size))
        with pytest.raises(ccxtpro.BaseError) as err:
            await fut.fapiPrivatePostOrder({"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT",
                                            "timeInForce": "GTC", "quantity": "0.001", "price": str(eth_price)})
        assert '"code":-4164' in str(err.value) and "no smaller than 5" in str(err.value)

        # the live adapter: instruments from the venue's own markets carry its tick/step, and an order priced and
        # sized by them (an arbitrary price 1% above the mark, 0.0123456 BTC) is accepted as is
        perp = perp_from_market(market, 2, reference.brackets()["BTCUSDT"], 0.0005, 0.0002)
        assert perp.price_increment.as_decimal() == Decimal("0.1")
        assert perp.size_increment.as_decimal() == Decimal("0.001")
        assert perp.min_notional.as_decimal() == Decimal("5")
        price = perp.make_price(mark * 1.0123456)
        qty = perp.make_qty(0.0123456, round_down=True)
        assert price.as_decimal() % Decimal("0.1") == 0 and str(qty) == "0.012"
        o = await fut.create_order(BTC_PERP, "limit", "sell", float(qty), float(price), {"clientOrderId": "tick-ok"})
        assert o["status"] == "open" and Decimal(str(o["price"])) == price.as_decimal()
        await fut.cancel_order(o["id"], BTC_PERP)

    run_scenario(scenario)
