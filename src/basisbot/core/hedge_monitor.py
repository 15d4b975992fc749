"""The one-leg invariant, measured, pure: how long a symbol held one leg without the other.

Fed the signed positions of both legs (exact quantities) with their timestamps, in time order, by whoever observes
the accounts (the backtest recorder from position events, the fault matrix from the venue's own state). A symbol is
one-legged while exactly one leg holds at least one tradable lot of the perp (the spot leg counted as the perp
quantity it hedges: spot × hedge_ratio); dust left by fees taken in the base asset is not a leg.

`max_unhedged_s` is the longest such stretch; a stretch still open is counted up to the last time observed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from basisbot.core.quantities import exact
from basisbot.core.units import NS


def lone_leg(spot_qty, perp_qty, perp_step, hedge_ratio) -> str | None:
    """"spot" or "perp" when exactly one leg is held (at least one perp lot, the spot counted as the perp it hedges),
    else None."""
    step = exact(perp_step)
    spot = exact(spot_qty) * exact(hedge_ratio) >= step
    perp = abs(exact(perp_qty)) >= step
    if spot and not perp:
        return "spot"
    if perp and not spot:
        return "perp"
    return None


@dataclass
class Stretch:
    start_ns: int
    end_ns: int | None
    leg: str  # the leg held alone: "spot" | "perp"

    def seconds(self, now_ns: int) -> float:
        return ((self.end_ns if self.end_ns is not None else now_ns) - self.start_ns) / NS


@dataclass
class HedgeMonitor:
    symbol: str
    perp_step: Decimal
    hedge_ratio: Decimal = Decimal(1)
    stretches: list[Stretch] = field(default_factory=list)
    last_ns: int = 0
    _open: Stretch | None = None

    def __post_init__(self) -> None:
        self.perp_step = exact(self.perp_step)
        self.hedge_ratio = exact(self.hedge_ratio)

    def lone_leg(self, spot_qty, perp_qty) -> str | None:
        return lone_leg(spot_qty, perp_qty, self.perp_step, self.hedge_ratio)

    def observe(self, ts_ns: int, spot_qty, perp_qty) -> None:
        self.last_ns = max(self.last_ns, ts_ns)
        leg = self.lone_leg(spot_qty, perp_qty)
        if self._open is not None and leg != self._open.leg:
            self._open.end_ns = ts_ns
            self._open = None
        if leg is not None and self._open is None:
            self._open = Stretch(ts_ns, None, leg)
            self.stretches.append(self._open)

    def finish(self, ts_ns: int) -> None:
        self.last_ns = max(self.last_ns, ts_ns)

    @property
    def max_unhedged_s(self) -> float:
        return max((s.seconds(self.last_ns) for s in self.stretches), default=0.0)
