"""Venue reference data bundled with the project: Binance USDⓈ-M exchangeInfo capture and leverage brackets.

Used to validate operator config offline (unknown symbol, leverage above the bracket) and to build backtest
instruments and the local venue's markets. Live mode reads the same facts from the exchange instead.

The capture has only the futures side; spot market rules are derived from it (see `spot_spec`), which is
documented in README.md and backtests/data/SOURCES.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "backtests" / "data" / "binance"
EXCHANGE_INFO = DATA_DIR / "fapi_v1_exchangeInfo_2021-07-21.json"
BRACKETS = DATA_DIR / "leverage_brackets.json"


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Trading rules of one market, as the exchange's filters state them."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    liquidation_fee: Decimal = Decimal(0)

    @property
    def price_precision(self) -> int:
        return max(0, -self.tick_size.normalize().as_tuple().exponent)

    @property
    def size_precision(self) -> int:
        return max(0, -self.step_size.normalize().as_tuple().exponent)


@cache
def _exchange_info() -> dict:
    return json.loads(EXCHANGE_INFO.read_text())


@cache
def perp_specs() -> dict[str, MarketSpec]:
    out = {}
    for s in _exchange_info()["symbols"]:
        if s.get("contractType") != "PERPETUAL" or s.get("quoteAsset") != "USDT":
            continue
        f = {flt["filterType"]: flt for flt in s["filters"]}
        out[s["symbol"]] = MarketSpec(
            symbol=s["symbol"],
            base=s["baseAsset"],
            quote=s["quoteAsset"],
            tick_size=Decimal(f["PRICE_FILTER"]["tickSize"]).normalize(),
            step_size=Decimal(f["LOT_SIZE"]["stepSize"]).normalize(),
            min_qty=Decimal(f["LOT_SIZE"]["minQty"]).normalize(),
            max_qty=Decimal(f["LOT_SIZE"]["maxQty"]).normalize(),
            min_notional=Decimal(f.get("MIN_NOTIONAL", {}).get("notional", "5")),
            liquidation_fee=Decimal(s.get("liquidationFee", "0")),
        )
    return out


def spot_spec(symbol: str) -> MarketSpec:
    """Spot rules derived from the perp's: same tick, a lot step 100x finer, Binance's 5 USDT minimum notional."""
    p = perp_specs()[symbol]
    step = (p.step_size / 100).normalize()
    return MarketSpec(
        symbol=symbol,
        base=p.base,
        quote=p.quote,
        tick_size=p.tick_size,
        step_size=step,
        min_qty=step,
        max_qty=Decimal(9_000_000),
        min_notional=Decimal(5),
    )


def perp_symbols() -> frozenset[str]:
    return frozenset(perp_specs())


def spot_symbols() -> frozenset[str]:
    return frozenset(perp_specs())


@cache
def brackets():
    from basisbot.margin import load_brackets

    return load_brackets(BRACKETS)
