"""Backtests on the bundled real Binance data: funding exact to the exchange's settlements, no lookahead,
liquidation at the liquidation price, PnL reconciled to the accounts, and the public-dump layout giving the same run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from basisbot.backtest.feed import build_feed
from basisbot.cli import main
from basisbot.core import margin
from basisbot.data import market_data
from basisbot.data.dump_writer import export_binance_dump
from basisbot.nautilus.instruments import make_perp, make_spot
from basisbot.venues import get_profile
from basisbot.venues.binance import reference
from tests.invariants import assert_backtest_invariants

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"

ALWAYS_IN = """
[backtest]
data = "{data}"
start = {start}
end = {end}
spot_balance_usdt = 100000
perp_balance_usdt = 50000
[symbols.{sym}]
enabled = true
hedge_ratio = 1.0
notional_usdt = 20000
leverage = {lev}
margin_mode = "isolated"
entry_apr = -1000
exit_apr = -2000
[symbols.{sym}.guard]
enabled = {guard}
"""


def run(tmp: Path, name: str, *, sym="BTCUSDT", start="2022-01-01", end="2024-01-01", lev=3, guard="false",
        data=DATA, extra: list[str] | None = None) -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(ALWAYS_IN.format(data=data, start=start, end=end, sym=sym, lev=lev, guard=guard))
    out = tmp / name
    rc = main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet", *(extra or [])])
    assert rc == 0
    assert_backtest_invariants(out)
    return out


def read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def btc_always_in(tmp_path_factory) -> Path:
    return run(tmp_path_factory.mktemp("bt"), "btc_always_in")


def test_funding_rows_are_the_source_settlements_while_open(btc_always_in):
    rows = read_csv(btc_always_in / "funding.csv")
    trades = read_csv(btc_always_in / "trades.csv")
    entry = pd.Timestamp(trades[0]["ts"])
    src = pd.read_csv(DATA / "BTCUSDT_funding_2022-2023.csv")
    src["ts"] = pd.to_datetime(src["datetime"], format="ISO8601")
    expected = src[src["ts"] > entry]
    assert len(rows) == len(expected) == 2189  # every settlement after the entry at 01:00 on day one
    assert [pd.Timestamp(r["ts"]) for r in rows] == list(expected["ts"])
    assert [float(r["rate"]) for r in rows] == list(expected["funding_rate"])
    summary = json.loads((btc_always_in / "summary.json").read_text())
    btc = summary["symbols"]["BTCUSDT"]
    assert btc["settlements"] == len(rows)
    assert btc["funding_pnl"] == pytest.approx(sum(float(r["payment"]) for r in rows), abs=1e-6)


def test_funding_payment_formula_sign_and_mark(btc_always_in):
    bars = pd.read_parquet(DATA / "BTCUSDT_1h_2022-2023.parquet")
    mark_at_close = dict(zip(bars.index.tz_localize("UTC") + pd.Timedelta(hours=1), bars["mark_price_binance"]))
    rows = read_csv(btc_always_in / "funding.csv")
    negatives = 0
    for r in rows:
        qty, mark, rate, pay = (float(r[k]) for k in ("position_qty", "mark_price", "rate", "payment"))
        assert qty < 0  # short perp
        assert pay == pytest.approx(-qty * mark * rate, rel=1e-12)
        assert (pay > 0) == (rate > 0)  # a short receives positive funding
        negatives += rate < 0
        hour = pd.Timestamp(r["ts"]).round("h")
        assert mark == pytest.approx(mark_at_close[hour], abs=0.0051)  # the mark of the settlement hour, tick-rounded
    assert negatives > 50  # 2022 had real negative funding: the sign matters


def test_summary_contract_and_reconciliation(btc_always_in):
    s = json.loads((btc_always_in / "summary.json").read_text())
    for key in ("funding_pnl", "fees", "net_pnl", "liquidations", "guard_actions", "settlements"):
        assert key in s["symbols"]["BTCUSDT"] and key in s["total"]
    assert abs(s["total"]["reconciliation_error"]) < 1e-5  # 8-decimal money rounding only
    assert s["symbols"]["BTCUSDT"]["liquidations"] == 0  # leverage 3 survives 2022-2023 in BTC
    for f in ("trades.csv", "equity.csv", "report.html", "predictions.csv"):
        assert (btc_always_in / f).stat().st_size > 0


def test_always_in_baseline_is_the_funding_of_holding_throughout(btc_always_in):
    """The baseline comes from the settlements and marks, not from a second run; for a run that is always in (and
    never liquidated) it equals the run's own funding up to the lot rounding of the position."""
    v = json.loads((btc_always_in / "summary.json").read_text())["symbols"]["BTCUSDT"]
    assert v["liquidations"] == 0
    assert v["always_in_funding"] == pytest.approx(v["funding_pnl"], rel=5e-3)
    assert v["positive_funding"] > v["always_in_funding"] > 0
    assert v["capture"] == pytest.approx(v["funding_pnl"] / v["positive_funding"], rel=1e-3)
    rows = read_csv(btc_always_in / "baseline_funding.csv")
    assert len(rows) >= v["settlements"] and all(float(r["position_qty"]) < 0 for r in rows)


