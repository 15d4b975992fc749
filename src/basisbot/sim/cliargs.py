"""Optional ``basisbot sim`` flags (argparse only: cheap to import when the CLI builds its parser)."""

from __future__ import annotations

import argparse


def add_sim_arguments(p: argparse.ArgumentParser) -> None:
    """Optional flags beyond the ones cli.py already declares (--port --data --speed --start --api-key
    --api-secret)."""
    p.add_argument("--exchange", choices=("binance", "okx"), default="binance",
                   help="the exchange API the venue speaks (default binance); okx replays OKX data (backtests/data/okx)")
    p.add_argument("--api-passphrase", help="okx: the passphrase accepted with the API key (default: generated)")
    p.add_argument("--symbols", help="comma-separated subset, e.g. BTCUSDT,ETHUSDT (default: all with data)")
    p.add_argument("--paused", action="store_true", help="start with the replay clock paused")
    p.add_argument("--exchange-info", help="Binance GET /fapi/v1/exchangeInfo JSON: market rules of symbols the "
                   "bundled 2021 capture lacks (wins over it)")
    p.add_argument("--brackets", help="leverage brackets JSON (Binance leverageBracket answer or ccxt "
                   "fetch_leverage_tiers); wins over the bundled snapshots")
    p.add_argument("--spot-usdt", type=float, default=100_000.0, help="initial spot USDT (default 100000)")
    p.add_argument("--futures-usdt", type=float, default=50_000.0, help="initial USDⓈ-M USDT (default 50000)")
    p.add_argument("--spot-fee", type=float, default=0.001)
    p.add_argument("--futures-taker-fee", type=float, default=0.0005)
    p.add_argument("--futures-maker-fee", type=float, default=0.0002)
    p.add_argument("--leverage", type=int, default=20, help="default leverage per symbol (Binance: 20)")
    p.add_argument("--margin-type", choices=("CROSSED", "ISOLATED"), default="CROSSED")
    p.add_argument("--duplicate-client-id", choices=("any", "open"), default="any")
    p.add_argument("--predicted-rate", choices=("interpolate", "next", "last"), default="interpolate")
    p.add_argument("--fault-delay-ms", type=int, default=0, help="delay every REST request")
    p.add_argument("--fault-fail-next", type=int, default=0, help="refuse the next N REST requests")
    p.add_argument("--fault-fail-status", type=int, default=503, help="status of the refused requests")
    p.add_argument("--fault-reject-next-order", choices=("spot", "futures"), help="reject the next order there")
    p.add_argument("--fault-partial-fill", metavar="VENUE:FRACTION", help="e.g. futures:0.5")
    p.add_argument("--fault-freeze-mark", action="store_true", help="no markPrice stream messages")
