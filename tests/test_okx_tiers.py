"""OKX position tiers (by size, in contracts) and the isolated liquidation price, pinned by hand-worked examples."""

import json
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pandas as pd
import pytest

from basisbot.venues.okx.contracts import OkxDataError
from basisbot.venues.okx.tiers import (
    BUNDLED,
    BUNDLED_WINDOW_START,
    PUBLISHED,
    liquidation_price,
    missing_tiers_message,
    parse_tiers,
    table_from_rows,
    table_liquidation_price,
    table_rows,
    tier_tables,
)


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


def _d(x):
    return Decimal(str(x))


def test_published_tables_dated_in_contracts_converted_to_base():
    # ETH-USDT-SWAP: 0.1 ETH a contract, so 3,000 / 6,000 / 12,000 contracts are 300 / 600 / 1,200 ETH
    eth = PUBLISHED["ETHUSDT"][-1]
    assert eth.effective == "2021-06-11T09:00:00Z" and "4402607424781" in eth.source
    assert [(t.max_qty, t.mmr, t.imr, t.max_leverage) for t in eth.tiers] == [
        (300, _d("0.004"), _d("0.008"), 125), (600, _d("0.005"), _d("0.01"), 100),
        (1200, _d("0.01"), _d("0.015"), _d("66.66"))]
    assert eth.mmr_for(300) == _d("0.004") and eth.mmr_for(_d("300.1")) == _d("0.005")  # one contract more
    # beyond 12,000 contracts: +12,000 contracts and +0.5 % per tier, leverage that of the tier's imr
    t4 = eth.tier_for(_d("1200.1"))
    assert (t4.tier, t4.max_qty, t4.mmr, t4.imr, t4.max_leverage) == (4, 2400, _d("0.015"), _d("0.02"), 50)
    # AVAX-USDT-SWAP: 1 AVAX a contract; the copy read gives no rates past 1,500 contracts, so larger sizes are refused
    avax = PUBLISHED["AVAXUSDT"][-1]
    assert avax.effective == "2021-03-04T10:00:00Z" and "360057232692" in avax.source
    assert [(t.max_qty, t.mmr, t.max_leverage) for t in avax.tiers] == [
        (375, _d("0.01"), 75), (750, _d("0.015"), 50), (1500, _d("0.02"), 20)]
    with pytest.raises(ValueError, match=r"AVAXUSDT: position of 1501 exceeds the last tier \(1500\)"):
        avax.tier_for(1501)
    sol = PUBLISHED["SOLUSDT"][-1]
    assert sol.effective == "2022-11-08T06:30:00Z" and sol is BUNDLED["SOLUSDT"]


def test_btc_tiers_as_recorded_2022_02_11():
    # OKX's position-tiers answer for BTC-USDT swaps printed by ccxt (PR 11938): tier 1 up to 500 contracts of
    # 0.01 BTC (5 BTC), mmr 0.40 %, imr 0.80 %, 125x; the print elides tiers 2..99, so larger sizes are refused
    btc = BUNDLED["BTCUSDT"]
    assert btc is PUBLISHED["BTCUSDT"][-1]
    assert btc.effective == "2022-02-11T23:45:19Z" and "ccxt/ccxt/pull/11938" in btc.source
    assert [(t.tier, t.min_qty, t.max_qty, t.mmr, t.imr, t.max_leverage) for t in btc.tiers] == [
        (1, 0, 5, _d("0.004"), _d("0.008"), 125)]
    assert btc.mmr_for(5) == _d("0.004") and btc.max_qty_at_leverage(2) == 5 and btc.max_qty_at_leverage(126) is None
    with pytest.raises(ValueError, match=r"BTCUSDT: position of 5.01 exceeds the last tier \(5.00\)"):
        btc.tier_for(_d("5.01"))  # one contract more
    # short 1 BTC at 40,000 with 8,000 USDT (5x): 48,000 / 1.0045, the same rule as the pinned examples
    assert round(table_liquidation_price(-1, _d(1), _d(40000), _d(8000), btc), 2) == _d("47784.97")


