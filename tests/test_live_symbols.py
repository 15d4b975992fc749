"""Live node on the fourth symbol, with venue facts from the venue: the local venue serves all four bundled symbols
(AVAXUSDT included) and, for BTCUSDT, the 2024 bracket snapshot (`--brackets`) instead of the bundled 2026 table, so
brackets read from the exchange and brackets read from bundled files cannot be mistaken for each other."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import SecretStr

from basisbot.config.loading import load_settings
from basisbot.journal.writer import Journal
from basisbot.live.node import NodeOptions, run_node
from basisbot.sim import SimServer
from basisbot.strategies.basis_carry import Phase
from basisbot.venues.binance import reference
from basisbot.venues.binance.brackets_file import parse_brackets
from tests.helpers.live_node import RunningNode, node_settings, sim_config, until, write_config
from tests.helpers.sim_venue import KEY, SECRET, state

AVAX, BTC = "AVAXUSDT", "BTCUSDT"
START = "2022-02-28T07:59:45Z"  # 15 s before the 08:00 settlement of every symbol
T_SETTLE = 1646035200001  # 2022-02-28 08:00:00.001Z, AVAX's settlement in the data
BTC_2024 = next(e for e in json.loads(reference.BRACKETS_ALL.read_text()) if e["symbol"] == BTC)


def venue_config(tmp_path, **overrides):
    path = tmp_path / "venue_brackets.json"
    path.write_text(json.dumps([BTC_2024]))
    return sim_config(start=START, symbols=None, brackets=path, **overrides)


@pytest.mark.slow  # long end-to-end run: `pytest -m slow` (the default run keeps the invariant checks)
def test_live_trades_avax_with_brackets_from_the_venue(tmp_path):
    """Both AVAX legs fill, the 08:00 settlement is booked and reconciled with the venue's payment; every bracket
    table the node, the strategies and the journal use is the venue's answer, not a bundled file."""

    async def scenario():
        async with SimServer(venue_config(tmp_path)) as sim:
            assert sorted(sim.markets) == [AVAX, BTC, "ETHUSDT", "SOLUSDT"]
            venue_btc = parse_brackets(BTC_2024)[BTC]
            assert sim.venue.markets[BTC].table == venue_btc != reference.brackets()[BTC]
            settings = node_settings(tmp_path, sim.url, symbols={
                AVAX: {"notional_usdt": 2000.0, "leverage": 10, "entry_apr": -1000.0, "exit_apr": -2000.0,
                       "min_hold_intervals": 0, "leg_timeout_s": 5.0},
                BTC: {"notional_usdt": 2000.0, "leverage": 10, "entry_apr": 1000.0, "exit_apr": 0.0}})
            async with RunningNode(settings, "live", NodeOptions(log_level="WARNING")) as node:
                assert node.app.brackets[BTC] == venue_btc
                assert node.strategy(BTC).table == venue_btc
                assert node.app.brackets[AVAX] == sim.venue.markets[AVAX].table
                strat = node.strategy(AVAX)
                assert strat.table == node.app.brackets[AVAX]
                await until(lambda: strat.phase is Phase.IN_CARRY, 10, what="AVAX entry")
                st = await state(sim)
                pos = next(p for p in st["futures"]["positions"] if p["symbol"] == AVAX)
                assert pos["positionAmt"] < 0 and float(strat.perp_qty()) == pytest.approx(pos["positionAmt"])
                assert st["spot"]["AVAX"]["free"] > 0
                assert float(strat.spot_qty()) == pytest.approx(st["spot"]["AVAX"]["free"], abs=0.01)  # lot: 0.01 AVAX
                assert float(strat.spot_qty()) == pytest.approx(-pos["positionAmt"], rel=0.02)

                await until(lambda: strat.settlements_held >= 1, 25, what="AVAX booking")
                await until(lambda: [f for f in node.perp_exec.funding_published if f.symbol == AVAX], 10,
                            what="AVAX funding income")
                fs = next(f for f in node.perp_exec.funding_published if f.symbol == AVAX)
                venue_fund = next(f for f in (await state(sim))["funding"]
                                  if f["symbol"] == AVAX and f["time"] == T_SETTLE)
                assert fs.payment == pytest.approx(venue_fund["payment"], abs=1e-8)
                assert fs.position_qty == pytest.approx(pos["positionAmt"])
                assert node.strategy(BTC).phase is Phase.FLAT
            assert node.rc == 0
        j = Journal(settings.journal)
        try:
            rows = [r for r in j.rows("funding", "symbol = ?", [AVAX]) if r["settled_payment"] is not None]
            assert rows and rows[0]["settled_payment"] == pytest.approx(venue_fund["payment"], abs=1e-8)
        finally:
            j.close()

    asyncio.run(asyncio.wait_for(scenario(), 55))


def test_live_refuses_leverage_the_venues_bracket_does_not_allow(tmp_path, capsys):
    """125x on a 100,000 USDT BTC short: the bundled 2026 table allows it (config check passes), the venue's 2024
    table allows 100x: the node refuses to start (exit 2) naming the symbol, the field and the venue's limit."""
    notional = 100_000.0
    assert reference.brackets()[BTC].max_leverage(notional) >= 125
    allowed = parse_brackets(BTC_2024)[BTC].max_leverage(notional)
    assert allowed < 125

    async def scenario():
        async with SimServer(venue_config(tmp_path)) as sim:
            settings = node_settings(tmp_path, sim.url, symbols={BTC: {"notional_usdt": notional, "leverage": 125}})
            return await run_node(settings, "live", NodeOptions(log_level="ERROR"))

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == 2
    err = capsys.readouterr().err
    assert "symbols.BTCUSDT.leverage" in err and f"at most {allowed}x" in err and "brackets: the exchange" in err


def test_config_reload_is_checked_against_the_venues_brackets(tmp_path):
    """120x BTC: at 40,000 USDT both tables allow it; an edit to 60,000 USDT is within the bundled 2026 table (150x)
    but above the venue's 2024 one (100x from 50,000): the running node refuses it, naming the exchange's limit."""
    start, edited = 40_000.0, 60_000.0
    venue_table = parse_brackets(BTC_2024)[BTC]
    assert venue_table.max_leverage(start) >= 120 > venue_table.max_leverage(edited)
    assert reference.brackets()[BTC].max_leverage(edited) >= 120
    btc = {"leverage": 120, "entry_apr": 1000.0, "exit_apr": 0.0}  # never enters: a change applies at once

    async def scenario():
        async with SimServer(venue_config(tmp_path)) as sim:
            path = write_config(tmp_path, sim.url, symbols={BTC: {**btc, "notional_usdt": start}})
            settings = load_settings(path, env_file=None).model_copy(
                update={"api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET)})
            opts = NodeOptions(log_level="ERROR", config_path=str(path), env_file=None, reload_interval_s=0.2)
            async with RunningNode(settings, "live", opts) as node:
                write_config(tmp_path, sim.url, symbols={BTC: {**btc, "notional_usdt": edited}})
                load_settings(path, env_file=None)  # `config check` (bundled 2026 table) accepts the edit
                await until(lambda: node.app.watcher.last_error, 10, what="refusal")
                err = node.app.watcher.last_error
                assert "symbols.BTCUSDT.leverage" in err and "brackets: the exchange" in err
                assert f"at most {venue_table.max_leverage(edited)}x" in err
                assert node.strategy(BTC).cfg.notional_usdt == start
            assert node.rc == 0

    asyncio.run(asyncio.wait_for(scenario(), 40))
