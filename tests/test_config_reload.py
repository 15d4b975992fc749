"""Hot reload: a valid edit yields a per-symbol diff applied at each symbol's safe point; an invalid one is refused with
the `basisbot config check` message and the running config stays; restart-only keys are deferred."""

from __future__ import annotations

import asyncio

import pytest

from basisbot.cli import main as cli_main
from basisbot.config.loading import ConfigError, load_settings
from basisbot.config.reload import (
    ConfigWatcher,
    PendingChange,
    diff_settings,
    safe_to_apply,
    symbol_view,
)
from basisbot.config.strategy_fields import settings_fields
from basisbot.journal.writer import Journal

BASE = """mode = "paper"
journal = "var/basisbot.sqlite"

[fees]
perp_taker = 0.0005

[symbols.BTCUSDT]
hedge_ratio = 1.0
notional_usdt = 20000
leverage = 3
entry_apr = 0.08
exit_apr = 0.0

[symbols.BTCUSDT.guard]
warn_distance = 0.12

[symbols.ETHUSDT]
notional_usdt = 20000
leverage = 3
"""


@pytest.fixture
def setup(tmp_path):
    cfg = tmp_path / "basisbot.toml"
    cfg.write_text(BASE)
    settings = load_settings(cfg, env_file=None)
    journal = Journal(tmp_path / "j.sqlite")
    changes: list = []
    watcher = ConfigWatcher(cfg, None, settings, lambda s, d: changes.append((s, d)), journal=journal,
                            settle_polls=0, clock_ns=iter(range(1, 10_000)).__next__)
    yield cfg, settings, journal, changes, watcher
    journal.close()


def _edit(cfg, old: str, new: str) -> None:
    text = cfg.read_text()
    assert old in text, old
    cfg.write_text(text.replace(old, new, 1))


def test_valid_edit_gives_a_per_symbol_diff_and_calls_on_change(setup):
    cfg, settings, journal, changes, watcher = setup
    assert watcher.poll() == "unchanged"
    _edit(cfg, "entry_apr = 0.08", "entry_apr = 0.09")
    _edit(cfg, "warn_distance = 0.12", "warn_distance = 0.13")
    _edit(cfg, "perp_taker = 0.0005", "perp_taker = 0.0004")
    assert watcher.poll() == "changed"
    (new, diff), = changes
    assert diff["symbols"] == {
        "BTCUSDT": {"entry_apr": [0.08, 0.09], "guard.warn_distance": [0.12, 0.13], "fees.perp_taker": [0.0005, 0.0004]},
        "ETHUSDT": {"fees.perp_taker": [0.0005, 0.0004]},
    }
    assert diff["restart_only"] == {} and diff["ignored"] == {}
    assert new.symbols["BTCUSDT"].entry_apr == 0.09 and watcher.current is new
    assert settings.symbols["BTCUSDT"].entry_apr == 0.08  # the old object is untouched
    assert watcher.poll() == "unchanged"  # nothing new: on_change is not called again
    assert len(changes) == 1


