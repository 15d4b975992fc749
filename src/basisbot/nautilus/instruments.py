"""Nautilus instruments and venue ids shared by backtest, live and paper: spot CurrencyPair and USDT-margined linear
CryptoPerpetual built from venue market rules (bundled snapshots, the operator's files, or the exchange's markets live).
Venue ids and the perp's symbol suffix come from the venue profile; quantities are in base units on every venue (a
contract venue's lot is its contract lot times the contract value, see `basisbot.venues.profile.MarketSpec`)."""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CryptoPerpetual, CurrencyPair
from nautilus_trader.model.objects import Currency, Money, Price, Quantity

from basisbot.core.margin import BracketTable
from basisbot.venues.profile import MarketSpec, VenueProfile


def spot_venue(profile: VenueProfile) -> Venue:
    return Venue(profile.spot_venue)


def perp_venue(profile: VenueProfile) -> Venue:
    return Venue(profile.perp_venue)


def spot_id(symbol: str, profile: VenueProfile) -> InstrumentId:
    return InstrumentId(Symbol(symbol), spot_venue(profile))


def perp_id(symbol: str, profile: VenueProfile) -> InstrumentId:
    return InstrumentId(Symbol(f"{symbol}{profile.perp_suffix}"), perp_venue(profile))


def currency(code: str) -> Currency:
    try:
        return Currency.from_str(code)
    except Exception:  # an asset nautilus does not list: register it as a crypto currency with 8 decimals
        from nautilus_trader.model.enums import CurrencyType

        cur = Currency(code, 8, 0, code, CurrencyType.CRYPTO)
        Currency.register(cur)
        return cur


def currency_pair(rules, taker_fee: float, maker_fee: float, ts_ns: int = 0, *, profile: VenueProfile
                  ) -> CurrencyPair:
    """The spot instrument from market rules (`MarketSpec` in backtests, the exchange's filters live), so both worlds
    build identical instruments."""
    pp, sp = rules.price_precision, rules.size_precision
    return CurrencyPair(
        instrument_id=spot_id(rules.symbol, profile),
        raw_symbol=Symbol(rules.symbol),
        base_currency=currency(rules.base),
        quote_currency=USDT,
        price_precision=pp,
        size_precision=sp,
        price_increment=Price(rules.tick_size, pp),
        size_increment=Quantity(rules.step_size, sp),
        **_limits(rules, pp, sp),
        maker_fee=Decimal(str(maker_fee)),
        taker_fee=Decimal(str(taker_fee)),
        ts_event=ts_ns,
        ts_init=ts_ns,
    )


def crypto_perpetual(rules, leverage: int, table: BracketTable, taker_fee: float, maker_fee: float,
                     ts_ns: int = 0, *, profile: VenueProfile) -> CryptoPerpetual:
    """The USDT-margined perpetual from market rules, sized in base units. margin_init = 1/leverage and margin_maint = the first tier's rate,
    used with nautilus' *standard* margin model (notional × rate) — the default leveraged model would divide by
    leverage a second time."""
    pp, sp = rules.price_precision, rules.size_precision
    return CryptoPerpetual(
        instrument_id=perp_id(rules.symbol, profile),
        raw_symbol=Symbol(rules.symbol),
        base_currency=currency(rules.base),
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=pp,
        size_precision=sp,
        price_increment=Price(rules.tick_size, pp),
        size_increment=Quantity(rules.step_size, sp),
        **_limits(rules, pp, sp),
        margin_init=Decimal(1) / Decimal(leverage),
        margin_maint=Decimal(str(table.base_mmr)),
        maker_fee=Decimal(str(maker_fee)),
        taker_fee=Decimal(str(taker_fee)),
        ts_event=ts_ns,
        ts_init=ts_ns,
    )


def _limits(rules, pp: int, sp: int) -> dict:
    """Quantity, notional and price limits; the optional ones only when the rules state them."""
    max_qty, min_notional = rules.max_qty, rules.min_notional
    min_price, max_price = getattr(rules, "min_price", None), getattr(rules, "max_price", None)
    return {
        "min_quantity": Quantity(rules.min_qty, sp),
        "max_quantity": Quantity(max_qty, sp) if max_qty else None,
        "min_notional": Money(min_notional, USDT) if min_notional else None,
        "min_price": Price(min_price, pp) if min_price else None,
        "max_price": Price(max_price, pp) if max_price else None,
    }


def make_spot(symbol: str, taker_fee: float, maker_fee: float, rules: MarketSpec | None = None, *,
              profile: VenueProfile) -> CurrencyPair:
    """The spot instrument; `rules` are the perp's market rules (the profile's bundled ones by default), the spot's
    derived by the profile."""
    perp_rules = rules if rules is not None else profile.bundled_perp_rules()[symbol]
    return currency_pair(profile.spot_rules(symbol, perp_rules), taker_fee, maker_fee, profile=profile)


def make_perp(symbol: str, leverage: int, table: BracketTable, taker_fee: float, maker_fee: float,
              rules: MarketSpec | None = None, *, profile: VenueProfile) -> CryptoPerpetual:
    """The perp instrument from `rules` (the profile's bundled ones by default)."""
    return crypto_perpetual(rules if rules is not None else profile.bundled_perp_rules()[symbol], leverage, table,
                            taker_fee, maker_fee, profile=profile)
