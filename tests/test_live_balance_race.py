"""The spot account's balances when the venue's balance update overtakes the fill it comes from.

An exchange sends an order's fills and the account's balances on separate updates; the balance can arrive first. The
execution client moves its spot balances with our own fills as they arrive and re-reads the account (REST) on a
balance update. A read taken after the venue executed a sale but before the sale's fill reached the client already
holds the sale: publishing it, and then applying the fill on its arrival, counts the sale twice, and the strategy's
spot leg (its position capped at what the account holds) reads a fraction of what it holds.

Against the local OKX venue through the stock ccxt.pro okx client (OKX's create-order answer carries no fills, so the
fill comes only on the `orders` channel): the venue holds the sale's fill back 0.8 s (`delay_fill_push`) while its
`account` update goes out at once. Every spot balance the client publishes is recorded: none may show less base
asset than the venue holds after the sale, and the strategy's spot leg ends at the venue's balance.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from types import SimpleNamespace

import pytest

from basisbot.core.legs import Intent
from basisbot.live.exec.client import ExecOptions
from basisbot.live.exec.orders import OrderCommands, OrderTrack
from basisbot.live.node import NodeOptions
from basisbot.sim import SimServer
from basisbot.sim.engine.faults import FaultState
from basisbot.strategies.basis_carry import Phase
from tests.helpers.live_node import FAST_SCHEDULE, RunningNode, node_settings, sim_config, until
from tests.helpers.okx_live import okx_settings, okx_sim_config
from tests.helpers.sim_venue import admin, state

SYM = "SOLUSDT"
ALWAYS_IN = {"notional_usdt": 2000.0, "leverage": 2, "margin_mode": "isolated", "entry_apr": -1000.0,
             "exit_apr": -2000.0, "leg_timeout_s": 10.0}
WINDOWS = {"decision_before_s": 600, "blackout_before_s": 300, "blackout_after_s": 60, "booking_after_s": 60,
           "guard_sweep_s": 60}


def _spot_held(st: dict, asset: str) -> Decimal:
    """The venue's own spot balance of `asset` (its admin state: the truth the client's view is judged by)."""
    b = st["spot"].get(asset) or {"free": 0, "locked": 0}
    return Decimal(repr(b["free"])) + Decimal(repr(b["locked"]))


def test_a_balance_read_ahead_of_its_fill_is_not_counted_twice(tmp_path):
    async def scenario():
        async with SimServer(okx_sim_config(speed=1.0, start="2022-03-01T06:00:00Z", symbols=[SYM])) as sim:
            settings = okx_settings(tmp_path, sim.url, schedule=WINDOWS, symbols={SYM: ALWAYS_IN})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as run:
                strat = run.strategy(SYM)
                await until(lambda: strat.phase is Phase.IN_CARRY and not strat._busy(), 30, what="entry")
                await asyncio.sleep(1.0)  # the entry's reads settle
                held = strat.spot_qty()
                published = _record_spot_balances(run.spot_exec, "SOL")
                reply = await admin(sim, "/admin/faults", {"delay_fill_push": {"venue": "spot", "ms": 800,
                                                                               "symbol": SYM}})
                assert reply["delay_fill_push"]["spot"] == [{"ms": 800, "symbol": SYM}], reply
                cut = (held / 2).quantize(Decimal("0.01"))
                strat._start_pair(Intent.REDUCE, spot=(-1, cut), perp=(1, cut))
                await until(lambda: not strat._busy(), 20, what="the reduction")
                await asyncio.sleep(1.5)  # the reads after the fill
                st = await state(sim)
                venue_sol = _spot_held(st, "SOL")
                return held, cut, published, venue_sol, strat.spot_qty(), st["faults"]["injected"], run

    held, cut, published, venue_sol, spot_after, injected, run = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert injected["fill_pushes_delayed"] == 1, injected
    assert venue_sol == pytest.approx(held - cut, abs=Decimal("0.001")), (held, cut, venue_sol)
    # every balance published during and after the sale: the venue's before or after it, never the sale twice
    assert published, "no spot balance published"
    low = min(published)
    assert low >= venue_sol - Decimal("0.001"), f"SOL published {low} while the venue held {venue_sol}: {published}"
    assert published[-1] == pytest.approx(venue_sol, abs=Decimal("0.001")), published
    assert spot_after == pytest.approx(held - cut, abs=Decimal("0.01")), (spot_after, held, cut)
    assert run.rc == 0


def test_on_binance_a_late_order_answer_and_a_late_fill_are_not_counted_twice(tmp_path):
    """Binance answers an order with its fills, so the race needs the answer late too: the venue books the sale and
    answers 1.5 s later (`timeout_next_order`, "delay"), its fill update 0.8 s late, its balance update at once. The
    same judgement from the venue's side: no spot balance published below what the venue holds after the sale."""

    async def scenario():
        async with SimServer(sim_config(start="2022-03-01T09:00:00Z", symbols=["BTCUSDT"])) as sim:
            settings = node_settings(tmp_path, sim.url, schedule=FAST_SCHEDULE, symbols={"BTCUSDT": {
                "notional_usdt": 2000.0, "leverage": 3, "entry_apr": -1000.0, "exit_apr": -2000.0,
                "leg_timeout_s": 10.0}})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as run:
                strat = run.strategy("BTCUSDT")
                await until(lambda: strat.phase is Phase.IN_CARRY and not strat._busy(), 30, what="entry")
                await asyncio.sleep(1.0)
                held = strat.spot_qty()
                published = _record_spot_balances(run.spot_exec, "BTC")
                await admin(sim, "/admin/faults", {
                    "delay_fill_push": {"venue": "spot", "ms": 800, "symbol": "BTCUSDT"},
                    "timeout_next_order": {"venue": "spot", "mode": "delay", "delay_ms": 1500, "symbol": "BTCUSDT"}})
                cut = (held / 3).quantize(Decimal("0.001"))  # counted twice it would still leave some
                strat._start_pair(Intent.REDUCE, spot=(-1, cut), perp=(1, cut))
                await until(lambda: not strat._busy(), 20, what="the reduction")
                await asyncio.sleep(1.5)
                st = await state(sim)
                return held, cut, published, _spot_held(st, "BTC"), strat.spot_qty(), st["faults"]["injected"], run

    held, cut, published, venue_btc, spot_after, injected, run = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert injected["fill_pushes_delayed"] == 1 and injected["timed_out"] == 1, injected
    assert venue_btc == pytest.approx(held - cut, abs=Decimal("0.00001")), (held, cut, venue_btc)
    assert published and min(published) >= venue_btc - Decimal("0.00001"), (venue_btc, published)
    assert published[-1] == pytest.approx(venue_btc, abs=Decimal("0.00001")), published
    assert spot_after == pytest.approx(held - cut, abs=Decimal("0.001")), (spot_after, held, cut)
    assert run.rc == 0


