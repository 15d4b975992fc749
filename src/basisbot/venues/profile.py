"""The venue profile: everything about one exchange that the rest of basisbot must not hard-code.

A profile is a frozen value built once per exchange (``venues/<exchange>/profile.py``) and looked up by the
``[exchange] name`` of the config through :func:`basisbot.venues.get_profile`. The backtest wing, the nautilus
modules, the strategy, the journal, the config checks and the ops layer read venue facts only from here: venue ids,
the funding formula and its predictor inputs, the settlement-interval rules, maintenance tiers and the liquidation
price, market rules (lots, ticks, minimum notional, contract value), the account model, default fees and symbol
naming.

Pure: no nautilus, no ccxt, no I/O beyond reading the bundled reference files through each venue's reference module
(and an operator's own files when a path is passed in).

Quantities: every quantity a profile states (lot step, minimum and maximum size) is in BASE units, so that positions,
funding payments and trades read the same on every venue. A venue that trades contracts (OKX: 1 BTC-USDT-SWAP contract
= 0.01 BTC) states ``contract_value`` and its lot in base units (``lotSz × ctVal``); ``MarketSpec.contracts`` converts a
base quantity back to contracts for the venue's API.

Money math that is the same everywhere stays in :mod:`basisbot.core` (the core never imports venues); a profile
passes parameters to it or supplies the one formula that differs (the funding rule, the liquidation price).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from basisbot.core.brackets import BracketTable, bracket_rows
from basisbot.venues.binance.brackets_file import parse_brackets


class VenueDataError(ValueError):
    """A venue reference file (bundled or the operator's) is missing or malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Trading rules of one market, as the exchange's filters state them, in base units.

    OKX must supply: ``tick_size`` = ``tickSz``; ``step_size`` and ``min_qty`` = ``lotSz × ctVal`` and
    ``minSz × ctVal`` (base units); ``max_qty`` = ``maxMktSz × ctVal`` (or the limit-order maximum);
    ``contract_value`` = ``ctVal`` (``ctValCcy`` must be the base asset: linear USDT swaps only);
    ``min_notional`` 0 when the venue states none (OKX sizes by contracts, not by notional)."""

    symbol: str  # the carry symbol, exchange-neutral: BTCUSDT on every venue
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal  # base units (contracts × contract value on a contract venue)
    min_qty: Decimal  # base units
    max_qty: Decimal  # base units
    min_notional: Decimal
    liquidation_fee: Decimal = Decimal(0)
    contract_value: Decimal = Decimal(1)  # base units per contract; 1 where the venue trades the base asset itself

    @property
    def price_precision(self) -> int:
        return max(0, -self.tick_size.normalize().as_tuple().exponent)

    @property
    def size_precision(self) -> int:
        return max(0, -self.step_size.normalize().as_tuple().exponent)

    def contracts(self, base_qty: Decimal) -> Decimal:
        """The venue's contract count of a base quantity (exact; the quantity must be on the lot)."""
        return Decimal(base_qty) / self.contract_value


class AccountModel(enum.Enum):
    """How the venue holds the two legs' money."""

    # separate spot and futures wallets; margin for the perp is moved from spot by a transfer (Binance)
    SEPARATE_WALLETS = "separate_wallets"
    # one trading account: the spot holdings and the perp's margin draw on the same USDT, no transfer (OKX)
    UNIFIED = "unified"


@dataclass(frozen=True, slots=True)
class VenueFees:
    """Default fee rates (fractions of notional) of a regular user; the config's ``[fees]`` overrides each."""

    spot_maker: float
    spot_taker: float
    perp_maker: float
    perp_taker: float


@dataclass(frozen=True, slots=True)
class FundingRules:
    """How the venue sets the funding rate, and what a causal predictor needs to reproduce it.

    ``rate_from_premium(avg_premium, interval_hours)`` is the venue's formula applied to the average premium of the
    interval (the predictor feeds it the mark's premium over spot, as observed so far), BEFORE the cap; the
    predictor clamps its result to ±``cap(symbol)``."""

    # (average premium over the interval, interval hours) -> rate. Binance: F = P + clamp(I - P, ±0.05%), I =
    # 0.03%/day pro rata. OKX must supply its own (premium + clamp(interest - premium, ±0.05%) on its premium index).
    rate_from_premium: Callable[[float, float], float]
    # the symbol's |rate| cap per interval (Binance: 2% for the bundled symbols; OKX: per instrument, from its
    # public funding-rate answer's cap/floor or the bundled snapshot)
    cap: Callable[[str], float]
    # the interval assumed before the data states one (hours); intervals are always read per settlement from the data
    default_interval_hours: float = 8.0
    # the longest interval the venue ever uses: a longer silence in the settlements while bars exist is missing data
    max_interval_hours: float = 8.0
    # which closed funding period's premium the predictor reads: 0 = the current one (the rate is fixed from the
    # period it pays for: Binance), 1 or 2 = that many periods back (OKX's cross-period collection; 2 fits the
    # bundled OKX settlements, see basisbot.venues.okx.funding)
    predictor_lag_periods: int = 0


# (side +1 long / -1 short, qty in base units > 0, entry price, isolated wallet, tier table) -> liquidation price.
# The tier table is the venue's own: Binance's `BracketTable` by notional, OKX's `TierTable` by size; both offer the
# interface the margin math reads (`maintenance_at(qty, price)`, `base_mmr`, `leverage_limit(notional, price)`).
LiquidationPrice = Callable[[int, float, float, float, Any], float]


def _bracket_table_from_rows(symbol: str, rows: list[dict], source: str = "strategy config") -> BracketTable:
    return parse_brackets([{"symbol": symbol, "brackets": rows}], source=source)[symbol]


@dataclass(frozen=True)
class VenueProfile:
    """One exchange's facts. Every field says what a second venue (OKX) must supply."""

    # config key (``[exchange] name``) and the name shown to people; OKX: "okx", "OKX"
    name: str
    display_name: str
    # nautilus venue ids of the spot and the perp leg in backtests (OKX: "OKX_SPOT", "OKX_PERP"); live and paper use
    # the same ids so instruments, journals and reports name venues the same way in every world
    spot_venue: str
    perp_venue: str
    # how the money of the two legs is held: separate wallets with transfers (Binance), or one unified account (OKX)
    account: AccountModel
    # regular-user fees (OKX: its published spot and swap maker/taker rates of a regular user, with the source cited)
    fees: VenueFees
    # the funding formula and predictor inputs (see FundingRules)
    funding: FundingRules
    # the isolated liquidation price of a USDT-margined linear perp, given the symbol's tier table (Binance's with
    # `cum` is `basisbot.core.margin.liquidation_price`; OKX must supply its own, pinned by a hand-worked example)
    liquidation_price: LiquidationPrice
    # maintenance tiers: the bundled tables overlaid by the operator's file (the path, or None for bundled only; the
    # operator's markets file as `markets_file=` where the tiers are in contracts); a bad file raises
    # VenueDataError naming it. OKX: its position-tiers tables by size (`TierTable`), the operator's ccxt
    # fetch_market_leverage_tiers JSON or OKX's own position-tiers answer
    tier_tables: Callable[..., Mapping[str, Any]]
    # the bundled tables alone (the fallback when the operator's file is bad)
    bundled_tiers: Callable[[], Mapping[str, BracketTable]]
    # perp market rules: bundled snapshot overlaid by the operator's markets file (Binance's exchangeInfo; OKX's
    # instruments answer or ccxt's markets), keyed by carry symbol (BTCUSDT), quantities in base units
    perp_rules: Callable[[Path | None], Mapping[str, MarketSpec]]
    bundled_perp_rules: Callable[[], Mapping[str, MarketSpec]]
    # the spot market's rules from the perp's (where the venue's snapshot holds no spot rules) or from the venue's
    # own spot snapshot: (carry symbol, perp rules) -> spot rules
    spot_rules: Callable[[str, MarketSpec], MarketSpec]
    # what to tell the operator when a symbol has no tiers / no market rules: (symbol, operator's file or None)
    missing_tiers_message: Callable[[str, Path | None], str]
    missing_rules_message: Callable[[str, Path | None], str]
    # symbol naming: carry symbol (BTCUSDT) -> the venue's spot and perp ids (Binance: BTCUSDT / BTCUSDT; OKX:
    # BTC-USDT / BTC-USDT-SWAP) and ccxt's unified symbols (BTC/USDT, BTC/USDT:USDT)
    spot_symbol: Callable[[str], str]
    perp_symbol: Callable[[str], str]
    # the suffix of the perp instrument's nautilus symbol (BTCUSDT-PERP.BINANCE_PERP)
    perp_suffix: str = "-PERP"
    # data file naming in the bundled layout: the column suffix of prices (``close_perp_binance``) and the folder
    data_suffix: str = ""
    # a tier table as plain rows for a strategy config (a nautilus config holds only plain data), and back
    tier_rows: Callable[[Any], list[dict]] = bracket_rows
    tiers_from_rows: Callable[[str, list[dict]], Any] = _bracket_table_from_rows
    # the tables of a run priced with its configured perp taker fee, where the venue's liquidation condition counts
    # the fee of closing (OKX: maintenance margin + taker fee); None where the tables do not depend on fees (Binance)
    with_perp_taker_fee: Callable[[Mapping[str, Any], float], Mapping[str, Any]] | None = None
    # operator-facing source notes, e.g. where the bundled facts come from (shown by `config check`)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def unified_account(self) -> bool:
        return self.account is AccountModel.UNIFIED

    @property
    def venues(self) -> tuple[str, str]:
        """(spot venue id, perp venue id)."""
        return self.spot_venue, self.perp_venue


def ccxt_spot(symbol: str, quote: str = "USDT") -> str:
    """ccxt's unified spot symbol of a carry symbol: BTCUSDT -> BTC/USDT."""
    return f"{base_of(symbol, quote)}/{quote}"


def ccxt_perp(symbol: str, quote: str = "USDT") -> str:
    """ccxt's unified linear-swap symbol of a carry symbol: BTCUSDT -> BTC/USDT:USDT."""
    return f"{base_of(symbol, quote)}/{quote}:{quote}"


def base_of(symbol: str, quote: str = "USDT") -> str:
    """The base asset of a carry symbol: BTCUSDT -> BTC (the quote must end the symbol)."""
    if not symbol.endswith(quote) or len(symbol) == len(quote):
        raise ValueError(f"symbol {symbol!r}: expected <BASE>{quote}, e.g. BTC{quote}")
    return symbol[: -len(quote)]


def carry_symbol(unified_or_id: str) -> str:
    """The carry symbol of a ccxt unified symbol or a venue id: BTC/USDT:USDT, BTC-USDT-SWAP, BTCUSDT -> BTCUSDT."""
    s = unified_or_id.split(":")[0]
    for suffix in ("-SWAP",):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
    return s.replace("/", "").replace("-", "")
