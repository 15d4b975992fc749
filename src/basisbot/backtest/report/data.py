"""The backtest report's data: the results folder read back (summary, equity, state, funding, trades, guard,
liquidations, decisions) and what the sections derive from it (cumulative series, drawdown, per-symbol stats)."""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import defaultdict
from pathlib import Path

from basisbot.backtest.report.charts import EVENT_STYLE, Marker
from basisbot.backtest.report.format import fmt_num, parse_ts, pct, read_csv_rows, side_label, to_float


def read_json(folder: Path, name: str) -> dict | None:
    try:
        return json.loads((Path(folder) / name).read_text())
    except (OSError, ValueError):
        return None


class ReportData:
    def __init__(self, folder: Path, summary: dict):
        self.folder = folder
        self.summary = summary or {}
        self.run = read_json(folder, "run.json") or self.summary.get("run") or {}  # older folders: in the summary
        self.equity = read_csv_rows(folder, "equity.csv")
        self.state = read_csv_rows(folder, "state.csv")
        self.funding = read_csv_rows(folder, "funding.csv")
        self.predictions = read_csv_rows(folder, "predictions.csv")
        self.trades = read_csv_rows(folder, "trades.csv")
        self.guard = read_csv_rows(folder, "guard.csv")
        self.liquidations = read_csv_rows(folder, "liquidations.csv")
        self.baseline = read_csv_rows(folder, "baseline_funding.csv")
        self.decisions = read_csv_rows(folder, "decisions.csv")
        self.symbols = list((self.summary.get("symbols") or {}).keys())
        for rows in (self.state, self.funding, self.predictions, self.trades, self.guard, self.liquidations):
            for r in rows:
                s = r.get("symbol")
                if s and s not in self.symbols:
                    self.symbols.append(s)
        period = self.summary.get("period") or {}
        p0, p1 = parse_ts(period.get("start", "")), parse_ts(period.get("end", ""))
        self.x_range = (p0, p1) if p0 is not None and p1 is not None and p1 > p0 else None
        self.stats_cache: dict[str, dict] = {}
        self.state_by = defaultdict(list)
        for r in self.state:
            self.state_by[r.get("symbol", "")].append(r)

    def markers(self, symbol: str | None = None) -> list[Marker]:
        out = []
        for g in self.guard:
            if symbol and g.get("symbol") != symbol:
                continue
            t = parse_ts(g.get("ts", ""))
            if t is None:
                continue
            step = g.get("step", "")
            parts = [f"{g.get('ts')}  {g.get('symbol')}  guard {step}"]
            dist = to_float(g.get("distance"))
            if dist is not None:
                parts.append(f"distance {pct(dist)}, mark {fmt_num(to_float(g.get('mark_price')))}, "
                             f"liq. price {fmt_num(to_float(g.get('liquidation_price')))}")
            if (to_float(g.get("add_margin")) or 0) > 0:
                parts.append(f"added margin {fmt_num(to_float(g.get('add_margin')))} USDT")
            if (to_float(g.get("reduce_fraction")) or 0) > 0:
                parts.append(f"reduce {pct(to_float(g.get('reduce_fraction')), 1)}")
            if g.get("reason"):
                parts.append(g["reason"])
            out.append(Marker(t, step if step in EVENT_STYLE else "warn", "\n".join(parts)))
        for lq in self.liquidations:
            if symbol and lq.get("symbol") != symbol:
                continue
            t = parse_ts(lq.get("ts", ""))
            if t is None:
                continue
            out.append(Marker(t, "liquidation",
                              f"{lq.get('ts')}  {lq.get('symbol')}  LIQUIDATION\n"
                              f"{side_label(lq.get('side'))} {lq.get('qty')} at {fmt_num(to_float(lq.get('liquidation_price')))}"
                              f" (entry {fmt_num(to_float(lq.get('entry_price')))}, bar worst mark "
                              f"{fmt_num(to_float(lq.get('bar_worst_mark')))})\n"
                              f"wallet lost {fmt_num(to_float(lq.get('wallet_lost')))} USDT, liquidation loss "
                              f"{fmt_num(to_float(lq.get('insurance_loss')))} USDT"))
        return out


def cum_at(times: list[float], event_ts: list[float], event_val: list[float]) -> list[float]:
    """Cumulative sum of events strictly before each time (snapshots precede the events stamped at t)."""
    order = sorted(range(len(event_ts)), key=event_ts.__getitem__)
    ts = [event_ts[i] for i in order]
    cum, acc = [], 0.0
    for i in order:
        acc += event_val[i]
        cum.append(acc)
    return [cum[k - 1] if (k := bisect_left(ts, t)) > 0 else 0.0 for t in times]


def events_of(rows: list[dict], col: str, symbol: str | None = None):
    ts, vals = [], []
    for r in rows:
        if symbol and r.get("symbol") != symbol:
            continue
        t, v = parse_ts(r.get("ts", "")), to_float(r.get(col))
        if t is not None and v is not None:
            ts.append(t)
            vals.append(v)
    return ts, vals


def max_drawdown(eq: list[float]) -> tuple[float, float]:
    peak, dd, dd_pct = -math.inf, 0.0, 0.0
    for v in eq:
        peak = max(peak, v)
        if peak - v > dd:
            dd, dd_pct = peak - v, (peak - v) / peak if peak else 0.0
    return dd, dd_pct


def symbol_stats(d: ReportData, sym: str) -> dict:
    if sym not in d.stats_cache:
        d.stats_cache[sym] = _compute_symbol_stats(d, sym)
    return d.stats_cache[sym]


def _compute_symbol_stats(d: ReportData, sym: str) -> dict:
    rows = d.state_by.get(sym, [])
    open_h, notional_h, total_h = 0.0, 0.0, 0.0
    ts = [parse_ts(r.get("ts", "")) for r in rows]
    for i, r in enumerate(rows):
        if ts[i] is None:
            continue
        nxt = ts[i + 1] if i + 1 < len(rows) and ts[i + 1] is not None else ts[i] + 3600
        dt_h = max(0.0, min(nxt - ts[i], 6 * 3600)) / 3600
        total_h += dt_h
        q, m = to_float(r.get("perp_qty")), to_float(r.get("mark_price"))
        if q:
            open_h += dt_h
            if m:
                notional_h += abs(q) * m * dt_h
    preds = [(p, q) for r in d.predictions if r.get("symbol") == sym
             if (p := to_float(r.get("predicted_rate"))) is not None and (q := to_float(r.get("settled_rate"))) is not None]
    hit = (sum(1 for p, q in preds if (p > 0) == (q > 0)) / len(preds)) if preds else None
    bias = (sum(p - q for p, q in preds) / len(preds)) if preds else None
    mae = (sum(abs(p - q) for p, q in preds) / len(preds)) if preds else None
    pays = [v for v in events_of(d.funding, "payment", sym)[1]]
    return {"time_in_market": open_h / total_h if total_h else None,
            "avg_notional": notional_h / open_h if open_h else None,
            "notional_years": notional_h / 8760, "hit": hit, "bias": bias, "mae": mae,
            "pays_pos": sum(1 for v in pays if v > 0), "pays_neg": sum(1 for v in pays if v < 0)}