def _record_spot_balances(spot_exec, asset: str) -> list:
    """Every balance of `asset` the spot execution client publishes from now on (a list that fills as it runs)."""
    published: list[Decimal] = []
    generate = spot_exec.generate_account_state

    def record(balances, margins, reported, ts_event, info=None):
        # an asset the account no longer lists is published as none of it
        published.append(next((b.total.as_decimal() for b in balances if b.currency.code == asset), Decimal(0)))
        return generate(balances, margins, reported, ts_event) if info is None else \
            generate(balances, margins, reported, ts_event, info)

    spot_exec.generate_account_state = record
    return published


def test_the_fill_push_delay_fault_is_checked_and_cleared():
    f = FaultState()
    f.apply({"delay_fill_push": {"venue": "swap", "ms": 250, "count": 2, "symbol": "solusdt"}})
    assert f.state()["delay_fill_push"] == {"spot": [], "futures": [{"ms": 250, "symbol": "SOLUSDT"}] * 2}
    assert f.take_fill_push_delay("futures", "BTCUSDT") is None  # another symbol's fill goes out at once
    assert f.take_fill_push_delay("futures", "SOLUSDT") == 250
    assert f.injected["fill_pushes_delayed"] == 1
    f.apply({"clear": True})
    assert f.take_fill_push_delay("futures", "SOLUSDT") is None
    for bad, says in (({"ms": 0}, "ms must be in"), ({"ms": "soon"}, "must be integers"), ({"count": 0}, "count"),
                      ({"venue": "margin"}, "venue must be"), ([1], "must be an object")):
        with pytest.raises(ValueError, match=says):
            f.apply({"delay_fill_push": bad})


def test_which_orders_hold_a_balance_read_back():
    """A market order just sent holds the read back until it is done; a resting limit order only once the venue
    reported a fill not yet applied; an order sent longer ago than `balance_hold_max_s`, or adopted from the cache,
    never (a stale order must not freeze the balances)."""
    now = time.monotonic()

    def held_back(**track) -> bool:
        t = OrderTrack("O-1", None, None, None, None, Decimal(1), "SOL/USDT", **track)
        client = SimpleNamespace(_tracks={"O-1": t}, opts=ExecOptions(balance_hold_max_s=30.0))
        return OrderCommands._fills_in_flight(client)

    assert held_back(sent_at=now - 1)
    assert not held_back(sent_at=now - 1, terminal=True)
    assert not held_back(sent_at=now - 1, immediate=False)
    assert held_back(sent_at=now - 1, immediate=False, venue_filled=Decimal("0.5"))
    assert not held_back(sent_at=now - 31)
    assert not held_back(sent_at=0.0)  # adopted from the cache after a restart
