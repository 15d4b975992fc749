"""The operator's surface of a live/paper node, assembled from the settings: alerts, metrics, status page.

    ops = OpsService(settings, mode, instruments, brackets, env_file=...)   # at build: ConfigError on bad alert URLs
    node.trader.add_actor(ops.actor)                                       # the bus listener
    ops.start(app)                                                         # after the trader runs
    await ops.stop()                                                       # before the node stops

`start` starts the alert workers (threads), the HTTP server (thread, when `[live] metrics_port` is set) and a 1 s tick
on the event loop that samples what nobody publishes: venue stream outages and reconnects (the data clients'
`feed_stats()`, the execution clients' user-stream state), the journal's write latency, the countdown to the next
settlement, refused config reloads (new `refused` rows in the journal) and the daily summary. Undelivered alerts are
journaled (`alerts` table, through the journal's own writer on the event loop) at most once per channel per
coalescing window, like the warning logged for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import time
from pathlib import Path

from basisbot.config.control import read_secret
from basisbot.config.loading import ConfigError
from basisbot.config.schema import Settings
from basisbot.journal.writer import JournalReader
from basisbot.nautilus.messages import JOURNAL_TOPIC, JournalRecord
from basisbot.ops.actor import OpsActor, OpsActorConfig
from basisbot.ops.alert_events import AlertRules, Outages, summary_due
from basisbot.ops.alerts import Alert, AlertDispatcher
from basisbot.ops.metrics import OpsMetrics

TICK_S = 1.0
CONFIG_POLL_S = 5.0


def _log(name: str):
    from nautilus_trader.common.component import Logger

    return Logger(name)


class OpsService:
    def __init__(self, settings: Settings, mode: str, instruments: dict[str, tuple[str, str]],
                 brackets: dict[str, list[dict]] | None = None, *, env_file: str | Path | None = None,
                 refresh_s: int = 10):
        self.settings = settings
        self.mode = mode
        self.refresh_s = refresh_s
        self.log = _log("Ops")
        a = settings.alerts
        channels = []
        if a.urls:  # apprise loads its hundred plugins on import: only when alerts are configured
            from basisbot.ops.alert_channels import build_channels

            channels = build_channels(a.urls, a.timeout_s, env_file)  # ConfigError: named entry / variable
        self.metrics = OpsMetrics()
        self.dispatcher: AlertDispatcher | None = None
        if channels:
            self.dispatcher = AlertDispatcher(
                [(c.label, c) for c in channels], coalesce_s=a.coalesce_s, max_per_minute=a.max_per_minute,
                retries=a.retries, backoff_s=a.backoff_s, min_severity=a.min_severity, warn=self._warn,
                on_failure=self._on_failure)
        self.rules = AlertRules(a, self._submit, mode, venue=settings.venue.display_name)
        self.actor = OpsActor(OpsActorConfig(component_id="OpsActor",
                                             instruments={s: [str(x), str(y)] for s, (x, y) in instruments.items()},
                                             brackets=dict(brackets or {}), exchange=settings.exchange.name),
                              self.metrics, self.rules)
        ls = settings.live
        self.token = None
        if ls.status_token_env:
            self.token = os.environ.get(ls.status_token_env)
            if not self.token and env_file and Path(env_file).is_file():
                from dotenv import dotenv_values

                self.token = dotenv_values(env_file).get(ls.status_token_env)
            if not self.token:
                raise ConfigError("<environment>", [f"live.status_token_env = {ls.status_token_env!r}: the variable "
                                                    "is not set (unset status_token_env to serve without a token)"])
        self.control = None  # basisbot.ops.control.ControlHub when [control] token_env is set
        self.control_token = None
        self.telegram = None
        self._telegram_task: asyncio.Task | None = None
        self._build_control(settings, sorted(instruments), env_file)
        self.server = None
        self.outages = Outages(a.disconnect_after_s)
        self._app = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._config_seen_ns = time.time_ns()
        self._summary_day: dt.date | None = None
        self._alert_totals: dict[str, tuple[int, int]] = {}

    def _build_control(self, settings: Settings, symbols: list[str], env_file) -> None:
        """[control]: the hub the ops server and Telegram hand commands to; ConfigError when a named variable is not
        set (a token that was asked for and is missing must stop the start, not silently switch control off)."""
        c = settings.control
        if c.token_env is None and c.telegram_token_env is None:
            return
        from basisbot.ops.control import ControlHub

        self.control = ControlHub(symbols, msgbus=self._msgbus, alert=self._alert, running=lambda: self.health()[0],
                                  timeout_s=c.ack_timeout_s)
        if c.token_env:
            self.control_token = read_secret(c.token_env, env_file)
            if self.control_token is None:
                raise ConfigError("<environment>", [f"control.token_env = {c.token_env!r}: the variable is not set "
                                                    "(unset token_env to run without control)"])
        if c.telegram_token_env:
            token = read_secret(c.telegram_token_env, env_file)
            if token is None:
                raise ConfigError("<environment>", [f"control.telegram_token_env = {c.telegram_token_env!r}: the "
                                                    "variable is not set"])
            if not c.telegram_chat_ids:
                raise ConfigError("<config>", ["control.telegram_chat_ids: empty; list the chats allowed to command "
                                               "the node"])
            from basisbot.ops.telegram import TelegramControl

            self.telegram = TelegramControl(token, list(c.telegram_chat_ids), self.control,
                                            base_url=c.telegram_base_url, poll_s=c.telegram_poll_s, log=self.log)

    def _msgbus(self):
        app = self._app
        return app.node.kernel.msgbus if app is not None and app.node is not None else None

    def _alert(self, event: str, title: str, body: str, symbol: str | None = None) -> None:
        self.log.warning(f"{title}: {body.splitlines()[0] if body else ''}")
        self.rules.emit(event, title, body, symbol)

    # -- alerts -------------------------------------------------------------------------------------------------------
    def _submit(self, alert: Alert) -> None:
        if self.dispatcher is not None:
            self.dispatcher.submit(alert)

    def _warn(self, msg: str) -> None:
        self.log.warning(msg)

    def _on_failure(self, channel: str, alert: Alert, error: str, count: int) -> None:
        """From a worker thread: journal it on the event loop (the journal's one writer lives there)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        rec = JournalRecord("alert", alert.symbol or "", time.time_ns(), {
            "event": alert.event, "severity": alert.severity, "channel": channel, "status": "failed",
            "title": alert.title, "message": f"{error}" + (f" ({count} failure(s) in this window)" if count > 1 else "")})
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._publish, rec)

    def _publish(self, rec: JournalRecord) -> None:
        app = self._app
        if app is not None and app.node is not None:
            with contextlib.suppress(Exception):
                app.node.kernel.msgbus.publish(JOURNAL_TOPIC, rec)

    # -- views --------------------------------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict]:
        app = self._app
        running = bool(app is not None and app.node is not None and app.node.trader.is_running)
        return running, {"mode": self.mode, "venue": self.settings.venue.display_name,
                         "trader": "running" if running else "stopped",
                         "symbols": sorted(getattr(app, "strategies", {}) or {})}

    def status_data(self) -> dict:
        from basisbot.ops.status import status_data

        return status_data(self.settings.journal, self.settings)

    def page(self) -> str:
        from basisbot.ops.status_page import render_page

        ok, info = self.health()
        control = None
        if self.control is not None and self.control_token is not None:
            strategies = getattr(self._app, "strategies", None) or {}
            control = {"states": {s: getattr(getattr(st, "control", None), "mode", "?")
                                  for s, st in strategies.items()}}
        return render_page(self.status_data(), refresh_s=self.refresh_s,
                           node={"mode": self.mode, "venue": info["venue"], "trader": info["trader"]},
                           control=control)

    def metrics_body(self) -> tuple[bytes, str]:
        return self.metrics.exposition(), self.metrics.content_type

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    def start(self, app) -> None:
        """After the trader runs: alert workers, HTTP server, the tick. A port already in use is logged, not fatal."""
        self._app = app
        self._loop = asyncio.get_running_loop()
        self.metrics.up.labels(self.mode).set(1)
        self.metrics.venue.labels(self.settings.exchange.name).set(1)
        now = dt.datetime.now(dt.timezone.utc)
        if summary_due(now, self.settings.alerts.daily_summary_utc, None):
            self._summary_day = now.date()  # started after today's time: the first summary is tomorrow's
        if self.dispatcher is not None:
            self.dispatcher.start()
            self.log.info(f"alerts: {len(self.dispatcher.channels)} channel(s): "
                          f"{', '.join(c.label for c in self.dispatcher.channels)}; "
                          f"min severity {self.settings.alerts.min_severity}")
        ls = self.settings.live
        if ls.metrics_port is not None:
            from basisbot.ops.server import OpsServer

            srv = OpsServer(ls.metrics_host, ls.metrics_port, metrics=self.metrics_body, page=self.page,
                            data=self.status_data, health=self.health, token=self.token, on_error=self.log.error,
                            control=self.control if self.control_token is not None else None,
                            control_token=(self.control_token.get_secret_value()
                                           if self.control_token is not None else None))
            try:
                srv.start()
                self.server = srv
                self.log.info(f"ops server on {srv.url}: /metrics, /healthz, /status"
                              + (" (token required)" if self.token else "")
                              + (", POST /control (control token required)" if srv.control_token else ""))
            except OSError as e:
                self.log.error(f"ops server not started on {ls.metrics_host}:{ls.metrics_port}: {e}")
        if self.control is not None:
            self.control.loop = self._loop
        if self.telegram is not None:
            self._telegram_task = asyncio.create_task(self.telegram.run(), name="basisbot-telegram")
            self.log.info(f"telegram control: {len(self.telegram.allowed)} chat(s) allowed")
        self._task = asyncio.create_task(self._tick_loop(), name="basisbot-ops-tick")

    async def stop(self) -> None:
        if self._telegram_task is not None:
            self._telegram_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._telegram_task
            self._telegram_task = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.metrics.up.labels(self.mode).set(0)
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
            self.server = None
        if self.dispatcher is not None:
            await asyncio.to_thread(self.dispatcher.stop)

    # -- the tick -----------------------------------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        last_config = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick()
                mono = time.monotonic()
                if mono - last_config >= CONFIG_POLL_S:
                    last_config = mono
                    await asyncio.to_thread(self.poll_config_refusals)
                await self._maybe_summary()
            except Exception as e:  # the tick must never die, nor disturb the node
                self.log.error(f"ops tick: {type(e).__name__}: {e}")

    def streams(self) -> list[tuple[str, bool, int]]:
        """(stream name, down, reconnects) of every venue stream the node's clients hold."""
        out = []
        app = self._app
        for kind, dc in (getattr(app, "data_clients", None) or {}).items():
            with contextlib.suppress(Exception):
                for name, st in dict(dc.feed_stats()).items():
                    out.append((f"{kind} market data {name}", bool(st.get("down")), int(st.get("reconnects", 0))))
        for kind, ec in (getattr(app, "exec_clients", None) or {}).items():
            down = getattr(ec, "_stream_down", None)
            if isinstance(down, dict):
                total = int(getattr(ec, "stream_reconnects", 0) or 0)
                for name, since in dict(down).items():
                    out.append((f"{kind} user stream {name}", since is not None, 0))
                out.append((f"{kind} user streams", False, total))
        return out

    def tick(self) -> None:
        now = time.monotonic()
        self.metrics.tick(time.time_ns())
        for name, down, reconnects in self.streams():
            self.metrics.reconnects_total(name, reconnects)
            self.metrics.stream_down.labels(name).set(1 if down else 0)
            for event, stream, seconds in self.outages.observe(name, down, now):
                self.rules.outage(event, stream, seconds)
        journal = getattr(getattr(self._app, "journal", None), "journal", None)
        if journal is not None:
            self.metrics.journal_stats(journal.latency_stats())
        if self.dispatcher is not None:
            for label, st in self.dispatcher.stats().items():
                sent, failed = self._alert_totals.get(label, (0, 0))
                if st.sent > sent:
                    self.metrics.alerts_sent.labels(label).inc(st.sent - sent)
                if st.failed > failed:
                    self.metrics.alerts_failed.labels(label).inc(st.failed - failed)
                self._alert_totals[label] = (st.sent, st.failed)

    def poll_config_refusals(self) -> None:
        path = Path(self.settings.journal)
        if not path.exists():
            return
        with JournalReader(path) as r:
            rows = r.rows("config_changes", "status = 'refused' AND ts > ?", [self._config_seen_ns], order_by="ts")
        for row in rows:
            self._config_seen_ns = max(self._config_seen_ns, row["ts"])
            self.rules.config_refused(row["ts"], row["source"], row["message"] or "")

    async def _maybe_summary(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        if not summary_due(now, self.settings.alerts.daily_summary_utc, self._summary_day):
            return
        self._summary_day = now.date()
        from basisbot.ops.status import render_status

        text = await asyncio.to_thread(render_status, self.settings.journal, self.settings)
        self.rules.daily_summary(text, now.date())


__all__ = ["OpsService"]
