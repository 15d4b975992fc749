"""`basisbot scan`: a live scan of the local Binance venue (stock ccxt against `basisbot sim`) ranks its symbols
exactly as a scan of the same data folder over the same window; filters drop what they name; the snippet it
writes passes `basisbot config check`; the pure ranking math on real brackets."""

from __future__ import annotations

import asyncio
import csv
import math
import threading
from pathlib import Path

import pytest

from basisbot.cli import main
from basisbot.core.carry_scan import Candidate, Filters, realised_apr, rejections, tier_capacity
from basisbot.sim import SimServer
from basisbot.venues.binance.reference import bracket_tables
from tests.helpers.sim_venue import DATA, config

SYMS = ["AVAXUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture(scope="module")
def venue():
    """The local Binance venue replaying the bundled data from 2022-06-01, served from a thread of its own."""
    state: dict = {}
    ready = threading.Event()

    async def serve():
        state["stop"] = asyncio.Event()
        async with SimServer(config(symbols=SYMS, start="2022-06-01")) as sim:
            state["url"], state["loop"] = sim.url, asyncio.get_running_loop()
            ready.set()
            await state["stop"].wait()

    th = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    th.start()
    assert ready.wait(60), "local venue did not start"
    yield state["url"]
    state["loop"].call_soon_threadsafe(state["stop"].set)
    th.join(15)


def rows(path: Path) -> dict[str, dict]:
    with path.open() as fh:
        return {r["symbol"]: r for r in csv.DictReader(fh)}


def test_live_scan_of_the_local_venue_equals_the_data_scan_and_its_snippet_passes_config_check(venue, tmp_path,
                                                                                             capsys):
    live, data = tmp_path / "live", tmp_path / "data"
    assert main(["scan", "--exchange", "binance", "--base-url", venue, "--out", str(live), "--top", "2"]) == 0
    assert main(["scan", "--exchange", "binance", "--data", str(DATA), "--end", "2022-06-01", "--out",
                 str(data), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "4 USDT perpetuals, 30-day window; notional 20000 USDT at 3x" in out
    a, b = rows(live / "scan.csv"), rows(data / "scan.csv")
    assert sorted(a) == SYMS
    for sym in SYMS:  # the venue's 24 h ticker volume is its own computation: everything else is the same data
        for col in ("rank", "passed", "funding_apr", "positive_share", "settlements", "capacity_usdt"):
            assert a[sym][col] == b[sym][col], (sym, col)
        # the venue serves its candles on its own tick (BTCUSDT's 0.10): the basis' volatility agrees to that rounding
        assert math.isclose(float(a[sym]["basis_vol"]), float(b[sym]["basis_vol"]), rel_tol=1e-3), sym
    assert int(a["BTCUSDT"]["settlements"]) == 90  # 30 days of 8-hourly settlements
    assert [s for s in SYMS if a[s]["passed"] == "True"] == ["BTCUSDT", "ETHUSDT"]  # May 2022: SOL, AVAX negative
    assert a["SOLUSDT"]["rejected_because"].startswith("funding APR -12.64% < 0.00%")
    assert a["BTCUSDT"]["current_rate"] != "-"  # from the venue's premiumIndex of all symbols

    snippet = (live / "symbols.toml").read_text()
    assert "[symbols.BTCUSDT]" in snippet and "[symbols.ETHUSDT]" in snippet and "SOLUSDT" not in snippet
    cfg = tmp_path / "scanned.toml"
    cfg.write_text(f'mode = "backtest"\n[backtest]\ndata = "{DATA}"\n\n{snippet}')
    assert main(["config", "check", "--config", str(cfg), "--env-file", str(tmp_path / "none.env")]) == 0
    assert "enabled: BTCUSDT, ETHUSDT" in capsys.readouterr().out


def test_filters_and_top(tmp_path, capsys):
    out = tmp_path / "scan"
    assert main(["scan", "--exchange", "binance", "--data", str(DATA), "--end", "2022-06-01", "--out", str(out),
                 "--min-positive", "0.75", "--leverage", "20", "--notional", "70000000", "--top", "1"]) == 0
    got = rows(out / "scan.csv")
    # at 20x the bundled brackets hold BTC up to 100M USDT, ETH up to 65M
    assert got["BTCUSDT"]["passed"] == "True" and got["BTCUSDT"]["capacity_usdt"] == "100000000"
    assert got["ETHUSDT"]["rejected_because"] == ("positive share 74% < 75%; tier capacity 65,000,000 < notional "
                                                  "70,000,000 USDT at this leverage")
    assert [r["passed"] for r in got.values()].count("True") == 1
    assert "notional 70000000 USDT at 20x" in capsys.readouterr().out
    snippet = (out / "symbols.toml").read_text()
    assert snippet.count("[symbols.") == 1 and "notional_usdt = 70000000\nleverage = 20" in snippet


def test_bad_input_exits_2(tmp_path, capsys):
    assert main(["scan", "--exchange", "binance", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "--data" in (err := capsys.readouterr().err) and "not a folder" in err
    assert main(["scan", "--exchange", "binance", "--data", str(DATA), "--top", "0", "--out", str(tmp_path)]) == 2


def test_ranking_math_on_real_brackets():
    table = bracket_tables()["BTCUSDT"]
    caps = {b.initial_leverage: b.notional_cap for b in table.brackets}
    assert tier_capacity(table, 3) >= tier_capacity(table, 20) >= tier_capacity(table, max(caps))
    assert tier_capacity(table, 1000) == 0.0 and tier_capacity(None, 3) is None
    # 90 settlements of 0.01% over 30 days: 0.9% a month, 10.95% a year
    assert realised_apr([0.0001] * 90, 30 * 24) == pytest.approx(0.1095)
    c = Candidate("X", 90, 0.1095, 0.6, 0.001, 1e6, 5e6)
    assert rejections(c, Filters()) == []
    assert rejections(c, Filters(min_positive_share=0.7, max_basis_vol=0.0005, min_volume_usdt=2e6,
                                 notional_usdt=1e7)) == [
        "positive share 60% < 70%", "basis volatility 0.100% > 0.050%", "24h volume 1,000,000 < 2,000,000 USDT",
        "tier capacity 5,000,000 < notional 10,000,000 USDT at this leverage"]
