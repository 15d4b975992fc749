"""Leverage brackets (maintenance-margin tiers) of Binance USDⓈ-M perpetuals: the table type and its parsers.

Two input shapes are accepted, by :func:`parse_brackets` / :func:`load_brackets` (the shape is detected):

* Binance's ``GET /fapi/v1/leverageBracket`` answer: a list of ``{"symbol": "BTCUSDT", "notionalCoef"?: 1.0,
  "brackets": [{bracket, initialLeverage, notionalFloor, notionalCap, maintMarginRatio, cum}, ...]}`` (a single
  such object is accepted too). This is the shape of the bundled ``leverage_brackets*.json`` files.
* ccxt's ``fetch_leverage_tiers()`` result saved as JSON: ``{"BTC/USDT:USDT": [{tier, currency, minNotional,
  maxNotional, maintenanceMarginRate, maxLeverage, info: {...}}, ...]}``, keyed by ccxt unified symbols. When a
  tier's ``info`` is Binance's raw bracket (all six fields) it is used as is; otherwise the unified fields are, and
  ``cum`` is rebuilt from continuity (``cum[i] = cum[i-1] + floor[i] * (mmr[i] - mmr[i-1])``, Binance's own rule).
  A unified symbol maps to the exchange id ``BASEQUOTE`` (``"1000PEPE/USDT:USDT"`` -> ``"1000PEPEUSDT"``) unless
  the caller passes the exchange's own ``ids`` (live mode: from the loaded markets).

Numbers may be JSON numbers or decimal strings (Binance and ccxt snapshots use both). Every problem raises
:class:`BracketError` naming the source (file path, ``"<memory>"`` or the exchange), the symbol, the entry and
field, and the bad value. Pure: no I/O except :func:`load_brackets`.
"""

from __future__ import annotations

import json
import math
import numbers
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

__all__ = [
    "Bracket",
    "BracketError",
    "BracketTable",
    "bracket_rows",
    "is_ccxt_tiers",
    "unified_to_id",
    "load_brackets",
    "parse_brackets",
    "parse_ccxt_tiers",
]

# Python attribute name -> field name in Binance's GET /fapi/v1/leverageBracket.
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


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _number(value: object, integral: bool, fail: Callable[[str], BracketError]) -> int | float:
    """A JSON number or decimal string as int (``integral``) or float; ``fail(problem)`` otherwise."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise fail("must be a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail("must be a number")
    if integral:
        if isinstance(value, float) and not value.is_integer():
            raise fail("must be an integer")
        return int(value)
    return float(value)


def _parse_bracket(raw: object, symbol: object, index: int, source: str) -> Bracket:
    if not isinstance(raw, Mapping):
        raise _bracket_error(source, symbol, f"brackets[{index}]", "must be an object", raw)
    values: dict[str, Any] = {}
    for attr, key in _JSON_FIELDS.items():
        where = f"brackets[{index}].{key}"
        if key not in raw:
            raise _bracket_error(source, symbol, where, "missing field", None)
        value = raw[key]
        values[attr] = _number(value, attr in _INTEGRAL,
                               lambda problem, w=where, v=value: _bracket_error(source, symbol, w, problem, v))
    return Bracket(**values)


def _is_list_like(value: object) -> bool:
    """A JSON array as Python sees it: list or tuple (not a string)."""
    return isinstance(value, (list, tuple))


def is_ccxt_tiers(obj: object) -> bool:
    """True for ccxt's ``{symbol: [tier, ...]}`` shape (a mapping that is not one Binance ``{symbol, brackets}`` entry)."""
    return isinstance(obj, Mapping) and not ("symbol" in obj and "brackets" in obj)


def parse_brackets(obj: object, source: str = "<memory>") -> dict[str, BracketTable]:
    """Parse either input shape (see the module doc) into ``{exchange symbol: BracketTable}``.

    Binance's shape: a list of ``{"symbol": str, "brackets": [{bracket, initialLeverage, notionalFloor,
    notionalCap, maintMarginRatio, cum}, ...]}`` (a single such object is also accepted; tuples work as lists;
    extra keys such as ``notionalCoef`` are ignored). A mapping of symbol -> list is ccxt's shape
    (:func:`parse_ccxt_tiers`). Any problem raises :class:`BracketError` naming ``source``, the symbol, the field
    and the bad value.
    """
    if is_ccxt_tiers(obj):
        return parse_ccxt_tiers(obj, source)
    entries = [obj] if isinstance(obj, Mapping) else obj
    if not _is_list_like(entries):
        raise _bracket_error(source, None, "top level", "must be a list of {symbol, brackets} objects (Binance "
                             "GET /fapi/v1/leverageBracket) or a {symbol: [tiers]} object (ccxt "
                             "fetch_leverage_tiers)", obj)
    tables: dict[str, BracketTable] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise _bracket_error(source, None, f"entry [{n}]", "must be an object", entry)
        symbol = entry.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise _bracket_error(source, symbol, f"entry [{n}].symbol", "must be a non-empty string", symbol)
        if symbol in tables:
            raise _bracket_error(source, symbol, f"entry [{n}].symbol", "duplicate symbol", symbol)
        raw_brackets = entry.get("brackets")
        if not _is_list_like(raw_brackets):
            raise _bracket_error(source, symbol, "brackets", "must be a list", raw_brackets)
        brackets = tuple(_parse_bracket(raw, symbol, i, source) for i, raw in enumerate(raw_brackets))
        _check_brackets(symbol, brackets, source)  # here, so the error names the file
        tables[symbol] = BracketTable(symbol=symbol, brackets=brackets)
    return tables


