"""``basisbot data download``: argument checks, the run with a progress bar on stderr, the summary and exit status
(0 every file verified, 1 something missing or refused (listed), 2 bad input: nothing fetched)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from basisbot.data.download.binance import API, SITE, BinanceDump
from basisbot.data.download.manifest import Manifest
from basisbot.data.download.months import BadRequest, month_range, parse_symbols
from basisbot.data.download.report import Report

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT = 0, 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exchange", required=True, choices=("binance", "okx"))
    p.add_argument("--symbols", required=True, help="comma-separated USDT pairs, e.g. BTCUSDT,XRPUSDT")
    p.add_argument("--start", required=True, help="first month, YYYY-MM (UTC)")
    p.add_argument("--end", required=True, help="last month, YYYY-MM (inclusive)")
    p.add_argument("--out", type=Path, required=True, help="data folder to fill (what backtest --data reads)")
    p.add_argument("--base-url", help=f"binance: the dump site's root (default {SITE}); okx: the REST host "
                   "(default OKX's own), e.g. a local mirror http://127.0.0.1:8000")
    p.add_argument("--api-url", default=API, help=f"binance: REST host for the current month's funding ({API})")
    p.add_argument("--jobs", type=int, default=4, help="requests in flight at once (default 4, at most 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace, today: _dt.date):
    symbols = parse_symbols(args.symbols)
    months = month_range(args.start, args.end, today)
    if not 1 <= args.jobs <= 8:
        raise BadRequest(f"--jobs {args.jobs}: between 1 and 8 (the sources throttle harder than that)")
    for name in ("base_url", "api_url"):
        url = getattr(args, name)
        if url is not None and not url.startswith(("http://", "https://")):
            raise BadRequest(f"--{name.replace('_', '-')} {url!r}: expected http://HOST[:PORT] or https://...")
    if args.out.exists() and not args.out.is_dir():
        raise BadRequest(f"--out {args.out}: exists and is not a folder")
    return symbols, months


def download_main(args: argparse.Namespace, *, okx_client: Callable[[str | None], object] | None = None,
                  today: _dt.date | None = None) -> int:
    """Run a download; ``okx_client(base_url)`` builds the ccxt OKX client (the caller points its hosts)."""
    today = today or _dt.datetime.now(_dt.UTC).date()
    client = None
    try:
        symbols, months = _check(args, today)
        if args.exchange == "okx":
            if okx_client is None:
                raise BadRequest("okx: no ccxt client factory given")
            try:
                client = okx_client(args.base_url)
            except ValueError as exc:
                raise BadRequest(f"--base-url {args.base_url!r}: {exc}") from None
        args.out.mkdir(parents=True, exist_ok=True)
        source = args.base_url or ("binance-dump" if args.exchange == "binance" else "okx-api")
        manifest = Manifest.open(args.out, args.exchange, source)
    except BadRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.exchange == "binance":
        dl = BinanceDump(args.out, manifest, base_url=args.base_url or SITE, api_url=args.api_url,
                         jobs=args.jobs, today=today)
    else:
        from basisbot.data.download.okx import OkxDownload

        dl = OkxDownload(args.out, manifest, client, jobs=args.jobs, today=today)
    bar = tqdm(total=len(dl.plan(symbols, months)), desc=f"download {args.exchange}", unit="file",
               file=sys.stderr, disable=args.quiet, dynamic_ncols=True)
    dl.tick = lambda: bar.update(1)
    try:
        report = asyncio.run(dl.run(symbols, months))
    finally:
        bar.close()
        manifest.save()
    return _finish(report, args.out)


def _finish(report: Report, out: Path) -> int:
    for line in report.lines():
        print(line, file=sys.stderr if line.startswith(("missing", "corrupt", "failed")) else sys.stdout)
    if report.problems:
        print(f"error: {len(report.problems)} file(s) missing or refused (listed above); {out} holds only "
              "verified files", file=sys.stderr)
        return EXIT_INCOMPLETE
    print(f"ok: {out} is ready for backtest --data {out}")
    return EXIT_OK
