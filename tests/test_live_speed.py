"""Rehearsal at speed: the live node against `basisbot sim` replaying at 60x learns the speed from the venue
(GET /sim/clock), so decision, blackout and booking fall where they would at 1x in venue time, and every settlement
is booked with its prediction: one funding row per settlement carrying the prediction, the booking and the
exchange's settled payment; no prediction-only rows, no storm of "venue clock jumped" re-anchorings.

SOL's funding was every 2 hours from 2022-11-10 04:00: at 60x two settlements (06:00, 08:00) are ~2 wall minutes
apart."""

from __future__ import annotations

import asyncio
import logging

import pandas as pd
import pytest

from basisbot.journal.writer import JournalReader
from basisbot.live.node import NodeOptions
from basisbot.sim import SimServer
from tests.helpers.live_node import RunningNode, node_settings, sim_config, until
from tests.helpers.sim_venue import state

SYM = "SOLUSDT"
T1 = pd.Timestamp("2022-11-10T06:00:00Z").value
T2 = pd.Timestamp("2022-11-10T08:00:00Z").value
DEFAULT_WINDOWS = {"decision_before_s": 600, "blackout_before_s": 300, "blackout_after_s": 60, "booking_after_s": 60,
                   "guard_sweep_s": 60}


@pytest.mark.slow
def test_rehearsal_at_60x_books_every_settlement_with_its_prediction(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="basisbot.live")

    async def scenario():
        async with SimServer(sim_config(speed=60.0, start="2022-11-10T05:35:00Z", symbols=[SYM])) as sim:
            settings = node_settings(tmp_path, sim.url, schedule=DEFAULT_WINDOWS, symbols={SYM: {
                "notional_usdt": 2000.0, "leverage": 2, "entry_apr": -1000.0, "exit_apr": -2000.0}})
            async with RunningNode(settings, "live", NodeOptions(log_level="WARNING")) as run:
                assert run.app.venue_speed == 60.0 and "/sim/clock" in run.app.venue_speed_source
                strat = run.strategy(SYM)
                # the decision window is 600 venue s = 10 wall s before the settlement
                assert strat.calendar.windows.decision_before_s == pytest.approx(10.0)

                async def venue_past(t_ns: int, extra_s: float):
                    st = await state(sim)
                    return st["time"] * 1_000_000 >= t_ns + extra_s * 1e9

                await until(lambda: venue_past(T2, 300), timeout=200, interval=0.5, what="second settlement booked")
                await asyncio.sleep(1.0)
                funding = [f for f in (await state(sim))["funding"] if f["symbol"] == SYM]
                jumps = run.app.session.time.jumps
        return funding, jumps

    funding, jumps = asyncio.run(scenario())
    assert [f["time"] for f in funding] == [T1 // 1_000_000, T2 // 1_000_000]  # the venue paid twice
    with JournalReader(tmp_path / "journal.sqlite") as r:
        rows = r.rows("funding", "symbol = ?", [SYM], order_by="settlement_ts")
        clock = r.venue_clock()
    assert clock is not None and clock["speed"] == 60.0
    assert len(rows) == 2, rows  # one row per settlement: no prediction-only rows
    for row, paid in zip(rows, funding):
        assert row["predicted_rate"] is not None and row["predicted_ts"] is not None, row
        assert row["booked_ts"] is not None and row["booked_phase"] == "in_carry", row
        assert row["settled_payment"] == pytest.approx(paid["payment"], abs=1e-8), row
        assert not row["flagged"], row
        # decision 600 venue s before T and booking 60 venue s after it, on the node's clock at 60x:
        # 10 and 1 wall seconds (a little slack for the event loop)
        assert 8.5e9 <= row["settlement_ts"] - row["predicted_ts"] <= 11e9, row
        assert 0.5e9 <= row["booked_ts"] - row["settlement_ts"] <= 3e9, row
    assert jumps <= 2, f"{jumps} venue clock re-anchorings"
    assert sum("venue clock jumped" in m for m in caplog.messages) <= 2
