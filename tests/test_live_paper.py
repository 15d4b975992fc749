"""Paper mode: the venue's live market data, simulated fills (nautilus sandbox + the margin/funding modules); the
credentials only read the leverage brackets (a signed endpoint) on a short-lived client, the node's session stays
public and nothing reaches the venue's accounts."""

from __future__ import annotations

import asyncio

import pytest

from basisbot.journal.writer import Journal
from basisbot.live.node import NodeOptions, run_node
from basisbot.sim import SimServer
from basisbot.strategies.basis_carry import Phase
from tests.helpers.live_node import RunningNode, node_settings, sim_config, until
from tests.helpers.sim_venue import state

SYM = "BTCUSDT"
T_SETTLE = 1646035200001  # 2022-02-28 08:00:00.001Z


@pytest.mark.slow  # long end-to-end run: `pytest -m slow` (the default run keeps the invariant checks)
def test_paper_trades_on_live_data_with_a_public_session(tmp_path):
    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T07:59:45Z")) as sim:
            settings = node_settings(tmp_path, sim.url, mode="paper",
                                     symbols={SYM: {"notional_usdt": 2000.0, "leverage": 5, "entry_apr": -1000.0,
                                                    "exit_apr": -2000.0}},
                                     backtest={"spot_balance_usdt": 20000.0, "perp_balance_usdt": 10000.0})
            async with RunningNode(settings, "paper", NodeOptions(log_level="ERROR")) as node:
                assert not node.app.session.authenticated
                # brackets from the venue's leverageBracket answer, as the strategy and the paper ledger use them
                assert node.app.brackets[SYM] == sim.venue.markets[SYM].table
                assert node.app.ledger.symbols[SYM].table == node.app.brackets[SYM]
                strat = node.strategy(SYM)
                await until(lambda: strat.phase is Phase.IN_CARRY, 10, what="paper entry")
                st = await state(sim)
                # fills at the venue's live touch: spot at its ask, perp at its bid
                spot_fill = next(o for o in node.app.node.kernel.cache.orders() if o.instrument_id == strat.spot_id)
                assert spot_fill.avg_px == pytest.approx(st["prices"][SYM]["spotAsk"], rel=2e-3)
                assert float(strat.perp_qty()) == pytest.approx(-0.052)
                ms = strat.margin_state  # isolated wallet from the paper margin module
                assert ms.side == -1 and ms.wallet == pytest.approx(0.052 * ms.entry_price / 5, rel=1e-6)
                acct = node.app.node.kernel.portfolio.account(strat.spot_id.venue)
                assert acct.balance_total(strat.spot.quote_currency).as_double() < 20000.0
                # the settlement: paid on the paper account at the rate the venue settled
                await until(lambda: node.app.ledger.funding, 25, what="paper settlement")
                row = node.app.ledger.funding[0]
                venue_rate = await node.app.session.perp.fetch_funding_rate_history("BTC/USDT:USDT", T_SETTLE - 1, 1)
                assert row.rate == pytest.approx(venue_rate[0]["fundingRate"])
                assert row.payment == pytest.approx(-(-0.052) * row.mark_price * row.rate)
                await until(lambda: strat.settlements_held >= 1, 10, what="booking")
                j = Journal(settings.journal)
                try:
                    (jr,) = [r for r in j.rows("funding", "symbol = ?", [SYM]) if r["settled_payment"] is not None]
                    assert jr["settled_payment"] == pytest.approx(row.payment) and not jr["flagged"]
                finally:
                    j.close()
                # nothing happened on the venue's accounts
                st = await state(sim)
                assert st["futures"]["positions"] == [] and st["spot"].get("BTC", {"free": 0.0})["free"] == 0.0
                assert st["openOrders"] == {"spot": [], "futures": []}
            assert node.rc == 0

    asyncio.run(asyncio.wait_for(scenario(), 55))


def test_paper_without_credentials_says_what_to_set(tmp_path, capsys):
    """The brackets come from the exchange's signed leverageBracket endpoint, never from bundled files: without a key
    paper refuses to start (exit 2) and names the variables to set."""
    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T07:59:45Z")) as sim:
            settings = node_settings(tmp_path, sim.url, credentials=False, mode="paper",
                                     symbols={SYM: {"notional_usdt": 2000.0, "leverage": 5}})
            settings = settings.model_copy(update={"api_key": None, "api_secret": None})
            return await run_node(settings, "paper", NodeOptions(log_level="ERROR"))

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == 2
    err = capsys.readouterr().err
    assert "leverageBracket" in err and "BASISBOT_API_KEY" in err and "read-only" in err
