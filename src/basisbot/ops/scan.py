"""``basisbot scan``: rank every USDT perpetual of a venue (or of a data folder) by carry, filter, print a table,
write ``scan.csv`` and a config snippet (``symbols.toml``: ``[symbols.X]`` tables of the top N).

Sources:

* ``--data DIR``: every complete symbol of the folder (bundled or Binance dump layout, or the OKX layout with
  ``*_okx`` columns); the window is the last ``--days`` days of each symbol's data (or up to ``--end``).
* live (no ``--data``): the venue through ccxt (``--base-url`` points it elsewhere, e.g. ``basisbot sim``): the
  USDT perpetuals it lists, its 24 h tickers and current funding rates of all symbols, then per symbol the funding
  history and hourly closes of the window (the perp, and the index (Binance) or spot pair (OKX) for the basis).

Tier capacity: Binance's bundled leverage brackets (or ``backtest.brackets`` of the config); none for OKX yet (the
column stays empty and the filter does not apply). Notional and leverage are the config's most demanding enabled
symbol's (largest notional, highest leverage) unless ``--notional`` / ``--leverage`` say otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from basisbot.core.carry_scan import Candidate, Filters, candidate, rank

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
HOUR_MS = 3_600_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exchange", required=True, choices=("binance", "okx"))
    p.add_argument("--data", type=Path, help="scan a data folder instead of the live venue")
    p.add_argument("--top", type=int, default=5, help="symbols in the config snippet (default 5)")
    p.add_argument("--days", type=int, default=30, help="window of the realised funding and basis (default 30)")
    p.add_argument("--end", help="--data only: window end, YYYY-MM-DD (default: the end of each symbol's data)")
    p.add_argument("--out", type=Path, default=Path("scan"), help="folder for scan.csv and symbols.toml (./scan)")
    p.add_argument("--base-url", help="live: the venue's REST host (e.g. a local venue http://127.0.0.1:8900)")
    p.add_argument("--notional", type=float, help="spot leg notional per symbol, USDT (default: from the config)")
    p.add_argument("--leverage", type=int, help="perp leverage (default: from the config)")
    p.add_argument("--min-apr", type=float, default=0.0, help="least realised funding APR, fraction (default 0)")
    p.add_argument("--min-positive", type=float, default=0.5, help="least share of positive settlements (0.5)")
    p.add_argument("--max-basis-vol", type=float, help="most hourly basis volatility, fraction (default: no limit)")
    p.add_argument("--min-volume", type=float, default=0.0, help="least 24 h perp volume, USDT (default 0)")
    p.add_argument("--jobs", type=int, default=4, help="live: requests in flight at once (default 4)")


@dataclass
class Inputs:
    symbol: str
    rates: list[float]
    window_hours: float
    perp: list[float]
    spot: list[float]
    volume_usdt: float | None
    current_rate: float | None = None


# -- a data folder ----------------------------------------------------------------------------------------------
def _okx_layout(root: Path) -> bool:
    first = next(iter(sorted(root.glob("*_1h_*.parquet"))), None)
    return first is not None and any(c.endswith("_okx") for c in pd.read_parquet(first).columns)


def _window(index: pd.DatetimeIndex, days: int, end: str | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    stop = pd.Timestamp(end, tz="UTC") if end else index[-1] + pd.Timedelta(hours=1)
    return stop - pd.Timedelta(days=days), stop


def _from_frames(sym: str, bars: pd.DataFrame, ts: pd.Series, rates: pd.Series, days: int, end: str | None,
                 vol_col: str, px_col: str) -> Inputs:
    lo, hi = _window(bars.index, days, end)
    b = bars[(bars.index >= lo) & (bars.index < hi)]
    sel = ((ts >= lo) & (ts < hi)).to_numpy()
    last = b.iloc[-24:]
    volume = float(np.nansum(last[vol_col].to_numpy() * last[px_col].to_numpy())) if len(last) else None
    return Inputs(sym, [float(r) for r in rates.to_numpy()[sel]], (hi - lo) / pd.Timedelta(hours=1),
                  b["perp"].tolist(), b["spot"].tolist(), volume)


def from_data(root: Path, days: int, end: str | None) -> list[Inputs]:
    from basisbot.data.market_data import available_symbols, load_symbol

    if _okx_layout(root):
        out = []
        syms = sorted({p.name.split("_1h_")[0] for p in root.glob("*_1h_*.parquet")})
        for sym in syms:
            bars = pd.concat([pd.read_parquet(p) for p in sorted(root.glob(f"{sym}_1h_*.parquet"))]).sort_index()
            bars.index = pd.DatetimeIndex(bars.index).tz_localize("UTC")
            bars = bars.assign(perp=bars["close_perp_okx"], spot=bars["close_spot_okx"])
            f = pd.concat([pd.read_csv(p) for p in sorted(root.glob(f"{sym}_funding_*.csv"))])
            ts = pd.to_datetime(f["datetime"], utc=True, format="ISO8601")
            # the swap's volume is in contracts: the spot pair's base-coin volume is the liquidity measure here
            out.append(_from_frames(sym, bars, ts, f["funding_rate"], days, end, "volume_spot_okx", "spot"))
        return out
    out = []
    for sym in available_symbols(root):
        d = load_symbol(root, sym, None, end, allow_perp_gaps=True)
        bars = d.bars.assign(perp=d.bars["perp_close"], spot=d.bars["spot_close"])
        ts = pd.to_datetime(d.funding["ts"], utc=True)
        out.append(_from_frames(sym, bars, ts, d.funding["rate"], days, end, "perp_volume", "perp"))
    return out


# -- a live venue -----------------------------------------------------------------------------------------------
def _client(exchange: str, base_url: str | None):
    import ccxt.async_support as ccxt_async

    from basisbot.exchange.ccxt_setup import use_local_venue

    if exchange == "binance":
        ex = ccxt_async.binanceusdm({"enableRateLimit": True})
    else:
        ex = ccxt_async.okx({"enableRateLimit": True, "options": {"fetchMarkets": {"types": ["spot", "swap"]}}})
    return use_local_venue(ex, base_url) if base_url else ex


async def _closes(ex, market: str, since: int, until: int, params: dict, limit: asyncio.Semaphore) -> dict[int, float]:
    out: dict[int, float] = {}
    page = 1000 if ex.id.startswith("binance") else 100
    while since < until:
        async with limit:
            rows = await ex.fetch_ohlcv(market, "1h", since, page, dict(params))
        got = [r for r in rows if since <= r[0] < until]
        out.update({int(r[0]): float(r[4]) for r in got})
        if not got:
            break
        since = int(got[-1][0]) + HOUR_MS
    return out


async def _rates(ex, sym: str, since: int, now: int, limit: asyncio.Semaphore) -> list[float]:
    """Settled rates in [since, now): Binance pages forward from ``since``, OKX backwards from ``now`` (newest
    first, ``after`` = older than)."""
    got: dict[int, float] = {}
    if ex.id.startswith("binance"):
        start = since
        while start < now:
            async with limit:
                page = await ex.fetch_funding_rate_history(sym, start, 1000)
            page = [h for h in page if start <= h["timestamp"] < now]
            got.update({int(h["timestamp"]): float(h["fundingRate"]) for h in page})
            if len(page) < 1000:
                break
            start = int(page[-1]["timestamp"]) + 1
    else:
        after = now
        while True:
            async with limit:
                page = await ex.fetch_funding_rate_history(sym, since, 100, {"after": after})
            page = [h for h in page if since <= h["timestamp"] < after]
            got.update({int(h["timestamp"]): float(h["fundingRate"]) for h in page})
            if len(page) < 100:
                break
            after = min(int(h["timestamp"]) for h in page)
    return [got[t] for t in sorted(got)]


def _volume_usdt(t: dict) -> float | None:
    """24 h quote volume of a ticker; OKX's swap tickers carry it only as base-coin volume (volCcy24h)."""
    if t.get("quoteVolume") is not None:
        return float(t["quoteVolume"])
    info = t.get("info") or {}
    if info.get("volCcy24h") and t.get("last") is not None:
        return float(info["volCcy24h"]) * float(t["last"])
    return None


