"""The venue's core: replay-driven matching, fills, funding settlements, liquidations, transfers.

Everything runs on the event loop's thread; REST handlers call :meth:`Venue.sync` first so the state they read or
change is the state at the current replay time. The engine steps through the price paths vertex by vertex (see
``prices.py``): between two steps every price is linear, so resting orders and liquidation prices are checked
exactly, with the crossing time interpolated.

User-stream events are handed to ``user_listeners`` (``fn(account, payload)`` with account "spot" or "futures")
as they happen; public pushes that are not periodic (forceOrder) go to ``public_listeners`` (``fn(stream, payload)``).

The venue's parts: `order_matching` (order entry and matching), `funding_liquidation` (funding and liquidations),
`account_operations` (account settings, transfers, state views).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from basisbot.sim.config import SimConfig
from basisbot.sim.engine import errors
from basisbot.sim.engine.account_operations import AccountOperations
from basisbot.sim.engine.accounts import FuturesAccount, SpotAccount
from basisbot.sim.engine.book import Quote, crossing_time, make_quote, resting_fills
from basisbot.sim.engine.clock import ReplayClock
from basisbot.sim.engine.faults import FaultState
from basisbot.sim.engine.funding_liquidation import FundingAndLiquidation
from basisbot.sim.engine.markets import Market
from basisbot.sim.engine.order_matching import FUT, SPOT, OrderMatching
from basisbot.sim.engine.orders import Order, Trade
from basisbot.sim.engine.prices import SymbolPaths

_ORDER_EVENTS = ("executionReport", "ORDER_TRADE_UPDATE")


class Venue(OrderMatching, FundingAndLiquidation, AccountOperations):
    """The venue's state and replay engine; orders, funding and liquidations, and account operations are its parts."""

    def __init__(self, cfg: SimConfig, markets: dict[str, Market], paths: dict[str, SymbolPaths],
                 clock: ReplayClock, faults: FaultState):
        self.cfg = cfg
        self.markets = markets
        self.paths = paths
        self.clock = clock
        self.faults = faults
        self.t = clock.now_ms()
        self._sym_t = {s: self.t for s in markets}
        self.spot = SpotAccount(cfg.spot_balances)
        self.fut = FuturesAccount(cfg.futures_usdt, markets, cfg.default_leverage, cfg.default_margin_type)
        self.orders: dict[str, dict[int, Order]] = {SPOT: {}, FUT: {}}
        self.open_orders: dict[str, dict[int, Order]] = {SPOT: {}, FUT: {}}
        self.client_ids: dict[str, dict[str, int]] = {SPOT: {}, FUT: {}}
        self.trades: dict[str, list[Trade]] = {SPOT: [], FUT: []}
        self._order_ids = {SPOT: itertools.count(1_000_001), FUT: itertools.count(8_100_000_001)}
        self._trade_ids = {SPOT: itertools.count(500_000_001), FUT: itertools.count(3_000_000_001)}
        self._tran_ids = itertools.count(160_000_000_001)
        self.transfers: list[dict] = []
        self.funding_log: list[dict] = []
        self.liquidations: list[dict] = []
        self.user_listeners: list[Callable[[str, dict], None]] = []
        self.public_listeners: list[Callable[[str, dict], None]] = []
        self._held: dict[str, list[dict]] = {SPOT: [], FUT: []}  # order updates held back by `delay_fill_push`

    # ------------------------------------------------------------------------------------------------------------
    # time and prices
    # ------------------------------------------------------------------------------------------------------------
    def sync(self) -> int:
        self.advance_to(self.clock.now_ms())
        return self.t

    def market(self, symbol: str | None) -> Market:
        if not symbol:
            raise errors.mandatory("symbol")
        m = self.markets.get(symbol.upper())
        if m is None:
            raise errors.invalid_symbol()
        return m

    def mark(self, symbol: str, t: int | None = None) -> float:
        return self.paths[symbol].mark(self.t if t is None else t)

    def marks(self, t: int | None = None) -> dict[str, float]:
        return {s: self.mark(s, t) for s in self.markets}

    def spot_quote(self, symbol: str, t: int | None = None) -> Quote:
        p = self.paths[symbol].spot(self.t if t is None else t)
        return make_quote(p, self.markets[symbol].spot_tick, self.cfg.book_qty)

    def perp_quote(self, symbol: str, t: int | None = None) -> Quote:
        p = self.paths[symbol].perp(self.t if t is None else t)
        return make_quote(p, self.markets[symbol].perp_tick, self.cfg.book_qty)

    def open_order_im(self) -> float:
        return sum(o.reserved for o in self.open_orders[FUT].values())

    def available(self) -> float:
        return self.fut.available(self.marks(), self.open_order_im())

    # ------------------------------------------------------------------------------------------------------------
    # the engine
    # ------------------------------------------------------------------------------------------------------------
    def advance_to(self, target: int) -> None:
        target = min(int(target), self.clock.end_ms)
        if target <= self.t:
            return
        events: list[tuple[int, int, str, int]] = []
        for sym, p in self.paths.items():
            for tv in p.vertex_times(self.t, target):
                events.append((int(tv), 0, sym, -1))
            for i in p.settlements_between(self.t, target):
                events.append((int(p.fund_ts[i]), 1, sym, i))
        events.sort()
        for tv, kind, sym, idx in events:
            self._step(sym, tv)
            if kind == 1:
                self.t = max(self.t, tv)
                self._settle_funding(sym, idx, tv)
        for sym in self.paths:
            self._step(sym, target)
        self.t = target

    def _step(self, sym: str, t1: int) -> None:
        """Examine (t0, t1] of one symbol, the path being linear on it."""
        t0 = self._sym_t[sym]
        if t1 <= t0:
            return
        self._sym_t[sym] = t1
        p = self.paths[sym]
        # resting orders
        if self.open_orders[SPOT] and p.spot_is_open(t1):
            s0, s1 = p.spot(t0), p.spot(t1)
            for o in [o for o in self.open_orders[SPOT].values() if o.symbol == sym and not o.hold_remaining]:
                if o.type in ("LIMIT", "LIMIT_MAKER") and resting_fills(o.side, o.price, s1):
                    tc = crossing_time(t0, s0, t1, s1, o.price)
                    self._match(o, o.price, maker=True, t=tc)
        if self.open_orders[FUT]:
            f0, f1 = p.perp(t0), p.perp(t1)
            for o in [o for o in self.open_orders[FUT].values() if o.symbol == sym and not o.hold_remaining]:
                if o.type == "LIMIT" and resting_fills(o.side, o.price, f1):
                    tc = crossing_time(t0, f0, t1, f1, o.price)
                    self._match(o, o.price, maker=True, t=tc)
        # liquidation
        pos = self.fut.positions[sym]
        if pos.qty:
            m0, m1 = p.mark(t0), p.mark(t1)
            if self.fut.isolated(sym):
                lp = self.fut.liquidation_price(sym, self.marks(t1))
                if lp > 0 and ((pos.side > 0 and m1 <= lp) or (pos.side < 0 and m1 >= lp)):
                    self._liquidate_isolated(sym, lp, crossing_time(t0, m0, t1, m1, lp))
            else:
                self._check_cross(t1)

    # ------------------------------------------------------------------------------------------------------------
    # events
    # ------------------------------------------------------------------------------------------------------------
    def emit(self, account: str, payload: dict) -> None:
        order_event = payload.get("e") in _ORDER_EVENTS
        if order_event and self._held[account]:
            self._held[account].append(payload)  # behind a held fill: the order's updates keep their order
            return
        if order_event:
            o = payload["o"] if payload["e"] == "ORDER_TRADE_UPDATE" else payload
            delay = self.faults.take_fill_push_delay(account, o.get("s")) if o.get("x") == "TRADE" else None
            if delay is not None:
                self._held[account].append(payload)
                asyncio.get_running_loop().call_later(delay / 1000, self._release_held, account)
                return
        self._deliver(account, payload)

    def _deliver(self, account: str, payload: dict) -> None:
        for fn in list(self.user_listeners):
            fn(account, payload)

    def _release_held(self, account: str) -> None:
        held, self._held[account] = self._held[account], []
        for payload in held:
            self._deliver(account, payload)

    def emit_public(self, stream: str, payload: dict) -> None:
        for fn in list(self.public_listeners):
            fn(stream, payload)
