"""report.html: self-contained, rebuilt from the results folder alone, shows the summary numbers, every liquidation
and guard action (tables + chart markers), and renders "none" notes on a run without trades."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from basisbot.backtest.report.charts import MAX_POINTS, downsample
from basisbot.backtest.report.format import fmt_num
from basisbot.backtest.report.html import write_report
from basisbot.cli import main
from tests.invariants import assert_backtest_invariants

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"

CONFIG = """
[backtest]
data = "{data}"
start = 2023-01-01
end = 2023-02-01
spot_balance_usdt = 100000
perp_balance_usdt = 50000
[symbols.BTCUSDT]
enabled = true
hedge_ratio = 1.0
notional_usdt = 20000
leverage = {lev}
margin_mode = "isolated"
entry_apr = {entry}
exit_apr = {exit}
[symbols.BTCUSDT.guard]
enabled = {guard}
"""


def _run(tmp: Path, name: str, *, lev: int, entry: float, exit: float, guard: str) -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(CONFIG.format(data=DATA.as_posix(), lev=lev, entry=entry, exit=exit, guard=guard))
    out = tmp / name
    assert main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert_backtest_invariants(out)
    return out


@pytest.fixture(scope="module")
def liq_run(tmp_path_factory) -> Path:
    """Always in, leverage 5, guard off, January 2023: BTC's rally liquidates the short perp twice."""
    return _run(tmp_path_factory.mktemp("rep"), "liq", lev=5, entry=-1000, exit=-2000, guard="false")


@pytest.fixture(scope="module")
def guard_run(tmp_path_factory) -> Path:
    """Same with the guard on: warn / add_margin / reduce actions instead."""
    return _run(tmp_path_factory.mktemp("rep"), "guard", lev=5, entry=-1000, exit=-2000, guard="true")


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory) -> Path:
    """Entry threshold never met: no trades, no funding, no guard actions, no liquidations."""
    return _run(tmp_path_factory.mktemp("rep"), "flat", lev=3, entry=1000, exit=0, guard="true")


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _html(folder: Path) -> str:
    return (folder / "report.html").read_text(encoding="utf-8")


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def assert_self_contained(doc: str) -> None:
    assert doc.lstrip().lower().startswith("<!doctype html>")
    assert "http://" not in doc and "https://" not in doc
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", doc, re.I)
    assert not re.search(r"<script\b", doc, re.I)           # no scripts at all, inline or not
    assert not re.search(r"<link\b|@import|url\(\s*['\"]?(https?:)?//", doc, re.I)
    assert not re.search(r"<img\b|<iframe\b", doc, re.I)


def test_liquidation_report_is_self_contained_and_has_charts(liq_run):
    doc = _html(liq_run)
    assert_self_contained(doc)
    assert doc.count("<svg") >= 6                        # equity, accounts, PnL split, and the per-symbol charts
    for title in ("Total equity", "Accounts", "Cumulative PnL split", "Funding rate: predicted vs settled",
                  "Basis", "Distance to liquidation", "Position (base qty)", "Trades", "Decisions log"):
        assert title in doc, title
    assert "annualised" in doc and "bp per 8h" in doc   # the funding chart states its two scales


def test_every_liquidation_is_listed_and_marked(liq_run):
    liqs = _csv(liq_run / "liquidations.csv")
    s = _summary(liq_run)
    assert len(liqs) == s["total"]["liquidations"] == 2
    doc = _html(liq_run)
    section = doc[doc.index('id="risk"'):doc.index('id="sym-BTCUSDT"')]
    for lq in liqs:
        assert lq["ts"] in section                                        # listed in the liquidations table
        assert fmt_num(float(lq["insurance_loss"])) in section
    # one marker per liquidation on each chart of the symbol, tooltip carrying the timestamp
    titles = re.findall(r'<g class="mk"><title>([^<]*)</title>', doc)
    for lq in liqs:
        hits = [t for t in titles if t.startswith(lq["ts"]) and "LIQUIDATION" in t]
        assert len(hits) >= 7, (lq["ts"], len(hits))   # equity, accounts, PnL, price, funding, basis, distance, qty
    assert "none: no liquidations" not in doc
    assert "none: no guard actions in this run" in doc   # guard disabled in this run


def test_summary_numbers_appear_as_formatted(liq_run):
    s = _summary(liq_run)
    doc = _html(liq_run)
    t = s["total"]
    for key in ("net_pnl", "funding_pnl", "fees", "spot_pnl", "perp_pnl", "liquidation_loss", "ending_equity"):
        assert fmt_num(t[key]) in doc, key
    assert f"{t['net_pnl']:,.2f}" in doc
    assert fmt_num(t["reconciliation_error"], 6) + " USDT" in doc
    v = s["symbols"]["BTCUSDT"]
    assert f"{v['settlements']} / {v['settlements_in_data']}" in doc
    run = json.loads((liq_run / "run.json").read_text())
    run_stats = f"{run['events']:,} events"
    assert run_stats in doc


def test_report_depends_only_on_the_folder(liq_run, tmp_path):
    """Copied elsewhere and rebuilt with result=None, the report is identical (apart from the folder name)."""
    copy = tmp_path / "copy"
    shutil.copytree(liq_run, copy)
    (copy / "report.html").unlink()
    write_report(_summary(copy), copy / "report.html")
    assert _html(copy).replace(str(copy), "<folder>") == _html(liq_run).replace(str(liq_run), "<folder>")


