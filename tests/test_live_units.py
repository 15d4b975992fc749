"""Live adapter pieces without a venue: instruments from ccxt markets, the venue time base, position parsing,
duplicate detection, credentials check."""

from __future__ import annotations

from decimal import Decimal

import pytest
from nautilus_trader.model.instruments import CryptoPerpetual, CurrencyPair
from pydantic import SecretStr

from basisbot.config.loading import load_settings
from basisbot.core.units import MS, NS
from basisbot.live.exec.client import CcxtExecutionClient
from basisbot.live.exec.orders import is_duplicate_order
from basisbot.live.instruments import (
    InstrumentError,
    find_market,
    market_rules,
    perp_from_market,
    spot_from_market,
)
from basisbot.live.node import credentials_problem
from basisbot.live.session import VenueTime
from basisbot.venues.binance import reference
from tests.helpers.live_node import write_config

# ccxt market structures as `load_markets` builds them from Binance's exchangeInfo (trimmed to what is read)
SPOT_MARKET = {
    "id": "ETHUSDT", "symbol": "ETH/USDT", "base": "ETH", "quote": "USDT", "spot": True, "swap": False,
    "precision": {"amount": 0.0001, "price": 0.01}, "limits": {"amount": {"min": 0.0001, "max": 9000.0},
                                                                "cost": {"min": 5.0}, "price": {"min": 0.01}},
    "info": {"filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
         "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "9000.00000000", "stepSize": "0.00010000"},
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True},
    ]},
}
PERP_MARKET = {
    "id": "ETHUSDT", "symbol": "ETH/USDT:USDT", "base": "ETH", "quote": "USDT", "settle": "USDT", "spot": False,
    "swap": True, "linear": True, "precision": {"amount": 0.001, "price": 0.01},
    "limits": {"amount": {"min": 0.001, "max": 10000.0}, "cost": {"min": 20.0}},
    "info": {"filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "39.86", "maxPrice": "306177", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "10000", "stepSize": "0.001"},
        {"filterType": "MIN_NOTIONAL", "notional": "20"},
    ]},
}


def test_spot_and_perp_instruments_from_ccxt_markets():
    spot = spot_from_market(SPOT_MARKET, taker_fee=0.001, maker_fee=0.0009)
    assert isinstance(spot, CurrencyPair)
    assert str(spot.id) == "ETHUSDT.BINANCE_SPOT" and spot.raw_symbol.value == "ETHUSDT"
    assert spot.price_precision == 2 and spot.size_precision == 4
    assert spot.price_increment.as_decimal() == Decimal("0.01") and spot.size_increment.as_decimal() == Decimal("0.0001")
    assert spot.min_quantity.as_decimal() == Decimal("0.0001") and spot.max_quantity.as_decimal() == Decimal("9000")
    assert spot.min_notional.as_decimal() == Decimal("5") and spot.base_currency.code == "ETH"
    assert spot.taker_fee == Decimal("0.001") and spot.maker_fee == Decimal("0.0009")

    table = reference.brackets()["ETHUSDT"]
    perp = perp_from_market(PERP_MARKET, leverage=4, table=table, taker_fee=0.0005, maker_fee=0.0002)
    assert isinstance(perp, CryptoPerpetual)
    assert str(perp.id) == "ETHUSDT-PERP.BINANCE_PERP"  # as the backtest names it
    assert perp.settlement_currency.code == "USDT" and not perp.is_inverse
    assert perp.size_precision == 3 and perp.min_notional.as_decimal() == Decimal("20")
    assert perp.min_price.as_decimal() == Decimal("39.86")
    assert perp.margin_init == Decimal("0.25") and perp.margin_maint == Decimal(str(table.brackets[0].mmr))


