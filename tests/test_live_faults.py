"""Live node under venue faults: dropped websockets around a settlement, a frozen mark stream (REST polling
fallback), an ambiguous order send (5xx) resolved without sending the order twice."""

from __future__ import annotations

import asyncio

import pytest

from basisbot.journal.writer import Journal
from basisbot.live.node import NodeOptions
from basisbot.sim import SimServer
from basisbot.strategies.basis_carry import Phase
from tests.helpers.live_node import RunningNode, node_settings, sim_config, until
from tests.helpers.sim_venue import admin, state

SYM = "BTCUSDT"
T_SETTLE = 1646035200001  # 2022-02-28 08:00:00.001Z
START = "2022-02-28T07:59:45Z"
E2E_TIMEOUT = 55


def carry_symbol(**overrides) -> dict:
    base = {"notional_usdt": 2000.0, "leverage": 3, "entry_apr": -1000.0, "exit_apr": -2000.0, "leg_timeout_s": 5.0}
    base.update(overrides)
    return base


def force_entry(strat, qty: float) -> None:
    """An entry pair of `qty` on both legs now, whatever the rules say."""
    strat._decide("enter", "test: forced entry")
    strat.phase = Phase.ENTERING
    strat._start_pair("enter", spot=(1, qty), perp=(-1, qty))


def run(coro, timeout=E2E_TIMEOUT):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_dropped_websockets_around_a_settlement_are_recovered_and_the_settlement_is_booked(tmp_path):
    async def scenario():
        async with SimServer(sim_config(start=START)) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol()})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                data = node.app.data_clients["perp"]
                await until(lambda: strat.phase is Phase.IN_CARRY, 10, what="entry")
                # every websocket (market data and both user streams) dies twice: 7 s and 1 s before T
                for before_ms in (7000, 1000):
                    now = (await state(sim))["time"]
                    await asyncio.sleep(max(0.0, (T_SETTLE - before_ms - now) / 1000))
                    dropped = await admin(sim, "/admin/faults", {"drop_ws": True})
                    assert dropped["injected"]["ws_dropped"] >= 1
                marks_at_drop = data.feed_stats()[f"mark:{strat.perp_id}"]["messages"]
                # the strategy books the settlement and the execution client reads the income despite the drops
                await until(lambda: strat.settlements_held >= 1, 20, what="booking")
                await until(lambda: node.perp_exec.funding_published, 15, what="funding income")
                fs = node.perp_exec.funding_published[0]
                venue_fund = next(f for f in (await state(sim))["funding"] if f["time"] == T_SETTLE)
                assert fs.payment == pytest.approx(venue_fund["payment"], abs=1e-8)
                # streams came back: marks flow again, the client reconnected its user streams
                await until(lambda: data.feed_stats()[f"mark:{strat.perp_id}"]["messages"] > marks_at_drop + 2, 10,
                            what="mark stream back")
                assert data.feed_stats()[f"mark:{strat.perp_id}"]["reconnects"] >= 1
                assert node.perp_exec.stream_reconnects >= 1 and node.spot_exec.stream_reconnects >= 1
                j = Journal(settings.journal)
                try:
                    (row,) = [r for r in j.rows("funding", "symbol = ?", [SYM]) if r["settled_payment"] is not None]
                    assert row["predicted_rate"] is not None and not row["flagged"], row
                finally:
                    j.close()
                # still hedged, nothing sent twice
                st = await state(sim)
                (pos,) = st["futures"]["positions"]
                assert pos["positionAmt"] == pytest.approx(float(strat.perp_qty()))
                assert strat.phase is Phase.IN_CARRY
            assert node.rc == 0

    run(scenario())


def test_income_read_failing_at_the_settlement_is_read_again_within_seconds(tmp_path):
    """An error burst on the income endpoint right at the settlement (every read of it refused, three times): the
    payment is booked seconds later by the backoff re-read (1, 2, 4 s), not at the next slow check (60 s), and once."""

    async def scenario():
        async with SimServer(sim_config(start=START)) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol()})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                await until(lambda: strat.phase is Phase.IN_CARRY, 10, what="entry")
                now = (await state(sim))["time"]
                await asyncio.sleep(max(0.0, (T_SETTLE - 1500 - now) / 1000))
                await admin(sim, "/admin/faults", {"fail_next": {"count": 3, "status": 503,
                                                                 "path_prefix": "/fapi/v1/income"}})
                await until(lambda: node.perp_exec.funding_published, 30, what="funding income after the burst")
                # well before the slow periodic check (funding_poll_s = 60 s) would have read it
                assert (await state(sim))["time"] - T_SETTLE < 30_000
                fs = node.perp_exec.funding_published[0]
                venue_fund = next(f for f in (await state(sim))["funding"] if f["time"] == T_SETTLE)
                assert fs.payment == pytest.approx(venue_fund["payment"], abs=1e-8)
                assert len(node.perp_exec.funding_published) == 1  # booked once
            assert node.rc == 0

    run(scenario())


