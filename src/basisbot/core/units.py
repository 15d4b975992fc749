"""Units and time constants, one definition each. Nautilus and the journal count time in integer nanoseconds,
exchange APIs in integer milliseconds; rates are annualised over a 365-day year."""

from __future__ import annotations

NS = 1_000_000_000  # nanoseconds per second
MS = 1_000_000  # nanoseconds per millisecond
MINUTE_NS = 60 * NS
HOUR_NS = 3_600 * NS
DAY_NS = 86_400 * NS

HOUR_MS = 3_600_000  # milliseconds per hour

DAY_S = 86_400
YEAR_S = 365 * DAY_S
HOURS_PER_YEAR = 24 * 365
MINUTES_PER_YEAR = 60 * HOURS_PER_YEAR