def test_rules_fall_back_to_ccxt_unified_fields_and_refuse_wrong_markets():
    bare = {k: v for k, v in SPOT_MARKET.items() if k != "info"}
    r = market_rules(bare)
    assert r.tick_size == Decimal("0.01") and r.step_size == Decimal("0.0001") and r.min_notional == Decimal("5")
    with pytest.raises(InstrumentError, match="not a USDⓈ-M perpetual"):
        perp_from_market(SPOT_MARKET, 3, reference.brackets()["ETHUSDT"], 0.0005, 0.0002)
    with pytest.raises(InstrumentError, match="not a spot market"):
        spot_from_market(PERP_MARKET, 0.001, 0.001)
    markets = {"ETH/USDT": SPOT_MARKET, "ETH/USDT:USDT": PERP_MARKET}
    assert find_market(markets, "ETHUSDT", kind="perp") is PERP_MARKET
    assert find_market(markets, "ETHUSDT", kind="spot") is SPOT_MARKET
    with pytest.raises(InstrumentError, match="SOLUSDT: no spot market"):
        find_market(markets, "SOLUSDT", kind="spot")


def test_venue_time_identity_calibration_speed_and_jumps():
    now = [1_700_000_000 * NS]
    vt = VenueTime(follow_jumps=True, clock_ns=lambda: now[0])
    assert vt.to_local(1_646_035_200_001) == 1_646_035_200_001 * MS  # Binance: identity
    assert not vt.observe(1_646_035_200_001)  # identity never re-anchors

    vt.calibrate(1_646_035_185_000)  # a replaying venue 15 s before a settlement
    assert vt.to_local(1_646_035_200_001) == now[0] + 15_001 * MS
    now[0] += 2 * NS
    assert vt.venue_now_ms() == 1_646_035_187_000
    assert not vt.observe(1_646_035_186_500)  # half a second late: not a jump
    assert vt.observe(1_646_045_000_000)  # the venue's clock jumped forward
    assert vt.jumps == 1 and vt.to_local(1_646_045_000_000) == now[0]

    fast = VenueTime(speed=60.0, clock_ns=lambda: now[0])
    fast.calibrate(1_000_000)
    assert fast.to_local(1_000_000 + 60_000) == now[0] + 1 * NS  # a replay minute is a wall second


def test_positions_from_user_stream_and_rest_shapes():
    ws = {"symbol": "BTC/USDT:USDT", "info": {"s": "BTCUSDT", "pa": "-0.052", "ep": "38318.64", "mt": "isolated",
                                              "iw": "199.2569", "ps": "BOTH"}}
    p = CcxtExecutionClient._norm_position(ws, None)
    assert (p.side, p.qty, p.entry, p.wallet, p.mode) == (-1, 0.052, 38318.64, 199.2569, "isolated")
    rest = {"symbol": "BTC/USDT:USDT", "contracts": 0.0, "info": {"positionAmt": "0.000", "entryPrice": "0.0",
                                                                  "isolatedWallet": "0", "marginType": "cross"}}
    p = CcxtExecutionClient._norm_position(rest, None)
    assert (p.side, p.qty, p.wallet, p.mode) == (0, 0.0, 0.0, "cross")


def test_duplicate_refusals_are_recognised():
    assert is_duplicate_order(Exception('binance {"code":-2010,"msg":"Duplicate order sent."}'))
    assert is_duplicate_order(Exception('binanceusdm {"code":-4116,"msg":"ClientOrderId is duplicated."}'))
    assert not is_duplicate_order(Exception('binance {"code":-2010,"msg":"Account has insufficient balance"}'))


def test_credentials_problem_names_the_configured_variables(tmp_path, monkeypatch):
    for var in ("BASISBOT_API_KEY", "BASISBOT_API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    cfg = write_config(tmp_path, "http://127.0.0.1:9", symbols={"BTCUSDT": {"leverage": 3}})
    s = load_settings(cfg, env_file=None)
    msg = credentials_problem(s)
    assert "BASISBOT_API_KEY" in msg and "BASISBOT_API_SECRET" in msg
    s = s.model_copy(update={"api_key": SecretStr("k")})
    assert "BASISBOT_API_SECRET" in credentials_problem(s) and "BASISBOT_API_KEY" not in credentials_problem(s)
    s = s.model_copy(update={"api_secret": SecretStr("s")})
    assert credentials_problem(s) is None
