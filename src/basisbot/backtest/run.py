"""Assemble and run a backtest: two venues (spot CASH, perp MARGIN with the standard margin model), the simulation
modules of `perp_venue`, one `BasisCarryStrategy` per enabled symbol, and the recorder."""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.accounting.margin_models import StandardMarginModel
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import MakerTakerFeeModel
from nautilus_trader.config import BacktestEngineConfig, LoggingConfig, PortfolioConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.objects import Money

from basisbot.backtest.feed import SymbolFeed, bar_type, build_feed
from basisbot.backtest.recorder import BacktestRecorder, RecorderConfig
from basisbot.config.settings import ConfigError, Settings, SymbolSettings, venue_reference
from basisbot.data import market_data
from basisbot.data.bundled_files import BundledDataMissing, bundled_market_dir
from basisbot.nautilus.instruments import make_perp, make_spot, perp_venue, spot_venue
from basisbot.nautilus.message_bus import in_process_message_bus
from basisbot.nautilus.perp_venue import PerpLedger, PerpMarginModule, PerpSymbol, SpotCollateralModule
from basisbot.nautilus.portfolio_actor import PortfolioBudgetActor, PortfolioBudgetConfig
from basisbot.strategies.basis_carry import BasisCarryStrategy
from basisbot.strategies.strategy_config import strategy_config

ACCOUNT_LOG_INTERVAL_MS = 100 * 365 * 86_400_000  # a century: see `build_engine`


class BacktestInputError(Exception):
    """Bad backtest input (data folder, dates, symbols): reported with what and where, exit status 2."""


@dataclass
class FillRow:
    ts_ns: int
    symbol: str
    leg: str  # spot | perp
    side: str
    qty: float
    price: float
    fee_usdt: float
    fee_currency: str
    tag: str
    client_order_id: str


@dataclass
class BacktestResult:
    settings: Settings
    symbols: list[str]
    start: pd.Timestamp
    end: pd.Timestamp
    data_dir: Path
    ledger: PerpLedger
    recorder: BacktestRecorder
    strategies: dict[str, BasisCarryStrategy]
    feeds: dict[str, SymbolFeed]
    fills: list[FillRow]
    starting_equity: float
    ending_equity: float
    final_spot_px: dict[str, float]
    final_mark: dict[str, float]
    events: int
    run_seconds: float
    data_notes: list[str] = field(default_factory=list)


def data_folder(settings: Settings) -> Path:
    """The run's data folder: `backtest.data` as configured; left at its default, the bundled data of the config's
    venue (package data, `basisbot.data.bundled_files`), so a config that only names another exchange reads that
    venue's data."""
    bt = settings.backtest
    if "data" in bt.model_fields_set and bt.data is not None:
        return bt.data
    try:
        return bundled_market_dir(settings.venue.name)
    except BundledDataMissing as e:
        raise BacktestInputError(str(e)) from None


def resolve_data_dir(path: Path, config_path: Path | None) -> Path:
    """Relative paths: the current directory first, then the config file's folder."""
    tried = [path]
    if not path.is_absolute() and config_path is not None:
        tried.append(config_path.parent / path)
    for candidate in tried:
        if candidate.exists():
            return candidate
    raise BacktestInputError(f"data folder not found: tried {', '.join(str(p) for p in tried)}")


def _parse_day(value, what: str) -> pd.Timestamp | None:
    if value in (None, ""):
        return None
    try:
        return pd.Timestamp(value).tz_localize("UTC") if pd.Timestamp(value).tzinfo is None else pd.Timestamp(value)
    except (ValueError, TypeError):
        raise BacktestInputError(f"{what}: {value!r} is not a date (use YYYY-MM-DD)") from None


@dataclass
class Prepared:
    """Everything a run needs before an engine exists: validated inputs, data, instruments and the event stream."""

    settings: Settings
    data_path: Path
    enabled: dict[str, SymbolSettings]
    datas: dict[str, market_data.SymbolData]
    first: pd.Timestamp
    last: pd.Timestamp
    spot_insts: dict
    perp_insts: dict
    feeds: dict[str, SymbolFeed]
    brackets: dict
    events: list  # nautilus data in engine order

    @property
    def order(self) -> list[str]:
        return list(self.enabled)


