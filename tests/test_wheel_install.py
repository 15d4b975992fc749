"""The wheel installs anywhere: built from this checkout, installed into a fresh venv in a temporary folder outside
the repository, then `basisbot config check` and a one-month backtest run from another temporary folder with a
config that names no data folder (the bundled data is package data). The backtest's figures must be those of the
same config run from the source checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
[backtest]
start = 2022-03-01
end = 2022-04-01

[symbols.BTCUSDT]
notional_usdt = 20000
leverage = 3
"""


BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)  # the interpreter this venv was made from


def _uv_command() -> list[str] | None:
    """uv as scripts/setup.sh installs it (a module of the base interpreter), else on PATH."""
    for py in (sys.executable, BASE_PYTHON):
        if subprocess.run([py, "-m", "uv", "--version"], capture_output=True).returncode == 0:
            return [py, "-m", "uv"]
    found = shutil.which("uv")
    return [found] if found else None


UV = _uv_command()


def _uv(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*UV, *args], capture_output=True, text=True, **kw)


def _env() -> dict[str, str]:
    """No variable that would point the installed package back at this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("BASISBOT_")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO)))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The `basisbot` entry point of a fresh venv holding only the wheel and its dependencies."""
    assert UV is not None, "uv not found (scripts/setup.sh installs it: python3.12 -m pip install uv)"
    root = tmp_path_factory.mktemp("wheel")
    assert not root.resolve().is_relative_to(REPO)
    built = _uv("build", "--wheel", "--out-dir", str(root / "dist"), str(REPO), env=_env())
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("basisbot-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert {n.split("/")[0] for n in names} == {"basisbot", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1]
                                               + ".dist-info"}, "only basisbot/ (strategies inside it) is installed"
    for must in ("basisbot/strategies/basis_carry.py", "basisbot/data/bundled_market/SOURCES.md",
                 "basisbot/data/bundled_market/binance/BTCUSDT_1h_2022-2023.parquet",
                 "basisbot/venues/binance/reference_data/leverage_brackets_all.json",
                 "basisbot/venues/binance/reference_data/fapi_v1_exchangeInfo_2021-07-21.json",
                 "basisbot/venues/binance/reference_data/fapi_v1_exchangeInfo_ccxt_2023.json"):
        assert must in names

    venv = root / "venv"
    made = _uv("venv", "-q", "--python", BASE_PYTHON, str(venv), env=_env())
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    # the dependencies come from uv's cache when it holds them (offline), else from the registry
    for extra in (["--offline"], []):
        done = _uv("pip", "install", "-q", "--python", str(py), *extra, str(wheel), env=_env())
        if done.returncode == 0:
            break
    assert done.returncode == 0, done.stderr
    exe = venv / "bin" / "basisbot"
    assert exe.is_file()
    return exe


def _run(cmd: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=_env(), timeout=300)


def _figures(summary: dict) -> dict:
    """summary.json without the data folder's path (the package's location differs between the two installs)."""
    return {k: v for k, v in summary.items() if k != "data"}


def test_installed_wheel_checks_config_and_backtests_on_bundled_data(installed: Path, tmp_path: Path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "c.toml").write_text(CONFIG, encoding="utf-8")

    check = _run([installed, "config", "check", "--config", "c.toml"], work)
    assert check.returncode == 0, check.stderr
    assert "# OK: 1 symbol(s) configured, enabled: BTCUSDT" in check.stdout
    assert "Traceback" not in check.stderr

    bt = _run([installed, "backtest", "--config", "c.toml", "--out", "out", "--quiet"], work)
    assert bt.returncode == 0, bt.stderr
    summary = json.loads((work / "out" / "summary.json").read_text())
    data = Path(summary["data"])
    assert data.name == "binance" and "site-packages" in data.parts and not data.is_relative_to(REPO)
    total = summary["total"]
    assert total["settlements"] > 0 and total["entries"] >= 1
    assert total["funding_pnl"] != 0 and abs(total["reconciliation_error"]) < 0.01
    with open(work / "out" / "funding.csv") as f:
        rows = f.read().splitlines()
    assert len(rows) > 1  # header plus settlements

    # the same config from the source checkout: the same figures, file for file
    here = tmp_path / "checkout"
    here.mkdir()
    (here / "c.toml").write_text(CONFIG, encoding="utf-8")
    ref = _run([sys.executable, "-m", "basisbot.cli", "backtest", "--config", "c.toml", "--out", "out", "--quiet"],
               here)
    assert ref.returncode == 0, ref.stderr
    assert _figures(json.loads((here / "out" / "summary.json").read_text())) == _figures(summary)
    for name in ("funding.csv", "trades.csv", "equity.csv"):
        assert (here / "out" / name).read_bytes() == (work / "out" / name).read_bytes(), name


def test_installed_wheel_missing_bundled_data_is_a_clear_error(installed: Path, tmp_path: Path):
    """Without the bundled market data (a stripped install), the backtest says what is missing and how to supply
    data; the error names the folder and --data, never a traceback."""
    site = installed.parent.parent / "lib"
    (bundle,) = site.glob("python3.*/site-packages/basisbot/data/bundled_market/binance")
    hidden = bundle.with_name("binance.hidden")
    (tmp_path / "c.toml").write_text(CONFIG, encoding="utf-8")
    bundle.rename(hidden)
    try:
        bt = _run([installed, "backtest", "--config", "c.toml", "--out", "out", "--quiet"], tmp_path)
    finally:
        hidden.rename(bundle)
    assert bt.returncode == 2
    assert "Traceback" not in bt.stderr
    assert str(bundle) in bt.stderr and "--data DIR" in bt.stderr


def test_installed_wheel_unreadable_brackets_is_a_clear_error(installed: Path, tmp_path: Path):
    """A bundled reference file that cannot be read: the error names it and the flag that supplies one."""
    site = installed.parent.parent / "lib"
    (ref,) = site.glob("python3.*/site-packages/basisbot/venues/binance/reference_data/leverage_brackets_all.json")
    saved = tmp_path / "saved.json"
    shutil.copy2(ref, saved)
    (tmp_path / "c.toml").write_text(CONFIG, encoding="utf-8")
    ref.write_text("{not json", encoding="utf-8")
    try:
        check = _run([installed, "config", "check", "--config", "c.toml"], tmp_path)
    finally:
        shutil.copy2(saved, ref)
    assert check.returncode == 2
    assert "Traceback" not in check.stderr
    assert "leverage_brackets_all.json" in check.stderr and "--brackets FILE" in check.stderr