def test_predictions_are_causal():
    """The feed built from data cut at T predicts exactly what the full feed predicted up to T."""
    full = market_data.load_symbol(DATA, "SOLUSDT", start="2022-11-01", end="2022-12-01", allow_perp_gaps=True)
    cut = market_data.load_symbol(DATA, "SOLUSDT", start="2022-11-01", end="2022-11-12", allow_perp_gaps=True)
    table = reference.brackets()["SOLUSDT"]
    binance = get_profile("binance")
    spot = make_spot("SOLUSDT", 0.001, 0.001, profile=binance)
    perp = make_perp("SOLUSDT", 3, table, 0.0005, 0.0002, profile=binance)
    a = build_feed(full, spot, perp, funding=binance.funding).predictions
    b = build_feed(cut, spot, perp, funding=binance.funding).predictions
    t_cut = pd.Timestamp("2022-11-12", tz="UTC").value
    a, b = a[a.ts_ns <= t_cut].reset_index(drop=True), b[b.ts_ns <= t_cut].reset_index(drop=True)
    assert len(a) > 200
    pd.testing.assert_frame_equal(a[["ts_ns", "predicted_rate"]], b[["ts_ns", "predicted_rate"]])
    # SOL went to 2-hour funding on 2022-11-09: the announced interval follows it
    assert set(a["interval_minutes"]) >= {120, 480}


def test_leverage_5_isolated_without_guard_is_liquidated(tmp_path):
    out = run(tmp_path, "lev5", start="2023-01-01", end="2023-02-01", lev=5)
    liqs = read_csv(out / "liquidations.csv")
    assert liqs, "the January 2023 rally must liquidate a 5x short"
    first = liqs[0]
    assert first["ts"].startswith("2023-01-1")
    side, qty, entry, lp = int(first["side"]), float(first["qty"]), float(first["entry_price"]), float(
        first["liquidation_price"])
    # the liquidation price is Binance's formula on the isolated wallet that was lost
    assert lp == pytest.approx(margin.liquidation_price(side, qty, entry, float(first["wallet_lost"]),
                                                       reference.brackets()["BTCUSDT"]), rel=1e-9)
    assert float(first["bar_worst_mark"]) >= lp
    trades = read_csv(out / "trades.csv")
    liq_fill = [t for t in trades if t["tag"] == "LIQUIDATION"][0]
    assert float(liq_fill["price"]) == pytest.approx(lp, abs=0.01)
    # the spot leg is sold at once: never left naked
    unwind = [t for t in trades if t["tag"] == "UNWIND" and t["ts"] == liq_fill["ts"]]
    assert unwind and unwind[0]["leg"] == "spot" and unwind[0]["side"] == "SELL"
    s = json.loads((out / "summary.json").read_text())
    assert s["symbols"]["BTCUSDT"]["liquidations"] == len(liqs)
    assert abs(s["total"]["reconciliation_error"]) < 1e-5  # 8-decimal money rounding only
    assert first["ts"] in (out / "report.html").read_text()


