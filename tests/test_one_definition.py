"""Each concept defined once: the defaults (config schema, strategy config, pure rules, local venue), the units and
time constants, the funding-settled message. These fail when a second copy appears or the copies drift apart."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from basisbot.config.schema import FeeSettings, GuardSettings, ScheduleSettings, Settings, SymbolSettings
from basisbot.config.strategy_fields import SETTINGS_FIELDS, settings_fields
from basisbot.core import carry, guard, units
from basisbot.core.schedule import Windows
from basisbot.sim.config import SimConfig
from basisbot.strategies.basis_carry import BasisCarryConfig

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("src/basisbot", "strategies", "benchmarks") for p in (ROOT / d).rglob("*.py")
           if "__pycache__" not in p.parts]


def test_strategy_config_defaults_are_the_schema_defaults():
    settings = Settings(symbols={"BTCUSDT": SymbolSettings()})
    from_settings = settings_fields(settings, "BTCUSDT")
    defaults = BasisCarryConfig(symbol="BTCUSDT", spot_instrument_id="X.Y", perp_instrument_id="X-PERP.Y")
    # the guard ladder has no default in the strategy's config (None: no thresholds): the schema's is the one
    assert from_settings.pop("guard") == GuardSettings().thresholds()
    assert {f.name for f in SETTINGS_FIELDS} - {"guard"} == set(from_settings)
    assert {k: getattr(defaults, k) for k in from_settings} == from_settings


def test_rules_defaults_are_the_schema_defaults():
    s = SymbolSettings()
    rules = carry.CarryRules(0.0, 0.0, 0, 1.0, carry.Fees(0.0, 0.0))
    assert (rules.horizon_hours, rules.persistence, rules.spread) == (s.horizon_hours, s.persistence, s.spread)
    assert carry.FundingMemory().alpha == carry.FundingMemory(s.persistence_halflife).alpha
    assert ScheduleSettings().windows() == Windows()
    g = GuardSettings()
    assert guard.Thresholds(g.warn_distance, g.add_margin_distance, g.target_distance, g.reduce_distance,
                            g.close_distance) == g.thresholds()  # the hysteresis default is the schema's
    fees, sim = FeeSettings(), SimConfig(data_dir=Path("."), api_key="k", api_secret="s")
    assert (sim.spot_fee, sim.futures_taker_fee, sim.futures_maker_fee) == (fees.spot_taker, fees.perp_taker,
                                                                          fees.perp_maker)
    bt = Settings().backtest
    assert (sim.spot_balances["USDT"], sim.futures_usdt) == (bt.spot_balance_usdt, bt.perp_balance_usdt)


def test_windows_at_a_replay_speed():
    w = ScheduleSettings(decision_before_s=600, blackout_before_s=300, guard_sweep_s=30).windows()
    fast = w.at_speed(60.0)
    assert (fast.decision_before_s, fast.blackout_before_s, fast.blackout_after_s, fast.guard_sweep_s) == \
        (10.0, 5.0, 1.0, 1.0)  # the guard sweep never below 1 s
    assert dataclasses.replace(w, blackout_after_s=120).at_speed(1.0).blackout_after_s == 120


UNIT_NAMES = {n for n in vars(units) if n.isupper()} | {"NS_PER_HOUR", "HOUR_NS"}


def _module_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_units_are_defined_once():
    assert units.HOUR_NS == 3600 * units.NS and units.HOUR_MS * units.MS == units.HOUR_NS
    assert units.YEAR_S == 365 * 86_400 and units.HOURS_PER_YEAR * 3600 == units.YEAR_S
    twins = {str(p.relative_to(ROOT)): sorted(_module_constants(p) & UNIT_NAMES) for p in SOURCES
             if p.name != "units.py"}
    assert {k: v for k, v in twins.items() if v} == {}


@pytest.mark.parametrize("name", ["FundingSettled", "funding_mismatch", "expected_funding", "pnl_split", "Intent",
                                  "follow_position"])
def test_one_definition_of(name):
    where = []
    for p in SOURCES:
        tree = ast.parse(p.read_text(encoding="utf-8"))
        where += [str(p.relative_to(ROOT)) for n in ast.walk(tree)
                  if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name]
    assert len(where) == 1, where
