"""OKX's regular-user (Lv1) trading fees, fractions of notional.

Source: https://www.okx.com/fees (regular users, Lv1: fewer than 500 OKB held, assets and 30-day volume below the
VIP thresholds): spot maker 0.080 %, taker 0.100 %; perpetual and expiry futures maker 0.020 %, taker 0.050 %.
ccxt's OKX markets state the same swap rates (maker 0.0002, taker 0.0005)."""

from __future__ import annotations

from decimal import Decimal

SPOT_MAKER = Decimal("0.0008")
SPOT_TAKER = Decimal("0.0010")
SWAP_MAKER = Decimal("0.0002")
SWAP_TAKER = Decimal("0.0005")
