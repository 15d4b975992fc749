"""`basisbot` command line: backtest | sweep | paper | live | sim | data download | scan | config check | control |
status | journal.

Exit status: 0 success, 2 bad configuration or bad input (nothing was started), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from basisbot.config.checks import leverage_problems, venue_reference
from basisbot.config.loading import ConfigError, effective_config, load_settings
from basisbot.data.bundled_files import BundledDataMissing
from basisbot.venues.binance.reference import VenueDataError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_CONFIG = Path("config/basisbot.toml")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"global TOML config (default {DEFAULT_CONFIG})")
    p.add_argument("--env-file", type=Path, default=Path(".env"), help="dotenv file with BASISBOT_* variables")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="basisbot", description="Basis/carry bot: long spot, short perpetual, earn funding.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bt = sub.add_parser("backtest", help="run the carry strategy on historical data")
    _add_config(bt)
    bt.add_argument("--out", type=Path, required=True, help="results folder (summary.json, funding.csv, report.html, ...)")
    bt.add_argument("--data", type=Path, help="data folder: bundled layout or Binance public-dump layout "
                    "(default: backtest.data, else the bundled Binance data)")
    bt.add_argument("--start", help="first day, YYYY-MM-DD (UTC)")
    bt.add_argument("--end", help="end day (exclusive), YYYY-MM-DD (UTC)")
    bt.add_argument("--symbols", help="comma-separated subset of the config's symbols, e.g. BTCUSDT,ETHUSDT")
    bt.add_argument("--brackets", type=Path, help="leverage brackets / position tiers JSON (Binance GET "
                    "/fapi/v1/leverageBracket answer or ccxt fetch_leverage_tiers; OKX's position-tiers answer or "
                    "ccxt fetch_market_leverage_tiers); overrides backtest.brackets, wins over the bundled ones")
    bt.add_argument("--exchange-info", "--markets", dest="exchange_info", type=Path,
                    help="market rules of the venue's perps: Binance GET /fapi/v1/exchangeInfo JSON, or OKX's "
                    "instruments answer / ccxt's okx markets (contract value, lot, tick); overrides "
                    "backtest.exchange_info, wins over the bundled snapshot")
    bt.add_argument("--quiet", action="store_true", help="no progress bar or summary table")

    for name, text in (("live", "trade on the exchange"), ("paper", "live market data, simulated fills")):
        p = sub.add_parser(name, help=text)
        _add_config(p)
        p.add_argument("--venue-speed", type=float, default=None,
                       help="replay speed of a replaying venue (overrides [live] venue_speed; default: asked from "
                            "the local venue, else 1)")

    sim = sub.add_parser("sim", help="serve a local venue (Binance's or OKX's API, --exchange) replaying real data")
    sim.add_argument("--port", type=int, required=True, help="listen on 127.0.0.1:PORT (0 = any free port)")
    sim.add_argument("--data", type=Path, help="bundled layout or Binance public-dump layout (default: the bundled "
                     "Binance data)")
    sim.add_argument("--speed", type=float, default=60.0, help="replay seconds per wall second (default 60)")
    sim.add_argument("--start", help="replay start, YYYY-MM-DD (default: start of the data)")
    sim.add_argument("--api-key", help="the one API key accepted (default: generated and printed)")
    sim.add_argument("--api-secret", help="its HMAC secret")
    from basisbot.sim.cliargs import add_sim_arguments  # argparse only: keeps start-up quick

    add_sim_arguments(sim)

    sw = sub.add_parser("sweep", help="many backtests (grid, Optuna search, walk-forward) as Ray tasks")
    _add_config(sw)
    from basisbot.sweep.cliargs import add_arguments as add_sweep_arguments  # argparse only: keeps start-up quick

    add_sweep_arguments(sw)

    data = sub.add_parser("data", help="market data tools")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    dl = data_sub.add_parser("download", help="fetch spot, perp, mark-price candles and funding of any symbol into a "
                             "folder backtest/sweep/sim --data read (Binance dump site, or OKX through ccxt)")
    from basisbot.data.download.command import add_arguments as add_download_arguments  # argparse only

    add_download_arguments(dl)

    sc = sub.add_parser("scan", help="rank every USDT perpetual by carry (live venue or a data folder); write "
                        "scan.csv and a [symbols.X] config snippet of the top N")
    _add_config(sc)
    from basisbot.ops.scan import add_arguments as add_scan_arguments  # argparse only

    add_scan_arguments(sc)

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    chk = cfg_sub.add_parser("check", help="validate and print the effective config with where each value came from")
    _add_config(chk)

    ctl = sub.add_parser("control", help="pause | resume | flatten | status of the running node (its ops server)")
    _add_config(ctl)
    from basisbot.ops.control_cli import add_arguments as add_control_arguments  # argparse only

    add_control_arguments(ctl)

    st = sub.add_parser("status", help="per-symbol state from the journal")
    _add_config(st)
    jr = sub.add_parser("journal", help="list or export the journal")
    _add_config(jr)
    jr.add_argument("--format", choices=("table", "json", "csv"), default="table")
    jr.add_argument("--out", type=Path, help="json: write to this file; csv: one file per table in this folder")
    return parser


def _lowest_prices(settings, config_path: Path | None) -> dict[str, float]:
    """Each enabled symbol's lowest perp price in the configured backtest window (its data folder, or the venue's
    bundled data), for leverage checks against tiers by size; symbols without data are left out."""
    from basisbot.backtest.run import resolve_data_dir
    from basisbot.data import market_data

    bt, venue = settings.backtest, settings.venue
    out: dict[str, float] = {}
    try:
        data_path = resolve_data_dir(bt.data, config_path, venue.name)
        specs = venue.bundled_perp_rules()
        for s in settings.enabled_symbols():
            if s in specs:
                d = market_data.load_symbol(data_path, s, start=bt.start, end=bt.end, allow_perp_gaps=True,
                                            exchange=venue.data_suffix, contract_value=specs[s].contract_value)
                out[s] = float(d.bars["perp_low"].min())
    except (OSError, ValueError, KeyError, BundledDataMissing):
        pass  # no data for the window: the tiers' own bounds are checked (config.checks.leverage_problems)
    return out


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, env_file=args.env_file)
    tables, _, _ = venue_reference(settings, str(args.config), Path(args.config) if args.config else None)
    if any(callable(getattr(tables.get(s), "check_leverage", None)) for s in settings.enabled_symbols()):
        # tiers by size: the leverage must fit the tier of the largest position, bought at the lowest price
        source = str(settings.backtest.brackets) if settings.backtest.brackets else "bundled snapshot"
        problems = leverage_problems(settings, tables, str(args.config), source,
                                     prices=_lowest_prices(settings, Path(args.config) if args.config else None))
        if problems:
            raise ConfigError(str(args.config), problems)
    rows = effective_config(settings, args.config, args.env_file)
    width = max(len(k) for k, _, _ in rows)
    vwidth = min(40, max(len(v) for _, v, _ in rows))
    print(f"# effective configuration from {args.config} (mode: {settings.mode})")
    for key, value, source in rows:
        print(f"{key:<{width}}  {value:<{vwidth}}  [{source}]")
    enabled = ", ".join(settings.enabled_symbols()) or "none"
    print(f"# OK: {len(settings.symbols)} symbol(s) configured, enabled: {enabled}")
    return EXIT_OK


def _okx_client(base_url: str | None):
    """ccxt's OKX client (rate-limited, spot and swap markets only); ``base_url`` replaces its REST host."""
    import ccxt.async_support as ccxt_async

    client = ccxt_async.okx({"enableRateLimit": True, "options": {"fetchMarkets": {"types": ["spot", "swap"]}}})
    if base_url:
        client.urls["api"] = {"rest": base_url.rstrip("/")}  # OKX has one REST root; paths are kept
    return client


def cmd_backtest(args: argparse.Namespace) -> int:
    from basisbot.backtest.run import run_backtest_cli

    return run_backtest_cli(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "config":
            return cmd_config_check(args)
        if args.command == "data":
            from basisbot.data.download.command import download_main

            return download_main(args, okx_client=_okx_client)
        if args.command == "backtest":
            return cmd_backtest(args)
        if args.command == "scan":
            from basisbot.ops.scan import scan_main

            return scan_main(args)
        if args.command == "sweep":
            from basisbot.sweep.command import sweep_main

            return sweep_main(args)
        if args.command == "sim":
            from basisbot.sim import main as sim_main

            return sim_main(args)
        if args.command == "control":
            from basisbot.ops.control_cli import control_main

            return control_main(args)
        if args.command == "status":
            from basisbot.ops.status import status_main

            return status_main(args)
        if args.command == "journal":
            from basisbot.ops.status import journal_main

            return journal_main(args)
        if args.command in ("live", "paper"):
            from basisbot.live.node import live_main, paper_main
            from basisbot.ops.service import OpsService

            main = live_main if args.command == "live" else paper_main
            return main(args, ops_factory=OpsService)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (VenueDataError, BundledDataMissing) as e:  # bundled reference or market data missing or unreadable
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
