"""Self-contained HTML report of a backtest (`report.html`).

Everything is read back from the result files written next to the report (summary.json's content is passed in;
equity.csv, state.csv, funding.csv, predictions.csv, trades.csv, guard.csv, liquidations.csv, decisions.csv are
read from the same folder), so a report can be rebuilt from a results folder alone:

    write_report(json.loads((out / "summary.json").read_text()), out / "report.html")

The page has no external resources (no scripts, stylesheets, fonts or images from the network): the charts are
inline SVG drawn here, with every guard action and liquidation as a vertical marker carrying an SVG <title>
tooltip. Long series are downsampled per line to at most MAX_POINTS points keeping each bucket's min and max,
so one-bar spikes stay visible.

Timing convention of the recorder (checked against the files): a row of equity.csv/state.csv at time t is the
snapshot *before* the events stamped t, so cumulative funding/fees/liquidation losses at t count events strictly
before t.
"""

from __future__ import annotations

import csv
import html
import itertools
import math
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

MAX_POINTS = 2000          # per line in a chart
MAX_TRADE_ROWS = 500       # trades table
MAX_DECISION_ROWS = 1000   # decisions log
MINUTES_PER_YEAR = 365 * 24 * 60

_CLIP_IDS = itertools.count(1)  # unique clipPath ids within a page; reset per report

# chart geometry (SVG user units; the SVG scales to the page width)
W = 1000
PAD_L, PAD_R, PAD_B = 78, 62, 26  # the right pad holds an optional second axis; same for all charts so they align

COLORS = {
    "equity": "#1f4e79", "spot": "#2a9d8f", "perp": "#e76f51", "perp_wallet": "#f4a261",
    "funding": "#2a9d8f", "price": "#457b9d", "fees": "#e9a23b", "liq": "#d62728", "net": "#1d2330",
    "mark": "#e76f51", "liq_price": "#d62728", "predicted": "#8d6cab", "settled": "#2a9d8f",
    "basis": "#457b9d", "distance": "#1f4e79", "qty_spot": "#2a9d8f", "qty_perp": "#e76f51",
}
EVENT_STYLE = {  # kind -> (color, glyph, severity)
    "liquidation": ("#d62728", "L", 5),
    "close": ("#7b2cbf", "C", 4),
    "reduce": ("#f77f00", "R", 3),
    "add_margin": ("#1d70b8", "A", 2),
    "warn": ("#c9a227", "W", 1),
}


# ----------------------------------------------------------------------------------------------- small helpers

def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _read_csv(folder: Path, name: str) -> list[dict]:
    p = folder / name
    if not p.exists():
        return []
    with p.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _f(s) -> float | None:
    """CSV cell -> float; empty / unparsable / NaN -> None."""
    if s is None:
        return None
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _ts(s: str) -> float | None:
    """ISO 8601 (…Z or +00:00) -> epoch seconds."""
    if not s:
        return None
    try:
        t = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


