"""The fault matrix's flatten cells (`benchmarks/fault_matrix.py`) with `basisbot sim` and `basisbot live` as real
processes on BTC and ETH, seed 1: a flatten meeting the entry pairs in flight, the guard's reduce pairs in flight, and
the first perp close refused by the venue; each judged from the venue (flat within the leg timeout + 5 s, no
one-legged stretch past the limit, still flat at the end). About a minute: slow (`pytest -m slow`); the default suite
has the in-process run (tests/test_controls_live.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.test_fault_matrix_smoke import _matrix

FAULTS = ["flatten_in_flight", "flatten_during_guard", "flatten_perp_close_rejected"]
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@pytest.mark.slow
def test_flatten_cells(tmp_path):
    fm = _matrix()

    async def run():
        return await asyncio.gather(*(fm.run_fault(fm.FAULTS[f], SYMBOLS, 1, tmp_path) for f in FAULTS))

    for cells in asyncio.run(run()):
        for c in cells:
            assert c.passed, f"{c.fault} {c.symbol}: {'; '.join(c.problems)} ({c.figures})"
            assert c.figures["flat_after_s"] <= fm.FLAT_WITHIN_S
            if c.fault != "flatten_perp_close_rejected":
                assert c.figures["pair_at_flatten"] in ("enter", "reduce")
