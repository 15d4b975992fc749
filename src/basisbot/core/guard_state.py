"""The guard's state for one symbol, pure: the liquidation price cached per margin state (it does not depend on the
mark), the latched step (hysteresis), and the margin to put back after an isolated reduce (Binance releases margin
pro rata on a reduce, which leaves the liquidation price where it was).

`quiet_band` is the range of marks at which nothing can fire, kept current on every change of the margin state, the
thresholds or the latched step: a mark inside it needs no check. It is narrowed by `QUIET_MARGIN` so that a mark
inside it is quiet under the exact test as well. It is kept in `band`, a `basisbot.core.mark_watch.MarkBand`: the mark
watch tests it (two float comparisons) and calls the strategy only for the marks outside it."""

from __future__ import annotations

import math

from basisbot.core import guard, margin
from basisbot.core.mark_watch import EVERY_MARK_QUIET, NO_MARK_QUIET, MarkBand

QUIET_MARGIN = 1e-9  # relative: far above float rounding, far below any threshold


class GuardState:
    def __init__(self, thresholds: guard.Thresholds | None, table: margin.BracketTable, isolated: bool,
                 band: MarkBand | None = None, liquidation=margin.liquidation_price):
        """`table`: the symbol's tier table; `liquidation`: the venue's isolated liquidation price formula (side, qty,
        entry, wallet, table), Binance's by default."""
        self.table = table
        self.liquidation = liquidation
        self.isolated = isolated
        self.state = None  # the last PerpMarginState (side, qty, entry_price, wallet, perp_free, spot_free)
        self.lp: float | None = None
        self.latched = guard.Step.NONE
        self._restore_after_reduce = False
        self._reduce_from = math.inf  # the perp quantity before the reduce whose margin is to be put back
        self.band = band if band is not None else MarkBand()  # its quiet range: marks that cannot fire anything
        self.thresholds = thresholds

    @property
    def quiet_band(self) -> tuple[float, float]:
        """(low, high): marks strictly inside cannot fire anything."""
        return self.band.quiet

    @property
    def thresholds(self) -> guard.Thresholds | None:
        return self._thresholds

    @thresholds.setter
    def thresholds(self, value: guard.Thresholds | None) -> None:
        self._thresholds = value
        self._set_band()

    def _set_band(self) -> None:
        """The quiet check of `check` solved for the mark: short, quiet while (lp - mark) / mark > warn, i.e. mark <
        lp / (1 + warn); long, quiet while (mark - lp) / mark > warn, i.e. mark > lp / (1 - warn)."""
        st, t, lp = self.state, self._thresholds, self.lp
        if t is None or st is None or st.side == 0 or lp is None:
            self.band.set_quiet(*EVERY_MARK_QUIET)  # nothing to guard
        elif self.latched is not guard.Step.NONE:
            self.band.set_quiet(*NO_MARK_QUIET)  # a step is latched: every mark is checked (hysteresis)
        elif st.side < 0:
            self.band.set_quiet(-math.inf, lp / (1 + t.warn_distance) * (1 - QUIET_MARGIN))
        elif t.warn_distance < 1:
            self.band.set_quiet(lp / (1 - t.warn_distance) * (1 + QUIET_MARGIN), math.inf)
        else:
            self.band.set_quiet(*NO_MARK_QUIET)

    def on_margin_state(self, state, mark: float | None) -> float:
        """A new margin state; returns the margin to add to restore the target distance after a reduce (0: none)."""
        self.state = state
        self.lp = (self.liquidation(state.side, state.qty, state.entry_price, state.wallet, self.table)
                   if state.side != 0 and state.qty > 0 else None)
        self._set_band()
        return self.restore_due(mark)

    def restore_due(self, mark: float | None) -> float:
        """The margin to add to restore the target distance once the reduce has happened (the perp quantity is below
        what it was when the reduce began), at `mark`; once (0: none due)."""
        state = self.state
        if (self._restore_after_reduce and state is not None and state.side != 0 and state.qty < self._reduce_from
                and mark is not None and self.thresholds is not None):
            self._restore_after_reduce = False
            need = margin.margin_to_add(state.side, state.qty, state.entry_price, mark, state.wallet,
                                        self.thresholds.target_distance, self.table)
            return max(need, 0.0)
        return 0.0

    def reducing(self) -> None:
        """A reduce is on its way: in isolated mode, put back the released margin once it has happened."""
        self._restore_after_reduce = self.isolated
        self._reduce_from = self.state.qty if self.state is not None else math.inf

    def resume_after_reduce(self) -> None:
        """A restart found a reduce begun before the stop and its margin not put back (the journal): the step taken
        stays latched (the hysteresis that keeps a second reduce from firing at the same distance) and the margin is
        put back at the first margin state and mark with a position (whatever part of the reduce the venue
        executed: with none of it, adding margin is the guard's first step anyway)."""
        self._restore_after_reduce = self.isolated
        self._reduce_from = math.inf
        self._latch(guard.Step.REDUCE)

    def liquidated(self) -> None:
        self._latch(guard.Step.NONE)

    def check(self, mark: float, busy: bool) -> guard.Decision | None:
        """The guard's decision at this mark, or None. Cheap when nothing can fire (every mark goes through here).
        While a pair is in flight a reduce or close waits: it fires again on the first mark after the pair settles."""
        st, t = self.state, self.thresholds
        if t is None or st is None or st.side == 0 or self.lp is None:
            return None
        # the quiet check runs on every mark: the distance inline (side, mark and lp are floats this class made)
        if self.latched is guard.Step.NONE and st.side * (mark - self.lp) / mark > t.warn_distance:
            return None
        decision, latched = guard.evaluate(
            t, side=st.side, qty=st.qty, entry=st.entry_price, mark=mark, wallet=st.wallet, table=self.table,
            free_collateral=st.perp_free + st.spot_free, latched=self.latched, liquidation_price=self.lp,
            liquidation=self.liquidation)
        if decision.step is guard.Step.NONE:
            self._latch(latched)
            return None
        if busy and decision.step >= guard.Step.REDUCE and decision.add_margin <= 0:
            self._latch(min(latched, guard.Step(decision.step - 1)))
            return None
        self._latch(latched)
        return decision

    def _latch(self, step: guard.Step) -> None:
        if step is not self.latched:
            self.latched = step
            self._set_band()
