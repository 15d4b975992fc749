"""Alert channels: `[alerts] urls` resolved (``env:VAR`` → the URL held by VAR) into apprise senders.

Secrets never leave this module: a channel is named in logs, the journal and metrics by apprise's privacy form of its
URL (tokens and passwords masked, e.g. ``tgram://1...9/``), and a URL that cannot be resolved or parsed is reported by
its position and variable name only.

Each channel is one `apprise.Apprise` holding one URL, with its connect and read timeouts set to `timeout_s`. A send
that apprise reports as failed raises `SendError` with apprise's own warning text (captured per thread, so concurrent
channels do not mix them up); apprise's logger is kept out of the process' stderr (the dispatcher's throttled warning
replaces it).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import apprise
from dotenv import dotenv_values

from basisbot.config.loading import ConfigError
from basisbot.config.schema import ALERT_URL_ENV, AlertSettings
from basisbot.ops.alerts import Alert, SendError

_NOTIFY_TYPE = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING,
                "error": apprise.NotifyType.FAILURE, "critical": apprise.NotifyType.FAILURE}


class _ThreadCapture(logging.Handler):
    """Collects apprise's log messages of the current thread while a send runs."""

    local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        buf = getattr(self.local, "buf", None)
        if buf is not None:
            buf.append(record.getMessage())


_capture = _ThreadCapture(level=logging.WARNING)
_capture_lock = threading.Lock()


def _level(level) -> int:
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    return level if isinstance(level, int) else logging.WARNING


def _install_capture() -> None:
    with _capture_lock:
        log = logging.getLogger("apprise")
        if _capture not in log.handlers:
            log.addHandler(_capture)
        log.propagate = False


def resolve_urls(urls: list[str], env_file: str | Path | None = None) -> list[str]:
    """The apprise URLs, ``env:VAR`` replaced by the variable's value (environment first, then `env_file`).
    Raises ConfigError naming the entry and the variable (never the value)."""
    dotenv = None
    out, problems = [], []
    for i, u in enumerate(urls):
        m = ALERT_URL_ENV.match(u)
        if m is None:
            out.append(u)
            continue
        var = m.group(1)
        value = os.environ.get(var)
        if value is None and env_file:
            if dotenv is None:
                p = Path(env_file)
                dotenv = dotenv_values(p) if p.is_file() else {}
            value = dotenv.get(var)
        if not value:
            problems.append(f"alerts.urls[{i}] = 'env:{var}': the environment variable {var} is not set "
                            f"(nor in {env_file or 'a .env file'})")
            continue
        out.append(value.strip())
    if problems:
        raise ConfigError("<environment>", problems)
    return out


class AppriseChannel:
    """One apprise URL. `label` is its privacy form (safe to log). Call with an Alert; raises SendError on failure."""

    def __init__(self, url: str, timeout_s: float = AlertSettings().timeout_s, *, index: int = 0):
        _install_capture()
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            scheme = url.split("://", 1)[0] if "://" in url else "?"
            raise ConfigError("<config>", [f"alerts.urls[{index}]: apprise does not understand this URL "
                                           f"(schema {scheme!r}; see https://github.com/caronc/apprise/wiki)"])
        plugin.socket_connect_timeout = timeout_s
        plugin.socket_read_timeout = timeout_s
        self.label = plugin.url(privacy=True).split("?", 1)[0]
        self._ap = apprise.Apprise()
        self._ap.add(plugin)

    def __call__(self, alert: Alert) -> None:
        _capture.local.buf = buf = []
        try:
            ok = self._ap.notify(body=alert.body, title=alert.title, notify_type=_NOTIFY_TYPE.get(alert.severity))
        except Exception as e:  # apprise catches its plugins' errors; anything else is still only a failed send
            raise SendError(f"{type(e).__name__}: {e}") from None
        finally:
            _capture.local.buf = None
        if not ok:
            logs = getattr(ok, "logs", None)  # apprise >= 2.3: the result carries the send's log (any thread)
            if callable(logs):
                try:
                    buf = buf + [str(e.message) for e in logs() if _level(getattr(e, "level", None)) >= logging.WARNING]
                except Exception:  # pragma: no cover - an older/newer result shape
                    pass
            raise SendError("; ".join(dict.fromkeys(buf)) or "apprise reported a failed notification")


def build_channels(urls: list[str], timeout_s: float, env_file: str | Path | None = None) -> list[AppriseChannel]:
    return [AppriseChannel(u, timeout_s, index=i) for i, u in enumerate(resolve_urls(urls, env_file))]


__all__ = ["AppriseChannel", "build_channels", "resolve_urls"]
