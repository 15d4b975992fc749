"""Backtest outputs: summary.json, run.json, funding.csv, trades.csv, equity.csv, state.csv, guard.csv, liquidations.csv,
predictions.csv, and the terminal summary table.

PnL per symbol is built from first principles and reconciled against the two accounts' equity:
  net = spot PnL (fills + holdings at the last spot close) + perp PnL (fills + position at the last mark)
        + settled funding - fees - what liquidations took beyond the fill at the liquidation price.
The sum over symbols must equal the change in equity (spot USDT + spot assets + perp wallet + perp unrealized);
`total.reconciliation_error` reports the difference (margin transfers between the accounts net to zero).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd

from basisbot.core import baselines
from basisbot.core.schedule import ns_to_dt
from basisbot.core.units import YEAR_S

MONEY_KEYS = ("funding_pnl", "fees", "spot_pnl", "perp_pnl", "liquidation_loss", "net_pnl")


def iso(ns: int) -> str:
    t = ns_to_dt(int(ns))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _r(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def predicted_vs_settled(result, symbol: str) -> pd.DataFrame:
    """For each settlement of the data in range: the strategy's last prediction before it, and the settled rate."""
    feed = result.feeds[symbol]
    preds = feed.predictions
    rows = []
    if preds.empty:
        return pd.DataFrame(columns=["ts_ns", "predicted_rate", "settled_rate", "interval_minutes"])
    pts = preds["ts_ns"].to_numpy()
    for sim_ts, exact, rate in feed.settlements:
        i = pts.searchsorted(sim_ts, side="left") - 1  # strictly before the settlement was applied
        if i < 0:
            continue
        rows.append((exact, float(preds["predicted_rate"].iloc[i]), rate, int(preds["interval_minutes"].iloc[i])))
    return pd.DataFrame(rows, columns=["ts_ns", "predicted_rate", "settled_rate", "interval_minutes"])


def symbol_summary(result, symbol: str) -> dict:
    fills = [f for f in result.fills if f.symbol == symbol]
    spot_cash = sum((-f.qty if f.side == "BUY" else f.qty) * f.price for f in fills if f.leg == "spot")
    spot_qty = sum((f.qty if f.side == "BUY" else -f.qty) for f in fills if f.leg == "spot")
    perp_cash = sum((-f.qty if f.side == "BUY" else f.qty) * f.price for f in fills if f.leg == "perp")
    perp_qty = sum((f.qty if f.side == "BUY" else -f.qty) for f in fills if f.leg == "perp")
    spot_pnl = spot_cash + spot_qty * result.final_spot_px[symbol]
    perp_pnl = perp_cash + perp_qty * result.final_mark[symbol]
    fees = sum(f.fee_usdt for f in fills)
    funding = [r for r in result.ledger.funding if r.symbol == symbol]
    funding_pnl = sum(r.payment for r in funding)
    liqs = [r for r in result.ledger.liquidations if r.symbol == symbol]
    liq_loss = sum(r.insurance_loss for r in liqs)
    strat = result.strategies[symbol]
    guard = strat.log_.guard
    steps = Counter(g.step for g in guard)
    transfers = [t for t in result.ledger.transfers if t.symbol == symbol]
    pvs = predicted_vs_settled(result, symbol)
    err = (pvs["predicted_rate"] - pvs["settled_rate"]).abs() if len(pvs) else pd.Series(dtype=float)
    decisions = Counter(a for _, a, _ in strat.log_.decisions)
    net = spot_pnl + perp_pnl + funding_pnl - fees - liq_loss
    base = baselines.summarise(baseline_rows(result, symbol), funding_pnl, net, *_size(result, symbol),
                               (result.end - result.start).total_seconds())
    return {
        "_net_raw": net,
        "funding_pnl": _r(funding_pnl),
        "fees": _r(fees),
        "net_pnl": _r(net),
        "liquidations": len(liqs),
        "guard_actions": len(guard),
        "settlements": len(funding),
        "spot_pnl": _r(spot_pnl),
        "perp_pnl": _r(perp_pnl),
        "liquidation_loss": _r(liq_loss),
        "guard_breakdown": dict(steps),
        "margin_added": _r(sum(t.from_perp + t.from_spot for t in transfers)),
        "margin_transferred_from_spot": _r(sum(t.from_spot for t in transfers)),
        "entries": decisions.get("enter", 0),
        "exits": decisions.get("exit", 0) + decisions.get("flatten", 0),  # a flatten closes the carry too
        "final_spot_qty": _r(spot_qty, 8),
        "final_perp_qty": _r(perp_qty, 8),
        "predictor_mae": _r(float(err.mean()), 9) if len(err) else None,
        # the one-leg invariant: the longest stretch with one leg held alone (observed from the fills' positions)
        "max_unhedged_s": _r(result.recorder.hedge[symbol].max_unhedged_s, 3),
        "unhedged_stretches": len(result.recorder.hedge[symbol].stretches),
        "leg_timeout_s": result.settings.symbols[symbol].leg_timeout_s,
        "settlements_in_data": len(result.feeds[symbol].settlements),
        "always_in_funding": _r(base["always_in_funding"]),
        "positive_funding": _r(base["positive_funding"]),
        "capture": None if base["capture"] is None else _r(base["capture"], 4),
        "capital_usdt": _r(base["capital_usdt"]),
        "net_apr": None if base["net_apr"] is None else _r(base["net_apr"], 6),
        "always_in_apr": None if base["always_in_apr"] is None else _r(base["always_in_apr"], 6),
    }


