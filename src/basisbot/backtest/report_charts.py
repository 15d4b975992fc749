"""The backtest report's charts: inline SVG line charts with time axes, event markers carrying tooltips, and
per-line downsampling to at most MAX_POINTS points keeping each bucket's min and max (one-bar spikes stay visible)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from basisbot.backtest.report_format import esc, none_note, utc_datetime

MAX_POINTS = 2000          # per line in a chart


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
                out.append((t, utc_datetime(t).strftime(fmt)))
                t += step
            return out
    for months in (1, 2, 3, 6, 12, 24, 60):
        if span / (months * 30.4 * 86400) <= target:
            break
    d = utc_datetime(t0)
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


@dataclass(frozen=True)
class _Frame:
    """The plot area of one chart: data bounds (x in seconds, y in the chart's unit) to SVG coordinates."""

    x0: float
    x1: float
    lo: float
    hi: float
    top: float
    pw: float
    ph: float

    def sx(self, x: float) -> float:
        return PAD_L + (x - self.x0) / (self.x1 - self.x0) * self.pw

    def sy(self, y: float) -> float:
        return self.top + (self.hi - y) / (self.hi - self.lo) * self.ph


def _x_bounds(xs: list[float], x_range: tuple[float, float] | None) -> tuple[float, float]:
    """The requested time range widened to the data; an hour each side of a single instant."""
    x0, x1 = x_range if x_range else (min(xs), max(xs))
    x0, x1 = min(x0, min(xs)), max(x1, max(xs))
    if x1 <= x0:
        x0, x1 = x0 - 3600, x1 + 3600
    return x0, x1


def _y_ticks(ys: list[float], include_zero: bool) -> tuple[list[float], int]:
    """Round y ticks covering the data with a little headroom (and 0 if asked), and their decimals."""
    lo, hi = min(ys), max(ys)
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12 * max(1.0, abs(hi)) or hi == lo:
        pad = abs(hi) * 0.01 or 1.0
        lo, hi = lo - pad, hi + pad
    else:
        pad = (hi - lo) * 0.04
        lo, hi = lo - (pad if lo < 0 or not include_zero else 0), hi + pad
    return _nice_ticks(lo, hi)


def _legend(series: list[Series], markers: list[Marker], spans) -> tuple[list[str], int]:
    """The legend's SVG items, wrapped to the chart width, and the baseline of its last row."""
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
    return legend, ly


def _axes(f: _Frame, ticks: list[float], label, y2, y2_title: str) -> list[str]:
    """Horizontal grid lines with y labels (left, and right when `y2`), vertical time grid with its labels."""
    out = []
    for t in ticks:
        y = f.sy(t)
        cls = "zero" if abs(t) < 1e-12 * max(1.0, abs(f.hi - f.lo)) and f.lo < 0 < f.hi else "grid"
        out.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{PAD_L + f.pw}" y2="{y:.1f}" class="{cls}"/>')
        txt = esc(label(0.0 if abs(t) < 1e-15 else t))
        out.append(f'<text x="{PAD_L - 6}" y="{y + 3.5:.1f}" text-anchor="end">{txt}</text>')
        if y2:
            out.append(f'<text x="{PAD_L + f.pw + 6}" y="{y + 3.5:.1f}">{esc(y2(t))}</text>')
    if y2 and y2_title:
        out.append(f'<text x="{W - 4}" y="{f.top + f.ph / 2:.1f}" text-anchor="middle" class="ax2" '
                   f'transform="rotate(-90 {W - 4} {f.top + f.ph / 2:.1f})">{esc(y2_title)}</text>')
    for t, txt in _time_ticks(f.x0, f.x1):
        x = f.sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{f.top}" x2="{x:.1f}" y2="{f.top + f.ph}" class="vgrid"/>')
        out.append(f'<text x="{x:.1f}" y="{f.top + f.ph + 16}" text-anchor="middle">{esc(txt)}</text>')
    return out


def _series_svg(s: Series, f: _Frame, label) -> list[str]:
    """One series as a path (lines or steps, broken at gaps) and, for short ones, dots with tooltips."""
    out = []
    dx, dy = downsample(list(s.xs), list(s.ys))
    d, prev = [], None
    for x, y in zip(dx, dy):
        if y is None or x is None:
            prev = None
            continue
        px, py = f.sx(x), f.sy(y)
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
            tip = f"{utc_datetime(x):%Y-%m-%d %H:%M} UTC  {s.name}: {label(y)}"
            out.append(f'<circle cx="{f.sx(x):.1f}" cy="{f.sy(y):.1f}" r="2.2" fill="{s.color}">'
                       f'<title>{esc(tip)}</title></circle>')
    return out


def _markers_svg(markers: list[Marker], f: _Frame) -> list[str]:
    """Event markers (liquidations solid, guard actions dashed) with a glyph and a tooltip."""
    out = []
    top, ph = f.top, f.ph
    for x, kind, text in _merge_markers(list(markers)):
        if not f.x0 <= x <= f.x1:
            continue
        color, glyph, _ = EVENT_STYLE.get(kind, ("#888", "?", 0))
        px = f.sx(x)
        dash = "" if kind == "liquidation" else ' stroke-dasharray="3 2"'
        out.append(f'<g class="mk"><title>{esc(text)}</title>'
                   f'<line class="v" x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{top + ph}" stroke="{color}" '
                   f'stroke-width="1.2"{dash}/>'
                   f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{top + ph}" stroke="transparent" '
                   f'stroke-width="9"/>'
                   f'<rect x="{px - 5:.1f}" y="{top + 1}" width="10" height="11" fill="{color}" rx="2"/>'
                   f'<text x="{px:.1f}" y="{top + 10}" text-anchor="middle" class="glyph">{glyph}</text></g>')
    return out


def svg_chart(series: list[Series], *, x_range: tuple[float, float] | None = None, markers: list[Marker] = (),
              height: int = 250, unit: str = "", include_zero: bool = False, y2=None, y2_title: str = "",
              y_fmt=None, spans: list[tuple[float, float]] = ()) -> str:
    """An inline SVG line/step chart over time. `y2(v) -> str` labels a right-hand axis at the same ticks
    (a second scale of the same quantity, e.g. per-interval vs annualised funding); `spans` are shaded time
    intervals (position open)."""
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys) if y is not None and x is not None]
    if not pts:
        return none_note("no data for this chart")
    x0, x1 = _x_bounds([p[0] for p in pts], x_range)
    ticks, dec = _y_ticks([p[1] for p in pts], include_zero)
    legend, ly = _legend(series, markers, spans)
    top = ly + 12
    f = _Frame(x0, x1, ticks[0], ticks[-1], top, W - PAD_L - PAD_R, height - PAD_B)

    out = [f'<svg class="chart" viewBox="0 0 {W} {height + top}" role="img">']
    out += legend
    out.append(f'<rect x="{PAD_L}" y="{top}" width="{f.pw}" height="{f.ph}" class="plot"/>')
    for a, b in spans:
        a, b = max(a, x0), min(b, x1)
        if b > a:
            out.append(f'<rect x="{f.sx(a):.1f}" y="{top}" width="{max(0.6, f.sx(b) - f.sx(a)):.1f}" '
                       f'height="{f.ph}" fill="#e3f1ee"/>')
    label = y_fmt or (lambda v: f"{v:,.{dec}f}{unit}")
    out += _axes(f, ticks, label, y2, y2_title)
    cid = f"clip{next(_CLIP_IDS)}"
    out.append(f'<clipPath id="{cid}"><rect x="{PAD_L}" y="{top}" width="{f.pw}" height="{f.ph}"/></clipPath>')
    out.append(f'<g clip-path="url(#{cid})">')
    for s in series:
        out += _series_svg(s, f, label)
    out.append("</g>")
    out += _markers_svg(markers, f)
    out.append("</svg>")
    return "".join(out)


def figure(title: str, svg: str, note: str = "") -> str:
    n = f'<p class="note">{esc(note)}</p>' if note else ""
    return f'<figure><h3>{esc(title)}</h3>{n}{svg}</figure>'


def reset_clip_ids() -> None:
    """clipPath ids restart at 1 for each page."""
    global _CLIP_IDS
    _CLIP_IDS = itertools.count(1)
