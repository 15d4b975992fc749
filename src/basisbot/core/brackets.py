"""Tiered maintenance margin: the bracket table type (maintenance-margin ratio and `cum` per notional bracket, the
formulation Binance publishes; any piecewise-linear maintenance schedule can be written in it), validated on
construction. Pure: no I/O. The file formats that carry such tables are read by the venue profiles
(`basisbot.venues.binance.brackets_file`: Binance's leverageBracket answer and ccxt's leverage tiers).
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Bracket", "BracketError", "BracketTable", "bracket_rows"]

# The canonical field names of a bracket (`bracket_rows`; Binance's leverageBracket shape) and of ccxt's unified tier,
# as error messages name them.
# attribute -> field name in Binance's GET /fapi/v1/leverageBracket.
_JSON_FIELDS: dict[str, str] = {
    "bracket": "bracket",
    "initial_leverage": "initialLeverage",
    "notional_floor": "notionalFloor",
    "notional_cap": "notionalCap",
    "mmr": "maintMarginRatio",
    "cum": "cum",
}
# Python attribute name -> field name in ccxt's unified leverage tier.
_CCXT_FIELDS: dict[str, str] = {
    "bracket": "tier",
    "initial_leverage": "maxLeverage",
    "notional_floor": "minNotional",
    "notional_cap": "maxNotional",
    "mmr": "maintenanceMarginRate",
    "cum": "cum",
}
_INTEGRAL = ("bracket", "initial_leverage")



class BracketError(ValueError):
    """A leverage-bracket table is malformed.

    The message names the source (file path or ``"<memory>"``), the symbol, the
    bracket index and JSON field, and the offending value.
    """


@dataclass(frozen=True, slots=True)
class Bracket:
    """One maintenance-margin tier: applies to ``notional_floor <= N < notional_cap``."""

    bracket: int
    initial_leverage: int
    notional_floor: float
    notional_cap: float
    mmr: float
    cum: float

    def maintenance_margin(self, notional: float) -> float:
        """``notional * mmr - cum`` using this bracket's line (no range check)."""
        return notional * self.mmr - self.cum


def _bracket_error(source: str, symbol: object, where: str, problem: str, value: object) -> BracketError:
    return BracketError(f"{source}: symbol {symbol!r}, {where}: {problem} (got {value!r})")


def _where(index: int, attr: str) -> str:
    return f"brackets[{index}].{_JSON_FIELDS[attr]}"


def _ccxt_where(index: int, attr: str) -> str:
    return f"tiers[{index}].{_CCXT_FIELDS[attr]}"


def _require_finite(name: str, value: float) -> float:
    """``value`` as a Python float; ``ValueError`` unless it is a finite real number."""
    if type(value) is float:  # the hot path (every mark): no ABC check
        if value - value == 0.0:  # finite (inf - inf and nan - nan are nan)
            return value
        raise ValueError(f"{name} must be finite, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_brackets(symbol: str, brackets: Sequence[Bracket], source: str,
                    where: Callable[[int, str], str] = _where) -> None:
    """Validate the invariants of a bracket list; raise :class:`BracketError`.

    Checks: non-empty; numeric fields of the right type and finite (the last
    cap may be ``inf``); ``0 < mmr < 1``; ``cum >= 0``; ``initial_leverage
    >= 1``; ``cap > floor``; first floor == 0 and first cum == 0 (else
    ``MM(N) < 0`` for small ``N``); contiguous (``cap[i] == floor[i+1]``, which
    with ``cap > floor`` makes the list sorted); bracket numbers increasing.
    ``where(index, attr)`` names a field in the error (the input's own field names).
    """
    if not isinstance(symbol, str) or not symbol:
        raise _bracket_error(source, symbol, "symbol", "must be a non-empty string", symbol)
    if len(brackets) == 0:
        raise _bracket_error(source, symbol, "brackets", "must be a non-empty list", list(brackets))

    for i, b in enumerate(brackets):
        if not isinstance(b, Bracket):
            raise _bracket_error(source, symbol, f"brackets[{i}]", "must be a Bracket", b)

        def fail(attr: str, problem: str, index: int = i, bracket: Bracket = b) -> BracketError:
            return _bracket_error(source, symbol, where(index, attr), problem, getattr(bracket, attr))

        _check_bracket_fields(b, i == len(brackets) - 1, fail, lambda attr, i=i: where(i, attr).rsplit(".", 1)[1])
        _check_bracket_link(b, brackets[i - 1] if i else None, fail,
                            lambda attr, i=i: where(i, attr).rsplit(".", 1)[1])


