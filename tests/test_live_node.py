"""Live node end to end against the local venue, through the stock ccxt / ccxt.pro clients.

The venue (`basisbot.sim`) runs in-process at real speed from 2022-02-28 07:59:45Z, 15 s before a BTC settlement and
a few hours before a +15% rally in the real data; tests move its clock with the admin endpoints.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from basisbot.cli import main
from basisbot.core import margin
from basisbot.journal.writer import Journal
from basisbot.live.node import NodeOptions
from basisbot.sim import SimServer
from basisbot.sim.engine.prices import load_paths
from basisbot.strategies.basis_carry import Phase
from tests.helpers.live_node import RunningNode, node_settings, sim_config, until
from tests.helpers.sim_venue import DATA, admin, state

SYM = "BTCUSDT"
T_SETTLE = 1646035200001  # 2022-02-28 08:00:00.001Z, the data's exact settlement time
START = "2022-02-28T07:59:45Z"
E2E_TIMEOUT = 55


def carry_symbol(**overrides) -> dict:
    base = {"notional_usdt": 2000.0, "leverage": 10, "entry_apr": -1000.0, "exit_apr": -2000.0,
            "min_hold_intervals": 0, "leg_timeout_s": 5.0,
            "guard": {"warn_distance": 0.08, "add_margin_distance": 0.06, "target_distance": 0.09,
                      "reduce_distance": 0.04, "close_distance": 0.02, "hysteresis": 0.005}}
    base.update(overrides)
    return base


def run(coro, timeout=E2E_TIMEOUT):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def venue_orders(run_node, sim) -> list[dict]:
    """Every order the venue holds for this account (both markets), from the venue's REST API."""
    out = []
    for ex, sym in ((run_node.app.session.spot, "BTC/USDT"), (run_node.app.session.perp, "BTC/USDT:USDT")):
        out += await ex.fetch_orders(sym)
    return out


def _position(st: dict) -> dict | None:
    return next((p for p in st["futures"]["positions"] if p["symbol"] == SYM), None)


def rally_time(paths, t0: int, side: int, lp: float, lo: float, hi: float) -> int:
    """First vertex time after t0 where the short's distance to `lp` is in [lo, hi] without the mark reaching lp on
    the way (so the venue does not liquidate during the jump)."""
    for t in range(t0 + 1000, t0 + 24 * 3_600_000, 10_000):  # the path is linear between vertices: 10 s steps
        m = paths.mark(t)
        if (side < 0 and m >= lp) or (side > 0 and m <= lp):
            break
        d = margin.distance_to_liquidation(side, m, lp)
        if lo <= d <= hi:
            return t
    raise AssertionError(f"no time with distance in [{lo}, {hi}] before the mark reaches {lp}")


def test_full_cycle_entry_settlement_guard_exit(tmp_path, capsys):
    """Entry on both legs; the 08:00 settlement is booked by the strategy, read back from the exchange's income and
    reconciled by the journal; a jump into the rally makes the guard add margin (moving USDT from spot to futures),
    a second jump makes it close; both legs end flat, every client order id once at the venue."""

    async def scenario():
        # a small futures wallet: the guard's margin must come partly from spot
        async with SimServer(sim_config(start=START, futures_usdt=260.0)) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol()})
            async with RunningNode(settings, "live", NodeOptions(log_level="WARNING")) as node:
                strat = node.strategy(SYM)
                await until(lambda: strat.phase is Phase.IN_CARRY, 10, what="entry")
                st = await state(sim)
                pos = _position(st)
                assert pos["positionAmt"] == pytest.approx(-0.052) and pos["marginType"] == "ISOLATED"
                assert pos["leverage"] == 10
                # strategy and venue agree on both legs (spot: bought on its finer lot, fee taken in BTC)
                assert float(strat.perp_qty()) == pytest.approx(-0.052)
                assert float(strat.spot_qty()) == pytest.approx(st["spot"]["BTC"]["free"], abs=1e-5)  # nautilus: lot precision
                assert float(strat.spot_qty()) == pytest.approx(0.052, rel=0.005)

                # the settlement: venue pays, the strategy books it, the client reads the income, the journal
                # reconciles prediction vs settled
                await until(lambda: strat.settlements_held >= 1, 25, what="booking")
                await until(lambda: node.perp_exec.funding_published, 10, what="funding income")
                fs = node.perp_exec.funding_published[0]
                venue_fund = next(f for f in (await state(sim))["funding"] if f["time"] == T_SETTLE)
                assert fs.payment == pytest.approx(venue_fund["payment"], abs=1e-8)
                assert fs.rate == pytest.approx(venue_fund["rate"])
                assert fs.position_qty == pytest.approx(-0.052)
                j = Journal(settings.journal)
                try:
                    rows = [r for r in j.rows("funding", "symbol = ?", [SYM]) if r["settled_payment"] is not None]
                    assert len(rows) == 1 and not rows[0]["flagged"], rows
                    assert rows[0]["settled_payment"] == pytest.approx(venue_fund["payment"], abs=1e-8)
                    assert rows[0]["predicted_rate"] is not None  # the strategy's prediction for the same T
                finally:
                    j.close()

                # jump into the rally: distance 4.5-5.5% -> add margin (perp wallet short: transfer from spot)
                paths = load_paths(str(DATA), SYM)
                st = await state(sim)
                pos = _position(st)
                t_a = rally_time(paths, st["time"], -1, pos["liquidationPrice"], 0.045, 0.055)
                await admin(sim, "/admin/clock", {"time": t_a})
                await until(lambda: node.perp_exec.margin_replies, 10, what="margin added")
                reply = node.perp_exec.margin_replies[0]
                assert reply.ok and reply.transferred_from_spot > 0, reply
                await until(lambda: any(g.step == "add_margin" for g in strat.log_.guard), 5, what="guard event")
                st = await state(sim)
                assert st["transfers"] and st["transfers"][-1]["type"] == "MAIN_UMFUTURE"
                pos = _position(st)
                d = margin.distance_to_liquidation(-1, st["prices"][SYM]["mark"], pos["liquidationPrice"])
                assert d >= 0.085, d  # restored to (about) the 9% target

                # further up: distance under 2% -> the guard closes both legs
                t_b = rally_time(paths, st["time"], -1, pos["liquidationPrice"], 0.008, 0.017)
                await admin(sim, "/admin/clock", {"time": t_b})
                await until(lambda: strat.phase is Phase.FLAT, 15, what="guard close")
                assert any(g.step == "close" for g in strat.log_.guard)
                st = await state(sim)
                assert _position(st) is None and not st["liquidations"]
                assert st["spot"]["BTC"]["free"] < 1e-4  # sold back (lot rounding dust only)
                orders = await venue_orders(node, sim)
                cids = [o["clientOrderId"] for o in orders]
                assert len(cids) == len(set(cids)) == 4, cids  # enter x2, close x2, each sent once
                assert all(c.startswith("O-") for c in cids)
            assert node.rc == 0
            return cids, venue_fund

    cids, venue_fund = run(scenario())

    # what an operator sees afterwards: `basisbot journal --format json` and `basisbot status` on the same config
    cfg = str(tmp_path / "basisbot.toml")
    capsys.readouterr()  # drop the node's log lines
    assert main(["journal", "--config", cfg, "--env-file", str(tmp_path / "none.env"), "--format", "json"]) == 0
    journal = json.loads(capsys.readouterr().out)
    assert {o["client_order_id"] for o in journal["orders"]} >= set(cids)
    assert {f["leg"] for f in journal["fills"]} == {"spot", "perp"}
    settled = [f for f in journal["funding"] if f["settled_payment"] is not None]
    assert settled and settled[0]["settled_payment"] == pytest.approx(venue_fund["payment"], abs=1e-8)
    assert settled[0]["predicted_rate"] is not None and not settled[0]["flagged"]
    assert {"add_margin", "close"} <= {g["step"] for g in journal["guard"]}
    assert main(["status", "--config", cfg, "--env-file", str(tmp_path / "none.env")]) == 0
    status = capsys.readouterr().out
    assert SYM in status and "flat" in status.lower()