def fmt_num(v, d: int = 2) -> str:
    """Thousands separators, `d` decimals; "–" for missing; no "-0.00"."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    v = float(v)
    if round(v, d) == 0:
        v = 0.0
    return f"{v:,.{d}f}"


def _td(v, d: int = 2, signed_color: bool = False) -> str:
    cls = "n"
    if signed_color and v is not None and round(float(v), d) < 0:
        cls += " neg"
    return f'<td class="{cls}">{esc(fmt_num(v, d))}</td>'


def _tdt(s, cls: str = "") -> str:
    return f'<td class="{cls}">{esc(s)}</td>' if cls else f"<td>{esc(s)}</td>"


def _table(head: list[str], rows: list[str], numeric: set[int] = frozenset(), cls: str = "") -> str:
    """`rows` are pre-rendered <tr> strings (their cells escaped by _td/_tdt)."""
    th = "".join(f'<th class="n">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>" for i, h in enumerate(head))
    return (f'<div class="scroll"><table class="{esc(cls)}"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _none(text: str) -> str:
    return f'<p class="none">{esc(text)}</p>'


def _pct(v, d: int = 2) -> str:
    return "–" if v is None else f"{fmt_num(100 * v, d)}%"


# ----------------------------------------------------------------------------------------------- downsampling

def _bucket_minmax(xs, ys, a: int, b: int, budget: int, ox: list, oy: list) -> None:
    n = b - a
    if n <= budget:
        ox.extend(xs[a:b])
        oy.extend(ys[a:b])
        return
    nb = max(1, (budget - 2) // 2)
    keep = {a, b - 1}
    for k in range(nb):
        lo, hi = a + (k * n) // nb, a + ((k + 1) * n) // nb
        if hi <= lo:
            continue
        imin = min(range(lo, hi), key=ys.__getitem__)
        imax = max(range(lo, hi), key=ys.__getitem__)
        keep.update((imin, imax))
    for i in sorted(keep):
        ox.append(xs[i])
        oy.append(ys[i])


def downsample(xs: list[float], ys: list[float | None], max_points: int = MAX_POINTS):
    """At most ~max_points points per line: per bucket keep the min and the max (in time order) plus the first and
    last point, so spikes survive. None in `ys` is a gap (flat position) and is kept as a gap."""
    runs, i, n = [], 0, len(ys)
    while i < n:
        if ys[i] is None:
            i += 1
            continue
        j = i
        while j < n and ys[j] is not None:
            j += 1
        runs.append((i, j))
        i = j
    total = sum(b - a for a, b in runs)
    if total <= max_points:
        return list(xs), list(ys)
    ox, oy = [], []
    for a, b in runs:
        if ox:
            ox.append(xs[a])
            oy.append(None)
        budget = max(2, (max_points * (b - a)) // total)
        _bucket_minmax(xs, ys, a, b, budget, ox, oy)
    return ox, oy


# ----------------------------------------------------------------------------------------------- SVG charts

@dataclass
class Series:
    name: str
    xs: list          # epoch seconds
    ys: list          # values, None = gap
    color: str
    step: bool = False
    width: float = 1.4
    dash: str = ""
    dots: bool = False   # circles (with value tooltips) at each point; only used for sparse series


@dataclass
class Marker:
    x: float
    kind: str         # key of EVENT_STYLE
    text: str         # tooltip


def _nice_ticks(lo: float, hi: float, n: int = 5):
    """Round tick values covering [lo, hi]; returns (ticks, decimals needed for the labels)."""
    span = hi - lo
    raw = span / max(1, n)
    k = math.floor(math.log10(raw))
    mag = 10.0 ** k
    m = next(m for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    step = m * mag
    if m == 10:
        m, k, step = 1, k + 1, 10 * mag
    decimals = max(0, -k + (1 if m == 2.5 else 0))
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    count = int(round((last - first) / step))
    return [first + i * step for i in range(count + 1)], decimals


def _add_months(t: datetime, k: int) -> datetime:
    y, mo = divmod(t.month - 1 + k, 12)
    return t.replace(year=t.year + y, month=mo + 1, day=1)


def _time_ticks(t0: float, t1: float, target: int = 9) -> list[tuple[float, str]]:
    span = max(1.0, t1 - t0)
    for step in (3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400):
        if span / step <= target:
            offset = 4 * 86400 if step >= 7 * 86400 else 0  # weekly ticks on Mondays (epoch was a Thursday)
            first = math.ceil((t0 - offset) / step) * step + offset
            fmt = "%m-%d %H:%M" if step < 86400 else "%Y-%m-%d"
            out, t = [], first
            while t <= t1:
                out.append((t, _utc(t).strftime(fmt)))
                t += step
            return out
    for months in (1, 2, 3, 6, 12, 24, 60):
        if span / (months * 30.4 * 86400) <= target:
            break
    d = _utc(t0)
    m = d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if m.timestamp() < t0:
        m = _add_months(m, 1)
    while (m.month - 1) % months:
        m = _add_months(m, 1)
    out = []
    while m.timestamp() <= t1:
        out.append((m.timestamp(), m.strftime("%Y-%m")))
        m = _add_months(m, months)
    return out


def _merge_markers(markers: list[Marker]) -> list[tuple[float, str, str]]:
    """Markers at the same instant become one line: most severe colour, tooltips joined."""
    by_x: dict[float, list[Marker]] = defaultdict(list)
    for m in markers:
        by_x[m.x].append(m)
    out = []
    for x in sorted(by_x):
        ms = sorted(by_x[x], key=lambda m: -EVENT_STYLE.get(m.kind, ("", "", 0))[2])
        out.append((x, ms[0].kind, "\n".join(m.text for m in ms)))
    return out


def svg_chart(series: list[Series], *, x_range: tuple[float, float] | None = None, markers: list[Marker] = (),
              height: int = 250, unit: str = "", include_zero: bool = False, y2=None, y2_title: str = "",
              y_fmt=None, spans: list[tuple[float, float]] = ()) -> str:
    """An inline SVG line/step chart over time. `y2(v) -> str` labels a right-hand axis at the same ticks
    (a second scale of the same quantity, e.g. per-interval vs annualised funding); `spans` are shaded time
    intervals (position open)."""
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys) if y is not None and x is not None]
    if not pts:
        return _none("no data for this chart")
    xs_all = [p[0] for p in pts]
    x0, x1 = x_range if x_range else (min(xs_all), max(xs_all))
    x0, x1 = min(x0, min(xs_all)), max(x1, max(xs_all))
    if x1 <= x0:
        x0, x1 = x0 - 3600, x1 + 3600
    ys = [p[1] for p in pts]
    lo, hi = min(ys), max(ys)
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12 * max(1.0, abs(hi)) or hi == lo:
        pad = abs(hi) * 0.01 or 1.0
        lo, hi = lo - pad, hi + pad
    else:
        pad = (hi - lo) * 0.04
        lo, hi = lo - (pad if lo < 0 or not include_zero else 0), hi + pad
    ticks, dec = _nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]

    # legend (wraps), then plot area
    items = [(s.name, s.color, s.dash) for s in series]
    if spans:
        items.append(("position open", "#e3f1ee", "span"))
    kinds = [k for k in EVENT_STYLE if any(m.kind == k for m in markers)]
    items += [(k.replace("_", " ") if k == "liquidation" else f"guard {k.replace('_', ' ')}",
               EVENT_STYLE[k][0], "marker") for k in kinds]
    legend, lx, ly = [], PAD_L, 14
    for name, color, dash in items:
        wdt = 30 + 5.7 * len(name) + 18
        if lx + wdt > W - PAD_R and lx > PAD_L:
            lx, ly = PAD_L, ly + 16
        if dash == "span":
            legend.append(f'<rect x="{lx}" y="{ly - 9}" width="22" height="11" fill="{color}" stroke="#b9dcd4"/>')
        elif dash == "marker":
            legend.append(f'<line x1="{lx + 11}" y1="{ly - 9}" x2="{lx + 11}" y2="{ly + 3}" stroke="{color}" '
                          f'stroke-width="2"/>')
        else:
            da = f' stroke-dasharray="{dash}"' if dash else ""
            legend.append(f'<line x1="{lx}" y1="{ly - 3}" x2="{lx + 22}" y2="{ly - 3}" stroke="{color}" '
                          f'stroke-width="2.2"{da}/>')
        legend.append(f'<text x="{lx + 28}" y="{ly + 1}" class="lg">{esc(name)}</text>')
        lx += wdt
    top = ly + 12
    pad_r = PAD_R
    H = height + top
    pw, ph = W - PAD_L - pad_r, height - PAD_B

    def sx(x):
        return PAD_L + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return top + (hi - y) / (hi - lo) * ph

    out = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img">']
    out += legend
    out.append(f'<rect x="{PAD_L}" y="{top}" width="{pw}" height="{ph}" class="plot"/>')
    for a, b in spans:
        a, b = max(a, x0), min(b, x1)
        if b > a:
            out.append(f'<rect x="{sx(a):.1f}" y="{top}" width="{max(0.6, sx(b) - sx(a)):.1f}" height="{ph}" '
                       f'fill="#e3f1ee"/>')
    label = y_fmt or (lambda v: f"{v:,.{dec}f}{unit}")
    for t in ticks:
        y = sy(t)
        cls = "zero" if abs(t) < 1e-12 * max(1.0, abs(hi - lo)) and lo < 0 < hi else "grid"
        out.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{PAD_L + pw}" y2="{y:.1f}" class="{cls}"/>')
        txt = esc(label(0.0 if abs(t) < 1e-15 else t))
        out.append(f'<text x="{PAD_L - 6}" y="{y + 3.5:.1f}" text-anchor="end">{txt}</text>')
        if y2:
            out.append(f'<text x="{PAD_L + pw + 6}" y="{y + 3.5:.1f}">{esc(y2(t))}</text>')
    if y2 and y2_title:
        out.append(f'<text x="{W - 4}" y="{top + ph / 2:.1f}" text-anchor="middle" class="ax2" '
                   f'transform="rotate(-90 {W - 4} {top + ph / 2:.1f})">{esc(y2_title)}</text>')
    for t, txt in _time_ticks(x0, x1):
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" class="vgrid"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{esc(txt)}</text>')

    cid = f"clip{next(_CLIP_IDS)}"
    out.append(f'<clipPath id="{cid}"><rect x="{PAD_L}" y="{top}" width="{pw}" height="{ph}"/></clipPath>')
    out.append(f'<g clip-path="url(#{cid})">')
    for s in series:
        dx, dy = downsample(list(s.xs), list(s.ys))
        d, prev = [], None
        for x, y in zip(dx, dy):
            if y is None or x is None:
                prev = None
                continue
            px, py = sx(x), sy(y)
            if prev is None:
                d.append(f"M{px:.1f} {py:.1f}")
            elif s.step:
                d.append(f"H{px:.1f}V{py:.1f}")
            else:
                d.append(f"L{px:.1f} {py:.1f}")
            prev = (px, py)
        if d:
            da = f' stroke-dasharray="{s.dash}"' if s.dash else ""
            out.append(f'<path d="{"".join(d)}" fill="none" stroke="{s.color}" stroke-width="{s.width}"'
                       f' stroke-linejoin="round"{da}><title>{esc(s.name)}</title></path>')
        if s.dots and len(dx) <= 400:
            for x, y in zip(dx, dy):
                if y is None:
                    continue
                tip = f"{_utc(x):%Y-%m-%d %H:%M} UTC  {s.name}: {label(y)}"
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{s.color}">'
                           f'<title>{esc(tip)}</title></circle>')
    out.append("</g>")
    for x, kind, text in _merge_markers(list(markers)):
        if not x0 <= x <= x1:
            continue
        color, glyph, _ = EVENT_STYLE.get(kind, ("#888", "?", 0))
        px = sx(x)
        dash = "" if kind == "liquidation" else ' stroke-dasharray="3 2"'
        out.append(f'<g class="mk"><title>{esc(text)}</title>'
                   f'<line class="v" x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{top + ph}" stroke="{color}" '
                   f'stroke-width="1.2"{dash}/>'
                   f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{top + ph}" stroke="transparent" '
                   f'stroke-width="9"/>'
                   f'<rect x="{px - 5:.1f}" y="{top + 1}" width="10" height="11" fill="{color}" rx="2"/>'
                   f'<text x="{px:.1f}" y="{top + 10}" text-anchor="middle" class="glyph">{glyph}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _figure(title: str, svg: str, note: str = "") -> str:
    n = f'<p class="note">{esc(note)}</p>' if note else ""
    return f'<figure><h3>{esc(title)}</h3>{n}{svg}</figure>'


# ----------------------------------------------------------------------------------------------- data assembly

class _Data:
    def __init__(self, folder: Path, summary: dict):
        self.folder = folder
        self.summary = summary or {}
        self.equity = _read_csv(folder, "equity.csv")
        self.state = _read_csv(folder, "state.csv")
        self.funding = _read_csv(folder, "funding.csv")
        self.predictions = _read_csv(folder, "predictions.csv")
        self.trades = _read_csv(folder, "trades.csv")
        self.guard = _read_csv(folder, "guard.csv")
        self.liquidations = _read_csv(folder, "liquidations.csv")
        self.baseline = _read_csv(folder, "baseline_funding.csv")
        self.decisions = _read_csv(folder, "decisions.csv")
        self.symbols = list((self.summary.get("symbols") or {}).keys())
        for rows in (self.state, self.funding, self.predictions, self.trades, self.guard, self.liquidations):
            for r in rows:
                s = r.get("symbol")
                if s and s not in self.symbols:
                    self.symbols.append(s)
        period = self.summary.get("period") or {}
        p0, p1 = _ts(period.get("start", "")), _ts(period.get("end", ""))
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
            t = _ts(g.get("ts", ""))
            if t is None:
                continue
            step = g.get("step", "")
            parts = [f"{g.get('ts')}  {g.get('symbol')}  guard {step}"]
            dist = _f(g.get("distance"))
            if dist is not None:
                parts.append(f"distance {_pct(dist)}, mark {fmt_num(_f(g.get('mark_price')))}, "
                             f"liq. price {fmt_num(_f(g.get('liquidation_price')))}")
            if (_f(g.get("add_margin")) or 0) > 0:
                parts.append(f"added margin {fmt_num(_f(g.get('add_margin')))} USDT")
            if (_f(g.get("reduce_fraction")) or 0) > 0:
                parts.append(f"reduce {_pct(_f(g.get('reduce_fraction')), 1)}")
            if g.get("reason"):
                parts.append(g["reason"])
            out.append(Marker(t, step if step in EVENT_STYLE else "warn", "\n".join(parts)))
        for lq in self.liquidations:
            if symbol and lq.get("symbol") != symbol:
                continue
            t = _ts(lq.get("ts", ""))
            if t is None:
                continue
            out.append(Marker(t, "liquidation",
                              f"{lq.get('ts')}  {lq.get('symbol')}  LIQUIDATION\n"
                              f"{_side(lq.get('side'))} {lq.get('qty')} at {fmt_num(_f(lq.get('liquidation_price')))}"
                              f" (entry {fmt_num(_f(lq.get('entry_price')))}, bar worst mark "
                              f"{fmt_num(_f(lq.get('bar_worst_mark')))})\n"
                              f"wallet lost {fmt_num(_f(lq.get('wallet_lost')))} USDT, liquidation loss "
                              f"{fmt_num(_f(lq.get('insurance_loss')))} USDT"))
        return out


def _fmt_when(s) -> str:
    t = _ts(s or "")
    return "?" if t is None else _utc(t).strftime("%Y-%m-%d %H:%M UTC")


def _side(s) -> str:
    v = _f(s)
    if v is None:
        return str(s or "")
    return "short" if v < 0 else "long"


def _cum_at(times: list[float], event_ts: list[float], event_val: list[float]) -> list[float]:
    """Cumulative sum of events strictly before each time (snapshots precede the events stamped at t)."""
    order = sorted(range(len(event_ts)), key=event_ts.__getitem__)
    ts = [event_ts[i] for i in order]
    cum, acc = [], 0.0
    for i in order:
        acc += event_val[i]
        cum.append(acc)
    return [cum[k - 1] if (k := bisect_left(ts, t)) > 0 else 0.0 for t in times]


def _events(rows: list[dict], col: str, symbol: str | None = None):
    ts, vals = [], []
    for r in rows:
        if symbol and r.get("symbol") != symbol:
            continue
        t, v = _ts(r.get("ts", "")), _f(r.get(col))
        if t is not None and v is not None:
            ts.append(t)
            vals.append(v)
    return ts, vals


def _max_drawdown(eq: list[float]) -> tuple[float, float]:
    peak, dd, dd_pct = -math.inf, 0.0, 0.0
    for v in eq:
        peak = max(peak, v)
        if peak - v > dd:
            dd, dd_pct = peak - v, (peak - v) / peak if peak else 0.0
    return dd, dd_pct


# ----------------------------------------------------------------------------------------------- sections

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


def _header(d: _Data) -> str:
    s = d.summary
    period = s.get("period") or {}
    run = s.get("run") or {}
    days = (d.x_range[1] - d.x_range[0]) / 86400 if d.x_range else None
    p = (f"<b>{esc(_fmt_when(period.get('start')))}</b> → <b>{esc(_fmt_when(period.get('end')))}</b>"
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


def _nav(d: _Data) -> str:
    links = [("summary", "Summary"), ("equity", "Equity"), ("pnl", "PnL split"), ("risk", "Liquidations & guard")]
    links += [(f"sym-{s}", s) for s in d.symbols]
    links += [("trades", "Trades"), ("decisions", "Decisions")]
    return "<nav>" + "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in links) + "</nav>"


def _symbol_stats(d: _Data, sym: str) -> dict:
    if sym not in d.stats_cache:
        d.stats_cache[sym] = _compute_symbol_stats(d, sym)
    return d.stats_cache[sym]


def _compute_symbol_stats(d: _Data, sym: str) -> dict:
    rows = d.state_by.get(sym, [])
    open_h, notional_h, total_h = 0.0, 0.0, 0.0
    ts = [_ts(r.get("ts", "")) for r in rows]
    for i, r in enumerate(rows):
        if ts[i] is None:
            continue
        nxt = ts[i + 1] if i + 1 < len(rows) and ts[i + 1] is not None else ts[i] + 3600
        dt_h = max(0.0, min(nxt - ts[i], 6 * 3600)) / 3600
        total_h += dt_h
        q, m = _f(r.get("perp_qty")), _f(r.get("mark_price"))
        if q:
            open_h += dt_h
            if m:
                notional_h += abs(q) * m * dt_h
    preds = [(p, q) for r in d.predictions if r.get("symbol") == sym
             if (p := _f(r.get("predicted_rate"))) is not None and (q := _f(r.get("settled_rate"))) is not None]
    hit = (sum(1 for p, q in preds if (p > 0) == (q > 0)) / len(preds)) if preds else None
    bias = (sum(p - q for p, q in preds) / len(preds)) if preds else None
    mae = (sum(abs(p - q) for p, q in preds) / len(preds)) if preds else None
    pays = [v for v in _events(d.funding, "payment", sym)[1]]
    return {"time_in_market": open_h / total_h if total_h else None,
            "avg_notional": notional_h / open_h if open_h else None,
            "notional_years": notional_h / 8760, "hit": hit, "bias": bias, "mae": mae,
            "pays_pos": sum(1 for v in pays if v > 0), "pays_neg": sum(1 for v in pays if v < 0)}


def _unhedged_cell(seconds, limit) -> str:
    """The one-leg invariant: longest stretch with one leg alone, red when past the leg timeout."""
    if seconds is None:
        return "<td></td>"
    bad = limit is not None and seconds > limit
    return _tdt(f"{fmt_num(seconds, 1)}" + (f" > {fmt_num(limit, 1)}" if bad else ""), "n neg" if bad else "n")


def _summary_section(d: _Data) -> str:
    s = d.summary
    syms = s.get("symbols") or {}
    tot = s.get("total") or {}
    start_eq = tot.get("starting_equity")
    net = tot.get("net_pnl")
    days = (d.x_range[1] - d.x_range[0]) / 86400 if d.x_range else None
    eq = [v for r in d.equity if (v := _f(r.get("equity"))) is not None]
    dd, dd_pct = _max_drawdown(eq) if eq else (None, None)
    ret = net / start_eq if net is not None and start_eq else None
    ann = ret * 365 / days if ret is not None and days else None
    recon = tot.get("reconciliation_error")
    stats = {sym: _symbol_stats(d, sym) for sym in d.symbols}
    nyears = sum(st["notional_years"] for st in stats.values())
    leg_timeout = {sym: v.get("leg_timeout_s") for sym, v in syms.items() if v.get("leg_timeout_s") is not None}
    cards = [
        _card("net PnL (USDT)", fmt_num(net), f"{_pct(ret, 3)} of starting equity" if ret is not None else "",
              neg=net is not None and net < 0),
        _card("equity (USDT)", f"{fmt_num(tot.get('ending_equity'))}", f"from {fmt_num(start_eq)}"),
        _card("simple annualised return", _pct(ann), f"over {fmt_num(days, 1)} days" if days else ""),
        _card("max drawdown (USDT)", fmt_num(dd), f"{_pct(dd_pct, 3)} of peak equity" if dd_pct is not None else ""),
        _card("funding PnL (USDT)", fmt_num(tot.get("funding_pnl")),
              f"{_pct(tot.get('funding_pnl', 0) / nyears)} APR on avg short notional" if nyears > 0
              else "no position held"),
        _card("fees (USDT)", fmt_num(tot.get("fees")), f"{tot.get('entries', 0)} entries, {tot.get('exits', 0)} exits"),
        _card("liquidations", str(tot.get("liquidations", 0)), f"loss {fmt_num(tot.get('liquidation_loss'))} USDT",
              neg=bool(tot.get("liquidations"))),
        _card("guard actions", str(tot.get("guard_actions", 0)), f"{tot.get('settlements', 0)} settlements held"),
        _card("vs always-in", f"{fmt_num(tot.get('always_in_funding'))}",
              f"funding held throughout; capture {_pct(tot.get('capture'), 1)} of positive funding; "
              f"net APR {_pct(tot.get('net_apr'))} vs {_pct(tot.get('always_in_apr'))} on "
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
        return (_td(v.get("funding_pnl"), signed_color=True) + _td(v.get("spot_pnl"), signed_color=True)
                + _td(v.get("perp_pnl"), signed_color=True) + _td(v.get("fees")) + _td(v.get("liquidation_loss"))
                + _td(v.get("net_pnl"), signed_color=True))

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
            + _tdt(f"{v.get('settlements', 0)} / {v.get('settlements_in_data', '–')}", "n")
            + _tdt(v.get("liquidations", 0), "n neg" if v.get("liquidations") else "n") + _tdt(g_txt, "n")
            + _tdt(f"{v.get('entries', 0)} / {v.get('exits', 0)}", "n") + _td(v.get("margin_added"))
            + _tdt(_pct(st["time_in_market"], 1), "n") + _td(st["avg_notional"], 0) + _tdt(_pct(apr), "n")
            + _td(None if mae is None else mae * 1e4, 3) + _tdt(_pct(st["hit"], 1), "n")
            + _tdt(f"{fmt_num(v.get('final_spot_qty'), 6)} / {fmt_num(v.get('final_perp_qty'), 6)}", "n")
            + _unhedged_cell(v.get("max_unhedged_s"), leg_timeout.get(sym)) + "</tr>")
    tot_apr = tot.get("funding_pnl", 0) / nyears if nyears > 0 else None
    pnl_rows.append(f"<tr class='total'><td>total</td>{pnl_cells(tot)}</tr>")
    act_rows.append(
        "<tr class='total'><td>total</td>" + _tdt(tot.get("settlements", 0), "n")
        + _tdt(tot.get("liquidations", 0), "n neg" if tot.get("liquidations") else "n")
        + _tdt(tot.get("guard_actions", 0), "n") + _tdt(f"{tot.get('entries', 0)} / {tot.get('exits', 0)}", "n")
        + _td(sum((v.get("margin_added") or 0) for v in syms.values())) + "<td></td><td></td>"
        + _tdt(_pct(tot_apr), "n") + "<td></td><td></td><td></td>"
        + _unhedged_cell(tot.get("max_unhedged_s"), max(leg_timeout.values(), default=None)) + "</tr>")
    pnl_table = _table(pnl_head, pnl_rows, numeric=set(range(1, len(pnl_head))), cls="pnl")
    act_table = _table(act_head, act_rows, numeric=set(range(1, len(act_head))))
    return (f'<section id="summary"><h2>Summary</h2><div class="cards">{"".join(cards)}</div>'
            f'<h3>PnL per symbol (USDT)</h3>{pnl_table}{recon_html}'
            f'<h3>Activity and risk per symbol</h3>{act_table}'
            '<p class="note">Time in market, average short notional (|perp qty| × mark while open) and funding APR '
            '(funding PnL / notional-years held) come from state.csv; predictor MAE and sign hit rate compare the '
            "strategy's last prediction before each settlement with the settled rate (predictions.csv).</p></section>")


def _equity_section(d: _Data) -> str:
    t = [_ts(r.get("ts", "")) for r in d.equity]
    if not d.equity:
        return f'<section id="equity"><h2>Equity</h2>{_none("none: equity.csv is empty")}</section>'
    mk = d.markers()
    col = {c: [_f(r.get(c)) for r in d.equity] for c in ("spot_usdt", "spot_assets_usdt", "perp_wallet",
                                                          "perp_unrealized", "equity")}

    def add(a, b):
        return [None if x is None or y is None else x + y for x, y in zip(a, b)]

    total = _figure("Total equity (USDT)", svg_chart(
        [Series("equity = spot USDT + spot assets + perp wallet + perp unrealized", t, col["equity"],
                COLORS["equity"], width=1.8)], x_range=d.x_range, markers=mk, height=240),
        "Hourly snapshots (equity.csv). Markers: liquidations (L) and guard actions (W warn, A add margin, "
        "R reduce, C close); hover a marker for details.")
    accounts = _figure("Accounts (USDT)", svg_chart(
        [Series("spot account (USDT + assets at spot close)", t, add(col["spot_usdt"], col["spot_assets_usdt"]),
                COLORS["spot"], width=1.6),
         Series("perp account (wallet + unrealized)", t, add(col["perp_wallet"], col["perp_unrealized"]),
                COLORS["perp"], width=1.6),
         Series("perp wallet", t, col["perp_wallet"], COLORS["perp_wallet"], dash="5 3", step=True)],
        x_range=d.x_range, markers=mk, height=260),
        "Margin moved from spot to perp by the guard shows as a step between the two accounts.")
    return f'<section id="equity"><h2>Equity</h2>{total}{accounts}</section>'


def _pnl_section(d: _Data) -> str:
    if not d.equity:
        return f'<section id="pnl"><h2>Cumulative PnL split</h2>{_none("none: equity.csv is empty")}</section>'
    t = [_ts(r.get("ts", "")) for r in d.equity]
    eq = [_f(r.get("equity")) for r in d.equity]
    start = (d.summary.get("total") or {}).get("starting_equity")
    if start is None:
        start = next((v for v in eq if v is not None), 0.0)
    valid = [x for x in t if x is not None]
    fund = _cum_at(valid, *_events(d.funding, "payment"))
    always = _cum_at(valid, *_events(d.baseline, "payment")) if d.baseline else None
    fees = _cum_at(valid, *_events(d.trades, "fee_usdt"))
    liq = _cum_at(valid, *_events(d.liquidations, "insurance_loss"))
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
    return (f'<section id="pnl"><h2>Cumulative PnL split (USDT)</h2>'
            + _figure("Funding vs price PnL vs costs", chart,
                      "Cumulative funding from funding.csv, fees from trades.csv, liquidation loss from "
                      "liquidations.csv (each counted from the first hourly snapshot after it); spot + perp price PnL "
                      "is the rest of the equity change (mark-to-market of both legs, including a liquidated leg's "
                      "loss at the liquidation "
                      "price). Dashed: the funding a position of the same size held from the first to the last "
                      "hour would have received (baseline_funding.csv). Final values in the legend.")
            + "</section>")


def _risk_section(d: _Data) -> str:
    if d.liquidations:
        rows = []
        for lq in d.liquidations:
            rows.append("<tr class='liq'>" + _tdt(lq.get("ts")) + _tdt(lq.get("symbol")) + _tdt(_side(lq.get("side")))
                        + _td(_f(lq.get("qty")), 6) + _td(_f(lq.get("entry_price")))
                        + _td(_f(lq.get("liquidation_price")))
                        + _td(_f(lq.get("bar_worst_mark"))) + _td(_f(lq.get("wallet_lost")))
                        + _td(_f(lq.get("insurance_loss"))) + "</tr>")
        liq = _table(["ts (UTC)", "symbol", "position", "qty", "entry price", "liquidation price", "bar worst mark",
                      "wallet lost (USDT)", "liquidation loss (USDT)"], rows, numeric={3, 4, 5, 6, 7, 8})
        liq += ('<p class="note">Wallet lost: the isolated margin taken with the position. Liquidation loss: what the '
                "liquidation took beyond a fill at the liquidation price (insurance-fund clearance), a PnL component "
                "of its own in the summary.</p>")
    else:
        liq = _none("none: no liquidations in this run")
    if d.guard:
        rows = []
        for g in d.guard:
            step = g.get("step", "")
            cls = " class='evt'" if step in ("reduce", "close") else ""
            add = _f(g.get("add_margin"))
            red = _f(g.get("reduce_fraction"))
            rows.append(f"<tr{cls}>" + _tdt(g.get("ts")) + _tdt(g.get("symbol")) + _tdt(step)
                        + _tdt(_pct(_f(g.get("distance"))), "n") + _td(_f(g.get("mark_price")))
                        + _td(_f(g.get("liquidation_price"))) + _td(add if add else None)
                        + _tdt(_pct(red, 1) if red else "–", "n") + _td(_f(g.get("spot_qty_after")), 6)
                        + _td(_f(g.get("perp_qty_after")), 6) + _tdt(g.get("reason"), "wrap") + "</tr>")
        counts = Counter(g.get("step", "") for g in d.guard)
        guard = (f'<p class="note">{esc(", ".join(f"{k}: {n}" for k, n in counts.items()))}</p>'
                 + _table(["ts (UTC)", "symbol", "step", "distance", "mark", "liquidation price", "margin added",
                           "reduce", "spot qty after", "perp qty after", "reason"], rows,
                          numeric={3, 4, 5, 6, 7, 8, 9}))
    else:
        guard = _none("none: no guard actions in this run")
    return (f'<section id="risk"><h2>Liquidations &amp; guard actions</h2><h3>Liquidations</h3>{liq}'
            f"<h3>Guard actions</h3>{guard}</section>")


def _symbol_section(d: _Data, sym: str) -> str:
    rows = d.state_by.get(sym, [])
    v = (d.summary.get("symbols") or {}).get(sym, {})
    mk = d.markers(sym)
    t = [_ts(r.get("ts", "")) for r in rows]
    spans, open_at = [], None
    for i, r in enumerate(rows):  # shaded while a perp position is open (a row is the state before its hour)
        if t[i] is None:
            continue
        is_open = bool(_f(r.get("perp_qty")))
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
            x = _f(r.get(c))
            if only_open and not _f(r.get("perp_qty")):
                x = None
            out.append(None if x is None else x * scale)
        return out

    st = _symbol_stats(d, sym)
    meta = (f'<p class="meta">net <b class="{"neg" if (v.get("net_pnl") or 0) < 0 else ""}">'
            f'{esc(fmt_num(v.get("net_pnl")))}</b> USDT · funding {esc(fmt_num(v.get("funding_pnl")))} · '
            f'fees {esc(fmt_num(v.get("fees")))} · settlements held {esc(v.get("settlements", 0))} of '
            f'{esc(v.get("settlements_in_data", "–"))} (received {st["pays_pos"]}, paid {st["pays_neg"]}) · '
            f'liquidations {esc(v.get("liquidations", 0))} · guard actions {esc(v.get("guard_actions", 0))} · '
            f'time in market {esc(_pct(st["time_in_market"], 1))}</p>')
    parts = [f'<section id="sym-{esc(sym)}"><h2>{esc(sym)}</h2>{meta}']
    if not rows:
        parts.append(_none("none: no rows for this symbol in state.csv"))
    else:
        parts.append(_figure("Prices (USDT)", svg_chart(
            [Series("spot close", t, col("spot_price"), COLORS["spot"]),
             Series("perp mark", t, col("mark_price"), COLORS["mark"], width=1.1),
             Series("liquidation price (while open)", t, col("liquidation_price", only_open=True), COLORS["liq_price"],
                    step=True, dash="5 3")], x_range=d.x_range, markers=mk, height=240),
            "Liquidation price of the short perp leg (isolated margin) while a position is open."))

    # funding: predicted vs settled, annualised on the left axis, per-interval on the right
    pr = [r for r in d.predictions if r.get("symbol") == sym]
    if pr:
        intervals = {_f(r.get("interval_minutes")) for r in pr} - {None, 0.0}
        pt = [_ts(r.get("ts", "")) for r in pr]

        def ann(r, c):
            x, m = _f(r.get(c)), _f(r.get("interval_minutes")) or 480.0
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
        stn += f", sign hit {_pct(st['hit'], 1)}" if st["hit"] is not None else ""
        parts.append(_figure("Funding rate: predicted vs settled (annualised %)", svg_chart(
            [Series("settled", pt, [ann(r, "settled_rate") for r in pr], COLORS["settled"], width=1.6, dots=sparse),
             Series("predicted (last before settlement)", pt, [ann(r, "predicted_rate") for r in pr],
                    COLORS["predicted"], width=1.3, dash="4 2", dots=sparse)],
            x_range=d.x_range, markers=mk, include_zero=True, unit="%", y2=y2, y2_title=y2t or "", height=250,
            spans=spans),
            note + stn + ". A short perp receives funding when the rate is positive."))
    else:
        parts.append(_figure("Funding rate: predicted vs settled", _none("none: no settlements in predictions.csv")))
    if rows:
        parts.append(_figure("Basis (mark − spot) / spot, bp", svg_chart(
            [Series("basis", t, col("basis", 1e4), COLORS["basis"], width=1.1)],
            x_range=d.x_range, markers=mk, include_zero=True, unit=" bp", height=200, spans=spans)))
        dist = col("liquidation_distance", 100, only_open=True)
        parts.append(_figure("Distance to liquidation (% of mark)", svg_chart(
            [Series("(liquidation price − mark) / mark", t, dist, COLORS["distance"], width=1.4)],
            x_range=d.x_range, markers=mk, include_zero=True, unit="%", height=220)
            if any(x is not None for x in dist) else _none("none: no open position"),
            "Blank while flat. The guard acts on this distance (warn / add margin / reduce / close)."))
        parts.append(_figure("Position (base qty)", svg_chart(
            [Series("spot qty (long)", t, col("spot_qty"), COLORS["qty_spot"], step=True, width=1.6),
             Series("perp qty × −1 (short size)", t, col("perp_qty", -1.0), COLORS["qty_perp"], step=True, width=1.3,
                    dash="5 3")], x_range=d.x_range, markers=mk, include_zero=True, height=200),
            "Perp quantity drawn as short size so a full hedge shows the two lines on top of each other."))
    parts.append("</section>")
    return "".join(parts)


def _trades_section(d: _Data) -> str:
    if not d.trades:
        return f'<section id="trades"><h2>Trades</h2>{_none("none: no trades in this run")}</section>'
    agg: dict[tuple, list] = defaultdict(lambda: [0, 0.0, 0.0])
    for r in d.trades:
        a = agg[(r.get("symbol", ""), r.get("leg", ""), r.get("tag", ""))]
        a[0] += 1
        a[1] += (_f(r.get("qty")) or 0) * (_f(r.get("price")) or 0)
        a[2] += _f(r.get("fee_usdt")) or 0
    srows = [f"<tr>{_tdt(k[0])}{_tdt(k[1])}<td><span class='tag {esc(k[2])}'>{esc(k[2])}</span></td>"
             f"{_tdt(a[0], 'n')}{_td(a[1])}{_td(a[2])}</tr>" for k, a in sorted(agg.items())]
    by = _table(["symbol", "leg", "tag", "fills", "notional (USDT)", "fees (USDT)"], srows, numeric={3, 4, 5})
    shown = d.trades[:MAX_TRADE_ROWS]
    rows = []
    for r in shown:
        tag = r.get("tag", "")
        q, p = _f(r.get("qty")), _f(r.get("price"))
        cls = " class='liq'" if tag == "LIQUIDATION" else ""
        rows.append(f"<tr{cls}>" + _tdt(r.get("ts")) + _tdt(r.get("symbol")) + _tdt(r.get("leg")) + _tdt(r.get("side"))
                    + _td(q, 6) + _td(p) + _td(None if q is None or p is None else q * p)
                    + _td(_f(r.get("fee_usdt")), 4) + _tdt(r.get("fee_currency"))
                    + f"<td><span class='tag {esc(tag)}'>{esc(tag)}</span></td>" + _tdt(r.get("client_order_id"))
                    + "</tr>")
    cap = (f'<p class="note">Showing the first {len(shown)} of {len(d.trades)} fills; '
           "all of them are in trades.csv.</p>"
           if len(d.trades) > len(shown) else f'<p class="note">{len(d.trades)} fills.</p>')
    table = _table(["ts (UTC)", "symbol", "leg", "side", "qty", "price", "notional", "fee (USDT)", "fee ccy", "tag",
                    "client order id"], rows, numeric={4, 5, 6, 7})
    return (f'<section id="trades"><h2>Trades</h2><h3>By symbol, leg and tag</h3>{by}'
            f"<h3>Fills</h3>{cap}{table}</section>")


def _decisions_section(d: _Data) -> str:
    if not d.decisions:
        return f'<section id="decisions"><h2>Decisions log</h2>{_none("none: no decisions logged")}</section>'
    shown = d.decisions[:MAX_DECISION_ROWS]
    rows = []
    for r in shown:
        a = r.get("action", "")
        cls = (" class='liq'" if a == "liquidated"
               else " class='evt'" if a in ("reduce", "unwind", "leg_timeout", "exit") else "")
        rows.append(f"<tr{cls}>" + _tdt(r.get("ts")) + _tdt(r.get("symbol")) + _tdt(a) + _tdt(r.get("reason"), "wrap")
                    + "</tr>")
    counts = Counter(r.get("action", "") for r in d.decisions)
    cap = (f"Showing the first {len(shown)} of {len(d.decisions)}; all in decisions.csv. "
           if len(d.decisions) > len(shown) else "")
    note = f'<p class="note">{esc(cap)}{esc(", ".join(f"{k}: {n}" for k, n in counts.items()))}</p>'
    return (f'<section id="decisions"><h2>Decisions log</h2>{note}'
            + _table(["ts (UTC)", "symbol", "action", "reason"], rows) + "</section>")


def build_html(folder: Path, summary: dict) -> str:
    global _CLIP_IDS
    _CLIP_IDS = itertools.count(1)
    d = _Data(Path(folder), summary)
    body = [_header(d), _nav(d), _summary_section(d), _equity_section(d), _pnl_section(d), _risk_section(d)]
    body += [_symbol_section(d, s) for s in d.symbols]
    body += [_trades_section(d), _decisions_section(d)]
    period = (summary or {}).get("period") or {}
    title = f"basisbot backtest {period.get('start', '')[:10]} → {period.get('end', '')[:10]}"
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            + "".join(body)
            + '<p class="note">Generated by basisbot from summary.json and the CSV files in this folder; '
              "self-contained (no external resources).</p></main></body></html>\n")


def write_report(summary: dict, path: Path) -> None:
    """Write `path` (report.html) from `summary` and the CSV files in `path`'s folder: the report depends only on
    the results folder."""
    path = Path(path)
    path.write_text(build_html(path.parent, summary), encoding="utf-8")