def venue_facts(settings: Settings, config_path: Path | None, enabled) -> tuple[dict, dict]:
    """(bracket tables, perp market rules) for the run: the bundled snapshots overlaid by the operator's
    `backtest.brackets` / `backtest.exchange_info` files; an enabled symbol missing from either is refused with
    what to supply."""
    tables, specs, problems = venue_reference(settings, str(config_path or "<config>"), config_path)
    if problems:
        raise BacktestInputError("; ".join(problems))
    bt, venue = settings.backtest, settings.venue
    for s in enabled:
        if s not in tables:
            raise BacktestInputError(venue.missing_tiers_message(s, bt.brackets))
        if s not in specs:
            raise BacktestInputError(venue.missing_rules_message(s, bt.exchange_info))
    return tables, specs


def prepare(settings: Settings, *, config_path: Path | None = None, data_dir: Path | None = None, start=None,
            end=None, symbols: list[str] | None = None) -> Prepared:
    bt = settings.backtest
    data_path = resolve_data_dir(Path(data_dir) if data_dir else data_folder(settings), config_path)
    start_ts = _parse_day(start, "--start") or _parse_day(bt.start, "backtest.start")
    end_ts = _parse_day(end, "--end") or _parse_day(bt.end, "backtest.end")
    if start_ts is not None and end_ts is not None and end_ts <= start_ts:
        raise BacktestInputError(f"end {end_ts.date()} must be after start {start_ts.date()}")
    enabled = settings.enabled_symbols()
    if symbols:
        unknown = [s for s in symbols if s not in settings.symbols]
        if unknown:
            raise BacktestInputError(f"--symbols: {unknown} not in the config (configured: {sorted(settings.symbols)})")
        enabled = {s: settings.symbols[s] for s in symbols}
    if not enabled:
        raise BacktestInputError("no enabled symbol to backtest")
    brackets, specs = venue_facts(settings, config_path, enabled)

    # the data must be the venue's own (its column suffix); a contract venue's swap volumes convert to base units
    venue = settings.venue
    datas = {s: market_data.load_symbol(data_path, s, start=start_ts, end=end_ts, allow_perp_gaps=True,
                                        exchange=venue.data_suffix, contract_value=specs[s].contract_value)
             for s in enabled}
    first = min(d.bars.index[0] for d in datas.values())
    last = max(d.bars.index[-1] for d in datas.values()) + pd.Timedelta(hours=1)
    fees, profile = settings.fees, settings.venue
    spot_insts = {s: make_spot(s, fees.spot_taker, fees.spot_maker, specs[s], profile=profile) for s in enabled}
    perp_insts = {s: make_perp(s, cfg.leverage, brackets[s], fees.perp_taker, fees.perp_maker, specs[s],
                               profile=profile) for s, cfg in enabled.items()}
    feeds = {s: build_feed(datas[s], spot_insts[s], perp_insts[s], bt.predictor, bt.intrabar_step,
                           premium_source=bt.premium_source, funding=profile.funding) for s in enabled}
    merged = []
    for idx, s in enumerate(enabled):
        merged.extend((ts, prio, idx, obj) for ts, prio, obj in feeds[s].events)
    merged.sort(key=lambda e: (e[0], e[1], e[2]))
    return Prepared(settings, data_path, enabled, datas, first, last, spot_insts, perp_insts, feeds, brackets,
                    [e[3] for e in merged])


def _not_recorded(position_id, realized_pnl, ts_event=None) -> None:
    """The portfolio analyzer's `record_trade` in a backtest (see `build_engine`)."""