def test_bundled_for_the_data_window_tables_in_force_inside_it_and_btc_record():
    # the bundled data run 2022-03-01..2023-12-31: SOL's table took effect inside it; BTC's is the record of
    # 2022-02-11, the only BTC-USDT swap table found; the ETH and AVAX tables took effect in 2021 and OKX adjusted
    # tiers since, so those two need the operator's file
    assert set(BUNDLED) == {"SOLUSDT", "BTCUSDT"}
    assert all(t.effective >= BUNDLED_WINDOW_START for s, t in BUNDLED.items() if s != "BTCUSDT")
    eth_msg = missing_tiers_message("ETHUSDT")
    assert "took effect on 2021-06-11, before the bundled data" in eth_msg and "--brackets okx_tiers.json" in eth_msg
    assert "BTCUSDT, SOLUSDT" in eth_msg
    doge_msg = missing_tiers_message("DOGEUSDT", "my_tiers.json")
    assert "nor in my_tiers.json" in doge_msg and "took effect" not in doge_msg
    assert "position-tiers?instType=SWAP&tdMode=isolated" in doge_msg


def test_liquidation_uses_the_tables_taker_fee():
    """A user's own taker fee moves OKX's liquidation price: the closing fee is the table's (`with_fee`), the
    regular user's 0.05 % by default; the maintenance the margin math reads uses the same fee."""
    sol = BUNDLED["SOLUSDT"]
    assert sol.fee == _d("0.0005") and sol.with_fee(0.0005) is sol
    vip = sol.with_fee(0.0002)
    # short 100 SOL at 20.000 with 400 USDT, tier 1 mmr 1 %, taker 0.02 %: 2,400 / (100 x 1.0102) = 23.7577
    p = table_liquidation_price(-1, _d(100), _d(20), _d(400), vip)
    assert p == _d(2400) / _d("101.02") and round(p, 4) == _d("23.7577")
    assert _trigger(-1, _d(100), _d(20), _d(400), p, _d("0.01"), _d("0.0002")) == pytest.approx(_d(1), abs=_d("1e-25"))
    # the default table still gives the pinned 23.7506; an explicit fee argument overrides the table's
    assert round(table_liquidation_price(-1, _d(100), _d(20), _d(400), sol), 4) == _d("23.7506")
    assert table_liquidation_price(-1, _d(100), _d(20), _d(400), sol, _d("0.0002")) == p
    assert vip.maintenance_at(100.0, float(p)) == pytest.approx(float(p) * 100 * 0.0102, rel=1e-12)
    # the fee travels with the table through a strategy config's rows; the regular user's rate is not written
    assert "takerFee" not in table_rows(sol)[0] and table_rows(vip)[0]["takerFee"] == "0.0002"
    assert table_from_rows("SOLUSDT", table_rows(vip)) == vip and table_from_rows("SOLUSDT", table_rows(sol)) == sol
    with pytest.raises(ValueError, match="taker fee must be a fraction of notional"):
        sol.with_fee(-0.001)


def _trigger(side, q, e, m, p, mmr, f=_d("0.0005")):
    """OKX's isolated margin ratio (margin + upnl) / (maintenance margin + closing taker fee) at price p."""
    return (m + side * q * (p - e)) / (q * p * (mmr + f))


