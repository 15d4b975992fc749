"""Assemble and run a nautilus TradingNode for `basisbot live` and `basisbot paper`.

    live:  ccxt.pro market data + ccxt/ccxt.pro execution on the exchange (credentials required)
    paper: the same live market data + nautilus sandbox execution with the margin/funding modules (no credentials)

One `BasisCarryStrategy` per enabled symbol (config from `basisbot.strategies.strategy_config`, spot priced from
quotes, with `external_order_claims` on both legs so the orders and positions reconciliation rebuilds after a
restart belong to the strategy again), and the `JournalActor` when `basisbot.nautilus.journal_actor` is installed.

Start-up: load the exchange's markets (instruments) and leverage brackets (ccxt `fetch_leverage_tiers`; signed, so
paper needs credentials too, a read-only key is enough), check leverage against them, build the node, connect,
reconcile (live), start the trader. Venue facts never come from the bundled snapshots (those are for backtests).
Stop (SIGINT / SIGTERM, or the `stop` event): strategies stop opening new pairs, pairs in flight are given time to
complete (their legs fill, catch up or unwind, per `basisbot.core.legs`; at most the longest leg timeout + 5 s), then the
node stops. Open carries stay open and hedged; nothing is cancelled or closed on stop. A SIGKILL leaves whatever the
exchange holds; the next start reconciles it and the strategy resumes from it (see `BasisCarryStrategy.on_start`).

Hard deadline: a stop is bounded in every state. `basisbot live/paper` arm a watchdog thread when the stop
begins (drain timeout + `stop_margin_s`); if the node has not stopped by then (a strategy stuck in a loop, a hung
venue call), it prints what was left per symbol and exits with status 1. A second SIGINT/SIGTERM exits at once.

Replaying venues: the venue's replay speed comes from `--venue-speed`, `[live] venue_speed` or the local
venue itself (GET /sim/clock); the schedule windows (decision, blackout, booking, guard sweep) are venue seconds, so
they are divided by the speed: at 60x the decision 600 s before a settlement falls 10 wall seconds before it, where it
falls at 1x in venue time. Leg timeouts stay wall seconds (they bound network round trips).

Exit status: 0 after a clean stop, 2 for a bad config or missing credentials (named), 1 when the exchange cannot be
reached, the node fails to start, or the stop hit the hard deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from nautilus_trader.config import (
    LiveDataEngineConfig,
    LiveExecEngineConfig,
    LiveRiskEngineConfig,
    LoggingConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.identifiers import TraderId

from basisbot.config.checks import leverage_problems
from basisbot.config.loading import ConfigError, load_settings
from basisbot.config.schema import Settings
from basisbot.core.schedule import Windows
from basisbot.live.data_client import CcxtMarketDataClient, DataOptions
from basisbot.live.exec.client import CcxtExecutionClient, ExecOptions
from basisbot.live.instruments import (
    InstrumentError,
    find_market,
    perp_from_market,
    spot_from_market,
)
from basisbot.live.session import (
    CredentialsNeeded,
    MissingTiers,
    SessionOptions,
    VenueError,
    VenueSession,
    read_venue_clock,
)
from basisbot.nautilus import instruments as _instruments
from basisbot.nautilus.messages import JOURNAL_TOPIC, JournalRecord
from basisbot.strategies.basis_carry import BasisCarryConfig, BasisCarryStrategy
from basisbot.strategies.strategy_config import strategy_config

TRADER_ID = "BASISBOT-001"


class StartError(Exception):
    """The node could not start (message says why)."""


@dataclass
class NodeOptions:
    """Knobs that are not operator config (tests, benchmarks, embedding)."""

    venue_speed: float | None = None  # replay speed of a replaying venue; None: [live] venue_speed, else asked from
    # the local venue (GET /sim/clock) when live.exchange_url is set, else 1 (Binance)
    rate_limit: bool = False  # ccxt's client-side throttle (see README: our request volume is tiny)
    log_level: str = "INFO"
    log_file: str | None = None
    log_colors: bool = False
    reconciliation_lookback_mins: int | None = None
    start_timeout_s: float = 60.0
    drain_timeout_s: float | None = None  # default: longest leg timeout + 5 s
    data: DataOptions | None = None
    exec: ExecOptions | None = None
    strategy_class: type = BasisCarryStrategy
    strategy_overrides: dict = field(default_factory=dict)  # BasisCarryConfig fields for every strategy
    journal: bool = True  # add the JournalActor when available
    config_path: str | None = None  # the operator config file: watched and hot-reloaded while running (None: off)
    env_file: str | None = None  # the .env file the config was loaded with (watched with it)
    reload_interval_s: float = 1.0  # config file poll and safe-point check period
    exit_on_deadline: bool = False  # the CLI: a stop that outlives drain timeout + stop_margin_s ends the process (1)
    stop_margin_s: float = 15.0  # node stop after the drain: disconnect (5 s) + post-stop (1 s) + session close
    ops: bool = True  # alerts, metrics and status page per [alerts] and [live] metrics_port (when a factory is given)
    # what builds them: the driver above this wing hands it in (`basisbot.ops.service.OpsService`), so the wing never
    # imports a driver; called as ops_factory(settings, mode, {sym: (spot id, perp id)}, {sym: brackets}, env_file=)
    ops_factory: Callable[..., Any] | None = None


def credentials_problem(settings: Settings) -> str | None:
    ex = settings.exchange
    needed = [(ex.api_key_env, settings.api_key), (ex.api_secret_env, settings.api_secret)]
    names = "exchange.api_key_env / exchange.api_secret_env"
    if ex.name == "okx":  # OKX signs with a passphrase too
        needed.append((ex.api_passphrase_env, settings.api_passphrase))
        names += " / exchange.api_passphrase_env"
    missing = [var for var, val in needed if val is None]
    if not missing:
        return None
    return (f"live trading needs API credentials: set {' and '.join(missing)} in the environment or .env "
            f"(variable names from {names})")


# -- replaying venues: venue seconds -> wall seconds ------------------------------------------------------------------
def scale_schedule_fields(fields: dict, speed: float) -> dict:
    """Strategy fields with the schedule windows (venue seconds) turned into wall seconds at replay `speed`;
    the guard sweep is kept at 1 s or more. Identity at speed 1."""
    if speed == 1.0:
        return fields
    out = dict(fields)
    if isinstance(out.get("schedule"), Windows):
        out["schedule"] = out["schedule"].at_speed(speed)
    if isinstance(out.get("guard_sweep_s"), (int, float)) and out["guard_sweep_s"] > 0:
        out["guard_sweep_s"] = max(int(round(out["guard_sweep_s"] / speed)), 1)
    return out


# The fastest replay the node is rehearsed to follow (tests/test_live_speed.py): every settlement decided, booked and
# journaled as its own row. Faster replays are refused at start rather than followed badly.
MAX_VENUE_SPEED = 1800.0


async def resolve_venue_speed(settings: Settings, requested: float | None) -> tuple[float, str]:
    """(speed, where it came from): the CLI/option, else `[live] venue_speed`, else the local venue's GET /sim/clock
    when `live.exchange_url` is set, else 1."""
    if requested is not None:
        return float(requested), "--venue-speed"
    if settings.live.venue_speed is not None:
        return float(settings.live.venue_speed), "[live] venue_speed"
    if settings.live.exchange_url:
        clock = await read_venue_clock(settings.live.exchange_url)
        if clock is not None:
            return float(clock["speed"]), f"{settings.live.exchange_url}/sim/clock"
    return 1.0, "default (real time)"


# -- shutdown watchdog ------------------------------------------------------------------------------------------------
def _left_in_flight(app) -> list[str]:
    """Per symbol, what a stop leaves behind (read from another thread: plain attribute reads only)."""
    out = []
    for sym, st in list(getattr(app, "strategies", {}).items()):
        pair = getattr(st, "pair", None)
        busy = False
        try:
            busy = bool(st.pair_in_flight())
        except Exception:  # pragma: no cover
            pass
        if busy and pair is not None:
            legs = ", ".join(f"{n} {getattr(leg, 'filled', '?')}/{getattr(leg, 'target', '?')}"
                             for n, leg in getattr(pair, "legs", {}).items())
            out.append(f"{sym}: {pair.intent} pair in flight ({pair.status.value}; {legs})")
        else:
            phase = getattr(getattr(st, "phase", None), "value", "?")
            out.append(f"{sym}: {phase}")
    return out


class StopWatchdog:
    """A thread that ends the process if the stop outlives its deadline (the event loop may be the thing stuck)."""

    def __init__(self, app, deadline_s: float, exit_fn=os._exit):
        self.app = app
        self.deadline_s = deadline_s
        self._exit = exit_fn
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="basisbot-stop-watchdog", daemon=True)
        self.started_at = time.monotonic()

    def start(self) -> StopWatchdog:
        self._thread.start()
        return self

    def disarm(self) -> None:
        self._done.set()

    def fire_now(self, why: str) -> None:
        self._force(why)

    def _run(self) -> None:
        if self._done.wait(self.deadline_s):
            return
        self._force(f"the node did not stop within {self.deadline_s:.0f}s of the stop request")

    def _force(self, why: str) -> None:
        try:
            left = _left_in_flight(self.app)
            print(f"basisbot: {why}; exiting now (status 1). Left: {'; '.join(left) or 'nothing known'}. "
                  "The exchange holds the result; the next start reconciles it.", file=sys.stderr, flush=True)
        finally:
            self._exit(1)


def _journal_actor(settings: Settings, instruments: dict[str, tuple[str, str]], brackets: dict[str, list[dict]],
                   venue_speed: float = 1.0):
    """The journal writer (`basisbot.nautilus.journal_actor.JournalActor`) on `settings.journal`, or None if not installed.

    Settlement times reach the journal on the local clock: against a venue replaying at `venue_speed`, the window in
    which an income record belongs to a settlement (60 venue seconds of jitter) shrinks by the speed, so settlements
    that are 8 venue hours but a few wall seconds apart stay separate rows."""
    try:
        from basisbot.nautilus.journal_actor import SETTLEMENT_MATCH_S, JournalActor, journal_actor_config
    except ImportError:
        return None
    Path(settings.journal).parent.mkdir(parents=True, exist_ok=True)
    return JournalActor(journal_actor_config(settings, instruments, brackets,
                                             settlement_match_s=SETTLEMENT_MATCH_S / venue_speed))


class BasisNode:
    """A TradingNode for one Settings, in `mode` "live" or "paper", on the running event loop."""

    def __init__(self, settings: Settings, mode: str, options: NodeOptions | None = None):
        if mode not in ("live", "paper"):
            raise ValueError(f"mode must be 'live' or 'paper', got {mode!r}")
        self.settings = settings
        self.mode = mode
        self.opts = options or NodeOptions()
        self.session: VenueSession | None = None
        self.node: TradingNode | None = None
        self.strategies: dict[str, BasisCarryStrategy] = {}
        self.data_clients: dict[str, CcxtMarketDataClient] = {}
        self.exec_clients: dict[str, object] = {}
        self.journal = None
        self.ledger = None  # paper: the simulated perp ledger
        self.brackets: dict = {}  # symbol -> BracketTable, read from the exchange at build
        self.run_task: asyncio.Task | None = None  # the node's run_async, from start() on
        self.watcher = None  # basisbot.config.reload.ConfigWatcher when running from a config file
        self.pending = None  # basisbot.config.reload.PendingChange
        self._reload_tasks: list[asyncio.Task] = []
        self.venue_speed: float = 1.0
        self.left_in_flight: list[str] = []  # symbols whose pair was still in flight when the drain timed out
        self.venue_speed_source = "default (real time)"
        self.ops = None  # basisbot.ops.service.OpsService

    # -- build ------------------------------------------------------------------------------------------------------
    async def build(self) -> None:
        """Check the config against the exchange, then assemble the node: instruments, clients, actors, strategies."""
        symbols = self.settings.enabled_symbols()
        self._check_startable(symbols)
        await self._open_session()
        await self._load_instruments(symbols)
        self.node = TradingNode(config=self._node_config(), loop=asyncio.get_running_loop())
        for sym in symbols:
            self.node.kernel.cache.add_instrument(self.spot_insts[sym])
            self.node.kernel.cache.add_instrument(self.perp_insts[sym])
        self._add_data_clients()
        if self.mode == "live":
            self._add_exec_clients(symbols)
        else:
            self._add_paper_clients(symbols)
        configs = self._strategy_configs(symbols)
        self._add_actors(configs)
        for sym, sc in configs.items():
            strat = self.opts.strategy_class(sc)
            self.node.trader.add_strategy(strat)
            self.strategies[sym] = strat
        # nautilus builds clients from factories named in the node config; ours are registered on the engines
        # above (they share the session and instruments), so the configured factory set is empty and build() only
        # marks the node built
        self.node.build()

    def _check_startable(self, symbols: dict) -> None:
        if not symbols:
            raise ConfigError("<config>", ["no enabled symbol to trade (symbols.SYM.enabled)"])
        if self.mode == "live":
            problem = credentials_problem(self.settings)
            if problem:
                raise ConfigError("<environment>", [problem])

    async def _open_session(self) -> None:
        """The venue's replay speed, then the ccxt session (credentials only in live mode)."""
        s = self.settings
        live = self.mode == "live"
        self.venue_speed, self.venue_speed_source = await resolve_venue_speed(s, self.opts.venue_speed)
        if not 0 < self.venue_speed <= MAX_VENUE_SPEED:
            raise ConfigError(self.venue_speed_source, [
                f"venue speed {self.venue_speed:g}x: the node follows replays of at most {MAX_VENUE_SPEED:g}x (an 8-hour "
                f"interval in {8 * 3600 / MAX_VENUE_SPEED:g} wall seconds, each settlement booked and journaled); "
                "replay the venue slower (basisbot sim --speed)"])
        self.session = VenueSession(SessionOptions(
            exchange_url=s.live.exchange_url,
            api_key=s.api_key.get_secret_value() if (live and s.api_key) else None,
            api_secret=s.api_secret.get_secret_value() if (live and s.api_secret) else None,
            api_passphrase=s.api_passphrase.get_secret_value() if s.api_passphrase else None,
            exchange=s.exchange.name, rate_limit=self.opts.rate_limit, venue_speed=self.venue_speed,
        ))
        profile = self.session.hooks.profile
        self.spot_venue, self.perp_venue = _instruments.spot_venue(profile), _instruments.perp_venue(profile)
        await self.session.start()

    async def _load_instruments(self, symbols: dict) -> None:
        """Market rules from the exchange's markets (ccxt load_markets), leverage checked against its brackets, and
        the spot and perp instruments of every symbol."""
        s = self.settings
        spot_markets, perp_markets = {}, {}
        problems = []
        for sym, cfg in symbols.items():
            hooks = self.session.hooks
            try:
                spot_markets[sym] = find_market(self.session.spot_markets,
                                                hooks.market_id(cfg.spot_symbol or sym, "spot"), kind="spot")
                perp_markets[sym] = find_market(self.session.perp_markets, hooks.market_id(sym, "perp"), kind="perp")
            except InstrumentError as e:
                problems.append(f"symbol {sym}: {e}")
        if problems:
            raise ConfigError(self.session.where(), problems)
        brackets = self.brackets = await self._venue_brackets(list(symbols))
        problems = leverage_problems(s, brackets, self.session.where(), "the exchange", symbols)
        if problems:
            raise ConfigError(self.session.where(), problems)
        fees = s.fees
        hooks = self.session.hooks
        self.spot_insts = {sym: spot_from_market(spot_markets[sym], fees.spot_taker, fees.spot_maker, hooks=hooks)
                           for sym in symbols}
        self.perp_insts = {sym: perp_from_market(perp_markets[sym], cfg.leverage, brackets[sym], fees.perp_taker,
                                                 fees.perp_maker, hooks=hooks) for sym, cfg in symbols.items()}

    def _node_config(self) -> TradingNodeConfig:
        opts = self.opts
        logging = LoggingConfig(log_level=opts.log_level, log_colors=opts.log_colors,
                                log_file_name=Path(opts.log_file).stem if opts.log_file else None,
                                log_directory=str(Path(opts.log_file).parent) if opts.log_file else None,
                                log_level_file=opts.log_level if opts.log_file else None,
                                use_pyo3=False)
        return TradingNodeConfig(
            trader_id=TraderId(TRADER_ID),
            logging=logging,
            # an exception escaping a handler stops the node (logged, exit status 1) instead of nautilus' os._exit
            data_engine=LiveDataEngineConfig(graceful_shutdown_on_exception=True),
            risk_engine=LiveRiskEngineConfig(graceful_shutdown_on_exception=True),
            exec_engine=LiveExecEngineConfig(
                graceful_shutdown_on_exception=True,
                reconciliation=self.mode == "live",
                reconciliation_lookback_mins=opts.reconciliation_lookback_mins,
                inflight_check_interval_ms=2_000,
                inflight_check_threshold_ms=5_000,
                reconciliation_startup_delay_secs=1.0,
            ),
            timeout_connection=30.0,
            timeout_reconciliation=30.0,
            timeout_portfolio=10.0,
            timeout_disconnection=5.0,
            timeout_post_stop=1.0,
        )

    def _venue_instruments(self) -> tuple:
        return ((self.spot_venue, "spot", list(self.spot_insts.values())),
                (self.perp_venue, "perp", list(self.perp_insts.values())))

    def _add_data_clients(self) -> None:
        """One ccxt.pro market data client per venue (spot, perp), live and paper alike."""
        k = self.node.kernel
        ro = self.settings.live
        data_opts = self.opts.data or DataOptions(reconnect_max_s=ro.reconnect_max_s, poll_interval_s=ro.poll_interval_s)
        for venue, kind, insts in self._venue_instruments():
            dc = CcxtMarketDataClient(asyncio.get_running_loop(), venue=venue, kind=kind, session=self.session,
                                      instruments=insts, msgbus=k.msgbus, cache=k.cache, clock=k.clock,
                                      options=data_opts)
            k.data_engine.register_client(dc)
            self.data_clients[kind] = dc

    def _add_exec_clients(self, symbols: dict) -> None:
        """Live: one ccxt execution client per venue, which sets each perp's leverage and margin mode."""
        k = self.node.kernel
        ro = self.settings.live
        exec_opts = self.opts.exec or ExecOptions(reconnect_max_s=ro.reconnect_max_s, poll_interval_s=ro.poll_interval_s)
        exec_opts.margin = {sym: (cfg.leverage, cfg.margin_mode) for sym, cfg in symbols.items()}
        for venue, kind, insts in self._venue_instruments():
            ec = CcxtExecutionClient(asyncio.get_running_loop(), venue=venue, kind=kind, session=self.session,
                                     instruments=insts, msgbus=k.msgbus, cache=k.cache, clock=k.clock,
                                     options=exec_opts)
            k.exec_engine.register_client(ec)
            self.exec_clients[kind] = ec

    def _add_paper_clients(self, symbols: dict) -> None:
        """Paper: nautilus sandbox execution with the margin and funding modules, fed by the live quotes."""
        from basisbot.live.paper import PaperQuotes, PaperQuotesConfig, paper_clients

        s = self.settings
        k = self.node.kernel
        clients, self.ledger = paper_clients(asyncio.get_running_loop(), k, self.session, self.spot_insts,
                                             self.perp_insts, symbols, s.backtest.spot_balance_usdt,
                                             s.backtest.perp_balance_usdt, self.brackets)
        for kind, ec in zip(("spot", "perp"), clients):
            k.exec_engine.register_client(ec)
            self.exec_clients[kind] = ec
        self.node.trader.add_actor(PaperQuotes(PaperQuotesConfig(
            component_id="PaperQuotes", instrument_ids=[str(i.id) for i in self.perp_insts.values()])))

    def _strategy_configs(self, symbols: dict) -> dict:
        """Each symbol's strategy config: the schedule windows in wall seconds at the venue's speed, both
        instruments claimed for reconciliation, and the options' overrides."""
        configs = {}
        for sym in symbols:
            spot, perp = self.spot_insts[sym], self.perp_insts[sym]
            sc = strategy_config(self.settings, sym, str(spot.id), str(perp.id), None, table=self.brackets[sym])
            extra = {"scheduler": "asyncio"} if "scheduler" in BasisCarryConfig.__struct_fields__ else {}
            timing = scale_schedule_fields({"schedule": sc.schedule, "guard_sweep_s": sc.guard_sweep_s},
                                           self.venue_speed)
            configs[sym] = msgspec.structs.replace(sc, external_order_claims=[spot.id, perp.id],
                                                   **{**extra, **timing, **self.session.hooks.strategy_overrides,
                                                      **self.opts.strategy_overrides})
        return configs

    def _add_actors(self, configs: dict) -> None:
        """The journal writer, the portfolio budget ([portfolio] capital_usdt) and ops (alerts, metrics, status
        page; its actor listens to the same bus as the journal)."""
        s = self.settings
        node = self.node
        instruments = {sym: (str(self.spot_insts[sym].id), str(self.perp_insts[sym].id)) for sym in configs}
        brackets = {sym: list(sc.brackets) for sym, sc in configs.items()}
        if self.opts.journal:
            self.journal = _journal_actor(s, instruments, brackets, self.venue_speed)
            if self.journal is not None:
                node.trader.add_actor(self.journal)
        if s.portfolio.capital_usdt:  # the capital budget across symbols, as in backtests
            from basisbot.nautilus.portfolio_actor import PortfolioBudgetActor, PortfolioBudgetConfig

            pf = s.portfolio
            node.trader.add_actor(PortfolioBudgetActor(PortfolioBudgetConfig(
                capital_usdt=pf.capital_usdt, max_symbols=pf.max_symbols, hysteresis=pf.hysteresis,
                compounding=pf.compounding, venues=[self.spot_venue.value, self.perp_venue.value])))
        if s.risk.configured:  # [risk]: the limits, evaluated on the marks; breaches pause or flatten every symbol
            from basisbot.nautilus.risk_actor import RiskActor, risk_actor_config

            node.trader.add_actor(RiskActor(risk_actor_config(
                s.risk, {sym: (self.spot_insts[sym].id, self.perp_insts[sym].id) for sym in configs},
                [self.spot_venue.value, self.perp_venue.value], journal=self.opts.journal)))
        if self.opts.ops and self.opts.ops_factory is not None:
            self.ops = self.opts.ops_factory(s, self.mode, instruments, brackets, env_file=self.opts.env_file)
            node.trader.add_actor(self.ops.actor)

    def _reload_venue_check(self, settings: Settings, label: str) -> list[str]:
        """A reloaded config is checked against the exchange's brackets read at start (not the bundled snapshots)."""
        return leverage_problems(settings, self.brackets, label, "the exchange")

    async def _venue_brackets(self, symbols: list[str]) -> dict:
        """The exchange's leverage brackets of the configured perps (never the bundled snapshots). Paper mode reads
        them with the configured credentials on a short-lived client (a read-only key is enough). Where the venue's
        liquidation condition counts the taker fee of closing (OKX), the tables carry the configured
        `fees.perp_taker`, as in backtests and `config check`."""
        s = self.settings
        try:
            tables = await self.session.leverage_tiers(
                symbols, api_key=s.api_key.get_secret_value() if s.api_key else None,
                api_secret=s.api_secret.get_secret_value() if s.api_secret else None)
        except CredentialsNeeded as e:
            raise ConfigError("<environment>", [
                f"{self.mode} mode: {e}: set {s.exchange.api_key_env} and {s.exchange.api_secret_env} in the "
                f"environment or .env" + (" (a read-only key is enough: paper never trades with it)"
                                          if self.mode == "paper" else "")]) from None
        except MissingTiers as e:
            raise ConfigError(self.session.where(), [f"symbol {sym}: {e}" for sym in e.symbols]) from None
        with_fee = self.session.hooks.profile.with_perp_taker_fee
        return tables if with_fee is None else dict(with_fee(tables, s.fees.perp_taker))

    # -- run --------------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Run the node in the background and wait until the trader runs (connected, reconciled)."""
        self._started_ns = time.time_ns()
        self.run_task = asyncio.create_task(self.node.run_async())
        deadline = time.monotonic() + self.opts.start_timeout_s
        while not self.node.trader.is_running:
            if self.run_task.done():
                exc = self.run_task.exception()
                raise StartError(f"the node stopped while starting: {exc!r}")
            if time.monotonic() > deadline:
                raise StartError(f"the node did not start within {self.opts.start_timeout_s:.0f}s "
                                 "(clients not connected or reconciliation not finished: see the log)")
            await asyncio.sleep(0.05)
        for ec in self.exec_clients.values():  # the strategies subscribed just now: the guard needs the margin state
            if getattr(ec, "kind", None) == "perp":
                ec.republish_margin()
        if self.ops is not None:  # ops: alert workers, HTTP server, 1 s tick
            self.ops.start(self)
        self._start_reload()
        self._start_restart_tasks()

    # -- after start: venue clock in the journal, unresolved orders -------------------------------------------------
    def _start_restart_tasks(self) -> None:
        from nautilus_trader.common.component import Logger

        k = self.node.kernel
        log = Logger("BasisNode")
        self._restart_tasks: list[asyncio.Task] = []
        vt = self.session.time
        if self.journal is not None and not vt.identity:
            def publish_clock(venue_ms: int, local_ns: int, speed: float) -> None:
                k.msgbus.publish(JOURNAL_TOPIC, JournalRecord("venue_clock", "*", k.clock.timestamp_ns(), {
                    "venue_ms": venue_ms, "local_ns": local_ns, "speed": speed}))

            publish_clock(*vt.anchor, vt.speed)
            vt.on_anchor = publish_clock
        if self.journal is not None and self.mode == "live":
            from basisbot.live.journal_orders import resolve_unresolved_orders

            recv = (self.opts.exec.recv_window_ms / 1000) if self.opts.exec else 5.0
            self._restart_tasks.append(asyncio.create_task(resolve_unresolved_orders(
                self.settings.journal, self.exec_clients, k.msgbus, k.clock, started_ns=self._started_ns,
                recv_window_s=recv, log=log), name="basisbot-journal-orders"))

    # -- config hot reload ------------------------------------------------------------------------------------------
    def _start_reload(self) -> None:
        """Watch the config file (`basisbot.config.reload`): valid changes wait in `pending` and are applied per symbol
        at its safe point by `apply_pending`; both run as tasks on the node's event loop (the journal's thread)."""
        if not self.opts.config_path:
            return
        from nautilus_trader.common.component import Logger

        from basisbot.config.reload import ConfigWatcher, PendingChange

        journal = getattr(self.journal, "journal", None)
        clock_ns = self.node.kernel.clock.timestamp_ns
        self._reload_log = log = Logger("ConfigReload")
        self.pending = PendingChange(self.settings, journal=journal, source=str(self.opts.config_path),
                                     clock_ns=clock_ns, log=log)
        self.watcher = ConfigWatcher(self.opts.config_path, self.opts.env_file, self.settings, self.pending.offer,
                                     journal=journal, interval_s=self.opts.reload_interval_s, clock_ns=clock_ns,
                                     log=log, venue_check=self._reload_venue_check)
        self._reload_tasks = [asyncio.create_task(self.watcher.run(), name="basisbot-config-watcher"),
                              asyncio.create_task(self._apply_loop(), name="basisbot-config-apply")]

    async def _apply_loop(self) -> None:
        while True:
            await asyncio.sleep(self.opts.reload_interval_s)
            self.apply_pending()

    def apply_pending(self) -> None:
        """Hand each strategy its part of an accepted config change once it is at a safe point (not in the settlement
        blackout, no leg pair in flight)."""
        if self.pending is None or not self.pending.pending_symbols():
            return
        for sym, strat in self.strategies.items():
            if not strat.is_running:
                continue
            try:
                now = strat.clock.timestamp_ns()
                ch = self.pending.take(sym, in_blackout=strat.calendar.in_blackout(now),
                                       leg_in_flight=strat.pair_in_flight(), ts_ns=now)
                if ch is not None:
                    strat.apply_config(scale_schedule_fields(ch.strategy_fields(), self.venue_speed))
            except Exception as e:  # a failed apply must not stop the node; the old parameters stay
                self._reload_log.error(f"config change for {sym} not applied: {type(e).__name__}: {e}")

    async def _stop_reload(self) -> None:
        for task in self._reload_tasks:
            task.cancel()
        for task in self._reload_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reload_tasks = []

    def drain_timeout_s(self) -> float:
        """How long a stop waits for pairs in flight: the option, else the longest leg timeout + 5 s."""
        if self.opts.drain_timeout_s is not None:
            return self.opts.drain_timeout_s
        return max((getattr(st, "cfg", st.config).leg_timeout_s for st in self.strategies.values()),
                   default=10.0) + 5.0

    async def drain(self) -> None:
        """No new pairs; wait for the pairs in flight to finish (filled, caught up or unwound)."""
        for strat in self.strategies.values():
            if hasattr(strat, "halt_new_pairs"):
                strat.halt_new_pairs()
        deadline = time.monotonic() + self.drain_timeout_s()
        while any(st.pair_in_flight() for st in self.strategies.values()):
            if time.monotonic() > deadline:
                busy = [s for s, st in self.strategies.items() if st.pair_in_flight()]
                self.left_in_flight = busy
                print(f"basisbot: stopping with pairs still in flight for {busy} (the exchange holds the result; "
                      "the next start reconciles it)", file=sys.stderr)
                break
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self._stop_reload()
        for task in getattr(self, "_restart_tasks", []):
            task.cancel()
        if self.node is not None and self.node.kernel.is_running():
            with contextlib.suppress(Exception):
                await self.drain()
            await self.node.stop_async()
        if self.ops is not None:  # ops: after the node, so what the drain did is still alerted
            await self.ops.stop()
        if self.run_task is not None:
            self.run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.run_task
        if self.session is not None:
            await self.session.close()

    def dispose(self) -> None:
        if self.node is not None:
            with contextlib.suppress(Exception):
                self.node.kernel.dispose()


