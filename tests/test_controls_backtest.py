"""Risk limits in backtests (`[risk]`): the same actor and strategy rules as live, on the bundled data.

- a crossed `max_drawdown_pct` with action flatten: the breach (figures, time, action) is in summary.json and the
  report, every symbol closes both legs at the breach and stays flat (paused) to the end;
- `max_daily_loss_usdt` with action pause: held carries stay, no new entry after the breach;
- `max_gross_notional_usdt` refuses the entries beyond it (counted), `stale_data_s` below the data's mark spacing
  refuses every entry;
- without `[risk]` summary.json has no "risk" key (the quick start's bytes are checked against the baseline).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from basisbot import cli

ROOT = Path(__file__).resolve().parents[1]


def run(tmp: Path, risk: str, symbols: str = "BTCUSDT,ETHUSDT", end: str = "2022-03-01") -> tuple[dict, Path]:
    text = (ROOT / "config" / "basisbot.toml").read_text().replace(
        'data = "backtests/data/binance"', f'data = "{ROOT / "backtests" / "data" / "binance"}"')
    cfg = tmp / "risk.toml"
    cfg.write_text(text + "\n" + risk)
    out = tmp / "out"
    rc = cli.main(["backtest", "--config", str(cfg), "--out", str(out), "--start", "2022-01-01", "--end", end,
                   "--symbols", symbols, "--quiet"])
    assert rc == 0
    return json.loads((out / "summary.json").read_text()), out


def test_drawdown_breach_flattens_and_is_reported(tmp_path):
    summary, out = run(tmp_path, '[risk]\nmax_drawdown_pct = 0.2\naction = "flatten"\n')
    risk = summary["risk"]
    assert risk["limits"]["max_drawdown_pct"] == 0.2 and risk["limits"]["action"] == "flatten"
    (b,) = risk["breaches"]  # latched: one breach, however far the equity falls after it
    assert b["limit"] == "max_drawdown_pct" and b["action"] == "flatten"
    assert b["value"] > 0.2 and b["equity"] < b["reference"]
    assert abs((b["reference"] - b["equity"]) / b["reference"] * 100 - b["value"]) < 1e-9
    assert risk["control"] == {"BTCUSDT": "paused", "ETHUSDT": "paused"}
    for sym in ("BTCUSDT", "ETHUSDT"):
        s = summary["symbols"][sym]
        assert s["final_perp_qty"] == 0 and s["exits"] >= 1, s
    trades = pd.read_csv(out / "trades.csv")
    breach = pd.Timestamp(b["ts"])
    assert (pd.to_datetime(trades["ts"]) > breach + pd.Timedelta(minutes=1)).sum() == 0  # nothing after the flatten
    decisions = pd.read_csv(out / "decisions.csv")
    assert (decisions["action"] == "flatten").sum() == 2
    html = (out / "report.html").read_text()
    assert "Risk limits" in html and "max_drawdown_pct" in html and "flatten" in html


def test_daily_loss_pauses_and_gross_cap_refuses(tmp_path):
    summary, out = run(tmp_path, '[risk]\nmax_daily_loss_usdt = 50\nmax_gross_notional_usdt = 50000\n'
                                 'action = "pause"\n', symbols="BTCUSDT,ETHUSDT,SOLUSDT")
    risk = summary["risk"]
    assert risk["breaches"] and risk["breaches"][0]["limit"] == "max_daily_loss_usdt"
    assert risk["breaches"][0]["value"] > 50
    assert risk["entries_refused"].get("max_gross_notional_usdt", 0) >= 1  # 3 carries of 20k x 2 legs > 50k
    breach = pd.Timestamp(risk["breaches"][0]["ts"])
    decisions = pd.read_csv(out / "decisions.csv")
    enters = pd.to_datetime(decisions.loc[decisions["action"] == "enter", "ts"])
    assert (enters > breach).sum() == 0
    assert set(risk["control"].values()) == {"paused"}


def test_stale_data_refuses_entries(tmp_path):
    # at every entry check the last mark is older than 1 ms (the funding update that triggers it is not a mark)
    summary, _ = run(tmp_path, "[risk]\nstale_data_s = 0.001\n", symbols="BTCUSDT", end="2022-01-15")
    assert summary["risk"]["breaches"] == []
    assert summary["symbols"]["BTCUSDT"]["entries"] == 0
    assert summary["risk"]["entries_refused"]["stale_data_s"] >= 1
