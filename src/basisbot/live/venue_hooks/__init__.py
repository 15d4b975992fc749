"""What the live adapter does differently per exchange, one module per venue, chosen by `[exchange] name`.

The adapter (`basisbot.live`) uses ccxt.pro's unified calls wherever they serve both exchanges; every place where
Binance and OKX differ is one method of `VenueHooks`, implemented in `binance.py` and `okx.py`:

| hook | Binance | OKX |
|---|---|---|
| clients | `binance` (spot) + `binanceusdm` | `okx` twice (one unified account behind both) |
| market ids | BTCUSDT / BTCUSDT | BTC-USDT / BTC-USDT-SWAP |
| market rules | exchangeInfo filters | instruments (`tickSz`, `lotSz`, `minSz`, `ctVal`): base units = contracts × ctVal |
| order params | `newClientOrderId`, `reduceOnly` | `clientOrderId` (clOrdId, alphanumeric), `marginMode` (tdMode), `tgtCcy` |
| margin setup | `set_margin_mode` + `set_leverage` | `set_leverage(marginMode=...)` (the mode is per order) |
| add isolated margin | transfer spot -> futures, `add_margin` | `POST /api/v5/account/position/margin-balance` (no transfer) |
| leverage tiers | `fetch_leverage_tiers` (signed) | public `position-tiers` -> OKX tier tables (sizes in base units) |
| funding stream | in the markPrice stream (`r`, `T`) | `watch_funding_rate` beside `watch_mark_price` |
| liquidations | `autoclose-` / `adl_autoclose` client ids | order `category` (full/partial liquidation, adl) |
| ADL rank | `fetch_positions_adl_rank` (`adlQuantile` 0..4) | each position's `adl` (0..5) from `fetch_positions` |

Quantities: the nautilus instruments are in base units on both venues; `contract_value` (1 on Binance and on every
spot market) converts the exchange's contracts exactly (Decimal) where ccxt's amounts come in or go out.
"""

from __future__ import annotations

from basisbot.live.venue_hooks.base import VenueHooks


def hooks_for(exchange: str) -> VenueHooks:
    """The live hooks of `[exchange] name` (ValueError naming the known venues otherwise)."""
    if exchange == "binance":
        from basisbot.live.venue_hooks.binance import BinanceHooks

        return BinanceHooks()
    if exchange == "okx":
        from basisbot.live.venue_hooks.okx import OkxHooks

        return OkxHooks()
    raise ValueError(f"live trading on {exchange!r} is not supported: known venues are 'binance', 'okx'")


__all__ = ["VenueHooks", "hooks_for"]
