"""OKX position tiers (by size, in contracts) and the isolated liquidation price, pinned by hand-worked examples."""

import json
from decimal import Decimal

import pytest

from basisbot.venues.okx.contracts import OkxDataError
from basisbot.venues.okx.tiers import BUNDLED, liquidation_price, parse_tiers, table_liquidation_price, tier_tables


def test_sol_tiers_as_published_2022_11_08():
    sol = BUNDLED["SOLUSDT"]
    assert [(t.max_qty, t.mmr, t.max_leverage) for t in sol.tiers] == [
        (500, Decimal("0.01"), 75), (1000, Decimal("0.015"), 50), (4000, Decimal("0.02"), 20),
        (8000, Decimal("0.025"), Decimal("18.18"))]
    assert sol.mmr_for(500) == Decimal("0.01") and sol.mmr_for(501) == Decimal("0.015")
    # beyond tier 4: +4,000 contracts and +0.5 % per tier
    assert sol.tier_for(8001).tier == 5 and sol.mmr_for(12000) == Decimal("0.03")
    assert sol.tier_for(12001).tier == 6 and sol.mmr_for(12001) == Decimal("0.035")


def test_liquidation_price_pinned_hand_worked():
    # short 100 SOL-USDT-SWAP contracts (100 SOL) at 20.000, 400 USDT isolated margin (5x), tier 1 mmr 1 %, taker
    # 0.05 %: P = (100 x 20 + 400) / (100 x (1 + 0.01 + 0.0005)) = 2400 / 101.05
    p = table_liquidation_price(-1, Decimal(100), Decimal(20), Decimal(400), BUNDLED["SOLUSDT"])
    assert p == Decimal(2400) / Decimal("101.05")
    assert round(p, 4) == Decimal("23.7506")
    # at P the margin ratio (margin + upnl) / (mm + closing fee) is exactly 1: OKX's liquidation trigger
    q, e, m = Decimal(100), Decimal(20), Decimal(400)
    assert (m + q * (e - p)) / (q * p * (Decimal("0.01") + Decimal("0.0005"))) == pytest.approx(Decimal(1), abs=Decimal("1e-25"))
    # the long mirror: (100 x 20 - 400) / (100 x (1 - 0.0105)) = 1600 / 98.95 = 16.1698...
    assert round(table_liquidation_price(1, Decimal(100), Decimal(20), Decimal(400), BUNDLED["SOLUSDT"]), 4) == \
        Decimal("16.1698")
    # Binance's published example (short 1 BTC at 60,000, WB 12,000, mmr 0.4 %) gives 71,713.15; OKX's rule also
    # charges the closing taker fee, so the same position liquidates earlier: 72,000 / 1.0045
    assert round(liquidation_price(-1, Decimal(1), Decimal(60000), Decimal(12000), Decimal("0.004")), 2) == \
        Decimal("71677.45")
    assert liquidation_price(-1, 1.0, 60000.0, 12000.0, 0.004, 0.0005) == pytest.approx(71677.4514, abs=1e-4)


def test_operator_tier_file_okx_answer_and_ccxt(tmp_path):
    rows = [{"instFamily": "BTC-USDT", "instId": "", "tier": str(i + 1), "minSz": lo, "maxSz": hi, "mmr": mmr,
             "imr": imr, "maxLever": lev}
            for i, (lo, hi, mmr, imr, lev) in enumerate([("0", "5000", "0.004", "0.008", "125"),
                                                        ("5000", "10000", "0.005", "0.01", "100")])]
    answer = parse_tiers({"code": "0", "data": rows}, "tiers.json")
    ccxt = parse_tiers({"BTC/USDT:USDT": [{"tier": i + 1, "maintenanceMarginRate": float(r["mmr"]), "info": r}
                                          for i, r in enumerate(rows)]}, "ccxt.json")
    assert answer == ccxt
    btc = answer["BTCUSDT"]  # contracts x 0.01 BTC
    assert btc.tiers[0].max_qty == Decimal(50) and btc.mmr_for(Decimal("50.01")) == Decimal("0.005")
    with pytest.raises(ValueError, match="exceeds the last tier"):
        btc.mmr_for(101)
    f = tmp_path / "okx_tiers.json"
    f.write_text(json.dumps({"code": "0", "data": rows}))
    tables = tier_tables(f)
    assert set(tables) == {"BTCUSDT", "SOLUSDT"}


@pytest.mark.parametrize("obj, message", [
    ([{"symbol": "BTCUSDT", "brackets": [{"bracket": 1, "notionalCap": 50000, "maintMarginRatio": 0.004}]}],
     "Binance's GET /fapi/v1/leverageBracket"),
    ({"BTC/USDT:USDT": [{"tier": 1, "info": {"bracket": 1, "notionalCap": "50000", "maintMarginRatio": "0.004"}}]},
     "Binance leverage bracket"),
    ({"code": "0", "data": [{"instFamily": "DOGE-USDT", "tier": "1", "minSz": "0", "maxSz": "1", "mmr": "0.01",
                             "imr": "0.02", "maxLever": "50"}]}, "DOGEUSDT has no contract value"),
    ({"code": "0", "data": [{"instFamily": "BTC-USDT", "tier": "1", "minSz": "0", "maxSz": "1"}]}, "missing field"),
])
def test_wrong_venue_or_bad_tier_file_is_clear(obj, message):
    with pytest.raises(OkxDataError, match=message):
        parse_tiers(obj, "t.json")