async def _live_symbol(ex, m: dict, since: int, now: int, tickers: dict, current: dict,
                       limit: asyncio.Semaphore) -> Inputs:
    sym = m["symbol"]
    rates = await _rates(ex, sym, since, now, limit)
    perp = await _closes(ex, sym, since, now, {}, limit)
    if ex.id.startswith("binance"):
        ref = await _closes(ex, sym, since, now, {"price": "index"}, limit)
    else:
        ref = await _closes(ex, f"{m['base']}/USDT", since, now, {}, limit)
    hours = sorted(perp)
    rate_now = (current.get(sym) or {}).get("fundingRate")
    return Inputs(m["id"].replace("-SWAP", "").replace("-", ""), rates, (now - since) / HOUR_MS,
                  [perp[h] for h in hours], [ref.get(h, math.nan) for h in hours],
                  _volume_usdt(tickers.get(sym) or {}), None if rate_now is None else float(rate_now))


async def from_venue(exchange: str, base_url: str | None, days: int, jobs: int) -> list[Inputs]:
    ex = _client(exchange, base_url)
    try:
        await ex.load_markets()
        perps = [m for m in ex.markets.values() if m.get("swap") and m.get("linear") and m.get("settle") == "USDT"
                 and m.get("active") is not False]
        now = int(await ex.fetch_time()) if ex.has.get("fetchTime") else ex.milliseconds()
        now -= now % HOUR_MS
        since = now - days * 24 * HOUR_MS
        tickers = await ex.fetch_tickers([m["symbol"] for m in perps]) if ex.has.get("fetchTickers") else {}
        current = {}
        if ex.has.get("fetchFundingRates"):
            try:
                current = await ex.fetch_funding_rates([m["symbol"] for m in perps])
            except Exception:  # noqa: BLE001 - the current rate is shown, not ranked on: a venue without it is fine
                current = {}
        limit = asyncio.Semaphore(jobs)
        return list(await asyncio.gather(*(_live_symbol(ex, m, since, now, tickers, current, limit) for m in perps)))
    finally:
        await ex.close()


