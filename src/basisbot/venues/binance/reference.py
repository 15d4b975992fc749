"""Venue reference data for backtests and offline config checks: Binance USDⓈ-M market rules (exchangeInfo) and
leverage brackets, bundled snapshots plus the operator's own files.

Where the facts come from (see README.md "Where venue facts come from"):

- Leverage brackets: `leverage_brackets_all.json` (every USDT-margined perpetual listed in 2024-10, 318 symbols)
  overlaid by `leverage_brackets.json` (the newer 2026 tables of BTCUSDT, ETHUSDT, SOLUSDT: they win where both
  have a symbol, so the quick-start results stay those of the 2026 tables). An operator's snapshot
  (`backtest.brackets` / `--brackets`, Binance's `GET /fapi/v1/leverageBracket` answer or ccxt's
  `fetch_leverage_tiers` JSON) wins over both for the symbols it lists.
- Market rules (tick, lot step, limits): the real exchangeInfo capture of 2021-07-21 (117 USDT perpetuals),
  overlaid by an operator's own `GET /fapi/v1/exchangeInfo` file (`backtest.exchange_info` / `--exchange-info`)
  for the symbols it lists. The capture has only the futures side; spot rules are derived from the perp's (see
  `spot_rules`), as documented in README.md and basisbot/data/bundled_market/SOURCES.md.
- The local venue (`basisbot sim`) serves newer rules where it has them: `venue_market_specs` lays the 2023
  exchangeInfo rows recorded by ccxt (`fapi_v1_exchangeInfo_ccxt_2023.json`: BTCUSDT tick 0.10, ...) over the 2021
  capture, and the operator's file over both. Backtests keep the 2021 capture, so their results do not move.

Live and paper never read these files: they take brackets and market rules from the exchange (`basisbot.live`).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path

from basisbot.core.brackets import BracketError, BracketTable
from basisbot.venues.binance.brackets_file import load_brackets, parse_brackets
from basisbot.venues.profile import MarketSpec, VenueDataError

# package data (`reference_data/`, its checksums in SHA256SUMS), found through importlib.resources so a wheel
# installed anywhere reads the same files as the source checkout
DATA_DIR = resources.files("basisbot.venues.binance").joinpath("reference_data")
EXCHANGE_INFO = DATA_DIR.joinpath("fapi_v1_exchangeInfo_2021-07-21.json")
# Binance's exchangeInfo rows of 7 USDT perpetuals as ccxt recorded them in 2023 (the local venue's default)
RECENT_EXCHANGE_INFO = DATA_DIR.joinpath("fapi_v1_exchangeInfo_ccxt_2023.json")
BRACKETS = DATA_DIR.joinpath("leverage_brackets.json")  # 2026: BTCUSDT, ETHUSDT, SOLUSDT
BRACKETS_ALL = DATA_DIR.joinpath("leverage_brackets_all.json")  # 2024-10: every USDT-margined perpetual then listed


# ---------------------------------------------------------------------------------------------------------------------
# Market rules


def _dec(value, source: str, symbol: str, where: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise VenueDataError(f"{source}: symbol {symbol!r}, {where}: must be a decimal number (got {value!r})") from None
    if not d.is_finite() or d < 0:
        raise VenueDataError(f"{source}: symbol {symbol!r}, {where}: must be a finite number >= 0 (got {value!r})")
    return d.normalize()


def parse_exchange_info(obj: object, source: str = "<memory>") -> dict[str, MarketSpec]:
    """USDT-margined perpetuals of a Binance `GET /fapi/v1/exchangeInfo` answer -> {symbol: MarketSpec}.

    Other contracts (dated, coin-margined) are skipped; a perpetual without the filters the rules need raises
    `VenueDataError` naming the source, symbol and field."""
    if not isinstance(obj, dict) or not isinstance(obj.get("symbols"), list):
        raise VenueDataError(f"{source}: not a Binance GET /fapi/v1/exchangeInfo answer (expected an object with a "
                             f"'symbols' list, got {type(obj).__name__}"
                             + (f" with keys {sorted(obj)[:6]}" if isinstance(obj, dict) else "") + ")")
    out = {}
    for n, s in enumerate(obj["symbols"]):
        if not isinstance(s, dict):
            raise VenueDataError(f"{source}: symbols[{n}]: must be an object (got {s!r})")
        if s.get("contractType") != "PERPETUAL" or s.get("quoteAsset") != "USDT":
            continue
        sym = s.get("symbol")
        missing = [k for k in ("symbol", "baseAsset", "quoteAsset", "filters") if k not in s]
        if missing:
            raise VenueDataError(f"{source}: symbols[{n}] ({sym!r}): missing field(s) {missing}")
        f = {flt.get("filterType"): flt for flt in s["filters"] if isinstance(flt, dict)}
        for ft, keys in (("PRICE_FILTER", ("tickSize",)), ("LOT_SIZE", ("stepSize", "minQty", "maxQty"))):
            for k in keys:
                if k not in f.get(ft, {}):
                    raise VenueDataError(f"{source}: symbol {sym!r}, filters {ft}.{k}: missing")
        out[sym] = MarketSpec(
            symbol=sym,
            base=s["baseAsset"],
            quote=s["quoteAsset"],
            tick_size=_dec(f["PRICE_FILTER"]["tickSize"], source, sym, "PRICE_FILTER.tickSize"),
            step_size=_dec(f["LOT_SIZE"]["stepSize"], source, sym, "LOT_SIZE.stepSize"),
            min_qty=_dec(f["LOT_SIZE"]["minQty"], source, sym, "LOT_SIZE.minQty"),
            max_qty=_dec(f["LOT_SIZE"]["maxQty"], source, sym, "LOT_SIZE.maxQty"),
            min_notional=Decimal(str(f.get("MIN_NOTIONAL", {}).get("notional", "5"))),
            liquidation_fee=Decimal(str(s.get("liquidationFee", "0"))),
        )
        for name in ("tick_size", "step_size"):
            if getattr(out[sym], name) <= 0:
                raise VenueDataError(f"{source}: symbol {sym!r}, {name}: must be > 0 (got {getattr(out[sym], name)})")
    return out


def _read_json(path, what: str):
    try:
        text = path.read_text(encoding="utf-8") if hasattr(path, "read_text") else Path(path).read_text("utf-8")
    except OSError as e:
        raise VenueDataError(f"{path}: cannot read the {what} file: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise VenueDataError(f"{path}: invalid JSON: {e}") from None


def _bundled_text(resource, what: str, flag: str) -> str:
    """A bundled reference file's text; a missing or unreadable one is a VenueDataError saying how to supply one."""
    try:
        return resource.read_text(encoding="utf-8")
    except OSError as e:
        raise VenueDataError(f"{resource}: cannot read the bundled {what} ({e.strerror or e}); supply one with "
                             f"{flag} FILE (or the matching backtest.* key in the config)") from None


