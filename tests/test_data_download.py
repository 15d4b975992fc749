"""`basisbot data download --exchange binance` against a local mirror of the public dump site (made from the
bundled data with the project's dump writer, with .CHECKSUM files): the folder it fills backtests exactly like the
bundled data, a second run fetches no zip, and missing months, missing symbols and corrupt zips are named with a
non-zero exit."""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import json
import re
from pathlib import Path

import aiohttp
import pytest

from basisbot.cli import build_parser, main
from basisbot.data.download.command import download_main
from basisbot.data.market_data import available_symbols, detect_layout, load_symbol
from basisbot.sim import SimServer
from tests.helpers.dump_mirror import MirrorServer, build_mirror, split_into_days
from tests.helpers.sim_venue import config as sim_config

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "backtests" / "data" / "binance"
SYMS = ["BTCUSDT", "ETHUSDT"]

CONFIG = """
[backtest]
data = "{data}"
start = 2022-03-01
end = 2022-05-01
spot_balance_usdt = 100000
perp_balance_usdt = 50000
[symbols.BTCUSDT]
enabled = true
notional_usdt = 20000
leverage = 3
[symbols.BTCUSDT.guard]
enabled = true
[symbols.ETHUSDT]
enabled = true
notional_usdt = 20000
leverage = 3
"""


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = build_mirror(tmp_path_factory.mktemp("site"), SYMS, "2022-03-01", "2022-05-01")
    with MirrorServer(root) as server:
        yield server


def download(out: Path, url: str, *extra: str, symbols: str = "BTCUSDT,ETHUSDT", start: str = "2022-03",
             end: str = "2022-04") -> int:
    return main(["data", "download", "--exchange", "binance", "--symbols", symbols, "--start", start, "--end", end,
                 "--out", str(out), "--base-url", url, "--quiet", *extra])


def backtest(tmp: Path, name: str, data: Path) -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(CONFIG.format(data=data))
    out = tmp / name
    assert main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    return out


def test_download_then_backtest_equals_the_bundled_run_and_a_second_run_fetches_nothing(mirror, tmp_path, capsys):
    out = tmp_path / "dl"
    before = len(mirror.requests)
    assert download(out, mirror.url) == 0
    zips = mirror.fetched()[-16:]
    assert len(mirror.fetched()) - 0 >= 16 and len(mirror.requests) - before == 32  # 16 zips + 16 .CHECKSUMs
    assert "16 fetched and verified" in capsys.readouterr().out
    assert detect_layout(out) == "binance_dump" and available_symbols(out) == SYMS
    assert sorted(p.split("/data/", 1)[1] for p in zips) == sorted(
        str(p.relative_to(out)) for p in out.rglob("*.zip"))

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["exchange"] == "binance" and len(manifest["files"]) == 16
    entry = manifest["files"]["futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2022-03.zip"]
    assert entry["rows"] == 93 and entry["month"] == "2022-03" and entry["symbol"] == "BTCUSDT"  # 31 days x 3
    assert entry["sha256"] == hashlib.sha256((out / "futures/um/monthly/fundingRate/BTCUSDT/"
                                              "BTCUSDT-fundingRate-2022-03.zip").read_bytes()).hexdigest()
    assert manifest["files"]["spot/monthly/klines/ETHUSDT/1h/ETHUSDT-1h-2022-04.zip"]["rows"] == 720

    a = backtest(tmp_path, "bundled", BUNDLED)
    b = backtest(tmp_path, "downloaded", out)
    # byte for byte, once the one line that names the data folder says the same
    sa = (a / "summary.json").read_text().replace(f'"data": "{BUNDLED}"', '"data": "D"')
    sb = (b / "summary.json").read_text().replace(f'"data": "{out}"', '"data": "D"')
    assert sa.count('"data": "D"') == 1 and sa == sb
    assert json.loads((b / "summary.json").read_text())["total"]["entries"] >= 2

    async def sim_symbols():  # the local venue replays the folder as it is
        async with SimServer(sim_config(data_dir=out, start="2022-03-10", symbols=None)) as sim:
            async with aiohttp.ClientSession() as s, s.get(sim.url + "/fapi/v1/premiumIndex") as r:
                return sorted(x["symbol"] for x in await r.json())
    assert asyncio.run(sim_symbols()) == SYMS

    n = len(mirror.requests)
    assert download(out, mirror.url) == 0
    assert mirror.requests[n:] == []  # every file is in the manifest and still hashes to it: nothing fetched
    assert "0 fetched and verified, 16 already verified" in capsys.readouterr().out

    # a file damaged on disk is no longer verified: that one (and only that one) is fetched again
    damaged = out / "spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2022-04.zip"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    n = len(mirror.requests)
    assert download(out, mirror.url) == 0
    assert mirror.fetched()[-1].endswith("/BTCUSDT-1h-2022-04.zip") and len(mirror.requests) - n == 2


