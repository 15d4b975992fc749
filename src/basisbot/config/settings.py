"""Operator configuration: one global TOML file with per-symbol tables, validated before anything starts.

Sources, lowest precedence first: defaults < the TOML file < `.env` < `BASISBOT_*` environment variables
(``__`` separates nesting levels, e.g. ``BASISBOT_SYMBOLS__BTCUSDT__LEVERAGE=3``).
Secrets (API key and secret) are `SecretStr` and are read only from the environment or `.env`, never from TOML.

Every error is turned into a `ConfigError` whose lines name the file (or the environment variable), the symbol,
the field, the bad value and what is allowed, so an operator can fix it at 3 a.m. without reading code.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from basisbot.venues import DEFAULT_EXCHANGE, PROFILES, VenueDataError, VenueProfile, get_profile

ENV_PREFIX = "BASISBOT_"
ENV_DELIMITER = "__"
SECRET_FIELDS = ("api_key", "api_secret", "api_passphrase")


class ConfigError(Exception):
    """A refused configuration. `problems` holds one human-readable line per problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid configuration\n" + "\n".join(f"  - {p}" for p in problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ScheduleSettings(_Model):
    """Windows around each funding settlement, in seconds relative to the settlement time T."""

    decision_before_s: int = Field(600, ge=0, le=3600, description="pre-settlement decision at T - this")
    blackout_before_s: int = Field(300, ge=0, le=3600, description="blackout starts at T - this")
    blackout_after_s: int = Field(60, ge=0, le=3600, description="blackout ends at T + this")
    booking_after_s: int = Field(60, ge=0, le=3600, description="settled payment booked at T + this")
    guard_sweep_s: int = Field(60, ge=1, le=3600, description="periodic guard backstop")

    @model_validator(mode="after")
    def _windows_ordered(self) -> ScheduleSettings:
        if self.decision_before_s < self.blackout_before_s:
            raise ValueError(
                f"decision_before_s ({self.decision_before_s}) must be >= blackout_before_s "
                f"({self.blackout_before_s}): the decision is taken before the blackout starts"
            )
        return self


class GuardSettings(_Model):
    """Liquidation guard ladder. Distances are (liquidation price - mark) / mark, as fractions (0.10 = 10%)."""

    enabled: bool = True
    warn_distance: float = Field(0.12, gt=0, lt=1)
    add_margin_distance: float = Field(0.10, gt=0, lt=1)
    target_distance: float = Field(0.15, gt=0, lt=1, description="distance restored by adding margin / reducing")
    reduce_distance: float = Field(0.06, gt=0, lt=1)
    close_distance: float = Field(0.03, gt=0, lt=1)
    hysteresis: float = Field(0.01, ge=0, lt=0.5, description="distance must recover this much before a step re-arms")
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


class SymbolSettings(_Model):
    """One carry: long `spot_symbol` on the spot venue, short the USDⓈ-M perpetual named by the table key."""

    enabled: bool = True
    spot_symbol: str | None = Field(None, description="spot market symbol; defaults to the perp symbol")
    hedge_ratio: float = Field(1.0, ge=0.5, le=1.5, description="perp base qty / spot base qty")
    notional_usdt: float = Field(10_000.0, gt=0, description="spot leg notional at entry, USDT")
    max_notional_usdt: float | None = Field(None, gt=0, description="cap on the spot leg notional, USDT")
    leverage: int = Field(3, ge=1, le=125)
    margin_mode: Literal["isolated", "cross"] = "isolated"
    entry_apr: float = Field(0.0, ge=-10_000, le=10_000,
                             description="enter when the expected carry APR net of the round trip over horizon_hours is above")
    exit_apr: float = Field(-0.10, ge=-10_000, le=10_000, description="exit when the expected carry APR is below")
    min_hold_intervals: int = Field(3, ge=0, le=1000, description="minimum hold, in funding settlements")
    horizon_hours: float = Field(2160.0, ge=1, le=100_000,
                                 description="expected holding period over which the entry's round trip is amortised")
    persistence: float = Field(0.7, ge=0, le=1, description="weight of the settled level vs the current prediction")
    persistence_halflife: float = Field(21.0, gt=0, le=10_000,
                                        description="half-life of the settled level, in settlements")
    spread: float = Field(0.0002, ge=0, le=0.05, description="spread cost per leg and side, fraction of notional")
    rebalance_tolerance: float = Field(0.02, gt=0, le=0.5, description="rebalance when |hedge drift| exceeds this")
    slippage_band: float = Field(0.002, gt=0, le=0.05, description="catch-up band for a lagging leg")
    leg_timeout_s: float = Field(10.0, gt=0, le=600, description="longest a leg may stay unhedged")
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


