"""`basisbot status` data: venue time from the journal's venue clock, the fresh mark from the latest mark
record (not a minutes-old position snapshot), the PnL split (funding, spot, perp, fees) from fills and settlements,
and orders that never reached the venue marked `not_at_venue`."""

from __future__ import annotations

import pandas as pd
import pytest

from basisbot.config.settings import load_settings
from basisbot.journal.writer import Journal
from basisbot.nautilus.messages import JournalRecord
from basisbot.ops.status import fresh_prices, pnl_split, render_status, venue_clock_view

NS = 1_000_000_000
T0 = pd.Timestamp("2024-05-01T12:00:00Z").value


def _journal(tmp_path) -> Journal:
    j = Journal(tmp_path / "j.sqlite")
    # entry: spot buy 0.2299 BTC at 40000, fee 0.1% in BTC; perp sell 0.229 at 40010, fee 0.05% in USDT
    j.record_order("S1", ts=T0, status="submitted", symbol="BTCUSDT", leg="spot", side="BUY", qty=0.2299,
                   instrument_id="BTCUSDT.BINANCE_SPOT")
    j.record_fill(trade_id="1", instrument_id="BTCUSDT.BINANCE_SPOT", client_order_id="S1", symbol="BTCUSDT",
                  leg="spot", side="BUY", qty=0.2299, price=40000.0, fee=0.0002299, fee_currency="BTC", ts=T0)
    j.record_fill(trade_id="2", instrument_id="BTCUSDT-PERP.BINANCE_PERP", client_order_id="P1", symbol="BTCUSDT",
                  leg="perp", side="SELL", qty=0.229, price=40010.0, fee=0.229 * 40010 * 0.0005, fee_currency="USDT",
                  ts=T0)
    j.record_funding_settled("BTCUSDT", T0 + 3600 * NS, rate=0.0001, payment=0.92, source="test", position_qty=-0.229,
                             mark=40100.0)
    j.record_position("BTCUSDT", T0, spot_qty=0.2296, perp_qty=-0.229, mark=40000.0, spot_price=39990.0)
    return j


def test_fresh_mark_and_pnl_split(tmp_path):
    j = _journal(tmp_path)
    assert fresh_prices(j, "BTCUSDT")["source"] == "snapshot"
    j.record_mark("BTCUSDT", T0 + 600 * NS, mark=41000.0, spot_price=40980.0)
    f = fresh_prices(j, "BTCUSDT")
    assert (f["mark"], f["spot_price"], f["source"]) == (41000.0, 40980.0, "mark")
    p = pnl_split(j, "BTCUSDT", f["mark"], f["spot_price"])
    assert p["funding"] == pytest.approx(0.92)
    assert p["spot"] == pytest.approx(0.2299 * (40980.0 - 40000.0))
    assert p["perp"] == pytest.approx(-0.229 * (41000.0 - 40010.0))
    assert p["fees"] == pytest.approx(0.0002299 * 40000.0 + 0.229 * 40010 * 0.0005)
    assert p["net"] == pytest.approx(p["funding"] + p["spot"] + p["perp"] - p["fees"])
    assert pnl_split(j, "BTCUSDT", None, None)["net"] is None
    j.close()


def test_venue_time_and_status_text(tmp_path):
    j = _journal(tmp_path)
    venue0 = pd.Timestamp("2022-03-01T07:50:00Z").value
    j.record(JournalRecord("venue_clock", "*", T0, {"venue_ms": venue0 // 1_000_000, "local_ns": T0, "speed": 60.0}))
    j.record_mark("BTCUSDT", T0 + 5 * NS, mark=41000.0, spot_price=40980.0)
    j.record_prediction("BTCUSDT", T0 + 10 * NS, ts=T0, predicted_rate=0.0001, interval_minutes=480)
    v = venue_clock_view(j, T0 + 2 * NS)
    assert v["speed"] == 60.0 and v["venue_now_ns"] == venue0 + 120 * NS
    # not_at_venue via the journal record the node publishes at restart
    j.record(JournalRecord("order_resolution", "BTCUSDT", T0 + 9 * NS, {"client_order_id": "S9", "status":
                                                                        "not_at_venue", "reason": "looked up"}))
    assert j.rows("orders", "client_order_id = 'S9'")[0]["status"] == "not_at_venue"
    j.close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'mode = "live"\njournal = "{tmp_path / "j.sqlite"}"\n[symbols.BTCUSDT]\n', encoding="utf-8")
    text = render_status(tmp_path / "j.sqlite", load_settings(cfg, env_file=None), now_ns=T0 + 2 * NS)
    assert "venue time 2022-03-01 07:52:00Z (replaying at 60x)" in text
    assert "next settlement 2022-03-01 08:00:00Z venue time in 8m 00s (0m 08s wall at 60x)" in text
    assert "latest mark" in text and "mark 41000" in text
    assert "pnl         funding +0.9200" in text
