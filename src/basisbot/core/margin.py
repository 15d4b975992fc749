"""Margin money math for Binance USDⓈ-M perpetuals (one-way mode).

Pure functions on floats: no I/O, no exchange or framework imports (the bracket
tables and their loaders are in :mod:`basisbot.core.brackets`).  Every formula below follows Binance's published
definitions (see ``backtests/data/SOURCES.md``).

Notation
--------
``side``   +1 for a long, -1 for a short.
``qty``    position size in base units, always > 0 (direction is ``side``).
``entry``  average entry price; ``mark`` the mark price.
``N``      notional = ``qty * price`` (at whatever price is being discussed).
``WB``     wallet balance: the isolated margin of the position (isolated mode)
           or the shared wallet (cross mode).

Definitions
-----------
* Maintenance margin of a position of notional ``N``:
  ``MM(N) = N * mmr - cum``, with ``mmr``/``cum`` from the bracket holding ``N``
  (``notional_floor <= N < notional_cap``).  Binance chooses ``cum`` so that
  ``MM`` is continuous across brackets:
  ``cum[i+1] = cum[i] + floor[i+1] * (mmr[i+1] - mmr[i])``.
* Unrealized PnL: ``upnl = side * qty * (mark - entry)``.
* Margin balance: ``MB = WB + upnl``.
* Margin ratio: ``MM(qty * mark) / MB``; the position is liquidated when it is
  >= 1, i.e. when ``MB <= MM``.
* Isolated liquidation price (solve ``MB(P) = MM(qty * P)`` for ``P``)::

      LP = (WB + cum - side * qty * entry) / (qty * mmr - side * qty)

  with ``mmr``/``cum`` taken from the bracket of the notional *at* ``LP``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# The bracket table and its parsers live in basisbot.core.brackets; re-exported here for existing callers.
from basisbot.core.brackets import (
    Bracket,
    BracketError,
    BracketTable,
    _require_finite,
    load_brackets,
    parse_brackets,
)

__all__ = [
    "Bracket",
    "BracketError",
    "BracketTable",
    "CrossPosition",
    "cross_liquidation_price",
    "cross_margin_ratio",
    "distance_to_liquidation",
    "initial_margin",
    "liquidation_price",
    "load_brackets",
    "margin_balance",
    "margin_ratio",
    "margin_to_add",
    "parse_brackets",
    "reduce_fraction_for_distance",
    "reduce_position",
    "target_liquidation_price",
    "unrealized_pnl",
    "wallet_for_distance",
]

#: Default absolute tolerance on the fraction returned by
#: :func:`reduce_fraction_for_distance` (bisection stops when the bracket is
#: narrower than this).
REDUCE_FRACTION_TOL = 1e-9


# --------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------


def _require_positive(name: str, value: float) -> float:
    """``value`` as a Python float; ``ValueError`` unless finite and > 0."""
    value = _require_finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _require_side(side: int) -> int:
    """``side`` as int; ``ValueError`` unless it is +1 or -1."""
    if isinstance(side, bool) or side not in (1, -1):
        raise ValueError(f"side must be +1 (long) or -1 (short), got {side!r}")
    return int(side)


def _require_distance(target_distance: float) -> float:
    """``target_distance`` as a Python float; ``ValueError`` unless finite and >= 0."""
    target_distance = _require_finite("target_distance", target_distance)
    if target_distance < 0:
        raise ValueError(f"target_distance must be >= 0, got {target_distance!r}")
    return target_distance


def _require_table(table: BracketTable) -> None:
    """A tier table: Binance's `BracketTable` (by notional) or a venue's table by size with the same interface
    (`maintenance_at(qty, price)`, e.g. OKX's ``TierTable``)."""
    if not callable(getattr(table, "maintenance_at", None)):
        raise ValueError(f"table must be a BracketTable (or a tier table with maintenance_at), got {type(table).__name__}")


# --------------------------------------------------------------------------
# PnL, margin balance, margin ratio
# --------------------------------------------------------------------------


def unrealized_pnl(side: int, qty: float, entry: float, mark: float) -> float:
    """``side * qty * (mark - entry)``."""
    side = _require_side(side)
    qty = _require_positive("qty", qty)
    entry = _require_positive("entry", entry)
    mark = _require_positive("mark", mark)
    return side * qty * (mark - entry)


def margin_balance(side: int, qty: float, entry: float, mark: float, wallet_balance: float) -> float:
    """``WB + unrealized PnL`` at ``mark``."""
    wallet_balance = _require_finite("wallet_balance", wallet_balance)
    return wallet_balance + unrealized_pnl(side, qty, entry, mark)


def margin_ratio(
    side: int, qty: float, entry: float, mark: float, wallet_balance: float, table: BracketTable
) -> float:
    """Binance margin ratio ``MM(qty * mark) / (WB + upnl)``; liquidation when >= 1.

    Returns ``inf`` when the margin balance is <= 0 (already bankrupt).
    """
    _require_table(table)
    balance = margin_balance(side, qty, entry, mark, wallet_balance)
    if balance <= 0:
        return math.inf
    return table.maintenance_margin(qty * mark) / balance


# --------------------------------------------------------------------------
# Liquidation price (isolated)
# --------------------------------------------------------------------------


def _lp_formula(side: int, qty: float, entry: float, wallet_balance: float, bracket: Bracket) -> float:
    """``(WB + cum - side*qty*entry) / (qty*mmr - side*qty)`` for one bracket (may be <= 0)."""
    return (wallet_balance + bracket.cum - side * qty * entry) / (qty * bracket.mmr - side * qty)


def _liquidation_price_by_scan(
    side: int, qty: float, entry: float, wallet_balance: float, table: BracketTable
) -> float:
    """Exact liquidation price for any bracket table, by walking the brackets.

    Let ``g(P) = WB + side*qty*(P - entry) - MM(qty*P)`` (margin balance minus
    maintenance margin); the position is liquidated where ``g(P) <= 0``.
    Within one bracket ``g`` is linear with slope ``-qty*(1+mmr) < 0`` for a
    short and ``qty*(1-mmr) > 0`` for a long.

    * Short: price rises towards liquidation, so ``LP = inf{P >= 0: g(P) <= 0}``:
      walk brackets upwards; in the first bracket where ``g`` is <= 0 at its
      left end, ``LP`` is that end (a jump of ``MM`` at the boundary, or
      liquidated at any price when it is bracket 0 -> 0.0); in the first where
      ``g`` reaches <= 0 at its right end, ``LP`` is the bracket's root.
    * Long: price falls towards liquidation, so ``LP = sup{P: g(P) <= 0}``
      (0.0 if none): walk brackets downwards symmetrically; if ``g`` is <= 0
      at a bracket's right end ``LP`` is that boundary.

    For Binance's continuous tables this is the unique root of ``g``, identical
    to the bracket iteration in :func:`liquidation_price`; for a table whose
    ``MM`` jumps at a boundary it returns the boundary, i.e. the first price at
    which the position is liquidatable as price moves against it (the
    conservative answer).  The root is clamped into its bracket's price range
    so float rounding cannot push it across a boundary.
    """

    def g(price: float, b: Bracket) -> float:
        return wallet_balance + side * qty * (price - entry) - b.maintenance_margin(qty * price)

    # Price range of each bracket; the last one extends to infinity (see BracketTable.for_notional).
    last = len(table.brackets) - 1
    ranges = [
        (b, b.notional_floor / qty, math.inf if i == last else b.notional_cap / qty)
        for i, b in enumerate(table.brackets)
    ]
    if side == -1:
        for b, lo, hi in ranges:
            if g(lo, b) <= 0:
                return lo
            if hi == math.inf or g(hi, b) <= 0:
                return min(max(_lp_formula(side, qty, entry, wallet_balance, b), lo), hi)
        raise AssertionError("unreachable: g -> -inf for a short")  # pragma: no cover
    for b, lo, hi in reversed(ranges):
        if hi != math.inf and g(hi, b) <= 0:
            return hi
        if g(lo, b) <= 0:
            return min(max(_lp_formula(side, qty, entry, wallet_balance, b), lo), hi)
    return 0.0


def liquidation_price(side: int, qty: float, entry: float, wallet_balance: float, table: BracketTable) -> float:
    """Isolated-margin liquidation price, one-way mode (Binance formula).

    ``LP = (WB + cum - side*qty*entry) / (qty*mmr - side*qty)``, solving
    ``WB + side*qty*(LP - entry) = qty*LP*mmr - cum`` (margin balance equals
    maintenance margin at ``LP``), where ``mmr``/``cum`` must be those of the
    bracket of ``qty * LP``.

    Procedure (Binance's): compute ``LP`` with the bracket of the entry
    notional ``qty * entry``; if ``qty * LP`` falls in another bracket,
    recompute with that bracket; repeat until the bracket is stable (at most
    ``len(brackets) + 1`` rounds).  For Binance's tables (``MM`` continuous and
    convex) this converges monotonically: every bracket line lies below
    ``MM``, so each iterate overshoots the true ``LP`` from the same side and
    the next bracket moves towards it.

    If the iteration revisits a bracket (it oscillates, e.g. between two
    brackets sharing a boundary because ``MM`` jumps there, or because float
    rounding puts an ``LP`` lying exactly on a boundary on either side), the
    answer comes from :func:`_liquidation_price_by_scan`: the boundary price
    ``cap / qty`` where liquidation starts as price moves against the
    position; the conservative answer.

    Returns ``0.0`` when the formula gives ``LP <= 0``: for a long whose wallet
    covers the notional (``WB >= qty*entry``) this means it cannot be
    liquidated; for a short it only happens with a negative ``WB`` (cross
    use) and means it is liquidatable at any price.

    ``wallet_balance`` may be any finite number (negative for
    :func:`cross_liquidation_price`).
    """
    side = _require_side(side)
    qty = _require_positive("qty", qty)
    entry = _require_positive("entry", entry)
    wallet_balance = _require_finite("wallet_balance", wallet_balance)
    _require_table(table)

    index = table.index_for_notional(qty * entry)
    seen = {index}
    for _ in range(len(table.brackets) + 1):
        lp = _lp_formula(side, qty, entry, wallet_balance, table.brackets[index])
        at_lp = table.index_for_notional(qty * max(lp, 0.0))
        if at_lp == index:
            return max(lp, 0.0)
        if at_lp in seen:
            break
        seen.add(at_lp)
        index = at_lp
    return _liquidation_price_by_scan(side, qty, entry, wallet_balance, table)


def distance_to_liquidation(side: int, mark: float, liq_price: float) -> float:
    """Distance from ``mark`` to the liquidation price as a fraction of ``mark``.

    Short: ``(LP - mark) / mark``; long: ``(mark - LP) / mark``.  ``<= 0``
    means liquidatable now.  A long with ``LP == 0`` gives 1.0.
    """
    side = _require_side(side)
    mark = _require_positive("mark", mark)
    liq_price = _require_finite("liq_price", liq_price)
    if liq_price < 0:
        raise ValueError(f"liq_price must be >= 0, got {liq_price!r}")
    return side * (mark - liq_price) / mark


def target_liquidation_price(side: int, mark: float, target_distance: float) -> float:
    """The liquidation price ``target_distance`` away from ``mark``.

    Short: ``mark * (1 + d)``; long: ``mark * (1 - d)``, requiring ``d <= 1``.
    """
    side = _require_side(side)
    mark = _require_positive("mark", mark)
    target_distance = _require_distance(target_distance)
    if side == 1 and target_distance > 1:
        raise ValueError(f"target_distance must be <= 1 for a long (LP = mark*(1-d) >= 0), got {target_distance!r}")
    return mark * (1 - side * target_distance)


# --------------------------------------------------------------------------
# Sizing the margin
# --------------------------------------------------------------------------


def initial_margin(notional: float, leverage: float) -> float:
    """Initial margin ``notional / leverage``."""
    notional = _require_finite("notional", notional)
    if notional < 0:
        raise ValueError(f"notional must be >= 0, got {notional!r}")
    leverage = _require_positive("leverage", leverage)
    return notional / leverage


def wallet_for_distance(
    side: int, qty: float, entry: float, mark: float, target_distance: float, table: BracketTable
) -> float:
    """Isolated wallet balance that puts the liquidation price ``target_distance`` from ``mark``.

    With ``LPt = mark*(1+d)`` (short) or ``mark*(1-d)`` (long), the LP formula
    solved for ``WB`` with the bracket of ``qty * LPt``::

        WB = LPt*qty*(mmr - side) - cum + side*qty*entry
           = MM(qty*LPt) - side*qty*(LPt - entry)

    i.e. the wallet for which margin balance equals maintenance margin at
    ``LPt``.  Then ``liquidation_price(side, qty, entry, WB, table) == LPt``
    (the root is unique because margin balance minus maintenance margin is
    strictly monotone in price).

    The result can be negative: the unrealized profit at ``LPt`` alone covers
    the maintenance margin.  Callers allocating real margin should use
    :func:`margin_to_add`, which clamps at 0.
    """
    side = _require_side(side)
    qty = _require_positive("qty", qty)
    entry = _require_positive("entry", entry)
    _require_table(table)
    lp = target_liquidation_price(side, mark, target_distance)
    return table.maintenance_at(qty, lp) - side * qty * (lp - entry)


def margin_to_add(
    side: int,
    qty: float,
    entry: float,
    mark: float,
    wallet_balance: float,
    target_distance: float,
    table: BracketTable,
) -> float:
    """Isolated margin to add so the liquidation price is at least ``target_distance`` away.

    ``max(0, wallet_for_distance(...) - wallet_balance)``.
    """
    wallet_balance = _require_finite("wallet_balance", wallet_balance)
    needed = wallet_for_distance(side, qty, entry, mark, target_distance, table)
    return max(0.0, needed - wallet_balance)


def reduce_position(
    side: int, qty: float, entry: float, mark: float, wallet_balance: float, fraction: float
) -> tuple[float, float]:
    """Remaining ``(qty, wallet_balance)`` after closing ``fraction`` of a position at ``mark``.

    Model (a documented simplification): the closed part realises
    ``fraction * upnl`` into the isolated wallet and the remaining position
    keeps the whole wallet, so ``qty' = (1 - f)*qty``,
    ``WB' = WB + f*side*qty*(mark - entry)``; the entry price is unchanged.
    (Binance may move part of the isolated margin back to the cross wallet on
    a reduce; read the actual isolated margin back after the trade.)
    """
    qty = _require_positive("qty", qty)
    wallet_balance = _require_finite("wallet_balance", wallet_balance)
    fraction = _require_finite("fraction", fraction)
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    upnl = unrealized_pnl(side, qty, entry, mark)
    return qty * (1 - fraction), wallet_balance + fraction * upnl


def reduce_fraction_for_distance(
    side: int,
    qty: float,
    entry: float,
    mark: float,
    wallet_balance: float,
    target_distance: float,
    table: BracketTable,
    tol: float = REDUCE_FRACTION_TOL,
    liquidation: Callable[[int, float, float, float, BracketTable], float] | None = None,
) -> float:
    """Smallest fraction ``f`` in [0, 1] of the position to close (at ``mark``) to reach ``target_distance``.

    After the close (see :func:`reduce_position` for the wallet model), the
    remaining position's liquidation price must be at least
    ``target_distance`` from ``mark``.

    Monotonicity: at the target price ``Pt`` the remaining position's margin
    balance minus maintenance margin is
    ``MB - (1-f)*qty*mark*d - MM((1-f)*qty*Pt)`` (``MB`` = current margin
    balance, unchanged by closing at mark), which increases with ``f``; so the
    set of fractions that reach the target is an interval ``[f*, 1]``.

    Solved by bisection on ``f`` until the interval is narrower than ``tol``;
    returns the upper end, which is a fraction *verified* to achieve the target
    (using exactly :func:`reduce_position`, :func:`liquidation_price` and
    :func:`distance_to_liquidation`) and exceeds the minimal one by less than
    ``tol``.  Returns 0.0 if the position already meets the target and 1.0 when
    only closing everything does (margin balance <= 0, a long's target
    distance > 1, or ``f*`` within ``tol`` of 1).  Callers must round the
    closing quantity *up* to the lot size. ``liquidation``: the venue's liquidation price (same arguments as
    :func:`liquidation_price`, Binance's, the default).
    """
    side = _require_side(side)
    qty = _require_positive("qty", qty)
    entry = _require_positive("entry", entry)
    mark = _require_positive("mark", mark)
    wallet_balance = _require_finite("wallet_balance", wallet_balance)
    target_distance = _require_distance(target_distance)
    _require_table(table)
    tol = _require_positive("tol", tol)
    lp_of = liquidation_price if liquidation is None else liquidation

    def meets_target(fraction: float) -> bool:
        remaining_qty, remaining_wallet = reduce_position(side, qty, entry, mark, wallet_balance, fraction)
        if remaining_qty <= 0:
            return True
        lp = lp_of(side, remaining_qty, entry, remaining_wallet, table)
        return distance_to_liquidation(side, mark, lp) >= target_distance

    if meets_target(0.0):
        return 0.0
    if margin_balance(side, qty, entry, mark, wallet_balance) <= 0 or (side == 1 and target_distance > 1):
        return 1.0
    return _bisect_smallest_true(meets_target, 0.0, 1.0, tol)


def _bisect_smallest_true(predicate: Callable[[float], bool], lo: float, hi: float, tol: float) -> float:
    """Bisection for a monotone predicate, false at ``lo`` and assumed true at ``hi``.

    Returns a point where the predicate is true (or ``hi`` itself) within
    ``tol`` of the false/true transition.
    """
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:  # float resolution reached
            break
        if predicate(mid):
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------
# Cross margin
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MarginTopUp:
    """Where a request to add margin is funded from."""

    from_perp: float  # free perp balance moved into the isolated wallet
    from_spot: float  # moved from the spot account to the perp wallet
    added: float  # what reaches the position: its isolated wallet (cross: the shared wallet, i.e. `from_spot`)


def perp_shortfall(amount: float, perp_free: float, isolated: bool) -> float:
    """What the perp wallet lacks for adding `amount` of margin: an isolated wallet is funded from the free perp
    balance first; a cross position is already backed by the whole wallet, so a cross top-up is all shortfall."""
    return amount - perp_free if isolated else amount


def split_margin_request(amount: float, perp_free: float, spot_free: float, *, isolated: bool,
                         spot_allowed: bool, cents: bool = False) -> MarginTopUp:
    """Fund `amount` of added margin: the free perp balance first (isolated), the shortfall from spot when allowed.
    `cents`: amounts moved are whole USDT cents rounded down (the exchange's transfer and add-margin precision)."""
    shortfall = perp_shortfall(amount, perp_free, isolated)
    from_spot = 0.0
    if shortfall > 0 and spot_allowed:
        from_spot = min(shortfall, spot_free)
        if cents:
            from_spot = math.floor(from_spot * 100) / 100
    if not isolated:
        return MarginTopUp(0.0, from_spot, from_spot)
    if cents:
        added = math.floor(min(amount, perp_free + from_spot) * 100) / 100
        return MarginTopUp(max(0.0, added - from_spot), from_spot, added)
    from_perp = min(amount, perp_free)
    return MarginTopUp(from_perp, from_spot, from_perp + from_spot)


@dataclass(frozen=True)
class CrossPosition:
    """One position sharing a cross-margin wallet, valued at ``mark``."""

    side: int
    qty: float
    entry: float
    mark: float
    table: BracketTable

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", _require_side(self.side))
        for name in ("qty", "entry", "mark"):
            object.__setattr__(self, name, _require_positive(name, getattr(self, name)))
        _require_table(self.table)

    @property
    def upnl(self) -> float:
        """Unrealized PnL at ``mark``."""
        return unrealized_pnl(self.side, self.qty, self.entry, self.mark)

    @property
    def maintenance_margin(self) -> float:
        """``MM(qty * mark)`` from this position's bracket table."""
        return self.table.maintenance_margin(self.qty * self.mark)


def cross_margin_ratio(wallet_balance: float, positions: Sequence[CrossPosition]) -> float:
    """``sum(MM_i) / (wallet + sum(upnl_i))``; ``inf`` when the denominator is <= 0.

    With no positions and a positive wallet the ratio is 0.0.
    """
    wallet_balance = _require_finite("wallet_balance", wallet_balance)
    balance = wallet_balance + sum(p.upnl for p in positions)
    if balance <= 0:
        return math.inf
    return sum(p.maintenance_margin for p in positions) / balance


def cross_liquidation_price(
    wallet_balance: float, position: CrossPosition, others: Sequence[CrossPosition]
) -> float:
    """Cross-margin liquidation price of ``position``, holding the other positions fixed.

    Binance's cross formula is the isolated one with
    ``WB = wallet + sum(upnl of others) - sum(MM of others)`` (the others'
    unrealized PnL and maintenance margin at their current marks), so at the
    returned price :func:`cross_margin_ratio` over all positions is 1.
    ``position.mark`` is not used.  See :func:`liquidation_price` for the
    bracket handling and the meaning of 0.0.
    """
    wallet_balance = _require_finite("wallet_balance", wallet_balance)
    effective_wallet = wallet_balance + sum(p.upnl for p in others) - sum(p.maintenance_margin for p in others)
    return liquidation_price(position.side, position.qty, position.entry, effective_wallet, position.table)
