"""The default of every strategy and account parameter, defined once: the config schema (`basisbot.config.schema`),
the strategy's config (`BasisCarryConfig`), the pure rules that take them (`carry`, `guard`, `schedule`) and the
local venue's starting balances read them from here. (Fee rates are venue facts: `basisbot.config.schema.FeeSettings`.)
"""

from __future__ import annotations

# the carry: sizing, entry and exit
HEDGE_RATIO = 1.0  # perp base qty / spot base qty
NOTIONAL_USDT = 10_000.0  # spot leg notional at entry
LEVERAGE = 3
MARGIN_MODE = "isolated"
ENTRY_APR = 0.0
EXIT_APR = -0.10
MIN_HOLD_INTERVALS = 3  # funding settlements
HORIZON_HOURS = 2160.0  # 90 days: the holding period an entry's round trip is amortised over
PERSISTENCE = 0.7  # weight of the settled funding level vs the current prediction
PERSISTENCE_HALFLIFE = 21.0  # settlements
SPREAD = 0.0002  # per leg and side, fraction of notional
REBALANCE_TOLERANCE = 0.02  # |hedge drift| that triggers a rebalance

# the two legs
SLIPPAGE_BAND = 0.002
LEG_TIMEOUT_S = 10.0

# the liquidation guard: distances (liquidation price - mark) / mark
WARN_DISTANCE = 0.12
ADD_MARGIN_DISTANCE = 0.10
TARGET_DISTANCE = 0.15
REDUCE_DISTANCE = 0.06
CLOSE_DISTANCE = 0.03
GUARD_HYSTERESIS = 0.01

# the settlement windows, seconds relative to the settlement time T
DECISION_BEFORE_S = 600
BLACKOUT_BEFORE_S = 300
BLACKOUT_AFTER_S = 60
BOOKING_AFTER_S = 60
GUARD_SWEEP_S = 60

# starting balances of a backtest and of the local venue
SPOT_BALANCE_USDT = 100_000.0
PERP_BALANCE_USDT = 50_000.0
