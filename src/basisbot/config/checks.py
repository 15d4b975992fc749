"""Checks of a configuration against the venue's facts: the symbols it lists, the leverage its brackets allow at the
largest position, and the reference files an operator may supply (`backtest.brackets`, `backtest.exchange_info`).
Each problem is one line naming the file, the symbol, the field, the bad value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from basisbot.config.schema import Settings, SymbolSettings
from basisbot.venues import DEFAULT_EXCHANGE, VenueDataError


def resolve_input_file(path: Path | None, config_path: Path | None) -> Path | None:
    """An operator file named in the config: relative paths are tried against the current directory, then the config
    file's folder (as `backtest.data`). Returns None for None; raises FileNotFoundError listing what was tried."""
    if path is None:
        return None
    path = Path(path)
    tried = [path]
    if not path.is_absolute() and config_path is not None:
        tried.append(Path(config_path).parent / path)
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"file not found (tried {', '.join(str(p) for p in tried)})")


BACKTEST_FILE_FLAGS = {"brackets": "--brackets", "exchange_info": "--exchange-info/--markets"}


def venue_reference(settings: Settings, file_label: str, config_path: Path | None = None,
                    from_flags: frozenset[str] = frozenset()) -> tuple[dict, dict, list[str]]:
    """(bracket tables, perp market rules, problems) for offline checks and backtests: the bundled snapshots overlaid
    by the operator's `backtest.brackets` / `backtest.exchange_info` files. A bad operator file is a problem line
    naming the file, the config field (or the command-line flag, for the fields in `from_flags`) and what is wrong;
    the bundled data stands in for it."""
    problems = []
    bt = settings.backtest
    out = []
    venue = settings.venue
    markets = None
    if bt.exchange_info is not None:
        try:
            markets = resolve_input_file(bt.exchange_info, config_path)
        except FileNotFoundError:
            pass  # reported below, with the field
    for field_name, load, fallback in (("brackets", venue.tier_tables, venue.bundled_tiers),
                                       ("exchange_info", venue.perp_rules, venue.bundled_perp_rules)):
        value = getattr(bt, field_name)
        try:
            path = resolve_input_file(value, config_path)
            # tiers in contracts (OKX) are converted with the contract values of the operator's markets file
            out.append(load(path, markets_file=markets) if field_name == "brackets" and path is not None
                       else load(path))
        except (FileNotFoundError, VenueDataError) as e:
            where = (BACKTEST_FILE_FLAGS[field_name] if field_name in from_flags
                     else f"field 'backtest.{field_name}' =")
            problems.append(f"{file_label}: {where} {str(value)!r}: {e}")
            out.append(fallback())
    if venue.with_perp_taker_fee is not None:  # the venue's liquidation counts the closing fee: the user's own rate
        out[0] = venue.with_perp_taker_fee(out[0], settings.fees.perp_taker)
    return out[0], out[1], problems


def leverage_problems(settings: Settings, tables: Mapping, file_label: str, source: str,
                      symbols: Mapping[str, SymbolSettings] | None = None,
                      prices: Mapping[str, float] | None = None) -> list[str]:
    """Leverage above what the venue's tier allows at the symbol's largest perp notional. `tables` maps symbol ->
    tier table; `source` says where they came from (shown in the message). Symbols without a table are skipped.
    Tiers by notional (Binance) are checked at that notional. Tiers by size (OKX's `TierTable.check_leverage`) are
    checked at the largest size that notional buys: at the symbol's lowest price in `prices` (e.g. the backtest
    window's lowest perp price); without a price, at the first tier's maximum (the loosest bound)."""
    problems = []
    for name, sym in (settings.symbols if symbols is None else symbols).items():
        table = tables.get(name)
        if table is None:
            continue
        notional = sym.perp_notional_cap()
        price = (prices or {}).get(name)
        if callable(getattr(table, "check_leverage", None)) and price is not None and price > 0:
            problem = _size_tier_problem(table, sym.leverage, notional, price)
            if problem:
                problems.append(f"{file_label}: symbol {name}, field 'symbols.{name}.leverage' = {sym.leverage}: "
                                f"{problem} (tiers: {source})")
            continue
        allowed = table.leverage_limit(notional)
        if sym.leverage > allowed:
            problems.append(
                f"{file_label}: symbol {name}, field 'symbols.{name}.leverage' = {sym.leverage}: the venue allows "
                f"at most {allowed}x for a {notional:,.0f} USDT position (allowed: 1..{allowed}; brackets: {source})"
            )
    return problems


def _size_tier_problem(table, leverage: int, notional: float, price: float) -> str | None:
    """What is wrong with `leverage` for a position of `notional` USDT at `price` under size tiers, or None."""
    qty = Decimal(str(notional)) / Decimal(str(price))
    try:
        table.check_leverage(leverage, qty)
    except ValueError as e:
        largest = table.max_qty_at_leverage(leverage)
        at = (f"; the largest notional {leverage}x allows at that price is {float(largest) * price:,.0f} USDT"
              if largest is not None else "")
        return (f"a {notional:,.0f} USDT position at the lowest price {price:g} is {qty:.8g} "
                f"{table.symbol.removesuffix('USDT')}: {e}{at}")
    return None


def venue_checks(settings: Settings, file_label: str, config_path: Path | None = None,
                  from_flags: frozenset[str] = frozenset(), prices: Mapping[str, float] | None = None) -> list[str]:
    """Checks that need venue reference data: known symbols, leverage the bracket allows (bundled snapshots or the
    operator's `backtest.brackets` / `backtest.exchange_info` files); `prices`: each symbol's lowest price, where
    the venue's tiers are by size (see `leverage_problems`)."""
    tables, specs, problems = venue_reference(settings, file_label, config_path, from_flags)
    known = set(tables) | set(specs)
    for name, sym in settings.symbols.items():
        if name not in known:
            close = sorted(s for s in known if s[:3] == name[:3])[:5]
            if settings.venue.name != DEFAULT_EXCHANGE:  # another venue's own wording: what snapshot to supply
                problems.append(f"{file_label}: symbol {name}, field 'symbols.{name}': {settings.venue.display_name}: "
                                + settings.venue.missing_rules_message(name, settings.backtest.exchange_info)
                                + (f" (did you mean one of {close}?)" if close else ""))
                continue
            problems.append(
                f"{file_label}: symbol {name}, field 'symbols.{name}': unknown USDⓈ-M perpetual {name!r}: not in the "
                f"leverage brackets ({len(tables)} symbols) nor the exchangeInfo ({len(specs)} symbols)"
                + (f" (did you mean one of {close}?)" if close else "")
                + "; a symbol listed since: point backtest.brackets / backtest.exchange_info to current snapshots"
            )
            continue
        spot = sym.spot_symbol
        if spot is not None and spot != name and spot not in known:
            problems.append(f"{file_label}: symbol {name}, field 'symbols.{name}.spot_symbol' = {spot!r}: unknown spot market")
    source = str(settings.backtest.brackets) if settings.backtest.brackets else "bundled snapshot"
    problems += leverage_problems(settings, tables, file_label, source, prices=prices)
    return problems
