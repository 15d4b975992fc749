"""Which `BasisCarryConfig` field comes from which setting, and which of them a running strategy may change.

Each field is one `SettingsField` row: its name, how it is read from `Settings` for a symbol, and whether a live
config reload may change it on a running strategy (`tunable`). `TUNABLE_FIELDS` (what
`BasisCarryStrategy.apply_config` accepts) is derived from the table; the rest (leverage, margin mode, the settled
level's half-life) is set up at start and changes with a restart. Pure: no nautilus, no strategy import, so the
strategy itself can import `TUNABLE_FIELDS` from here. `basisbot.strategies.strategy_config` builds the config from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from basisbot.config.schema import Settings


@dataclass(frozen=True)
class SettingsField:
    """One `BasisCarryConfig` field read from the settings of a symbol."""

    name: str
    read: Callable[[Settings, str], Any]
    tunable: bool  # a live config reload may change it on a running strategy


def _sym(attr: str) -> Callable[[Settings, str], Any]:
    return lambda s, sym: getattr(s.symbols[sym], attr)


SETTINGS_FIELDS: tuple[SettingsField, ...] = (
    SettingsField("hedge_ratio", _sym("hedge_ratio"), True),
    SettingsField("notional_usdt", _sym("notional_usdt"), True),
    SettingsField("max_notional_usdt", _sym("max_notional_usdt"), True),
    SettingsField("leverage", _sym("leverage"), False),
    SettingsField("margin_mode", _sym("margin_mode"), False),
    SettingsField("entry_apr", _sym("entry_apr"), True),
    SettingsField("exit_apr", _sym("exit_apr"), True),
    SettingsField("min_hold_intervals", _sym("min_hold_intervals"), True),
    SettingsField("rebalance_tolerance", _sym("rebalance_tolerance"), True),
    SettingsField("horizon_hours", _sym("horizon_hours"), True),
    SettingsField("persistence", _sym("persistence"), True),
    SettingsField("spread", _sym("spread"), True),
    SettingsField("persistence_halflife", _sym("persistence_halflife"), False),  # the settled level's memory
    SettingsField("spot_taker_fee", lambda s, sym: s.fees.spot_taker, True),
    SettingsField("perp_taker_fee", lambda s, sym: s.fees.perp_taker, True),
    SettingsField("leg_timeout_s", _sym("leg_timeout_s"), True),
    SettingsField("slippage_band", _sym("slippage_band"), True),
    SettingsField("guard_enabled", lambda s, sym: s.symbols[sym].guard.enabled, True),
    SettingsField("guard", lambda s, sym: s.symbols[sym].guard.thresholds(), True),
    SettingsField("schedule", lambda s, sym: s.schedule_for(sym).windows(), True),
    SettingsField("guard_sweep_s", lambda s, sym: s.schedule_for(sym).guard_sweep_s, True),
)

TUNABLE_FIELDS: frozenset[str] = frozenset(f.name for f in SETTINGS_FIELDS if f.tunable)


def settings_fields(settings: Settings, symbol: str) -> dict[str, Any]:
    """The `BasisCarryConfig` field values of `symbol` under `settings` (what a live config reload hands to
    `BasisCarryStrategy.apply_config`)."""
    return {f.name: f.read(settings, symbol) for f in SETTINGS_FIELDS}