def test_frozen_mark_stream_is_served_by_rest_polling(tmp_path):
    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T09:00:00Z")) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol(entry_apr=1000.0, exit_apr=0.0)},
                                     live={"poll_interval_s": 1.0})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                data = node.app.data_clients["perp"]
                await until(lambda: strat.mark is not None, 10, what="first mark")
                await admin(sim, "/admin/faults", {"freeze_mark": True})
                seen = []  # what reaches the strategy's marks: the message bus topic its mark watch hears
                pid = strat.perp_id
                strat.msgbus.subscribe(f"data.mark_prices.{pid.venue}.{pid.symbol}", seen.append)
                await asyncio.sleep(3.5)
                stats = data.feed_stats()[f"mark:{strat.perp_id}"]
                assert stats["polled"] >= 2, stats  # premiumIndex every poll_interval_s while the stream is silent
                assert len(seen) >= 2
                st = await state(sim)
                assert seen[-1].value.as_double() == pytest.approx(st["prices"][SYM]["mark"], rel=1e-3)
                await admin(sim, "/admin/faults", {"freeze_mark": False})
            assert node.rc == 0

    run(scenario())


def test_ambiguous_send_is_looked_up_not_resent(tmp_path):
    """A 503 on the perp order (the gateway's page, the venue never saw it): the client asks the exchange for the
    client order id until the request's recvWindow has passed, then reports the order rejected; the strategy's leg
    rules catch up with a NEW order. No client order id reaches the venue twice."""

    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T09:00:00Z", paused=True)) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol(entry_apr=1000.0, exit_apr=0.0,
                                                                                 leg_timeout_s=15.0)})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                node.perp_exec.opts.recv_window_ms = 1500  # keep the wait short (sent with every request)
                node.perp_exec.ex.options["recvWindow"] = 1500
                await until(lambda: strat.mark is not None and strat.spot_px is not None, 10, what="prices")
                await admin(sim, "/admin/faults", {"fail_next": {"count": 1, "status": 503, "path_prefix": "/fapi/v1/order"}})
                force_entry(strat, 0.01)
                await until(lambda: strat.phase is Phase.IN_CARRY, 20, what="entry completed by catch-up")
                spot_orders = await node.app.session.spot.fetch_orders("BTC/USDT")
                perp_orders = await node.app.session.perp.fetch_orders("BTC/USDT:USDT")
                cids = [o["clientOrderId"] for o in spot_orders + perp_orders]
                assert len(cids) == len(set(cids)) == 2, cids
                rejected = [o for o in node.app.node.kernel.cache.orders() if o.is_closed and o.filled_qty == 0]
                assert len(rejected) == 1 and rejected[0].instrument_id == strat.perp_id
                assert rejected[0].client_order_id.value not in cids  # never reached the venue, never resent
                assert float(strat.perp_qty()) == pytest.approx(-0.01)
            assert node.rc == 0

    run(scenario())


def test_timestamp_outside_recv_window_is_a_rejection_not_an_unknown_outcome(tmp_path):
    """The venue's clock 15 s ahead (beyond the 5 s recvWindow) when a pair is sent: Binance refuses the requests with
    -1021 before they reach the engine, so the orders are rejected at once (not looked up for a recvWindow as an
    unknown outcome), the pair fails flat, and no client order id is at the venue."""

    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T09:00:00Z", paused=True)) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol(entry_apr=1000.0, exit_apr=0.0,
                                                                                 leg_timeout_s=10.0)})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                await until(lambda: strat.mark is not None and strat.spot_px is not None, 10, what="prices")
                await admin(sim, "/admin/faults", {"clock_skew": {"ms": 15_000, "duration_s": 1.0}})
                force_entry(strat, 0.01)
                cache = node.app.node.kernel.cache
                # rejected within 3 s: an unknown outcome would be looked up for recvWindow (5 s) + 1 s first
                await until(lambda: len([o for o in cache.orders() if o.is_closed]) == 2, 3, what="both rejected")
                assert all(o.status.name == "REJECTED" and o.filled_qty == 0 for o in cache.orders())
                await until(lambda: strat.pair is None or strat.pair.done(), 5, what="pair settled")
                assert strat.spot_qty() == 0 and strat.perp_qty() == 0
                await asyncio.sleep(1.0)  # the skew is over: the venue answers signed reads again
                spot_orders = await node.app.session.spot.fetch_orders("BTC/USDT")
                perp_orders = await node.app.session.perp.fetch_orders("BTC/USDT:USDT")
                assert spot_orders == [] and perp_orders == []  # refused at the gateway, never resent
            assert node.rc == 0

    run(scenario())