def _check_bracket_fields(b: Bracket, is_last: bool, fail, field_name) -> None:
    """One bracket on its own: numeric types, finite values (only the last cap may be inf), the ranges of mmr,
    cum and initial leverage, cap above floor."""
    for attr in _JSON_FIELDS:
        value = getattr(b, attr)
        integral = attr in _INTEGRAL
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if integral else numbers.Real):
            raise fail(attr, "must be an integer" if integral else "must be a number")
    for attr in ("notional_floor", "mmr", "cum"):
        if not math.isfinite(getattr(b, attr)):
            raise fail(attr, "must be finite")
    if math.isnan(b.notional_cap) or (b.notional_cap == math.inf and not is_last):
        raise fail("notional_cap", "must be finite (only the last may be inf)")
    if not 0.0 < b.mmr < 1.0:
        raise fail("mmr", "must be in (0, 1)")
    if b.cum < 0.0:
        raise fail("cum", "must be >= 0")
    if b.initial_leverage < 1:
        raise fail("initial_leverage", "must be >= 1")
    if not b.notional_cap > b.notional_floor:
        raise fail("notional_cap", f"must be > {field_name('notional_floor')} {b.notional_floor!r}")


def _check_bracket_link(b: Bracket, prev: Bracket | None, fail, field_name) -> None:
    """A bracket against the one before it: the first starts at 0 with cum 0; the others start at the previous
    cap, with a higher bracket number."""
    if prev is None:
        if b.notional_floor != 0.0:
            raise fail("notional_floor", "the first bracket must start at 0")
        if b.cum != 0.0:
            raise fail("cum", "the first bracket must have cum 0 (else maintenance margin < 0)")
        return
    if b.notional_floor != prev.notional_cap:
        raise fail("notional_floor", f"must equal the previous {field_name('notional_cap')} "
                                     f"{prev.notional_cap!r} (gap/overlap)")
    if b.bracket <= prev.bracket:
        raise fail("bracket", f"must be > the previous bracket number {prev.bracket!r}")


@dataclass(frozen=True)
class BracketTable:
    """The maintenance-margin brackets of one symbol, validated on construction.

    ``brackets`` must be contiguous and sorted (see :func:`_check_brackets`);
    a list is accepted and stored as a tuple.  Invalid input raises
    :class:`BracketError`.
    """

    symbol: str
    brackets: tuple[Bracket, ...]
    _floors: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        brackets = tuple(self.brackets)
        _check_brackets(self.symbol, brackets, "<BracketTable>")
        # Store plain Python numbers (e.g. numpy float32 would degrade the arithmetic).
        brackets = tuple(
            Bracket(
                int(b.bracket),
                int(b.initial_leverage),
                float(b.notional_floor),
                float(b.notional_cap),
                float(b.mmr),
                float(b.cum),
            )
            for b in brackets
        )
        object.__setattr__(self, "brackets", brackets)
        object.__setattr__(self, "_floors", tuple(b.notional_floor for b in brackets))

    def index_for_notional(self, notional: float) -> int:
        """Index (0-based) of the bracket with ``floor <= notional < cap``.

        A notional at or beyond the last cap maps to the last bracket.
        Raises ``ValueError`` for a negative or non-finite notional.
        """
        notional = _require_finite("notional", notional)
        if notional < 0:
            raise ValueError(f"notional must be >= 0, got {notional!r}")
        return bisect_right(self._floors, notional) - 1

    def for_notional(self, notional: float) -> Bracket:
        """The bracket with ``floor <= notional < cap`` (last bracket beyond the last cap)."""
        return self.brackets[self.index_for_notional(notional)]

    def max_leverage(self, notional: float) -> int:
        """Maximum initial leverage Binance allows for a position of this notional."""
        return self.for_notional(notional).initial_leverage

    def maintenance_margin(self, notional: float) -> float:
        """``MM(N) = N * mmr - cum`` with the bracket of ``N``."""
        return self.for_notional(notional).maintenance_margin(notional)

    # The tier-table interface the margin math reads (:mod:`basisbot.core.margin`), shared with venues whose tiers are
    # by position size (OKX's ``TierTable``): what the position must keep at a price, the first tier's rate and the
    # largest leverage allowed for a position.
    def maintenance_at(self, qty: float, price: float) -> float:
        """Maintenance margin of ``qty`` (base units) valued at ``price``: ``MM(qty * price)``."""
        return self.maintenance_margin(qty * price)

    @property
    def base_mmr(self) -> float:
        """The first bracket's maintenance margin rate."""
        return self.brackets[0].mmr

    def leverage_limit(self, notional: float, price: float | None = None) -> int:
        """Largest leverage for a position of ``notional`` USDT (the bracket is by notional: ``price`` unused)."""
        return self.max_leverage(notional)


def bracket_rows(table: BracketTable) -> list[dict]:
    """The table in Binance's ``leverageBracket`` JSON shape (the ``brackets`` list of one symbol)."""
    return [{"bracket": b.bracket, "initialLeverage": b.initial_leverage, "notionalFloor": b.notional_floor,
             "notionalCap": b.notional_cap, "maintMarginRatio": b.mmr, "cum": b.cum} for b in table.brackets]
