"""Settlement calendar: per-symbol intervals that change over time, windows around each settlement, blackout."""

from __future__ import annotations

import pandas as pd
import pytest

from basisbot.core import carry
from basisbot.core.schedule import (
    Job,
    JobKind,
    SettlementCalendar,
    Windows,
    dt_to_ns,
    jobs_for_settlement,
    ns_to_dt,
    projected_settlements,
)
from basisbot.core.units import NS
from basisbot.data import market_data
from basisbot.nautilus.scheduler import NautilusClockDriver

from .test_backtest import DATA

H = 3600 * NS


def ts(s: str) -> int:
    return pd.Timestamp(s, tz="UTC").value


def test_windows_around_a_settlement():
    w = Windows(decision_before_s=600, blackout_before_s=300, blackout_after_s=60, booking_after_s=60)
    t = ts("2023-03-01 08:00")
    jobs = {j.kind: j for j in jobs_for_settlement("BTCUSDT", t, w)}
    assert jobs[JobKind.DECISION].fire_ns == ts("2023-03-01 07:50")
    assert jobs[JobKind.BLACKOUT_START].fire_ns == ts("2023-03-01 07:55")
    assert jobs[JobKind.BLACKOUT_END].fire_ns == ts("2023-03-01 08:01")
    assert jobs[JobKind.BOOKING].fire_ns == ts("2023-03-01 08:01")
    assert jobs[JobKind.DECISION].trigger.run_date == ns_to_dt(jobs[JobKind.DECISION].fire_ns)


def test_ns_round_trip_keeps_microseconds():
    t = ts("2022-11-09 10:00:00.006")
    assert dt_to_ns(ns_to_dt(t)) == t


@pytest.mark.parametrize("interval_min,expected", [
    (480, ["2023-01-01 00:00", "2023-01-01 08:00", "2023-01-01 16:00", "2023-01-02 00:00"]),
    (240, ["2023-01-01 00:00", "2023-01-01 04:00", "2023-01-01 08:00", "2023-01-01 12:00"]),
    (60, ["2023-01-01 00:00", "2023-01-01 01:00", "2023-01-01 02:00", "2023-01-01 03:00"]),
])
def test_projected_settlements_8h_4h_1h(interval_min, expected):
    assert projected_settlements(ts("2023-01-01 00:00"), interval_min, 4) == [ts(e) for e in expected]


def _replay_calendar(symbol: str, start: str, end: str):
    """Feed the calendar what the exchange announces (the next settlement, its interval) through a period of real data:
    after each settlement the next one is announced, as the mark-price stream's `T` does."""
    d = market_data.load_symbol(DATA, symbol, start=start, end=end, allow_perp_gaps=True)
    f = d.funding
    cal = SettlementCalendar(symbol, Windows())
    seen = []
    times = [int(t.value) for t in f["ts"]]
    intervals = [int(round(h * 60)) for h in f["interval_hours"]]
    for i in range(len(times) - 1):
        now = times[i] + 1
        jobs = cal.on_funding_info(times[i + 1], intervals[i + 1], now)
        cal.settled(times[i])
        seen.append((times[i + 1], intervals[i + 1], jobs))
    return cal, seen


def test_sol_interval_change_mid_run_is_followed():
    cal, seen = _replay_calendar("SOLUSDT", "2022-11-07", "2022-11-21")
    intervals = [iv for _, iv, _ in seen]
    assert intervals[0] == 480 and intervals[-1] == 480
    assert 120 in intervals  # SOL's 2-hour funding during the FTX collapse
    two_hourly = [t for t, iv, _ in seen if iv == 120]
    assert ns_to_dt(two_hourly[0]).date().isoformat() >= "2022-11-09"
    assert ns_to_dt(two_hourly[-1]).date().isoformat() <= "2022-11-18"
    # every announced settlement got its decision and booking jobs, at the windows of that settlement
    for t, _, jobs in seen:
        kinds = {j.kind: j.fire_ns for j in jobs}
        assert kinds[JobKind.DECISION] == t - 600 * NS and kinds[JobKind.BOOKING] == t + 60 * NS


