"""Helpers for driving a live/paper node against the local venue (`basisbot.sim`) in tests and benchmarks.

    async with SimServer(sim_config(start="2022-02-28T07:59:45Z")) as sim:
        settings = node_settings(tmp_path, sim.url, symbols={"BTCUSDT": {...}})
        async with RunningNode(settings, "live") as run:
            await until(lambda: run.strategy("BTCUSDT").phase is Phase.IN_CARRY)

Everything stays on 127.0.0.1; the venue runs at real speed (1 replay second per wall second) unless told otherwise,
and tests move its clock with the admin endpoints (`tests.helpers.sim_venue.admin`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

from pydantic import SecretStr

from basisbot.config.loading import load_settings
from basisbot.config.schema import Settings
from basisbot.live.node import BasisNode, NodeOptions, run_node
from basisbot.ops.service import OpsService
from tests.helpers.sim_venue import KEY, SECRET
from tests.helpers.sim_venue import config as _sim_config


def sim_config(**overrides):
    """The local venue's config for live tests: real speed, BTCUSDT and ETHUSDT, the test credentials."""
    base = dict(speed=1.0, start="2022-02-28T07:59:45Z")
    base.update(overrides)
    return _sim_config(**base)


FAST_SCHEDULE = {"decision_before_s": 10, "blackout_before_s": 5, "blackout_after_s": 1, "booking_after_s": 2,
                 "guard_sweep_s": 60}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def _toml(d: dict, prefix: str = "") -> str:
    scalars = [(k, v) for k, v in d.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in d.items() if isinstance(v, dict)]
    out = []
    if prefix and scalars:
        out.append(f"[{prefix}]")
    out += [f"{k} = {_toml_value(v)}" for k, v in scalars]
    for k, v in tables:
        out.append(_toml(v, f"{prefix}.{k}" if prefix else k))
    return "\n".join(x for x in out if x) + "\n"


def write_config(folder: Path, url: str, *, symbols: dict, journal: str | None = None, schedule: dict | None = None,
                 live: dict | None = None, backtest: dict | None = None, mode: str = "live") -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "mode": mode,
        "journal": journal or str(folder / "journal.sqlite"),
        "live": {"exchange_url": url, "poll_interval_s": 2.0, "reconnect_max_s": 2.0, **(live or {})},
        "schedule": {**FAST_SCHEDULE, **(schedule or {})},
        "symbols": symbols,
    }
    if backtest:
        data["backtest"] = backtest
    path = folder / "basisbot.toml"
    path.write_text(_toml(data), encoding="utf-8")
    return path


def node_settings(folder: Path, url: str, *, credentials: bool = True, **kwargs) -> Settings:
    path = write_config(folder, url, **kwargs)
    s = load_settings(path, env_file=None)
    if credentials:
        s = s.model_copy(update={"api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET)})
    return s


def subprocess_env(**extra) -> dict:
    """Environment for `python -m basisbot.live`: the venue's test credentials, no other BASISBOT_ overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASISBOT_")}
    env.update(BASISBOT_API_KEY=KEY, BASISBOT_API_SECRET=SECRET, PYTHONUNBUFFERED="1", **extra)
    return env


class RunningNode:
    """`run_node` in a task; `app` once started; leaving the block stops it (SIGINT's path) and checks the status."""

    def __init__(self, settings: Settings, mode: str = "live", options: NodeOptions | None = None,
                 start_timeout: float = 30.0):
        self.settings = settings
        self.mode = mode
        self.options = options or NodeOptions(log_level="WARNING")
        if self.options.ops and self.options.ops_factory is None:  # as the CLI runs it: with alerts, metrics, page
            self.options = dataclasses.replace(self.options, ops_factory=OpsService)
        self.start_timeout = start_timeout
        self.stop = asyncio.Event()
        self.app: BasisNode | None = None
        self.rc: int | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> RunningNode:
        ready = asyncio.Event()

        def on_ready(app):
            self.app = app
            ready.set()

        self._task = asyncio.create_task(run_node(self.settings, self.mode, self.options, self.stop, on_ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({waiter, self._task}, timeout=self.start_timeout, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiter.cancel()
            self.stop.set()
            rc = await self._task if self._task.done() else None
            raise RuntimeError(f"node did not start (exit status {rc})")
        return self

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            self.rc = await asyncio.wait_for(self._task, 30)

    def strategy(self, symbol: str):
        return self.app.strategies[symbol]

    @property
    def perp_exec(self):
        return self.app.exec_clients["perp"]

    @property
    def spot_exec(self):
        return self.app.exec_clients["spot"]


async def until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll a predicate (plain or async) until truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout:.0f}s")
        await asyncio.sleep(interval)


__all__ = ["FAST_SCHEDULE", "RunningNode", "node_settings", "sim_config", "subprocess_env", "until",
           "write_config"]
