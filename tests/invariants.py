"""Invariants every backtest in the suite must hold, whatever the scenario (liquidations included):
- no leg alone past `leg_timeout_s` (`max_unhedged_s` in summary.json, observed from the fills' positions);
- every settlement applied at most once per symbol, and every payment = -qty × mark × rate;
- per-symbol PnL reconciles to the accounts."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def assert_backtest_invariants(out: Path) -> dict:
    s = json.loads((Path(out) / "summary.json").read_text())
    for sym, v in s["symbols"].items():
        assert v["max_unhedged_s"] <= v["leg_timeout_s"], (
            f"{sym}: one leg alone for {v['max_unhedged_s']} s > leg_timeout_s {v['leg_timeout_s']}")
    assert s["total"]["max_unhedged_s"] == max(v["max_unhedged_s"] for v in s["symbols"].values())
    with (Path(out) / "funding.csv").open() as f:
        rows = list(csv.DictReader(f))
    keys = [(r["symbol"], r["ts"]) for r in rows]
    assert len(keys) == len(set(keys)), "a settlement was applied twice"
    for r in rows:
        expected = -float(r["position_qty"]) * float(r["mark_price"]) * float(r["rate"])
        assert abs(float(r["payment"]) - expected) <= 1e-6 * max(1.0, abs(expected)), r
    assert abs(s["total"]["reconciliation_error"]) < 1e-5
    return s
