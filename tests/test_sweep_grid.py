"""Sweep grid files and points: applied onto the loaded settings and validated like any config, and a bad grid is
refused before anything runs (no Ray, no output folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from basisbot.cli import main
from basisbot.config.loading import ConfigError, load_settings
from basisbot.sweep.grid import PointErrors, Range, apply_point, read_grid, validate_grid
from basisbot.sweep.plan import RunScope, plan_point
from basisbot.sweep.walkforward import parse_window

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "basisbot.toml"


def grid_file(tmp_path: Path, body: str, name: str = "grid.toml") -> Path:
    p = tmp_path / name
    p.write_text("[grid]\n" + body)
    return p


@pytest.fixture(scope="module")
def settings():
    return load_settings(CONFIG, env_file=None)


def refusal(settings, path: Path) -> str:
    with pytest.raises(ConfigError) as e:
        validate_grid(settings, read_grid(path))
    return str(e.value)


def test_star_applies_to_every_symbol_and_sym_to_one(settings):
    s = apply_point(settings, {"symbols.*.entry_apr": 0.2, "symbols.ETHUSDT.leverage": 2,
                               "symbols.*.guard.warn_distance": 0.2}, "t")
    assert {k: v.entry_apr for k, v in s.symbols.items()} == {s: 0.2 for s in settings.symbols}
    assert {k: v.leverage for k, v in s.symbols.items()} == {s: (2 if s == "ETHUSDT" else 3) for s in settings.symbols}
    assert all(v.guard.warn_distance == 0.2 for v in s.symbols.values())
    # everything else is the config's
    assert s.symbols["BTCUSDT"].max_notional_usdt == 40000 and s.backtest == settings.backtest


def test_values_set_by_the_environment_stay(monkeypatch):
    monkeypatch.setenv("BASISBOT_FEES__PERP_TAKER", "0.0009")
    base = load_settings(CONFIG, env_file=None)
    s = apply_point(base, {"symbols.*.exit_apr": -0.01}, "t")
    assert s.fees.perp_taker == 0.0009 and s.symbols["SOLUSDT"].exit_apr == -0.01


def test_grid_points_in_file_order(tmp_path, settings):
    g = read_grid(grid_file(tmp_path, '"symbols.*.entry_apr" = [0.02, 0.10]\n"symbols.*.leverage" = [2, 3]\n'))
    points = validate_grid(settings, g)
    assert points == [{"symbols.*.entry_apr": a, "symbols.*.leverage": b} for a in (0.02, 0.10) for b in (2, 3)]


def test_unknown_key_is_refused_naming_it(tmp_path, settings):
    msg = refusal(settings, grid_file(tmp_path, '"symbols.*.entry_aprr" = [0.02, 0.1]\n'))
    assert "symbols.*.entry_aprr" in msg and "unknown key" in msg
    msg = refusal(settings, grid_file(tmp_path, '"feez.perp_taker" = [0.001]\n'))
    assert "feez" in msg and "unknown key" in msg


def test_bad_value_is_refused_with_what_is_allowed(tmp_path, settings):
    msg = refusal(settings, grid_file(tmp_path, '"symbols.*.leverage" = [2, 200]\n"fees.perp_taker" = ["x"]\n'))
    assert "'symbols.*.leverage' = 200" in msg and "<= 125" in msg
    assert "'fees.perp_taker' = 'x'" in msg and "valid number" in msg
    assert "= 2:" not in msg  # the good value is not reported


def test_symbol_not_in_config_is_refused(tmp_path, settings):
    msg = refusal(settings, grid_file(tmp_path, '"symbols.XRPUSDT.leverage" = [2]\n'))
    assert "XRPUSDT is not in the config" in msg


def test_combinations_are_checked_with_the_config_rules(tmp_path, settings):
    # each value is fine alone; exit above entry is not, and 20x is more than BTC's bracket allows at 2M
    msg = refusal(settings, grid_file(tmp_path, '"symbols.*.exit_apr" = [-0.05, 0.09]\n'))
    entry = settings.symbols["BTCUSDT"].entry_apr
    assert "1 of 2 grid points" in msg and f"exit_apr (0.09) must be <= entry_apr ({entry})" in msg
    msg = refusal(settings, grid_file(tmp_path, '"symbols.BTCUSDT.leverage" = [3, 75]\n'
                                                '"symbols.BTCUSDT.max_notional_usdt" = [40000, 5000000]\n'))
    assert "symbols.BTCUSDT.leverage' = 75: the venue allows at most" in msg


@pytest.mark.parametrize("body, expected", [
    ('"symbols.*.entry_apr" = 0.1\n', "give a list of values"),
    ('"symbols.*.entry_apr" = []\n', "empty list"),
    ('"symbols.*.entry_apr" = [0.1, 0.1]\n', "lists a value twice"),
    ('"symbols.*.entry_apr" = {low = 0.2, high = 0.1}\n', "low (0.2) must be < high (0.1)"),
    ('"symbols.*.notional_usdt" = {low = 0, high = 10, log = true}\n', "log range needs low > 0"),
    ('"symbols.*.entry_apr" = {low = 0.0, hi = 0.1}\n', "unknown range field"),
    ('"symbols" = [1]\n', "symbols.*.KEY"),
])
def test_grid_file_shape_errors(tmp_path, settings, body, expected):
    path = grid_file(tmp_path, body)
    with pytest.raises(ConfigError) as e:
        validate_grid(settings, read_grid(path))
    assert expected in str(e.value)


def test_ranges_parse_and_need_a_search(tmp_path, settings):
    g = read_grid(grid_file(tmp_path, '"symbols.*.min_hold_intervals" = {low = 1, high = 9, step = 2}\n'
                                      '"symbols.*.entry_apr" = {low = 0.01, high = 0.3, log = true}\n'))
    assert g.values["symbols.*.min_hold_intervals"] == Range(1, 9, False, 2) and g.values["symbols.*.min_hold_intervals"].is_int
    assert not g.values["symbols.*.entry_apr"].is_int
    assert validate_grid(settings, g) is None  # a search: combinations are drawn later
    with pytest.raises(ConfigError, match="need --search optuna"):
        g.points()
    # a range whose bound the config refuses on its own is refused up front
    msg = refusal(settings, grid_file(tmp_path, '"symbols.*.leverage" = {low = 1, high = 500}\n'))
    assert "= 500" in msg and "<= 125" in msg


def test_point_id_follows_the_effective_backtest(settings):
    scope = RunScope(CONFIG)
    a = plan_point(settings, {"symbols.*.entry_apr": 0.1}, 0, scope)
    b = plan_point(settings, {"symbols.*.entry_apr": 0.1}, 7, scope)
    c = plan_point(settings, {"symbols.*.entry_apr": 0.11}, 0, scope)
    d = plan_point(settings, {"symbols.*.entry_apr": 0.1}, 0, scope.with_window("2023-01-01", "2023-02-01"))
    assert a.point_id == b.point_id and len({a.point_id, c.point_id, d.point_id}) == 3
    assert a.data_path == (REPO / "backtests/data/binance").resolve() and (a.start, a.end) == ("2022-01-01", "2024-01-01")
    with pytest.raises(PointErrors):
        plan_point(settings, {"symbols.*.exit_apr": 1.0}, 0, scope)


def test_walkforward_windows():
    w = parse_window("2022-01-01..2023-01-01", "--train")
    assert (w.start, w.end) == ("2022-01-01", "2023-01-01")
    for bad in ("2022-01-01", "2023-01-01..2022-01-01", "x..y"):
        with pytest.raises(ConfigError):
            parse_window(bad, "--train")


@pytest.mark.parametrize("grid_body, extra, expected", [
    ('"symbols.*.entry_aprr" = [0.02]\n', [], "unknown key"),
    ('"symbols.*.leverage" = [2, 500]\n', [], "<= 125"),
    ('"symbols.*.entry_apr" = [0.02]\n', ["--objective", "total.pnl"], "not a results column"),
    ('"symbols.*.entry_apr" = {low = 0.0, high = 0.1}\n', [], "need --search optuna"),
    ('"symbols.*.entry_apr" = [0.02]\n', ["--train", "2022-01-01..2023-01-01"], "needs both"),
    ('"symbols.*.entry_apr" = [0.02]\n', ["--data", "no/such/folder"], "data folder not found"),
])
def test_cli_refuses_before_anything_runs(tmp_path, capsys, grid_body, extra, expected):
    out = tmp_path / "out"
    rc = main(["sweep", "--config", str(CONFIG), "--env-file", str(tmp_path / "none.env"),
               "--grid", str(grid_file(tmp_path, grid_body)), "--out", str(out), *extra])
    assert rc == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()  # nothing ran: no output folder, no Ray started
    import sys

    if "ray" in sys.modules:
        assert not sys.modules["ray"].is_initialized()
