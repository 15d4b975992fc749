"""Data quality as a rule, pure, for backtest and live alike: a price print inconsistent with the mark price and its
own recent history is flagged and never drives a prediction, a trade or a guard action on its own.

A print's basis to the mark, (price - mark) / mark, moves slowly: funding arbitrage keeps spot and perp within a
fraction of a percent of the mark. A print whose basis jumps away from the median of the last `window` accepted
prints by more than `max(abs_tol, k × MAD)` is held as suspect: if the next print is back in line, it was a bad print
(an exchange glitch, a thin-book spike, a wrong row in a file) and stays out; if the next print sits on the same
side of the band, the market moved (a real dislocation, e.g. SOL during FTX's collapse): both are accepted and the
history follows the new level. So a bad print costs one print of delay, never a wrong prediction, and a regime
change is seen one print late. Frozen prices (the same print for `frozen_after` updates while the mark moves) are
flagged too.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from statistics import median


@dataclass(frozen=True, slots=True)
class Flag:
    ts_ns: int
    what: str  # e.g. "spot", "perp"
    price: float
    mark: float
    reason: str


class PrintFilter:
    def __init__(self, what: str, window: int = 24, abs_tol: float = 0.005, k: float = 8.0, frozen_after: int = 6):
        self.what = what
        self.window = window
        self.abs_tol = abs_tol
        self.k = k
        self.frozen_after = frozen_after
        self._basis: deque[float] = deque(maxlen=window)
        self._last_price: float | None = None
        self._last_mark: float | None = None
        self._same = 0
        self._pending: float | None = None

    def check(self, ts_ns: int, price: float, mark: float) -> tuple[Flag | None, bool]:
        """(flag, previous_confirmed): flag is None when this print is consistent (it joins the history);
        previous_confirmed is True when the print held as suspect before this one turned out to be a real move."""
        if not (math.isfinite(price) and math.isfinite(mark)) or price <= 0 or mark <= 0:
            return Flag(ts_ns, self.what, price, mark, "not a positive finite price"), False
        frozen = price == self._last_price and mark != self._last_mark
        self._same = self._same + 1 if frozen else 0
        self._last_price, self._last_mark = price, mark
        if self._same >= self.frozen_after:
            return Flag(ts_ns, self.what, price, mark,
                        f"frozen at {price} for {self._same + 1} prints while the mark moved"), False
        b = (price - mark) / mark
        pending, self._pending = self._pending, None
        if len(self._basis) >= min(6, self.window):
            mid = median(self._basis)
            mad = median(abs(x - mid) for x in self._basis)
            tol = max(self.abs_tol, self.k * mad)
            dev = b - mid
            if abs(dev) > tol:
                if pending is not None and (pending - mid) * dev > 0:
                    self._basis.extend((pending, b))  # two in a row on the same side: the market moved
                    return None, True
                self._pending = b
                return Flag(ts_ns, self.what, price, mark,
                            f"basis to mark {b:+.3%} vs {mid:+.3%} recently (tolerance {tol:.3%})"), False
        self._basis.append(b)
        return None, False
