"""A CSV parsed without trusting it: header detection, field counts, numbers and epoch timestamps checked
per cell, error messages quoting the file's own line numbers."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from basisbot.data.symbol_data import US_THRESHOLD, DataError
from basisbot.data.validation import is_number, row_error


@dataclass
class Table:
    """A parsed CSV: cells (columns 0..n-1, numeric where pandas could infer it), the 1-based line
    number of each row, the header names (None if there is none) and the raw lines, so that
    error messages quote the text exactly as it is in the file."""

    label: str
    df: pd.DataFrame
    rows: np.ndarray
    names: tuple[str, ...] | None
    lines: list[str]

    def raw(self, j: int) -> pd.Series:
        return pd.Series([ln.split(",")[j].strip() for ln in self.lines], dtype=object)

    def floats(self, j: int, name: str, times: np.ndarray | None = None) -> np.ndarray:
        cells = self.df[j]
        if pd.api.types.is_numeric_dtype(cells.dtype) and not pd.api.types.is_bool_dtype(cells.dtype):
            vals = cells.to_numpy(dtype=np.float64)
        else:
            vals = pd.to_numeric(self.raw(j), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(vals)
        if bad.any():
            i = int(np.argmax(bad))
            raise row_error(self.label, int(self.rows[i]), None if times is None else int(times[i]),
                             f"{name} {self.raw(j).iloc[i]!r} is not a finite number")
        return vals

    def epochs(self, j: int, name: str) -> np.ndarray:
        """Epoch integers in ms or µs (detected per value) -> ns since the epoch."""
        cells = self.df[j]
        if pd.api.types.is_integer_dtype(cells.dtype):
            raw = cells.to_numpy(dtype=np.int64)
            bad = raw < 0
        else:
            text = self.raw(j)
            bad = ~text.str.fullmatch(r"\d{1,18}").to_numpy(dtype=bool)
            raw = pd.to_numeric(text.where(~bad, "0")).to_numpy(dtype=np.int64)
        if bad.any():
            i = int(np.argmax(bad))
            raise row_error(self.label, int(self.rows[i]), None,
                             f"{name} {self.raw(j).iloc[i]!r} is not an integer epoch timestamp")
        too_big = raw >= 10**17
        if too_big.any():
            i = int(np.argmax(too_big))
            raise row_error(self.label, int(self.rows[i]), None,
                             f"{name} {raw[i]} is too large for milliseconds or microseconds")
        return np.where(raw >= US_THRESHOLD, raw * 1_000, raw * 1_000_000)


def parse_table(data: bytes, label: str, header: tuple[str, ...], required: int) -> Table:
    """Parse a CSV without trusting it.

    A header is detected by the first field of the first line not being a number; its first
    ``required`` names must match ``header``. Blank lines are skipped but still counted, so the
    row numbers in error messages are the file's line numbers."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not a UTF-8 text file: {exc}") from None
    all_lines = text.splitlines()
    numbered = [(i, ln) for i, ln in enumerate(all_lines, start=1) if ln.strip()]
    names: tuple[str, ...] | None = None
    if numbered and not is_number(numbered[0][1].split(",", 1)[0].strip()):
        line_no, head = numbered.pop(0)
        names = tuple(n.strip().lower() for n in head.split(","))
        if len(names) != len(header) or names[:required] != header[:required]:
            raise DataError(
                f"{label}, row {line_no}: unexpected header {head.strip()!r}, expected "
                f"{','.join(header)!r}"
            )
    rows = np.fromiter((i for i, _ in numbered), dtype=np.int64, count=len(numbered))
    lines = [ln for _, ln in numbered]
    if not lines:
        empty = pd.DataFrame({j: pd.Series(dtype=object) for j in range(len(header))})
        return Table(label, empty, rows, names, lines)
    # count fields ourselves, so the message names the line as numbered in the file
    counts = np.fromiter((ln.count(",") + 1 for ln in lines), dtype=np.int64, count=len(lines))
    bad = counts != len(header)
    if bad.any():
        i = int(np.argmax(bad))
        raise row_error(label, int(rows[i]), None,
                         f"{counts[i]} fields, expected {len(header)} ({','.join(header)})")
    try:
        df = pd.read_csv(io.StringIO("\n".join(lines)), header=None, na_filter=False,
                         names=range(len(header)), index_col=False, quoting=3)  # 3 = QUOTE_NONE
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{label}: not a valid CSV with {len(header)} columns: {exc}") from None
    return Table(label, df, rows, names, lines)