class FeeSettings(_Model):
    """Fee rates as fractions of notional (0.001 = 0.1%). A rate the config leaves out is the venue profile's
    regular-user rate (`Settings` fills them in from `[exchange] name`)."""

    spot_maker: float = Field(0.001, ge=0, le=0.01)
    spot_taker: float = Field(0.001, ge=0, le=0.01)
    perp_maker: float = Field(0.0002, ge=0, le=0.01)
    perp_taker: float = Field(0.0005, ge=0, le=0.01)


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
    "liquidation": "critical",
    "leg_unwind": "error", "leg_timeout": "warning", "leg_stuck": "critical",
    "funding_mismatch": "warning",
    "venue_disconnect": "error", "venue_recovered": "info",
    "config_refused": "warning",
    "daily_summary": "info",
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
    spot_balance_usdt: float = Field(100_000.0, gt=0)
    perp_balance_usdt: float = Field(50_000.0, gt=0)
    predictor: Literal["premium", "last_settled"] = "premium"
    premium_source: Literal["mark", "perp"] = Field(
        "mark", description="premium of the mark (default) or of the perp close over spot, for the premium predictor")
    intrabar_step: float = Field(0.01, ge=0, le=0.2, description="max price step of the intra-hour path; 0 = bar closes only")

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


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def _flatten(d: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            yield from _flatten(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def _toml_error_context(text: str, line_no: int) -> str:
    """Name the table and key nearest to a TOML syntax error, so the message points at symbol and field."""
    lines = text.splitlines()
    table = None
    for ln in reversed(lines[: max(line_no, 1)]):
        m = re.match(r"\s*\[+([^\]]+)\]+", ln)
        if m:
            table = m.group(1).strip()
            break
    key = None
    if 0 < line_no <= len(lines):
        m = re.match(r"\s*([A-Za-z0-9_.\-\"]+)\s*=", lines[line_no - 1])
        if m:
            key = m.group(1).strip('"')
    parts = []
    if table:
        parts.append(f"in [{table}]")
        m = re.match(r"symbols\.([A-Za-z0-9]+)", table)
        if m:
            parts.append(f"symbol {m.group(1)}")
    if key:
        parts.append(f"field {key!r}")
    if 0 < line_no <= len(lines):
        parts.append(f"line {line_no}: {lines[line_no - 1].strip()!r}")
    return ", ".join(parts)


def read_toml(path: Path) -> dict[str, Any]:
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(src, [f"file not found: {path}"]) from None
    except OSError as e:
        raise ConfigError(src, [f"cannot read: {e}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        ctx = _toml_error_context(text, int(m.group(1))) if m else ""
        raise ConfigError(src, [f"TOML syntax error: {e}" + (f" ({ctx})" if ctx else "")]) from None
    for key in SECRET_FIELDS:
        if key in data or key in data.get("exchange", {}):
            raise ConfigError(
                src,
                [f"field '{key}': secrets are not allowed in config files; set {ENV_PREFIX}{key.upper()} "
                 "in the environment or .env (or name other variables with exchange.api_key_env / api_secret_env)"],
            )
    return data


def _env_sources(env_file: Path | None) -> dict[tuple[str, ...], str]:
    """Which leaf settings are set by .env / environment variables, mapped to the variable that set them."""
    found: dict[tuple[str, ...], str] = {}
    if env_file is not None and env_file.is_file():
        for k, _ in dotenv_values(env_file).items():
            if k.upper().startswith(ENV_PREFIX):
                found[tuple(p.lower() if i == 0 or p.islower() else p for i, p in
                            enumerate(k[len(ENV_PREFIX):].split(ENV_DELIMITER)))] = f"{env_file}:{k}"
    for k in os.environ:
        if k.upper().startswith(ENV_PREFIX):
            found[_env_path(k)] = f"env:{k}"
    return found


def _env_path(var: str) -> tuple[str, ...]:
    parts = var[len(ENV_PREFIX):].split(ENV_DELIMITER)
    out = []
    for i, p in enumerate(parts):
        # symbol table keys keep their case (BTCUSDT); everything else is a lowercase field name
        out.append(p.upper() if i == 1 and out and out[0] == "symbols" else p.lower())
    return tuple(out)


def _describe_loc(loc: tuple[Any, ...]) -> tuple[str, str | None]:
    """(dotted field path, symbol or None) from a pydantic error location."""
    parts = [str(p) for p in loc]
    symbol = parts[1] if len(parts) >= 2 and parts[0] == "symbols" else None
    return ".".join(parts), symbol


def _allowed_hint(err: dict[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    t = err.get("type", "")
    if t == "extra_forbidden":
        return "unknown key; check the spelling against the config reference in README.md"
    if t == "literal_error":
        return ""  # pydantic's message already lists the allowed values
    if "ge" in ctx or "le" in ctx or "gt" in ctx or "lt" in ctx:
        lo = f">= {ctx['ge']}" if "ge" in ctx else (f"> {ctx['gt']}" if "gt" in ctx else "")
        hi = f"<= {ctx['le']}" if "le" in ctx else (f"< {ctx['lt']}" if "lt" in ctx else "")
        return "allowed: " + " and ".join(x for x in (lo, hi) if x)
    return err.get("msg", "")


def _format_errors(
    exc: ValidationError, file_label: str, env_src: Mapping[tuple[str, ...], str]
) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        path, symbol = _describe_loc(loc)
        where = env_src.get(loc) or file_label
        value = err.get("input")
        shown = "<missing>" if err["type"] == "missing" else repr(value)
        if isinstance(value, dict):
            shown = "{...}"
        if path.startswith("alerts.urls"):  # alert URLs may hold tokens: never echo them
            shown = repr([mask_alert_url(str(u)) for u in value]) if isinstance(value, list) else "<masked>"
        msg = err["msg"].removeprefix("Value error, ")
        hint = _allowed_hint(err)
        sym = f"symbol {symbol}, " if symbol else ""
        text = f"{where}: {sym}field '{path}' = {shown}: {msg}"
        if hint and hint not in msg:
            text += f" ({hint})"
        lines.append(text)
    return lines


def resolve_input_file(path: Path | None, config_path: Path | None) -> Path | None:
    """An operator file named in the config: relative paths are tried against the current directory, then the config
    file's folder (as `backtest.data`). Returns None for None; raises FileNotFoundError listing what was tried."""
    if path is None:
        return None
    path = Path(path)
    tried = [path]
    if not path.is_absolute() and config_path is not None:
        tried.append(Path(config_path).parent / path)
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"file not found (tried {', '.join(str(p) for p in tried)})")


BACKTEST_FILE_FLAGS = {"brackets": "--brackets", "exchange_info": "--exchange-info/--markets"}


def venue_reference(settings: Settings, file_label: str, config_path: Path | None = None,
                    from_flags: frozenset[str] = frozenset()) -> tuple[dict, dict, list[str]]:
    """(bracket tables, perp market rules, problems) for offline checks and backtests: the bundled snapshots overlaid
    by the operator's `backtest.brackets` / `backtest.exchange_info` files. A bad operator file is a problem line
    naming the file, the config field (or the command-line flag, for the fields in `from_flags`) and what is wrong;
    the bundled data stands in for it."""
    problems = []
    bt = settings.backtest
    out = []
    venue = settings.venue
    markets = None
    if bt.exchange_info is not None:
        try:
            markets = resolve_input_file(bt.exchange_info, config_path)
        except FileNotFoundError:
            pass  # reported below, with the field
    for field_name, load, fallback in (("brackets", venue.tier_tables, venue.bundled_tiers),
                                       ("exchange_info", venue.perp_rules, venue.bundled_perp_rules)):
        value = getattr(bt, field_name)
        try:
            path = resolve_input_file(value, config_path)
            # tiers in contracts (OKX) are converted with the contract values of the operator's markets file
            out.append(load(path, markets_file=markets) if field_name == "brackets" and path is not None
                       else load(path))
        except (FileNotFoundError, VenueDataError) as e:
            where = (BACKTEST_FILE_FLAGS[field_name] if field_name in from_flags
                     else f"field 'backtest.{field_name}' =")
            problems.append(f"{file_label}: {where} {str(value)!r}: {e}")
            out.append(fallback())
    return out[0], out[1], problems


def leverage_problems(settings: Settings, tables: Mapping, file_label: str, source: str,
                      symbols: Mapping[str, SymbolSettings] | None = None) -> list[str]:
    """Leverage above what the venue's bracket allows at the symbol's largest perp notional. `tables` maps symbol ->
    BracketTable; `source` says where they came from (shown in the message). Symbols without a table are skipped."""
    problems = []
    for name, sym in (settings.symbols if symbols is None else symbols).items():
        table = tables.get(name)
        if table is None:
            continue
        notional = sym.perp_notional_cap()
        allowed = table.leverage_limit(notional)
        if sym.leverage > allowed:
            problems.append(
                f"{file_label}: symbol {name}, field 'symbols.{name}.leverage' = {sym.leverage}: the venue allows "
                f"at most {allowed}x for a {notional:,.0f} USDT position (allowed: 1..{allowed}; brackets: {source})"
            )
    return problems


def _venue_checks(settings: Settings, file_label: str, config_path: Path | None = None,
                  from_flags: frozenset[str] = frozenset()) -> list[str]:
    """Checks that need venue reference data: known symbols, leverage the bracket allows (bundled snapshots or the
    operator's `backtest.brackets` / `backtest.exchange_info` files)."""
    tables, specs, problems = venue_reference(settings, file_label, config_path, from_flags)
    known = set(tables) | set(specs)
    for name, sym in settings.symbols.items():
        if name not in known:
            close = sorted(s for s in known if s[:3] == name[:3])[:5]
            if settings.venue.name != DEFAULT_EXCHANGE:  # another venue's own wording: what snapshot to supply
                problems.append(f"{file_label}: symbol {name}, field 'symbols.{name}': {settings.venue.display_name}: "
                                + settings.venue.missing_rules_message(name, settings.backtest.exchange_info)
                                + (f" (did you mean one of {close}?)" if close else ""))
                continue
            problems.append(
                f"{file_label}: symbol {name}, field 'symbols.{name}': unknown USDⓈ-M perpetual {name!r}: not in the "
                f"leverage brackets ({len(tables)} symbols) nor the exchangeInfo ({len(specs)} symbols)"
                + (f" (did you mean one of {close}?)" if close else "")
                + "; a symbol listed since: point backtest.brackets / backtest.exchange_info to current snapshots"
            )
            continue
        spot = sym.spot_symbol
        if spot is not None and spot != name and spot not in known:
            problems.append(f"{file_label}: symbol {name}, field 'symbols.{name}.spot_symbol' = {spot!r}: unknown spot market")
    source = str(settings.backtest.brackets) if settings.backtest.brackets else "bundled snapshot"
    problems += leverage_problems(settings, tables, file_label, source)
    return problems


def load_settings(
    path: str | Path | None = None,
    *,
    env_file: str | Path | None = ".env",
    check_venue: bool = True,
    backtest_files: Mapping[str, Path | None] | None = None,
) -> Settings:
    """Load and validate. Raises ConfigError (never a bare ValidationError).

    `backtest_files`: command-line overrides of `backtest.brackets` / `backtest.exchange_info` (None values are
    ignored), applied before the venue checks so leverage is checked against the brackets the run will use."""
    file_data: dict[str, Any] = {}
    label = "<defaults>"
    if path is not None:
        p = Path(path)
        label = str(p)
        file_data = read_toml(p)
    envf = Path(env_file) if env_file else None
    env_src = _env_sources(envf)
    try:
        settings = Settings(_env_file=envf if envf and envf.is_file() else None, **file_data)
    except ValidationError as e:
        raise ConfigError(label, _format_errors(e, label, env_src)) from None
    # Credentials named by other variables than the default ones
    secrets: dict[str, SecretStr] = {}
    dotenv = dotenv_values(envf) if envf and envf.is_file() else {}
    for field, var in (("api_key", settings.exchange.api_key_env), ("api_secret", settings.exchange.api_secret_env),
                       ("api_passphrase", settings.exchange.api_passphrase_env)):
        if getattr(settings, field) is None or var != f"{ENV_PREFIX}{field.upper()}":
            value = os.environ.get(var) or dotenv.get(var)
            if value:
                secrets[field] = SecretStr(value)
    if secrets:
        settings = settings.model_copy(update=secrets)
    flags = {k: Path(v) for k, v in (backtest_files or {}).items() if v is not None}
    unknown = sorted(set(flags) - set(BACKTEST_FILE_FLAGS))
    if unknown:
        raise ValueError(f"backtest_files: unknown keys {unknown} (allowed: {sorted(BACKTEST_FILE_FLAGS)})")
    if flags:
        settings = settings.model_copy(update={"backtest": settings.backtest.model_copy(update=flags)})
    if check_venue:
        problems = _venue_checks(settings, label, Path(path) if path is not None else None, frozenset(flags))
        if problems:
            raise ConfigError(label, problems)
    return settings


def provenance(path: str | Path | None, env_file: str | Path | None = ".env") -> dict[str, str]:
    """Where each leaf value set by the operator came from: 'file:<path>', '<.env>:<VAR>' or 'env:<VAR>'."""
    out: dict[str, str] = {}
    if path is not None:
        for leaf, _ in _flatten(read_toml(Path(path))):
            out[".".join(leaf)] = f"file:{path}"
    for leaf, src in _env_sources(Path(env_file) if env_file else None).items():
        out[".".join(leaf)] = src
    return out


def effective_config(settings: Settings, path: str | Path | None, env_file: str | Path | None = ".env") -> list[tuple[str, str, str]]:
    """(key, shown value, source) for every leaf of the effective config; secrets masked."""
    prov = provenance(path, env_file)
    rows = []
    dumped = settings.model_dump(mode="json")
    for leaf, value in _flatten(dumped):
        key = ".".join(leaf)
        if leaf[0] in SECRET_FIELDS:
            secret = getattr(settings, leaf[0])
            shown = "<not set>" if secret is None else "**********"
            var = getattr(settings.exchange, f"{leaf[0]}_env")
            rows.append((key, shown, f"env:{var}" if secret is not None else "default"))
            continue
        source = prov.get(key, "default")
        if source == "default":
            # a value inside a table the file set only partly is still a default
            source = next((s for k, s in prov.items() if key.startswith(k + ".")), "default")
        if key == "alerts.urls":
            value = [mask_alert_url(u) for u in value]
        rows.append((key, repr(value) if isinstance(value, str) else str(value), source))
    return rows
