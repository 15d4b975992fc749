"""`sweep.html`: one self-contained page (inline CSS, SVG and JS, nothing fetched): a table of every point, sortable
by clicking a column, each row linking to its point's report; for a grid of exactly two keys, a heatmap of the total
net PnL (rows: the first key, columns: the second)."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px} .sub{color:#666;margin-bottom:16px}
table{border-collapse:collapse;font-size:12.5px} th,td{padding:3px 8px;border-bottom:1px solid #e4e4e4;text-align:right;
white-space:nowrap} th{background:#f4f4f4;cursor:pointer;position:sticky;top:0} th.k,td.k{text-align:left}
td.neg{color:#b3261e} td.pos{color:#1b6e20} tr.failed td{background:#fff3f3} td.err{text-align:left;color:#b3261e;
white-space:normal;max-width:420px} th.sorted-asc:after{content:" \\25B2"} th.sorted-desc:after{content:" \\25BC"}
.heat text{font:11px system-ui,sans-serif}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  var ths=t.tHead.rows[0].cells;
  Array.prototype.forEach.call(ths,function(th,ci){th.addEventListener('click',function(){
    var asc=!th.classList.contains('sorted-asc');
    Array.prototype.forEach.call(ths,function(h){h.classList.remove('sorted-asc','sorted-desc')});
    th.classList.add(asc?'sorted-asc':'sorted-desc');
    var rows=Array.prototype.slice.call(t.tBodies[0].rows);
    rows.sort(function(a,b){
      var x=a.cells[ci].getAttribute('data-v'),y=b.cells[ci].getAttribute('data-v');
      var nx=parseFloat(x),ny=parseFloat(y),bx=x===''||isNaN(nx),by=y===''||isNaN(ny);
      if(bx&&by){return asc?String(x).localeCompare(y):String(y).localeCompare(x)}
      if(bx)return 1; if(by)return -1;
      return asc?nx-ny:ny-nx;});
    rows.forEach(function(r){t.tBodies[0].appendChild(r)});});});});
"""

HIDDEN = ("point_id",)


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def _isnum(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


def _fmt(v, col: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        if col.endswith(("pnl", ".fees")) or col == "total.fees":
            return f"{v:,.2f}"
        return f"{v:.6g}"
    return str(v)


def table_html(frame: pd.DataFrame, keys: list[str], *, link_prefix: str = "") -> str:
    cols = [c for c in frame.columns if c not in HIDDEN]
    head = "".join(f'<th class="{"k" if c in keys or c in ("status", "error", "folder") else ""}">{esc(c)}</th>'
                   for c in cols)
    body = []
    for _, r in frame.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            sort_v = "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
            cls = "k" if c in keys or c in ("status", "folder") else ""
            if c == "error":
                cls = "err"
            if _isnum(v) and c.endswith("pnl"):
                cls = "neg" if v < 0 else "pos"
            text = esc(_fmt(v, c))
            if c == "folder" and v:
                text = f'<a href="{esc(link_prefix + str(v))}/report.html">{esc(v)}</a>'
            cells.append(f'<td class="{cls}" data-v="{esc(sort_v)}">{text}</td>')
        failed = ' class="failed"' if r.get("status") == "failed" else ""
        body.append(f"<tr{failed}>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>' + "".join(body)
            + "</tbody></table>")


def _color(v: float, lo: float, hi: float) -> str:
    """Red below zero, green above, white at zero (scaled by the largest magnitude)."""
    m = max(abs(lo), abs(hi)) or 1.0
    t = max(-1.0, min(1.0, v / m))
    if t >= 0:
        return f"rgb({int(255 - 180 * t)},{int(255 - 95 * t)},{int(255 - 170 * t)})"
    t = -t
    return f"rgb({int(255 - 40 * t)},{int(255 - 190 * t)},{int(255 - 185 * t)})"


def heatmap_svg(frame: pd.DataFrame, kx: str, ky: str, metric: str = "total.net_pnl") -> str:
    ok = frame[frame["status"] == "ok"]
    xs = list(dict.fromkeys(frame[kx].tolist()))
    ys = list(dict.fromkeys(frame[ky].tolist()))
    try:
        xs, ys = sorted(xs), sorted(ys)
    except TypeError:
        pass
    cell_w, cell_h, left, top = 96, 34, 150, 40
    w, h = max(left + cell_w * len(xs) + 20, 760), top + cell_h * len(ys) + 50  # wide enough for the captions
    vals = [float(v) for v in ok[metric] if _isnum(v)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)
    parts = [f'<svg class="heat" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'viewBox="0 0 {w} {h}">',
             f'<text x="8" y="14" font-weight="bold">{esc(metric)} by {esc(kx)} (columns) and {esc(ky)} (rows)'
             '</text>']
    for i, x in enumerate(xs):
        parts.append(f'<text x="{left + cell_w * i + cell_w / 2}" y="{top - 6}" text-anchor="middle">{esc(x)}</text>')
    for j, y in enumerate(ys):
        parts.append(f'<text x="{left - 8}" y="{top + cell_h * j + cell_h / 2 + 4}" text-anchor="end">{esc(y)}</text>')
        for i, x in enumerate(xs):
            match = frame[(frame[kx] == x) & (frame[ky] == y)]
            cx, cy = left + cell_w * i, top + cell_h * j
            if match.empty:
                continue
            r = match.iloc[0]
            v = r[metric] if r["status"] == "ok" else None
            fill = _color(float(v), lo, hi) if _isnum(v) else "#eee"
            label = f"{v:,.2f}" if _isnum(v) else "failed"
            parts.append(f'<a href="{esc(r["folder"])}/report.html"><rect x="{cx}" y="{cy}" width="{cell_w - 2}" '
                         f'height="{cell_h - 2}" fill="{fill}" stroke="#ccc"><title>{esc(kx)}={esc(x)}, {esc(ky)}='
                         f'{esc(y)}: {esc(label)}</title></rect>'
                         f'<text x="{cx + cell_w / 2 - 1}" y="{cy + cell_h / 2 + 3}" text-anchor="middle">'
                         f'{esc(label)}</text></a>')
    parts.append(f'<text x="8" y="{h - 12}" fill="#666">green: profit, red: loss (USDT), '
                 f'range {lo:,.2f} .. {hi:,.2f}</text></svg>')
    return "".join(parts)


def page(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{esc(h)}</h2>{content}" if h else content for h, content in sections)
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title><style>{CSS}</style>'
            f'</head><body><h1>{esc(title)}</h1><div class="sub">{esc(subtitle)}</div>{body}<script>{JS}</script>'
            "</body></html>\n")


def write_sweep_page(out: Path, frame: pd.DataFrame, keys: list[str], *, title: str, subtitle: str,
                     heatmap: bool) -> Path:
    sections = []
    if heatmap and len(keys) == 2 and len(frame):
        sections.append(("Net PnL heatmap", heatmap_svg(frame, keys[1], keys[0])))
    sections.append((f"All points ({len(frame)})", table_html(frame, keys)))
    target = out / "sweep.html"
    target.write_text(page(title, subtitle, sections), encoding="utf-8")
    return target
