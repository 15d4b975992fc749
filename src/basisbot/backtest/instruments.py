"""Nautilus instruments for the two backtest venues, from the bundled venue reference data."""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CryptoPerpetual, CurrencyPair
from nautilus_trader.model.objects import Currency, Money, Price, Quantity

from basisbot import reference
from basisbot.margin import BracketTable

SPOT_VENUE = Venue("BINANCE_SPOT")
PERP_VENUE = Venue("BINANCE_PERP")


def spot_id(symbol: str) -> InstrumentId:
    return InstrumentId(Symbol(symbol), SPOT_VENUE)


def perp_id(symbol: str) -> InstrumentId:
    return InstrumentId(Symbol(f"{symbol}-PERP"), PERP_VENUE)


def _currency(code: str) -> Currency:
    try:
        return Currency.from_str(code)
    except Exception:  # an asset nautilus does not list: register it as a crypto currency with 8 decimals
        from nautilus_trader.model.enums import CurrencyType

        cur = Currency(code, 8, 0, code, CurrencyType.CRYPTO)
        Currency.register(cur)
        return cur


def make_spot(symbol: str, taker_fee: float, maker_fee: float) -> CurrencyPair:
    spec = reference.spot_spec(symbol)
    return CurrencyPair(
        instrument_id=spot_id(symbol),
        raw_symbol=Symbol(symbol),
        base_currency=_currency(spec.base),
        quote_currency=USDT,
        price_precision=spec.price_precision,
        size_precision=spec.size_precision,
        price_increment=Price(spec.tick_size, spec.price_precision),
        size_increment=Quantity(spec.step_size, spec.size_precision),
        min_quantity=Quantity(spec.min_qty, spec.size_precision),
        min_notional=Money(spec.min_notional, USDT),
        maker_fee=Decimal(str(maker_fee)),
        taker_fee=Decimal(str(taker_fee)),
        ts_event=0,
        ts_init=0,
    )


def make_perp(symbol: str, leverage: int, table: BracketTable, taker_fee: float, maker_fee: float) -> CryptoPerpetual:
    """margin_init = 1/leverage and margin_maint = the first bracket's rate, used with nautilus' *standard* margin
    model (notional × rate) — the default leveraged model would divide by leverage a second time."""
    spec = reference.perp_specs()[symbol]
    return CryptoPerpetual(
        instrument_id=perp_id(symbol),
        raw_symbol=Symbol(symbol),
        base_currency=_currency(spec.base),
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=spec.price_precision,
        size_precision=spec.size_precision,
        price_increment=Price(spec.tick_size, spec.price_precision),
        size_increment=Quantity(spec.step_size, spec.size_precision),
        min_quantity=Quantity(spec.min_qty, spec.size_precision),
        max_quantity=Quantity(spec.max_qty, spec.size_precision),
        min_notional=Money(spec.min_notional, USDT),
        margin_init=Decimal(1) / Decimal(leverage),
        margin_maint=Decimal(str(table.brackets[0].mmr)),
        maker_fee=Decimal(str(maker_fee)),
        taker_fee=Decimal(str(taker_fee)),
        ts_event=0,
        ts_init=0,
    )
