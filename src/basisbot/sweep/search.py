"""Optuna search over the grid file's ranges (`{low, high, log, step}`) and lists (choices), each trial a full backtest
run as a Ray task; as many trials in flight as the pool has workers (TPE with the constant liar for the ones still
running). Resumable: the trials told so far are kept in `DIR/trials.json` and replayed into the study, and a trial
that lands on a point already done in `DIR` is answered from its results without running again."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from basisbot.config.schema import Settings
from basisbot.sweep.grid import Grid, PointErrors, Range
from basisbot.sweep.plan import RunScope, plan_point
from basisbot.sweep.progress import Progress
from basisbot.sweep.results import done_row, write_point
from basisbot.sweep.runner import Executor, RayPool

TRIALS_FILE = "trials.json"


def _scalar(v: Any) -> Any:
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def distributions(grid: Grid) -> dict:
    import optuna.distributions as od

    out = {}
    for key in grid.keys:
        spec = grid.values[key]
        if isinstance(spec, Range):
            if spec.is_int:
                out[key] = od.IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
            else:
                out[key] = od.FloatDistribution(float(spec.low), float(spec.high), log=spec.log,
                                                step=None if spec.step is None else float(spec.step))
        else:
            out[key] = od.CategoricalDistribution([_scalar(v) for v in spec])
    return out


def objective_value(row: dict, objective: str) -> float | None:
    v = row.get(objective)
    if row.get("status") != "ok" or not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
        return None
    return float(v)


class _Stub:
    """A refused trial's row needs a point-like record (id, values, window) for its folder."""

    def __init__(self, point_id: str, values: dict, scope: RunScope):
        self.point_id, self.values = point_id, values
        self.start, self.end, self.symbols = scope.start, scope.end, scope.symbols or ()


def run_search(base: Settings, grid: Grid, scope: RunScope, out: Path, pool: RayPool, *, trials: int,
               objective: str, direction: str, seed: int, progress: bool = True, label: str = "search") -> list[dict]:
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = distributions(grid)
    study = optuna.create_study(direction=direction,
                                sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / TRIALS_FILE
    told: list[dict] = json.loads(log_path.read_text()) if log_path.exists() else []
    rows: dict[int, dict] = {}
    bar = Progress(trials, label, enabled=progress)

    def record(number: int, params: dict, row: dict, point_id: str) -> None:
        row = {"trial": number, **row}
        rows[number] = row
        told.append({"trial": number, "params": params, "point_id": point_id, "status": row["status"],
                     "value": objective_value(row, objective)})
        log_path.write_text(json.dumps(told, indent=1) + "\n")

    # replay the trials of an earlier run of this search into the study (resume)
    for t in list(told)[:trials]:
        value = t.get("value")
        try:
            study.add_trial(create_trial(params=t["params"], distributions=dists, value=value,
                                         state=TrialState.COMPLETE if value is not None else TrialState.FAIL))
        except ValueError:
            continue  # the grid file changed since: that trial's params are no longer in range
        stub = _Stub(t["point_id"], t["params"], scope)
        row = done_row(out, stub)
        rows[t["trial"]] = {"trial": t["trial"], **(row or _failed_row(out, stub, t))}
        bar.update(ok=value is not None, skipped=True)
    told = told[:len(rows)]
    next_number = max(rows, default=-1) + 1

    ex = Executor(pool, out)
    waiting: dict[str, list[tuple[object, int, dict]]] = {}  # point id -> the trials waiting for it
    asked = len(rows)
    while asked < trials or ex.inflight:
        while asked < trials and ex.free_slots > 0:
            trial = study.ask(dists)
            number, asked, next_number = next_number, asked + 1, next_number + 1
            params = dict(trial.params)
            values = {k: params[k] for k in grid.keys}
            try:
                point = plan_point(base, values, number, scope)
            except PointErrors as e:
                stub = _Stub(f"refused-{number:04d}", values, scope)
                row = write_point(out, stub, {"status": "failed",
                                              "error": "refused by the config rules: " + " | ".join(e.lines)})
                study.tell(trial, state=TrialState.FAIL)
                record(number, params, row, stub.point_id)
                bar.update(ok=False)
                continue
            if point.point_id in waiting:  # the same point is already running for another trial
                waiting[point.point_id].append((trial, number, params))
                continue
            row = done_row(out, point)  # a point already done (resume, or proposed again): answer from its results
            if row is None:
                ex.submit(point)
                waiting[point.point_id] = [(trial, number, params)]
                continue
            value = objective_value(row, objective)
            study.tell(trial, value, state=TrialState.COMPLETE if value is not None else TrialState.FAIL)
            record(number, params, row, point.point_id)
            bar.update(ok=value is not None, skipped=row["status"] == "ok")
        if ex.inflight:
            point, _, row = ex.next_done()
            value = objective_value(row, objective)
            for trial, number, params in waiting.pop(point.point_id):
                study.tell(trial, value, state=TrialState.COMPLETE if value is not None else TrialState.FAIL)
                record(number, params, row, point.point_id)
                bar.update(ok=value is not None)
    bar.close()
    return [rows[n] for n in sorted(rows)]


def _failed_row(out: Path, stub: _Stub, told: dict) -> dict:
    row = {**stub.values, "status": told.get("status", "failed"), "error": "", "folder": f"points/{stub.point_id}",
           "point_id": stub.point_id}
    folder = out / "points" / stub.point_id / "point.json"
    if folder.exists():
        row["error"] = json.loads(folder.read_text()).get("error") or ""
    return row
