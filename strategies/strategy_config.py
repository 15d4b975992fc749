"""The one mapping from the operator's typed settings to the strategy's config, used by the backtest runner, the live
and paper node (`strategy_config`), and a live config reload (`basisbot.config.strategy_fields.settings_fields`, the same
field table). The perp's leverage brackets are passed once, as a typed `BracketTable` (the backtest's resolved
snapshot, the exchange's table live).
"""

from __future__ import annotations

from basisbot.config.settings import Settings
from basisbot.config.strategy_fields import settings_fields
from basisbot.core.brackets import BracketTable
from basisbot.strategies.basis_carry import BasisCarryConfig

# The periodic guard sweep is live's backstop against a silent mark stream. A backtest's marks are the data itself:
# every bar has them and each mark outside the guard's quiet band runs the guard, so a sweep could only re-check the
# last mark against a margin state that changed since, which the next mark does at most one intra-bar step later.
# It is off there (70k timer events in the 2-year quick start; its outputs are byte-identical without them).
BAR_MARKS_GUARD_SWEEP_S = 0


def strategy_config(settings: Settings, symbol: str, spot_id: str, perp_id: str, spot_bar_type: str | None, *,
                    table: BracketTable, journal: bool = True) -> BasisCarryConfig:
    """The strategy config of `symbol`. `spot_bar_type`: the backtest prices the spot leg from these bars (its marks
    come with the data, and the periodic guard sweep is off); None live, where quotes price it. `table`: the
    perp's leverage brackets (the backtest's resolved snapshot, the exchange's table live). `journal`: whether the
    strategy publishes its journal records (a backtest has no journal)."""
    fields = settings_fields(settings, symbol)
    if spot_bar_type is not None:
        fields["guard_sweep_s"] = BAR_MARKS_GUARD_SWEEP_S
    return BasisCarryConfig(
        strategy_id=f"BasisCarry-{symbol}",
        order_id_tag=symbol[:-4][:10],
        symbol=symbol,
        spot_instrument_id=spot_id,
        perp_instrument_id=perp_id,
        brackets=settings.venue.tier_rows(table),
        exchange=settings.exchange.name,
        spot_bar_type=spot_bar_type,
        journal=journal,
        **fields,
    )
