"""Messages between the strategy and whatever venue it runs against (simulation modules or the live exec client).

The strategy never calls a venue directly for margin operations: it sends these on the nautilus message bus, and the
world it runs in (backtest modules, live ccxt.pro execution client) registers the endpoints. Both worlds publish
`PerpMarginState` on `margin_topic(symbol)` whenever the perp leg's margin changes. A live or paper execution client
publishes `FundingSettled` on `FUNDING_SETTLED_TOPIC` for the journal to reconcile against the strategy's prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

ADJUST_MARGIN_ENDPOINT = "basisbot.core.margin.adjust"
FUNDING_SETTLED_TOPIC = "basisbot.funding.settled"
# an execution client answers with the `FundingSettled` it has published, to a callback: the journal reads those of
# the connection (the settlements that fell while the node was down) when it starts, before a strategy's restore
FUNDING_PUBLISHED_ENDPOINT = "basisbot.funding.published"


@dataclass(frozen=True, slots=True)
class FundingSettled:
    """A settled funding payment as the exchange booked it (live: from the income history, FUNDING_FEE).

    `payment` is signed as the exchange books it (positive = received). `position_qty` (signed, short < 0) and
    `mark_price` are optional: when the execution client knows them for T they fill in what the journal lacks."""

    symbol: str
    settlement_ts_ns: int
    rate: float
    payment: float
    source: str  # e.g. "binance:income" or "sim"
    position_qty: float | None = None
    mark_price: float | None = None


def margin_topic(symbol: str) -> str:
    return f"basisbot.core.margin.{symbol}"


def liquidation_topic(symbol: str) -> str:
    return f"basisbot.liquidation.{symbol}"


@dataclass(frozen=True, slots=True)
class PerpMarginState:
    """The perp leg's margin as the venue holds it. `wallet` is the isolated wallet (isolated mode) or the
    wallet available to this position (cross mode: account wallet less other positions' needs)."""

    symbol: str
    mode: str  # "isolated" | "cross"
    side: int  # +1 long, -1 short, 0 flat
    qty: float  # > 0 when not flat
    entry_price: float
    wallet: float
    perp_free: float  # free balance left in the perp account outside this position's wallet
    spot_free: float  # free USDT on the spot account (collateral that can be transferred)
    ts_ns: int


@dataclass(frozen=True, slots=True)
class AdjustMarginRequest:
    """Add `amount` USDT to the isolated wallet of `symbol`, first from free perp balance, then (if `from_spot`)
    by transferring the rest from the spot account. Negative amounts withdraw margin back to the perp wallet."""

    symbol: str
    amount: float
    from_spot: bool
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class MarginAdjusted:
    symbol: str
    requested: float
    added_from_perp: float
    transferred_from_spot: float
    ok: bool
    message: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Liquidated:
    """The venue closed (part of) the perp leg on its own. `kind`: "liquidation" (margin exhausted: the whole
    position and its isolated wallet), "adl" (auto-deleveraging: part or all of a profitable position taken by a
    liquidated counterparty) or "insurance" (taken over by the insurance fund). `qty` is what was closed."""

    symbol: str
    side: int
    qty: float
    price: float
    wallet_lost: float
    ts_ns: int
    kind: str = "liquidation"


JOURNAL_TOPIC = "basisbot.journal.writer"
RESTORE_ENDPOINT = "basisbot.journal.writer.restore"


def settlements_held_topic(symbol: str) -> str:
    """The journal's count of settlements held (`RestoreRequest`'s "settlements_held"), published again when a
    settlement that fell before the node started reaches the journal after the strategies restored."""
    return f"basisbot.journal.writer.held.{symbol}"


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """Something the strategy decided or saw that the journal keeps (the strategy publishes, a journal actor writes).

    kind: "decision" (action, reason), "guard" (step, distance, liquidation_price, mark, add_margin, reduce_fraction,
    reason), "prediction" (settlement_ns, predicted_rate, interval_minutes, position_qty, mark), "leg" (pair_id,
    intent, event, detail, status), "booking" (settlement_ns, predicted_rate, position_qty).
    """

    kind: str
    symbol: str
    ts_ns: int
    data: dict


@dataclass(frozen=True, slots=True)
class RestoreRequest:
    """Sent by a starting strategy on RESTORE_ENDPOINT; the journal calls `reply(dict | None)` with what it kept for the
    symbol: {"phase", "settlements_held", "pair": {intent, targets, filled, status, history} | None}."""

    symbol: str
    reply: object


PORTFOLIO_ENDPOINT = "basisbot.core.portfolio.bid"


@dataclass(frozen=True, slots=True)
class BudgetRequest:
    """Sent by a strategy on PORTFOLIO_ENDPOINT (when a capital budget is configured) with its current bid
    (`basisbot.core.portfolio.Bid`); the budget calls `reply(allowed: bool, scale: float)`: whether the symbol may hold
    its carry now, and the notional scale (1, or the equity growth with compounding)."""

    bid: object
    reply: object


CONTROL_TOPIC = "basisbot.control"


@dataclass(frozen=True, slots=True)
class ControlCommand:
    """An operator's command (`basisbot.core.control`: pause | resume | flatten | status), published on CONTROL_TOPIC.
    Each strategy whose symbol is in `symbols` (empty: every symbol) applies it and calls `reply(dict)` with its
    answer: {"symbol", "command", "answer", "state", "phase", "spot_qty", "perp_qty", "pair"}. `origin`: cli | page |
    telegram | risk."""

    command: str
    symbols: tuple[str, ...]
    origin: str
    reason: str
    ts_ns: int
    reply: object = None


RISK_ENDPOINT = "basisbot.risk.entry"


@dataclass(frozen=True, slots=True)
class EntryCheck:
    """Sent by a strategy on RISK_ENDPOINT (when `[risk]` is configured) before a new entry of `notional_usdt` (both
    legs at market); the risk actor calls `reply(refusal: str | None)`."""

    symbol: str
    notional_usdt: float
    reply: object
