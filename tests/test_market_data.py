"""Importers of real Binance data (bundled parquet + funding CSV, and the public-dump layout)."""

from __future__ import annotations

import datetime as dt
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from basisbot.data.dump_writer import export_binance_dump, write_binance_dump
from basisbot.data.market_data import (
    BAR_COLUMNS,
    DataError,
    SymbolData,
    available_symbols,
    detect_layout,
    dump_paths,
    load_symbol,
)

# the package data folder the checkout links to (the loader names files by their resolved path)
BUNDLED = (Path(__file__).resolve().parents[1] / "backtests" / "data" / "binance").resolve()
SYMBOLS = ["AVAXUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"]
H = pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def full() -> dict[str, SymbolData]:
    return {s: load_symbol(BUNDLED, s, allow_perp_gaps=(s == "SOLUSDT")) for s in SYMBOLS}


def _expected_after_dump(a: SymbolData) -> pd.DataFrame:
    """The dump has no mark OHLC for bundled data: mark high/low come back equal to mark_close."""
    bars = a.bars.copy()
    bars["mark_high"] = bars["mark_close"]
    bars["mark_low"] = bars["mark_close"]
    return bars


def _assert_same(a: SymbolData, b: SymbolData) -> None:
    pd.testing.assert_frame_equal(_expected_after_dump(a), b.bars, check_exact=True)
    pd.testing.assert_frame_equal(a.funding, b.funding, check_exact=True)


# ------------------------------------------------------------------------------------------
# bundled layout, real data
# ------------------------------------------------------------------------------------------


