"""Which layout a data folder holds, where a symbol's files are, and which symbols are complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from basisbot.data.dump_files import monthly_files
from basisbot.data.symbol_data import DataError

_BUNDLED_BARS_RE = re.compile(r"^([A-Z0-9]+)_1h_(.+)\.parquet$")


_BUNDLED_FUNDING_RE = re.compile(r"^([A-Z0-9]+)_funding_(.+)\.csv$")


_SYMBOL_RE = re.compile(r"^[A-Z0-9]+$")


def dump_paths(data_dir: str | Path, symbol: str) -> dict[str, Path]:
    """Directories of the four datasets of ``symbol`` in the public-dump layout under ``data_dir``."""
    root = Path(data_dir)
    um = root / "futures" / "um" / "monthly"
    return {
        "spot": root / "spot" / "monthly" / "klines" / symbol / "1h",
        "perp": um / "klines" / symbol / "1h",
        "mark": um / "markPriceKlines" / symbol / "1h",
        "funding": um / "fundingRate" / symbol,
    }


def detect_layout(data_dir: str | Path) -> Literal["bundled", "binance_dump"]:
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    bundled = any(_BUNDLED_BARS_RE.match(p.name) for p in root.glob("*_1h_*.parquet"))
    dump = (root / "spot" / "monthly").is_dir() or (root / "futures" / "um" / "monthly").is_dir()
    if bundled and dump:
        raise DataError(
            f"{root}: holds both bundled SYM_1h_*.parquet files and a spot/ or futures/ dump tree; "
            "point at one of them"
        )
    if bundled:
        return "bundled"
    if dump:
        return "binance_dump"
    hint = ""
    if (root / "data" / "futures").is_dir() or (root / "data" / "spot").is_dir():
        hint = f" (the dump tree seems to be under {root / 'data'}: pass that folder)"
    raise DataError(
        f"{root}: unrecognised layout{hint}: expected SYM_1h_*.parquet + SYM_funding_*.csv files, "
        "or Binance's public-dump tree spot/monthly/klines/... and futures/um/monthly/..."
    )


def bundled_inventory(root: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    bars: dict[str, list[Path]] = {}
    funding: dict[str, list[Path]] = {}
    for p in sorted(root.iterdir()):
        if m := _BUNDLED_BARS_RE.match(p.name):
            bars.setdefault(m.group(1), []).append(p)
        elif m := _BUNDLED_FUNDING_RE.match(p.name):
            funding.setdefault(m.group(1), []).append(p)
    return bars, funding


def _dump_symbols(root: Path) -> dict[str, set[str]]:
    """dataset -> symbols that have at least one correctly named monthly file."""
    um = root / "futures" / "um" / "monthly"
    bases = {
        "spot": (root / "spot" / "monthly" / "klines", "1h"),
        "perp": (um / "klines", "1h"),
        "mark": (um / "markPriceKlines", "1h"),
        "funding": (um / "fundingRate", None),
    }
    out: dict[str, set[str]] = {}
    for kind, (base, sub) in bases.items():
        syms: set[str] = set()
        if base.is_dir():
            for d in base.iterdir():
                if not (d.is_dir() and _SYMBOL_RE.match(d.name)):
                    continue
                folder = d / sub if sub else d
                if folder.is_dir() and monthly_files(folder, d.name, kind):
                    syms.add(d.name)
        out[kind] = syms
    return out


def available_symbols(data_dir: str | Path) -> list[str]:
    """Symbols that have every dataset needed by :func:`load_symbol`, sorted."""
    root = Path(data_dir)
    if detect_layout(root) == "bundled":
        bars, funding = bundled_inventory(root)
        return sorted(set(bars) & set(funding))
    per_kind = _dump_symbols(root)
    return sorted(set.intersection(*per_kind.values()))


def unknown_symbol(root: Path, symbol: str, have: dict[str, bool]) -> None:
    avail = available_symbols(root)
    if any(have.values()):
        lacking = [k for k, ok in have.items() if not ok]
        raise DataError(
            f"{root}: {symbol} is incomplete, missing {', '.join(lacking)}; complete symbols: "
            f"{', '.join(avail) or 'none'}"
        )
    raise DataError(f"{root}: no data for symbol {symbol!r}; available: {', '.join(avail) or 'none'}")
