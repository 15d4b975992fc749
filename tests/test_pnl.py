"""The one PnL split (`basisbot.core.pnl.pnl_split`): what `basisbot status` prints and what the status page shows
come from it, a flat leg needs no price, and a fee in an asset without a known price is flagged, not mispriced."""

from __future__ import annotations

import pandas as pd
import pytest

from basisbot.config.loading import load_settings
from basisbot.core.pnl import base_asset, pnl_split
from basisbot.core.units import NS
from basisbot.journal.writer import Journal
from basisbot.ops.status import render_status, status_data, symbol_pnl

T0 = pd.Timestamp("2024-05-01T12:00:00Z").value


def fill(leg, side, qty, price, fee=0.0, cur="USDT"):
    return {"leg": leg, "side": side, "qty": qty, "price": price, "fee": fee, "fee_currency": cur}


# a round trip: spot bought 0.2299 BTC and sold 0.2299 back, the perp sold 0.229 and bought back; the float sums of
# 0.1 + 0.2 - 0.3 style quantities must still count as flat
ROUND_TRIP = [
    fill("spot", "BUY", 0.1, 40_000.0, 0.0001, "BTC"), fill("spot", "BUY", 0.2, 40_001.0, 0.0002, "BTC"),
    fill("perp", "SELL", 0.3, 40_010.0, 0.3 * 40_010.0 * 0.0005),
    fill("spot", "SELL", 0.3, 41_000.0, 0.3 * 41_000.0 * 0.001),
    fill("perp", "BUY", 0.1, 41_020.0, 0.1 * 41_020.0 * 0.0005), fill("perp", "BUY", 0.2, 41_020.0, 0.2 * 41_020.0 * 0.0005),
]


def test_a_flat_leg_is_its_realised_cash_without_a_price():
    p = pnl_split(ROUND_TRIP, None, None, 1.5, base="BTC")
    assert p["spot"] == pytest.approx(0.3 * 41_000.0 - 0.1 * 40_000.0 - 0.2 * 40_001.0)
    assert p["perp"] == pytest.approx(0.3 * 40_010.0 - 0.3 * 41_020.0)
    fees = 0.0001 * 40_000.0 + 0.0002 * 40_001.0 + (0.3 * 40_010.0 + 0.3 * 41_020.0) * 0.0005 + 0.3 * 41_000.0 * 0.001
    assert p["fees"] == pytest.approx(fees) and p["unpriced_fees"] == {}
    assert p["net"] == pytest.approx(p["spot"] + p["perp"] + 1.5 - fees)
    # marked at any price, a flat leg is the same
    assert pnl_split(ROUND_TRIP, 1.0, 99.0, 1.5, base="BTC") == p


def test_an_open_leg_without_a_price_is_unknown():
    opened = ROUND_TRIP[:3]
    p = pnl_split(opened, None, 41_000.0, 0.0, base="BTC")
    assert p["spot"] is None and p["net"] is None
    assert p["perp"] == pytest.approx(-0.3 * (41_000.0 - 40_010.0))
    q = pnl_split(opened, 40_500.0, 41_000.0, 0.0, base="BTC")
    assert q["spot"] == pytest.approx(0.1 * (40_500.0 - 40_000.0) + 0.2 * (40_500.0 - 40_001.0))


def test_fees_in_other_assets_are_priced_at_their_price_or_flagged():
    fills = [fill("spot", "BUY", 0.5, 40_000.0, 0.0005, "BTC"), fill("perp", "SELL", 0.5, 40_010.0, 10.0, "USDC"),
             fill("perp", "SELL", 0.5, 40_010.0, 0.02, "BNB")]
    p = pnl_split(fills, 40_000.0, 40_010.0, 0.0, base="BTC")
    assert p["fees"] == pytest.approx(0.0005 * 40_000.0)  # the base asset at its fill price; USDC is not BTC-priced
    assert p["unpriced_fees"] == {"USDC": 10.0, "BNB": 0.02}
    q = pnl_split(fills, 40_000.0, 40_010.0, 0.0, base="BTC", prices={"USDC": 0.9998, "BNB": 600.0})
    assert q["fees"] == pytest.approx(0.0005 * 40_000.0 + 10.0 * 0.9998 + 0.02 * 600.0) and q["unpriced_fees"] == {}
    assert q["net"] == pytest.approx(p["net"] - 10.0 * 0.9998 - 0.02 * 600.0)
    # without the base asset named, a BTC fee has no price either
    assert pnl_split(fills[:1], 40_000.0, None, 0.0)["unpriced_fees"] == {"BTC": 0.0005}


def test_base_asset():
    assert base_asset("BTCUSDT") == "BTC" and base_asset("1000PEPEUSDT") == "1000PEPE"
    assert base_asset("BTCUSDC") is None and base_asset("USDT") is None


def test_status_text_and_page_show_the_same_split(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    for i, f in enumerate(ROUND_TRIP[:3] + [fill("perp", "SELL", 0.01, 40_020.0, 0.5, "USDC")]):
        j.record_fill(trade_id=str(i), instrument_id=f"BTCUSDT.{f['leg']}", client_order_id=f"C{i}", symbol="BTCUSDT",
                      leg=f["leg"], side=f["side"], qty=f["qty"], price=f["price"], fee=f["fee"],
                      fee_currency=f["fee_currency"], ts=T0 + i * NS)
    j.record_funding_settled("BTCUSDT", T0 + 3600 * NS, rate=0.0001, payment=1.2, source="test", position_qty=-0.31,
                             mark=40_100.0)
    j.record_mark("BTCUSDT", T0 + 600 * NS, mark=41_000.0, spot_price=40_980.0)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'mode = "live"\njournal = "{tmp_path / "j.sqlite"}"\n[symbols.BTCUSDT]\n', encoding="utf-8")
    settings = load_settings(cfg, env_file=None)
    want = symbol_pnl(j, "BTCUSDT", 41_000.0, 40_980.0)
    j.close()
    assert want["unpriced_fees"] == {"USDC": 0.5} and want["net"] is not None
    page = status_data(tmp_path / "j.sqlite", settings, now_ns=T0 + 700 * NS)["symbols"][0]["pnl"]
    assert page == want
    text = render_status(tmp_path / "j.sqlite", settings, now_ns=T0 + 700 * NS)
    assert f"net {want['net']:+.4f} USDT (fees not priced, left out: 0.5 USDC)" in text
    assert f"spot {want['spot']:+.4f}  perp {want['perp']:+.4f}  fees {-want['fees']:+.4f}" in text
