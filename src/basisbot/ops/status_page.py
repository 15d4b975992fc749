"""The status page: `basisbot.ops.status.status_data` as one self-contained HTML page (no scripts, no external assets).

Per symbol: phase, distance to liquidation, legs and hedge ratio, basis, predicted funding with APR and countdown,
accrued and settled funding, the PnL split, a small inline-SVG chart of funding and of the distance to liquidation
over the last day, the recent guard actions and decisions. The page refreshes itself (``<meta http-equiv=refresh>``).
Nothing secret is on it: it shows the journal's content and the symbols' parameters, never URLs, tokens or keys.
"""

from __future__ import annotations

import datetime as dt
import html

from basisbot.core.units import NS
from basisbot.ops.status import unpriced_fees_note

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2733}
header{background:#1d2733;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header span{opacity:.8}
main{display:flex;flex-wrap:wrap;gap:14px;padding:14px}
section.sym{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;padding:12px 14px;flex:1 1 520px;max-width:760px}
section.sym h2{margin:0 0 6px;font-size:17px;display:flex;gap:10px;align-items:center}
.phase{font-size:12px;padding:2px 8px;border-radius:10px;background:#e5e8ec}
.phase.in_carry{background:#d4f0e2;color:#0b6b3a}.phase.entering,.phase.exiting{background:#fff1c7;color:#7a5a00}
.dist{font-size:13px;padding:2px 8px;border-radius:10px;background:#e5e8ec}
.dist.ok{background:#d4f0e2;color:#0b6b3a}.dist.warn{background:#fff1c7;color:#7a5a00}.dist.bad{background:#fbd5d5;color:#8a1111}
table{border-collapse:collapse;width:100%;margin:6px 0}td,th{padding:2px 6px;text-align:left;vertical-align:top}
th{font-weight:600;color:#556;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:120px}table.list{font-size:12.5px}table.list td{border-top:1px solid #eee}
.neg{color:#b42318}.pos{color:#067647}.muted{color:#889}
.charts{display:flex;gap:10px;flex-wrap:wrap}.chart{flex:1 1 300px}.chart b{font-size:12px;color:#556}
footer{padding:4px 18px 14px;color:#778;font-size:12px}
"""


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _ts(ns: int | None) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / NS, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _md_hm(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / NS, tz=dt.timezone.utc).strftime("%m-%d %H:%MZ")


def _num(v, fmt: str = ",.2f", signed_class: bool = False) -> str:
    if v is None:
        return '<span class="muted">-</span>'
    text = format(v, fmt)
    if signed_class and v:
        return f'<span class="{"pos" if v > 0 else "neg"}">{_e(text)}</span>'
    return _e(text)


def _pct(v, d: int = 2) -> str:
    return '<span class="muted">-</span>' if v is None else _e(f"{v:.{d}%}")


def sparkline(points: list[tuple[int, float]], *, x_range: tuple[int, int], color: str, fmt=lambda v: f"{v:g}",
              width: int = 340, height: int = 90, label: str = "") -> str:
    """A small inline SVG line chart of (ts_ns, value) over `x_range` (min/max labelled); 'no data' when empty."""
    if not points:
        return (f'<svg class="spark" role="img" aria-label="{_e(label)}: no data" width="{width}" height="{height}">'
                f'<rect width="100%" height="100%" fill="#fafbfc"/><text x="{width / 2}" y="{height / 2}" '
                f'text-anchor="middle" fill="#99a" font-size="12">no data in the last day</text></svg>')
    x0, x1 = x_range
    x0 = min(x0, min(p[0] for p in points))
    x1 = max(x1, max(p[0] for p in points), x0 + 1)
    ys = [p[1] for p in points]
    lo, hi = min(ys), max(ys)
    if hi - lo < 1e-15:
        pad = abs(hi) * 0.05 or 1e-6
        lo, hi = lo - pad, hi + pad
    pl, pr, pt, pb = 4, 58, 6, 16
    w, h = width - pl - pr, height - pt - pb

    def X(t):
        return pl + (t - x0) / (x1 - x0) * w

    def Y(v):
        return pt + (hi - v) / (hi - lo) * h

    if len(points) == 1:
        t, v = points[0]
        path = f'<circle cx="{X(t):.1f}" cy="{Y(v):.1f}" r="3" fill="{color}"/>'
    else:
        d = " ".join(f"{'M' if i == 0 else 'L'}{X(t):.1f},{Y(v):.1f}" for i, (t, v) in enumerate(points))
        path = (f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.6"/>'
                f'<circle cx="{X(points[-1][0]):.1f}" cy="{Y(points[-1][1]):.1f}" r="2.5" fill="{color}"/>')
    zero = ""
    if lo < 0 < hi:
        zero = f'<line x1="{pl}" x2="{pl + w}" y1="{Y(0):.1f}" y2="{Y(0):.1f}" stroke="#ccd" stroke-dasharray="3 3"/>'
    return (f'<svg class="spark" role="img" aria-label="{_e(label)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><rect x="{pl}" y="{pt}" width="{w}" height="{h}" fill="#fafbfc"/>'
            f'{zero}{path}'
            f'<text x="{pl + w + 4}" y="{pt + 9}" font-size="10" fill="#667">{_e(fmt(hi))}</text>'
            f'<text x="{pl + w + 4}" y="{pt + h}" font-size="10" fill="#667">{_e(fmt(lo))}</text>'
            f'<text x="{pl}" y="{height - 3}" font-size="10" fill="#667">{_e(_md_hm(x0))}</text>'
            f'<text x="{pl + w}" y="{height - 3}" font-size="10" fill="#667" text-anchor="end">{_e(_md_hm(x1))}</text>'
            f'</svg>')


def _dist_class(d: float | None) -> str:
    if d is None:
        return ""
    return "ok" if d >= 0.10 else ("warn" if d >= 0.05 else "bad")


def _adl_badge(adl: dict | None) -> str:
    """The short's place in the venue's auto-deleveraging queue; "bad" in the top bucket."""
    if not adl:
        return ""
    cls = "bad" if adl["rank"] >= adl["top"] else ("warn" if adl["rank"] >= adl["top"] - 1 else "ok")
    return (f' <span class="adl dist {cls}" data-adl-rank="{adl["rank"]}">ADL {adl["rank"]}/{adl["top"]}'
            f'</span>')


def _symbol_section(st: dict, now_ns: int) -> str:
    sym, phase = st["symbol"], st.get("phase") or "flat"
    d = st.get("distance")
    head = (f'<h2><span class="sym-name">{_e(sym)}</span> <span class="phase {_e(phase)}" data-phase="{_e(phase)}">'
            f'{_e(phase)}</span> <span class="dist {_dist_class(d)}" data-distance="{"" if d is None else f"{d:.6f}"}">'
            f'liquidation {_pct(d) if d is not None else "-"}{" away" if d is not None else ""}</span>'
            + _adl_badge(st.get("adl_rank")) + '</h2>')
    if st.get("no_journal"):
        return f'<section class="sym" id="{_e(sym)}">{head}<p class="muted">nothing journaled yet</p></section>'
    notes = []
    if not st.get("configured"):
        notes.append("not in the config")
    elif not st.get("enabled"):
        notes.append("disabled in the config")
    p = st.get("prediction")
    if p:
        secs = max((p["next_settlement_ns"] - now_ns) / NS, 0)
        h, m = divmod(int(secs) // 60, 60)
        funding = (f'{p["rate"]:+.6f} per {p["interval_minutes"] // 60}h ({p["apr"]:+.2%} APR), next '
                   f'{_ts(p["next_settlement_ns"])} in {h}h {m:02d}m' + (" (projected)" if p["projected"] else ""))
    else:
        funding = "no prediction yet"
    hr, target = st.get("hedge_ratio"), st.get("target_hedge_ratio")
    sd = st.get("settled") or {"total": 0.0, "count": 0, "flagged": 0}
    rows = [
        ("legs", f'spot {_num(st.get("spot_qty"), "+.6g")} · perp {_num(st.get("perp_qty"), "+.6g")}'
                 + (f' <span class="muted">(snapshot {_e(_ts(st["position"]["ts"]))})</span>' if st.get("position") else "")),
        ("hedge ratio", f'{_num(hr, ".4f")} (target {_num(target, ".4f")})'),
        ("basis", f'{_pct(st.get("basis"), 4)} (mark {_num(st.get("mark"), ",.2f")}, spot {_num(st.get("spot_price"), ",.2f")})'),
        ("funding", _e(funding)),
        ("accrued", f'{_num(st.get("accrued"), "+,.4f", True)} USDT expected at the next settlement'),
        ("settled", f'{_num(sd["total"], "+,.4f", True)} USDT over {sd["count"]} settlement(s)'
                    + (f', <span class="neg">{sd["flagged"]} flagged</span>' if sd["flagged"] else "")),
        ("liquidation", f'{_pct(d)} away (price {_num(st.get("liquidation_price"), ",.2f")})'),
    ]
    kv = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    pnl = st.get("pnl") or {}
    pnl_html = ('<table class="pnl"><tr><th>spot PnL</th><th>perp PnL</th><th>funding</th><th>fees</th><th>net</th></tr>'
                "<tr>" + "".join(f'<td class="n">{_num(pnl.get(k), "+,.2f", True)}</td>'
                                 for k in ("spot", "perp", "funding")) +
                f'<td class="n">{_num(-(pnl.get("fees") or 0.0), "+,.2f", True)}</td>'
                f'<td class="n"><b>{_num(pnl.get("net"), "+,.2f", True)}</b></td></tr></table>'
                + (f'<p class="neg">{_e(unpriced_fees_note(pnl).strip(" ()"))}</p>' if pnl.get("unpriced_fees") else ""))
    hist = st.get("history") or {"funding": [], "distance": []}
    xr = (now_ns - 86_400 * NS, now_ns)
    charts = (f'<div class="charts"><div class="chart"><b>funding rate (per interval), last day</b><br>'
              f'{sparkline(hist["funding"], x_range=xr, color="#2563eb", fmt=lambda v: f"{v:+.4%}", label="funding")}'
              f'</div><div class="chart"><b>distance to liquidation, last day</b><br>'
              f'{sparkline(hist["distance"], x_range=xr, color="#c2410c", fmt=lambda v: f"{v:.1%}", label="distance")}'
              f'</div></div>')
    guard = "".join(f'<tr><td>{_e(_ts(g["ts"]))}</td><td>{_e(g["step"])}</td><td class="n">{_pct(g.get("distance"))}'
                    f'</td><td>{_e(g.get("reason"))}</td></tr>' for g in st.get("guard") or [])
    dec = "".join(f'<tr><td>{_e(_ts(x["ts"]))}</td><td>{_e(x["action"])}</td><td>{_e(x.get("reason"))}</td></tr>'
                  for x in st.get("decisions") or [])
    return (f'<section class="sym" id="{_e(sym)}">{head}'
            + (f'<p class="muted">{_e(", ".join(notes))}</p>' if notes else "")
            + f'<table class="kv">{kv}</table><b>PnL split (USDT)</b>{pnl_html}{charts}'
            '<b>recent guard actions</b><table class="list guard">'
            + (guard or '<tr><td class="muted">none</td></tr>') + '</table>'
            '<b>recent decisions</b><table class="list decisions">'
            + (dec or '<tr><td class="muted">none</td></tr>') + '</table></section>')


CONTROL_JS = """
const tok = document.getElementById('ctl-token');
tok.value = sessionStorage.getItem('basisbotControl') || '';
tok.addEventListener('change', () => sessionStorage.setItem('basisbotControl', tok.value));
async function ctl(command) {
  const sym = document.getElementById('ctl-symbol').value;
  const target = sym === 'all' ? 'every symbol' : sym;
  if (command === 'flatten' && !confirm('Flatten ' + target + '? Both legs are closed at market, then paused.')) return;
  const out = document.getElementById('ctl-out');
  out.textContent = command + ' ' + target + ' ...';
  try {
    const r = await fetch('/control', {method: 'POST', headers: {'Content-Type': 'application/json',
      'Authorization': 'Bearer ' + tok.value, 'X-Basisbot-Origin': 'page'}, credentials: 'omit',
      body: JSON.stringify({command: command, symbols: sym === 'all' ? 'all' : [sym], origin: 'page'})});
    const j = await r.json();
    out.textContent = j.ok ? j.results.map(x => x.symbol + ': ' + x.answer + ' (now ' + x.state + ')').join('\\n')
                           : 'refused: ' + j.error;
  } catch (e) { out.textContent = 'no answer: ' + e; }
}
"""


def _control_section(control: dict) -> str:
    """Pause / resume / flatten / status buttons: POST /control with the control token typed here (kept in this
    tab's sessionStorage, sent as a Bearer header: no cookie, nothing changes on a GET). Flatten asks first."""
    opts = "".join(f'<option value="{_e(s)}">{_e(s)} ({_e(m)})</option>'
                   for s, m in sorted((control.get("states") or {}).items()))
    buttons = "".join(f'<button type="button" onclick="ctl(\'{c}\')">{c}</button>'
                      for c in ("pause", "resume", "flatten", "status"))
    return (f'<section class="sym" id="control"><h2>control</h2><label>token <input id="ctl-token" type="password" '
            f'autocomplete="off"></label> <select id="ctl-symbol"><option value="all">all symbols</option>{opts}'
            f'</select> {buttons}<pre id="ctl-out"></pre><script>{CONTROL_JS}</script></section>')


def render_page(data: dict, *, refresh_s: int = 10, node: dict | None = None, control: dict | None = None) -> str:
    """The page for `status_data(...)`; `node`: optional live facts ({"mode", "trader", "started_ns"}); `control`:
    {"states": {symbol: control state}} when control is on (the page then carries its buttons)."""
    now = data["now_ns"]
    node = node or {}
    mode = node.get("mode") or data.get("mode")
    sections = "".join(_symbol_section(st, now) for st in data["symbols"]) or \
        '<section class="sym"><p>no symbols configured and nothing journaled yet</p></section>'
    cc = data.get("last_config_change")
    cc_html = (f'<footer>last config change: {_e(cc["status"])} at {_e(_ts(cc["ts"]))} ({_e(cc["source"])}): '
               f'{_e(cc["message"])}</footer>') if cc else ""
    journal_note = "" if data.get("exists") else f' · <span>no journal yet at {_e(data["journal"])}</span>'
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>basisbot status</title><style>{CSS}</style></head><body>'
            f'<header><h1>basisbot</h1><span>mode {_e(mode)}</span>'
            + (f'<span>venue {_e(node["venue"])}</span>' if node.get("venue") else "")
            + (f'<span>trader {_e(node["trader"])}</span>' if node.get("trader") else "")
            + f'<span>{_e(_ts(now))}</span><span>refreshes every {int(refresh_s)}s</span>{journal_note}</header>'
            f'<main>{_control_section(control) if control else ""}{sections}</main>{cc_html}'
            f'<footer>{"control: token required" if control else "read-only"} · journal {_e(data["journal"])} · /metrics · /healthz</footer></body></html>')


__all__ = ["render_page", "sparkline"]