def build_engine(p: Prepared, *, simulate_perp: bool = True) -> tuple[BacktestEngine, PerpLedger]:
    """Two venues, instruments and data. `simulate_perp=False` leaves out our funding/margin modules (the bare engine
    the benchmark compares against)."""
    bt, profile = p.settings.backtest, p.settings.venue
    # run_analysis off: nautilus' post-run statistics are not used (the report computes its own from the recorder);
    # the message bus publishes nothing out of the process (`basisbot.nautilus.message_bus`: 13% of the instructions)
    # nautilus' portfolio formats every account state it applies into an info line ("Updated AccountState(...)")
    # before the logger drops it (a backtest logs errors only): at most one such line per account per century skips
    # the formatting of the others (a funding settlement, a fill and a margin transfer each apply one)
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BASISBOT-001"), run_analysis=False,
                                                 logging=LoggingConfig(log_level="ERROR", print_config=False),
                                                 message_bus=in_process_message_bus(),
                                                 portfolio=PortfolioConfig(
                                                     min_account_state_logging_interval_ms=ACCOUNT_LOG_INTERVAL_MS)))
    # nautilus' portfolio hands each closed position's realized PnL to its analyzer, which appends it to a pandas
    # Series (a concat of the whole series per close) for the post-run analysis that is off here: nothing reads them
    engine.portfolio.analyzer.record_trade = _not_recorded
    ledger = PerpLedger([
        PerpSymbol(s, p.perp_insts[s].id, p.brackets[s], cfg.leverage, cfg.margin_mode, p.feeds[s].worst)
        for s, cfg in p.enabled.items()
    ], liquidation_price=profile.liquidation_price, unified=profile.unified_account)
    spot_modules = [SpotCollateralModule(ledger)] if simulate_perp else []
    perp_modules = [PerpMarginModule(ledger, {s: f.settlements for s, f in p.feeds.items()})] if simulate_perp else []
    engine.add_venue(
        venue=spot_venue(profile), oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None,
        starting_balances=[Money(bt.spot_balance_usdt, USDT)], fee_model=MakerTakerFeeModel(),
        modules=spot_modules,
    )
    engine.add_venue(
        venue=perp_venue(profile), oms_type=OmsType.NETTING, account_type=AccountType.MARGIN, base_currency=USDT,
        starting_balances=[Money(bt.perp_balance_usdt, USDT)], fee_model=MakerTakerFeeModel(),
        margin_model=StandardMarginModel(), default_leverage=Decimal(1), modules=perp_modules,
    )
    for m in spot_modules + perp_modules:
        m.detach_from_loop()  # registered with their exchanges; nothing to do per data point (`perp_venue`)
    for s in p.enabled:
        engine.add_instrument(p.spot_insts[s])
        engine.add_instrument(p.perp_insts[s])
    engine.add_data(p.events, sort=True)  # already in order; the stable sort keeps same-ts priority
    return engine, ledger


def run_backtest(
    settings: Settings,
    *,
    config_path: Path | None = None,
    data_dir: Path | None = None,
    start=None,
    end=None,
    symbols: list[str] | None = None,
    progress: bool = False,
) -> BacktestResult:
    p = prepare(settings, config_path=config_path, data_dir=data_dir, start=start, end=end, symbols=symbols)
    return run_prepared(p, progress=progress)