async def _until_stopped(aw, stop: asyncio.Event) -> bool:
    """Await `aw` unless a stop request comes first (True: `aw` finished)."""
    task = asyncio.ensure_future(aw)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return False


class _StopSignals:
    """SIGINT/SIGTERM set `stop` on the event loop. With `exit_on_deadline`, a plain Python handler also runs in
    the main thread between bytecodes even when the event loop is stuck in a handler: it arms the stop watchdog,
    and a second signal exits at once."""

    def __init__(self, app: BasisNode, stop: asyncio.Event, loop: asyncio.AbstractEventLoop):
        self.app = app
        self.stop = stop
        self.loop = loop
        self.exit_on_deadline = app.opts.exit_on_deadline
        self.watchdog: StopWatchdog | None = None
        self.received: list[int] = []

    def arm_watchdog(self) -> None:
        if self.exit_on_deadline and self.watchdog is None:
            self.watchdog = StopWatchdog(self.app, self.app.drain_timeout_s() + self.app.opts.stop_margin_s).start()

    def _on_signal_in_main_thread(self, signum, _frame) -> None:
        self.received.append(signum)
        self.arm_watchdog()
        if len(self.received) > 1:  # a second SIGINT/SIGTERM: no more waiting
            self.watchdog.fire_now(f"second {signal.Signals(signum).name}")

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self.loop.add_signal_handler(sig, self.stop.set)
            if self.exit_on_deadline and threading.current_thread() is threading.main_thread():
                with contextlib.suppress(ValueError, OSError):
                    signal.signal(sig, self._on_signal_in_main_thread)

    def remove(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                self.loop.remove_signal_handler(sig)

    def disarm(self) -> None:
        if self.watchdog is not None:
            self.watchdog.disarm()


async def _build_and_start(app: BasisNode, stop: asyncio.Event, signals: _StopSignals,
                           failure: list[str]) -> int | None:
    """Build and start the node; None once it runs, else the exit status (0: stopped while starting)."""
    mode = app.mode
    try:
        if not await _until_stopped(app.build(), stop):
            print(f"basisbot {mode}: stopped while starting", flush=True)
            return 0
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except VenueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    signals.install()  # again: after the kernel's own handlers, ours drain first
    if app.venue_speed != 1.0:
        print(f"basisbot {mode}: venue replays at {app.venue_speed:g}x ({app.venue_speed_source}); schedule "
              "windows scaled to wall time", flush=True)

    def on_shutdown(command) -> None:  # an engine asked the system to stop (unexpected exception)
        failure.append(str(getattr(command, "reason", command)))
        stop.set()

    app.node.kernel.msgbus.subscribe("commands.system.shutdown", on_shutdown)
    try:
        if not await _until_stopped(app.start(), stop):
            print(f"basisbot {mode}: stopped while starting", flush=True)
            return 0
    except StartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return None


async def _run_until_stopped(app: BasisNode, stop: asyncio.Event, signals: _StopSignals, ready) -> int:
    failure: list[str] = []
    rc = await _build_and_start(app, stop, signals, failure)
    if rc is not None:
        return rc
    mode = app.mode
    print(f"basisbot {mode}: running {', '.join(app.strategies)} on {app.session.where()}", flush=True)
    if ready is not None:
        ready(app)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, app.run_task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if failure or (app.run_task.done() and not stop.is_set()):
        print(f"error: the node stopped unexpectedly: {'; '.join(failure) or 'see the log'}", file=sys.stderr)
        return 1
    print(f"basisbot {mode}: stopping (open carries stay hedged)", flush=True)
    return 0


async def run_node(settings: Settings, mode: str, options: NodeOptions | None = None,
                   stop: asyncio.Event | None = None, ready=None) -> int:
    """Build, start, run until `stop` is set (or SIGINT/SIGTERM), stop cleanly. Returns the exit status."""
    stop = stop or asyncio.Event()
    app = BasisNode(settings, mode, options)
    signals = _StopSignals(app, stop, asyncio.get_running_loop())
    signals.install()  # a stop request while building or starting is honoured too
    try:
        rc = await _run_until_stopped(app, stop, signals, ready)
    finally:
        signals.arm_watchdog()  # bounded from here on, whatever the path
        signals.remove()
        if app.opts.exit_on_deadline:  # a signal during the stop itself: handled (second one = exit now)
            signals.install()
        await app.stop()
        app.dispose()
        signals.disarm()
        signals.remove()
    if rc == 0 and app.left_in_flight:
        rc = 1  # stopped with a pair still in flight: the next start must reconcile it
    return rc


def _main(args, mode: str, ops_factory: Callable[..., Any] | None) -> int:
    try:
        # venue facts (symbols, brackets) are checked against the exchange at start, not the bundled snapshots
        settings = load_settings(args.config, env_file=getattr(args, "env_file", ".env"), check_venue=False)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if mode == "live":
        problem = credentials_problem(settings)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    try:
        env_file = getattr(args, "env_file", ".env")
        return asyncio.run(run_node(settings, mode, NodeOptions(config_path=str(args.config),
                                                                 env_file=str(env_file) if env_file else None,
                                                                 venue_speed=getattr(args, "venue_speed", None),
                                                                 exit_on_deadline=True, ops_factory=ops_factory)))
    except KeyboardInterrupt:
        return 0


def live_main(args, ops_factory: Callable[..., Any] | None = None) -> int:
    """`basisbot live --config F [--env-file F]`."""
    return _main(args, "live", ops_factory)


def paper_main(args, ops_factory: Callable[..., Any] | None = None) -> int:
    """`basisbot paper --config F [--env-file F]`: live market data, simulated fills, no credentials."""
    return _main(args, "paper", ops_factory)


__all__ = ["BasisNode", "NodeOptions", "credentials_problem", "live_main", "paper_main", "run_node"]
