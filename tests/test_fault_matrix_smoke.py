"""A smoke subset of the fault matrix (`benchmarks/fault_matrix.py`): one seed, one symbol, five faults
(including the double perp rejection and a kill -9 in the middle of the guard's reduce: one reduce, its margin put
back after the restart), each with `basisbot sim` and `basisbot live` as real processes, judged from the venue's side
(and the journal's reduces). The cells run all at once (one venue + node pair each, mostly waiting on the replay
clock); each test checks one cell. A kill -9 during the entry is `tests/test_live_restart.py`'s."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYMBOL = "BTCUSDT"
SEED = 1
FAULTS = ["ws_drop", "accepted_timeout", "first_leg_rejected", "second_leg_rejected_twice", "kill9_guard"]


def _matrix():
    spec = importlib.util.spec_from_file_location("fault_matrix", ROOT / "benchmarks" / "fault_matrix.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fault_matrix"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    fm = _matrix()
    work = tmp_path_factory.mktemp("fault_matrix")

    sem = asyncio.Semaphore(len(FAULTS))  # every venue + node pair at once (mostly waiting on the replay clock)

    async def one(name):
        async with sem:
            return await fm.run_fault(fm.FAULTS[name], [SYMBOL], SEED, work)

    async def run():
        res = await asyncio.gather(*(one(name) for name in FAULTS))
        return {r[0].fault: r[0] for r in res}

    return asyncio.run(run())


def _check(cell):
    assert cell.passed, f"{cell.fault} {cell.symbol}: {'; '.join(cell.problems)} ({cell.figures})"
    assert cell.figures["exit"] == 0


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_cell(cells, fault):
    _check(cells[fault])
