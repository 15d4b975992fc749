"""The capital budget as a nautilus actor, shared by backtest, paper and live: strategies send their bids
(`BudgetRequest` on `PORTFOLIO_ENDPOINT`), the budget ranks the latest bid of every symbol (`basisbot.core.portfolio`) and
answers whether the asking symbol may hold its carry, and with which notional scale (compounding: current equity ÷
starting equity, from the accounts)."""

from __future__ import annotations

import dataclasses

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.objects import Currency

from basisbot.core import portfolio
from basisbot.nautilus.messages import PORTFOLIO_ENDPOINT, BudgetRequest

USDT = Currency.from_str("USDT")


class PortfolioBudgetConfig(ActorConfig, frozen=True):
    capital_usdt: float
    max_symbols: int | None = None
    hysteresis: float = 0.25
    compounding: bool = False
    venues: list[str] = []


class PortfolioBudgetActor(Actor):
    def __init__(self, config: PortfolioBudgetConfig):
        super().__init__(config)
        self.budget = portfolio.Budget(config.capital_usdt, config.max_symbols, config.hysteresis)
        self.bids: dict[str, portfolio.Bid] = {}
        self._entering: set[str] = set()
        self._start_equity: float | None = None
        self.allocations: list[tuple[int, dict[str, bool]]] = []  # each change of the allowed set (for reports)

    def on_start(self) -> None:
        self.msgbus.register(PORTFOLIO_ENDPOINT, self._on_request)
        self._start_equity = self._equity()

    def _equity(self) -> float | None:
        """USDT of both accounts, the spot assets at their last prices and the perps' unrealised PnL at the mark (None
        when a venue's account is not there yet)."""
        total = 0.0
        for v in self.config.venues:
            venue = Venue(v)
            acct = self.portfolio.account(venue)
            if acct is None:
                return None
            bal = acct.balance_total(USDT)
            total += bal.as_double() if bal is not None else 0.0
            for money in (self.portfolio.net_exposures(venue) or {}).values():
                if acct.is_cash_account and money.currency == USDT:
                    total += money.as_double()  # spot assets held, valued at their last price
            if not acct.is_cash_account:
                total += self._perp_upnl_at_mark(venue)
        return total

    def _perp_upnl_at_mark(self, venue: Venue) -> float:
        """The perps' unrealised PnL at the MARK price (what the venue values them at; never the last trade), from
        the open positions as they are now (not a portfolio figure refreshed only on some price events)."""
        upnl = 0.0
        for pos in self.cache.positions_open(venue):
            mp = self.cache.mark_price(pos.instrument_id)
            px = mp.value.as_double() if mp is not None else pos.avg_px_open
            upnl += pos.signed_qty * (px - pos.avg_px_open)
        return upnl

    def _held(self, bid: portfolio.Bid) -> bool:
        """Held = the perp position is open at the venue, or the symbol was just let in and is entering."""
        if bid.instrument:
            if self.portfolio.net_position(InstrumentId.from_str(bid.instrument)) != 0:
                return True
        return bid.symbol in self._entering

    def _on_request(self, req: BudgetRequest) -> None:
        self._entering.discard(req.bid.symbol)  # a new bid: whatever it was let in for has happened or not
        self.bids[req.bid.symbol] = req.bid
        bids = [dataclasses.replace(b, held=self._held(b)) for b in self.bids.values()]
        allowed = portfolio.allocate(bids, self.budget)
        if allowed.get(req.bid.symbol) and not self._held(req.bid):
            self._entering.add(req.bid.symbol)  # reserved until its next bid or its position shows
        if not self.allocations or self.allocations[-1][1] != allowed:
            self.allocations.append((self.clock.timestamp_ns(), allowed))
        scale = 1.0
        if self.config.compounding and self._start_equity:
            eq = self._equity()
            if eq:
                scale = max(eq / self._start_equity, 0.0)
        req.reply(allowed.get(req.bid.symbol, False), scale)
