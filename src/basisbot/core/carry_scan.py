"""Ranking symbols for a carry (pure): realised funding APR, share of positive settlements, basis volatility,
recent volume and the tier capacity at a leverage, with the filters a scan applies.

The realised APR is the sum of the settled rates over the window scaled to a year (``sum * 365 d / window``): it
does not depend on the settlement interval, which changes per symbol and over time. Basis volatility is the
standard deviation of the hourly basis ``(perp - spot) / spot``: the noise a carry's entry and exit pay into.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from basisbot.core.brackets import BracketTable

YEAR_HOURS = 365 * 24


@dataclass(frozen=True)
class Candidate:
    symbol: str
    settlements: int
    funding_apr: float          # realised, fraction per year
    positive_share: float       # settlements with a rate > 0, fraction
    basis_vol: float | None     # std of the hourly basis, fraction (None: no prices)
    volume_usdt: float | None   # perp quote volume of the last 24 h
    capacity_usdt: float | None  # largest position notional the tiers allow at the leverage (None: no tiers)


@dataclass(frozen=True)
class Filters:
    min_apr: float = 0.0
    min_positive_share: float = 0.5
    max_basis_vol: float | None = None
    min_volume_usdt: float = 0.0
    notional_usdt: float = 0.0   # the capacity must hold this perp notional
    min_settlements: int = 3


def realised_apr(rates: Sequence[float], window_hours: float) -> float:
    if window_hours <= 0:
        raise ValueError(f"window_hours must be positive, got {window_hours}")
    return math.fsum(rates) * YEAR_HOURS / window_hours


def positive_share(rates: Sequence[float]) -> float:
    return sum(r > 0 for r in rates) / len(rates) if rates else 0.0


def basis_volatility(perp: Sequence[float], spot: Sequence[float]) -> float | None:
    """Std (population) of ``(perp - spot) / spot`` over hours where both are finite and spot > 0."""
    basis = [(p - s) / s for p, s in zip(perp, spot) if math.isfinite(p) and math.isfinite(s) and s > 0]
    if len(basis) < 2:
        return None
    mean = math.fsum(basis) / len(basis)
    return math.sqrt(math.fsum((b - mean) ** 2 for b in basis) / len(basis))


def tier_capacity(table: BracketTable | None, leverage: float) -> float | None:
    """The largest notional whose tier still allows ``leverage`` (the top of the last such tier)."""
    if table is None:
        return None
    caps = [b.notional_cap for b in table.brackets if b.initial_leverage >= leverage]
    return max(caps) if caps else 0.0


def candidate(symbol: str, rates: Sequence[float], window_hours: float, perp: Sequence[float],
              spot: Sequence[float], volume_usdt: float | None, table: BracketTable | None,
              leverage: float) -> Candidate:
    return Candidate(symbol, len(rates), realised_apr(rates, window_hours), positive_share(rates),
                     basis_volatility(perp, spot), volume_usdt, tier_capacity(table, leverage))


def rejections(c: Candidate, f: Filters) -> list[str]:
    """Why ``c`` fails the filters (empty: it passes)."""
    out = []
    if c.settlements < f.min_settlements:
        out.append(f"{c.settlements} settlements in the window (< {f.min_settlements})")
    if c.funding_apr < f.min_apr:
        out.append(f"funding APR {c.funding_apr:.2%} < {f.min_apr:.2%}")
    if c.positive_share < f.min_positive_share:
        out.append(f"positive share {c.positive_share:.0%} < {f.min_positive_share:.0%}")
    if f.max_basis_vol is not None and (c.basis_vol is None or c.basis_vol > f.max_basis_vol):
        out.append("basis volatility unknown" if c.basis_vol is None
                   else f"basis volatility {c.basis_vol:.3%} > {f.max_basis_vol:.3%}")
    if f.min_volume_usdt > 0 and (c.volume_usdt is None or c.volume_usdt < f.min_volume_usdt):
        out.append("volume unknown" if c.volume_usdt is None
                   else f"24h volume {c.volume_usdt:,.0f} < {f.min_volume_usdt:,.0f} USDT")
    if c.capacity_usdt is not None and c.capacity_usdt < f.notional_usdt:
        out.append(f"tier capacity {c.capacity_usdt:,.0f} < notional {f.notional_usdt:,.0f} USDT at this leverage")
    return out


def rank(cands: Sequence[Candidate], f: Filters) -> list[tuple[Candidate, list[str]]]:
    """Passing candidates first, each group by funding APR (highest first), then by symbol."""
    judged = [(c, rejections(c, f)) for c in cands]
    return sorted(judged, key=lambda cr: (bool(cr[1]), -cr[0].funding_apr, cr[0].symbol))
