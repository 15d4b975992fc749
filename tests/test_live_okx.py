"""`basisbot live` with `[exchange] name = "okx"` against the local OKX venue (`basisbot sim --exchange okx`) through
the stock ccxt.pro okx client, judged from the venue's own state (`/admin/state`, `/admin/orders`) and the journal:

- at 600x an always-in BTCUSDT carry enters (spot bought, swap sold in whole contracts: base units = contracts ×
  0.01), each settlement the venue paid is booked with its prediction (the bill's payment, the position in base units),
  and the guard adds isolated margin through OKX's margin-balance endpoint (no transfer: one unified account);
- (slow) the CLI at 600x books two settlements within 150 s and stops cleanly on SIGTERM;
- (slow) the CLI at 60x: the guard adds margin, kill -9 in carry, a restart reconciles both legs and sends nothing,
  every clOrdId at the venue is unique, SIGTERM stops cleanly.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest

from basisbot.journal.reader import JournalReader
from basisbot.live.node import NodeOptions
from basisbot.ops.status import render_status
from basisbot.sim import SimServer
from basisbot.strategies.basis_carry import Phase
from tests.helpers.live_node import RunningNode, until
from tests.helpers.okx_live import okx_config, okx_settings, okx_sim_config, okx_subprocess_env
from tests.helpers.sim_venue import admin, state
from tests.test_live_restart import Bot

SYM = "BTCUSDT"
VENUE_WINDOWS = {"decision_before_s": 600, "blackout_before_s": 300, "blackout_after_s": 60, "booking_after_s": 60,
                 "guard_sweep_s": 60}
ALWAYS_IN = {"notional_usdt": 2150.0, "leverage": 2, "margin_mode": "isolated", "entry_apr": -1000.0,
             "exit_apr": -2000.0}
# at 5x isolated the short's distance to liquidation is ~0.19: below add_margin_distance, so the guard adds margin
# up to the target distance right after the entry
ADD_MARGIN_GUARD = {"enabled": True, "warn_distance": 0.30, "add_margin_distance": 0.25, "target_distance": 0.30,
                    "reduce_distance": 0.06, "close_distance": 0.03}


def _short(st: dict) -> dict | None:
    return next((p for p in st["futures"]["positions"] if p["symbol"] == SYM and float(p["positionAmt"]) != 0), None)


def _journal_funding(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with JournalReader(path) as r:
        return r.rows("funding", "symbol = ? AND settled_payment IS NOT NULL", [SYM], order_by="settlement_ts")


def test_okx_carry_enters_books_settlements_and_adds_isolated_margin(tmp_path):
    async def scenario():
        async with SimServer(okx_sim_config(speed=600.0, start="2022-03-01T06:00:00Z")) as sim:
            settings = okx_settings(tmp_path, sim.url, schedule=VENUE_WINDOWS, symbols={SYM: {
                **ALWAYS_IN, "leverage": 5, "guard": ADD_MARGIN_GUARD}})
            async with RunningNode(settings, "live", NodeOptions(log_level="ERROR")) as run:
                assert run.app.venue_speed == 600.0
                assert str(run.app.perp_insts[SYM].id) == "BTCUSDT-PERP.OKX_PERP"
                # the swap in base units: 1 contract = 0.01 BTC, so the lot is 0.01
                assert run.app.perp_insts[SYM].size_increment.as_decimal() == Decimal("0.01")
                strat = run.strategy(SYM)
                await until(lambda: strat.phase is Phase.IN_CARRY and not strat._busy(), 30, what="entry")
                entered = await state(sim)
                await until(lambda: any(r.ok for r in run.perp_exec.margin_replies), 20, what="margin added")

                async def booked():
                    paid = [f for f in (await state(sim))["funding"] if f["symbol"] == SYM]
                    rows = _journal_funding(tmp_path / "journal.sqlite")
                    return paid and len(rows) >= len(paid) and (paid, rows)

                paid, rows = await until(booked, 60, interval=0.5, what="a settlement journaled")
                after = await state(sim)
                orders = await admin(sim, "/admin/orders", method="GET")
                # metrics, status page and status name the venue
                metrics = run.app.ops.metrics_body()[0].decode()
                page = run.app.ops.page()
                status = render_status(settings.journal, settings)
        assert 'basisbot_venue{exchange="okx"} 1.0' in metrics
        assert "<span>venue OKX</span>" in page and "venue OKX" in status.splitlines()[0]
        return entered, after, orders, paid, rows, run

    entered, after, orders, paid, rows, run = asyncio.run(scenario())
    short = _short(entered)
    spot_btc = entered["spot"]["BTC"]["free"]
    assert float(short["positionAmt"]) == pytest.approx(-0.05)  # 5 contracts of 0.01 BTC
    assert short["marginType"] == "ISOLATED" and short["leverage"] == 5
    assert spot_btc == pytest.approx(0.05, rel=0.01)  # the spot leg: 2150 USDT of BTC at ~43,000, less the fee
    # the guard's top-up reached the venue's isolated wallet, through margin-balance (no spot -> futures transfer)
    reply = next(r for r in run.perp_exec.margin_replies if r.ok)
    assert reply.transferred_from_spot == 0 and reply.added_from_perp > 0
    notional = 0.05 * after["prices"][SYM]["mark"]
    # 5x opens with a fifth of the notional; the guard tops it up to ~0.30 distance to liquidation
    assert _short(after)["isolatedWallet"] > 0.28 * notional
    # every clOrdId is OKX-valid and unique
    cids = [o["clientOrderId"] for o in orders["spot"] + orders["futures"]]
    assert len(cids) == len(set(cids)) >= 2 and all(c.isalnum() and len(c) <= 32 for c in cids), cids
    # every payment the venue made is booked once, with its prediction, in base units
    assert [r["settled_payment"] for r in rows] == pytest.approx([p["payment"] for p in paid], abs=1e-8)
    for row, p in zip(rows, paid):
        assert row["predicted_rate"] is not None and row["source"].startswith("okx:bill:"), row
        assert row["position_qty"] == pytest.approx(float(p["positionAmt"])), row
    assert run.rc == 0


async def _venue_cids(sim) -> list[str]:
    orders = await admin(sim, "/admin/orders", method="GET")
    return [o["clientOrderId"] for o in orders["spot"] + orders["futures"]]


@pytest.mark.slow
def test_okx_cli_books_two_settlements_at_600x_and_stops_on_sigterm(tmp_path):
    async def scenario():
        async with SimServer(okx_sim_config(speed=600.0, start="2022-03-01T06:00:00Z")) as sim:
            cfg = okx_config(tmp_path, sim.url, schedule=VENUE_WINDOWS, symbols={SYM: ALWAYS_IN})
            bot = Bot(cfg, okx_subprocess_env())
            t0 = time.monotonic()
            await bot.start()
            await bot.wait_for(r"basisbot live: running BTCUSDT", 90)

            async def two_booked():
                paid = [f for f in (await state(sim))["funding"] if f["symbol"] == SYM]
                rows = _journal_funding(tmp_path / "journal.sqlite")
                return len(paid) >= 2 and len(rows) >= len(paid) and (paid, rows)

            paid, rows = await until(two_booked, 150 - (time.monotonic() - t0), interval=0.5,
                                     what="two settlements booked")
            took = time.monotonic() - t0
            bot.kill(signal.SIGTERM)
            rc = await bot.wait(30)
            st = await state(sim)
            return bot, rc, took, paid, rows, st

    bot, rc, took, paid, rows, st = asyncio.run(scenario())
    assert rc == 0, "\n".join(bot.lines[-30:])
    assert took < 150
    assert any("stopping (open carries stay hedged)" in line for line in bot.lines)
    assert float(_short(st)["positionAmt"]) == pytest.approx(-0.05) and st["spot"]["BTC"]["free"] > 0.049
    assert [r["settled_payment"] for r in rows[:len(paid)]] == pytest.approx([p["payment"] for p in paid], abs=1e-8)
    assert all(r["predicted_rate"] is not None for r in rows)


@pytest.mark.slow
def test_okx_cli_guard_adds_margin_and_kill9_restart_reconciles_without_resending(tmp_path):
    async def scenario():
        async with SimServer(okx_sim_config(speed=60.0, start="2022-03-01T06:00:00Z")) as sim:
            cfg = okx_config(tmp_path, sim.url, schedule=VENUE_WINDOWS, symbols={SYM: {
                **ALWAYS_IN, "leverage": 5, "guard": ADD_MARGIN_GUARD}})
            env = okx_subprocess_env()
            bot = Bot(cfg, env)
            await bot.start()
            await bot.wait_for(r"basisbot live: running BTCUSDT", 90)

            async def topped_up():
                short = _short(await state(sim))
                return short and short["isolatedWallet"] > 0.05 * 43_000 / 5 * 1.2 and short

            short = await until(topped_up, 40, interval=0.3, what="isolated margin added at the venue")
            with JournalReader(tmp_path / "journal.sqlite") as r:
                guard = r.rows("guard", "symbol = ?", [SYM])
            cids_before = await _venue_cids(sim)
            bot.kill(signal.SIGKILL)
            assert await bot.wait(10) == -signal.SIGKILL

            bot2 = Bot(cfg, env)
            await bot2.start()
            await bot2.wait_for(r"basisbot live: running BTCUSDT", 90)
            await bot2.wait_for(r"resume: .*both legs held, in carry", 20)
            await asyncio.sleep(2.0)
            bot2.kill(signal.SIGTERM)
            rc = await bot2.wait(30)
            return short, guard, cids_before, await _venue_cids(sim), await state(sim), bot2, rc

    short, guard, before, after, st, bot2, rc = asyncio.run(scenario())
    assert any(g["step"] == "add_margin" and g["add_margin"] > 0 for g in guard), guard
    assert math.isclose(float(short["positionAmt"]), -0.05)
    assert after == before and len(after) == len(set(after)), (before, after)  # nothing sent again
    assert not any("SubmitOrder" in line for line in bot2.lines)
    assert rc == 0, "\n".join(bot2.lines[-30:])
    assert float(_short(st)["positionAmt"]) == pytest.approx(-0.05)


@pytest.mark.slow  # long end-to-end run: `pytest -m slow` (the default run keeps the invariant checks)
def test_okx_paper_trades_on_the_venues_data_without_credentials(tmp_path):
    """Paper on OKX: OKX's position tiers are public, so paper needs no key at all; fills are simulated on the venue's
    live touch in base units (the swap's contract lot), the isolated wallet and the settlement come from the paper
    modules with OKX's unified account and liquidation price, and nothing reaches the venue's accounts."""

    async def scenario():
        async with SimServer(okx_sim_config(speed=600.0, start="2022-03-01T06:00:00Z")) as sim:
            settings = okx_settings(tmp_path, sim.url, credentials=False, mode="paper", schedule=VENUE_WINDOWS,
                                    symbols={SYM: ALWAYS_IN},
                                    backtest={"spot_balance_usdt": 20000.0, "perp_balance_usdt": 10000.0})
            async with RunningNode(settings, "paper", NodeOptions(log_level="ERROR")) as node:
                assert not node.app.session.authenticated
                assert node.app.ledger.unified and node.app.ledger.symbols[SYM].table.symbol == SYM
                strat = node.strategy(SYM)
                await until(lambda: strat.phase is Phase.IN_CARRY, 20, what="paper entry")
                assert float(strat.perp_qty()) == pytest.approx(-0.05)
                await until(lambda: node.app.ledger.funding, 30, what="paper settlement")
                row = node.app.ledger.funding[0]
                paid_rates = await node.app.session.perp.fetch_funding_rate_history("BTC/USDT:USDT", limit=5)
                st = await state(sim)
            assert node.rc == 0
        return row, paid_rates, st

    row, paid_rates, st = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert row.position_qty == pytest.approx(-0.05)
    assert any(r["fundingRate"] == pytest.approx(row.rate) for r in paid_rates)  # the rate the venue settled
    assert row.payment == pytest.approx(0.05 * row.mark_price * row.rate)
    assert _short(st) is None and st["spot"].get("BTC", {"free": 0.0})["free"] == 0.0
