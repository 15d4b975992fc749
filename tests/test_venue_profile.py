"""The venue profile chosen by `[exchange] name` supplies every venue fact the backtest uses: venue ids, fee
defaults, the funding formula of the predictor, tiers, market rules and the liquidation price."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from basisbot.backtest.run import prepare, run_prepared
from basisbot.config.settings import ConfigError, load_settings
from basisbot.core import margin
from basisbot.venues import PROFILES, AccountModel, VenueFees, get_profile
from basisbot.venues.binance import reference

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"

CONFIG = """
[exchange]
name = "{venue}"
[backtest]
data = "{data}"
start = 2022-11-01
end = 2022-12-01
[symbols.BTCUSDT]
enabled = true
notional_usdt = 20000
leverage = 3
entry_apr = -1000
exit_apr = -2000
[symbols.BTCUSDT.guard]
enabled = false
{extra}
"""


def settings_for(tmp_path: Path, venue: str, extra: str = ""):
    cfg = tmp_path / f"{venue}.toml"
    cfg.write_text(CONFIG.format(venue=venue, data=DATA, extra=extra))
    return load_settings(cfg)


def test_binance_profile_states_its_facts():
    p = get_profile("binance")
    assert (p.name, p.spot_venue, p.perp_venue, p.perp_suffix) == ("binance", "BINANCE_SPOT", "BINANCE_PERP", "-PERP")
    assert p.account is AccountModel.SEPARATE_WALLETS and not p.unified_account
    assert p.fees == VenueFees(spot_maker=0.001, spot_taker=0.001, perp_maker=0.0002, perp_taker=0.0005)
    assert p.funding.rate_from_premium(0.0003, 8) == pytest.approx(0.0001)  # |I - P| <= 0.05%: the interest
    assert p.funding.rate_from_premium(0.0008, 8) == pytest.approx(0.0003)  # beyond it: P - 0.05%
    assert p.funding.cap("SOLUSDT") == 0.02
    assert p.liquidation_price is margin.liquidation_price
    assert p.tier_tables(None)["BTCUSDT"] == reference.brackets()["BTCUSDT"]
    spec = p.perp_rules(None)["BTCUSDT"]
    assert spec.contract_value == 1 and spec.contracts(spec.step_size * 3) == Decimal("0.003")
    # a contract venue states its lot in base units: 0.01 BTC a contract, lot 0.1 contract -> step 0.001 BTC
    okx_like = dataclasses.replace(spec, contract_value=Decimal("0.01"), step_size=Decimal("0.001"))
    assert okx_like.contracts(Decimal("0.123")) == Decimal("12.3")
    assert p.spot_rules("BTCUSDT", spec).step_size == spec.step_size / 100


def test_unknown_venue_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown exchange 'kraken': known venues are binance"):
        get_profile("kraken")
    with pytest.raises(ConfigError, match=r"exchange\.name.*'kraken'.*allowed 'binance'"):
        settings_for(tmp_path, "kraken")


def test_fee_defaults_are_the_venues_and_the_config_overrides_each(tmp_path):
    s = settings_for(tmp_path, "binance", "[fees]\nspot_taker = 0.00075\n")
    assert (s.fees.spot_maker, s.fees.spot_taker, s.fees.perp_maker, s.fees.perp_taker) == (0.001, 0.00075, 0.0002,
                                                                                             0.0005)


def test_backtest_takes_ids_fees_and_liquidation_price_from_the_chosen_profile(tmp_path, monkeypatch):
    """A second profile that differs from Binance's only in its ids, fees and (instrumented) liquidation formula:
    the same month backtested under both has the same funding ledger, its instruments on the other venue ids, its
    fills charged the other fees, and every liquidation price computed by the other formula."""
    calls = []

    def lp(side, qty, entry, wallet, table):
        calls.append((side, qty))
        return margin.liquidation_price(side, qty, entry, wallet, table)

    binance = get_profile("binance")
    alt = dataclasses.replace(binance, name="alt", display_name="Alt", spot_venue="ALT_SPOT", perp_venue="ALT_PERP",
                              fees=VenueFees(spot_maker=0.0008, spot_taker=0.0009, perp_maker=0.0001,
                                             perp_taker=0.0004),
                              liquidation_price=lp)
    monkeypatch.setitem(PROFILES, "alt", alt)

    runs = {}
    for venue in ("binance", "alt"):
        p = prepare(settings_for(tmp_path, venue))
        assert str(p.spot_insts["BTCUSDT"].id) == f"BTCUSDT.{venue.upper()}_SPOT"
        assert str(p.perp_insts["BTCUSDT"].id) == f"BTCUSDT-PERP.{venue.upper()}_PERP"
        runs[venue] = run_prepared(p)
    a, b = runs["binance"], runs["alt"]
    assert len(a.ledger.funding) > 80  # three settlements a day for a month, the short open throughout
    assert [(f.ts_ns, f.position_qty, f.payment) for f in a.ledger.funding] == \
        [(f.ts_ns, f.position_qty, f.payment) for f in b.ledger.funding]
    spot_fills = [f for f in b.fills if f.leg == "spot"]
    perp_fills = [f for f in b.fills if f.leg == "perp"]
    assert spot_fills and perp_fills
    assert all(f.fee_usdt == pytest.approx(f.qty * f.price * 0.0009, rel=1e-6) for f in spot_fills)
    assert all(f.fee_usdt == pytest.approx(f.qty * f.price * 0.0004, rel=1e-6) for f in perp_fills)
    assert calls, "the alt profile's liquidation price was never asked"
    assert {r[1] for r in a.recorder.state_rows} == {"BTCUSDT"}
