"""Baselines every backtest is judged against, pure: what simply holding the carry would have earned.

- `always_in_funding`: a short perp of the strategy's size (notional_usdt / first spot price × hedge_ratio) held
  from the first to the last hour, paid at every settlement in between: -(-qty) × mark × rate, with the mark of the
  settlement's hour, as the funding module pays it. No second run: computed from the settlements and marks.
- `positive_funding`: the same, counting only the settlements with a positive rate (an upper bound for a rule that
  could dodge every negative settlement at no cost).
- `capture`: the strategy's funding ÷ positive_funding.
- net APR on the capital the carry ties up: spot notional + perp initial margin (notional × hedge_ratio / leverage).
"""

from __future__ import annotations

from dataclasses import dataclass

from basisbot.core.units import HOUR_NS, YEAR_S


@dataclass(frozen=True, slots=True)
class BaselineRow:
    ts_ns: int
    rate: float
    mark: float
    qty: float  # signed perp quantity (negative: short)
    payment: float


def always_in_rows(settlements: list[tuple[int, float]], mark_at_hour: dict[int, float], qty: float,
                   first_ns: int, last_ns: int) -> list[BaselineRow]:
    """Payments a short of `qty` held over [first_ns, last_ns] receives. `mark_at_hour[h]`: the mark of the hour whose
    close is h (the one in force at a settlement just after h; Binance's ms jitter can stamp it a hair before h)."""
    rows = []
    for ts, rate in settlements:
        if not first_ns <= ts <= last_ns:
            continue
        hour = ((ts + HOUR_NS // 2) // HOUR_NS) * HOUR_NS  # the settlement's hour, jitter either side
        mark = mark_at_hour.get(hour)
        if mark is None:
            continue
        rows.append(BaselineRow(ts, rate, mark, -qty, qty * mark * rate))
    return rows


def summarise(rows: list[BaselineRow], funding_pnl: float, net_pnl: float, notional: float, hedge_ratio: float,
              leverage: float, seconds: float) -> dict:
    always = sum(r.payment for r in rows)
    positive = sum(r.payment for r in rows if r.payment > 0)
    capital = notional * (1 + hedge_ratio / leverage)
    years = seconds / YEAR_S if seconds > 0 else 0.0
    return {
        "always_in_funding": always,
        "positive_funding": positive,
        "capture": funding_pnl / positive if positive > 0 else None,
        "capital_usdt": capital,
        "net_apr": net_pnl / capital / years if capital > 0 and years > 0 else None,
        "always_in_apr": always / capital / years if capital > 0 and years > 0 else None,
    }
