"""The operator's configuration as typed models: one global TOML file with per-symbol tables.

Every model is frozen and refuses unknown keys; each field carries its default, its allowed range and what it means.
Reading the file and the environment is `basisbot.config.loading`; checks against the venue's facts (symbols,
leverage the brackets allow) are `basisbot.config.checks`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from basisbot.config.control import ControlSettings
from basisbot.config.risk import RiskSettings
from basisbot.core import defaults as D
from basisbot.core.guard import Thresholds
from basisbot.core.schedule import Windows
from basisbot.venues import DEFAULT_EXCHANGE, PROFILES, VenueProfile, get_profile

ENV_PREFIX = "BASISBOT_"
ENV_DELIMITER = "__"
SECRET_FIELDS = ("api_key", "api_secret", "api_passphrase")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ScheduleSettings(_Model):
    """Windows around each funding settlement, in seconds relative to the settlement time T."""

    decision_before_s: int = Field(D.DECISION_BEFORE_S, ge=0, le=3600, description="pre-settlement decision at T - this")
    blackout_before_s: int = Field(D.BLACKOUT_BEFORE_S, ge=0, le=3600, description="blackout starts at T - this")
    blackout_after_s: int = Field(D.BLACKOUT_AFTER_S, ge=0, le=3600, description="blackout ends at T + this")
    booking_after_s: int = Field(D.BOOKING_AFTER_S, ge=0, le=3600, description="settled payment booked at T + this")
    guard_sweep_s: int = Field(D.GUARD_SWEEP_S, ge=1, le=3600, description="periodic guard backstop")

    @model_validator(mode="after")
    def _windows_ordered(self) -> ScheduleSettings:
        if self.decision_before_s < self.blackout_before_s:
            raise ValueError(
                f"decision_before_s ({self.decision_before_s}) must be >= blackout_before_s "
                f"({self.blackout_before_s}): the decision is taken before the blackout starts"
            )
        return self

    def windows(self) -> Windows:
        """The windows as the strategy's config and the settlement calendar take them."""
        return Windows(self.decision_before_s, self.blackout_before_s, self.blackout_after_s, self.booking_after_s,
                       self.guard_sweep_s)


class GuardSettings(_Model):
    """Liquidation guard ladder. Distances are (liquidation price - mark) / mark, as fractions (0.10 = 10%)."""

    enabled: bool = True
    warn_distance: float = Field(D.WARN_DISTANCE, gt=0, lt=1)
    add_margin_distance: float = Field(D.ADD_MARGIN_DISTANCE, gt=0, lt=1)
    target_distance: float = Field(D.TARGET_DISTANCE, gt=0, lt=1, description="distance restored by adding margin / reducing")
    reduce_distance: float = Field(D.REDUCE_DISTANCE, gt=0, lt=1)
    close_distance: float = Field(D.CLOSE_DISTANCE, gt=0, lt=1)
    hysteresis: float = Field(D.GUARD_HYSTERESIS, ge=0, lt=0.5, description="distance must recover this much before a step re-arms")
    transfer_from_spot: bool = Field(True, description="move free spot collateral to the perp wallet when needed")
    max_margin_ratio: float = Field(0.8, gt=0, lt=1, description="cross margin: reduce above this margin ratio")

    @model_validator(mode="after")
    def _ladder_ordered(self) -> GuardSettings:
        ladder = [
            ("close_distance", self.close_distance),
            ("reduce_distance", self.reduce_distance),
            ("add_margin_distance", self.add_margin_distance),
            ("warn_distance", self.warn_distance),
        ]
        for (lo_name, lo), (hi_name, hi) in zip(ladder, ladder[1:]):
            if not lo < hi:
                raise ValueError(f"{lo_name} ({lo}) must be < {hi_name} ({hi}): the ladder escalates as distance shrinks")
        if self.target_distance <= self.add_margin_distance:
            raise ValueError(
                f"target_distance ({self.target_distance}) must be > add_margin_distance ({self.add_margin_distance})"
            )
        return self

    def thresholds(self) -> Thresholds:
        """The ladder as the strategy's config and the guard take it."""
        return Thresholds(self.warn_distance, self.add_margin_distance, self.target_distance, self.reduce_distance,
                          self.close_distance, self.hysteresis)