def test_public_dump_layout_gives_the_same_run(tmp_path):
    dump = tmp_path / "dump"
    export_binance_dump(DATA, "BTCUSDT", dump, start="2023-01-01", end="2023-03-01")
    a = run(tmp_path, "bundled", start="2023-01-01", end="2023-03-01", lev=5)
    b = run(tmp_path, "dump", start="2023-01-01", end="2023-03-01", lev=5, data=dump)
    for f in ("funding.csv", "liquidations.csv"):
        assert (a / f).read_text() == (b / f).read_text(), f
    strip = lambda rows: [{k: v for k, v in r.items() if k != "client_order_id"} for r in rows]  # noqa: E731
    assert strip(read_csv(a / "trades.csv")) == strip(read_csv(b / "trades.csv"))
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["symbols"] == sb["symbols"] and sa["total"] == sb["total"]


def test_four_symbols_reconcile_through_luna_and_ftx(tmp_path):
    cfg = tmp_path / "three.toml"
    cfg.write_text((REPO / "config" / "basisbot.toml").read_text())
    out = tmp_path / "three"
    assert main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet", "--data", str(DATA),
                 "--start", "2022-05-01", "--end", "2022-12-01"]) == 0
    assert_backtest_invariants(out)
    s = json.loads((out / "summary.json").read_text())
    assert set(s["symbols"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "AVAXUSDT"}
    assert abs(s["total"]["reconciliation_error"]) < 1e-5  # 8-decimal money rounding only
    assert s["total"]["net_pnl"] == pytest.approx(sum(v["net_pnl"] for v in s["symbols"].values()), abs=1e-5)


def test_bad_inputs_exit_2(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(ALWAYS_IN.format(data="/no/such/folder", start="2023-01-01", end="2023-02-01", sym="BTCUSDT",
                                    lev=3, guard="false"))
    assert main(["backtest", "--config", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "/no/such/folder" in capsys.readouterr().err
    cfg.write_text(ALWAYS_IN.format(data=DATA, start="2023-01-01", end="2023-02-01", sym="BTCUSDT", lev=3,
                                    guard="false"))
    assert main(["backtest", "--config", str(cfg), "--out", str(tmp_path / "o"), "--quiet",
                 "--symbols", "ETHUSDT"]) == 2
    assert "ETHUSDT" in capsys.readouterr().err
    assert main(["backtest", "--config", str(cfg), "--out", str(tmp_path / "o"), "--quiet",
                 "--start", "2030-01-01", "--end", "2030-02-01"]) == 2
    assert "BTCUSDT" in capsys.readouterr().err


def test_an_entry_the_balance_cannot_fund_is_logged_once_per_streak(tmp_path):
    """A flat symbol whose entry the spot balance cannot fund fails the same pre-check on every prediction (live: on
    every mark-price message). It is logged once, not once per prediction, and nothing is sent."""
    cfg = tmp_path / "short.toml"
    cfg.write_text(ALWAYS_IN.format(data=DATA, start="2023-01-01", end="2023-01-15", sym="BTCUSDT", lev=3,
                                    guard="false").replace("spot_balance_usdt = 100000", "spot_balance_usdt = 5000"))
    out = tmp_path / "short"
    assert main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert_backtest_invariants(out)
    decisions = read_csv(out / "decisions.csv")
    predictions = read_csv(out / "predictions.csv")
    # every hourly prediction wants an entry (entry_apr -1000); the settlements alone number 41 in these two weeks
    assert len(predictions) > 30, "the window must hold many predictions that each want an entry"
    assert [d["action"] for d in decisions] == ["skip_entry"]
    assert decisions[0]["reason"].startswith("spot balance 5000.00 USDT < ")
    assert read_csv(out / "trades.csv") == []
