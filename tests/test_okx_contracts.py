"""OKX contract specs: the bundled snapshot, exact contract <-> base conversion, the operator's markets file."""

import json
from decimal import Decimal

import pytest

from basisbot.venues.okx import fees
from basisbot.venues.okx.contracts import BUNDLED, OkxDataError, inst_id, load_markets, parse_markets, spec_for

# one row of OKX's GET /api/v5/public/instruments?instType=SWAP answer (as captured in ccxt's test data)
BTC_ROW = {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "ctType": "linear", "ctVal": "0.01", "ctValCcy": "BTC",
           "ctMult": "1", "lotSz": "0.1", "minSz": "0.1", "tickSz": "0.1", "settleCcy": "USDT", "state": "live"}
INVERSE = {"instType": "SWAP", "instId": "BTC-USD-SWAP", "ctType": "inverse", "ctVal": "100", "ctValCcy": "USD",
           "lotSz": "1", "minSz": "1", "tickSz": "0.1", "settleCcy": "BTC"}


def test_bundled_snapshot_and_exact_conversion():
    assert {s: (c.inst_id, c.ct_val, c.lot_sz, c.tick_sz) for s, c in BUNDLED.items()} == {
        "BTCUSDT": ("BTC-USDT-SWAP", Decimal("0.01"), 1, Decimal("0.1")),
        "ETHUSDT": ("ETH-USDT-SWAP", Decimal("0.1"), 1, Decimal("0.01")),
        "SOLUSDT": ("SOL-USDT-SWAP", 1, 1, Decimal("0.001")),
        "AVAXUSDT": ("AVAX-USDT-SWAP", 1, 1, Decimal("0.001")),
    }
    btc = BUNDLED["BTCUSDT"]
    assert btc.to_base(37) == Decimal("0.37") and btc.to_contracts(Decimal("0.37")) == 37
    assert btc.step_base == Decimal("0.01") and btc.min_base == Decimal("0.01")
    # 0.1 + 0.2 is exactly 30 contracts in Decimal (floats would give 30.000000000000004)
    assert BUNDLED["ETHUSDT"].to_contracts(Decimal("0.1") + Decimal("0.2")) == 3
    with pytest.raises(ValueError, match="not a multiple of the lot"):
        btc.to_contracts(Decimal("0.015"))
    assert inst_id("AVAXUSDT") == "AVAX-USDT-SWAP"


def test_okx_answer_and_ccxt_markets_parse_the_same():
    answer = parse_markets({"code": "0", "msg": "", "data": [BTC_ROW, INVERSE]}, "answer.json")
    ccxt = parse_markets({"BTC/USDT:USDT": {"id": "BTC-USDT-SWAP", "contractSize": 0.01, "info": BTC_ROW},
                          "BTC/USD:BTC": {"id": "BTC-USD-SWAP", "info": INVERSE}}, "ccxt.json")
    assert answer == ccxt and list(answer) == ["BTCUSDT"]
    assert answer["BTCUSDT"].lot_sz == Decimal("0.1") and answer["BTCUSDT"].step_base == Decimal("0.001")


def test_user_file_overlays_snapshot_and_missing_symbol_is_clear(tmp_path):
    f = tmp_path / "okx_instruments.json"
    f.write_text(json.dumps({"code": "0", "data": [BTC_ROW]}))
    assert load_markets(f)["BTCUSDT"].lot_sz == Decimal("0.1")
    assert spec_for("BTCUSDT", f).lot_sz == Decimal("0.1") and spec_for("SOLUSDT", f).ct_val == 1
    with pytest.raises(OkxDataError, match=r"symbol DOGEUSDT: no OKX contract spec.*--markets"):
        spec_for("DOGEUSDT", f)


@pytest.mark.parametrize("obj, message", [
    ({"timezone": "UTC", "symbols": []}, "Binance's exchangeInfo"),
    ({"BTC/USDT:USDT": {"id": "BTCUSDT", "info": {"symbol": "BTCUSDT"}}}, "another exchange"),
    ({"code": "50011", "msg": "Too Many Requests", "data": []}, "OKX answered an error"),
    ({"code": "0", "data": [INVERSE]}, "no USDT-margined linear swap"),
    ({"code": "0", "data": [{**BTC_ROW, "ctVal": "abc"}]}, r"data\[0\] \(BTC-USDT-SWAP\)\.ctVal: must be a decimal"),
    ({"code": "0", "data": [{**BTC_ROW, "ctValCcy": "USD"}]}, "is not the base coin"),
])
def test_bad_markets_files_say_what_to_supply(obj, message):
    with pytest.raises(OkxDataError, match=message):
        parse_markets(obj, "m.json")


def test_regular_user_fees():
    assert (fees.SPOT_MAKER, fees.SPOT_TAKER, fees.SWAP_MAKER, fees.SWAP_TAKER) == (
        Decimal("0.0008"), Decimal("0.001"), Decimal("0.0002"), Decimal("0.0005"))
