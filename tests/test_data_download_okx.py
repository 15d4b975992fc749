"""`basisbot data download --exchange okx` through the stock ccxt okx client against a local stand-in of OKX's v5
REST endpoints serving the real OKX data: the files it writes hold exactly the served candles, mark prices and
settlements, in the layout of the OKX data the project reads; a second run asks for nothing; an unlisted symbol
and a month OKX has no data for are named with exit 1."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import ccxt.async_support as ccxt_async
import pandas as pd
import pytest

import basisbot.ops.scan as scan
from basisbot.cli import build_parser, main
from basisbot.data.download.command import download_main
from basisbot.exchange.ccxt_setup import non_local_urls, use_local_venue
from tests.helpers.okx_fake import OkxFake, okx_data_dir

DATA = okx_data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason="no OKX data (backtests/data/okx or the shared data folder)")


def client_for(url: str):
    def make(base_url):
        assert base_url == url
        ex = ccxt_async.okx({"enableRateLimit": False, "options": {"fetchMarkets": {"types": ["spot", "swap"]}}})
        use_local_venue(ex, base_url)
        assert non_local_urls(ex, base_url) == []
        return ex
    return make


def download(out: Path, url: str, symbols: str, start: str, end: str) -> int:
    args = build_parser().parse_args(["data", "download", "--exchange", "okx", "--symbols", symbols, "--start",
                                      start, "--end", end, "--out", str(out), "--base-url", url, "--quiet"])
    return download_main(args, okx_client=client_for(url))


@pytest.fixture(scope="module")
def okx():
    with OkxFake(DATA, ["BTCUSDT", "ETHUSDT"], "2022-03-01", "2022-05-01") as server:
        yield server


def test_okx_download_writes_the_served_data_in_the_okx_layout(okx, tmp_path, capsys):
    out = tmp_path / "okx"
    assert download(out, okx.url, "BTCUSDT,ETHUSDT", "2022-03", "2022-04") == 0
    assert "4 fetched and verified" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}_1h_2022-0{m}.parquet" for s in ("BTCUSDT", "ETHUSDT") for m in (3, 4)]
        + [f"{s}_funding_2022-0{m}.csv" for s in ("BTCUSDT", "ETHUSDT") for m in (3, 4)] + ["manifest.json"])
    for sym in ("BTCUSDT", "ETHUSDT"):
        want = pd.read_parquet(next(DATA.glob(f"{sym}_1h_*.parquet")))
        want = want[(want.index >= "2022-03-01") & (want.index < "2022-05-01")]
        got = pd.concat([pd.read_parquet(out / f"{sym}_1h_2022-0{m}.parquet") for m in (3, 4)])
        assert list(got.columns) == list(want.columns) and got.index.name == "timestamp"
        assert got.index.dtype == want.index.dtype and got.index.equals(want.index)
        same = [c for c in want.columns if not c.startswith(("vwap", "open_interest", "funding_rate_raw"))]
        pd.testing.assert_frame_equal(got[same], want[same], check_exact=True)
        # the last settled rate forward-filled hourly, rebuilt from the settlements, is the source's column
        assert (got["funding_rate_raw_okx"] == want["funding_rate_raw_okx"]).all()
        fund = pd.concat([pd.read_csv(out / f"{sym}_funding_2022-0{m}.csv") for m in (3, 4)], ignore_index=True)
        src = pd.read_csv(next(DATA.glob(f"{sym}_funding_*.csv")))
        src = src[(src["datetime"] >= "2022-03-01") & (src["datetime"] < "2022-05-01")].reset_index(drop=True)
        assert list(fund.columns) == ["datetime", "funding_rate"] and len(fund) == len(src) == 183
        assert (pd.to_datetime(fund["datetime"]) == pd.to_datetime(src["datetime"])).all()
        assert (fund["funding_rate"] == src["funding_rate"]).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["exchange"] == "okx" and manifest["files"]["BTCUSDT_1h_2022-03.parquet"]["rows"] == 744

    n = len(okx.requests)
    assert download(out, okx.url, "BTCUSDT,ETHUSDT", "2022-03", "2022-04") == 0
    assert [r for r in okx.requests[n:] if "instruments" not in r] == []  # only the market list is read again


def test_okx_unlisted_symbol_and_empty_month_are_named(okx, tmp_path, capsys):
    out = tmp_path / "okx"  # through the command line's own client (ccxt's rate limiter on)
    assert main(["data", "download", "--exchange", "okx", "--symbols", "BTCUSDT,XRPUSDT", "--start", "2022-04",
                 "--end", "2022-05", "--out", str(out), "--base-url", okx.url, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "missing: XRPUSDT: OKX lists no XRP/USDT:USDT (USDT swap) and no XRP/USDT (spot)" in err
    assert "missing: BTCUSDT 2022-05: OKX returned no swap candles, no spot candles" in err
    assert sorted(p.name for p in out.glob("*_2022-*")) == ["BTCUSDT_1h_2022-04.parquet",
                                                            "BTCUSDT_funding_2022-04.csv"]


def test_okx_live_scan_of_the_stand_in_equals_the_scan_of_its_data(okx, tmp_path, capsys, monkeypatch):
    """`basisbot scan --exchange okx` through ccxt against the stand-in (its clock: 2022-05-01 00:00) ranks BTC and
    ETH exactly as a scan of the OKX data folder over the same 30 days (April 2022)."""
    real = scan._client
    monkeypatch.setattr(scan, "_client", lambda exchange, url: client_for(url)(url) if exchange == "okx"
                        else real(exchange, url))
    live, data = tmp_path / "live", tmp_path / "data"
    assert main(["scan", "--exchange", "okx", "--base-url", okx.url, "--out", str(live)]) == 0
    folder = tmp_path / "okx"
    folder.mkdir()
    for sym in ("BTCUSDT", "ETHUSDT"):
        for pattern in (f"{sym}_1h_*.parquet", f"{sym}_funding_*.csv"):
            src = next(DATA.glob(pattern))
            (folder / src.name).symlink_to(src)
    assert main(["scan", "--exchange", "okx", "--data", str(folder), "--end", "2022-05-01", "--out", str(data)]) == 0
    out = capsys.readouterr().out
    assert "2 USDT perpetuals, 30-day window" in out
    with (live / "scan.csv").open() as fa, (data / "scan.csv").open() as fb:
        a = {r["symbol"]: r for r in csv.DictReader(fa)}
        b = {r["symbol"]: r for r in csv.DictReader(fb)}
    assert sorted(a) == ["BTCUSDT", "ETHUSDT"]
    for sym in a:
        for col in ("funding_apr", "positive_share", "settlements", "basis_vol"):
            assert a[sym][col] == b[sym][col], (sym, col)
        assert a[sym]["settlements"] == "90" and a[sym]["capacity_usdt"] == "-" and a[sym]["current_rate"] != "-"
        assert float(a[sym]["volume_usdt_24h"]) > 0


def test_an_okx_download_is_a_folder_the_okx_backtest_reads_as_the_bundled_data(tmp_path):
    """The per-month files of a download backtest exactly as the bundled OKX data of the same months (the one
    difference in summary.json is the data folder it names)."""
    from basisbot.backtest.results import write_results
    from basisbot.backtest.run import run_backtest
    from basisbot.config.loading import load_settings

    with OkxFake(DATA, ["SOLUSDT"], "2022-03-01", "2022-05-01") as fake:
        out = tmp_path / "okx"
        assert download(out, fake.url, "SOLUSDT", "2022-03", "2022-04") == 0
    cfg = tmp_path / "c.toml"
    cfg.write_text('[exchange]\nname = "okx"\n[backtest]\nstart = 2022-03-01\nend = 2022-05-01\n'
                   '[symbols.SOLUSDT]\nnotional_usdt = 5000\nleverage = 2\nentry_apr = -1000\nexit_apr = -2000\n'
                   '[symbols.SOLUSDT.guard]\nenabled = false\n')
    settings = load_settings(cfg, env_file=None)
    results = {}
    for name, data in (("downloaded", out), ("bundled", None)):
        res = run_backtest(settings, config_path=cfg, data_dir=data)
        folder = tmp_path / name
        write_results(res, folder)
        results[name] = folder
    summaries = [json.loads((results[n] / "summary.json").read_text()) for n in ("downloaded", "bundled")]
    for s in summaries:
        s.pop("data")
    assert summaries[0] == summaries[1]
    assert summaries[0]["symbols"]["SOLUSDT"]["settlements"] > 100
    for name in ("funding.csv", "trades.csv", "equity.csv"):
        assert (results["downloaded"] / name).read_bytes() == (results["bundled"] / name).read_bytes(), name


def test_an_okx_download_from_the_local_okx_venue_backtests_as_the_bundled_data(tmp_path):
    """`basisbot data download --exchange okx` against `basisbot sim --exchange okx` (the project's own OKX venue,
    replaying the bundled data; candles served once their hour has closed on the venue's clock) writes a folder the
    OKX backtest runs on, with the results of the bundled data of the same months."""
    import socket
    import subprocess
    import sys
    import time

    from basisbot.backtest.results import write_results
    from basisbot.backtest.run import run_backtest
    from basisbot.config.loading import load_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    venue = subprocess.Popen([sys.executable, "-m", "basisbot.cli", "sim", "--exchange", "okx", "--port", str(port),
                              "--data", str(DATA), "--start", "2022-05-02", "--symbols", "SOLUSDT", "--api-key", "k",
                              "--api-secret", "s", "--api-passphrase", "p"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while "listening" not in (venue.stdout.readline() or ""):
            assert venue.poll() is None and time.monotonic() < deadline, "the local OKX venue did not start"
        out = tmp_path / "okx"
        assert download(out, f"http://127.0.0.1:{port}", "SOLUSDT", "2022-03", "2022-04") == 0
    finally:
        venue.terminate()
        venue.wait(10)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[exchange]\nname = "okx"\n[backtest]\nstart = 2022-03-01\nend = 2022-05-01\n'
                   '[symbols.SOLUSDT]\nnotional_usdt = 5000\nleverage = 2\nentry_apr = -1000\nexit_apr = -2000\n'
                   '[symbols.SOLUSDT.guard]\nenabled = false\n')
    settings = load_settings(cfg, env_file=None)
    summaries = []
    for name, data in (("downloaded", out), ("bundled", None)):
        folder = tmp_path / name
        write_results(run_backtest(settings, config_path=cfg, data_dir=data), folder)
        summary = json.loads((folder / "summary.json").read_text())
        summary.pop("data")
        summaries.append(summary)
    assert summaries[0]["symbols"]["SOLUSDT"]["settlements"] > 100
    assert summaries[0]["symbols"] == summaries[1]["symbols"] and summaries[0]["total"] == summaries[1]["total"]
    assert ((tmp_path / "downloaded" / "funding.csv").read_bytes()
            == (tmp_path / "bundled" / "funding.csv").read_bytes())