def unified_to_id(symbol: str) -> str:
    """Binance's id of a ccxt unified contract symbol: ``"BTC/USDT:USDT"`` -> ``"BTCUSDT"``, a dated future
    ``"BTC/USDT:USDT-240628"`` -> ``"BTCUSDT_240628"``; a key without ``/`` is taken as an id already."""
    if "/" not in symbol:
        return symbol
    base, rest = symbol.split("/", 1)
    quote, _, settle = rest.partition(":")
    expiry = settle.partition("-")[2]
    return f"{base}{quote}" + (f"_{expiry}" if expiry else "")


def _ccxt_tier(raw: object, key: str, index: int, source: str) -> tuple[Bracket, bool]:
    """One ccxt tier -> (Bracket, from_info). ``info`` wins when it is Binance's raw bracket."""
    if not isinstance(raw, Mapping):
        raise _bracket_error(source, key, f"tiers[{index}]", "must be an object", raw)
    info = raw.get("info")
    if isinstance(info, Mapping) and all(k in info for k in _JSON_FIELDS.values()):
        values = {}
        for attr, name in _JSON_FIELDS.items():
            where = f"tiers[{index}].info.{name}"
            values[attr] = _number(info[name], attr in _INTEGRAL,
                                   lambda p, w=where, v=info[name]: _bracket_error(source, key, w, p, v))
        return Bracket(**values), True
    values = {}
    for attr, name in _CCXT_FIELDS.items():
        if attr == "cum":
            continue
        where = f"tiers[{index}].{name}"
        if raw.get(name) is None:
            raise _bracket_error(source, key, where, "missing field", None)
        values[attr] = _number(raw[name], attr in _INTEGRAL,
                               lambda p, w=where, v=raw[name]: _bracket_error(source, key, w, p, v))
    return Bracket(cum=0.0, **values), False


def parse_ccxt_tiers(obj: object, source: str = "<memory>", ids: Mapping[str, str] | None = None
                     ) -> dict[str, BracketTable]:
    """ccxt's ``fetch_leverage_tiers`` result ``{unified symbol: [tier, ...]}`` -> ``{exchange id: BracketTable}``.

    ``ids`` maps a unified symbol to the exchange's id (from its markets); without it :func:`unified_to_id`.
    Errors name the unified symbol as the key of the entry (``tiers[i].field``).
    """
    if not isinstance(obj, Mapping):
        raise _bracket_error(source, None, "top level", "must be a {symbol: [tiers]} object", obj)
    tables: dict[str, BracketTable] = {}
    for key, tiers in obj.items():
        if not isinstance(key, str) or not key:
            raise _bracket_error(source, key, "key", "must be a non-empty symbol", key)
        if not _is_list_like(tiers):
            raise _bracket_error(source, key, "tiers", "must be a list of leverage tiers", tiers)
        parsed = [_ccxt_tier(raw, key, i, source) for i, raw in enumerate(tiers)]
        brackets = [b for b, _ in parsed]
        from_info = bool(parsed) and all(f for _, f in parsed)
        if not from_info:  # unified fields: rebuild cum so maintenance margin is continuous (Binance's rule)
            cum = 0.0
            for i in range(1, len(brackets)):
                prev, b = brackets[i - 1], brackets[i]
                if isinstance(b.notional_floor, float) and isinstance(b.mmr, float):
                    cum += b.notional_floor * (b.mmr - prev.mmr)
                brackets[i] = Bracket(b.bracket, b.initial_leverage, b.notional_floor, b.notional_cap, b.mmr, cum)
        _check_brackets(key, brackets, source, _where if from_info else _ccxt_where)
        symbol = (ids or {}).get(key) or unified_to_id(key)
        if symbol in tables:
            raise _bracket_error(source, key, "key", f"duplicate symbol (another key is also {symbol})", key)
        tables[symbol] = BracketTable(symbol=symbol, brackets=tuple(brackets))
    return tables


def load_brackets(path: str | PathLike[str]) -> dict[str, BracketTable]:
    """Load a bracket file in either shape; see :func:`parse_brackets`.

    Invalid JSON or content raises :class:`BracketError` naming the file;
    I/O errors (missing file, permissions) propagate as ``OSError``.
    """
    source = str(path)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BracketError(f"{source}: invalid JSON: {exc}") from exc
    return parse_brackets(obj, source=source)