# -- the command ------------------------------------------------------------------------------------------------
def _sizing(args: argparse.Namespace) -> tuple[float, int, Path | None, str]:
    notional, leverage, brackets, where = args.notional, args.leverage, None, "the command line"
    cfg_path = getattr(args, "config", None)
    if cfg_path is not None and cfg_path.exists():
        from basisbot.config.settings import load_settings

        s = load_settings(cfg_path, env_file=args.env_file)
        enabled = [s.symbols[k] for k in s.enabled_symbols()]
        if notional is None and enabled:
            notional = max(x.notional_usdt for x in enabled)
        if leverage is None and enabled:
            leverage = max(x.leverage for x in enabled)
        brackets = s.backtest.brackets
        where = f"{cfg_path}"
    return float(notional or 10_000.0), int(leverage or 3), brackets, where


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _num(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else repr(float(x))


def write_outputs(out: Path, judged, inputs: dict[str, Inputs], top: int, notional: float, leverage: int,
                  header: str) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "scan.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "symbol", "passed", "funding_apr", "positive_share", "settlements", "basis_vol",
                    "volume_usdt_24h", "capacity_usdt", "current_rate", "rejected_because"])
        for i, (c, why) in enumerate(judged, start=1):
            w.writerow([i, c.symbol, not why, f"{c.funding_apr:.6f}", f"{c.positive_share:.4f}", c.settlements,
                        _fmt(c.basis_vol, ".8f"), _fmt(c.volume_usdt, ".2f"), _fmt(c.capacity_usdt, ".0f"),
                        _fmt(inputs[c.symbol].current_rate, ".8f"), "; ".join(why)])
    chosen = [c for c, why in judged if not why][:top]
    lines = [f"# {header}", f"# top {len(chosen)} by realised funding APR; notional {_num(notional)} USDT at "
             f"{leverage}x. Paste into the config (with [portfolio] capital_usdt / max_symbols to share capital).", ""]
    for c in chosen:
        lines += [f"[symbols.{c.symbol}]  # APR {c.funding_apr:.2%}, {c.positive_share:.0%} positive, basis vol "
                  f"{_fmt(c.basis_vol, '.3%')}", "enabled = true", "hedge_ratio = 1.0",
                  f"notional_usdt = {_num(notional)}", f"leverage = {leverage}", ""]
    (out / "symbols.toml").write_text("\n".join(lines))
    return [c.symbol for c in chosen]