def test_layout_and_symbols():
    assert detect_layout(BUNDLED) == "bundled"
    assert available_symbols(BUNDLED) == SYMBOLS


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_bundled_full_load(full, symbol):
    d = full[symbol]
    raw = pd.read_parquet(BUNDLED / f"{symbol}_1h_2022-2023.parquet")
    bars = d.bars
    assert d.symbol == symbol and d.source == str(BUNDLED)
    assert len(bars) == 17_520
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert all(bars[c].dtype == np.float64 for c in bars.columns)
    assert str(bars.index.tz) == "UTC"
    assert bars.index[0] == pd.Timestamp("2022-01-01 00:00", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2023-12-31 23:00", tz="UTC")
    assert (np.diff(bars.index.asi8) == H.value).all()
    # values are the exchange's, untouched
    np.testing.assert_array_equal(bars["mark_close"].to_numpy(), raw["mark_price_binance"].to_numpy())
    np.testing.assert_array_equal(bars["perp_close"].to_numpy(), raw["close_perp_binance"].to_numpy())
    np.testing.assert_array_equal(bars["spot_volume"].to_numpy(), raw["volume_spot_binance"].to_numpy())
    assert bars["mark_high"].isna().all() and bars["mark_low"].isna().all()
    assert bars["mark_close"].notna().all()
    # the one real spot outage hour (2023-03-24 13:00 UTC) stays NaN and is reported
    outage = pd.Timestamp("2023-03-24 13:00", tz="UTC")
    assert bars.loc[outage, ["spot_open", "spot_high", "spot_low", "spot_close", "spot_volume"]].isna().all()
    assert bars.drop(index=outage)[["spot_close"]].notna().all().all()
    spot_notes = [g for g in d.gaps if g.startswith("spot:")]
    parquet = BUNDLED / f"{symbol}_1h_2022-2023.parquet"
    assert spot_notes == [f"spot: 2023-03-24 13:00 missing (file {parquet})"]
    # funding: exact settlement times with the exchange's millisecond jitter
    f = d.funding
    assert list(f.columns) == ["ts", "rate", "interval_hours"]
    assert str(f["ts"].dt.tz) == "UTC"
    assert f["ts"].iloc[0] == pd.Timestamp("2022-01-01 00:00:00.006", tz="UTC")
    assert f["ts"].is_monotonic_increasing and f["ts"].is_unique
    assert f["rate"].dtype == np.float64 and f["interval_hours"].dtype == np.float64
    assert np.isfinite(f["rate"]).all()


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_btc_eth_settle_every_8h(full, symbol):
    f = full[symbol].funding
    assert len(f) == 2190
    assert (f["interval_hours"] == 8.0).all()
    assert full[symbol].gaps == (
        f"spot: 2023-03-24 13:00 missing (file {BUNDLED / f'{symbol}_1h_2022-2023.parquet'})",
    )


def test_sol_two_hour_settlements_during_ftx_collapse(full):
    f = full["SOLUSDT"].funding
    assert len(f) == 2265
    short = f[f["interval_hours"] < 8]
    assert short["ts"].min() >= pd.Timestamp("2022-11-09", tz="UTC")
    assert short["ts"].max() < pd.Timestamp("2022-11-19", tz="UTC")
    assert (short["interval_hours"] == 2.0).sum() == 98
    assert (short["interval_hours"] == 4.0).sum() == 3
    assert set(f["interval_hours"]) == {2.0, 4.0, 8.0}
    two_h = f[f["interval_hours"] == 2.0]
    assert two_h["ts"].iloc[0].floor("h") == pd.Timestamp("2022-11-10 06:00", tz="UTC")
    assert two_h["ts"].iloc[-1].floor("h") == pd.Timestamp("2022-11-18 08:00", tz="UTC")
    # the funding -2% cap was hit during the collapse: real data, not a parsing artefact
    assert f["rate"].min() == pytest.approx(-0.02)


def test_sol_real_perp_hole_is_refused_unless_allowed(full):
    parquet = BUNDLED / "SOLUSDT_1h_2022-2023.parquet"
    with pytest.raises(DataError) as exc:
        load_symbol(BUNDLED, "SOLUSDT")
    msg = str(exc.value)
    assert str(parquet) in msg
    assert "2022-02-26 00:00 to 2022-02-28 23:00" in msg and "2022-04-01 00:00 to 2022-04-02 23:00" in msg
    assert "allow_perp_gaps" in msg
    d = full["SOLUSDT"]
    hole = d.bars["perp_close"].isna()
    assert hole.sum() == 120
    assert d.bars.loc[hole, "mark_close"].notna().all()
    assert (d.bars.loc[hole].index.month.isin([2, 4])).all()
    assert f"perp: 2022-02-26 00:00 to 2022-02-28 23:00 missing, 72 hours (file {parquet})" in d.gaps
    assert f"perp: 2022-04-01 00:00 to 2022-04-02 23:00 missing, 48 hours (file {parquet})" in d.gaps
    # a range that avoids the hole loads without the flag
    ok = load_symbol(BUNDLED, "SOLUSDT", "2022-03-01", "2022-04-01")
    assert ok.bars["perp_close"].notna().all() and len(ok.bars) == 31 * 24


def test_full_bundled_load_is_fast():
    load_symbol(BUNDLED, "BTCUSDT")  # warm up imports / parquet reader
    best = float("inf")
    for _ in range(3):  # best of three: robust to a busy machine
        t0 = time.perf_counter()
        load_symbol(BUNDLED, "ETHUSDT")
        best = min(best, time.perf_counter() - t0)
    assert best < 0.5


# ------------------------------------------------------------------------------------------
# start / end
# ------------------------------------------------------------------------------------------


def test_start_end_filtering(full):
    d = load_symbol(BUNDLED, "BTCUSDT", "2023-03-24 05:00", dt.date(2023, 3, 26))
    assert d.bars.index[0] == pd.Timestamp("2023-03-24 05:00", tz="UTC")  # inclusive start
    assert d.bars.index[-1] == pd.Timestamp("2023-03-25 23:00", tz="UTC")  # exclusive end
    assert len(d.bars) == 43
    pd.testing.assert_frame_equal(d.bars, full["BTCUSDT"].bars.loc[d.bars.index])
    assert d.funding["ts"].iloc[0].floor("h") == pd.Timestamp("2023-03-24 08:00", tz="UTC")
    assert d.funding["ts"].iloc[-1].floor("h") == pd.Timestamp("2023-03-25 16:00", tz="UTC")
    assert len(d.funding) == 5  # 24th 08:00, 16:00; 25th 00:00, 08:00, 16:00
    pd.testing.assert_frame_equal(
        d.funding,
        full["BTCUSDT"].funding[full["BTCUSDT"].funding["ts"].between(
            "2023-03-24 05:00+00:00", "2023-03-26 00:00+00:00", inclusive="left")].reset_index(drop=True))
    assert d.gaps == (f"spot: 2023-03-24 13:00 missing (file {BUNDLED / 'BTCUSDT_1h_2022-2023.parquet'})",)
    # tz-aware bounds are converted; naive ones are UTC
    aware = load_symbol(BUNDLED, "BTCUSDT",
                        dt.datetime(2023, 3, 24, 7, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                        pd.Timestamp("2023-03-26", tz="UTC"))
    pd.testing.assert_frame_equal(aware.bars, d.bars)
    # the first settlement after filtering keeps its true interval (SOL 2 h period)
    sol = load_symbol(BUNDLED, "SOLUSDT", "2022-11-12 07:00", "2022-11-12 12:00")
    assert list(sol.funding["interval_hours"]) == [2.0, 2.0]


def test_start_end_errors():
    with pytest.raises(DataError, match="no perp or mark bars in the requested range"):
        load_symbol(BUNDLED, "BTCUSDT", "2025-01-01", "2025-02-01")
    with pytest.raises(DataError, match="is not after start"):
        load_symbol(BUNDLED, "BTCUSDT", "2023-01-02", "2023-01-01")
    with pytest.raises(DataError, match="not a date/time"):
        load_symbol(BUNDLED, "BTCUSDT", "yesterday-ish")


def test_unknown_symbol_lists_available():
    with pytest.raises(DataError) as exc:
        load_symbol(BUNDLED, "DOGEUSDT")
    assert "DOGEUSDT" in str(exc.value) and "BTCUSDT, ETHUSDT, SOLUSDT" in str(exc.value)


def test_unknown_layout(tmp_path):
    with pytest.raises(DataError, match="unrecognised layout"):
        detect_layout(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        detect_layout(tmp_path / "nope")


# ------------------------------------------------------------------------------------------
# round trip through Binance's public-dump layout
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zipped", [True, False])
def test_round_trip_two_months(tmp_path, zipped):
    a = load_symbol(BUNDLED, "BTCUSDT", "2023-02-15", "2023-04-10 05:00")
    written = write_binance_dump(a, tmp_path, zipped=zipped)
    ext = ".zip" if zipped else ".csv"
    assert all(p.suffix == ext for p in written)
    p = dump_paths(tmp_path, "BTCUSDT")
    for kind in ("spot", "perp", "mark"):
        assert sorted(x.name for x in p[kind].iterdir()) == [f"BTCUSDT-1h-2023-0{m}{ext}" for m in (2, 3, 4)]
    assert sorted(x.name for x in p["funding"].iterdir()) == [
        f"BTCUSDT-fundingRate-2023-0{m}{ext}" for m in (2, 3, 4)]
    assert (tmp_path / "spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2023-03" f"{ext}").is_file()
    assert (tmp_path / "futures/um/monthly/markPriceKlines/BTCUSDT/1h/BTCUSDT-1h-2023-03" f"{ext}").is_file()
    assert detect_layout(tmp_path) == "binance_dump"
    assert available_symbols(tmp_path) == ["BTCUSDT"]
    b = load_symbol(tmp_path, "BTCUSDT")
    _assert_same(a, b)
    assert b.source == str(tmp_path.resolve())
    assert b.gaps == (f"spot: 2023-03-24 13:00 missing (file {p['spot'] / f'BTCUSDT-1h-2023-03{ext}'})",)
    # and filtering the dump equals filtering the bundled data
    c = load_symbol(tmp_path, "BTCUSDT", "2023-03-01", "2023-03-02")
    _assert_same(load_symbol(BUNDLED, "BTCUSDT", "2023-03-01", "2023-03-02"), c)


def test_round_trip_file_formats(tmp_path):
    a = load_symbol(BUNDLED, "ETHUSDT", "2023-01-01", "2023-02-01")
    write_binance_dump(a, tmp_path, zipped=True)
    p = dump_paths(tmp_path, "ETHUSDT")
    with zipfile.ZipFile(p["spot"] / "ETHUSDT-1h-2023-01.zip") as zf:
        assert zf.namelist() == ["ETHUSDT-1h-2023-01.csv"]
        spot = zf.read("ETHUSDT-1h-2023-01.csv").decode().splitlines()
    with zipfile.ZipFile(p["perp"] / "ETHUSDT-1h-2023-01.zip") as zf:
        perp = zf.read("ETHUSDT-1h-2023-01.csv").decode().splitlines()
    with zipfile.ZipFile(p["funding"] / "ETHUSDT-fundingRate-2023-01.zip") as zf:
        fund = zf.read("ETHUSDT-fundingRate-2023-01.csv").decode().splitlines()
    assert len(spot) == 744 and spot[0].split(",")[0] == "1672531200000"  # no header, ms
    assert spot[0].split(",")[6] == "1672534799999"
    assert perp[0].startswith("open_time,open,high,low,close,volume,close_time,")
    assert len(perp) == 745
    assert fund[0] == "calc_time,funding_interval_hours,last_funding_rate"
    assert fund[1].split(",")[:2] == [str(a.funding["ts"].iloc[0].value // 1_000_000), "8"]


def test_round_trip_sol_with_2h_funding_and_perp_hole(tmp_path):
    a = load_symbol(BUNDLED, "SOLUSDT", "2022-11-01", "2022-12-01")
    write_binance_dump(a, tmp_path / "nov", zipped=False)
    _assert_same(a, load_symbol(tmp_path / "nov", "SOLUSDT"))
    hole = load_symbol(BUNDLED, "SOLUSDT", "2022-02-20", "2022-03-03", allow_perp_gaps=True)
    write_binance_dump(hole, tmp_path / "feb", zipped=True)
    with pytest.raises(DataError, match="perp candles missing"):
        load_symbol(tmp_path / "feb", "SOLUSDT")
    b = load_symbol(tmp_path / "feb", "SOLUSDT", allow_perp_gaps=True)
    _assert_same(hole, b)
    assert any(g.startswith("perp: 2022-02-26 00:00 to 2022-02-28 23:00 missing, 72 hours") for g in b.gaps)


def test_export_helper(tmp_path):
    export_binance_dump(BUNDLED, "BTCUSDT", tmp_path, "2022-06-01", "2022-06-03")
    _assert_same(load_symbol(BUNDLED, "BTCUSDT", "2022-06-01", "2022-06-03"),
                 load_symbol(tmp_path, "BTCUSDT"))


def test_csv_beside_zip_is_read_once_and_must_match(tmp_path):
    a = load_symbol(BUNDLED, "BTCUSDT", "2022-06-01", "2022-06-03")
    write_binance_dump(a, tmp_path, zipped=True)
    write_binance_dump(a, tmp_path, zipped=False)  # the "extracted" copies beside the zips
    _assert_same(a, load_symbol(tmp_path, "BTCUSDT"))  # no double counting
    csv = dump_paths(tmp_path, "BTCUSDT")["perp"] / "BTCUSDT-1h-2022-06.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:-1]))  # a truncated extraction
    with pytest.raises(DataError) as exc:
        load_symbol(tmp_path, "BTCUSDT")
    assert str(csv) in str(exc.value) and "differs" in str(exc.value)


# ------------------------------------------------------------------------------------------
# dump quirks: µs spot timestamps from 2025, header vs no header
# ------------------------------------------------------------------------------------------


def _shifted(years: int, start: str, end: str) -> SymbolData:
    """Real BTC bars/funding moved ``years`` later (only to exercise dates past the bundled data)."""
    a = load_symbol(BUNDLED, "BTCUSDT", start, end)
    bars = a.bars.copy()
    bars.index = pd.DatetimeIndex(bars.index + pd.DateOffset(years=years), name=bars.index.name)
    funding = a.funding.copy()
    funding["ts"] = funding["ts"] + pd.DateOffset(years=years)
    return SymbolData(a.symbol, bars, funding, (), a.source)


def test_spot_microseconds_from_2025(tmp_path):
    src = _shifted(2, "2022-12-31 18:00", "2023-01-01 06:00")  # -> 2024-12-31 18:00 .. 2025-01-01 05:00
    assert src.bars.index[0] == pd.Timestamp("2024-12-31 18:00", tz="UTC")
    write_binance_dump(src, tmp_path, zipped=False)
    spot_dir = dump_paths(tmp_path, "BTCUSDT")["spot"]
    # the writer follows Binance: ms in December 2024, µs in January 2025
    dec = (spot_dir / "BTCUSDT-1h-2024-12.csv").read_text().splitlines()
    jan = (spot_dir / "BTCUSDT-1h-2025-01.csv").read_text().splitlines()
    assert dec[0].split(",")[0] == "1735668000000" and dec[0].split(",")[6] == "1735671599999"
    assert jan[0].split(",")[0] == "1735689600000000" and jan[0].split(",")[6] == "1735693199999999"

    # now the same files written by hand, as Binance publishes them (trailing zeros, 12 columns)
    def line(ts: pd.Timestamp, unit: int, row: pd.Series) -> str:
        ot = ts.value // unit
        ct = (ts + H).value // unit - 1
        o, h, lo, c, v = (row[f"spot_{n}"] for n in ("open", "high", "low", "close", "volume"))
        return (f"{ot},{o:.8f},{h:.8f},{lo:.8f},{c:.8f},{v:.8f},{ct},"
                f"{c * v:.8f},1234,{v / 2:.8f},{c * v / 2:.8f},0\n")

    dec_rows = src.bars[src.bars.index < "2025-01-01"]
    jan_rows = src.bars[src.bars.index >= "2025-01-01"]
    (spot_dir / "BTCUSDT-1h-2024-12.csv").write_text(
        "".join(line(t, 1_000_000, r) for t, r in dec_rows.iterrows()))
    (spot_dir / "BTCUSDT-1h-2025-01.csv").write_text(
        "".join(line(t, 1_000, r) for t, r in jan_rows.iterrows()))
    assert (spot_dir / "BTCUSDT-1h-2025-01.csv").read_text().startswith("1735689600000000,")
    b = load_symbol(tmp_path, "BTCUSDT")
    pd.testing.assert_index_equal(b.bars.index, src.bars.index)
    spot_cols = [c for c in BAR_COLUMNS if c.startswith("spot_")]
    np.testing.assert_allclose(b.bars[spot_cols].to_numpy(), src.bars[spot_cols].to_numpy(), rtol=1e-12)
    assert b.gaps == ()


def test_header_or_no_header_both_load(tmp_path):
    a = load_symbol(BUNDLED, "BTCUSDT", "2022-06-01", "2022-06-02")
    write_binance_dump(a, tmp_path, zipped=False)
    p = dump_paths(tmp_path, "BTCUSDT")
    spot = p["spot"] / "BTCUSDT-1h-2022-06.csv"
    spot.write_text("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                    "taker_buy_volume,taker_buy_quote_volume,ignore\n" + spot.read_text())
    for kind in ("perp", "mark"):
        f = p[kind] / "BTCUSDT-1h-2022-06.csv"
        f.write_text(f.read_text().split("\n", 1)[1])
    fund = p["funding"] / "BTCUSDT-fundingRate-2022-06.csv"
    fund.write_text(fund.read_text().split("\n", 1)[1])
    _assert_same(a, load_symbol(tmp_path, "BTCUSDT"))


def test_binance_style_decimals_and_crlf(tmp_path):
    a = load_symbol(BUNDLED, "BTCUSDT", "2022-06-01", "2022-06-02")
    write_binance_dump(a, tmp_path, zipped=False)
    perp = dump_paths(tmp_path, "BTCUSDT")["perp"] / "BTCUSDT-1h-2022-06.csv"
    lines = perp.read_text().splitlines()
    out = [lines[0]]
    for ln in lines[1:]:
        f = ln.split(",")
        f[1:6] = [f"{float(x):.8f}" for x in f[1:6]]
        out.append(",".join(f))
    perp.write_bytes(("\r\n".join(out) + "\r\n\r\n").encode())  # CRLF and a trailing blank line
    _assert_same(a, load_symbol(tmp_path, "BTCUSDT"))


# ------------------------------------------------------------------------------------------
# malformed data: DataError naming file and row
# ------------------------------------------------------------------------------------------


@pytest.fixture
def june(tmp_path) -> tuple[Path, SymbolData]:
    """Two days of real BTC data in the extracted dump layout (small files to corrupt)."""
    a = load_symbol(BUNDLED, "BTCUSDT", "2022-06-01", "2022-06-03")
    write_binance_dump(a, tmp_path, zipped=False)
    return tmp_path, a


def _edit(path: Path, line_no: int, fn) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line_no - 1:line_no] = fn(lines[line_no - 1])
    path.write_text("".join(lines))


def _set_field(col: int, value: str):
    def fn(line: str) -> list[str]:
        f = line.rstrip("\n").split(",")
        f[col] = value
        return [",".join(f) + "\n"]
    return fn


def _raises(root: Path, *fragments: str, **kw) -> str:
    with pytest.raises(DataError) as exc:
        load_symbol(root, "BTCUSDT", **kw)
    msg = str(exc.value)
    for frag in fragments:
        assert frag in msg, msg
    return msg


def _file(root: Path, kind: str, month: str = "2022-06") -> Path:
    name = f"BTCUSDT-fundingRate-{month}.csv" if kind == "funding" else f"BTCUSDT-1h-{month}.csv"
    return dump_paths(root, "BTCUSDT")[kind] / name


# line 10 of a futures file (header on line 1) is the 9th candle: 2022-06-01 08:00
@pytest.mark.parametrize(
    ("col", "value", "what"),
    [
        (2, "abc", "high 'abc' is not a finite number"),
        (4, "", "close '' is not a finite number"),
        (3, "nan", "low 'nan' is not a finite number"),
        (1, "-5", "non-positive price"),
        (3, "99999999", "high 31"),           # low above high
        (4, "1", "close 1.0 outside [low"),
        (5, "-1", "negative volume"),
        (0, "1654070400123", "not on the hour"),
        (0, "1.65407e12", "not an integer epoch timestamp"),
    ],
)
def test_bad_perp_value_names_file_and_row(june, col, value, what):
    root, _ = june
    f = _file(root, "perp")
    _edit(f, 10, _set_field(col, value))
    msg = _raises(root, str(f), "row 10", what)
    if col != 0:
        assert "2022-06-01 08:00" in msg


def test_high_below_low(june):
    root, _ = june
    f = _file(root, "perp")
    def swap(line: str) -> list[str]:
        x = line.rstrip("\n").split(",")
        x[2], x[3] = x[3], x[2]
        return [",".join(x) + "\n"]
    _edit(f, 10, swap)
    _raises(root, str(f), "row 10 (2022-06-01 08:00 UTC)", "< low")


def test_bad_spot_row_counts_lines_without_header(june):
    root, _ = june
    f = _file(root, "spot")
    _edit(f, 10, _set_field(1, "x"))  # spot has no header: line 10 is the 10th candle
    _raises(root, str(f), "row 10", "open 'x'")


def test_wrong_field_count(june):
    root, _ = june
    f = _file(root, "mark")
    _edit(f, 5, lambda line: [line.rstrip("\n") + ",7\n"])
    _raises(root, str(f), "row 5", "13 fields, expected 12")


def test_duplicate_row(june):
    root, _ = june
    f = _file(root, "perp")
    _edit(f, 10, lambda line: [line, line])
    _raises(root, str(f), "row 11", "duplicate open_time", "row 10")


def test_rows_out_of_order(june):
    root, _ = june
    f = _file(root, "mark")
    lines = f.read_text().splitlines(keepends=True)
    lines[9], lines[10] = lines[10], lines[9]
    f.write_text("".join(lines))
    _raises(root, str(f), "row 11", "out of order")


def test_row_outside_its_month(june):
    root, _ = june
    f = _file(root, "perp")
    # 2022-07-01 00:00 in the June file
    _edit(f, 2, _set_field(0, "1656633600000"))
    _edit(f, 2, _set_field(6, "1656637199999"))
    _raises(root, str(f), "row 2", "outside the month 2022-06")


def test_missing_perp_hour(june):
    root, a = june
    f = _file(root, "perp")
    _edit(f, 10, lambda line: [])
    _raises(root, str(f), "perp: 2022-06-01 08:00 missing", "allow_perp_gaps")
    b = load_symbol(root, "BTCUSDT", allow_perp_gaps=True)
    assert b.gaps == (f"perp: 2022-06-01 08:00 missing (file {f})",)
    assert np.isnan(b.bars.loc["2022-06-01 08:00", "perp_close"])
    assert b.bars["perp_close"].isna().sum() == 1


def test_missing_mark_hour_is_always_an_error(june):
    root, _ = june
    f = _file(root, "mark")
    _edit(f, 10, lambda line: [])
    _edit(f, 10, lambda line: [])
    _raises(root, str(f), "mark: 2022-06-01 08:00 to 2022-06-01 09:00 missing, 2 hours", allow_perp_gaps=True)


def test_missing_spot_hour_is_a_gap(june):
    root, a = june
    f = _file(root, "spot")
    _edit(f, 10, lambda line: [])  # 2022-06-01 09:00 (no header)
    b = load_symbol(root, "BTCUSDT")
    assert b.gaps == (f"spot: 2022-06-01 09:00 missing (file {f})",)
    assert np.isnan(b.bars.loc["2022-06-01 09:00", "spot_close"])
    hour = pd.Timestamp("2022-06-01 09:00", tz="UTC")
    pd.testing.assert_frame_equal(b.bars.drop(index=hour), _expected_after_dump(a).drop(index=hour))


def test_missing_month_file(tmp_path):
    a = load_symbol(BUNDLED, "BTCUSDT", "2022-05-31", "2022-06-02")
    write_binance_dump(a, tmp_path, zipped=True)
    gone = dump_paths(tmp_path, "BTCUSDT")["spot"] / "BTCUSDT-1h-2022-05.zip"
    gone.unlink()
    _raises(tmp_path, "no spot kline file for 2022-05", str(gone))


def test_bad_funding_rate(june):
    root, _ = june
    f = _file(root, "funding")
    _edit(f, 3, _set_field(2, "inf"))
    _raises(root, str(f), "row 3", "last_funding_rate 'inf' is not a finite number")


def test_duplicate_funding_settlement(june):
    root, _ = june
    f = _file(root, "funding")
    _edit(f, 3, lambda line: [line, line.replace(line.split(",")[0], str(int(line.split(",")[0]) + 7))])
    _raises(root, str(f), "row 4", "duplicate settlement")


def test_missing_funding_settlements(june):
    root, _ = june
    f = _file(root, "funding")
    _edit(f, 3, lambda line: [])  # drop 2022-06-01 08:00: 16 h without settlement
    _raises(root, str(f), "row 3", "no funding settlement for 16.0 h")
    f.unlink()
    _raises(root, "BTCUSDT is incomplete", "funding")


def test_unknown_symbol_in_dump(june):
    root, _ = june
    with pytest.raises(DataError) as exc:
        load_symbol(root, "ETHUSDT")
    assert "ETHUSDT" in str(exc.value) and "available: BTCUSDT" in str(exc.value)


def test_bad_zip(june):
    root, _ = june
    z = _file(root, "perp").with_suffix(".zip")
    z.write_bytes(b"not a zip")
    _raises(root, str(z), "cannot read zip")


# ------------------------------------------------------------------------------------------
# malformed bundled files
# ------------------------------------------------------------------------------------------


@pytest.fixture
def small_bundled(tmp_path) -> Path:
    raw = pd.read_parquet(BUNDLED / "BTCUSDT_1h_2022-2023.parquet").iloc[:48]
    raw.to_parquet(tmp_path / "BTCUSDT_1h_2022.parquet")
    lines = (BUNDLED / "BTCUSDT_funding_2022-2023.csv").read_text().splitlines(keepends=True)[:8]
    (tmp_path / "BTCUSDT_funding_2022.csv").write_text("".join(lines))
    return tmp_path


def test_small_bundled_loads(small_bundled):
    d = load_symbol(small_bundled, "BTCUSDT")
    assert len(d.bars) == 48 and len(d.funding) == 7 and d.gaps == ()


def test_bundled_high_below_low(small_bundled):
    path = small_bundled / "BTCUSDT_1h_2022.parquet"
    raw = pd.read_parquet(path)
    raw.iloc[9, raw.columns.get_loc("high_perp_binance")] = raw["low_perp_binance"].iloc[9] - 1
    raw.to_parquet(path)
    _raises(small_bundled, str(path), "row 10 (2022-01-01 09:00 UTC)", "high", "< low")


def test_bundled_partly_empty_row(small_bundled):
    path = small_bundled / "BTCUSDT_1h_2022.parquet"
    raw = pd.read_parquet(path)
    raw.iloc[4, raw.columns.get_loc("close_spot_binance")] = np.nan
    raw.to_parquet(path)
    _raises(small_bundled, str(path), "row 5", "spot columns partly empty (close_spot_binance)")


def test_bundled_missing_row_and_duplicate(small_bundled):
    path = small_bundled / "BTCUSDT_1h_2022.parquet"
    raw = pd.read_parquet(path)
    raw.drop(index=raw.index[20]).to_parquet(path)
    _raises(small_bundled, str(path), "perp: 2022-01-01 20:00 missing")
    pd.concat([raw.iloc[:21], raw.iloc[20:]]).to_parquet(path)
    _raises(small_bundled, str(path), "row 22", "duplicate timestamp")


def test_bundled_bad_funding_row(small_bundled):
    path = small_bundled / "BTCUSDT_funding_2022.csv"
    _edit(path, 4, _set_field(1, "0.0001x"))
    _raises(small_bundled, str(path), "row 4", "funding_rate '0.0001x'")
    _edit(path, 4, _set_field(1, "0.0001"))
    _edit(path, 5, _set_field(0, "2022-01-02 08:00:00.000+00:00"))
    _raises(small_bundled, str(path), "row 5", "duplicate settlement time")


def test_bundled_incomplete_symbol(small_bundled):
    (small_bundled / "BTCUSDT_funding_2022.csv").rename(small_bundled / "elsewhere.csv")
    _raises(small_bundled, "BTCUSDT is incomplete", "funding")


def test_copy_of_real_folder_loads(tmp_path):
    for s in SYMBOLS:
        for p in BUNDLED.glob(f"{s}_*"):
            shutil.copy(p, tmp_path / p.name)
    assert available_symbols(tmp_path) == SYMBOLS
