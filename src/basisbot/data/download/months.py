"""Month ranges of a download request: ``YYYY-MM`` strings, inclusive, never past the current month."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class BadRequest(ValueError):
    """A download request that cannot be run (bad month, symbol or option): nothing was fetched."""


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def start(self) -> _dt.datetime:
        return _dt.datetime(self.year, self.month, 1, tzinfo=_dt.UTC)

    def start_ms(self) -> int:
        return int(self.start().timestamp() * 1000)

    def days(self) -> list[_dt.date]:
        first = _dt.date(self.year, self.month, 1)
        nxt = self.next()
        last = _dt.date(nxt.year, nxt.month, 1) - _dt.timedelta(days=1)
        return [first + _dt.timedelta(days=i) for i in range((last - first).days + 1)]


def parse_month(text: str, what: str) -> Month:
    m = _MONTH_RE.match(text.strip()) if isinstance(text, str) else None
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise BadRequest(f"{what} {text!r} is not a month: expected YYYY-MM, e.g. 2022-03")
    return Month(int(m.group(1)), int(m.group(2)))


def month_of(day: _dt.date | _dt.datetime) -> Month:
    return Month(day.year, day.month)


def month_range(start: str, end: str, today: _dt.date) -> list[Month]:
    """Every month from ``start`` to ``end`` inclusive; refused when empty or past ``today``'s month."""
    first, last = parse_month(start, "--start"), parse_month(end, "--end")
    if last < first:
        raise BadRequest(f"--end {last} is before --start {first}")
    if last > month_of(today):
        raise BadRequest(f"--end {last} is in the future (today is {today:%Y-%m-%d} UTC)")
    if first < Month(2017, 1):
        raise BadRequest(f"--start {first}: neither venue published data before 2017")
    out, m = [], first
    while m <= last:
        out.append(m)
        m = m.next()
    return out


_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}USDT$")


def parse_symbols(text: str) -> list[str]:
    """``BTCUSDT,ethusdt`` -> ``["BTCUSDT", "ETHUSDT"]``; every symbol a USDT pair named like Binance's."""
    syms = [s.strip().upper() for s in (text or "").split(",") if s.strip()]
    if not syms:
        raise BadRequest("--symbols is empty: name one or more USDT pairs, e.g. BTCUSDT,ETHUSDT")
    bad = [s for s in syms if not _SYMBOL_RE.match(s)]
    if bad:
        raise BadRequest(f"--symbols: {', '.join(bad)} not a USDT pair like BTCUSDT (letters/digits then USDT)")
    return list(dict.fromkeys(syms))