def test_stop_while_a_pair_is_in_flight_lets_it_complete(tmp_path):
    """SIGINT's path (the stop event) while both legs are in flight at a slow venue: no new pair is opened, the pair in
    flight completes, the node stops with exit status 0 and the exchange holds both legs, hedged."""

    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T09:00:00Z")) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol(entry_apr=1000.0, exit_apr=0.0)})
            run_node = RunningNode(settings, "live", NodeOptions(log_level="ERROR"))
            async with run_node as node:
                strat = node.strategy(SYM)
                await until(lambda: strat.mark is not None and strat.spot_px is not None, 10, what="prices")
                await admin(sim, "/admin/faults", {"delay_ms": 800})
                strat.phase = Phase.ENTERING
                strat._start_pair("enter", spot=(1, 0.02), perp=(-1, 0.02))
                await asyncio.sleep(0.1)
                assert strat._busy()
                node.stop.set()  # what SIGINT / SIGTERM do
                await until(lambda: node._task.done(), 20, what="node stopped")
                assert strat.phase is Phase.IN_CARRY and not strat._busy()
            assert node.rc == 0
            st = await state(sim)
            (pos,) = st["futures"]["positions"]
            assert pos["positionAmt"] == pytest.approx(-0.02) and st["spot"]["BTC"]["free"] == pytest.approx(0.01998)

    run(scenario())


def test_limit_order_rests_then_cancels(tmp_path):
    """A resting LIMIT order: accepted with the exchange's order id, cancelled by client order id, both ways."""

    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T09:00:00Z")) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol(entry_apr=1000.0, exit_apr=0.0)})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                await until(lambda: strat.spot_px is not None, 10, what="spot price")
                from nautilus_trader.model.enums import OrderSide

                px = strat.spot.make_price(round(strat.spot_px * 0.9, 2))
                order = strat.order_factory.limit(strat.spot_id, OrderSide.BUY, strat.spot.make_qty(0.01), px)
                strat.submit_order(order)
                await until(lambda: strat.cache.order(order.client_order_id).is_open, 5, what="accepted")
                st = await state(sim)
                (resting,) = st["openOrders"]["spot"]
                assert resting["clientOrderId"] == order.client_order_id.value and resting["price"] == pytest.approx(px.as_double())
                assert strat.cache.order(order.client_order_id).venue_order_id.value == str(resting["orderId"])
                strat.cancel_order(strat.cache.order(order.client_order_id))
                await until(lambda: strat.cache.order(order.client_order_id).is_closed, 5, what="canceled")
                assert (await state(sim))["openOrders"]["spot"] == []
                assert (await state(sim))["spot"]["USDT"]["locked"] == 0
            assert node.rc == 0

    run(scenario())


def test_guard_sees_the_perp_at_once_after_a_restart(tmp_path):
    """A node stops holding a 5x carry; the next one starts with a guard whose reduce threshold is above the distance
    to liquidation. The margin state the execution client reads while connecting reaches the strategy (it subscribes
    later, when the trader starts), so the guard acts on the first marks, not at the next change of the position's
    margin (which, between settlements, may not come for hours)."""

    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T09:00:00Z")) as sim:
            carry = carry_symbol(leverage=5, entry_apr=1000.0, exit_apr=-2000.0)
            settings = node_settings(tmp_path, sim.url, symbols={SYM: {**carry, "guard": {"enabled": False}}})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                force_entry(strat, 0.02)
                await until(lambda: strat.phase is Phase.IN_CARRY and not strat._busy(), 10, what="entry")
            guard = {"enabled": True, "warn_distance": 0.40, "add_margin_distance": 0.35, "reduce_distance": 0.30,
                     "close_distance": 0.03, "target_distance": 0.36, "transfer_from_spot": True}
            settings = node_settings(tmp_path, sim.url, symbols={SYM: {**carry, "guard": guard}})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                await until(lambda: strat.guard.state is not None, 5, what="margin state at the strategy")
                await until(lambda: any(e.step == "reduce" for e in strat.log_.guard), 5, what="guard reduce")
                await until(lambda: not strat._busy(), 10, what="reduce done")
                (pos,) = (await state(sim))["futures"]["positions"]
                assert 0 < -float(pos["positionAmt"]) < 0.02
            assert node.rc == 0

    run(scenario())
