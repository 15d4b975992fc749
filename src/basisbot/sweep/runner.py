"""Running sweep points as Ray tasks: each backtest in a fresh worker process (`max_calls=1`; nautilus' engine is not
reliably re-created in one process), the market data loaded once by the driver and shared through the object store.

Without an address, a local Ray is started for the command and stopped after it, on loopback only: Ray 2.60 on Linux
binds its node to the machine's interface address unless `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` is set before it
starts (`_node_ip_address="127.0.0.1"` alone does not do it), so it is set here before Ray is imported, and the
node's address is checked after start. With an address, the command joins that cluster as a driver.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from basisbot.sweep.plan import PlannedPoint
from basisbot.sweep.point import LoadKey, PointTask, load_key, run_point
from basisbot.sweep.progress import Progress
from basisbot.sweep.results import done_row, write_point

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
AUTH_ENV = "RAY_AUTH_MODE"


class SweepRuntimeError(RuntimeError):
    """Ray could not be started or joined (exit status 1)."""


def _import_ray(*, loopback: bool):
    if loopback:
        os.environ[LOOPBACK_ENV] = "0"  # before Ray is imported or started: keeps an embedded node on 127.0.0.1
    import ray
    from ray._private import ray_constants, services

    if loopback:
        if ray_constants.ENABLE_RAY_CLUSTER:  # Ray was imported before the variable was set: Ray reads it at import
            ray_constants.ENABLE_RAY_CLUSTER = False
        ip = services.get_node_ip_address()
        if ip != "127.0.0.1":
            raise SweepRuntimeError(f"a local Ray would bind to {ip}, not loopback; refusing to start it")
    return ray


class RayPool:
    """Ray for one command: started (or joined) on first use, stopped (or left) on exit."""

    def __init__(self, *, workers: int | None = None, address: str | None = None):
        self.workers, self.address = workers, address
        self.ray = None
        self.capacity = 0
        self.node_ip: str | None = None
        self._tmp: str | None = None
        self._task = None
        self._auth_mode: str | None = None

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        if self.ray is not None:
            return
        host = (self.address or "").rpartition(":")[0].removeprefix("ray://")
        # a local Ray, or a driver joining a head on this machine's loopback, lives on 127.0.0.1
        ray = _import_ray(loopback=self.address is None or host in ("127.0.0.1", "localhost"))
        self._auth_mode = os.environ.get(AUTH_ENV)
        try:
            if self.address is None:
                # own temp dir: never picks up (or disturbs) another local cluster; address="local" starts a new one
                self._tmp = tempfile.mkdtemp(prefix="bbray-", dir="/tmp")
                ray.init(address="local", num_cpus=self.workers or os.cpu_count() or 1, include_dashboard=False,
                         _node_ip_address="127.0.0.1", _temp_dir=self._tmp, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=True)
            else:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as e:  # noqa: BLE001 - Ray raises many kinds; the message says what
            self._cleanup_tmp()
            where = f"join the Ray cluster at {self.address}" if self.address else "start a local Ray"
            raise SweepRuntimeError(f"could not {where}: {type(e).__name__}: {e}") from None
        self.ray = ray
        self.node_ip = ray.util.get_node_ip_address()
        if self.address is None:
            addrs = {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}
            if addrs != {"127.0.0.1"} or self.node_ip != "127.0.0.1":
                self.close()
                raise SweepRuntimeError(f"the local Ray node is not on loopback ({sorted(addrs)}); refusing to run")
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max(1, min(self.workers, cpus) if self.workers else cpus)
        self._task = ray.remote(max_calls=1, num_cpus=1, max_retries=0)(run_point)

    def put(self, obj):
        self.start()
        return self.ray.put(obj)

    def submit(self, task: PointTask, loaded_ref):
        self.start()
        return self._task.remote(task, loaded_ref)

    def wait_one(self, refs: list) -> tuple[object, dict]:
        """Block until one of `refs` is done; its ref and outcome (a crash of the worker becomes a failed outcome)."""
        [done], _ = self.ray.wait(refs, num_returns=1)
        try:
            return done, self.ray.get(done)
        except Exception as e:  # noqa: BLE001 - a worker crash or a task error is this point's failure
            return done, {"status": "failed", "error": f"{type(e).__name__}: {str(e).strip().splitlines()[-1]}"}

    def close(self) -> None:
        if self.ray is not None:
            self.ray.shutdown()
            self.ray = None
            # ray.init turns token auth on for a local cluster by setting RAY_AUTH_MODE in this process: undo
            if self._auth_mode is None:
                os.environ.pop(AUTH_ENV, None)
            else:
                os.environ[AUTH_ENV] = self._auth_mode
        self._cleanup_tmp()

    def _cleanup_tmp(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


@dataclass
class SharedData:
    """Market data loaded once per (folder, window, symbol) by the driver, put once in the object store. A symbol
    that fails to load is left out: the point's worker then reads it itself and fails with the importer's error,
    recorded with the point like any other failure."""

    pool: RayPool
    refs: dict[tuple, object]

    @classmethod
    def load(cls, pool: RayPool, points: list[PlannedPoint]) -> SharedData:
        from basisbot.data import market_data

        groups: dict[tuple, dict[str, object]] = defaultdict(dict)
        for p in points:
            try:
                specs = p.settings.venue.perp_rules(p.settings.backtest.exchange_info)
            except (ValueError, OSError):
                specs = {}
            for s in p.symbols:
                groups[cls.group_of(p)][s] = specs[s].contract_value if s in specs else None
        refs = {}
        for group, symbols in groups.items():
            data_path, start, end, exchange = group
            loaded: dict[LoadKey, object] = {}
            for s, ct in sorted(symbols.items()):
                try:  # the same call `prepare` makes (hours where the perp has a gap kept, the venue checked)
                    loaded[load_key(data_path, s, start, end, True, exchange, ct)] = market_data.load_symbol(
                        data_path, s, start=_utc(start), end=_utc(end), allow_perp_gaps=True, exchange=exchange,
                        contract_value=ct)
                except (market_data.DataError, OSError):
                    continue
            refs[group] = pool.put(loaded)
        return cls(pool, refs)

    @staticmethod
    def group_of(p: PlannedPoint) -> tuple:
        return (str(p.data_path), p.start, p.end, p.settings.venue.data_suffix)


def _utc(day: str | None):
    import pandas as pd

    return None if day is None else pd.Timestamp(day).tz_localize("UTC")


def task_of(p: PlannedPoint) -> PointTask:
    return PointTask(p.point_id, p.settings, str(p.data_path), p.start, p.end,
                     p.symbols if p.explicit_symbols else None)


class Executor:
    """Submit points (at most `pool.capacity` in flight), collect them as they finish, write each point's folder."""

    def __init__(self, pool: RayPool, out: Path):
        self.pool, self.out = pool, out
        self.shared: SharedData | None = None
        self.inflight: dict[object, PlannedPoint] = {}

    def prepare_data(self, points: list[PlannedPoint]) -> None:
        self.pool.start()
        fresh = SharedData.load(self.pool, points)
        if self.shared is None:
            self.shared = fresh
        else:
            self.shared.refs.update(fresh.refs)

    @property
    def free_slots(self) -> int:
        self.pool.start()  # asked only when there is a point to run: Ray starts then, not before
        return self.pool.capacity - len(self.inflight)

    def submit(self, p: PlannedPoint) -> None:
        group = SharedData.group_of(p)
        if self.shared is None or group not in self.shared.refs:
            self.prepare_data([p])
        ref = self.pool.submit(task_of(p), self.shared.refs[group])
        self.inflight[ref] = p

    def next_done(self) -> tuple[PlannedPoint, dict, dict]:
        ref, outcome = self.pool.wait_one(list(self.inflight))
        p = self.inflight.pop(ref)
        return p, outcome, write_point(self.out, p, outcome)


def run_points(points: list[PlannedPoint], out: Path, pool: RayPool, *, label: str = "sweep",
               progress: bool = True) -> list[dict]:
    """Every point's row, in the points' order: already done in `out` (skipped), or run now."""
    rows: list[dict | None] = [None] * len(points)
    bar = Progress(len(points), label, enabled=progress)
    todo = []
    for i, p in enumerate(points):
        row = done_row(out, p)
        if row is not None:
            rows[i] = row
            bar.update(skipped=True)
        else:
            todo.append(i)
    if todo:
        ex = Executor(pool, out)
        ex.prepare_data([points[i] for i in todo])
        index = {id(points[i]): i for i in todo}
        queue = list(todo)
        while queue or ex.inflight:
            while queue and ex.free_slots > 0:
                ex.submit(points[queue.pop(0)])
            if ex.inflight:
                p, _, row = ex.next_done()
                rows[index[id(p)]] = row
                bar.update(ok=row["status"] == "ok")
    bar.close()
    return rows  # type: ignore[return-value]
