"""The OKX bundled layout loads into the same SymbolData as Binance's; a venue mismatch is a clear error."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from basisbot.data.market_data import BAR_COLUMNS, DataError, available_symbols, data_venue, load_symbol

DATA = Path(__file__).resolve().parents[1] / "backtests" / "data"
OKX, BINANCE = DATA / "okx", DATA / "binance"


def test_okx_folder_loads_like_binance():
    assert data_venue(OKX) == "okx" and data_venue(BINANCE) == "binance"
    assert available_symbols(OKX) == ["AVAXUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"]
    d = load_symbol(OKX, "ETHUSDT", "2022-03-01", "2022-04-01", exchange="okx")
    assert tuple(d.bars.columns) == BAR_COLUMNS and len(d.bars) == 31 * 24 and d.gaps == ()
    raw = pd.read_parquet(OKX / "ETHUSDT_1h_2022-2023.parquet").loc["2022-03-01":"2022-03-31 23:00"]
    first = d.bars.iloc[0]
    assert first.perp_close == raw.close_perp_okx.iloc[0] and first.mark_close == raw.mark_price_okx.iloc[0]
    # swap volume in contracts x 0.1 ETH = base units, comparable with spot volume
    assert d.bars.perp_volume.tolist() == pytest.approx((raw.volume_perp_okx * 0.1).tolist())
    assert len(d.funding) == 31 * 3 and set(d.funding.interval_hours) == {8.0}


def test_okx_data_with_binance_name_and_reverse_is_clear():
    with pytest.raises(DataError, match=r"this is okx data .* exchange is 'binance': set \[exchange\] name = \"okx\""):
        load_symbol(OKX, "BTCUSDT", exchange="binance")
    with pytest.raises(DataError, match=r"this is binance data .* exchange is 'okx'"):
        load_symbol(BINANCE, "BTCUSDT", exchange="okx")


def test_unknown_okx_symbol_needs_contract_value(tmp_path):
    for src, name in ((OKX / "BTCUSDT_1h_2022-2023.parquet", "DOGEUSDT_1h_2023.parquet"),
                      (OKX / "BTCUSDT_funding_2022-2023.csv", "DOGEUSDT_funding_2023.csv")):
        shutil.copy(src, tmp_path / name)
    with pytest.raises(DataError, match=r"volumes are in contracts and symbol DOGEUSDT: no OKX contract spec.*--markets"):
        load_symbol(tmp_path, "DOGEUSDT", "2023-01-01", "2023-01-02")
    d = load_symbol(tmp_path, "DOGEUSDT", "2023-01-01", "2023-01-02", contract_value=1000)
    assert len(d.bars) == 24


def test_missing_okx_settlement_is_caught(tmp_path):
    shutil.copy(OKX / "SOLUSDT_1h_2022-2023.parquet", tmp_path)
    lines = (OKX / "SOLUSDT_funding_2022-2023.csv").read_text().splitlines()
    dropped = [ln for ln in lines if not ln.startswith("2022-06-01 08:00")]
    assert len(dropped) == len(lines) - 1
    (tmp_path / "SOLUSDT_funding_2022-2023.csv").write_text("\n".join(dropped) + "\n")
    with pytest.raises(DataError, match=r"no funding settlement for 16.0 h .*OKX settles at least every 8 h"):
        load_symbol(tmp_path, "SOLUSDT", "2022-05-01", "2022-07-01")


def test_mixed_venues_in_one_folder_is_clear(tmp_path):
    shutil.copy(OKX / "BTCUSDT_1h_2022-2023.parquet", tmp_path)
    shutil.copy(BINANCE / "ETHUSDT_1h_2022-2023.parquet", tmp_path)
    with pytest.raises(DataError, match="data of several venues"):
        load_symbol(tmp_path, "BTCUSDT")