@cache
def _bundled_exchange_info(resource, what: str) -> dict:
    """A bundled exchangeInfo file, parsed once; a missing or invalid one is a VenueDataError naming the flag."""
    try:
        return json.loads(_bundled_text(resource, what, "--exchange-info"))
    except json.JSONDecodeError as e:
        raise VenueDataError(f"{resource}: invalid JSON: {e}; supply an exchangeInfo file with "
                             "--exchange-info FILE") from None


def _exchange_info() -> dict:
    return _bundled_exchange_info(EXCHANGE_INFO, "exchangeInfo capture")


def exchange_info_json() -> dict:
    """The bundled exchangeInfo capture as Binance answered it."""
    return _exchange_info()


@cache
def perp_specs() -> dict[str, MarketSpec]:
    """Market rules of the bundled 2021 capture."""
    return parse_exchange_info(_exchange_info(), str(EXCHANGE_INFO))


@cache
def _user_specs(path: Path, mtime_ns: int) -> dict[str, MarketSpec]:
    return parse_exchange_info(_read_json(path, "exchangeInfo"), str(path))


def _overlay(bundled: dict, user_file: Path | None, load, what: str) -> dict:
    """The bundled table, overlaid by the operator's file (it wins for the symbols it lists). The file's cache is
    keyed by its modification time, so an edited file is read again."""
    if user_file is None:
        return bundled
    path = Path(user_file)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as e:
        raise VenueDataError(f"{path}: cannot read the {what} file: {e.strerror or e}") from None
    return {**bundled, **load(path, mtime)}


def market_specs(exchange_info: Path | None = None) -> dict[str, MarketSpec]:
    """Perp market rules: the bundled capture, overlaid by the operator's exchangeInfo file (it wins per symbol)."""
    return _overlay(perp_specs(), exchange_info, _user_specs, "exchangeInfo")


def _recent_exchange_info() -> dict:
    return _bundled_exchange_info(RECENT_EXCHANGE_INFO, "exchangeInfo rows")


def recent_exchange_info_json() -> dict:
    """The bundled 2023 exchangeInfo rows (`{"symbols": [...]}`, each row as Binance answered it)."""
    return _recent_exchange_info()


@cache
def recent_perp_specs() -> dict[str, MarketSpec]:
    """Market rules of the bundled 2023 rows (BTCUSDT, ETHUSDT, LTCUSDT, ADAUSDT, XRPUSDT, DOGEUSDT, TRXUSDT)."""
    return parse_exchange_info(_recent_exchange_info(), str(RECENT_EXCHANGE_INFO))