def test_liquidation_by_the_exchange_is_published_and_the_spot_leg_sold(tmp_path):
    """Guard off, 20x: a jump past the liquidation price. The exchange's liquidation order (autoclose-...) reaches
    the node on the user stream: `Liquidated` is published, nautilus' perp position is closed by it (claimed by the
    strategy), and the strategy sells the spot leg at once."""

    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T09:00:00Z")) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol(
                leverage=20, guard={"enabled": False})})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                got = []
                node.app.node.kernel.msgbus.subscribe(f"basisbot.liquidation.{SYM}", got.append)
                await until(lambda: strat.phase is Phase.IN_CARRY, 10, what="entry")
                st = await state(sim)
                lp = _position(st)["liquidationPrice"]
                paths = load_paths(str(DATA), SYM)
                t_liq = next(t for t in range(st["time"], st["time"] + 86_400_000, 10_000) if paths.mark(t) >= lp)
                await admin(sim, "/admin/clock", {"time": t_liq + 60_000})
                await until(lambda: got, 10, what="Liquidated")
                (liq,) = got
                venue_liq = (await state(sim))["liquidations"][0]
                assert liq.side == -1 and liq.qty == pytest.approx(0.052)
                assert liq.price == pytest.approx(venue_liq["price"], rel=1e-6)
                assert liq.wallet_lost == pytest.approx(venue_liq["isolatedWalletLost"], rel=1e-3)
                await until(lambda: strat.phase is Phase.FLAT, 15, what="spot sold")
                assert any(a == "liquidated" for _, a, _ in strat.log_.decisions)
                assert float(strat.perp_qty()) == 0
                st = await state(sim)
                assert _position(st) is None and st["spot"]["BTC"]["free"] < 1e-4
            assert node.rc == 0

    run(scenario())


def test_cross_margin_state_is_backed_by_the_cross_wallet(tmp_path):
    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T09:00:00Z")) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={SYM: carry_symbol(margin_mode="cross", leverage=3)})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as node:
                strat = node.strategy(SYM)
                await until(lambda: strat.phase is Phase.IN_CARRY, 10, what="entry")
                await until(lambda: strat.margin_state is not None and strat.margin_state.side == -1, 5)
                st = await state(sim)
                assert _position(st)["marginType"] == "CROSSED"
                ms = strat.margin_state
                assert ms.mode == "cross" and ms.wallet == pytest.approx(st["futures"]["crossWallet"], rel=1e-6)
                lp = margin.liquidation_price(-1, ms.qty, ms.entry_price, ms.wallet, strat.table)
                assert lp > 10 * ms.entry_price  # 50k wallet behind a 2k short: far away, the guard stays quiet
                await asyncio.sleep(1.0)
                assert not strat.log_.guard and strat.phase is Phase.IN_CARRY
            assert node.rc == 0

    run(scenario())
