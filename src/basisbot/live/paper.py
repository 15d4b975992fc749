"""Paper trading: live market data, simulated fills (`basisbot paper`), no credentials.

Execution is nautilus' sandbox (`SandboxExecutionClient`: a `SimulatedExchange` fed by the live quotes of each
venue), one per venue: BINANCE_SPOT (CASH, `backtest.spot_balance_usdt`) and BINANCE_PERP (MARGIN USDT,
`backtest.perp_balance_usdt`, leverage 1 at the account with margin_init = 1/leverage on the instrument, which is
the standard margin model's result). What the sandbox does not simulate comes from the backtest's own modules,
plugged into the sandbox's exchanges:

- `PerpMarginModule` + `SpotCollateralModule` (isolated wallets, Binance's liquidation price, margin requests on
  `ADJUST_MARGIN_ENDPOINT` with transfers from the simulated spot account, `PerpMarginState` / `Liquidated`);
- `LiveFundingModule`: at each settlement the exchange announces (next funding time of the live stream), every open
  paper position pays or receives -qty x mark x rate with the rate the exchange SETTLED (read from its public funding
  rate history a few seconds after the settlement; the last prediction if that read fails). Published as a
  `FundingSettled` too, so the journal books paper settlements the same way.

The paper node subscribes the perp's quotes as well (the matching engine fills perp orders at the live perp touch).
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.execution import SandboxExecutionClient
from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Money

from basisbot.core.carry import funding_payment
from basisbot.core.units import NS
from basisbot.live.session import VenueSession
from basisbot.nautilus.messages import FUNDING_SETTLED_TOPIC, FundingSettled
from basisbot.nautilus.perp_simulation import (
    USDT,
    FundingRow,
    PerpLedger,
    PerpMarginModule,
    PerpSymbol,
    SpotCollateralModule,
)


class LiveFundingModule(SimulationModule):
    """Settles funding on the paper perp account at the live exchange's own settlement times."""

    def __init__(self, ledger: PerpLedger, session: VenueSession, loop: asyncio.AbstractEventLoop,
                 unified: dict[str, str], settle_delay_s: float = 2.0):
        super().__init__(SimulationModuleConfig())
        self.ledger = ledger
        self.session = session
        self._loop = loop
        self._unified = unified  # exchange id -> ccxt symbol
        self._delay = settle_delay_s
        self._next: dict[str, int] = {}  # symbol -> next settlement (local ns)
        self._venue_next: dict[str, int] = {}  # symbol -> next settlement (venue ms)
        self._predicted: dict[str, float] = {}
        self._timers: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self._settled: set[tuple[str, int]] = set()

    def register_venue(self, exchange) -> None:
        super().register_venue(exchange)
        self.ledger.perp_exchange = exchange
        for spec in self.ledger.symbols.values():
            iid = spec.instrument_id
            self.msgbus.subscribe(f"data.funding_rates.{iid.venue}.{iid.symbol}", self._on_funding)

    def process(self, ts_now: int) -> None:
        pass

    def _on_funding(self, update: FundingRateUpdate) -> None:
        spec = self.ledger.by_instrument.get(update.instrument_id)
        if spec is None:
            return
        sym = spec.symbol
        self._predicted[sym] = float(update.rate)
        nxt = update.next_funding_ns
        if not nxt or nxt == self._next.get(sym):
            return
        prev = self._next.get(sym)
        self._next[sym] = nxt
        self._venue_next[sym] = self.session.time.to_venue_ms(nxt)
        if prev is not None and prev < nxt and (sym, prev) not in self._settled and prev <= self.clock.timestamp_ns():
            # the previous settlement passed while its timer was pending or lost (clock jump): settle it now
            self._schedule(sym, prev, 0.0)
        delay = max(0.0, (nxt - self.clock.timestamp_ns()) / NS) + self._delay
        self._schedule(sym, nxt, delay)

    def _schedule(self, sym: str, settle_ns: int, delay: float) -> None:
        if (sym, settle_ns) in self._timers:
            return
        venue_ms = self.session.time.to_venue_ms(settle_ns)
        self._timers[(sym, settle_ns)] = self._loop.call_later(
            delay, lambda: asyncio.ensure_future(self._settle(sym, settle_ns, venue_ms)))

    async def _settle(self, sym: str, settle_ns: int, venue_ms: int) -> None:
        if (sym, settle_ns) in self._settled:
            return
        self._settled.add((sym, settle_ns))
        rate = self._predicted.get(sym)
        mark_px = None
        with contextlib.suppress(Exception):
            hist = await self.session.perp.fetch_funding_rate_history(self._unified[sym], venue_ms - 60_000, 5)
            near = min(hist, key=lambda h: abs(int(h["timestamp"]) - venue_ms)) if hist else None
            if near is not None and abs(int(near["timestamp"]) - venue_ms) <= 60_000:
                rate = float(near["fundingRate"])
                mp = (near.get("info") or {}).get("markPrice")
                mark_px = float(mp) if mp not in (None, "") else None
        spec = self.ledger.symbols[sym]
        qty = sum(p.signed_qty for p in self.cache.positions_open(None, spec.instrument_id))
        self.ledger.settlements_seen[sym] += 1
        if qty == 0.0 or rate is None:
            return
        if mark_px is None:
            mark = self.cache.mark_price(spec.instrument_id)
            if mark is None:
                return
            mark_px = mark.value.as_double()
        payment = funding_payment(qty, mark_px, rate)
        self.exchange.adjust_account(Money(payment, USDT))
        book = self.ledger.books[sym]
        if spec.mode == "isolated" and book.side != 0:
            book.wallet += payment
        book.changed()
        self.ledger.funding.append(FundingRow(settle_ns, sym, rate, mark_px, qty, payment))
        self.msgbus.publish(FUNDING_SETTLED_TOPIC, FundingSettled(
            symbol=sym, settlement_ts_ns=settle_ns, rate=rate, payment=payment, source="paper", position_qty=qty,
            mark_price=mark_px))

    def log_diagnostics(self, logger) -> None:
        logger.info(f"Paper funding settlements applied: {len(self.ledger.funding)}")

    def reset(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()


class PaperSandboxClient(SandboxExecutionClient):
    """The nautilus sandbox with simulation modules plugged into its exchange."""

    def add_modules(self, modules: list[SimulationModule], portfolio) -> None:
        for module in modules:
            module.register_base(portfolio=portfolio, msgbus=self._msgbus, cache=self._cache,
                                 clock=self._clock)
            module.register_venue(self.exchange)
            self.exchange.modules.append(module)


class PaperQuotesConfig(ActorConfig, frozen=True):
    instrument_ids: list[str] = []


class PaperQuotes(Actor):
    """Subscribes the live quotes the sandbox matching engines need (the strategy only asks for spot quotes)."""

    def __init__(self, config: PaperQuotesConfig):
        super().__init__(config)

    def on_start(self) -> None:
        for iid in self.config.instrument_ids:
            self.subscribe_quote_ticks(InstrumentId.from_str(iid))


def paper_clients(loop, kernel, session: VenueSession, spot_insts: dict, perp_insts: dict, symbols: dict,
                  spot_balance: float, perp_balance: float, brackets: dict) -> tuple[list, PerpLedger]:
    """Two sandbox execution clients (spot CASH, perp MARGIN) with the margin and funding modules."""
    from basisbot.nautilus.instruments import perp_venue, spot_venue

    profile = session.hooks.profile
    spot_cfg = SandboxExecutionClientConfig(
        venue=spot_venue(profile).value, starting_balances=[f"{spot_balance} USDT"], base_currency=None,
        oms_type="NETTING", account_type="CASH", bar_execution=False, trade_execution=False)
    perp_cfg = SandboxExecutionClientConfig(
        venue=perp_venue(profile).value, starting_balances=[f"{perp_balance} USDT"], base_currency="USDT",
        oms_type="NETTING", account_type="MARGIN", default_leverage=Decimal(1), bar_execution=False,
        trade_execution=False)
    kw = dict(loop=loop, portfolio=kernel.portfolio, msgbus=kernel.msgbus, cache=kernel.cache, clock=kernel.clock)
    spot = PaperSandboxClient(config=spot_cfg, **kw)
    perp = PaperSandboxClient(config=perp_cfg, **kw)
    ledger = PerpLedger([PerpSymbol(s, perp_insts[s].id, brackets[s], cfg.leverage, cfg.margin_mode)
                         for s, cfg in symbols.items()], liquidation_price=profile.liquidation_price,
                        unified=profile.unified_account)
    spot.add_modules([SpotCollateralModule(ledger)], kernel.portfolio)
    unified = {s: session.perp_symbol(perp_insts[s].raw_symbol.value) for s in symbols}
    perp.add_modules([LiveFundingModule(ledger, session, loop, unified), PerpMarginModule(ledger)], kernel.portfolio)
    return [spot, perp], ledger


__all__ = ["LiveFundingModule", "PaperQuotes", "PaperQuotesConfig", "PaperSandboxClient", "paper_clients"]
