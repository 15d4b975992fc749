"""OKX's profile: spot and USDT-margined swaps in one unified trading account, funding by OKX's premium rule with a cap
per instrument, position tiers by size and OKX's isolated liquidation price, swaps in contracts (quantities in base
units: contracts × ctVal on the contract lot).

Facts and their sources are in this package's modules (`contracts`, `funding`, `tiers`, `fees`) and in
backtests/data/SOURCES.md ("OKX facts").
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from basisbot.venues.okx import contracts, fees, funding, tiers
from basisbot.venues.profile import AccountModel, FundingRules, MarketSpec, VenueFees, VenueProfile

# OKX spot (BTC-USDT, ...) trades in base units on a lot of 1e-8 (its instruments answer, instType=SPOT: lotSz
# 0.00000001 for the USDT pairs of the bundled symbols): the spot leg follows the swap's contract lot exactly.
SPOT_LOT = Decimal("0.00000001")


def _market_spec(c: contracts.ContractSpec) -> MarketSpec:
    """The swap's rules in base units: lot and minimum = contracts × ctVal; OKX sizes by contracts (no minimum
    notional); the maximum order size is not in the snapshot (none enforced)."""
    return MarketSpec(symbol=c.symbol, base=c.base, quote=c.quote, tick_size=c.tick_sz, step_size=c.step_base,
                      min_qty=c.min_base, max_qty=Decimal(0), min_notional=Decimal(0), contract_value=c.ct_val)


def perp_rules(markets_file: Path | None = None) -> dict[str, MarketSpec]:
    """The bundled contract snapshot overlaid by the operator's markets file (OKX's instruments answer or ccxt's
    markets), keyed by carry symbol."""
    return {s: _market_spec(c) for s, c in contracts.contract_specs(markets_file).items()}


def bundled_perp_rules() -> dict[str, MarketSpec]:
    return perp_rules(None)


def spot_rules(symbol: str, perp: MarketSpec) -> MarketSpec:
    """OKX spot: the swap's tick, a 1e-8 lot, no minimum notional beyond one lot."""
    return MarketSpec(symbol=symbol, base=perp.base, quote=perp.quote, tick_size=perp.tick_size, step_size=SPOT_LOT,
                      min_qty=SPOT_LOT, max_qty=Decimal(0), min_notional=Decimal(0))


def tier_tables(user_file: Path | None = None, markets_file: Path | None = None) -> dict[str, tiers.TierTable]:
    """The bundled position tiers overlaid by the operator's file (OKX's position-tiers answer or ccxt's
    fetch_market_leverage_tiers JSON; sizes converted with the contract values of the markets file, if any)."""
    return tiers.tier_tables(user_file, markets_file)


def bundled_tiers() -> dict[str, tiers.TierTable]:
    return tiers.tier_tables(None)


def liquidation_price(side: int, qty: float, entry: float, wallet: float, table: tiers.TierTable) -> float:
    """OKX's isolated liquidation price (`basisbot.venues.okx.tiers`), in floats like the rest of the margin math, with
    the table's closing taker fee (`TierTable.fee`: the run's `fees.perp_taker`, see `with_perp_taker_fee`)."""
    if not isinstance(table, tiers.TierTable):
        raise TypeError(f"OKX's liquidation price needs an OKX position-tier table, got {type(table).__name__}")
    return tiers.table_liquidation_price(side, float(qty), float(entry), float(wallet), table)


def with_perp_taker_fee(tables, fee: float) -> dict[str, tiers.TierTable]:
    """The tables with the run's perp taker fee as the closing fee of OKX's liquidation condition (a user's own fee
    level moves the liquidation price)."""
    return {s: t.with_fee(fee) for s, t in tables.items()}


def missing_rules_message(symbol: str, markets_file: Path | None) -> str:
    try:
        contracts.spec_for(symbol, markets_file)
    except contracts.OkxDataError as e:
        return str(e)
    return f"symbol {symbol}: no OKX contract spec"


def _spot_id(symbol: str) -> str:
    return contracts.spot_id(symbol)


OKX = VenueProfile(
    name="okx",
    display_name="OKX",
    spot_venue="OKX_SPOT",
    perp_venue="OKX_PERP",
    account=AccountModel.UNIFIED,
    fees=VenueFees(spot_maker=float(fees.SPOT_MAKER), spot_taker=float(fees.SPOT_TAKER),
                   perp_maker=float(fees.SWAP_MAKER), perp_taker=float(fees.SWAP_TAKER)),
    funding=FundingRules(
        rate_from_premium=funding.rate_from_premium,
        cap=funding.cap,
        default_interval_hours=8.0,
        max_interval_hours=funding.MAX_GAP_HOURS,
        predictor_lag_periods=funding.BUNDLED_DATA_LAG,
    ),
    liquidation_price=liquidation_price,
    tier_tables=tier_tables,
    bundled_tiers=bundled_tiers,
    perp_rules=perp_rules,
    bundled_perp_rules=bundled_perp_rules,
    spot_rules=spot_rules,
    missing_tiers_message=tiers.missing_tiers_message,
    missing_rules_message=missing_rules_message,
    spot_symbol=_spot_id,
    perp_symbol=contracts.inst_id,
    perp_suffix="-PERP",
    data_suffix="okx",
    tier_rows=tiers.table_rows,
    tiers_from_rows=tiers.table_from_rows,
    with_perp_taker_fee=with_perp_taker_fee,
    notes=("OKX facts: backtests/data/SOURCES.md 'OKX facts' (contracts, funding caps, position tiers, liquidation, "
           "fees)",),
)
