"""OKX's live hooks on real shapes: markets as the stock ccxt okx client loads them from the local OKX venue (swaps in
contracts -> instruments in base units), OKX's recorded answers (tests/data/okx_v5_recorded.json: positions, balance
details, the funding-rate channel) read in base units, order parameters, and the passphrase credential."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import ccxt
import ccxt.pro as ccxtpro
import pytest

from basisbot.config.loading import load_settings
from basisbot.exchange.ccxt_setup import use_local_okx_venue
from basisbot.live.instruments import perp_from_market, spot_from_market
from basisbot.live.node import BasisNode, credentials_problem
from basisbot.live.venue_hooks import hooks_for
from basisbot.sim import SimServer
from basisbot.venues.okx.tiers import parse_tiers
from tests.helpers.okx_live import KEY, PASSPHRASE, SECRET, okx_config, okx_settings, okx_sim_config

ROOT = Path(__file__).resolve().parents[1]
RECORDED = json.loads((ROOT / "tests" / "data" / "okx_v5_recorded.json").read_text())["endpoints"]
OKX = hooks_for("okx")


def _markets() -> dict:
    async def main():
        async with SimServer(okx_sim_config(symbols=["BTCUSDT", "ETHUSDT"])) as sim:
            ex = ccxtpro.okx({"apiKey": KEY, "secret": SECRET, "password": PASSPHRASE})
            use_local_okx_venue(ex, sim.url)
            try:
                return await ex.load_markets()
            finally:
                await ex.close()

    return asyncio.run(asyncio.wait_for(main(), 30))


def test_swap_instruments_are_in_base_units_with_the_contract_value():
    markets = _markets()
    btc, eth, spot = markets["BTC/USDT:USDT"], markets["ETH/USDT:USDT"], markets["BTC/USDT"]
    assert (OKX.contract_value(btc), OKX.contract_value(eth), OKX.contract_value(spot)) == (
        Decimal("0.01"), Decimal("0.1"), Decimal(1))
    r = OKX.rules(btc)  # lotSz 1 contract, minSz 1 contract, ctVal 0.01 BTC
    assert (r.symbol, r.tick_size, r.step_size, r.min_qty, r.min_notional) == (
        "BTCUSDT", Decimal("0.1"), Decimal("0.01"), Decimal("0.01"), None)
    assert OKX.rules(eth).step_size == Decimal("0.1")
    # OKX's documented tier row (instId ETH-USDT: sizes in contracts of 0.1 ETH)
    tiers = RECORDED["GET /api/v5/public/position-tiers?instType=SWAP&tdMode=isolated&instFamily=BTC-USDT"]
    table = parse_tiers({"code": "0", "data": [tiers]}, "recorded")["ETHUSDT"]
    assert table.tiers[0].max_qty == Decimal(tiers["maxSz"]) * Decimal("0.1")
    perp = perp_from_market(eth, 2, table, 0.0005, 0.0002, hooks=OKX)
    assert str(perp.id) == "ETHUSDT-PERP.OKX_PERP" and perp.size_increment.as_decimal() == Decimal("0.1")
    assert perp.margin_maint == Decimal(tiers["mmr"])
    inst = spot_from_market(spot, 0.001, 0.0008, hooks=OKX)
    assert str(inst.id) == "BTCUSDT.OKX_SPOT" and inst.size_increment.as_decimal() == Decimal("0.00000001")
    assert OKX.market_id("BTCUSDT", "spot") == "BTC-USDT" and OKX.market_id("BTCUSDT", "perp") == "BTC-USDT-SWAP"


def test_recorded_position_balance_and_funding_rows_read_in_base_units():
    row = {**RECORDED["GET /api/v5/account/positions?instType=SWAP"], "instId": "BTC-USDT-SWAP", "posSide": "net",
           "pos": "-7"}  # OKX's documented row, as a net-mode short of 7 contracts
    pos = OKX.position({"info": row, "symbol": "BTC/USDT:USDT"}, None, Decimal("0.01"))
    assert (pos.side, pos.qty, pos.entry, pos.mode) == (-1, 0.07, 2566.31, "isolated")
    assert pos.wallet == pytest.approx(float(row["margin"]))
    flat = OKX.position({"info": {**row, "pos": "0"}}, None, Decimal("0.01"))
    assert (flat.side, flat.qty, flat.wallet) == (0, 0.0, 0.0)

    details = RECORDED["GET /api/v5/account/balance details[0]"]  # availBal empty: availEq answers
    wallet, avail, _, _, cross = OKX.perp_account({"info": {"code": "0", "data": [{"details": [details]}]}})
    assert (wallet, avail, cross) == (28.21006347, 28.21006347, 28.21006347)

    fr = RECORDED["WS funding-rate"]
    venue_ms, rate, next_ms, interval = OKX.funding_fields(
        {"info": fr, "fundingTimestamp": int(fr["fundingTime"]), "interval": "8h"})
    assert (venue_ms, rate, next_ms, interval) == (int(fr["ts"]), fr["fundingRate"], int(fr["fundingTime"]), 480)
    mp = RECORDED["WS mark-price"]
    assert OKX.mark_fields({"info": mp, "markPrice": 42310.6, "timestamp": int(mp["ts"])})[:3] == (
        int(mp["ts"]), 42310.6, None)


def test_order_parameters_and_refusals():
    otype, params = OKX.order_request("perp", "O20221201080000001BTC2", otype="market", post_only=False, tif="GTC",
                                      reduce_only=True, margin_mode="isolated")
    assert (otype, params) == ("market", {"clientOrderId": "O20221201080000001BTC2", "marginMode": "isolated",
                                          "reduceOnly": True})
    _, params = OKX.order_request("spot", "c1", otype="market", post_only=False, tif="GTC", reduce_only=False,
                                  margin_mode=None)
    assert params == {"clientOrderId": "c1", "tgtCcy": "base_ccy"}
    _, params = OKX.order_request("perp", "c2", otype="limit", post_only=True, tif="GTC", reduce_only=False,
                                  margin_mode="cross")
    assert params == {"clientOrderId": "c2", "marginMode": "cross", "postOnly": True}
    dup = ccxt.InvalidOrder('okx {"code":"1","data":[{"clOrdId":"c1","sCode":"51016","sMsg":"Duplicated clOrdId"}]}')
    assert OKX.is_duplicate_order(dup) and not hooks_for("binance").is_duplicate_order(dup)
    assert OKX.is_liquidation({"info": {"category": "full_liquidation"}})
    assert not OKX.is_liquidation({"info": {"category": "normal"}})
    assert OKX.by_client_id("c1") == OKX.cancel_by_client_id("c1") == {"clOrdId": "c1"}
    with pytest.raises(ValueError, match="'binance', 'okx'"):
        hooks_for("kraken")


def test_okx_live_needs_the_passphrase_named_by_its_variable(tmp_path, monkeypatch):
    cfg = okx_config(tmp_path, "http://127.0.0.1:9", symbols={"BTCUSDT": {"notional_usdt": 1000.0}})
    for var in ("BASISBOT_API_KEY", "BASISBOT_API_SECRET", "BASISBOT_API_PASSPHRASE", "MY_PASS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BASISBOT_API_KEY", "k")
    monkeypatch.setenv("BASISBOT_API_SECRET", "s")
    problem = credentials_problem(load_settings(cfg, env_file=None))
    assert "BASISBOT_API_PASSPHRASE" in problem and "api_passphrase_env" in problem
    cfg.write_text(cfg.read_text().replace('name = "okx"', 'name = "okx"\napi_passphrase_env = "MY_PASS"'))
    monkeypatch.setenv("MY_PASS", "p")
    s = load_settings(cfg, env_file=None)
    assert credentials_problem(s) is None and s.api_passphrase.get_secret_value() == "p"
    # Binance needs no passphrase
    bcfg = tmp_path / "b.toml"
    bcfg.write_text(cfg.read_text().replace('name = "okx"', 'name = "binance"').replace(
        'api_passphrase_env = "MY_PASS"\n', ""))
    assert credentials_problem(load_settings(bcfg, env_file=None)) is None


def test_the_exchanges_own_closes_are_told_apart_per_order_and_by_kind():
    """Three shorts deleveraged at once carry the same client id at the venue: each is reported to nautilus under an
    id of its own (nautilus keys orders by client id; one shared id made the other symbols' closes look like updates
    of the first, and their shorts stayed open in the cache). OKX names the kind by the order's category."""
    closes = [{"id": str(8100000004 + i), "clientOrderId": "adl_autoclose", "status": "closed",
               "info": {"category": "adl"}} for i in range(3)]
    assert len({OKX.close_client_id(o) for o in closes}) == 3
    assert [OKX.close_kind(o) for o in closes] == ["adl"] * 3 and all(OKX.close_done(o) for o in closes)
    liquidated = {"id": "8100000007", "clientOrderId": "", "status": "closed", "info": {"category": "full_liquidation"}}
    assert OKX.close_kind(liquidated) == "liquidation" and OKX.close_client_id(liquidated) == "venue-close-8100000007"
    mine = {"id": "1", "clientOrderId": "O20261207091412001BTC2", "status": "closed", "info": {"category": "normal"}}
    assert OKX.close_kind(mine) is None and not OKX.is_liquidation(mine)