def venue_market_specs(exchange_info: Path | None = None) -> dict[str, MarketSpec]:
    """The local venue's perp rules: the 2021 capture, overlaid by the 2023 rows for the symbols they have, overlaid
    by the operator's exchangeInfo file (it wins per symbol over both)."""
    return _overlay({**perp_specs(), **recent_perp_specs()}, exchange_info, _user_specs, "exchangeInfo")


def spot_rules(p: MarketSpec) -> MarketSpec:
    """Spot rules derived from the perp's: same tick, a lot step 100x finer, Binance's 5 USDT minimum notional."""
    step = (p.step_size / 100).normalize()
    return MarketSpec(
        symbol=p.symbol,
        base=p.base,
        quote=p.quote,
        tick_size=p.tick_size,
        step_size=step,
        min_qty=step,
        max_qty=Decimal(9_000_000),
        min_notional=Decimal(5),
    )


def missing_rules_message(symbol: str, exchange_info: Path | None) -> str:
    """What to do when a symbol has no market rules (the bundled capture predates its listing)."""
    where = f"the bundled exchangeInfo capture ({EXCHANGE_INFO.name}, {len(perp_specs())} USDT perpetuals)"
    if exchange_info is not None:
        where += f" nor in {exchange_info}"
    return (f"symbol {symbol}: no market rules (tick size, lot step) in {where}. Save Binance's exchangeInfo "
            f"(curl -s https://fapi.binance.com/fapi/v1/exchangeInfo > exchangeInfo.json) and point to it with "
            f"backtest.exchange_info = \"exchangeInfo.json\" in the config or --exchange-info exchangeInfo.json")


# ---------------------------------------------------------------------------------------------------------------------
# Leverage brackets


@cache
def brackets() -> dict[str, BracketTable]:
    """Bundled brackets of every symbol: the all-symbols snapshot, overlaid by the newer BTC/ETH/SOL tables."""
    return {**_bundled_brackets(BRACKETS_ALL), **_bundled_brackets(BRACKETS)}


def _bundled_brackets(resource) -> dict[str, BracketTable]:
    try:
        return parse_brackets(json.loads(_bundled_text(resource, "leverage brackets", "--brackets")),
                              source=str(resource))
    except (json.JSONDecodeError, BracketError) as e:
        raise VenueDataError(f"{resource}: {e}; supply a brackets file with --brackets FILE") from None


def _okx_tiers_hint(path: Path) -> str | None:
    """The refusal of an OKX position-tiers file (OKX's answer, `{"code", "data": [{instFamily, minSz, maxSz, mmr,
    ...}]}`, or ccxt's tiers of OKX, whose `info` rows hold the same) given as Binance brackets; None otherwise."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rows = obj.get("data") if isinstance(obj, dict) else obj
    if isinstance(obj, dict) and not isinstance(rows, list):
        rows = [t for v in obj.values() if isinstance(v, list) for t in v]
    rows = [r.get("info", r) if isinstance(r, dict) else r for r in (rows if isinstance(rows, list) else [])]
    if any(isinstance(r, dict) and ("instFamily" in r or "uly" in r) and "mmr" in r for r in rows):
        return (f"{path}: this is OKX's position tiers (sizes in contracts), not Binance leverage brackets: set "
                "[exchange] name = \"okx\" to backtest OKX, or supply Binance's brackets (signed GET "
                "/fapi/v1/leverageBracket, or ccxt: json.dump(ccxt.binanceusdm().fetch_leverage_tiers(), f))")
    return None


@cache
def _user_brackets(path: Path, mtime_ns: int) -> dict[str, BracketTable]:
    okx = _okx_tiers_hint(path)
    if okx is not None:
        raise VenueDataError(okx)
    try:
        return load_brackets(path)
    except BracketError as e:
        raise VenueDataError(str(e)) from None


def bracket_tables(user_file: Path | None = None) -> dict[str, BracketTable]:
    """Bundled brackets (`brackets`), overlaid by the operator's snapshot (it wins for the symbols it lists)."""
    return _overlay(brackets(), user_file, _user_brackets, "leverage brackets")


def missing_brackets_message(symbol: str, user_file: Path | None) -> str:
    where = f"the bundled snapshots ({BRACKETS_ALL.name}, {BRACKETS.name}; {len(brackets())} symbols)"
    if user_file is not None:
        where += f" nor in {user_file}"
    return (f"symbol {symbol}: no leverage brackets in {where}. Save the exchange's brackets (Binance's signed "
            f"GET /fapi/v1/leverageBracket, or ccxt: json.dump(exchange.fetch_leverage_tiers(), f)) and point to "
            f"the file with backtest.brackets = \"brackets.json\" in the config or --brackets brackets.json")