def test_invalid_edit_is_refused_with_the_config_check_message(setup, capsys):
    cfg, settings, journal, changes, watcher = setup
    _edit(cfg, "hedge_ratio = 1.0", "hedge_ratio = 9")
    assert watcher.poll() == "refused"
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, env_file=None)
    expected = str(exc.value)
    assert "hedge_ratio" in expected and "<= 1.5" in expected
    assert watcher.last_error == expected
    # exactly what `basisbot config check` prints for the same file
    capsys.readouterr()  # the watcher's own log line, when logging goes to stderr
    assert cli_main(["config", "check", "--config", str(cfg), "--env-file", str(cfg.parent / "none.env")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {expected}"
    # the running config stays, nothing is applied, the refusal is journaled
    assert watcher.current is settings and changes == []
    (row,) = journal.rows("config_changes")
    assert row["status"] == "refused" and row["message"] == expected and row["source"] == str(cfg)
    assert any("hedge_ratio" in p for p in row["diff"]["problems"])
    assert watcher.poll() == "unchanged"  # the same bad content is not refused (and journaled) twice
    # fixing the file applies the fix
    _edit(cfg, "hedge_ratio = 9", "hedge_ratio = 1.1")
    assert watcher.poll() == "changed" and watcher.last_error is None
    assert changes[0][1]["symbols"] == {"BTCUSDT": {"hedge_ratio": [1.0, 1.1]}}


def test_restart_only_keys_are_deferred_once_and_not_applied(setup):
    cfg, settings, journal, changes, watcher = setup
    _edit(cfg, 'mode = "paper"', 'mode = "live"')
    _edit(cfg, "leverage = 3\nentry_apr", "leverage = 5\nentry_apr")
    _edit(cfg, "[symbols.ETHUSDT]", "[symbols.SOLUSDT]\nleverage = 3\n\n[symbols.ETHUSDT]")
    assert watcher.poll() == "deferred"
    assert changes == []  # nothing that can change live
    (row,) = journal.rows("config_changes")
    assert row["status"] == "deferred"
    assert row["diff"]["restart_only"] == {"mode": ["paper", "live"], "symbols.BTCUSDT.leverage": [3, 5],
                                           "symbols.SOLUSDT": [None, "added"]}
    assert "next restart" in row["message"]
    # the running config keeps the restart-only values
    assert watcher.current.mode == "paper" and watcher.current.symbols["BTCUSDT"].leverage == 3
    assert "SOLUSDT" not in watcher.current.symbols
    # a later live edit is applied; the deferred keys are not journaled again
    _edit(cfg, "entry_apr = 0.08", "entry_apr = 0.1")
    assert watcher.poll() == "changed"
    (new, diff), = changes
    assert diff["symbols"] == {"BTCUSDT": {"entry_apr": [0.08, 0.1]}}
    assert new.symbols["BTCUSDT"].leverage == 3 and new.symbols["BTCUSDT"].entry_apr == 0.1 and new.mode == "paper"
    assert [r["status"] for r in journal.rows("config_changes")] == ["deferred"]


def test_live_values_invalid_with_the_kept_restart_values_are_refused(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[symbols.BTCUSDT]\nnotional_usdt = 20000\nleverage = 100\n")
    running = load_settings(cfg, env_file=None)
    watcher = ConfigWatcher(cfg, None, running, lambda s, d: pytest.fail("must not apply"), settle_polls=0)
    # valid as a file (50x is allowed at 5M), but 5M with the running 100x is not: refuse the whole change
    cfg.write_text("[symbols.BTCUSDT]\nnotional_usdt = 5000000\nleverage = 50\n")
    load_settings(cfg, env_file=None)
    assert watcher.poll() == "refused"
    assert "at most 50x" in watcher.last_error and "restart" in watcher.last_error
    assert watcher.current is running


def test_changes_wait_for_the_content_to_settle(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE)
    seen = []
    watcher = ConfigWatcher(cfg, None, load_settings(cfg, env_file=None), lambda s, d: seen.append(d))
    cfg.write_text(BASE.replace("entry_apr = 0.08", "entry_apr = 0.0"))  # half-way through an editor's save
    assert watcher.poll() == "settling"
    cfg.write_text(BASE.replace("entry_apr = 0.08", "entry_apr = 0.05"))
    assert watcher.poll() == "settling"  # changed again: wait once more
    assert watcher.poll() == "changed"
    assert seen[0]["symbols"]["BTCUSDT"] == {"entry_apr": [0.08, 0.05]}


def test_safe_point_rules():
    assert safe_to_apply(in_blackout=False, leg_in_flight=False)
    assert not safe_to_apply(in_blackout=True, leg_in_flight=False)
    assert not safe_to_apply(in_blackout=False, leg_in_flight=True)
    assert not safe_to_apply(in_blackout=True, leg_in_flight=True)


def test_pending_change_is_applied_per_symbol_at_its_safe_point(setup):
    cfg, settings, journal, _, _ = setup
    pending = PendingChange(settings, journal=journal, source=str(cfg), clock_ns=lambda: 42)
    watcher = ConfigWatcher(cfg, None, settings, pending.offer, journal=journal, settle_polls=0)
    _edit(cfg, "entry_apr = 0.08", "entry_apr = 0.09")
    _edit(cfg, "perp_taker = 0.0005", "perp_taker = 0.0004")
    assert watcher.poll() == "changed"
    assert pending.pending_symbols() == ["BTCUSDT", "ETHUSDT"]
    assert pending.take("BTCUSDT", in_blackout=True, leg_in_flight=False) is None
    assert pending.take("BTCUSDT", in_blackout=False, leg_in_flight=True) is None
    # a second edit before the safe point: what is applied is the latest config against what the symbol runs with
    _edit(cfg, "entry_apr = 0.09", "entry_apr = 0.11")
    assert watcher.poll() == "changed"
    ch = pending.take("BTCUSDT", in_blackout=False, leg_in_flight=False)
    assert ch.symbol == "BTCUSDT" and ch.diff == {"entry_apr": [0.08, 0.11], "fees.perp_taker": [0.0005, 0.0004]}
    fields = ch.strategy_fields()
    assert fields["entry_apr"] == 0.11 and fields["perp_taker_fee"] == 0.0004 and fields["leverage"] == 3
    assert fields["guard"].warn_distance == 0.12 and fields["schedule"].blackout_before_s == 300
    assert pending.take("BTCUSDT", in_blackout=False, leg_in_flight=False) is None  # applied once
    assert pending.pending_symbols() == ["ETHUSDT"]
    eth = pending.take("ETHUSDT", in_blackout=False, leg_in_flight=False, ts_ns=43)
    assert eth.diff == {"fees.perp_taker": [0.0005, 0.0004]}
    applied = [r for r in journal.rows("config_changes") if r["status"] == "applied"]
    assert [(r["scope"], r["ts"]) for r in applied] == [("BTCUSDT", 42), ("ETHUSDT", 43)]
    assert applied[0]["diff"] == {"symbols": {"BTCUSDT": {"entry_apr": [0.08, 0.11],
                                                          "fees.perp_taker": [0.0005, 0.0004]}}}
    assert "entry_apr: 0.08 → 0.11" in applied[0]["message"]


def test_symbol_view_and_diff_follow_the_effective_schedule(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE + "\n[symbols.ETHUSDT.schedule]\nblackout_before_s = 120\n")
    old = load_settings(cfg, env_file=None)
    cfg.write_text(BASE + "\n[schedule]\nblackout_before_s = 240\n\n[symbols.ETHUSDT.schedule]\nblackout_before_s = 120\n")
    new = load_settings(cfg, env_file=None)
    assert symbol_view(old, "ETHUSDT")["schedule.blackout_before_s"] == 120
    # the global change reaches BTCUSDT only: ETHUSDT has its own schedule
    assert diff_settings(old, new)["symbols"] == {"BTCUSDT": {"schedule.blackout_before_s": [300, 240]}}
    assert settings_fields(new, "BTCUSDT")["schedule"].blackout_before_s == 240


def test_run_polls_on_the_event_loop(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE)
    got = asyncio.Event()
    seen = []

    def on_change(s, d):
        seen.append(d)
        got.set()

    async def scenario():
        watcher = ConfigWatcher(cfg, None, load_settings(cfg, env_file=None), on_change, interval_s=0.01)
        task = asyncio.create_task(watcher.run())
        await asyncio.sleep(0.03)
        cfg.write_text(BASE.replace("exit_apr = 0.0", "exit_apr = 0.01"))
        await asyncio.wait_for(got.wait(), 5)
        task.cancel()

    asyncio.run(scenario())
    assert seen[0]["symbols"] == {"BTCUSDT": {"exit_apr": [0.0, 0.01]}}


def test_one_settings_mapping_for_backtest_live_and_reload(tmp_path):
    """The backtest's / live node's strategy config and a reload's fields come from the one field table; what a
    running strategy accepts is derived from it (leverage, margin mode and the settled level's half-life are not)."""
    from basisbot.config.strategy_fields import SETTINGS_FIELDS, TUNABLE_FIELDS
    from basisbot.strategies.strategy_config import strategy_config
    from basisbot.venues.binance import reference
    from strategies import basis_carry

    cfg = tmp_path / "b.toml"
    cfg.write_text(BASE)
    s = load_settings(cfg, env_file=None)
    fields = settings_fields(s, "BTCUSDT")
    live = strategy_config(s, "BTCUSDT", "BTCUSDT.BINANCE_SPOT", "BTCUSDT-PERP.BINANCE_PERP", None,
                           table=reference.brackets()["BTCUSDT"])
    assert {k: getattr(live, k) for k in fields} == fields
    assert set(fields) <= set(basis_carry.BasisCarryConfig.__struct_fields__)
    assert TUNABLE_FIELDS == set(fields) - {"leverage", "margin_mode", "persistence_halflife"}
    assert TUNABLE_FIELDS == getattr(basis_carry, "TUNABLE_FIELDS", TUNABLE_FIELDS)  # the strategy's copy, while it has one
    assert len({f.name for f in SETTINGS_FIELDS}) == len(SETTINGS_FIELDS)
    bars = strategy_config(s, "BTCUSDT", "BTCUSDT.BINANCE_SPOT", "BTCUSDT-PERP.BINANCE_PERP",
                           "BTCUSDT.BINANCE_SPOT-1-HOUR-LAST-EXTERNAL", table=reference.brackets()["BTCUSDT"])
    assert bars.guard_sweep_s == 0 and live.guard_sweep_s == fields["guard_sweep_s"] > 0  # the sweep: a live backstop
