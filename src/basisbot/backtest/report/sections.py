"""The backtest report's sections: header, summary, equity, PnL, risk, one per symbol, trades and decisions, with
the page's CSS."""

from __future__ import annotations

from collections import Counter, defaultdict

from basisbot.backtest.report.charts import COLORS, Series, figure, svg_chart
from basisbot.backtest.report.data import ReportData, cum_at, events_of, max_drawdown, symbol_stats
from basisbot.backtest.report.format import (
    esc,
    fmt_num,
    fmt_when,
    html_table,
    none_note,
    parse_ts,
    pct,
    side_label,
    td,
    tdt,
    to_float,
)
from basisbot.core.units import MINUTES_PER_YEAR

MAX_TRADE_ROWS = 500       # trades table


MAX_DECISION_ROWS = 1000   # decisions log


CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#e3e6ec;--neg:#b42318;--bg:#f5f6f8}
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);
 margin:0;background:var(--bg)}
main{max-width:1300px;margin:0 auto;padding:14px 22px 40px}
h1{font-size:22px;margin:6px 0 2px} h2{font-size:18px;margin:2px 0 10px} h3{font-size:14px;margin:16px 0 2px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 18px 16px;margin:14px 0}
nav{position:sticky;top:0;z-index:5;background:var(--bg);padding:6px 0;border-bottom:1px solid var(--line)}
nav a{margin-right:14px;color:#1f4e79;text-decoration:none;font-size:13px} nav a:hover{text-decoration:underline}
.meta{color:var(--muted);font-size:13px} .meta b{color:var(--fg);font-weight:600}
.note{color:var(--muted);font-size:12.5px;margin:2px 0 4px}
.none{color:var(--muted);font-style:italic;margin:4px 0}
figure{margin:0 0 6px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(175px,1fr));gap:10px;margin:6px 0 4px}
.card{border:1px solid var(--line);border-radius:6px;padding:7px 10px;background:#fbfbfc}
.card .k{color:var(--muted);font-size:12px} .card .v{font-size:17px;font-weight:600;font-variant-numeric:tabular-nums}
.card .s{color:var(--muted);font-size:12px}
.scroll{overflow:auto;max-height:560px;border:1px solid var(--line);border-radius:4px}
table{border-collapse:collapse;font-size:12.5px;width:100%}
table.pnl td.n,table.pnl th.n{min-width:110px}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{white-space:normal;vertical-align:bottom}
thead th{position:sticky;top:0;background:#eef0f4;font-weight:600;z-index:1}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.wrap{white-space:normal;min-width:260px}
tr.total td{font-weight:700;border-top:2px solid #9aa3b2;background:#f7f8fa}
tr.liq td{background:#fdecea} tr.evt td{background:#fff6e5}
.neg{color:var(--neg)} .ok{color:#067647;font-weight:600} .bad{color:var(--neg);font-weight:700}
.tag{display:inline-block;padding:0 5px;border-radius:3px;font-size:11px;background:#eef0f4}
.tag.LIQUIDATION{background:#d62728;color:#fff} .tag.UNWIND,.tag.REDUCE{background:#f7c97e}
.tag.ENTER{background:#cfe8e4} .tag.EXIT{background:#dbe4f0}
svg.chart{width:100%;height:auto;display:block;margin:2px 0 6px}
svg.chart text{font-size:11px;fill:#5b6475} svg.chart text.lg{fill:#1d2330}
svg.chart text.glyph{font-size:8.5px;fill:#fff;font-weight:700}
svg.chart .plot{fill:#fff;stroke:#c9ced8} svg.chart .grid{stroke:#eceef2} svg.chart .vgrid{stroke:#f2f3f6}
svg.chart .zero{stroke:#8a93a3;stroke-width:1}
svg.chart .mk{cursor:help} svg.chart .mk:hover line.v{stroke-width:3}
details summary{cursor:pointer;color:var(--muted)}
@media (max-width:700px){main{padding:8px} section{padding:8px}}
"""


def _card(k: str, v: str, s: str = "", neg: bool = False) -> str:
    cls = "v neg" if neg else "v"
    sub = f'<div class="s">{esc(s)}</div>' if s else ""
    return f'<div class="card"><div class="k">{esc(k)}</div><div class="{cls}">{esc(v)}</div>{sub}</div>'


def page_header(d: ReportData) -> str:
    s = d.summary
    period = s.get("period") or {}
    run = d.run
    days = (d.x_range[1] - d.x_range[0]) / 86400 if d.x_range else None
    p = (f"<b>{esc(fmt_when(period.get('start')))}</b> → <b>{esc(fmt_when(period.get('end')))}</b>"
         + (f" ({fmt_num(days, 1)} days)" if days else ""))
    run_txt = (f"{fmt_num(run.get('events'), 0)} events in {fmt_num(run.get('seconds'), 1)} s "
               f"({fmt_num(run.get('events_per_second'), 0)} events/s)") if run else "–"
    notes = s.get("data_notes") or []
    notes_html = ""
    if notes:
        li = "".join(f"<li>{esc(n)}</li>" for n in notes)
        notes_html = f'<details><summary>data notes ({len(notes)})</summary><ul class="note">{li}</ul></details>'
    return (f"<h1>basisbot backtest report</h1>"
            f'<div class="meta">period {p} · data <b>{esc(s.get("data", "?"))}</b> · symbols '
            f'<b>{esc(", ".join(d.symbols) or "none")}</b> · run {esc(run_txt)}</div>'
            f'<div class="meta">results folder <b>{esc(d.folder)}</b> (this report is rebuilt from its CSV files)</div>'
            + notes_html)


def page_nav(d: ReportData) -> str:
    links = [("summary", "Summary"), ("equity", "Equity"), ("pnl", "PnL split"), ("risk", "Liquidations & guard")]
    links += [(f"sym-{s}", s) for s in d.symbols]
    links += [("trades", "Trades"), ("decisions", "Decisions")]
    return "<nav>" + "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in links) + "</nav>"


def _unhedged_cell(seconds, limit) -> str:
    """The one-leg invariant: longest stretch with one leg alone, red when past the leg timeout."""
    if seconds is None:
        return "<td></td>"
    bad = limit is not None and seconds > limit
    return tdt(f"{fmt_num(seconds, 1)}" + (f" > {fmt_num(limit, 1)}" if bad else ""), "n neg" if bad else "n")


def summary_section(d: ReportData) -> str:
    s = d.summary
    syms = s.get("symbols") or {}
    tot = s.get("total") or {}
    start_eq = tot.get("starting_equity")
    net = tot.get("net_pnl")
    days = (d.x_range[1] - d.x_range[0]) / 86400 if d.x_range else None
    eq = [v for r in d.equity if (v := to_float(r.get("equity"))) is not None]
    dd, dd_pct = max_drawdown(eq) if eq else (None, None)
    ret = net / start_eq if net is not None and start_eq else None
    ann = ret * 365 / days if ret is not None and days else None
    recon = tot.get("reconciliation_error")
    stats = {sym: symbol_stats(d, sym) for sym in d.symbols}
    nyears = sum(st["notional_years"] for st in stats.values())
    leg_timeout = {sym: v.get("leg_timeout_s") for sym, v in syms.items() if v.get("leg_timeout_s") is not None}
    cards = [
        _card("net PnL (USDT)", fmt_num(net), f"{pct(ret, 3)} of starting equity" if ret is not None else "",
              neg=net is not None and net < 0),
        _card("equity (USDT)", f"{fmt_num(tot.get('ending_equity'))}", f"from {fmt_num(start_eq)}"),
        _card("simple annualised return", pct(ann), f"over {fmt_num(days, 1)} days" if days else ""),
        _card("max drawdown (USDT)", fmt_num(dd), f"{pct(dd_pct, 3)} of peak equity" if dd_pct is not None else ""),
        _card("funding PnL (USDT)", fmt_num(tot.get("funding_pnl")),
              f"{pct(tot.get('funding_pnl', 0) / nyears)} APR on avg short notional" if nyears > 0
              else "no position held"),
        _card("fees (USDT)", fmt_num(tot.get("fees")), f"{tot.get('entries', 0)} entries, {tot.get('exits', 0)} exits"),
        _card("liquidations", str(tot.get("liquidations", 0)), f"loss {fmt_num(tot.get('liquidation_loss'))} USDT",
              neg=bool(tot.get("liquidations"))),
        _card("guard actions", str(tot.get("guard_actions", 0)), f"{tot.get('settlements', 0)} settlements held"),
        _card("vs always-in", f"{fmt_num(tot.get('always_in_funding'))}",
              f"funding held throughout; capture {pct(tot.get('capture'), 1)} of positive funding; "
              f"net APR {pct(tot.get('net_apr'))} vs {pct(tot.get('always_in_apr'))} on "
              f"{fmt_num(tot.get('capital_usdt'), 0)} USDT deployed"),
    ]
    ok = recon is not None and abs(recon) < 0.01
    recon_html = (f'<p class="note">Reconciliation: equity change {esc(fmt_num(tot.get("equity_change")))} USDT vs '
                  f'sum of PnL components {esc(fmt_num(net))} USDT → error '
                  f'<span class="{"ok" if ok else "bad"}">{esc(fmt_num(recon, 6))} USDT</span>'
                  f'{" (OK)" if ok else " (MISMATCH)"}. '
                  f"net = funding + spot PnL + perp PnL − fees − liquidation loss; spot/perp PnL are fills plus "
                  f"holdings marked at the last spot close / mark price.</p>")
    pnl_head = ["symbol", "funding", "spot PnL", "perp PnL", "fees", "liquidation loss", "net PnL"]
    act_head = ["symbol", "settlements held / in data", "liquidations", "guard actions", "entries / exits",
                "margin added (USDT)", "time in market", "avg short notional", "funding APR", "predictor MAE (bp)",
                "sign hit", "final spot / perp qty", "longest one-legged (s)"]
    pnl_rows, act_rows = [], []

    def pnl_cells(v):
        return (td(v.get("funding_pnl"), signed_color=True) + td(v.get("spot_pnl"), signed_color=True)
                + td(v.get("perp_pnl"), signed_color=True) + td(v.get("fees")) + td(v.get("liquidation_loss"))
                + td(v.get("net_pnl"), signed_color=True))

    for sym in d.symbols:
        v = syms.get(sym, {})
        st = stats[sym]
        gb = v.get("guard_breakdown") or {}
        g_txt = str(v.get("guard_actions", 0))
        if gb:
            g_txt += " (" + ", ".join(f"{k} {n}" for k, n in gb.items()) + ")"
        apr = v.get("funding_pnl", 0) / st["notional_years"] if st["notional_years"] > 0 else None
        mae = v.get("predictor_mae", st["mae"])
        link = f"<td><a href='#sym-{esc(sym)}'>{esc(sym)}</a></td>"
        pnl_rows.append(f"<tr>{link}{pnl_cells(v)}</tr>")
        act_rows.append(
            f"<tr>{link}"
            + tdt(f"{v.get('settlements', 0)} / {v.get('settlements_in_data', '–')}", "n")
            + tdt(v.get("liquidations", 0), "n neg" if v.get("liquidations") else "n") + tdt(g_txt, "n")
            + tdt(f"{v.get('entries', 0)} / {v.get('exits', 0)}", "n") + td(v.get("margin_added"))
            + tdt(pct(st["time_in_market"], 1), "n") + td(st["avg_notional"], 0) + tdt(pct(apr), "n")
            + td(None if mae is None else mae * 1e4, 3) + tdt(pct(st["hit"], 1), "n")
            + tdt(f"{fmt_num(v.get('final_spot_qty'), 6)} / {fmt_num(v.get('final_perp_qty'), 6)}", "n")
            + _unhedged_cell(v.get("max_unhedged_s"), leg_timeout.get(sym)) + "</tr>")
    tot_apr = tot.get("funding_pnl", 0) / nyears if nyears > 0 else None
    pnl_rows.append(f"<tr class='total'><td>total</td>{pnl_cells(tot)}</tr>")
    act_rows.append(
        "<tr class='total'><td>total</td>" + tdt(tot.get("settlements", 0), "n")
        + tdt(tot.get("liquidations", 0), "n neg" if tot.get("liquidations") else "n")
        + tdt(tot.get("guard_actions", 0), "n") + tdt(f"{tot.get('entries', 0)} / {tot.get('exits', 0)}", "n")
        + td(sum((v.get("margin_added") or 0) for v in syms.values())) + "<td></td><td></td>"
        + tdt(pct(tot_apr), "n") + "<td></td><td></td><td></td>"
        + _unhedged_cell(tot.get("max_unhedged_s"), max(leg_timeout.values(), default=None)) + "</tr>")
    pnl_table = html_table(pnl_head, pnl_rows, numeric=set(range(1, len(pnl_head))), cls="pnl")
    act_table = html_table(act_head, act_rows, numeric=set(range(1, len(act_head))))
    return (f'<section id="summary"><h2>Summary</h2><div class="cards">{"".join(cards)}</div>'
            f'<h3>PnL per symbol (USDT)</h3>{pnl_table}{recon_html}'
            f'<h3>Activity and risk per symbol</h3>{act_table}'
            '<p class="note">Time in market, average short notional (|perp qty| × mark while open) and funding APR '
            '(funding PnL / notional-years held) come from state.csv; predictor MAE and sign hit rate compare the '
            "strategy's last prediction before each settlement with the settled rate (predictions.csv).</p></section>")


def equity_section(d: ReportData) -> str:
    t = [parse_ts(r.get("ts", "")) for r in d.equity]
    if not d.equity:
        return f'<section id="equity"><h2>Equity</h2>{none_note("none: equity.csv is empty")}</section>'
    mk = d.markers()
    col = {c: [to_float(r.get(c)) for r in d.equity] for c in ("spot_usdt", "spot_assets_usdt", "perp_wallet",
                                                          "perp_unrealized", "equity")}

    def add(a, b):
        return [None if x is None or y is None else x + y for x, y in zip(a, b)]

    total = figure("Total equity (USDT)", svg_chart(
        [Series("equity = spot USDT + spot assets + perp wallet + perp unrealized", t, col["equity"],
                COLORS["equity"], width=1.8)], x_range=d.x_range, markers=mk, height=240),
        "Hourly snapshots (equity.csv). Markers: liquidations (L) and guard actions (W warn, A add margin, "
        "R reduce, C close); hover a marker for details.")
    accounts = figure("Accounts (USDT)", svg_chart(
        [Series("spot account (USDT + assets at spot close)", t, add(col["spot_usdt"], col["spot_assets_usdt"]),
                COLORS["spot"], width=1.6),
         Series("perp account (wallet + unrealized)", t, add(col["perp_wallet"], col["perp_unrealized"]),
                COLORS["perp"], width=1.6),
         Series("perp wallet", t, col["perp_wallet"], COLORS["perp_wallet"], dash="5 3", step=True)],
        x_range=d.x_range, markers=mk, height=260),
        "Margin moved from spot to perp by the guard shows as a step between the two accounts.")
    return f'<section id="equity"><h2>Equity</h2>{total}{accounts}</section>'


def pnl_section(d: ReportData) -> str:
    if not d.equity:
        return f'<section id="pnl"><h2>Cumulative PnL split</h2>{none_note("none: equity.csv is empty")}</section>'
    t = [parse_ts(r.get("ts", "")) for r in d.equity]
    eq = [to_float(r.get("equity")) for r in d.equity]
    start = (d.summary.get("total") or {}).get("starting_equity")
    if start is None:
        start = next((v for v in eq if v is not None), 0.0)
    valid = [x for x in t if x is not None]
    fund = cum_at(valid, *events_of(d.funding, "payment"))
    always = cum_at(valid, *events_of(d.baseline, "payment")) if d.baseline else None
    fees = cum_at(valid, *events_of(d.trades, "fee_usdt"))
    liq = cum_at(valid, *events_of(d.liquidations, "insurance_loss"))
    net, price, ts = [], [], []
    k = 0
    for x, e in zip(t, eq):
        if x is None:
            continue
        n = None if e is None else e - start
        net.append(n)
        price.append(None if n is None else n - fund[k] + fees[k] + liq[k])
        ts.append(x)
        k += 1
    last = lambda xs: fmt_num(next((v for v in reversed(xs) if v is not None), None))  # noqa: E731
    series = [
        Series(f"net = equity − start ({last(net)})", ts, net, COLORS["net"], width=2.0),
        Series(f"funding ({last(fund)})", ts, fund, COLORS["funding"], step=True, width=1.6),
        Series(f"spot + perp price PnL ({last(price)})", ts, price, COLORS["price"], width=1.3),
        Series(f"− fees ({last([-v for v in fees])})", ts, [-v for v in fees], COLORS["fees"], step=True, width=1.6),
    ]
    if always is not None:
        series.append(Series(f"always-in funding, same size ({last(always)})", ts, always, COLORS["funding"],
                             step=True, width=1.2, dash="4 3"))
    if any(liq):
        series.append(Series(f"− liquidation loss ({last([-v for v in liq])})", ts, [-v for v in liq], COLORS["liq"],
                             step=True, width=1.6))
    chart = svg_chart(series, x_range=d.x_range, markers=d.markers(), include_zero=True, height=300)
    return ('<section id="pnl"><h2>Cumulative PnL split (USDT)</h2>'
            + figure("Funding vs price PnL vs costs", chart,
                      "Cumulative funding from funding.csv, fees from trades.csv, liquidation loss from "
                      "liquidations.csv (each counted from the first hourly snapshot after it); spot + perp price PnL "
                      "is the rest of the equity change (mark-to-market of both legs, including a liquidated leg's "
                      "loss at the liquidation "
                      "price). Dashed: the funding a position of the same size held from the first to the last "
                      "hour would have received (baseline_funding.csv). Final values in the legend.")
            + "</section>")


def risk_section(d: ReportData) -> str:
    if d.liquidations:
        rows = []
        for lq in d.liquidations:
            rows.append("<tr class='liq'>" + tdt(lq.get("ts")) + tdt(lq.get("symbol")) + tdt(side_label(lq.get("side")))
                        + td(to_float(lq.get("qty")), 6) + td(to_float(lq.get("entry_price")))
                        + td(to_float(lq.get("liquidation_price")))
                        + td(to_float(lq.get("bar_worst_mark"))) + td(to_float(lq.get("wallet_lost")))
                        + td(to_float(lq.get("insurance_loss"))) + "</tr>")
        liq = html_table(["ts (UTC)", "symbol", "position", "qty", "entry price", "liquidation price", "bar worst mark",
                      "wallet lost (USDT)", "liquidation loss (USDT)"], rows, numeric={3, 4, 5, 6, 7, 8})
        liq += ('<p class="note">Wallet lost: the isolated margin taken with the position. Liquidation loss: what the '
                "liquidation took beyond a fill at the liquidation price (insurance-fund clearance), a PnL component "
                "of its own in the summary.</p>")
    else:
        liq = none_note("none: no liquidations in this run")
    if d.guard:
        rows = []
        for g in d.guard:
            step = g.get("step", "")
            cls = " class='evt'" if step in ("reduce", "close") else ""
            add = to_float(g.get("add_margin"))
            red = to_float(g.get("reduce_fraction"))
            rows.append(f"<tr{cls}>" + tdt(g.get("ts")) + tdt(g.get("symbol")) + tdt(step)
                        + tdt(pct(to_float(g.get("distance"))), "n") + td(to_float(g.get("mark_price")))
                        + td(to_float(g.get("liquidation_price"))) + td(add if add else None)
                        + tdt(pct(red, 1) if red else "–", "n") + td(to_float(g.get("spot_qty_after")), 6)
                        + td(to_float(g.get("perp_qty_after")), 6) + tdt(g.get("reason"), "wrap") + "</tr>")
        counts = Counter(g.get("step", "") for g in d.guard)
        guard = (f'<p class="note">{esc(", ".join(f"{k}: {n}" for k, n in counts.items()))}</p>'
                 + html_table(["ts (UTC)", "symbol", "step", "distance", "mark", "liquidation price", "margin added",
                           "reduce", "spot qty after", "perp qty after", "reason"], rows,
                          numeric={3, 4, 5, 6, 7, 8, 9}))
    else:
        guard = none_note("none: no guard actions in this run")
    return (f'<section id="risk"><h2>Liquidations &amp; guard actions</h2><h3>Liquidations</h3>{liq}'
            f"<h3>Guard actions</h3>{guard}{_limits_part(d.summary.get('risk'))}</section>")


def _limits_part(risk: dict | None) -> str:
    """The risk limits ([risk]) of the run, their breaches and the action each took (only when configured)."""
    if not risk:
        return ""
    lim = ", ".join(f"{k} = {v}" for k, v in (risk.get("limits") or {}).items() if v is not None)
    rows = ["<tr class='liq'>" + tdt(b.get("ts")) + tdt(b.get("limit")) + td(to_float(b.get("value")), 3)
            + td(to_float(b.get("threshold")), 3) + td(to_float(b.get("equity"))) + td(to_float(b.get("reference")))
            + tdt(b.get("action")) + "</tr>" for b in risk.get("breaches") or []]
    table = (html_table(["ts (UTC)", "limit", "value", "limit value", "equity", "day start / peak", "action"], rows,
                        numeric={2, 3, 4, 5}) if rows else none_note("none: no risk limit breached in this run"))
    refused = risk.get("entries_refused") or {}
    note = (f'<p class="note">limits: {esc(lim)}. Entries refused: '
            f'{esc(", ".join(f"{k}: {n}" for k, n in refused.items()) or "none")}. Control state at the end: '
            f'{esc(", ".join(f"{s}: {m}" for s, m in (risk.get("control") or {}).items()))}.</p>')
    return f"<h3>Risk limits</h3>{note}{table}"


def symbol_section(d: ReportData, sym: str) -> str:
    rows = d.state_by.get(sym, [])
    v = (d.summary.get("symbols") or {}).get(sym, {})
    mk = d.markers(sym)
    t = [parse_ts(r.get("ts", "")) for r in rows]
    spans, open_at = [], None
    for i, r in enumerate(rows):  # shaded while a perp position is open (a row is the state before its hour)
        if t[i] is None:
            continue
        is_open = bool(to_float(r.get("perp_qty")))
        if is_open and open_at is None:
            open_at = t[i]
        elif not is_open and open_at is not None:
            spans.append((open_at, t[i]))
            open_at = None
    if open_at is not None:
        spans.append((open_at, max(x for x in t if x is not None) + 3600))

    def col(c, scale=1.0, only_open=False):
        out = []
        for r in rows:
            x = to_float(r.get(c))
            if only_open and not to_float(r.get("perp_qty")):
                x = None
            out.append(None if x is None else x * scale)
        return out

    st = symbol_stats(d, sym)
    meta = (f'<p class="meta">net <b class="{"neg" if (v.get("net_pnl") or 0) < 0 else ""}">'
            f'{esc(fmt_num(v.get("net_pnl")))}</b> USDT · funding {esc(fmt_num(v.get("funding_pnl")))} · '
            f'fees {esc(fmt_num(v.get("fees")))} · settlements held {esc(v.get("settlements", 0))} of '
            f'{esc(v.get("settlements_in_data", "–"))} (received {st["pays_pos"]}, paid {st["pays_neg"]}) · '
            f'liquidations {esc(v.get("liquidations", 0))} · guard actions {esc(v.get("guard_actions", 0))} · '
            f'time in market {esc(pct(st["time_in_market"], 1))}</p>')
    parts = [f'<section id="sym-{esc(sym)}"><h2>{esc(sym)}</h2>{meta}']
    if not rows:
        parts.append(none_note("none: no rows for this symbol in state.csv"))
    else:
        parts.append(figure("Prices (USDT)", svg_chart(
            [Series("spot close", t, col("spot_price"), COLORS["spot"]),
             Series("perp mark", t, col("mark_price"), COLORS["mark"], width=1.1),
             Series("liquidation price (while open)", t, col("liquidation_price", only_open=True), COLORS["liq_price"],
                    step=True, dash="5 3")], x_range=d.x_range, markers=mk, height=240),
            "Liquidation price of the short perp leg (isolated margin) while a position is open."))

    # funding: predicted vs settled, annualised on the left axis, per-interval on the right
    pr = [r for r in d.predictions if r.get("symbol") == sym]
    if pr:
        intervals = {to_float(r.get("interval_minutes")) for r in pr} - {None, 0.0}
        pt = [parse_ts(r.get("ts", "")) for r in pr]

        def ann(r, c):
            x, m = to_float(r.get(c)), to_float(r.get("interval_minutes")) or 480.0
            return None if x is None else x * MINUTES_PER_YEAR / m * 100

        y2 = y2t = None
        if len(intervals) == 1:
            m = intervals.pop()
            y2 = lambda a, m=m: f"{a / 100 * m / MINUTES_PER_YEAR * 1e4:.2f}"  # noqa: E731
            y2t = f"bp per {m / 60:g}h"
            note = (f"Left axis: annualised (rate × {MINUTES_PER_YEAR / m:g} settlements/yr, in %); right axis: "
                    f"the raw rate per {m / 60:g}h interval in basis points.")
        else:
            note = "Annualised: each rate × settlements per year of its own interval (intervals vary in this run)."
        sparse = len(pr) <= 400
        stn = f" MAE {fmt_num(st['mae'] * 1e4, 3)} bp per settlement" if st["mae"] is not None else ""
        stn += f", bias {fmt_num(st['bias'] * 1e4, 3)} bp" if st["bias"] is not None else ""
        stn += f", sign hit {pct(st['hit'], 1)}" if st["hit"] is not None else ""
        parts.append(figure("Funding rate: predicted vs settled (annualised %)", svg_chart(
            [Series("settled", pt, [ann(r, "settled_rate") for r in pr], COLORS["settled"], width=1.6, dots=sparse),
             Series("predicted (last before settlement)", pt, [ann(r, "predicted_rate") for r in pr],
                    COLORS["predicted"], width=1.3, dash="4 2", dots=sparse)],
            x_range=d.x_range, markers=mk, include_zero=True, unit="%", y2=y2, y2_title=y2t or "", height=250,
            spans=spans),
            note + stn + ". A short perp receives funding when the rate is positive."))
    else:
        parts.append(figure("Funding rate: predicted vs settled", none_note("none: no settlements in predictions.csv")))
    if rows:
        parts.append(figure("Basis (mark − spot) / spot, bp", svg_chart(
            [Series("basis", t, col("basis", 1e4), COLORS["basis"], width=1.1)],
            x_range=d.x_range, markers=mk, include_zero=True, unit=" bp", height=200, spans=spans)))
        dist = col("liquidation_distance", 100, only_open=True)
        parts.append(figure("Distance to liquidation (% of mark)", svg_chart(
            [Series("(liquidation price − mark) / mark", t, dist, COLORS["distance"], width=1.4)],
            x_range=d.x_range, markers=mk, include_zero=True, unit="%", height=220)
            if any(x is not None for x in dist) else none_note("none: no open position"),
            "Blank while flat. The guard acts on this distance (warn / add margin / reduce / close)."))
        parts.append(figure("Position (base qty)", svg_chart(
            [Series("spot qty (long)", t, col("spot_qty"), COLORS["qty_spot"], step=True, width=1.6),
             Series("perp qty × −1 (short size)", t, col("perp_qty", -1.0), COLORS["qty_perp"], step=True, width=1.3,
                    dash="5 3")], x_range=d.x_range, markers=mk, include_zero=True, height=200),
            "Perp quantity drawn as short size so a full hedge shows the two lines on top of each other."))
    parts.append("</section>")
    return "".join(parts)


def trades_section(d: ReportData) -> str:
    if not d.trades:
        return f'<section id="trades"><h2>Trades</h2>{none_note("none: no trades in this run")}</section>'
    agg: dict[tuple, list] = defaultdict(lambda: [0, 0.0, 0.0])
    for r in d.trades:
        a = agg[(r.get("symbol", ""), r.get("leg", ""), r.get("tag", ""))]
        a[0] += 1
        a[1] += (to_float(r.get("qty")) or 0) * (to_float(r.get("price")) or 0)
        a[2] += to_float(r.get("fee_usdt")) or 0
    srows = [f"<tr>{tdt(k[0])}{tdt(k[1])}<td><span class='tag {esc(k[2])}'>{esc(k[2])}</span></td>"
             f"{tdt(a[0], 'n')}{td(a[1])}{td(a[2])}</tr>" for k, a in sorted(agg.items())]
    by = html_table(["symbol", "leg", "tag", "fills", "notional (USDT)", "fees (USDT)"], srows, numeric={3, 4, 5})
    shown = d.trades[:MAX_TRADE_ROWS]
    rows = []
    for r in shown:
        tag = r.get("tag", "")
        q, p = to_float(r.get("qty")), to_float(r.get("price"))
        cls = " class='liq'" if tag == "LIQUIDATION" else ""
        rows.append(f"<tr{cls}>" + tdt(r.get("ts")) + tdt(r.get("symbol")) + tdt(r.get("leg")) + tdt(r.get("side"))
                    + td(q, 6) + td(p) + td(None if q is None or p is None else q * p)
                    + td(to_float(r.get("fee_usdt")), 4) + tdt(r.get("fee_currency"))
                    + f"<td><span class='tag {esc(tag)}'>{esc(tag)}</span></td>" + tdt(r.get("client_order_id"))
                    + "</tr>")
    cap = (f'<p class="note">Showing the first {len(shown)} of {len(d.trades)} fills; '
           "all of them are in trades.csv.</p>"
           if len(d.trades) > len(shown) else f'<p class="note">{len(d.trades)} fills.</p>')
    table = html_table(["ts (UTC)", "symbol", "leg", "side", "qty", "price", "notional", "fee (USDT)", "fee ccy", "tag",
                    "client order id"], rows, numeric={4, 5, 6, 7})
    return (f'<section id="trades"><h2>Trades</h2><h3>By symbol, leg and tag</h3>{by}'
            f"<h3>Fills</h3>{cap}{table}</section>")


def decisions_section(d: ReportData) -> str:
    if not d.decisions:
        return f'<section id="decisions"><h2>Decisions log</h2>{none_note("none: no decisions logged")}</section>'
    shown = d.decisions[:MAX_DECISION_ROWS]
    rows = []
    for r in shown:
        a = r.get("action", "")
        cls = (" class='liq'" if a == "liquidated"
               else " class='evt'" if a in ("reduce", "unwind", "leg_timeout", "exit") else "")
        rows.append(f"<tr{cls}>" + tdt(r.get("ts")) + tdt(r.get("symbol")) + tdt(a) + tdt(r.get("reason"), "wrap")
                    + "</tr>")
    counts = Counter(r.get("action", "") for r in d.decisions)
    cap = (f"Showing the first {len(shown)} of {len(d.decisions)}; all in decisions.csv. "
           if len(d.decisions) > len(shown) else "")
    note = f'<p class="note">{esc(cap)}{esc(", ".join(f"{k}: {n}" for k, n in counts.items()))}</p>'
    return (f'<section id="decisions"><h2>Decisions log</h2>{note}'
            + html_table(["ts (UTC)", "symbol", "action", "reason"], rows) + "</section>")
