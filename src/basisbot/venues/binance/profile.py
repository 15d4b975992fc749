"""Binance's profile: spot and USDⓈ-M perpetuals in separate wallets, funding by its premium-and-interest rule, tiered
maintenance margin with `cum` and its isolated liquidation price, market rules from the bundled exchangeInfo capture.

Sources: Binance's funding-rate rules (interest 0.03%/day, premium clamp ±0.05% per interval), its leverage-bracket
and liquidation-price documentation, VIP0 fees (spot 0.1%/0.1%, USDⓈ-M maker 0.02%, taker 0.05%); see
backtests/data/SOURCES.md and README.md "Where venue facts come from".
"""

from __future__ import annotations

from functools import partial

from basisbot.core import margin
from basisbot.core.carry import clamped_premium_rate
from basisbot.venues.binance import reference
from basisbot.venues.profile import AccountModel, FundingRules, MarketSpec, VenueFees, VenueProfile

DAILY_INTEREST = 0.0003  # interest component of the funding rate: 0.03% a day, pro rata per interval
PREMIUM_CLAMP = 0.0005  # the interest-minus-premium term is clamped to ±0.05% per interval
FUNDING_CAP = 0.02  # |rate| cap the predictor applies (2% is the cap SOLUSDT hit in November 2022)


def _cap(symbol: str) -> float:
    return FUNDING_CAP


def _spot_rules(symbol: str, perp: MarketSpec) -> MarketSpec:
    return reference.spot_rules(perp)


def _tier_tables(user_file=None, markets_file=None):
    """Binance's brackets are by notional: the markets file plays no part."""
    return reference.bracket_tables(user_file)


def _same(symbol: str) -> str:
    return symbol


BINANCE = VenueProfile(
    name="binance",
    display_name="Binance",
    spot_venue="BINANCE_SPOT",
    perp_venue="BINANCE_PERP",
    account=AccountModel.SEPARATE_WALLETS,
    fees=VenueFees(spot_maker=0.001, spot_taker=0.001, perp_maker=0.0002, perp_taker=0.0005),
    funding=FundingRules(
        rate_from_premium=partial(clamped_premium_rate, daily_interest=DAILY_INTEREST, clamp=PREMIUM_CLAMP),
        cap=_cap,
        default_interval_hours=8.0,
        max_interval_hours=8.0,
    ),
    liquidation_price=margin.liquidation_price,
    tier_tables=_tier_tables,
    bundled_tiers=reference.brackets,
    perp_rules=reference.market_specs,
    bundled_perp_rules=reference.perp_specs,
    spot_rules=_spot_rules,
    missing_tiers_message=reference.missing_brackets_message,
    missing_rules_message=reference.missing_rules_message,
    spot_symbol=_same,
    perp_symbol=_same,
    perp_suffix="-PERP",
    data_suffix="binance",
)
