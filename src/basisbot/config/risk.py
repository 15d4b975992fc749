"""`[risk]`: limits evaluated continuously in live, paper and backtests (`basisbot.core.risk` holds the rules).

Every limit is optional; a `[risk]` table with none set is the same as no table. A breach of the daily loss or the
drawdown limit takes `action` (pause: no new entries; flatten: close every carry, then pause), is journaled with its
figures, raises a critical alert and stays until an explicit `resume`. The gross notional cap and stale data only
refuse new entries while they hold.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RiskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    max_daily_loss_usdt: float | None = Field(
        None, gt=0, description="equity drop within the UTC day (incl. unrealised PnL and funding), USDT")
    max_drawdown_pct: float | None = Field(None, gt=0, le=100, description="equity drop from its peak, percent")
    max_gross_notional_usdt: float | None = Field(
        None, gt=0, description="both legs of every carry, at market: a new entry beyond it is refused")
    stale_data_s: float | None = Field(
        None, gt=0, description="no mark price for this long: no new entry for that symbol until fresh data")
    action: Literal["pause", "flatten"] = Field("pause", description="what a loss or drawdown breach does")
    check_interval_s: float = Field(1.0, gt=0, le=3600, description="equity evaluated at most once per this")

    @property
    def configured(self) -> bool:
        return any(v is not None for v in (self.max_daily_loss_usdt, self.max_drawdown_pct,
                                           self.max_gross_notional_usdt, self.stale_data_s))


__all__ = ["RiskSettings"]