class SymbolSettings(_Model):
    """One carry: long `spot_symbol` on the spot venue, short the USDⓈ-M perpetual named by the table key."""

    enabled: bool = True
    spot_symbol: str | None = Field(None, description="spot market symbol; defaults to the perp symbol")
    hedge_ratio: float = Field(D.HEDGE_RATIO, ge=0.5, le=1.5, description="perp base qty / spot base qty")
    notional_usdt: float = Field(D.NOTIONAL_USDT, gt=0, description="spot leg notional at entry, USDT")
    max_notional_usdt: float | None = Field(None, gt=0, description="cap on the spot leg notional, USDT")
    leverage: int = Field(D.LEVERAGE, ge=1, le=125)
    margin_mode: Literal["isolated", "cross"] = D.MARGIN_MODE
    entry_apr: float = Field(D.ENTRY_APR, ge=-10_000, le=10_000,
                             description="enter when the expected carry APR net of the round trip over horizon_hours is above")
    exit_apr: float = Field(D.EXIT_APR, ge=-10_000, le=10_000, description="exit when the expected carry APR is below")
    min_hold_intervals: int = Field(D.MIN_HOLD_INTERVALS, ge=0, le=1000, description="minimum hold, in funding settlements")
    horizon_hours: float = Field(D.HORIZON_HOURS, ge=1, le=100_000,
                                 description="expected holding period over which the entry's round trip is amortised")
    persistence: float = Field(D.PERSISTENCE, ge=0, le=1, description="weight of the settled level vs the current prediction")
    persistence_halflife: float = Field(D.PERSISTENCE_HALFLIFE, gt=0, le=10_000,
                                        description="half-life of the settled level, in settlements")
    spread: float = Field(D.SPREAD, ge=0, le=0.05, description="spread cost per leg and side, fraction of notional")
    rebalance_tolerance: float = Field(D.REBALANCE_TOLERANCE, gt=0, le=0.5, description="rebalance when |hedge drift| exceeds this")
    slippage_band: float = Field(D.SLIPPAGE_BAND, gt=0, le=0.05, description="catch-up band for a lagging leg")
    leg_timeout_s: float = Field(D.LEG_TIMEOUT_S, gt=0, le=600, description="longest a leg may stay unhedged")
    guard: GuardSettings = GuardSettings()
    schedule: ScheduleSettings | None = Field(None, description="per-symbol override of [schedule]")

    @model_validator(mode="after")
    def _thresholds(self) -> SymbolSettings:
        if self.exit_apr > self.entry_apr:
            raise ValueError(
                f"exit_apr ({self.exit_apr}) must be <= entry_apr ({self.entry_apr}): "
                "exiting above the entry threshold would flap in and out"
            )
        if self.max_notional_usdt is not None and self.max_notional_usdt < self.notional_usdt:
            raise ValueError(
                f"max_notional_usdt ({self.max_notional_usdt}) must be >= notional_usdt ({self.notional_usdt})"
            )
        return self

    def perp_notional_cap(self) -> float:
        return (self.max_notional_usdt or self.notional_usdt) * self.hedge_ratio


_DEFAULT_FEES = get_profile(DEFAULT_EXCHANGE).fees


class FeeSettings(_Model):
    """Fee rates as fractions of notional (0.001 = 0.1%). A rate the config leaves out is the venue profile's
    regular-user rate (`Settings` fills them in from `[exchange] name`; standing alone, the default venue's)."""

    spot_maker: float = Field(_DEFAULT_FEES.spot_maker, ge=0, le=0.01)
    spot_taker: float = Field(_DEFAULT_FEES.spot_taker, ge=0, le=0.01)
    perp_maker: float = Field(_DEFAULT_FEES.perp_maker, ge=0, le=0.01)
    perp_taker: float = Field(_DEFAULT_FEES.perp_taker, ge=0, le=0.01)