def test_trades_table_and_decisions(liq_run):
    doc = _html(liq_run)
    trades = _csv(liq_run / "trades.csv")
    assert f"{len(trades)} fills." in doc
    for tr in trades:
        assert tr["client_order_id"] in doc
    for d in _csv(liq_run / "decisions.csv"):
        assert d["ts"] in doc
    assert "LIQUIDATION" in doc and "none: no trades" not in doc


def test_guard_actions_listed_and_marked(guard_run):
    guard = _csv(guard_run / "guard.csv")
    s = _summary(guard_run)
    assert guard and len(guard) == s["total"]["guard_actions"]
    doc = _html(guard_run)
    assert_self_contained(doc)
    titles = re.findall(r'<g class="mk"><title>([^<]*)</title>', doc)
    for g in guard:
        assert any(t.startswith(g["ts"]) or f"\n{g['ts']}" in t for t in titles), g["ts"]
        assert f"<td>{g['ts']}</td>" in doc
    for step in {g["step"] for g in guard}:
        assert f"guard {step.replace('_', ' ')}" in doc        # legend entry for the marker kind
    assert "none: no guard actions" not in doc


def test_no_trades_renders_none_notes(flat_run):
    assert _csv(flat_run / "trades.csv") == []
    doc = _html(flat_run)
    assert_self_contained(doc)
    for note in ("none: no trades in this run", "none: no liquidations in this run",
                 "none: no guard actions in this run", "none: no open position"):
        assert note in doc, note
    assert "<svg" in doc                                   # equity and market charts still drawn
    assert fmt_num(_summary(flat_run)["total"]["net_pnl"]) in doc


def test_empty_folder_does_not_crash(tmp_path):
    summary = {"symbols": {"BTCUSDT": {}}, "total": {}, "period": {}, "data": "x", "run": {}, "data_notes": []}
    write_report(summary, tmp_path / "report.html")
    doc = _html(tmp_path)
    assert_self_contained(doc)
    assert "none: equity.csv is empty" in doc and "none: no trades in this run" in doc
    assert "none: no settlements in predictions.csv" in doc


def test_text_is_html_escaped(flat_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(flat_run, copy)
    evil = '<script>alert("x")</script>'
    with (copy / "decisions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "symbol", "action", "reason"])
        w.writerow(["2023-01-05T00:00:00.000Z", "BTCUSDT", "enter", evil])
    s = _summary(copy)
    s["data_notes"] = [evil]
    s["data"] = "<b>data</b>"
    write_report(s, copy / "report.html")
    doc = _html(copy)
    assert "<script" not in doc and "<b>data</b>" not in doc
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in doc


def test_downsample_bounds_points_and_keeps_spikes():
    n = 100_000
    xs = [float(i * 3600) for i in range(n)]
    ys = [float(i % 7) for i in range(n)]
    ys[54_321] = 1e6        # a one-bar spike (a liquidation)
    ys[77_777] = -1e6
    for i in range(20_000, 20_100):
        ys[i] = None        # flat: a gap
    dx, dy = downsample(xs, ys)
    assert len(dx) == len(dy) <= MAX_POINTS + 4
    assert 1e6 in dy and -1e6 in dy
    assert dx == sorted(dx)
    assert dy[0] == ys[0] and dy[-1] == ys[-1]
    assert None in dy                                   # the gap survives
    assert downsample(xs[:500], ys[:500]) == (xs[:500], ys[:500])  # short series untouched


def test_long_tables_are_capped_with_a_note(flat_run, tmp_path):
    from basisbot.backtest.report.sections import MAX_DECISION_ROWS, MAX_TRADE_ROWS

    copy = tmp_path / "copy"
    shutil.copytree(flat_run, copy)
    n_trades, n_dec = MAX_TRADE_ROWS + 100, MAX_DECISION_ROWS + 7
    with (copy / "trades.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "symbol", "leg", "side", "qty", "price", "fee_usdt", "fee_currency", "tag", "client_order_id"])
        for i in range(n_trades):
            w.writerow([f"2023-01-{1 + i % 28:02d}T00:00:00.000Z", "BTCUSDT", "spot", "BUY", 0.1, 20000.0, 2.0,
                        "USDT", "ENTER", f"O-{i:05d}"])
    with (copy / "decisions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "symbol", "action", "reason"])
        for i in range(n_dec):
            w.writerow(["2023-01-02T00:00:00.000Z", "BTCUSDT", "enter", f"reason-{i:05d}"])
    write_report(_summary(copy), copy / "report.html")
    doc = _html(copy)
    assert f"Showing the first {MAX_TRADE_ROWS} of {n_trades} fills" in doc
    assert f"O-{MAX_TRADE_ROWS - 1:05d}" in doc and f"O-{MAX_TRADE_ROWS:05d}" not in doc
    assert f"Showing the first {MAX_DECISION_ROWS} of {n_dec}" in doc
    assert f"reason-{MAX_DECISION_ROWS - 1:05d}" in doc and f"reason-{MAX_DECISION_ROWS:05d}" not in doc
    # the per-tag summary still counts every fill
    assert f"<td class=\"n\">{n_trades}</td>" in doc
