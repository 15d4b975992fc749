"""Where the bundled market data lives: package data inside `basisbot.data` (``bundled_market/<exchange>/``), found
through `importlib.resources` so it works from a source checkout (where ``backtests/data/<exchange>`` links to it)
and from an installed wheel alike."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED_EXCHANGES = ("binance", "okx")
BUNDLED_ROOT = "bundled_market"


class BundledDataMissing(FileNotFoundError):
    """The bundled market data folder is absent or not on the file system; the message says how to supply data."""


def bundled_market_dir(exchange: str = "binance") -> Path:
    """The folder of an exchange's bundled market data (hourly candles and funding, see its SOURCES.md)."""
    folder = resources.files("basisbot.data").joinpath(BUNDLED_ROOT, exchange)
    # the loaders read files by path (pandas, pyarrow): a zipped install has no folder to hand them
    if not isinstance(folder, Path):
        raise BundledDataMissing(f"the bundled {exchange} market data ({folder}) is not a folder on the file system "
                                 "(basisbot installed zipped?): pass --data DIR or set backtest.data in the config")
    if not folder.is_dir():
        raise BundledDataMissing(f"the bundled {exchange} market data folder {folder} is missing (an install without "
                                 "package data?): pass --data DIR or set backtest.data in the config to a folder in "
                                 "the bundled layout or Binance's public-dump layout")
    return folder
