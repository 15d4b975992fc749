"""`FundingSettled` on topic `basisbot.funding.settled`: one settled funding payment as the exchange booked it, for the
journal (`basisbot.nautilus.journal_actor.JournalActor`) to reconcile against the strategy's prediction of the same
settlement; `FUNDING_PUBLISHED_ENDPOINT`: where the journal asks, when it starts, for those published before. The
message type is the journal's own; a compatible copy is defined here only when the journal module is not installed,
so the execution client works without it.
"""

from __future__ import annotations

from dataclasses import dataclass

try:
    from basisbot.nautilus.journal_actor import FUNDING_PUBLISHED_ENDPOINT, FUNDING_SETTLED_TOPIC, FundingSettled
except ImportError:  # pragma: no cover - the journal is part of the project; this keeps the clients standalone
    FUNDING_SETTLED_TOPIC = "basisbot.funding.settled"
    FUNDING_PUBLISHED_ENDPOINT = "basisbot.funding.published"

    @dataclass(frozen=True, slots=True)
    class FundingSettled:  # type: ignore[no-redef]
        symbol: str
        settlement_ts_ns: int
        rate: float
        payment: float
        source: str
        position_qty: float | None = None
        mark_price: float | None = None


__all__ = ["FUNDING_PUBLISHED_ENDPOINT", "FUNDING_SETTLED_TOPIC", "FundingSettled"]
