"""The guard's state for one symbol, pure: the liquidation price cached per margin state (it does not depend on the
mark), the latched step (hysteresis), and the margin to put back after an isolated reduce (Binance releases margin
pro rata on a reduce, which leaves the liquidation price where it was)."""

from __future__ import annotations

from basisbot import guard, margin


class GuardState:
    def __init__(self, thresholds: guard.Thresholds | None, table: margin.BracketTable, isolated: bool):
        self.thresholds = thresholds
        self.table = table
        self.isolated = isolated
        self.state = None  # the last PerpMarginState (side, qty, entry_price, wallet, perp_free, spot_free)
        self.lp: float | None = None
        self.latched = guard.Step.NONE
        self._restore_after_reduce = False

    def on_margin_state(self, state, mark: float | None) -> float:
        """A new margin state; returns the margin to add to restore the target distance after a reduce (0: none)."""
        prev, self.state = self.state, state
        self.lp = (margin.liquidation_price(state.side, state.qty, state.entry_price, state.wallet, self.table)
                   if state.side != 0 and state.qty > 0 else None)
        if (self._restore_after_reduce and state.side != 0 and prev is not None and state.qty < prev.qty
                and mark is not None and self.thresholds is not None):
            self._restore_after_reduce = False
            need = margin.margin_to_add(state.side, state.qty, state.entry_price, mark, state.wallet,
                                        self.thresholds.target_distance, self.table)
            return max(need, 0.0)
        return 0.0

    def reducing(self) -> None:
        """A reduce is on its way: in isolated mode, put back the released margin once it has happened."""
        self._restore_after_reduce = self.isolated

    def liquidated(self) -> None:
        self.latched = guard.Step.NONE

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
            free_collateral=st.perp_free + st.spot_free, latched=self.latched, liquidation_price=self.lp)
        if decision.step is guard.Step.NONE:
            self.latched = latched
            return None
        if busy and decision.step >= guard.Step.REDUCE and decision.add_margin <= 0:
            self.latched = min(latched, guard.Step(decision.step - 1))
            return None
        self.latched = latched
        return decision
