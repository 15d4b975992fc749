"""Exact order quantities, pure: every quantity that is summed, compared or rounded is a `Decimal` on a lot step.

Floats never decide whether a leg is filled: 111321.38 split into fills of 111321.37999999999 would leave a float sum
one ulp short of its target forever. Callers convert at the boundary (`exact`) and work in `Decimal` from there:
nautilus `Quantity`/`Price` via `as_decimal()`, exchange strings via `Decimal(str)`, floats only through their
shortest repr (`Decimal(repr(x))`), which is the decimal the float was written from.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)


def exact(value) -> Decimal:
    """A quantity as an exact Decimal: Decimal, int, str, nautilus Quantity/Price (`as_decimal`), or a float taken
    at its shortest repr (0.1 → Decimal('0.1'), never 0.1000000000000000055...). NaN/inf are refused."""
    if isinstance(value, Decimal):
        out = value
    elif isinstance(value, bool):
        raise TypeError("a quantity cannot be a bool")
    elif isinstance(value, int):
        out = Decimal(value)
    elif isinstance(value, float):
        out = Decimal(repr(value))
    elif isinstance(value, str):
        out = Decimal(value.strip())
    elif hasattr(value, "as_decimal"):
        out = value.as_decimal()
    else:
        raise TypeError(f"not a quantity: {value!r} ({type(value).__name__})")
    if not out.is_finite():
        raise ValueError(f"quantity must be finite, got {value!r}")
    return out


def _step(step) -> Decimal:
    s = exact(step)
    if s <= 0:
        raise ValueError(f"lot step must be > 0, got {step!r}")
    return s


def lots_down(qty, step) -> int:
    """Whole lots in `qty`, rounded down (never more exposure than asked)."""
    return int((exact(qty) / _step(step)).to_integral_value(rounding=ROUND_FLOOR))


def lots_up(qty, step) -> int:
    return int((exact(qty) / _step(step)).to_integral_value(rounding=ROUND_CEILING))


def lots_nearest(qty, step) -> int:
    return int((exact(qty) / _step(step)).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_lots(n: int, step) -> Decimal:
    return n * _step(step)


def round_down(qty, step) -> Decimal:
    """`qty` rounded down to the lot step, exactly."""
    return from_lots(lots_down(qty, step), step)


def round_up(qty, step) -> Decimal:
    return from_lots(lots_up(qty, step), step)


def round_nearest(qty, step) -> Decimal:
    return from_lots(lots_nearest(qty, step), step)
