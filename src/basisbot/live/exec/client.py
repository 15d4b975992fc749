"""Live execution on ccxt (REST for commands) and ccxt.pro (user streams for events), one client per venue.

`CcxtExecutionClient(kind="spot")`: the venue's spot (BINANCE_SPOT, OKX_SPOT), CASH account (USDT and base-asset
balances). `CcxtExecutionClient(kind="perp")`: its perp (BINANCE_PERP, OKX_PERP), MARGIN account in USDT, NETTING
positions; it also serves the strategy's margin requests and publishes what the strategy's guard and the journal
need. Where the exchanges differ, the session's venue hooks (`basisbot.live.venue_hooks`) decide; quantities are in
base units on both venues (an OKX swap's contracts × ctVal, exact).

This module holds the client's state and lifecycle (connect, disconnect); each concern is a part of the client in its
own module, as nautilus' adapters layer theirs:

| module | concern |
|---|---|
| `exec/orders` | order commands, idempotent sends, order and trade updates |
| `exec/user_streams` | ccxt.pro user streams, reconnect and resync, polling fallback |
| `exec/account` | account balances and positions |
| `exec/margin` | margin mode and leverage, margin requests, margin state, liquidations |
| `exec/funding` | funding income after each settlement |
| `exec/reports` | reconciliation reports for a restarted node |
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.model.identifiers import AccountId, ClientId, Venue
from nautilus_trader.model.instruments import Instrument

from basisbot.config.schema import LiveSettings
from basisbot.live.exec.account import AccountState, PerpPosition
from basisbot.live.exec.funding import FundingIncome
from basisbot.live.exec.margin import MarginOperations
from basisbot.live.exec.orders import OrderCommands, OrderTrack, _dec
from basisbot.live.exec.reports import ReconciliationReports
from basisbot.live.exec.user_streams import UserStreams
from basisbot.live.instruments import StaticInstrumentProvider
from basisbot.live.session import VenueSession
from basisbot.live.venue_hooks.base import ONE
from basisbot.nautilus.messages import ADJUST_MARGIN_ENDPOINT, FUNDING_PUBLISHED_ENDPOINT, Liquidated, MarginAdjusted

LIVE = LiveSettings()  # the [live] defaults


@dataclass
class ExecOptions:
    reconnect_max_s: float = LIVE.reconnect_max_s
    reconnect_initial_s: float = 0.5
    poll_interval_s: float = LIVE.poll_interval_s
    recv_window_ms: int = 5000  # sent with every signed request; bounds how late an order can still execute
    lookup_margin_s: float = 1.0  # after recvWindow + this, "order does not exist" is definitive
    refresh_debounce_s: float = 0.05
    booking_delay_s: float = 3.0  # read the income history this long after a settlement (venue time)
    funding_poll_s: float = 60.0
    funding_lookback_h: float = 9.0  # at connect: publish payments of the last settlement (journal dedupes)
    trades_fallback_s: float = 1.0  # a fill known from an order update but not seen as a trade: query after this
    # a spot balance read waits for our orders in flight (their fills may already be in it), for this long at most:
    # an order the venue has not settled by then no longer holds the balances back
    balance_hold_max_s: float = 30.0
    # per symbol (exchange id): (leverage, "isolated" | "cross"), applied at connect (perp only)
    margin: dict[str, tuple[int, str]] = field(default_factory=dict)
    allow_transfer_from_spot: bool = True


__all__ = ["CcxtExecutionClient", "ExecOptions"]


class CcxtExecutionClient(OrderCommands, UserStreams, AccountState, MarginOperations, FundingIncome,
                          ReconciliationReports, LiveExecutionClient):
    """One venue's execution client: the state and lifecycle here, each concern in its part (see the module doc)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, venue: Venue, kind: str, session: VenueSession,
                 instruments: list[Instrument], msgbus: MessageBus, cache: Cache, clock: LiveClock,
                 options: ExecOptions | None = None):
        if kind not in ("spot", "perp"):
            raise ValueError(f"kind must be 'spot' or 'perp', got {kind!r}")
        perp = kind == "perp"
        super().__init__(
            loop=loop, client_id=ClientId(venue.value), venue=venue, oms_type=OmsType.NETTING,
            account_type=AccountType.MARGIN if perp else AccountType.CASH, base_currency=USDT if perp else None,
            instrument_provider=StaticInstrumentProvider(instruments), msgbus=msgbus, cache=cache, clock=clock,
            config=None,
        )
        self._set_account_id(AccountId(f"{venue.value}-master"))
        self.kind = kind
        self.session = session
        self.ex = session.perp if perp else session.spot
        self.hooks = session.hooks
        self.opts = options or ExecOptions()
        self.ex.options["recvWindow"] = self.opts.recv_window_ms
        self._instruments = {i.id: i for i in instruments}
        to_symbol = session.perp_symbol if perp else session.spot_symbol
        self._symbols = {i.id: to_symbol(i.raw_symbol.value) for i in instruments}  # unified ccxt symbols
        self._by_symbol = {s: iid for iid, s in self._symbols.items()}
        self._exchange_ids = {i.id: i.raw_symbol.value for i in instruments}
        # base units per contract of each instrument's market (OKX swaps; 1 elsewhere): ccxt amounts are contracts
        self._ct = {iid: session.contract_value(sym) for iid, sym in self._symbols.items()}
        self._tracks: dict[str, OrderTrack] = {}
        self._by_venue_id: dict[str, str] = {}
        self._running = False
        self._tasks_bg: list[asyncio.Task] = []
        self._refresh_handle: asyncio.TimerHandle | None = None
        self._refresh_lock = asyncio.Lock()
        self._refresh_deferred = False  # a spot balance read held back while our orders were in flight
        # spot: balances as last reported, moved by our own fills as they happen (the exchange's own update comes
        # later on REST); a REST read older than a fill is not published (it would undo the fill)
        self._balances: dict[str, list[float]] = {}
        self._fills_seen = 0
        self._stream_down: dict[str, float | None] = {}
        self.stream_reconnects = 0
        # perp state
        self._positions: dict[str, PerpPosition] = {}  # exchange id -> position
        self._last_open: dict[str, PerpPosition] = {}  # exchange id -> last position seen open (liquidation report)
        self._available = 0.0
        self._cross_wallet = 0.0
        self._published: dict[str, tuple] = {}
        self._margin_locks: dict[str, asyncio.Lock] = {}
        self._funding_seen: set[str] = set()
        self._funding_since_ms = 0
        self._funding_since: dict[str, int] = {}  # exchange id -> read the income history from here
        self._book_lock = asyncio.Lock()
        self._next_funding_ms: dict[str, int] = {}
        self._funding_timers: dict[str, asyncio.TimerHandle] = {}
        self._funding_retry: asyncio.TimerHandle | None = None  # a failed income read, read again (backoff)
        self._funding_retry_s = 0.0
        self._pre_settlement_qty: dict[str, float] = {}
        self._liquidations_seen: set[str] = set()
        self.funding_published: list = []
        self.liquidations: list[Liquidated] = []
        self.margin_replies: list[MarginAdjusted] = []
        self.on_send: Callable | None = None  # benchmark hook: fn(cid, perf_counter_ns)
        self.on_fill: Callable | None = None  # benchmark hook: fn(cid, perf_counter_ns)

    async def _connect(self) -> None:
        if not self.session.authenticated:
            raise RuntimeError(f"{self.id}: no API credentials (live trading needs them)")
        self._running = True
        if self.kind == "perp":
            await self._setup_margin()
            self._msgbus.register(ADJUST_MARGIN_ENDPOINT, self._on_adjust_margin_request)
            self._msgbus.register(FUNDING_PUBLISHED_ENDPOINT, self._replay_funding_published)
        await self._refresh(publish=True)
        streams = [("orders", self.ex.watch_orders, self._on_orders),
                   ("trades", self.ex.watch_my_trades, self._on_trades),
                   ("balance", self.ex.watch_balance, self._on_balance)]
        if self.kind == "perp":
            streams.append(("positions", self.ex.watch_positions, self._on_positions))
        for name, watch, handler in streams:
            self._tasks_bg.append(self.create_task(self._stream_loop(name, watch, handler),
                                                   log_msg=f"{self.id}: {name} stream"))
        self._tasks_bg.append(self.create_task(self._poll_loop(), log_msg=f"{self.id}: poll loop"))
        if self.kind == "perp":
            now_ms = self.session.time.venue_now_ms()
            self._funding_since_ms = now_ms - int(self.opts.funding_lookback_h * 3_600_000)
            await self._schedule_funding_checks()
            self.create_task(self._book_funding(), log_msg=f"{self.id}: funding catch-up")

    async def _disconnect(self) -> None:
        self._running = False
        if self.kind == "perp":
            for endpoint, handler in ((ADJUST_MARGIN_ENDPOINT, self._on_adjust_margin_request),
                                      (FUNDING_PUBLISHED_ENDPOINT, self._replay_funding_published)):
                with contextlib.suppress(Exception):  # each on its own: a reconnect registers both again
                    self._msgbus.deregister(endpoint, handler)
        for h in list(self._funding_timers.values()) + [h for h in (self._refresh_handle, self._funding_retry) if h]:
            h.cancel()
        for t in self._tasks_bg:
            t.cancel()
        for t in self._tasks_bg:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks_bg.clear()

    def _base(self, iid, amount) -> Decimal:
        """A ccxt amount of instrument `iid` in base units, exact (contracts × contract value on OKX swaps)."""
        return _dec(amount) * self._ct.get(iid, ONE)

    def _base_of(self, unified: str | None, amount) -> Decimal:
        return self._base(self._by_symbol.get(unified), amount)

    def _ts(self, venue_ms) -> int:
        now = self._clock.timestamp_ns()
        if not venue_ms:
            return now
        return min(self.session.time.to_local(int(venue_ms)), now)
