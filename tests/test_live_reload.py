"""Config hot reload while live: the node watches its config file; a valid edit reaches the running strategy at its
next safe point (rules, guard thresholds, windows rebuilt; journaled as applied and as a decision); an invalid edit is
refused with the `basisbot config check` message and the running values stay."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from pydantic import SecretStr

from basisbot.config.loading import ConfigError, load_settings
from basisbot.config.reload import PendingChange, diff_settings, effective_settings
from basisbot.core.legs import LegPair
from basisbot.journal.writer import Journal
from basisbot.live.node import NodeOptions
from basisbot.sim import SimServer
from basisbot.strategies.basis_carry import ACTED_ON, BasisCarryStrategy, Phase
from basisbot.strategies.strategy_config import strategy_config
from basisbot.venues.binance import reference
from tests.helpers.live_node import RunningNode, sim_config, until, write_config
from tests.helpers.sim_venue import KEY, SECRET

SYM = "BTCUSDT"
GUARD = {"warn_distance": 0.08, "add_margin_distance": 0.06, "target_distance": 0.09, "reduce_distance": 0.04,
         "close_distance": 0.02, "hysteresis": 0.005}


def symbol(**overrides) -> dict:
    # an entry threshold never met: the strategy stays flat (no pair in flight), so a change applies at once
    base = {"notional_usdt": 2000.0, "leverage": 10, "entry_apr": 1000.0, "exit_apr": 0.0, "min_hold_intervals": 0,
            "leg_timeout_s": 5.0, "rebalance_tolerance": 0.02, "guard": dict(GUARD)}
    for k, v in overrides.items():
        if k == "guard":
            base["guard"] = {**GUARD, **v}
        else:
            base[k] = v
    return base


def test_live_node_applies_a_valid_edit_and_refuses_an_invalid_one(tmp_path):
    async def scenario():
        async with SimServer(sim_config(start="2022-02-28T09:00:00Z")) as sim:
            path = write_config(tmp_path, sim.url, symbols={SYM: symbol()})
            settings = load_settings(path, env_file=None).model_copy(
                update={"api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET)})
            opts = NodeOptions(log_level="ERROR", config_path=str(path), env_file=None, reload_interval_s=0.2)
            async with RunningNode(settings, "live", opts) as node:
                strat = node.strategy(SYM)
                assert node.app.watcher is not None and node.app.pending is not None
                assert strat.rules.entry_apr == 1000.0 and strat.thresholds.warn_distance == 0.08
                assert strat.phase is Phase.FLAT

                # a valid edit: entry threshold, guard warning distance, hedge tolerance
                write_config(tmp_path, sim.url, symbols={SYM: symbol(
                    entry_apr=900.0, rebalance_tolerance=0.03, guard={"warn_distance": 0.085})})
                await until(lambda: strat.rules.entry_apr == 900.0, 10, what="change applied")
                assert strat.thresholds.warn_distance == 0.085
                assert strat.cfg.rebalance_tolerance == 0.03 and strat.cfg.entry_apr == 900.0
                assert strat.cfg.leverage == 10
                assert any(a == "config_applied" and "entry_apr" in r for _, a, r in strat.log_.decisions)

                def journal_rows(status):
                    j = Journal(settings.journal)
                    try:
                        return j.rows("config_changes", "status = ?", [status])
                    finally:
                        j.close()

                applied = await until(lambda: journal_rows("applied"), 5, what="applied row")
                assert len(applied) == 1 and applied[0]["scope"] == SYM
                diff = applied[0]["diff"]
                diff = diff if isinstance(diff, dict) else json.loads(diff)
                assert diff["symbols"][SYM] == {"entry_apr": [1000.0, 900.0], "guard.warn_distance": [0.08, 0.085],
                                                "rebalance_tolerance": [0.02, 0.03]}
                decisions = await until(lambda: [r for r in _rows(settings.journal, "decisions")
                                                 if r["action"] == "config_applied"], 5, what="decision row")
                assert "entry_apr" in decisions[0]["reason"]

                # an invalid edit: refused with what `basisbot config check` says; the running values stay
                write_config(tmp_path, sim.url, symbols={SYM: symbol(
                    entry_apr=900.0, rebalance_tolerance=0.03, guard={"warn_distance": 0.085}, hedge_ratio=9)})
                with pytest.raises(ConfigError) as check:
                    load_settings(path, env_file=None)
                refused = await until(lambda: journal_rows("refused"), 10, what="refused row")
                assert refused[0]["message"] == str(check.value)
                assert "hedge_ratio" in refused[0]["message"]
                assert node.app.watcher.last_error == str(check.value)
                await asyncio.sleep(1.0)  # several apply rounds
                assert strat.cfg.hedge_ratio == 1.0 and strat.rules.hedge_ratio == 1.0
                assert strat.rules.entry_apr == 900.0 and strat.thresholds.warn_distance == 0.085
                assert len(journal_rows("applied")) == 1
            assert node.rc == 0

    asyncio.run(asyncio.wait_for(scenario(), 45))


def _rows(path, table):
    j = Journal(path)
    try:
        return j.rows(table)
    finally:
        j.close()


def test_change_waits_for_the_safe_point(tmp_path):
    """Through PendingChange.take as the node polls it: not applied while a leg pair is in flight nor inside the
    settlement blackout; applied (rules rebuilt) once both are over. Restart-only fields are never applied."""
    path = write_config(tmp_path, "http://127.0.0.1:1", symbols={SYM: symbol()})
    settings = load_settings(path, env_file=None)
    sc = strategy_config(settings, SYM, "BTCUSDT.BINANCE", "BTCUSDT-PERP.BINANCE", None,
                         table=reference.brackets()[SYM])
    strat = BasisCarryStrategy(sc)
    decided = []
    strat._decide = lambda action, reason: decided.append((action, reason))  # not registered: no clock / msgbus
    pending = PendingChange(settings, source=str(path))

    write_config(tmp_path, "http://127.0.0.1:1", symbols={SYM: symbol(entry_apr=900.0, leverage=5,
                                                                       guard={"warn_distance": 0.085})})
    new = load_settings(path, env_file=None)
    eff = effective_settings(settings, new)
    pending.offer(eff, diff_settings(settings, new))

    def poll(now):
        ch = pending.take(SYM, in_blackout=strat.calendar.in_blackout(now), leg_in_flight=strat._busy(), ts_ns=now)
        if ch is not None:
            strat.apply_config(ch.strategy_fields())
        return ch

    from basisbot.core.units import NS
    settle = 1646035200 * NS
    strat.calendar.on_funding_info(settle, 480, settle - 600 * NS, ACTED_ON)
    # a leg pair in flight (away from the settlement)
    strat.pair, _ = LegPair.start("enter", settle - 600 * NS, 5 * NS, 40_000.0, 0.002, spot=(1, 0.05),
                                  perp=(-1, 0.05))
    assert strat._busy()
    assert poll(settle - 600 * NS) is None and strat.rules.entry_apr == 1000.0
    strat.pair = None
    # inside the blackout (FAST_SCHEDULE: 5 s before, 1 s after)
    assert strat.calendar.in_blackout(settle - 2 * NS)
    assert poll(settle - 2 * NS) is None and strat.rules.entry_apr == 1000.0
    assert poll(settle) is None and strat.thresholds.warn_distance == 0.08
    # safe: applied once
    ch = poll(settle + 2 * NS)
    assert ch is not None and ch.diff == {"entry_apr": [1000.0, 900.0], "guard.warn_distance": [0.08, 0.085]}
    assert strat.rules.entry_apr == 900.0 and strat.thresholds.warn_distance == 0.085
    assert strat.cfg.leverage == 10  # restart-only: kept
    assert [a for a, _ in decided] == ["config_applied"]
    assert poll(settle + 3 * NS) is None


def test_apply_config_ignores_fields_that_cannot_change_live(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:1", symbols={SYM: symbol()})
    settings = load_settings(path, env_file=None)
    sc = strategy_config(settings, SYM, "BTCUSDT.BINANCE", "BTCUSDT-PERP.BINANCE", None,
                         table=reference.brackets()[SYM])
    strat = BasisCarryStrategy(sc)
    strat._decide = lambda action, reason: None
    changed = strat.apply_config({"leverage": 20, "margin_mode": "cross", "spot_instrument_id": "X.Y",
                                  "scheduler": "asyncio", "exit_apr": 0.01,
                                  "schedule": dataclasses.replace(sc.schedule, blackout_before_s=30)})
    assert set(changed) == {"exit_apr", "schedule"}
    assert strat.cfg.leverage == 10 and strat.cfg.margin_mode == sc.margin_mode
    assert strat.cfg.spot_instrument_id == "BTCUSDT.BINANCE" and strat.cfg.scheduler == sc.scheduler
    assert strat.rules.exit_apr == 0.01 and strat.calendar.windows.blackout_before_s == 30
    assert reference.brackets()[SYM]  # the strategy's bracket table is untouched by a reload