def print_table(judged: list[tuple[Candidate, list[str]]]) -> None:
    print(f"{'#':>3}  {'symbol':<14}{'APR':>9}{'pos':>6}{'n':>5}{'basis vol':>11}{'24h vol USDT':>16}"
          f"{'capacity':>14}  status")
    for i, (c, why) in enumerate(judged, start=1):
        print(f"{i:>3}  {c.symbol:<14}{c.funding_apr:>9.2%}{c.positive_share:>6.0%}{c.settlements:>5}"
              f"{_fmt(c.basis_vol, '.3%'):>11}{_fmt(c.volume_usdt, ',.0f'):>16}{_fmt(c.capacity_usdt, ',.0f'):>14}"
              f"  {'ok' if not why else why[0]}")


def scan_main(args: argparse.Namespace) -> int:
    from basisbot.data.symbol_data import DataError

    if args.top < 1 or args.days < 1 or not 1 <= args.jobs <= 8:
        print("error: --top and --days must be at least 1, --jobs between 1 and 8", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.base_url is not None and not args.base_url.startswith(("http://", "https://")):
        print(f"error: --base-url {args.base_url!r}: expected http://HOST:PORT", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.data is not None and not args.data.is_dir():
        print(f"error: --data {args.data}: not a folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    notional, leverage, brackets_file, where = _sizing(args)
    try:
        if args.data is not None:
            inputs = from_data(args.data, args.days, args.end)
            source = f"data folder {args.data}"
        else:
            inputs = asyncio.run(from_venue(args.exchange, args.base_url, args.days, args.jobs))
            source = f"{args.exchange} {args.base_url or 'live'}"
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # ccxt's network and exchange errors: the venue could not be read
        print(f"error: could not read {args.exchange} at {args.base_url or 'its API'}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_FAILURE
    if not inputs:
        print(f"error: no USDT perpetual found in {source}", file=sys.stderr)
        return EXIT_FAILURE
    tables: dict = {}
    if args.exchange == "binance":
        from basisbot.venues.binance.reference import bracket_tables

        tables = bracket_tables(brackets_file)
    cands = [candidate(i.symbol, i.rates, i.window_hours, i.perp, i.spot, i.volume_usdt, tables.get(i.symbol),
                       leverage) for i in inputs]
    filters = Filters(min_apr=args.min_apr, min_positive_share=args.min_positive, max_basis_vol=args.max_basis_vol,
                      min_volume_usdt=args.min_volume, notional_usdt=notional)
    judged = rank(cands, filters)
    print(f"# scan of {source}: {len(cands)} USDT perpetuals, {args.days}-day window; notional {_num(notional)} USDT at "
          f"{leverage}x (from {where})")
    print_table(judged)
    chosen = write_outputs(args.out, judged, {i.symbol: i for i in inputs}, args.top, notional, leverage,
                           f"basisbot scan --exchange {args.exchange} ({source}, {args.days}-day window)")
    print(f"wrote {args.out / 'scan.csv'} and {args.out / 'symbols.toml'} ({', '.join(chosen) or 'no symbol passed'})")
    return EXIT_OK