@pytest.mark.parametrize("symbol, side, q, e, tier, mmr, expected, rounded", [
    # 5x isolated (margin = notional / 5): P = E (1 + 1/5) / (1 + mmr + f) for a short, E (1 - 1/5) / (1 - mmr - f)
    # for a long, whatever the size; one contract across a tier boundary moves the price by the mmr step
    ("SOLUSDT", -1, 500, 20, 1, "0.01", _d(24) / _d("1.0105"), "23.7506"),
    ("SOLUSDT", -1, 501, 20, 2, "0.015", _d(24) / _d("1.0155"), "23.6337"),
    ("ETHUSDT", -1, 300, 2000, 1, "0.004", _d(2400) / _d("1.0045"), "2389.2484"),
    ("ETHUSDT", -1, "300.1", 2000, 2, "0.005", _d(2400) / _d("1.0055"), "2386.8722"),
    ("AVAXUSDT", 1, 375, 20, 1, "0.01", _d(16) / _d("0.9895"), "16.1698"),
    ("AVAXUSDT", 1, 376, 20, 2, "0.015", _d(16) / _d("0.9845"), "16.2519"),
])
def test_liquidation_price_pinned_per_symbol_across_a_tier_boundary(symbol, side, q, e, tier, mmr, expected, rounded):
    table = PUBLISHED[symbol][-1]
    q, e = _d(q), _d(e)
    margin = q * e / 5
    assert table.tier_for(q).tier == tier and table.mmr_for(q) == _d(mmr)
    p = table_liquidation_price(side, q, e, margin, table)
    assert p == expected and round(p, 4) == _d(rounded)
    assert _trigger(side, q, e, margin, p, _d(mmr)) == pytest.approx(_d(1), abs=_d("1e-24"))
    # a float position gives the same price to float precision
    assert table_liquidation_price(side, float(q), float(e), float(margin), table) == pytest.approx(float(expected))


def test_leverage_validated_against_the_tier_of_the_size():
    sol, eth, avax = BUNDLED["SOLUSDT"], PUBLISHED["ETHUSDT"][-1], PUBLISHED["AVAXUSDT"][-1]
    assert sol.check_leverage(75, 500).tier == 1 and sol.check_leverage(20, 4000).tier == 3
    with pytest.raises(ValueError, match=r"SOLUSDT: leverage 50x exceeds OKX's maximum 20x for a position of 1001 SOL "
                                         r"\(tier 3, 1000 < size <= 4000\); at 50x the position can be at most 1000 SOL"):
        sol.check_leverage(50, 1001)
    with pytest.raises(ValueError, match="no size allows 150x"):
        eth.check_leverage(150, 1)
    with pytest.raises(ValueError, match="leverage must be > 0"):
        eth.check_leverage(0, 1)
    # the largest size at a leverage: the last tier allowing it; past the listed tiers, while 1 / imr still allows it
    assert [sol.max_qty_at_leverage(x) for x in (75, 50, 20, 10, 2)] == [500, 1000, 4000, 44000, 364000]
    assert sol.tier_for(44000).imr == _d("0.1") and sol.tier_for(44001).max_leverage < 10
    assert eth.tier_for(117600).max_leverage == 2 and eth.tier_for(_d("117600.1")).max_leverage < 2
    assert [eth.max_qty_at_leverage(x) for x in (125, 100, 66, 50, 2)] == [300, 600, 1200, 2400, 117600]
    assert [avax.max_qty_at_leverage(x) for x in (75, 50, 20, 2)] == [375, 750, 1500, 1500]
    assert eth.max_qty_at_leverage(126) is None


def test_leverage_check_on_the_bundled_sol_data():
    # the most contracts 20,000 USDT buys in the bundled SOL swap data is at its lowest close (8.244 USDT):
    # 2,426 SOL, tier 3 (up to 4,000): the carry default 2x passes, 75x (tier 1's maximum) is refused
    data = Path(__file__).resolve().parents[1] / "backtests" / "data" / "okx"
    closes = pd.read_parquet(data / "SOLUSDT_1h_2022-2023.parquet")["close_perp_okx"]
    low = _d(closes.min())
    assert low == _d("8.244")
    qty = (_d(20000) / low).to_integral_value(rounding=ROUND_FLOOR)  # whole contracts of 1 SOL
    assert qty == 2426
    sol = BUNDLED["SOLUSDT"]
    assert sol.check_leverage(2, qty).tier == 3
    with pytest.raises(ValueError, match="at 75x the position can be at most 500 SOL"):
        sol.check_leverage(75, qty)