class ExchangeSettings(_Model):
    name: str = Field(DEFAULT_EXCHANGE, description="the venue: its profile supplies ids, funding, tiers, fees, rules")
    api_key_env: str = Field("BASISBOT_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_secret_env: str = Field("BASISBOT_API_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # OKX signs every private request with a passphrase chosen when the key was made (unused by Binance)
    api_passphrase_env: str = Field("BASISBOT_API_PASSPHRASE", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("name")
    @classmethod
    def _known_venue(cls, v: str) -> str:
        if v not in PROFILES:
            raise ValueError(f"unknown exchange {v!r}: allowed {', '.join(repr(k) for k in sorted(PROFILES))}")
        return v


class LiveSettings(_Model):
    exchange_url: str | None = Field(None, description="rewrite every ccxt REST/ws host to this (local venue)")
    reconnect_max_s: float = Field(30.0, gt=0, le=600)
    poll_interval_s: float = Field(5.0, gt=0, le=600)
    venue_speed: float | None = Field(
        None, gt=0, le=100_000,
        description="replay seconds per wall second of a replaying venue (basisbot sim); unset: asked from the "
                    "venue (GET /sim/clock) when exchange_url is set, else 1")
    # the operator's HTTP surface (basisbot.ops): /metrics, /healthz and the status page; off unless a port is set
    metrics_port: int | None = Field(None, ge=0, le=65535, description="0 = any free port (logged)")
    metrics_host: str = Field("127.0.0.1", min_length=1, description="bind address of the metrics/status server")
    status_token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                         description="env variable holding a token required by /metrics and the page")

    @field_validator("exchange_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"must be an http(s) URL like http://127.0.0.1:8080, got {v!r}")
        return v.rstrip("/") if v else v


SEVERITIES = ("info", "warning", "error", "critical")
# alert events and their default severity ("off": not sent unless [alerts.levels] turns it on)
ALERT_EVENTS: dict[str, str] = {
    "entry": "info", "exit": "info",
    "guard_warn": "off", "guard_add_margin": "warning", "guard_reduce": "error", "guard_close": "critical",
    "liquidation": "critical", "adl": "critical", "adl_rank": "warning",
    "leg_unwind": "error", "leg_timeout": "warning", "leg_stuck": "critical",
    "funding_mismatch": "warning",
    "venue_disconnect": "error", "venue_recovered": "info",
    "config_refused": "warning",
    "daily_summary": "info",
    "control": "warning", "control_refused": "warning", "risk_breach": "critical",
}
ALERT_URL_ENV = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


class AlertSettings(_Model):
    """Alerts through apprise (basisbot.ops). A URL is either an apprise URL or ``env:VAR``: the URL is read from the
    environment variable VAR (or .env) at start, so tokens stay out of the TOML and are never logged."""

    urls: list[str] = Field(default_factory=list, description="apprise URLs or env:VAR references")
    min_severity: Literal["info", "warning", "error", "critical"] = "info"
    levels: dict[str, Literal["off", "info", "warning", "error", "critical"]] = Field(
        default_factory=dict, description="per-event severity override (event names: ALERT_EVENTS)")
    funding_diff_usdt: float = Field(1.0, ge=0, description="alert when booked funding differs from the prediction "
                                                            "by more than this (and funding_diff_rel)")
    funding_diff_rel: float = Field(0.2, ge=0, description="... and by more than this fraction of the prediction")
    disconnect_after_s: float = Field(30.0, gt=0, le=86_400, description="alert when a venue stream is down longer")
    daily_summary_utc: str | None = Field("08:05", description="HH:MM UTC of the daily summary; empty = none")
    coalesce_s: float = Field(300.0, ge=0, le=86_400, description="repeats of one alert within this are coalesced")
    max_per_minute: int = Field(20, ge=1, le=6000, description="per channel rate limit")
    timeout_s: float = Field(5.0, gt=0, le=120, description="connect and read timeout of one send")
    retries: int = Field(3, ge=0, le=10, description="retries of a failed send (exponential backoff)")
    backoff_s: float = Field(1.0, ge=0, le=600, description="first retry delay; doubles per retry")

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for i, u in enumerate(v):
            if u.startswith("env:"):
                if not ALERT_URL_ENV.match(u):
                    raise ValueError(f"urls[{i}]: {u!r} must be env:VARIABLE_NAME")
            elif "://" not in u:
                raise ValueError(f"urls[{i}]: not an apprise URL (schema://...) nor env:VARIABLE_NAME")
        return v

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(ALERT_EVENTS))
        if unknown:
            raise ValueError(f"unknown alert event(s) {unknown} (known: {', '.join(ALERT_EVENTS)})")
        return v

    @field_validator("daily_summary_utc")
    @classmethod
    def _hhmm(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", v)
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError(f"{v!r} must be HH:MM (UTC), e.g. '08:05'")
        return v

    def level(self, event: str) -> str:
        return self.levels.get(event, ALERT_EVENTS[event])


def mask_alert_url(url: str) -> str:
    """What logs and `config check` show of an alert URL: env references as they are, literal URLs as schema://***."""
    if url.startswith("env:"):
        return url
    return url.split("://", 1)[0] + "://***"


class PortfolioSettings(_Model):
    """A capital budget across symbols (optional; without `capital_usdt` each symbol keeps its own notional)."""

    capital_usdt: float | None = Field(None, gt=0, description="capital shared by the carries (spot + perp margin)")
    max_symbols: int | None = Field(None, ge=1, le=1000, description="most carries held at once")
    hysteresis: float = Field(0.25, ge=0, le=10, description="a held carry keeps its place unless beaten by this "
                                                               "much (relative)")
    compounding: bool = Field(False, description="size entries from current equity (notional x equity / start)")


class BacktestSettings(_Model):
    data: Path | None = Field(None, description="market data folder, bundled layout or an exchange's public-dump "
                              "layout (unset: the bundled data of the exchange)")
    brackets: Path | None = Field(None, description="leverage brackets snapshot (Binance leverageBracket or ccxt "
                                                    "fetch_leverage_tiers JSON); wins over the bundled ones")
    exchange_info: Path | None = Field(None, description="Binance GET /fapi/v1/exchangeInfo JSON: market rules of "
                                                         "symbols the bundled 2021 capture lacks; wins over it")
    start: dt.date | None = None
    end: dt.date | None = None
    spot_balance_usdt: float = Field(D.SPOT_BALANCE_USDT, gt=0)
    perp_balance_usdt: float = Field(D.PERP_BALANCE_USDT, gt=0)
    predictor: Literal["premium", "last_settled"] = "premium"
    premium_source: Literal["mark", "perp"] = Field(
        "mark", description="premium of the mark (default) or of the perp close over spot, for the premium predictor")
    intrabar_step: float = Field(0.01, ge=0, le=0.2, description="max price step of the intra-hour path; 0 = bar closes only")
    stream: Literal["gated", "every_path"] = Field(
        "gated", description="which intra-hour paths the engine replays: gated (only where something could act; the "
                             "same outputs from fewer events) or every_path")

    @model_validator(mode="after")
    def _range(self) -> BacktestSettings:
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self


class _SymbolKeysUpper(PydanticBaseSettingsSource):
    """Environment sources lowercase every path segment; symbol tables are upper-case (BTCUSDT). Restore the case so
    BASISBOT_SYMBOLS__BTCUSDT__LEVERAGE overrides [symbols.BTCUSDT] instead of creating a table 'btcusdt'."""

    def __init__(self, inner: PydanticBaseSettingsSource):
        super().__init__(inner.settings_cls)
        self.inner = inner

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used instead
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data = self.inner()
        if isinstance(data.get("symbols"), dict):
            data["symbols"] = {str(k).upper(): v for k, v in data["symbols"].items()}
        return data


class Settings(BaseSettings):
    """The whole effective configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    mode: Literal["backtest", "paper", "live"] = "backtest"
    journal: Path = Field(Path("var/basisbot.sqlite"), description="SQLite journal path")
    exchange: ExchangeSettings = ExchangeSettings()
    live: LiveSettings = LiveSettings()
    alerts: AlertSettings = AlertSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    fees: FeeSettings = FeeSettings()
    backtest: BacktestSettings = BacktestSettings()
    portfolio: PortfolioSettings = PortfolioSettings()
    control: ControlSettings = ControlSettings()
    risk: RiskSettings = RiskSettings()
    symbols: dict[str, SymbolSettings] = Field(default_factory=dict)
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_passphrase: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML content arrives as init kwargs; it ranks below .env and the environment.
        return _SymbolKeysUpper(env_settings), _SymbolKeysUpper(dotenv_settings), init_settings

    @model_validator(mode="before")
    @classmethod
    def _venue_fee_defaults(cls, data: Any) -> Any:
        """Fee rates the config leaves out are the chosen venue's defaults (an unknown venue is reported by
        `ExchangeSettings`)."""
        if not isinstance(data, dict):
            return data
        exchange = data.get("exchange")
        name = exchange.get("name", DEFAULT_EXCHANGE) if isinstance(exchange, Mapping) else DEFAULT_EXCHANGE
        if name not in PROFILES:
            return data
        fees = data.get("fees")
        if fees is None or isinstance(fees, Mapping):
            venue = get_profile(name).fees
            defaults = {k: getattr(venue, k) for k in ("spot_maker", "spot_taker", "perp_maker", "perp_taker")}
            data = {**data, "fees": {**defaults, **(fees or {})}}
        return data

    @property
    def venue(self) -> VenueProfile:
        """The venue profile of `[exchange] name`."""
        return get_profile(self.exchange.name)

    @field_validator("symbols")
    @classmethod
    def _symbol_names(cls, v: dict[str, SymbolSettings]) -> dict[str, SymbolSettings]:
        for name in v:
            if not re.fullmatch(r"[A-Z0-9]{2,20}USDT", name):
                raise ValueError(f"symbol {name!r} is not a USDⓈ-M perpetual symbol like 'BTCUSDT'")
        return v

    def enabled_symbols(self) -> dict[str, SymbolSettings]:
        return {k: v for k, v in self.symbols.items() if v.enabled}

    def schedule_for(self, symbol: str) -> ScheduleSettings:
        return self.symbols[symbol].schedule or self.schedule
