"""Nautilus instruments from the exchange's own markets (ccxt `load_markets` of the venue's clients; OKX's rules come
from its instruments row through `basisbot.live.venue_hooks.okx`, in base units).

Same identifiers as the backtest (`basisbot.nautilus.instruments`): spot `BTCUSDT.BINANCE_SPOT` (CurrencyPair),
perp `BTCUSDT-PERP.BINANCE_PERP` (CryptoPerpetual). Precisions and increments come from the exchange's filters
(`PRICE_FILTER.tickSize`, `LOT_SIZE.stepSize/minQty/maxQty`, `NOTIONAL`/`MIN_NOTIONAL`), read from the raw
exchangeInfo entry ccxt keeps in `market["info"]` (exact decimal strings), falling back to ccxt's unified
`precision`/`limits` (floats, in TICK_SIZE mode for binance). Fees: the operator's `[fees]` (as in backtests).
The perp's margin_init is 1/leverage and margin_maint the first bracket's rate, to be used with nautilus' standard
margin model, exactly as the backtest builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CryptoPerpetual, CurrencyPair, Instrument

from basisbot.core.margin import BracketTable
from basisbot.nautilus import instruments as _instruments
from basisbot.venues import get_profile

# the venue of instruments built without venue hooks (Binance's); with hooks, the hooks' profile names the venues
PROFILE = get_profile("binance")
SPOT_VENUE = _instruments.spot_venue(PROFILE)
PERP_VENUE = _instruments.perp_venue(PROFILE)


def spot_id(symbol: str) -> InstrumentId:
    return _instruments.spot_id(symbol, PROFILE)


def perp_id(symbol: str) -> InstrumentId:
    return _instruments.perp_id(symbol, PROFILE)

__all__ = [
    "PERP_VENUE",
    "SPOT_VENUE",
    "InstrumentError",
    "MarketRules",
    "StaticInstrumentProvider",
    "market_rules",
    "perp_from_market",
    "perp_id",
    "spot_from_market",
    "spot_id",
    "unified_perp",
    "unified_spot",
]


class InstrumentError(ValueError):
    """A market the strategy needs is missing or unusable (named in the message)."""


def unified_spot(base: str, quote: str = "USDT") -> str:
    return f"{base}/{quote}"


def unified_perp(base: str, quote: str = "USDT") -> str:
    return f"{base}/{quote}:{quote}"


@dataclass(frozen=True, slots=True)
class MarketRules:
    symbol: str  # exchange id, e.g. BTCUSDT
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal | None
    min_notional: Decimal | None
    min_price: Decimal | None
    max_price: Decimal | None

    @property
    def price_precision(self) -> int:
        return _decimals(self.tick_size)

    @property
    def size_precision(self) -> int:
        return _decimals(self.step_size)


def _decimals(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


def _dec(value) -> Decimal | None:
    if value in (None, ""):
        return None
    d = Decimal(str(value)) if not isinstance(value, float) else Decimal(repr(value))
    return d.normalize()


def market_rules(market: dict) -> MarketRules:
    """Trading rules of one ccxt market (exact strings from the raw filters when present)."""
    info = market.get("info") or {}
    filters = {f.get("filterType"): f for f in info.get("filters") or [] if isinstance(f, dict)}
    pf, lot = filters.get("PRICE_FILTER", {}), filters.get("LOT_SIZE", {})
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    precision, limits = market.get("precision") or {}, market.get("limits") or {}
    tick = _dec(pf.get("tickSize")) or _dec(precision.get("price"))
    step = _dec(lot.get("stepSize")) or _dec(precision.get("amount"))
    if not tick or not step or tick <= 0 or step <= 0:
        raise InstrumentError(f"{market.get('symbol')}: no tick size / lot step in the exchange's market data")
    min_qty = _dec(lot.get("minQty")) or _dec((limits.get("amount") or {}).get("min")) or step
    max_qty = _dec(lot.get("maxQty")) or _dec((limits.get("amount") or {}).get("max"))
    min_notional = (_dec(notional.get("minNotional")) or _dec(notional.get("notional"))
                    or _dec((limits.get("cost") or {}).get("min")))
    min_price = _dec(pf.get("minPrice")) or _dec((limits.get("price") or {}).get("min"))
    max_price = _dec(pf.get("maxPrice")) or _dec((limits.get("price") or {}).get("max"))
    return MarketRules(
        symbol=str(market["id"]), base=str(market["base"]), quote=str(market["quote"]), tick_size=tick,
        step_size=step, min_qty=max(min_qty, step) if min_qty == 0 else min_qty,
        max_qty=max_qty if max_qty and max_qty > 0 else None,
        min_notional=min_notional if min_notional and min_notional > 0 else None,
        min_price=min_price if min_price and min_price > 0 else None,
        max_price=max_price if max_price and max_price > 0 else None,
    )


def spot_from_market(market: dict, taker_fee: float, maker_fee: float, ts_ns: int = 0, *, hooks=None
                     ) -> CurrencyPair:
    """The spot instrument of a ccxt market; `hooks` (`basisbot.live.venue_hooks`, Binance's by default) read the
    exchange's rules and name the venue."""
    if not market.get("spot"):
        raise InstrumentError(f"{market.get('symbol')}: not a spot market")
    r = hooks.rules(market) if hooks is not None else market_rules(market)
    if r.quote != "USDT":
        raise InstrumentError(f"{market.get('symbol')}: quote {r.quote} (only USDT pairs are traded)")
    profile = hooks.profile if hooks is not None else PROFILE
    return _instruments.currency_pair(r, taker_fee, maker_fee, ts_ns, profile=profile)


def perp_from_market(market: dict, leverage: int, table: BracketTable, taker_fee: float, maker_fee: float,
                     ts_ns: int = 0, *, hooks=None) -> CryptoPerpetual:
    """The perp instrument of a ccxt market, in base units (an OKX swap's lot is `lotSz` × `ctVal`)."""
    if not (market.get("swap") and market.get("linear")):
        raise InstrumentError(f"{market.get('symbol')}: not a USDⓈ-M perpetual")
    r = hooks.rules(market) if hooks is not None else market_rules(market)
    if r.quote != "USDT":
        raise InstrumentError(f"{market.get('symbol')}: quote {r.quote} (only USDT-margined perpetuals)")
    profile = hooks.profile if hooks is not None else PROFILE
    return _instruments.crypto_perpetual(r, leverage, table, taker_fee, maker_fee, ts_ns, profile=profile)


def find_market(markets: dict, exchange_id: str, *, kind: str) -> dict:
    """The ccxt market with exchange id `exchange_id` ("BTCUSDT") of `kind` "spot" or "perp"."""
    for m in markets.values():
        if m.get("id") != exchange_id:
            continue
        if kind == "spot" and m.get("spot"):
            return m
        if kind == "perp" and m.get("swap") and m.get("linear"):
            return m
    raise InstrumentError(f"{exchange_id}: no {'spot market' if kind == 'spot' else 'USDⓈ-M perpetual'} "
                          f"listed by the exchange ({len(markets)} markets loaded)")


class StaticInstrumentProvider(InstrumentProvider):
    """Holds instruments built once at start-up (the clients load markets before the node starts)."""

    def __init__(self, instruments: list[Instrument]):
        super().__init__()
        for inst in instruments:
            self.add(inst)

    async def load_all_async(self, filters: dict | None = None) -> None:
        return None

    async def load_ids_async(self, instrument_ids: list[InstrumentId], filters: dict | None = None) -> None:
        return None

    async def load_async(self, instrument_id: InstrumentId, filters: dict | None = None) -> None:
        return None