def _size(result, symbol: str) -> tuple[float, float, float]:
    cfg = result.settings.symbols[symbol]
    notional = min(cfg.notional_usdt, cfg.max_notional_usdt or cfg.notional_usdt)
    return notional, cfg.hedge_ratio, cfg.leverage


def baseline_rows(result, symbol: str) -> list[baselines.BaselineRow]:
    """Always-in: the strategy's size, short from the first hour to the last, paid at each settlement."""
    rows = [r for r in result.recorder.state_rows if r[1] == symbol and r[2] is not None]
    if not rows:
        return []
    notional, ratio, _ = _size(result, symbol)
    qty = notional / rows[0][2] * ratio
    marks = {r[0]: r[3] for r in rows}
    settlements = [(exact_ts, rate) for _sim, exact_ts, rate in result.feeds[symbol].settlements]
    return baselines.always_in_rows(settlements, marks, qty, rows[0][0], rows[-1][0] + baselines.HOUR_NS)


def build_summary(result) -> dict:
    symbols = {s: symbol_summary(result, s) for s in result.symbols}
    net_raw = sum(v.pop("_net_raw") for v in symbols.values())
    total = {k: _r(sum(v[k] for v in symbols.values())) for k in MONEY_KEYS}
    for k in ("liquidations", "guard_actions", "settlements", "entries", "exits"):
        total[k] = sum(v[k] for v in symbols.values())
    total["max_unhedged_s"] = max((v["max_unhedged_s"] for v in symbols.values()), default=0.0)
    for k in ("always_in_funding", "positive_funding", "capital_usdt"):
        total[k] = _r(sum(v[k] for v in symbols.values()))
    total["capture"] = _r(total["funding_pnl"] / total["positive_funding"], 4) if total["positive_funding"] > 0 else None
    years = (result.end - result.start).total_seconds() / YEAR_S
    total["net_apr"] = _r(total["net_pnl"] / total["capital_usdt"] / years, 6) if total["capital_usdt"] and years else None
    total["always_in_apr"] = (_r(total["always_in_funding"] / total["capital_usdt"] / years, 6)
                              if total["capital_usdt"] and years else None)
    change = result.ending_equity - result.starting_equity
    total.update({
        "starting_equity": _r(result.starting_equity),
        "ending_equity": _r(result.ending_equity),
        "equity_change": _r(change),
        # computed before rounding; what remains is nautilus rounding each money event to USDT's 8 decimals
        "reconciliation_error": _r(change - net_raw, 8),
    })
    out = {
        "symbols": symbols,
        "total": total,
        "period": {"start": result.start.isoformat(), "end": result.end.isoformat()},
        "data": str(result.data_dir),
        "data_notes": [_relative_paths(n, result.data_dir) for n in result.data_notes[:50]],
    }
    risk = getattr(result, "risk", None)
    if risk is not None:  # only with [risk] configured: a run without limits keeps its summary as it was
        out["risk"] = risk
    return out


def _relative_paths(note: str, data_dir) -> str:
    """A data note names its file under the data folder as the run was given it (the loader resolves it to an
    absolute path): summary.json is the same from any checkout."""
    absolute = str(Path(data_dir).resolve())
    return note.replace(absolute, str(data_dir)) if absolute != str(data_dir) else note


def run_stats(result) -> dict:
    """The run's timing (run.json): kept out of summary.json, which depends on the inputs only."""
    return {"events": result.events, "seconds": _r(result.run_seconds, 3),
            "events_per_second": _r(result.events / result.run_seconds if result.run_seconds else math.nan, 1),
            **result.stream}


