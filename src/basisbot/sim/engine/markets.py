"""Static market facts served by the venue: futures rules from the bundled exchangeInfo rows (basisbot.venues.binance.reference:
the 2023 rows ccxt recorded for the symbols they have, BTCUSDT tick 0.10; the real 2021 capture for the rest) or an
operator's exchangeInfo file (`--exchange-info`, which wins per symbol), bracket tables of every symbol (the bundled
all-symbols snapshot, or `--brackets`), and Binance-style exchangeInfo and leverageBracket entries for spot and USDⓈ-M
futures. Spot rules stay derived from the 2021 capture's perp row where it has the symbol (its tick and step are
Binance's spot ones for BTCUSDT: 0.01 and 0.00001), so the newer futures tick does not coarsen the spot book."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from functools import cache
from pathlib import Path
from typing import Any

from basisbot.core.brackets import BracketTable, bracket_rows
from basisbot.venues import VenueProfile, get_profile
from basisbot.venues.binance import reference

SPOT_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"]
FUTURES_ORDER_TYPES = ["LIMIT", "MARKET"]
FUTURES_TIF = ["GTC", "IOC", "GTX"]


def f8(x: float) -> str:
    return f"{x:.8f}"


def dec_str(d: Decimal) -> str:
    s = format(d.normalize(), "f")
    return s


@dataclass(frozen=True)
class Market:
    symbol: str
    base: str
    quote: str
    perp: reference.MarketSpec
    spot: reference.MarketSpec
    table: BracketTable
    perp_raw: dict  # the symbol's exchangeInfo row, as served by GET /fapi/v1/exchangeInfo
    # the exchange the venue serves and the market's tier table in that exchange's own form (Binance: `table`; OKX:
    # its position tiers by size): the liquidation price is the exchange's own rule, the one backtests use
    profile: VenueProfile
    tiers: Any

    def liquidation_price(self, side: int, qty: float, entry: float, wallet: float) -> float:
        """The isolated liquidation price of a position (side +1 long / -1 short, `qty` > 0 in base units, its
        isolated `wallet`) by the exchange's own rule (`VenueProfile.liquidation_price`)."""
        return self.profile.liquidation_price(side, qty, entry, wallet, self.tiers)

    @property
    def perp_tick(self) -> float:
        return float(self.perp.tick_size)

    @property
    def spot_tick(self) -> float:
        return float(self.spot.tick_size)

    @property
    def perp_price_precision(self) -> int:
        """Decimals a futures price may carry (the row's `pricePrecision`: 2 for BTCUSDT, whose tick is 0.10);
        the tick's decimals where the row has none."""
        return int(self.perp_raw.get("pricePrecision", self.perp.price_precision))

    @property
    def perp_qty_precision(self) -> int:
        return int(self.perp_raw.get("quantityPrecision", self.perp.size_precision))

    def fmt_perp_price(self, p: float) -> str:
        return f"{p:.{self.perp.price_precision}f}"

    def fmt_perp_qty(self, q: float) -> str:
        return f"{q:.{self.perp.size_precision}f}"

    def fmt_spot(self, x: float) -> str:
        return f8(x)

    def percent_price(self) -> tuple[float, float]:
        for flt in self.perp_raw.get("filters", []):
            if flt.get("filterType") == "PERCENT_PRICE":
                return float(flt["multiplierUp"]), float(flt["multiplierDown"])
        return 1.15, 0.85


def round_step_down(x: float, step: Decimal) -> Decimal:
    return (Decimal(repr(x)) / step).to_integral_value(rounding=ROUND_DOWN) * step


def _rows(info: dict) -> dict[str, dict]:
    return {s["symbol"]: s for s in info["symbols"] if isinstance(s, dict) and "symbol" in s}


@cache
def _raw_by_symbol(path: Path | None = None) -> dict[str, dict]:
    """exchangeInfo rows by symbol: the operator's file, or the bundled 2021 capture overlaid by the 2023 rows."""
    if path:
        return _rows(json.loads(path.read_text()))
    return {**_rows(reference.exchange_info_json()), **_rows(reference.recent_exchange_info_json())}


@cache
def raw_exchange_info() -> dict:
    return reference.exchange_info_json()


def build_market(symbol: str, *, exchange_info: Path | None = None, brackets: Path | None = None) -> Market:
    """A market of the venue: rules from the bundled rows (the 2023 ones where they have the symbol, else the 2021
    capture) or `exchange_info`, which wins per symbol; brackets from the bundled snapshots (or `brackets`, which wins
    per symbol). Raises ValueError saying what to supply."""
    try:
        specs = reference.venue_market_specs(exchange_info)
        tables = reference.bracket_tables(brackets)
    except reference.VenueDataError as e:
        raise ValueError(str(e)) from None
    if symbol not in specs:
        raise ValueError(reference.missing_rules_message(symbol, exchange_info))
    if symbol not in tables:
        raise ValueError(reference.missing_brackets_message(symbol, brackets))
    p = specs[symbol]
    raw = (_raw_by_symbol(Path(exchange_info)) if exchange_info is not None else {}).get(symbol) \
        or _raw_by_symbol()[symbol]
    spot = reference.spot_rules(reference.perp_specs().get(symbol, p))
    return Market(symbol=symbol, base=p.base, quote=p.quote, perp=p, spot=spot,
                  table=tables[symbol], perp_raw=raw, profile=get_profile("binance"), tiers=tables[symbol])


def spot_symbol_info(m: Market) -> dict:
    s = m.spot
    return {
        "symbol": m.symbol,
        "status": "TRADING",
        "baseAsset": m.base,
        "baseAssetPrecision": 8,
        "quoteAsset": m.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": list(SPOT_ORDER_TYPES),
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": f8(float(s.tick_size)), "maxPrice": "1000000.00000000",
             "tickSize": f8(float(s.tick_size))},
            {"filterType": "LOT_SIZE", "minQty": f8(float(s.min_qty)), "maxQty": f8(float(s.max_qty)),
             "stepSize": f8(float(s.step_size))},
            {"filterType": "NOTIONAL", "minNotional": f8(float(s.min_notional)), "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": f8(float(s.max_qty)),
             "stepSize": "0.00000000"},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def futures_symbol_info(m: Market) -> dict:
    """The capture's entry, with the order types this venue implements."""
    entry = copy.deepcopy(m.perp_raw)
    entry["orderTypes"] = list(FUTURES_ORDER_TYPES)
    entry["timeInForce"] = list(FUTURES_TIF)
    entry["status"] = "TRADING"
    return entry


def bracket_entry(m: Market) -> dict:
    """The market's `GET /fapi/v1/leverageBracket` entry (Binance's shape, from its bracket table)."""
    return {"symbol": m.symbol, "notionalCoef": 1.0, "brackets": bracket_rows(m.table)}
