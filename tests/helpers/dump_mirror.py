"""A local mirror of Binance's public dump site on 127.0.0.1, made from the bundled data with the project's dump
writer: ``/data/spot/monthly/klines/SYM/1h/SYM-1h-YYYY-MM.zip`` and so on, each with its ``.zip.CHECKSUM``
(``sha256sum`` format, as the site publishes them). Every request is logged, so a test can tell what was fetched.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import io
import threading
import zipfile
from pathlib import Path

import pandas as pd
from aiohttp import web

from basisbot.data.dump_writer import export_binance_dump

BUNDLED = Path(__file__).resolve().parents[2] / "backtests" / "data" / "binance"


def build_mirror(root: Path, symbols: list[str], start: str, end: str) -> Path:
    """Write the dump tree of ``symbols`` over [start, end) under ``root/data`` with a .CHECKSUM per zip."""
    site = root / "data"
    for sym in symbols:
        for path in export_binance_dump(BUNDLED, sym, site, start=start, end=end):
            path.with_name(path.name + ".CHECKSUM").write_text(f"{_sha(path)}  {path.name}\n")
    return root


def split_into_days(root: Path, month: str) -> None:
    """Turn ``month``'s monthly kline zips of the mirror into daily zips (``.../daily/...SYM-1h-YYYY-MM-DD.zip``),
    as the site has them while a month is open, and remove the monthly kline and funding files of that month."""
    site = root / "data"
    for monthly in sorted(site.rglob(f"*-{month}.zip")):
        rel = monthly.relative_to(site)
        if "fundingRate" not in rel.parts:
            with zipfile.ZipFile(monthly) as zf:
                (name,) = zf.namelist()
                lines = zf.read(name).decode().splitlines()
            header = [] if lines[0][0].isdigit() else lines[:1]
            by_day: dict[str, list[str]] = {}
            for line in lines[len(header):]:
                ms = int(line.split(",")[0])
                day = datetime.datetime.fromtimestamp(ms / (1000 if ms < 10**14 else 10**6), datetime.UTC)
                by_day.setdefault(f"{day:%Y-%m-%d}", []).append(line)
            folder = site / str(rel.parent).replace("/monthly/", "/daily/", 1)
            folder.mkdir(parents=True, exist_ok=True)
            sym = rel.parts[-3]
            for day, rows in by_day.items():
                path = folder / f"{sym}-1h-{day}.zip"
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    zf.writestr(f"{sym}-1h-{day}.csv", "".join(x + "\n" for x in header + rows))
                path.write_bytes(buf.getvalue())
                path.with_name(path.name + ".CHECKSUM").write_text(f"{_sha(path)}  {path.name}\n")
        monthly.unlink()
        monthly.with_name(monthly.name + ".CHECKSUM").unlink()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class MirrorServer:
    """Serves ``root`` read-only on a free 127.0.0.1 port from a thread of its own (the CLI under test runs its
    own event loop)."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _funding(self, request: web.Request) -> web.StreamResponse:
        """``GET /fapi/v1/fundingRate`` of the REST API, from the bundled settlements, in Binance's answer shape."""
        self.requests.append(request.path)
        q = request.query
        sym = q["symbol"]
        df = pd.read_csv(BUNDLED / f"{sym}_funding_2022-2023.csv")
        ts = pd.to_datetime(df["datetime"], format="ISO8601", utc=True).dt.tz_convert(None)
        ms = ts.to_numpy().astype("datetime64[ms]").astype("int64")
        sel = (ms >= int(q["startTime"])) & (ms <= int(q["endTime"]))
        rows = [{"symbol": sym, "fundingTime": int(t), "fundingRate": f"{r:.8f}", "markPrice": "0"}
                for t, r in zip(ms[sel], df["funding_rate"].to_numpy()[sel])][: int(q.get("limit", 100))]
        return web.json_response(rows)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        path = (self.root / request.path.lstrip("/")).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            return web.Response(status=404, text="<Error><Code>NoSuchKey</Code></Error>")
        return web.Response(body=path.read_bytes())

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/fapi/v1/fundingRate", self._funding)
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> MirrorServer:
        self._thread.start()
        assert self._ready.wait(10), "mirror did not start"
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def fetched(self, suffix: str = ".zip") -> list[str]:
        return [p for p in self.requests if p.endswith(suffix)]
