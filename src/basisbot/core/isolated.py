"""The isolated margin wallet of one perp position, one set of rules for the backtest's perp venue
(`basisbot.nautilus.perp_simulation`) and the local venue's futures account (`basisbot.sim.engine.accounts`). Pure.

Rules (Binance USDⓈ-M isolated margin):
- opening a position moves its initial margin (notional at entry / leverage) from the account's cross wallet into
  the isolated wallet;
- increasing it moves the initial margin of the added notional (the position's notional after less before);
- reducing it returns the closed share of the isolated wallet (wallet × (1 − qty after / qty before));
- closing it returns the whole wallet; flipping it closes, then opens the new side at its entry;
- funding of an isolated position and margin added to it are credited to the wallet (`credit`);
- liquidation loses the wallet (the venue books the loss; the wallet is then empty).

A position state is (side, qty, entry): side +1 long, −1 short, 0 flat; qty the absolute size; entry the average
entry price. The arithmetic is floats in a fixed order (the backtest's outputs depend on every bit of it).
"""

from __future__ import annotations

from typing import NamedTuple

from basisbot.core.margin import initial_margin


class WalletMove(NamedTuple):
    """The isolated wallet after a position change, and what moved from the cross wallet into it (negative: what
    went back to the cross wallet)."""

    wallet: float
    moved: float


def follow_position(wallet: float, before: tuple[int, float, float], after: tuple[int, float, float],
                    leverage: float) -> WalletMove:
    """The isolated wallet that follows the position from `before` to `after` (each (side, qty, entry))."""
    side_b, qty_b, entry_b = before
    side_a, qty_a, entry_a = after
    if side_a == 0:
        return WalletMove(0.0, -wallet)
    if side_a != side_b:  # opened, or flipped (the old wallet goes back, the new side takes its initial margin)
        new = initial_margin(qty_a * entry_a, leverage)
        return WalletMove(new, new - wallet)
    if qty_a > qty_b:
        added = initial_margin(qty_a * entry_a - qty_b * entry_b, leverage)
        return WalletMove(wallet + added, added)
    new = wallet * (qty_a / qty_b)
    return WalletMove(new, new - wallet)


def credit(wallet: float, amount: float) -> float:
    """The wallet after funding or added margin (`amount` signed: a funding payment may be negative)."""
    return wallet + amount


__all__ = ["WalletMove", "credit", "follow_position"]
