"""A lone leg unwound, judged from the venue's side: the perp leg of an entry is rejected twice; the spot leg
(bought with the fee taken in BTC, so the account holds less than the fill) must be sold within `leg_timeout_s` of the
second rejection, with a handful of orders (no retry storm), and the node must stop cleanly with its journal intact."""

from __future__ import annotations

import asyncio
import time

import pytest

from basisbot.journal.writer import Journal
from basisbot.live.node import NodeOptions
from basisbot.sim import SimServer
from tests.helpers.live_node import RunningNode, node_settings, sim_config, until
from tests.helpers.sim_venue import admin, state

SYM = "BTCUSDT"
LEG_TIMEOUT_S = 10.0


def one_legged(st: dict) -> bool:
    """The venue holds BTC on spot worth a perp lot or more, and no perp position."""
    btc = st["spot"].get("BTC", {})
    spot = float(btc.get("free", 0)) + float(btc.get("locked", 0))
    perp = sum(abs(float(p["positionAmt"])) for p in st["futures"]["positions"] if p["symbol"] == SYM)
    return spot >= 0.001 and perp < 0.001


def test_perp_rejected_twice_spot_sold_within_leg_timeout(tmp_path):
    async def scenario():
        async with SimServer(sim_config(start="2022-03-01T09:00:00Z", speed=60.0)) as sim:
            await admin(sim, "/admin/faults", {"reject_next_order": {"venue": "futures", "count": 2}})
            settings = node_settings(tmp_path, sim.url, symbols={SYM: {
                "notional_usdt": 10000.0, "leverage": 2, "entry_apr": -1000.0, "exit_apr": -2000.0,
                "leg_timeout_s": LEG_TIMEOUT_S}})
            alone_since, worst, polls = None, 0.0, 0
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR", venue_speed=60.0)) as node:
                strat = node.strategy(SYM)
                t_end = time.monotonic() + 25
                while time.monotonic() < t_end:
                    st = await state(sim)
                    polls += 1
                    now = time.monotonic()
                    if one_legged(st):
                        alone_since = alone_since or now
                        worst = max(worst, now - alone_since)
                    else:
                        alone_since = None
                    if polls > 8 and not strat._busy() and not one_legged(st) and strat.phase.value == "in_carry":
                        break
                    await asyncio.sleep(0.25)
                spot_orders = await node.app.session.spot.fetch_orders("BTC/USDT")
                perp_orders = await node.app.session.perp.fetch_orders("BTC/USDT:USDT")
                spot_trades = await node.app.session.spot.fetch_my_trades("BTC/USDT")
                node.stop.set()  # SIGTERM's path
                await until(lambda: node._task.done(), 20, what="node stopped")
            assert node.rc == 0
            st = await state(sim)
            assert not one_legged(st), st["spot"]
            print(f"one-legged at the venue: worst {worst:.2f} s; orders at the venue: {len(spot_orders) + len(perp_orders)}")
            assert worst <= LEG_TIMEOUT_S, f"spot alone for {worst:.2f} s"
            cids = [o["clientOrderId"] for o in spot_orders + perp_orders]
            assert len(cids) == len(set(cids))
            # the entry's spot buy, the perp rejected twice (rejections are not stored by the venue), the spot sale:
            # a handful of orders, not a storm
            assert len(cids) <= 6, cids
            # the unwind sold what the account held (the buy's fee was taken in BTC), not what the fill said
            buys = [o for o in spot_orders if o["side"] == "buy" and o["status"] == "closed"]
            sells = [o for o in spot_orders if o["side"] == "sell"]
            assert sells and sells[0]["status"] == "closed", sells
            fee = sum(float(t["fee"]["cost"]) for t in spot_trades if t["order"] == buys[0]["id"]
                      and t["fee"]["currency"] == "BTC")
            assert fee > 0  # the venue took the buy fee in BTC, as Binance does
            held = float(buys[0]["filled"]) - fee
            assert float(sells[0]["filled"]) == pytest.approx(int(held * 1e5) / 1e5, abs=1e-9)
            # whatever followed (the strategy may re-enter), the venue ends hedged: both legs or none
            perp = sum(float(p["positionAmt"]) for p in st["futures"]["positions"] if p["symbol"] == SYM)
            btc = float(st["spot"].get("BTC", {}).get("free", 0))
            assert (perp == 0 and btc < 0.001) or abs(btc + perp) < 0.002, (btc, perp)
            j = Journal(settings.journal)
            try:
                decisions = [r["action"] for r in j.rows("decisions", "symbol = ?", [SYM])]
            finally:
                j.close()
            assert "leg_failed" in decisions and "enter" in decisions

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_leg_that_cannot_be_closed_escalates_then_closes_when_the_venue_takes_it(tmp_path):
    """The perp leg refused until further notice AND every spot sale refused: the spot leg cannot be closed. The
    strategy escalates (journaled `escalate`, new pairs halted for the symbol), keeps trying at a bounded rate (no
    storm), and sells the leg once the venue takes sales again (journaled `escalation_cleared`)."""
    leg_timeout = 2.0

    async def scenario():
        async with SimServer(sim_config(start="2022-03-01T09:00:00Z", speed=60.0)) as sim:
            await admin(sim, "/admin/faults", {"reject_next_order": {"venue": "futures", "count": 10_000}})
            await admin(sim, "/admin/faults", {"reject_next_order": {"venue": "spot", "side": "SELL", "count": 10_000}})
            settings = node_settings(tmp_path, sim.url, symbols={SYM: {
                "notional_usdt": 10000.0, "leverage": 2, "entry_apr": -1000.0, "exit_apr": -2000.0,
                "leg_timeout_s": leg_timeout}})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR", venue_speed=60.0)) as node:
                strat = node.strategy(SYM)
                await until(lambda: strat._halted is not None, 20, what="escalation")
                assert one_legged(await state(sim))
                injected_at_escalation = (await state(sim))["faults"]["injected"]["rejected"]
                await asyncio.sleep(10.0)
                st = await state(sim)
                assert one_legged(st)  # nothing the bot can do: the venue refuses every sale
                refused = st["faults"]["injected"]["rejected"] - injected_at_escalation
                # attempts spaced out (leg timeout doubling per escalation, each at most 1 + 5 delayed retries)
                print(f"orders refused in the 10 s after the escalation: {refused}")
                assert 1 <= refused <= 18, refused
                assert strat.pair is None or strat.pair.intent != "enter"  # no new pair while halted
                await admin(sim, "/admin/faults", {"clear": True})
                await until(lambda: strat._halted is None, 30, what="escalation cleared")
                await until(lambda: not strat._busy(), 10, what="unwind settled")
                assert not one_legged(await state(sim))
                await until(lambda: strat.phase.value == "in_carry" and not strat._busy(), 15, what="re-entry")
                node.stop.set()
                await until(lambda: node._task.done(), 20, what="node stopped")
            assert node.rc == 0
            j = Journal(settings.journal)
            try:
                rows = list(j.rows("decisions", "symbol = ?", [SYM]))
            finally:
                j.close()
            decisions = [r["action"] for r in rows]
            assert "escalate" in decisions and "escalation_cleared" in decisions
            assert decisions.index("escalate") < decisions.index("escalation_cleared")
            # the entry backoff counts from the recovery: no new entry straight after a venue refused everything
            ts = {a: [r["ts"] for r in rows if r["action"] == a] for a in ("escalation_cleared", "enter")}
            re_entry = min(t for t in ts["enter"] if t > ts["escalation_cleared"][-1])
            assert re_entry - ts["escalation_cleared"][-1] >= leg_timeout * 1e9

    asyncio.run(asyncio.wait_for(scenario(), 120))
