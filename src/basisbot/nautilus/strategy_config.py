"""The one mapping from the operator's typed settings to the strategy's config, used by the backtest runner, the live
and paper node (`strategy_config`), and a live config reload (`basisbot.strategy_fields.settings_fields`, the same
field table). The perp's leverage brackets are passed once, as a typed `BracketTable` (the backtest's resolved
snapshot, the exchange's table live).
"""

from __future__ import annotations

from basisbot.brackets import BracketTable, bracket_rows
from basisbot.settings import Settings
from basisbot.strategy_fields import settings_fields
from strategies.basis_carry import BasisCarryConfig

# the backtest's marks are at least hourly and every one runs the guard: the periodic sweep is only a backstop there
BAR_MARKS_MIN_GUARD_SWEEP_S = 3600


def strategy_config(settings: Settings, symbol: str, spot_id: str, perp_id: str, spot_bar_type: str | None, *,
                    table: BracketTable, journal: bool = True) -> BasisCarryConfig:
    """The strategy config of `symbol`. `spot_bar_type`: the backtest prices the spot leg from these bars (its marks
    are then hourly, and the periodic guard sweep at least hourly); None live, where quotes price it. `table`: the
    perp's leverage brackets (the backtest's resolved snapshot, the exchange's table live). `journal`: whether the
    strategy publishes its journal records (a backtest has no journal)."""
    fields = settings_fields(settings, symbol)
    if spot_bar_type is not None:
        fields["guard_sweep_s"] = max(fields["guard_sweep_s"], BAR_MARKS_MIN_GUARD_SWEEP_S)
    return BasisCarryConfig(
        strategy_id=f"BasisCarry-{symbol}",
        order_id_tag=symbol[:-4][:10],
        symbol=symbol,
        spot_instrument_id=spot_id,
        perp_instrument_id=perp_id,
        brackets=bracket_rows(table),
        spot_bar_type=spot_bar_type,
        journal=journal,
        **fields,
    )
