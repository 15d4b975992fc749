"""One sweep point's backtest, inside a worker process: the `basisbot backtest` code path (`prepare`, `run_prepared`,
`write_results`, `write_report`), its market data served from what the driver loaded once.

The worker writes the results into a scratch folder and returns the files' bytes, so the driver (which may be on
another machine than the worker) writes the point's folder. Nothing here imports Ray.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from basisbot.config.settings import Settings

LoadKey = tuple[str, str, str | None, str | None, bool, str | None, str | None]


def _instant(value) -> str | None:
    if value in (None, ""):
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).isoformat()


def load_key(data_dir, symbol: str, start=None, end=None, allow_perp_gaps: bool = False, exchange: str | None = None,
             contract_value=None) -> LoadKey:
    """The arguments of one `market_data.load_symbol` call, normalised (folder resolved, instants in UTC)."""
    return (str(Path(data_dir).resolve()), symbol.strip().upper(), _instant(start), _instant(end),
            bool(allow_perp_gaps), exchange, None if contract_value is None else str(contract_value))


@dataclass
class DataServed:
    hits: int = 0
    misses: int = 0


@contextlib.contextmanager
def serve_loaded_data(loaded: dict[LoadKey, object]):
    """While active, `market_data.load_symbol` answers from `loaded` for the exact same arguments (folder, symbol,
    window, gap policy) and reads the files otherwise (counted as a miss). Used only in a sweep worker, a process
    that runs this one backtest and exits (max_calls=1)."""
    from basisbot.data import market_data

    real = market_data.load_symbol
    served = DataServed()

    def load_symbol(data_dir, symbol, start=None, end=None, *, allow_perp_gaps=False, exchange=None,
                    contract_value=None):
        hit = loaded.get(load_key(data_dir, symbol, start, end, allow_perp_gaps, exchange, contract_value))
        if hit is not None:
            served.hits += 1
            return hit
        served.misses += 1
        return real(data_dir, symbol, start, end, allow_perp_gaps=allow_perp_gaps, exchange=exchange,
                    contract_value=contract_value)

    market_data.load_symbol = load_symbol
    try:
        yield served
    finally:
        market_data.load_symbol = real


@dataclass(frozen=True)
class PointTask:
    point_id: str
    settings: Settings
    data_path: str
    start: str | None
    end: str | None
    symbols: tuple[str, ...] | None  # passed to prepare (None: the config's enabled symbols)


def run_point(task: PointTask, loaded: dict[LoadKey, object]) -> dict:
    """Run one backtest. Never raises: a failure comes back as {"status": "failed", "error": ...}."""
    t0 = time.perf_counter()
    try:
        from basisbot.backtest.report import write_report
        from basisbot.backtest.results import write_results
        from basisbot.backtest.run import prepare, run_prepared

        t_imported = time.perf_counter()
        with serve_loaded_data(loaded) as served:
            prepared = prepare(task.settings, data_dir=Path(task.data_path), start=task.start, end=task.end,
                               symbols=list(task.symbols) if task.symbols else None)
        result = run_prepared(prepared)
        with tempfile.TemporaryDirectory(prefix="basisbot-point-") as tmp:
            out = Path(tmp)
            summary = write_results(result, out)
            write_report(summary, out / "report.html")
            files = {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}
        return {"status": "ok", "point_id": task.point_id, "summary": summary, "files": files,
                "seconds": time.perf_counter() - t_imported, "import_seconds": t_imported - t0,
                "data_hits": served.hits, "data_misses": served.misses}
    except Exception as e:  # noqa: BLE001 - every failure is recorded with its point; the others go on
        return {"status": "failed", "point_id": task.point_id, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - t0}
