"""Binance's public dump site (``data.binance.vision``): 1h klines of spot and USDⓈ-M, 1h mark-price klines and
funding rates, written in the dump layout the data loader reads (``DIR/spot/monthly/klines/SYM/1h/...``).

Every zip is checked against the sha256 of its ``.CHECKSUM`` and opened (one CSV inside) before it is moved into
place; one that fails is fetched once more and then refused, never written. The current month has no monthly
file yet: its days come as daily zips (published the next day), joined into ``SYM-1h-YYYY-MM.csv``; its funding,
which the site publishes monthly only, from ``GET /fapi/v1/fundingRate`` of the REST API.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from basisbot.data.download import http
from basisbot.data.download.manifest import Manifest
from basisbot.data.download.months import Month, month_of
from basisbot.data.download.report import Outcome, Report

SITE = "https://data.binance.vision"
API = "https://fapi.binance.com"
PUBLICATION_LAG_DAYS = 2  # a daily file appears the day after; the last two days may not be there yet
_SHA_RE = re.compile(r"^([0-9a-fA-F]{64})\b")


@dataclass(frozen=True)
class Dataset:
    key: str       # spot | perp | mark | funding (the loader's names)
    market: str    # path under data/
    kind: str
    label: str

    def folder(self, period: str, symbol: str) -> str:
        sub = "" if self.key == "funding" else "/1h"
        return f"{self.market}/{period}/{self.kind}/{symbol}{sub}"

    def stem(self, symbol: str, when: str) -> str:
        return f"{symbol}-fundingRate-{when}" if self.key == "funding" else f"{symbol}-1h-{when}"


DATASETS = (
    Dataset("spot", "spot", "klines", "spot klines"),
    Dataset("perp", "futures/um", "klines", "USDⓈ-M klines"),
    Dataset("mark", "futures/um", "markPriceKlines", "mark-price klines"),
    Dataset("funding", "futures/um", "fundingRate", "funding rates"),
)


@dataclass(frozen=True)
class DumpFile:
    symbol: str
    dataset: Dataset
    month: Month
    day: _dt.date | None = None

    @property
    def rel(self) -> str:
        period = "monthly" if self.day is None else "daily"
        when = str(self.month) if self.day is None else f"{self.day:%Y-%m-%d}"
        return f"{self.dataset.folder(period, self.symbol)}/{self.dataset.stem(self.symbol, when)}.zip"

    @property
    def label(self) -> str:
        when = str(self.month) if self.day is None else f"{self.day:%Y-%m-%d}"
        return f"{self.symbol} {self.dataset.label} {when}"


def csv_rows(data: bytes) -> int:
    """Data rows of a dump CSV (a header row, whose first field is not a number, is not counted)."""
    lines = [ln for ln in data.splitlines() if ln.strip()]
    if lines and not lines[0].split(b",")[0].strip().isdigit():
        return len(lines) - 1
    return len(lines)


def zip_problem(data: bytes, expected_sha: str) -> str | None:
    """Why ``data`` is not the published zip (``None``: it is)."""
    got = hashlib.sha256(data).hexdigest()
    if got != expected_sha.lower():
        return f"sha256 {got} differs from the published .CHECKSUM {expected_sha} ({len(data)} bytes: truncated?)"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith(".csv")]
            if len(members) != 1:
                return f"expected one CSV inside the zip, found {members}"
            if zf.testzip() is not None:
                return "zip member fails its CRC"
    except zipfile.BadZipFile as exc:
        return f"not a zip: {exc}"
    return None


def zip_csv(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        (name,) = [n for n in zf.namelist() if n.lower().endswith(".csv")]
        return zf.read(name)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class BinanceDump:
    def __init__(self, out: Path, manifest: Manifest, *, base_url: str = SITE, api_url: str = API,
                 jobs: int = 4, today: _dt.date | None = None, tick: Callable[[], None] = lambda: None):
        self.out, self.manifest, self.jobs, self.tick = out, manifest, jobs, tick
        self.base = base_url.rstrip("/")
        self.api = api_url.rstrip("/")
        self.today = today or _dt.datetime.now(_dt.UTC).date()
        self.report = Report()

    # -- planning ---------------------------------------------------------------------------------------------
    def plan(self, symbols: list[str], months: list[Month]) -> list[DumpFile]:
        """Every zip to have: monthly files of the closed months, daily kline files of the current month."""
        current = month_of(self.today)
        files: list[DumpFile] = []
        for sym in symbols:
            for ds in DATASETS:
                for m in months:
                    if m < current:
                        files.append(DumpFile(sym, ds, m))
                    elif ds.key != "funding":
                        files += [DumpFile(sym, ds, m, d) for d in m.days() if d < self.today]
        return files

    # -- fetching ---------------------------------------------------------------------------------------------
    async def _fetch(self, s: aiohttp.ClientSession, limit: asyncio.Semaphore, f: DumpFile) -> Outcome:
        if self.manifest.verified(f.rel):
            return Outcome("kept", f.label)
        url = f"{self.base}/data/{f.rel}"
        status, body = await http.get(s, limit, url + ".CHECKSUM")
        if status == 404:
            if f.day is not None and (self.today - f.day).days <= PUBLICATION_LAG_DAYS:
                return Outcome("pending", f.label, f"not yet published ({url})")
            return Outcome("missing", f.label, f"not on the source: {url}.CHECKSUM answered 404")
        if status != 200:
            return Outcome("failed", f.label, f"{url}.CHECKSUM answered HTTP {status}")
        m = _SHA_RE.match(body.decode("ascii", "replace").strip())
        if not m:
            return Outcome("corrupt", f.label, f"{url}.CHECKSUM holds no sha256")
        problem = ""
        for _ in range(2):  # a corrupt or truncated zip is fetched once more, then refused
            status, data = await http.get(s, limit, url)
            if status == 404:
                return Outcome("missing", f.label, f"{url} answered 404 although its .CHECKSUM exists")
            if status != 200:
                return Outcome("failed", f.label, f"{url} answered HTTP {status}")
            problem = zip_problem(data, m.group(1))
            if problem is None:
                _write_atomic(self.out / f.rel, data)
                self.manifest.record(f.rel, url=url, symbol=f.symbol, dataset=f.dataset.key,
                                     month=str(f.month), **({"day": f"{f.day}"} if f.day else {}),
                                     rows=csv_rows(zip_csv(data)))
                return Outcome("fetched", f.label)
        self.manifest.forget(f.rel)
        (self.out / f.rel).unlink(missing_ok=True)  # an earlier copy that no longer verifies is not left to be read
        return Outcome("corrupt", f.label, f"{url}: refused after a second fetch: {problem}")

    async def _one(self, s, limit, f: DumpFile) -> Outcome:
        try:
            o = await self._fetch(s, limit, f)
        except http.Unreachable as exc:
            o = Outcome("failed", f.label, str(exc))
        self.tick()
        return o

    async def run(self, symbols: list[str], months: list[Month]) -> Report:
        files = self.plan(symbols, months)
        limit = asyncio.Semaphore(self.jobs)
        async with http.session() as s:
            outcomes = await asyncio.gather(*(self._one(s, limit, f) for f in files))
            by_file = dict(zip(files, outcomes))
            for o in self._collapse_missing(symbols, files, by_file):
                if o.status == "pending":
                    self.report.notes.append(f"{o.label}: {o.detail}")
                else:
                    self.report.add(o)
            for m in months:
                if m == month_of(self.today):
                    self._join_days(symbols, m, files, by_file)
                    for sym in symbols:
                        self.report.add(await self._current_funding(s, limit, sym, m))
                else:
                    self._drop_joined(symbols, m)
        return self.report

    def _collapse_missing(self, symbols, files, by_file) -> list[Outcome]:
        """One line for a symbol the source lacks entirely, one per dataset lacking every month, else per file."""
        out: list[Outcome] = []
        for sym in symbols:
            mine = [f for f in files if f.symbol == sym]
            if mine and all(by_file[f].status == "missing" for f in mine):
                months = sorted({f.month for f in mine})
                out.append(Outcome("missing", sym, f"the source has none of its files for {months[0]}..{months[-1]} "
                                   f"(not listed there, or listed later; looked under {self.base}/data/)"))
                continue
            for ds in DATASETS:
                part = [f for f in mine if f.dataset is ds]
                if len(part) > 1 and all(by_file[f].status == "missing" for f in part):
                    out.append(Outcome("missing", f"{sym} {ds.label}", "the source has it for none of the "
                                       f"requested months: {self.base}/data/{ds.folder('monthly', sym)}/"))
                else:
                    out += [by_file[f] for f in part]
        return out

    # -- the current month ------------------------------------------------------------------------------------
    def _join_days(self, symbols, m: Month, files, by_file) -> None:
        """The current month's daily kline zips joined into ``SYM-1h-YYYY-MM.csv`` (one header row)."""
        for sym in symbols:
            for ds in DATASETS[:3]:
                days = [f for f in files if f.symbol == sym and f.dataset is ds and f.month == m]
                have = [f for f in days if by_file[f].status in ("fetched", "kept")]
                if not have:
                    continue
                header, rows = None, []
                for f in have:
                    text = zip_csv((self.out / f.rel).read_bytes()).decode()
                    lines = [ln for ln in text.splitlines() if ln.strip()]
                    if lines and not lines[0].split(",")[0].strip().isdigit():
                        header, lines = lines[0], lines[1:]
                    rows += lines
                body = "\n".join(([header] if header else []) + rows) + "\n"
                rel = f"{ds.folder('monthly', sym)}/{ds.stem(sym, str(m))}.csv"
                _write_atomic(self.out / rel, body.encode())
                self.manifest.record(rel, url=f"{self.base}/data/{ds.folder('daily', sym)}/", symbol=sym,
                                     dataset=ds.key, month=str(m), rows=len(rows),
                                     joined_days=[f"{f.day}" for f in have])

    def _drop_joined(self, symbols, m: Month) -> None:
        """A month joined from daily files while it was open gives way to its monthly zip (the loader refuses a
        CSV beside a zip that differs from it)."""
        for sym in symbols:
            for ds in DATASETS:
                rel = f"{ds.folder('monthly', sym)}/{ds.stem(sym, str(m))}.csv"
                if (self.out / rel).exists() and (self.out / rel).with_suffix(".zip").exists():
                    (self.out / rel).unlink()
                    self.manifest.forget(rel)

    async def _current_funding(self, s, limit, sym: str, m: Month) -> Outcome:
        label = f"{sym} funding rates {m} (so far)"
        ds = DATASETS[3]
        rel = f"{ds.folder('monthly', sym)}/{ds.stem(sym, str(m))}.csv"
        url = f"{self.api}/fapi/v1/fundingRate"
        start, end = m.start_ms(), m.next().start_ms() - 1
        rows: list[tuple[int, str]] = []
        try:
            while True:
                status, body = await http.get(s, limit, url, params={"symbol": sym, "startTime": start,
                                                                     "endTime": end, "limit": 1000})
                if status != 200:
                    return Outcome("missing", label, f"{url}?symbol={sym} answered HTTP {status}: "
                                                     f"{body[:200].decode('utf-8', 'replace')}")
                page = json.loads(body)
                rows += [(int(r["fundingTime"]), str(r["fundingRate"])) for r in page]
                if len(page) < 1000:
                    break
                start = int(page[-1]["fundingTime"]) + 1
        except (ValueError, KeyError, TypeError) as exc:
            return Outcome("corrupt", label, f"{url}?symbol={sym}: unexpected answer ({exc})")
        except http.Unreachable as exc:
            return Outcome("failed", label, str(exc))
        if not rows:
            return Outcome("missing", label, f"{url}?symbol={sym} lists no settlement in {m}")
        body = "calc_time,funding_interval_hours,last_funding_rate\n" + "".join(
            f"{t},,{r}\n" for t, r in sorted(set(rows)))
        _write_atomic(self.out / rel, body.encode())
        self.manifest.record(rel, url=url, symbol=sym, dataset="funding", month=str(m), rows=len(set(rows)))
        return Outcome("fetched", label)