def test_missing_month_and_unknown_symbol_are_named_with_exit_1(mirror, tmp_path, capsys):
    out = tmp_path / "dl"
    assert download(out, mirror.url, symbols="BTCUSDT,XRPUSDT", end="2022-05") == 1
    err = capsys.readouterr().err
    assert re.search(r"missing: XRPUSDT: the source has none of its files for 2022-03\.\.2022-05", err), err
    for ds in ("spot klines", "USDⓈ-M klines", "mark-price klines", "funding rates"):
        assert f"missing: BTCUSDT {ds} 2022-05: not on the source" in err
    assert "BTCUSDT-1h-2022-05.zip.CHECKSUM answered 404" in err
    assert err.count("\nmissing: ") + err.startswith("missing: ") == 5
    # what was there is kept and verified; nothing half-written
    assert len(list(out.rglob("*.zip"))) == 8 and not list(out.rglob("*.part"))


def test_corrupt_zip_is_fetched_again_once_then_refused(mirror, tmp_path, capsys):
    bad = mirror.root / "data/futures/um/monthly/markPriceKlines/ETHUSDT/1h/ETHUSDT-1h-2022-03.zip"
    good = bad.read_bytes()
    try:
        bad.write_bytes(good[: len(good) // 2])  # truncated: no longer matches its .CHECKSUM
        n = len(mirror.requests)
        out = tmp_path / "dl"
        assert download(out, mirror.url, symbols="ETHUSDT", end="2022-03") == 1
        err = capsys.readouterr().err
        assert "corrupt: ETHUSDT mark-price klines 2022-03:" in err and "refused after a second fetch" in err
        assert "differs from the published .CHECKSUM" in err
        assert mirror.requests[n:].count("/" + str(bad.relative_to(mirror.root))) == 2
        rel = "futures/um/monthly/markPriceKlines/ETHUSDT/1h/ETHUSDT-1h-2022-03.zip"
        assert not (out / rel).exists() and rel not in json.loads((out / "manifest.json").read_text())["files"]
        assert len(list(out.rglob("*.zip"))) == 3  # the three good files of the month are kept
        # a copy on disk that no longer verifies is removed when the source's file is refused, never left to be read
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(good[:100])
        assert download(out, mirror.url, symbols="ETHUSDT", end="2022-03") == 1
        assert not (out / rel).exists()
    finally:
        bad.write_bytes(good)


@pytest.mark.parametrize("argv, needle", [
    (["--symbols", "BTCUSDT", "--start", "2022-13", "--end", "2022-04"], "--start '2022-13' is not a month"),
    (["--symbols", "BTCUSDT", "--start", "2022-04", "--end", "2022-03"], "--end 2022-03 is before --start 2022-04"),
    (["--symbols", "BTC-USD", "--start", "2022-03", "--end", "2022-03"], "BTC-USD not a USDT pair"),
    (["--symbols", "BTCUSDT", "--start", "2022-03", "--end", "2999-01"], "--end 2999-01 is in the future"),
])
def test_bad_input_exits_2_naming_it(tmp_path, capsys, argv, needle):
    rc = main(["data", "download", "--exchange", "binance", "--out", str(tmp_path / "x"), "--quiet", *argv])
    assert rc == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_open_month_comes_from_daily_zips_and_the_funding_api(tmp_path, capsys):
    """On 2022-04-20 the site has April only as daily files (to the 19th) and no funding file: the download joins
    the days into one CSV per dataset and takes April's settlements from GET /fapi/v1/fundingRate."""
    root = build_mirror(tmp_path / "site", ["BTCUSDT"], "2022-03-01", "2022-05-01")
    split_into_days(root, "2022-04")
    for late in root.rglob("*-2022-04-19.zip*"):  # the newest day is not published yet
        late.unlink()
    out = tmp_path / "dl"
    with MirrorServer(root) as server:
        args = build_parser().parse_args(["data", "download", "--exchange", "binance", "--symbols", "BTCUSDT",
                                          "--start", "2022-03", "--end", "2022-04", "--out", str(out),
                                          "--base-url", server.url, "--api-url", server.url, "--quiet"])
        assert download_main(args, today=_dt.date(2022, 4, 20)) == 0
    text = capsys.readouterr().out
    assert "BTCUSDT spot klines 2022-04-19: not yet published" in text
    joined = json.loads((out / "manifest.json").read_text())["files"]["spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2022-04.csv"]
    assert joined["rows"] == 18 * 24 and len(joined["joined_days"]) == 18
    got = load_symbol(out, "BTCUSDT", "2022-03-01", "2022-04-19")
    want = load_symbol(BUNDLED, "BTCUSDT", "2022-03-01", "2022-04-19")
    cols = [c for c in want.bars.columns if c not in ("mark_high", "mark_low")]  # the dump writes mark OHLC = close
    assert got.bars[cols].equals(want.bars[cols])
    assert got.funding["ts"].equals(want.funding["ts"]) and got.funding["rate"].equals(want.funding["rate"])