def test_node_reads_okx_tiers_with_the_configured_perp_taker_fee(tmp_path):
    """The node reads OKX's position tiers from the exchange (the local OKX venue's position-tiers) and prices them
    with the configured `fees.perp_taker`, the closing fee of OKX's liquidation condition, as backtests do."""
    from basisbot.venues.okx import tiers

    async def main(perp_taker: float | None):
        async with SimServer(okx_sim_config(symbols=["BTCUSDT"])) as sim:
            s = okx_settings(tmp_path, sim.url, symbols={"BTCUSDT": {"notional_usdt": 2150.0, "leverage": 2,
                                                                   "margin_mode": "isolated"}})
            if perp_taker is not None:
                s = s.model_copy(update={"fees": s.fees.model_copy(update={"perp_taker": perp_taker})})
            app = BasisNode(s, "paper")
            await app._open_session()
            try:
                return await app._venue_brackets(["BTCUSDT"])
            finally:
                await app.session.close()

    default = asyncio.run(asyncio.wait_for(main(None), 30))["BTCUSDT"]
    vip = asyncio.run(asyncio.wait_for(main(0.0002), 30))["BTCUSDT"]
    assert isinstance(vip, tiers.TierTable) and vip.tiers == default.tiers
    assert (default.fee, vip.fee) == (Decimal("0.0005"), Decimal("0.0002"))
    assert vip.tiers[0].max_qty == Decimal(5) and vip.tiers[0].mmr == Decimal("0.004")  # OKX's recorded tier 1
    # a 1 BTC short at 40,000 with 8,000 USDT: (40,000 + 8,000) / (1 + 0.004 + f)
    assert tiers.table_liquidation_price(-1, Decimal(1), Decimal(40_000), Decimal(8_000), vip) == (
        Decimal(48_000) / Decimal("1.0042"))
    assert tiers.table_liquidation_price(-1, 1.0, 40_000.0, 8_000.0, default) == pytest.approx(48_000 / 1.0045)
