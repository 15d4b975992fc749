"""Leverage-bracket files of Binance USDⓈ-M perpetuals, read into `basisbot.core.brackets.BracketTable`s.

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
from collections.abc import Callable, Mapping
from os import PathLike
from typing import Any

from basisbot.core.brackets import (
    _CCXT_FIELDS,
    _INTEGRAL,
    _JSON_FIELDS,
    Bracket,
    BracketError,
    BracketTable,
    _bracket_error,
    _ccxt_where,
    _check_brackets,
    _where,
)

__all__ = ["is_ccxt_tiers", "load_brackets", "parse_brackets", "parse_ccxt_tiers", "unified_to_id"]



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