def _write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def write_results(result, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    summary = build_summary(result)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "run.json").write_text(json.dumps(run_stats(result), indent=2) + "\n")
    _write_csv(out / "funding.csv", ["ts", "symbol", "rate", "mark_price", "position_qty", "payment"],
               ((iso(r.ts_ns), r.symbol, repr(r.rate), repr(r.mark_price), repr(r.position_qty), repr(r.payment))
                for r in result.ledger.funding))
    _write_csv(out / "baseline_funding.csv", ["ts", "symbol", "rate", "mark_price", "position_qty", "payment"],
               ((iso(r.ts_ns), s, repr(r.rate), repr(r.mark), repr(r.qty), repr(r.payment))
                for s in result.symbols for r in baseline_rows(result, s)))
    _write_csv(out / "trades.csv", ["ts", "symbol", "leg", "side", "qty", "price", "fee_usdt", "fee_currency", "tag",
                                    "client_order_id"],
               ((iso(f.ts_ns), f.symbol, f.leg, f.side, f.qty, f.price, _r(f.fee_usdt, 8), f.fee_currency, f.tag,
                 f.client_order_id) for f in result.fills))
    _write_csv(out / "equity.csv", ["ts", "spot_usdt", "spot_assets_usdt", "perp_wallet", "perp_unrealized", "equity"],
               ((iso(r[0]), *(_r(x, 4) for x in r[1:])) for r in result.recorder.equity_rows))
    _write_csv(out / "state.csv", ["ts", "symbol", "spot_price", "mark_price", "basis", "predicted_rate", "spot_qty",
                                   "perp_qty", "perp_wallet", "liquidation_price", "liquidation_distance"],
               ((iso(r[0]), *r[1:]) for r in result.recorder.state_rows))
    _write_csv(out / "guard.csv", ["ts", "symbol", "step", "distance", "liquidation_price", "mark_price", "add_margin",
                                   "reduce_fraction", "reason", "spot_qty_after", "perp_qty_after"],
               ((iso(g.ts_ns), g.symbol, g.step, g.distance, g.liquidation_price, g.mark, g.add_margin,
                 g.reduce_fraction, g.reason, g.spot_qty_after, g.perp_qty_after)
                for s in result.symbols for g in result.strategies[s].log_.guard))
    _write_csv(out / "liquidations.csv", ["ts", "symbol", "side", "qty", "liquidation_price", "entry_price",
                                          "wallet_lost", "bar_worst_mark", "insurance_loss"],
               ((iso(r.ts_ns), r.symbol, r.side, r.qty, r.price, r.entry, r.wallet_lost, r.bar_worst, r.insurance_loss)
                for r in result.ledger.liquidations))
    rows = []
    for s in result.symbols:
        for _, r in predicted_vs_settled(result, s).iterrows():
            rows.append((iso(r.ts_ns), s, r.predicted_rate, r.settled_rate, r.interval_minutes))
    _write_csv(out / "predictions.csv", ["ts", "symbol", "predicted_rate", "settled_rate", "interval_minutes"], rows)
    _write_csv(out / "decisions.csv", ["ts", "symbol", "action", "reason"],
               ((iso(ts), s, a, why) for s in result.symbols for ts, a, why in result.strategies[s].log_.decisions))
    return summary


def print_summary(result, summary: dict, out: Path) -> None:
    cols = ("funding_pnl", "fees", "spot_pnl", "perp_pnl", "net_pnl")
    head = f"{'symbol':<10}" + "".join(f"{c:>14}" for c in cols) + f"{'settl.':>8}{'liqs':>6}{'guard':>7}"
    print(f"\nbacktest {result.start.date()} → {result.end.date()}  data: {result.data_dir}")
    print(head)
    print("-" * len(head))
    for s, v in summary["symbols"].items():
        print(f"{s:<10}" + "".join(f"{v[c]:>14,.2f}" for c in cols)
              + f"{v['settlements']:>8}{v['liquidations']:>6}{v['guard_actions']:>7}")
    t = summary["total"]
    print("-" * len(head))
    print(f"{'total':<10}" + "".join(f"{t[c]:>14,.2f}" for c in cols)
          + f"{t['settlements']:>8}{t['liquidations']:>6}{t['guard_actions']:>7}")
    print(f"equity {t['starting_equity']:,.2f} → {t['ending_equity']:,.2f} USDT "
          f"(reconciliation error {t['reconciliation_error']:+.6f});  "
          f"{result.events:,} events in {result.run_seconds:.1f}s")
    print(f"results: {out}/summary.json, run.json, funding.csv, trades.csv, equity.csv, report.html")
