"""Run the backtests whose outputs must not change with the engine's event stream, and compare two sets of outputs
byte for byte (every CSV and summary.json).

    python benchmarks/output_identity.py run OUT [--every-path]  # the eight runs into OUT/<name>/
    python benchmarks/output_identity.py compare A B              # exit 1 and list what differs

`run` uses the default event stream (`backtest.stream`: gated); --every-path replays every bar's intra-hour path
(`run_prepared(full_paths=True)`): both must give the same outputs byte for byte, and the same as the code before a
change to the stream (run A with the old checkout, B with the new, compare).

The runs: the quick start (config/basisbot.toml), cross margin at 5x with and without the guard (January 2023: the
guard acts; without it positions are liquidated), isolated 5x without the guard through 2023 (liquidations), a
[portfolio] capital budget over four symbols (2023-01 to 2023-05), and on OKX: always-in at 2x over the whole bundled window on
the symbols with bundled OKX tiers (BTC, SOL), and 5x isolated through 2022 with and without the guard (liquidations, margin added).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"
OKX_DATA = REPO / "backtests" / "data" / "okx"


def _five_x(guard: bool, mode: str, end: str) -> str:
    text = f'[backtest]\ndata = "{DATA}"\nstart = 2023-01-01\nend = {end}\n'
    for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        text += (f'[symbols.{s}]\nenabled = true\nnotional_usdt = 20000\nleverage = 5\nmargin_mode = "{mode}"\n'
                 f"entry_apr = -1000\nexit_apr = -2000\n[symbols.{s}.guard]\nenabled = {str(guard).lower()}\n")
    return text


def _okx(symbols, leverage: int, guard: bool, start: str, end: str) -> str:
    text = f'[exchange]\nname = "okx"\n[backtest]\ndata = "{OKX_DATA}"\nstart = {start}\nend = {end}\n'
    for s in symbols:
        text += (f"[symbols.{s}]\nenabled = true\nnotional_usdt = 10000\nleverage = {leverage}\n"
                 f"entry_apr = -1000\nexit_apr = -2000\n[symbols.{s}.guard]\nenabled = {str(guard).lower()}\n")
    return text


def configs() -> dict[str, str]:
    budget = (f'[backtest]\ndata = "{DATA}"\nstart = "2023-01-01"\nend = "2023-05-01"\n'
              "[portfolio]\ncapital_usdt = 30000\nmax_symbols = 2\ncompounding = true\n")
    for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "AVAXUSDT"):
        budget += f"[symbols.{s}]\nnotional_usdt = 10000\nleverage = 3\n"
    return {
        "quickstart": (REPO / "config" / "basisbot.toml").read_text().replace(
            'data = "backtests/data/binance"', f'data = "{DATA}"'),
        "cross_guard": _five_x(True, "cross", "2023-02-01"),
        "cross_noguard": _five_x(False, "cross", "2023-02-01"),
        "isolated_liq": _five_x(False, "isolated", "2024-01-01"),
        "budget": budget,
        "okx_always_in": _okx(("BTCUSDT", "SOLUSDT"), 2, False, "2022-03-01", "2023-12-31"),
        "okx_5x": _okx(("BTCUSDT", "SOLUSDT"), 5, False, "2022-03-01", "2023-01-01"),
        "okx_5x_guard": _okx(("BTCUSDT", "SOLUSDT"), 5, True, "2022-03-01", "2023-01-01"),
    }


def run(out: Path, every_path: bool = False) -> None:
    import functools

    import basisbot.backtest.run as backtest_run
    from basisbot.cli import main

    if every_path:
        backtest_run.run_prepared = functools.partial(backtest_run.run_prepared, full_paths=True)

    out.mkdir(parents=True, exist_ok=True)
    for name, text in configs().items():
        cfg = out / f"{name}.toml"
        cfg.write_text(text)
        rc = main(["backtest", "--config", str(cfg), "--out", str(out / name), "--quiet"])
        if rc != 0:
            raise SystemExit(f"{name}: backtest exit status {rc}")
        print(f"{name}: done", flush=True)


def compare(a: Path, b: Path) -> int:
    bad = 0
    for name in configs():
        files = sorted(p.name for p in (a / name).iterdir() if p.suffix == ".csv" or p.name == "summary.json")
        for f in files:
            same = (a / name / f).read_bytes() == (b / name / f).read_bytes() if (b / name / f).exists() else False
            if not same:
                bad += 1
                print(f"DIFF {name}/{f}")
        print(f"{name}: {len(files)} files compared")
    print("identical" if not bad else f"{bad} file(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "run" and sys.argv[3:] in ([], ["--every-path"]):
        run(Path(sys.argv[2]), every_path=len(sys.argv) == 4)
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
