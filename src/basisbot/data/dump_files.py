"""The monthly files of Binance's public-dump layout: exact names, zip vs extracted CSV (compared byte for
byte when both exist)."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from basisbot.data.symbol_data import DataError


def _zip_member(path: Path) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith(".csv") and not n.endswith("/")]
            if len(members) != 1:
                raise DataError(
                    f"file {path}: expected exactly one CSV inside the zip, found {len(members)} ({members})"
                )
            return members[0], zf.read(members[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"file {path}: cannot read zip: {exc}") from None


@dataclass
class MonthFile:
    month_ns: int
    path: Path        # the file that is read
    other: Path | None  # the zip when the CSV was preferred

    @property
    def label(self) -> str:
        return f"file {self.path}"

    def read(self) -> bytes:
        if self.path.suffix == ".zip":
            _, data = _zip_member(self.path)
            return data
        data = self.path.read_bytes()
        if self.other is not None:
            _, zipped = _zip_member(self.other)
            if zipped != data:
                raise DataError(
                    f"file {self.path} differs from the CSV inside {self.other}: the extracted file was "
                    "edited or only partly extracted; delete one of the two"
                )
        return data


def monthly_files(folder: Path, symbol: str, kind: str) -> dict[int, MonthFile]:
    stem_re = (
        re.compile(rf"^{re.escape(symbol)}-fundingRate-(\d{{4}})-(\d{{2}})\.(csv|zip)$")
        if kind == "funding"
        else re.compile(rf"^{re.escape(symbol)}-1h-(\d{{4}})-(\d{{2}})\.(csv|zip)$")
    )
    found: dict[int, dict[str, Path]] = {}
    if not folder.is_dir():
        return {}
    for p in folder.iterdir():
        m = stem_re.match(p.name)
        if not m or not p.is_file():
            continue
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            continue
        key = pd.Timestamp(year=year, month=month, day=1, tz="UTC").value
        found.setdefault(key, {})[m.group(3)] = p
    out: dict[int, MonthFile] = {}
    for key, by_ext in found.items():
        if "csv" in by_ext:
            out[key] = MonthFile(key, by_ext["csv"], by_ext.get("zip"))
        else:
            out[key] = MonthFile(key, by_ext["zip"], None)
    return out
