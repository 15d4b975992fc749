"""Operator config: loading order, secrets, and refusals that name file, symbol, field, value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from basisbot.cli import main
from basisbot.config.loading import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "basisbot.toml"

GOOD = """
mode = "backtest"
[backtest]
data = "backtests/data/binance"
[symbols.BTCUSDT]
enabled = true
hedge_ratio = 1.0
notional_usdt = 10000
leverage = 3
margin_mode = "isolated"
entry_apr = 0.10
exit_apr = 0.02
[symbols.BTCUSDT.guard]
enabled = true
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for k in list(__import__("os").environ):
        if k.startswith("BASISBOT_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)  # no stray .env


def write(tmp_path: Path, text: str, name: str = "bot.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def check(capsys, path: Path) -> tuple[int, str]:
    rc = main(["config", "check", "--config", str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_example_config_checks_and_shows_sources(capsys, monkeypatch):
    monkeypatch.setenv("BASISBOT_API_KEY", "key-that-must-not-print")
    monkeypatch.setenv("BASISBOT_API_SECRET", "secret-that-must-not-print")
    monkeypatch.setenv("BASISBOT_SYMBOLS__ETHUSDT__LEVERAGE", "2")
    rc, out = check(capsys, EXAMPLE)
    assert rc == 0, out
    assert "key-that-must-not-print" not in out and "secret-that-must-not-print" not in out
    assert "**********" in out
    lines = {l.split()[0]: l for l in out.splitlines() if l and not l.startswith("#")}
    assert "[env:BASISBOT_SYMBOLS__ETHUSDT__LEVERAGE]" in lines["symbols.ETHUSDT.leverage"]
    assert lines["symbols.ETHUSDT.leverage"].split()[1] == "2"
    assert f"[file:{EXAMPLE}]" in lines["symbols.BTCUSDT.hedge_ratio"]
    assert "[default]" in lines["symbols.ETHUSDT.rebalance_tolerance"]


def test_precedence_toml_then_dotenv_then_environment(tmp_path, monkeypatch):
    cfg = write(tmp_path, GOOD)
    (tmp_path / ".env").write_text("BASISBOT_SYMBOLS__BTCUSDT__LEVERAGE=4\nBASISBOT_API_KEY=from-dotenv\n")
    s = load_settings(cfg, env_file=tmp_path / ".env")
    assert s.symbols["BTCUSDT"].leverage == 4
    assert s.api_key.get_secret_value() == "from-dotenv"
    monkeypatch.setenv("BASISBOT_SYMBOLS__BTCUSDT__LEVERAGE", "2")
    s = load_settings(cfg, env_file=tmp_path / ".env")
    assert s.symbols["BTCUSDT"].leverage == 2
    assert "from-dotenv" not in repr(s) and "from-dotenv" not in str(s.model_dump())


def test_credentials_from_other_named_variables(tmp_path, monkeypatch):
    cfg = write(tmp_path, GOOD + '\n[exchange]\napi_key_env = "DESK_KEY"\napi_secret_env = "DESK_SECRET"\n')
    monkeypatch.setenv("DESK_KEY", "k1")
    monkeypatch.setenv("DESK_SECRET", "s1")
    s = load_settings(cfg)
    assert s.api_key.get_secret_value() == "k1" and s.api_secret.get_secret_value() == "s1"


def test_minimal_contract_file_is_valid(tmp_path):
    s = load_settings(write(tmp_path, GOOD))
    assert s.symbols["BTCUSDT"].guard.enabled and s.symbols["BTCUSDT"].min_hold_intervals == 3


BAD_CASES = {
    "unknown key": (GOOD.replace("hedge_ratio = 1.0", "hedge_ratoi = 1.0"), "BTCUSDT", "hedge_ratoi", "unknown key"),
    "wrong type": (GOOD.replace("notional_usdt = 10000", 'notional_usdt = "lots"'), "BTCUSDT", "notional_usdt", "'lots'"),
    "hedge ratio out of range": (GOOD.replace("hedge_ratio = 1.0", "hedge_ratio = 1.7"), "BTCUSDT", "hedge_ratio",
                                 "<= 1.5"),
    "exit above entry": (GOOD.replace("exit_apr = 0.02", "exit_apr = 0.20"), "BTCUSDT", "exit_apr", "0.2"),
    "leverage the venue does not allow": (
        GOOD.replace("leverage = 3", "leverage = 125").replace("notional_usdt = 10000", "notional_usdt = 1000000"),
        "BTCUSDT", "leverage", "at most 75x"),
    "unknown symbol": (GOOD.replace("[symbols.BTCUSDT]", "[symbols.FOOBARUSDT]").replace(
        "[symbols.BTCUSDT.guard]", "[symbols.FOOBARUSDT.guard]"), "FOOBARUSDT", "symbols.FOOBARUSDT", "unknown"),
    "toml syntax error": (GOOD.replace("leverage = 3", "leverage = = 3"), "BTCUSDT", "leverage", "line"),
    "guard ladder out of order": (GOOD + "reduce_distance = 0.2\n", "BTCUSDT", "guard", "reduce_distance"),
    "bad margin mode": (GOOD.replace('"isolated"', '"portfolio"'), "BTCUSDT", "margin_mode", "'isolated' or 'cross'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_config_refused_with_file_symbol_field(case, tmp_path, capsys):
    text, symbol, field, detail = BAD_CASES[case]
    path = write(tmp_path, text)
    rc, out = check(capsys, path)
    assert rc == 2, out
    assert str(path) in out, out
    assert symbol in out, out
    assert field in out, out
    assert detail in out, out
    with pytest.raises(ConfigError):
        load_settings(path)


def test_secret_in_toml_is_refused(tmp_path, capsys):
    rc, out = check(capsys, write(tmp_path, GOOD + '\n[exchange]\napi_key = "abc"\n'))
    assert rc == 2 and "api_key" in out and "environment" in out and "abc" not in out


def test_bad_environment_override_names_the_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BASISBOT_SYMBOLS__BTCUSDT__HEDGE_RATIO", "9")
    rc, out = check(capsys, write(tmp_path, GOOD))
    assert rc == 2
    assert "BASISBOT_SYMBOLS__BTCUSDT__HEDGE_RATIO" in out and "hedge_ratio" in out and "BTCUSDT" in out


def test_missing_file(tmp_path, capsys):
    rc, out = check(capsys, tmp_path / "nope.toml")
    assert rc == 2 and "nope.toml" in out and "not found" in out


def test_live_without_credentials_is_refused_naming_the_variables(capsys):
    rc = main(["live", "--config", str(EXAMPLE)])
    err = capsys.readouterr().err
    assert rc == 2 and "BASISBOT_API_KEY" in err and "BASISBOT_API_SECRET" in err


def test_live_refuses_a_bad_config(tmp_path, capsys):
    rc = main(["live", "--config", str(write(tmp_path, GOOD.replace("hedge_ratio = 1.0", "hedge_ratio = 3")))])
    assert rc == 2 and "hedge_ratio" in capsys.readouterr().err


def test_entry_point_installed_and_exit_status():
    bad = subprocess.run([sys.executable, "-m", "basisbot.cli", "config", "check", "--config", "/nonexistent.toml"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "/nonexistent.toml" in bad.stderr