def run_prepared(p: Prepared, *, progress: bool = False) -> BacktestResult:
    settings, order = p.settings, p.order
    engine, ledger = build_engine(p)
    strategies = {}
    for s, cfg in p.enabled.items():
        strat = BasisCarryStrategy(strategy_config(settings, s, str(p.spot_insts[s].id), str(p.perp_insts[s].id),
                                                   str(bar_type(p.spot_insts[s])), table=p.brackets[s],
                                                   journal=False))
        strategies[s] = strat
        engine.add_strategy(strat)
    recorder = BacktestRecorder(
        RecorderConfig(symbols=order, spot_ids=[str(p.spot_insts[s].id) for s in order],
                       perp_ids=[str(p.perp_insts[s].id) for s in order], spot_venue=settings.venue.spot_venue,
                       perp_venue=settings.venue.perp_venue, exchange=settings.venue.name, start_ns=int(p.first.value + 3_600_000_000_000),
                       end_ns=int(p.last.value), progress=progress,
                       hedge_ratios=[str(p.enabled[s].hedge_ratio) for s in order],
                       perp_steps=[str(p.perp_insts[s].size_increment.as_decimal()) for s in order]),
        {s: p.brackets[s] for s in order},
        {s: p.feeds[s].spot_closes for s in order},
        {s: p.feeds[s].marks for s in order},
        {s: (p.feeds[s].predictions["ts_ns"].to_numpy(np.int64), p.feeds[s].predictions["predicted_rate"].to_numpy())
         for s in order},
    )
    engine.add_actor(recorder)
    pf = settings.portfolio
    if pf.capital_usdt:
        budget = PortfolioBudgetActor(PortfolioBudgetConfig(
            capital_usdt=pf.capital_usdt, max_symbols=pf.max_symbols, hysteresis=pf.hysteresis,
            compounding=pf.compounding, venues=list(settings.venue.venues)))
        engine.add_actor(budget)

    # Everything built so far lives through the whole run (the replayed data, the engine, the strategies): frozen out
    # of the garbage collector's generations for it, so a full collection during the run walks only what the run
    # made (the 2-year quick start: 0.02-0.04 s instead of 0.4 s). freeze and unfreeze move lists, walk nothing.
    gc.freeze()
    try:
        t0 = time.perf_counter()
        engine.run(end=pd.Timestamp(p.last.value + 60_000_000_000, tz="UTC"))  # past the last hour: final sample
        recorder.finish(int(p.last.value))  # derives the recorder's per-symbol rows: part of the run's time
        run_seconds = time.perf_counter() - t0
    finally:
        gc.unfreeze()
    last_ts = recorder.equity_rows[-1][0] if recorder.equity_rows else 0
    recorder.close_progress(complete=last_ts >= p.last.value)
    if last_ts < p.last.value:
        engine.dispose()
        raise RuntimeError(f"the backtest engine stopped early at {pd.Timestamp(last_ts, tz='UTC')} "
                           f"(expected {p.last}); see the error logged above")

    fills = collect_fills(engine, p.spot_insts, p.perp_insts)
    # value the end state at the prices the venues published (tick-rounded), as the accounts see them
    last_state = {row[1]: row for row in recorder.state_rows}
    final_spot = {s: float(last_state[s][2]) for s in order}
    final_mark = {s: float(last_state[s][3]) for s in order}
    bt = settings.backtest
    starting = bt.spot_balance_usdt + bt.perp_balance_usdt
    ending = recorder.equity_rows[-1][-1]
    notes = [g for d in p.datas.values() for g in d.gaps]
    notes += [f"{f.what} print of {sym} at {pd.Timestamp(f.ts_ns, tz='UTC')} flagged ({f.price:g} vs mark {f.mark:g}: "
              f"{f.reason}); kept out of the funding prediction" for sym, feed in p.feeds.items() for f in feed.flags]
    result = BacktestResult(settings, order, p.first, p.last, p.data_path, ledger, recorder, strategies, p.feeds,
                            fills, starting, ending, final_spot, final_mark, len(p.events), run_seconds, notes)
    engine.dispose()
    return result


def collect_fills(engine: BacktestEngine, spot_insts: dict, perp_insts: dict) -> list[FillRow]:
    by_id = {inst.id: (s, "spot") for s, inst in spot_insts.items()}
    by_id.update({inst.id: (s, "perp") for s, inst in perp_insts.items()})
    rows = []
    for order in engine.cache.orders():
        tag = (order.tags or [""])[0]
        for ev in order.events:
            if not isinstance(ev, OrderFilled):
                continue
            sym, leg = by_id[ev.instrument_id]
            px = ev.last_px.as_double()
            fee = ev.commission.as_double()
            fee_usdt = fee if ev.commission.currency == USDT else fee * px
            rows.append(FillRow(ev.ts_event, sym, leg, ev.order_side.name if hasattr(ev.order_side, "name") else str(ev.order_side),
                                ev.last_qty.as_double(), px, fee_usdt, ev.commission.currency.code, tag,
                                str(ev.client_order_id)))
    rows.sort(key=lambda r: r.ts_ns)
    return rows


def run_backtest_cli(args) -> int:
    from basisbot.backtest.report import write_report
    from basisbot.backtest.results import print_summary, write_results
    from basisbot.config.settings import load_settings

    try:
        settings = load_settings(args.config, env_file=args.env_file,
                                 backtest_files={"brackets": getattr(args, "brackets", None),
                                                 "exchange_info": getattr(args, "exchange_info", None)})
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
        result = run_backtest(settings, config_path=args.config, data_dir=args.data, start=args.start, end=args.end,
                              symbols=symbols, progress=not args.quiet)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (BacktestInputError, market_data.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    summary = write_results(result, out)
    write_report(summary, out / "report.html")
    if not args.quiet:
        print_summary(result, summary, out)
    return 0
