"""Settings of the local venue (everything has a default; the CLI and tests override what they need)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SimConfig:
    data_dir: Path
    api_key: str
    api_secret: str
    exchange: str = "binance"          # the API the venue speaks: "binance" or "okx" (one engine either way)
    api_passphrase: str | None = None  # okx: the passphrase OKX signs private requests with
    port: int = 0                      # 0: pick a free port (read SimServer.port after start)
    host: str = "127.0.0.1"
    speed: float = 60.0                # replay seconds per wall second
    start: str | None = None           # replay start (UTC date/datetime); None: first bar of the data
    symbols: list[str] | None = None   # None: every symbol with data
    exchange_info: Path | None = None  # operator's GET /fapi/v1/exchangeInfo JSON (wins over the bundled capture);
                                       # okx: OKX's GET /api/v5/public/instruments?instType=SWAP answer
    brackets: Path | None = None       # operator's leverage brackets JSON (wins over the bundled snapshots);
                                       # okx: OKX's position-tiers answer
    paused: bool = False               # start with the replay clock paused
    tick_s: float = 0.05               # wall seconds between engine steps / market stream pushes

    # fees (fractions of notional)
    spot_fee: float = 0.001            # maker and taker, charged in the asset received
    futures_taker_fee: float = 0.0005
    futures_maker_fee: float = 0.0002

    # initial balances
    spot_balances: dict[str, float] = field(default_factory=lambda: {"USDT": 100_000.0})
    futures_usdt: float = 50_000.0

    # futures account defaults (Binance: cross, 20x)
    default_leverage: int = 20
    default_margin_type: str = "CROSSED"   # or "ISOLATED"

    # auth
    recv_window_default_ms: int = 5000

    # newClientOrderId reuse: "any" rejects any id already used in this session (idempotent retries);
    # "open" follows Binance's documented rule (only ids of OPEN orders are refused)
    duplicate_client_id: str = "any"

    # predicted funding rate streamed as markPrice "r" / premiumIndex lastFundingRate:
    # "interpolate": from the last settled rate to the data's next settled rate, linear in the elapsed interval;
    # "next": the data's next settled rate; "last": the last settled rate
    predicted_rate: str = "interpolate"

    # spot/perp book: size shown at the best bid/ask (base units); market orders are filled in full at the touch
    book_qty: float = 1_000.0
    # listen keys expire after this many wall seconds without a keepalive (Binance: 60 min)
    listen_key_ttl_s: float = 3600.0
    # outgoing ws messages queued per connection before the connection is dropped as a slow consumer
    ws_queue_max: int = 10_000
