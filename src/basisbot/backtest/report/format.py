"""Small readers and HTML formatters of the backtest report: CSV rows, numbers, times, table cells."""

from __future__ import annotations

import csv
import html
import math
from datetime import datetime, timezone
from pathlib import Path


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def read_csv_rows(folder: Path, name: str) -> list[dict]:
    p = folder / name
    if not p.exists():
        return []
    with p.open(newline="") as fh:
        return list(csv.DictReader(fh))


def to_float(s) -> float | None:
    """CSV cell -> float; empty / unparsable / NaN -> None."""
    if s is None:
        return None
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def parse_ts(s: str) -> float | None:
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


def utc_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


def fmt_num(v, d: int = 2) -> str:
    """Thousands separators, `d` decimals; "–" for missing; no "-0.00"."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    v = float(v)
    if round(v, d) == 0:
        v = 0.0
    return f"{v:,.{d}f}"


def td(v, d: int = 2, signed_color: bool = False) -> str:
    cls = "n"
    if signed_color and v is not None and round(float(v), d) < 0:
        cls += " neg"
    return f'<td class="{cls}">{esc(fmt_num(v, d))}</td>'


def tdt(s, cls: str = "") -> str:
    return f'<td class="{cls}">{esc(s)}</td>' if cls else f"<td>{esc(s)}</td>"


def html_table(head: list[str], rows: list[str], numeric: set[int] = frozenset(), cls: str = "") -> str:
    """`rows` are pre-rendered <tr> strings (their cells escaped by td/tdt)."""
    th = "".join(f'<th class="n">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>" for i, h in enumerate(head))
    return (f'<div class="scroll"><table class="{esc(cls)}"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def none_note(text: str) -> str:
    return f'<p class="none">{esc(text)}</p>'


def pct(v, d: int = 2) -> str:
    return "–" if v is None else f"{fmt_num(100 * v, d)}%"


def fmt_when(s) -> str:
    t = parse_ts(s or "")
    return "?" if t is None else utc_datetime(t).strftime("%Y-%m-%d %H:%M UTC")


def side_label(s) -> str:
    v = to_float(s)
    if v is None:
        return str(s or "")
    return "short" if v < 0 else "long"