def test_btc_settles_at_00_08_16_utc():
    _, seen = _replay_calendar("BTCUSDT", "2023-06-01", "2023-06-08")
    hours = {ns_to_dt(pd.Timestamp(t).round("h").value).hour for t, _, _ in seen}
    assert hours == {0, 8, 16}
    assert {iv for _, iv, _ in seen} == {480}


def test_blackout_window_and_it_blocks_entry():
    cal = SettlementCalendar("BTCUSDT", Windows(blackout_before_s=300, blackout_after_s=60))
    t = ts("2023-03-01 08:00")
    cal.on_funding_info(t, 480, t - 2 * H)
    assert not cal.in_blackout(t - 301 * NS)
    assert cal.in_blackout(t - 300 * NS) and cal.in_blackout(t) and cal.in_blackout(t + 59 * NS)
    # after the settlement the next one is announced; the window after the previous one still holds
    cal.on_funding_info(t + 8 * H, 480, t + 1)
    assert cal.in_blackout(t + 30 * NS) and not cal.in_blackout(t + 61 * NS)

    rules = carry.CarryRules(entry_apr=0.05, exit_apr=0.0, min_hold_intervals=30, hedge_ratio=1.0,
                             fees=carry.Fees(0.001, 0.0005))
    rich = dict(predicted_rate=0.001, interval_hours=8, in_carry=False, settlements_held=0)
    assert carry.decide(rules, carry.CarryView(**rich, in_blackout=False)) is carry.Action.ENTER
    assert carry.decide(rules, carry.CarryView(**rich, in_blackout=cal.in_blackout(t))) is carry.Action.NONE


def test_same_settlement_announced_twice_schedules_once():
    cal = SettlementCalendar("ETHUSDT", Windows())
    t = ts("2023-03-01 08:00")
    assert len(cal.on_funding_info(t, 480, t - H)) == 4
    assert cal.on_funding_info(t, 480, t - H + NS) == []
    # past windows are not scheduled when the announcement arrives late
    late = cal.on_funding_info(t + 8 * H, 480, t + 8 * H - 400 * NS)
    assert {j.kind for j in late} == {JobKind.BLACKOUT_START, JobKind.BLACKOUT_END, JobKind.BOOKING}


def test_nautilus_driver_fires_the_same_jobs_and_keeps_none_once_fired():
    import gc

    from nautilus_trader.common.component import TestClock

    clock, fired = TestClock(), []
    driver = NautilusClockDriver(clock, lambda job: fired.append(job.kind))
    jobs = jobs_for_settlement("SOLUSDT", ts("2022-11-10 10:00"), Windows())
    n = len(jobs)
    for j in jobs + jobs:  # duplicates ignored
        driver.schedule(j)
    assert clock.timer_count == n == len(jobs)
    settlement, last = jobs[0].settlement_ns, max(j.fire_ns for j in jobs)
    del jobs, j
    for handler in clock.advance_time(last + 1):
        handler.handle()
    assert len(fired) == n and set(fired) == set(JobKind)
    # nautilus' test clock keeps every alert's callback: the jobs must not hang on them (a 2-year backtest sets
    # tens of thousands of alerts)
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, Job) and o.settlement_ns == settlement]


def test_asyncio_driver_runs_the_same_jobs_on_the_event_loop():
    import asyncio
    import datetime as dt

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from basisbot.nautilus.scheduler import AsyncIOSchedulerDriver

    async def scenario():
        fired = []
        sched = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        sched.start()
        driver = AsyncIOSchedulerDriver(sched, fired.append)
        now = dt.datetime.now(dt.timezone.utc)
        w = Windows(decision_before_s=1, blackout_before_s=1, blackout_after_s=1, booking_after_s=1)
        settlement = dt_to_ns(now) + int(1.2 * NS)
        cal = SettlementCalendar("BTCUSDT", w)
        for job in cal.on_funding_info(settlement, 480, dt_to_ns(now)):
            driver.schedule(job)
        await asyncio.sleep(2.6)
        sched.shutdown(wait=False)
        return fired

    fired = asyncio.run(scenario())
    # decision and blackout start at T-1 s, blackout end and booking at T+1 s: all four ran, in time order
    assert {j.kind for j in fired} == set(JobKind)
    assert [j.kind for j in fired][-2:] in ([JobKind.BLACKOUT_END, JobKind.BOOKING], [JobKind.BOOKING, JobKind.BLACKOUT_END])
