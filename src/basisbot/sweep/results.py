"""Sweep results: each point's folder (`DIR/points/ID/`: the backtest's own files plus `point.json`) and the table
`DIR/results.csv` / `DIR/results.parquet`, one row per point.

Columns: the grid keys as written in the grid file, then `total.net_pnl`, `total.funding_pnl`, `total.fees`,
`total.liquidations`, the same per symbol (`BTCUSDT.net_pnl`, ...), `max_unhedged_s` (the largest over the symbols,
from summary.json when the backtest reports it, else empty), `run_seconds`, `status`, `error`, `folder`, `point_id`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

METRICS = ("net_pnl", "funding_pnl", "fees", "liquidations")
POINTS_DIR = "points"
POINT_FILE = "point.json"


def point_dir(out: Path, point_id: str) -> Path:
    return out / POINTS_DIR / point_id


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (bool, int, float, str)) or v is None else str(v)


def write_point(out: Path, point, outcome: dict) -> dict:
    """Write the point's files and point.json; return its row. A failed point keeps its error (and no summary)."""
    folder = point_dir(out, point.point_id)
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in outcome.get("files", {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    record = {
        "point_id": point.point_id,
        "values": {k: _jsonable(v) for k, v in point.values.items()},
        "window": {"start": point.start, "end": point.end},
        "symbols": list(point.symbols),
        "status": outcome["status"],
        "error": outcome.get("error"),
        "traceback": outcome.get("traceback"),
        "run_seconds": round(outcome.get("seconds", 0.0), 3),
        "import_seconds": round(outcome.get("import_seconds", 0.0), 3),
        "data_hits": outcome.get("data_hits"),
        "data_misses": outcome.get("data_misses"),
        "events": outcome.get("events"),
        "worker_pid": outcome.get("pid"),
        "phases": {k: round(v, 3) for k, v in outcome.get("phases", {}).items()},
    }
    (folder / POINT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return row_of(out, point, record, outcome.get("summary"))


def done_row(out: Path, point) -> dict | None:
    """The row of a point already done in `out` (status ok and its summary.json there), else None."""
    folder = point_dir(out, point.point_id)
    try:
        record = json.loads((folder / POINT_FILE).read_text())
        if record.get("status") != "ok":
            return None
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return row_of(out, point, record, summary)


def max_unhedged(summary: dict | None) -> float | None:
    vals = [v.get("max_unhedged_s") for v in (summary or {}).get("symbols", {}).values()]
    vals = [float(v) for v in vals if isinstance(v, (int, float))]
    return max(vals) if vals else None


def row_of(out: Path, point, record: dict, summary: dict | None) -> dict:
    row: dict[str, Any] = dict(point.values)
    if summary:
        for m in METRICS:
            row[f"total.{m}"] = summary["total"].get(m)
        for sym, v in summary["symbols"].items():
            for m in METRICS:
                row[f"{sym}.{m}"] = v.get(m)
    row["max_unhedged_s"] = max_unhedged(summary)
    row["run_seconds"] = record.get("run_seconds")
    row["status"] = record["status"]
    row["error"] = record.get("error") or ""
    row["folder"] = str(Path(POINTS_DIR) / point.point_id)
    row["point_id"] = point.point_id
    return row


def columns(keys: list[str], rows: list[dict]) -> list[str]:
    symbols: list[str] = []
    for r in rows:
        for c in r:
            sym, _, metric = c.partition(".")
            if metric in METRICS and sym != "total" and c not in keys and sym not in symbols:
                symbols.append(sym)
    cols = list(keys) + [f"total.{m}" for m in METRICS]
    cols += [f"{s}.{m}" for s in symbols for m in METRICS]
    return cols + ["max_unhedged_s", "run_seconds", "status", "error", "folder", "point_id"]


def results_frame(keys: list[str], rows: list[dict], extra: list[str] = ()) -> pd.DataFrame:
    cols = columns(keys, rows)
    cols[len(keys):len(keys)] = [c for c in extra if c not in cols]
    frame = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    for c in cols:
        if c not in keys and c not in ("status", "error", "folder", "point_id"):
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def write_table(out: Path, keys: list[str], rows: list[dict], extra: list[str] = (), name: str = "results") -> pd.DataFrame:
    """`name`.csv and `name`.parquet in `out`. Key columns of mixed or non-scalar types are written as text."""
    frame = results_frame(keys, rows, list(extra))
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"{name}.csv", index=False)
    pq = frame.copy()
    for c in keys:
        kinds = {type(v) for v in pq[c] if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if not (kinds <= {int, float} or (len(kinds) == 1 and kinds <= {bool, str})):
            pq[c] = pq[c].map(lambda v: None if v is None else str(v))
    pq.to_parquet(out / f"{name}.parquet", index=False)
    return frame
