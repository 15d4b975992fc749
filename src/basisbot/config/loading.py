"""Loading the operator's configuration, validated before anything starts.

Sources, lowest precedence first: defaults < the TOML file < `.env` < `BASISBOT_*` environment variables
(``__`` separates nesting levels, e.g. ``BASISBOT_SYMBOLS__BTCUSDT__LEVERAGE=3``).
Secrets (API key and secret) are `SecretStr` and are read only from the environment or `.env`, never from TOML.

Every error is turned into a `ConfigError` whose lines name the file (or the environment variable), the symbol,
the field, the bad value and what is allowed, so an operator can fix it at 3 a.m. without reading code.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import SecretStr, ValidationError

from basisbot.config.checks import BACKTEST_FILE_FLAGS, venue_checks
from basisbot.config.schema import ENV_DELIMITER, ENV_PREFIX, SECRET_FIELDS, Settings, mask_alert_url


class ConfigError(Exception):
    """A refused configuration. `problems` holds one human-readable line per problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid configuration\n" + "\n".join(f"  - {p}" for p in problems))


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


def format_errors(
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
        raise ConfigError(label, format_errors(e, label, env_src)) from None
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
        problems = venue_checks(settings, label, Path(path) if path is not None else None, frozenset(flags))
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
