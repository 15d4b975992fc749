"""Hot reload of the operator config in live/paper mode.

`ConfigWatcher` polls the TOML file (and the .env file) once a second by content hash (no extra dependency). When the
content changes and has stayed the same for `settle_polls` more polls (an editor saving in several writes is not read
half-written), it re-validates with `basisbot.config.loading.load_settings`, exactly as `basisbot config check` does:

- **invalid** → refused: the ConfigError text (what `basisbot config check` prints) is logged and journaled
  (`config_changes` row, status ``refused``); the running config stays.
- **valid** → a per-symbol diff of the *effective* values (symbol table + `[fees]` + the symbol's schedule) is built;
  the keys that can change live are handed to `on_change(new_settings, diff)`. The caller keeps them in a
  `PendingChange` and applies each symbol's part at that symbol's next safe point (`safe_to_apply`: not in the
  settlement blackout, no leg pair in flight); `PendingChange.take` journals it (status ``applied``).

What cannot change while running is **accepted for the next restart only** (journaled once as ``deferred``, logged
as a warning, and *not* applied): `mode`, `journal`, `exchange.*`, `live.*`, `alerts.*`, `control.*`, `risk.*`, the
credentials, and per symbol `enabled`, `spot_symbol`, `leverage`, `margin_mode`, plus adding or removing a symbol (new
instruments, subscriptions and exchange-side leverage/margin settings are set up at start). `backtest.*` has no
effect live (reported as ``ignored``). The rest of the change is applied live; if the mix of new live values and the
kept restart-only values is itself invalid (e.g. a larger notional that only the new, deferred leverage allows), the
whole change is refused.

Threading: `poll()` is synchronous and cheap (a stat, a read and a hash of two small files). Run it on the node's
event loop (`asyncio.create_task(watcher.run())`, or a 1 s nautilus timer calling `watcher.poll()`), so that journal
writes stay on the journal writer's thread.

Diff shape (JSON-ready)::

    {"symbols": {"BTCUSDT": {"entry_apr": [0.08, 0.09], "guard.warn_distance": [0.12, 0.13]}},
     "restart_only": {"symbols.BTCUSDT.leverage": [3, 5], "mode": ["paper", "live"]},
     "ignored": {"backtest.start": ["2022-01-01", "2023-01-01"]}}
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from basisbot.config.checks import venue_checks
from basisbot.config.loading import ConfigError, format_errors, load_settings
from basisbot.config.schema import SECRET_FIELDS, Settings
from basisbot.config.strategy_fields import settings_fields

RESTART_ONLY_SYMBOL_KEYS = ("enabled", "spot_symbol", "leverage", "margin_mode")
RESTART_ONLY_SECTIONS = ("mode", "journal", "exchange", "live", "alerts", "control", "risk")
IGNORED_SECTIONS = ("backtest",)

_log = logging.getLogger("basisbot.config.reload")


def safe_to_apply(in_blackout: bool, leg_in_flight: bool) -> bool:
    """A config change is applied to a symbol only between trades and away from settlements: never inside the
    blackout around a funding settlement (the decision for it is taken on the old parameters) and never while a leg
    pair is in flight (its targets, timeout and slippage band were set by the old parameters)."""
    return not in_blackout and not leg_in_flight


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def symbol_view(settings: Settings, symbol: str) -> dict[str, Any]:
    """The effective values one symbol's strategy runs with: its table (guard.* included), `fees.*` and the
    schedule that applies to it (`schedule.*`, its own override or the global one)."""
    cfg = settings.symbols[symbol]
    view = _flatten(cfg.model_dump(mode="json", exclude={"schedule"}))
    view.update(_flatten(settings.schedule_for(symbol).model_dump(mode="json"), "schedule."))
    view.update(_flatten(settings.fees.model_dump(mode="json"), "fees."))
    return view


def _secret(v: SecretStr | None) -> str | None:
    return None if v is None else v.get_secret_value()


def diff_settings(old: Settings, new: Settings) -> dict[str, dict]:
    """{"symbols": {SYM: {key: [old, new]}}, "restart_only": {dotted key: [old, new]}, "ignored": {...}}."""
    symbols: dict[str, dict[str, list]] = {}
    restart: dict[str, list] = {}
    ignored: dict[str, list] = {}
    for s in sorted(set(old.symbols) | set(new.symbols)):
        if s not in new.symbols:
            restart[f"symbols.{s}"] = ["configured", "removed"]
            continue
        if s not in old.symbols:
            restart[f"symbols.{s}"] = [None, "added"]
            continue
        a, b = symbol_view(old, s), symbol_view(new, s)
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                if k in RESTART_ONLY_SYMBOL_KEYS:
                    restart[f"symbols.{s}.{k}"] = [a.get(k), b.get(k)]
                else:
                    symbols.setdefault(s, {})[k] = [a.get(k), b.get(k)]
    da, db = old.model_dump(mode="json"), new.model_dump(mode="json")
    for section, target in [(x, restart) for x in RESTART_ONLY_SECTIONS] + [(x, ignored) for x in IGNORED_SECTIONS]:
        fa = _flatten({section: da[section]}) if isinstance(da[section], Mapping) else {section: da[section]}
        fb = _flatten({section: db[section]}) if isinstance(db[section], Mapping) else {section: db[section]}
        for k in sorted(set(fa) | set(fb)):
            if fa.get(k) != fb.get(k):
                target[k] = [fa.get(k), fb.get(k)]
    for field in SECRET_FIELDS:
        if _secret(getattr(old, field)) != _secret(getattr(new, field)):
            restart[field] = ["**********" if getattr(old, field) else None,
                              "********** (changed)" if getattr(new, field) else None]
    return {"symbols": symbols, "restart_only": restart, "ignored": ignored}


VenueCheck = Callable[[Settings, str], list]


def effective_settings(old: Settings, new: Settings, label: str = "<reload>",
                       venue_check: VenueCheck | None = None) -> Settings:
    """`new` with everything that only changes on a restart kept at its running (`old`) value, validated as a whole
    (field rules and venue checks: `venue_check(settings, label)` -> problems, e.g. against the exchange's brackets a
    live node read at start; the bundled snapshots' checks when None). Raises ConfigError when that combination is
    invalid."""
    d_old, d_new = old.model_dump(), new.model_dump()
    for section in RESTART_ONLY_SECTIONS:
        d_new[section] = d_old[section]
    symbols = {}
    for s, cfg in d_old["symbols"].items():
        if s in d_new["symbols"]:
            merged = dict(d_new["symbols"][s])
            for k in RESTART_ONLY_SYMBOL_KEYS:
                merged[k] = cfg[k]
            symbols[s] = merged
        else:  # removed: keeps running as it is until the restart
            symbols[s] = cfg
    d_new["symbols"] = symbols
    for field in SECRET_FIELDS:
        d_new[field] = getattr(old, field)
    try:
        eff = Settings.model_validate(d_new)
    except ValidationError as e:
        raise ConfigError(label, format_errors(e, label, {})
                          + ["(checked with the running values of the keys that only change on a restart)"]) from None
    problems = venue_check(eff, label) if venue_check is not None else venue_checks(eff, label)
    if problems:
        raise ConfigError(label, problems + ["(checked with the running values of the keys that only change on a "
                                             "restart)"])
    return eff


def describe(changes: Mapping[str, list]) -> str:
    return ", ".join(f"{k}: {v[0]!r} → {v[1]!r}" for k, v in changes.items())


@dataclass(frozen=True)
class SymbolChange:
    """One symbol's part of an accepted change, handed out at that symbol's safe point."""

    symbol: str
    settings: Settings  # the whole effective config the symbol now runs with
    diff: dict[str, list]  # key -> [old, new] (symbol_view keys)
    ts_ns: int
    source: str

    @property
    def symbol_settings(self):
        return self.settings.symbols[self.symbol]

    def strategy_fields(self) -> dict[str, Any]:
        return settings_fields(self.settings, self.symbol)


class PendingChange:
    """Accepted changes waiting for each symbol's safe point. Use `offer` as the watcher's `on_change`; the live node
    polls `take(symbol, in_blackout=..., leg_in_flight=...)` per symbol (e.g. on a 1 s timer or on every mark) and
    applies what it returns. A newer change before the safe point replaces the older one: what is applied is always
    the difference between what the symbol runs with and the latest accepted config."""

    def __init__(self, running: Settings, *, journal=None, source: str = "", clock_ns: Callable[[], int] = time.time_ns,
                 log=None):
        self._applied: dict[str, Settings] = {s: running for s in running.symbols}
        self._pending: Settings | None = None
        self._symbols: set[str] = set()
        self.journal = journal
        self.source = source
        self.clock_ns = clock_ns
        self.log = log or _log

    def offer(self, settings: Settings, diff: Mapping[str, Any]) -> None:
        self._pending = settings
        self._symbols |= {s for s in diff.get("symbols", {}) if s in self._applied}

    def pending_symbols(self) -> list[str]:
        return sorted(self._symbols)

    def take(self, symbol: str, *, in_blackout: bool, leg_in_flight: bool, ts_ns: int | None = None
             ) -> SymbolChange | None:
        if symbol not in self._symbols or self._pending is None:
            return None
        if not safe_to_apply(in_blackout, leg_in_flight):
            return None
        self._symbols.discard(symbol)
        before, after = symbol_view(self._applied[symbol], symbol), symbol_view(self._pending, symbol)
        diff = {k: [before.get(k), after.get(k)] for k in sorted(set(before) | set(after))
                if before.get(k) != after.get(k) and k not in RESTART_ONLY_SYMBOL_KEYS}
        if not diff:
            return None
        ts = self.clock_ns() if ts_ns is None else ts_ns
        self._applied[symbol] = self._pending
        message = f"{symbol}: applied at a safe point: {describe(diff)}"
        self.log.info(f"config change {message}")
        if self.journal is not None:
            self.journal.record_config_change(ts, self.source, {"symbols": {symbol: diff}}, "applied", message,
                                              scope=symbol)
        return SymbolChange(symbol, self._pending, diff, ts, self.source)


class ConfigWatcher:
    """Polls `path` (and `env_file`) and re-validates on change; see the module docstring.

    `journal`: anything with `record_config_change(ts, source, diff, status, message, scope=...)` (the `Journal`
    the JournalActor owns), or None. `log`: a nautilus Logger or a logging.Logger."""

    def __init__(self, path: str | Path, env_file: str | Path | None, current: Settings,
                 on_change: Callable[[Settings, dict], None], *, journal=None, interval_s: float = 1.0,
                 settle_polls: int = 1, clock_ns: Callable[[], int] = time.time_ns, log=None,
                 venue_check: VenueCheck | None = None):
        self.path = Path(path)
        self.env_file = Path(env_file) if env_file else None
        self.current = current
        self.on_change = on_change
        self.journal = journal
        self.interval_s = interval_s
        self.settle_polls = settle_polls
        self.clock_ns = clock_ns
        self.log = log or _log
        self.venue_check = venue_check  # None: the bundled snapshots (as `config check`)
        self.last_error: str | None = None
        self._deferred: dict[str, list] = {}
        self._seen = self._digest()
        self._candidate: bytes | None = None
        self._stable = 0

    def _digest(self) -> bytes:
        h = hashlib.sha256()
        for p in (self.path, self.env_file):
            h.update(b"\0")
            if p is None:
                continue
            try:
                h.update(p.read_bytes())
            except FileNotFoundError:
                h.update(b"<missing>")
            except OSError as e:
                h.update(f"<unreadable {e}>".encode())
        return h.digest()

    def poll(self) -> str:
        """One check. Returns "unchanged", "settling" (changed, waiting for it to stay put), "refused", "changed"
        (live keys handed to on_change), "deferred" (only restart-only keys changed) or "no_change" (valid, nothing
        that affects the running bot)."""
        digest = self._digest()
        if digest == self._seen:
            self._candidate, self._stable = None, 0
            return "unchanged"
        if digest != self._candidate:
            self._candidate, self._stable = digest, 0
        else:
            self._stable += 1
        if self._stable < self.settle_polls:
            return "settling"
        self._seen, self._candidate, self._stable = digest, None, 0
        return self._evaluate()

    def _journal(self, status: str, diff, message: str, scope: str = "*") -> None:
        if self.journal is not None:
            try:
                self.journal.record_config_change(self.clock_ns(), str(self.path), diff, status, message, scope=scope)
            except Exception as e:  # journaling must not stop the reload
                self.log.error(f"config change not journaled: {type(e).__name__}: {e}")

    def _refuse(self, e: ConfigError) -> str:
        msg = str(e)
        self.last_error = msg
        self.log.error(f"config change refused, the running config stays:\n{msg}")
        self._journal("refused", {"problems": e.problems}, msg)
        return "refused"

    def _evaluate(self) -> str:
        try:
            new = load_settings(self.path, env_file=self.env_file, check_venue=self.venue_check is None)
        except ConfigError as e:
            return self._refuse(e)
        diff = diff_settings(self.current, new)
        try:
            eff = effective_settings(self.current, new, str(self.path), self.venue_check)
        except ConfigError as e:
            return self._refuse(e)
        self.last_error = None
        fresh = {k: v for k, v in diff["restart_only"].items() if self._deferred.get(k) != v}
        self._deferred = dict(diff["restart_only"])
        if fresh:
            msg = f"takes effect at the next restart only (cannot change while running): {describe(fresh)}"
            self.log.warning(f"config change {msg}")
            self._journal("deferred", {"restart_only": fresh}, msg)
        if diff["ignored"]:
            self.log.info(f"config change without effect live (backtest only): {describe(diff['ignored'])}")
        self.current = eff
        if diff["symbols"]:
            self.log.info("config change accepted, applied per symbol at its next safe point: "
                          + "; ".join(f"{s}: {describe(c)}" for s, c in diff["symbols"].items()))
            self.on_change(eff, diff)
            return "changed"
        return "deferred" if fresh else "no_change"

    async def run(self) -> None:
        """Poll every `interval_s` until cancelled (asyncio.create_task(watcher.run()); task.cancel() to stop)."""
        while True:
            try:
                self.poll()
            except Exception as e:  # never let the watcher die silently
                self.log.error(f"config watcher: {type(e).__name__}: {e}")
            await asyncio.sleep(self.interval_s)
