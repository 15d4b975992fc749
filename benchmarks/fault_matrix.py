"""The fault matrix: `basisbot sim` and `basisbot live` as real processes on 127.0.0.1, one fault per venue
+ node pair (all symbols in it), each fault injected at a seeded random moment of its phase, judged from the VENUE's
side (its admin API polled every 0.25 s), not from the bot's journal.

    .venv/bin/python benchmarks/fault_matrix.py --symbols BTCUSDT,ETHUSDT,SOLUSDT --seed 1 [--faults a,b] [--parallel 3]
        [--exchange binance|okx]

`--exchange okx`: the venue speaks OKX's v5 API (`basisbot sim --exchange okx` on the bundled OKX data) and the node
runs with `[exchange] name = "okx"` through ccxt.pro's okx client; the faults are the same engine's, judged from the
same admin state (positions in base units on both venues). OKX has no listen keys: `listen_key_expired` does not
apply there and is left out (its private websocket drop is the `ws_drop` cell).

Phases (config forces each one):
- entry:   entry_apr -1000 / exit_apr -2000: the node enters at once; order faults are armed before it starts (the
           first orders take them), timed faults at a seeded moment around the entry;
- holding: once the venue shows both legs of every symbol;
- exit:    after the entry the config file is rewritten (hot reload: entry_apr 1000, exit_apr 999, min hold 0): the
           strategy exits at the next pre-settlement decision; the fault comes when the node logs the exit;
- guard:   leverage 5 with a reduce threshold above the distance to liquidation: the guard reduces both legs right
           after the entry; the fault comes when the node logs the guard action.

Control cells (kind "control"): at the seeded moment of their phase the fault (if any) is injected, then the
operator's flatten of every symbol is sent to the node's ops server (POST /control with the control token: the
request `basisbot control flatten --all` sends, without the second the CLI takes to start, so that it can meet a pair
in flight). Cells that must meet a pair in flight slow every venue REST answer by `slow_ms` once the node runs
(cleared after the flatten) and require the node's answer to name the pair in flight for every symbol. All require
the node's acknowledgement, every symbol flat at the venue within the leg timeout + 5 s of the command, and still
flat when the cell ends (paused: the config would enter again at once).

Per symbol, from the venue: the longest one-legged stretch (polled: one leg held and not the other, or the hedge off by
more than 25%), client order ids at the venue unique, the most orders in any 60 s (no storm; orders the venue refused
are counted too, over all symbols, shown as "+Nr"), venue orders and funding
payments the journal lacks (none), journal rows the venue cannot explain (none), and in the guard phase the perp's
distance to liquidation at the end above the guard's reduce threshold (the guard acted, also after a restart); after
a kill -9 in the middle of the guard's reduce, one reduce in the journal (the restarted guard puts the released margin
back, it does not reduce again at the same distance). A cell passes when all hold and the node stopped on SIGTERM in
time. Exit status 0 only if every cell passes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
DATA = ROOT / "backtests" / "data" / "binance"
KEY, SECRET = "fmkey" + "a" * 59, "fmsecret" + "b" * 56
PASSPHRASE = "fmPass1"  # OKX signs with a passphrase too
# per exchange: the data the venue replays, the venue's extra arguments, faults that do not apply there
EXCHANGES = {
    "binance": {"data": DATA, "sim_args": [], "not_applicable": ()},
    "okx": {"data": ROOT / "backtests" / "data" / "okx", "sim_args": ["--exchange", "okx", "--api-passphrase",
                                                                      PASSPHRASE],
            "not_applicable": ("listen_key_expired",)},
}

SPEED = 60.0
# the venue starts PAUSED 20 venue minutes before a settlement and resumes when the node runs (start-up takes 5-20 wall
# seconds on a loaded machine): the decision (T - 600 s) falls 10 wall s after the resume, the blackout
# (T - 300 s .. T + 60 s) 15..21 s, the settlement 20 s, its booking (T + 60 s) 21 s.
SETTLEMENT = "2022-03-01T08:00:00Z"
VENUE_START = "2022-03-01T07:40:00Z"
LEG_TIMEOUT_S = 3.0
POLL_S = 0.25
NOTIONAL = {"BTCUSDT": 3000.0, "ETHUSDT": 3000.0, "SOLUSDT": 3000.0}
ORDERS_PER_MIN_MAX = 40
GUARD_REDUCE_DISTANCE = 0.30  # guard phase: above the distance 5x gives (~19.5%), so the guard reduces at once
START_TIMEOUT_S = 180.0  # node start-up (imports, markets, reconciliation); minutes on a loaded 2-core machine  # per symbol and minute; a storm is thousands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------------------------------
# faults
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Fault:
    name: str
    phase: str  # entry | holding | exit | guard
    # what to do: "arm" (POST /admin/faults before the node starts, per symbol where it applies), "inject" (POST at the
    # seeded moment), "kill" (SIGKILL the node at the seeded moment, restart), "withdraw"
    kind: str
    spec: object = None  # dict, or callable(symbol) -> dict (or a list of dicts) for per-symbol faults
    per_symbol: bool = False
    window_s: tuple[float, float] = (0.0, 1.0)  # seeded moment: uniform in this range after the phase begins
    clear_after_s: float | None = None  # DELETE /admin/faults this long after injection (None: never)
    hold_s: float = 12.0  # observe this long after the injection
    extra_limit_s: float = 0.0  # allowed one-legged stretch beyond the leg timeout + grace
    slow_ms: int = 0  # control cells: every venue REST answer waits this long from the node's start to the flatten


CONTROL_TOKEN_VAR = "FM_CONTROL_TOKEN"
FLAT_WITHIN_S = LEG_TIMEOUT_S + 5.0  # a flatten: every leg of every symbol closed within this of the command


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("ws_drop", "holding", "inject", {"drop_ws": True}),
    Fault("burst_429", "entry", "inject", {"fail_next": {"count": 6, "status": 429}}, window_s=(-0.5, 0.5)),
    Fault("burst_5xx", "entry", "inject", {"fail_next": {"count": 6, "status": 503}}, window_s=(-0.5, 0.5)),
    Fault("accepted_timeout", "entry", "arm",
          lambda s: {"timeout_next_order": {"venue": "futures", "symbol": s, "mode": "drop"}}, per_symbol=True),
    Fault("first_leg_rejected", "entry", "arm",
          lambda s: {"reject_next_order": {"venue": "spot", "symbol": s, "count": 1}}, per_symbol=True),
    Fault("second_leg_rejected_once", "entry", "arm",
          lambda s: {"reject_next_order": {"venue": "futures", "symbol": s, "count": 1}}, per_symbol=True),
    Fault("second_leg_rejected_twice", "entry", "arm",
          lambda s: {"reject_next_order": {"venue": "futures", "symbol": s, "count": 2}}, per_symbol=True),
    Fault("second_leg_rejected_always", "entry", "arm",
          lambda s: {"reject_next_order": {"venue": "futures", "symbol": s, "count": 10_000}}, per_symbol=True,
          hold_s=15.0),
    # the perp refused AND every spot sale refused: the spot leg cannot be closed; the bot escalates, retries at a
    # bounded rate, and sells once the venue takes sales again (cleared after 12 s)
    Fault("leg_cannot_be_closed", "entry", "arm",
          lambda s: [{"reject_next_order": {"venue": "futures", "symbol": s, "count": 10_000}},
                     {"reject_next_order": {"venue": "spot", "symbol": s, "side": "SELL", "count": 10_000}}],
          per_symbol=True, clear_after_s=12.0, extra_limit_s=15.0, hold_s=20.0),
    Fault("partial_fill", "entry", "arm",
          lambda s: {"partial_fill_next": {"venue": "futures", "symbol": s, "fraction": 0.5}}, per_symbol=True),
    Fault("freeze_mark_60s", "holding", "inject", {"freeze_mark": True}, clear_after_s=60.0, hold_s=66.0),
    Fault("bad_print", "holding", "inject",
          lambda s: {"bad_print": {"symbol": s, "factor": 1.3, "count": 1, "stream": "mark"}}, per_symbol=True),
    Fault("listen_key_expired", "holding", "inject", {"expire_listen_keys": True}),
    Fault("clock_skew", "entry", "inject", {"clock_skew": {"ms": 15_000, "duration_s": 4.0}}, window_s=(-0.5, 0.5)),
    Fault("insufficient_balance", "entry", "withdraw", None),
    Fault("kill9_entry", "entry", "kill", None, window_s=(0.0, 0.05), extra_limit_s=40.0, hold_s=25.0),
    Fault("kill9_exit", "exit", "kill", None, window_s=(0.0, 0.05), extra_limit_s=40.0, hold_s=25.0),
    Fault("kill9_guard", "guard", "kill", None, window_s=(0.0, 0.05), extra_limit_s=40.0, hold_s=25.0),
    Fault("venue_restart", "holding", "inject", {"outage": {"duration_s": 5.0}}, extra_limit_s=5.0, hold_s=15.0),
    # the venue deleverages the short itself (auto-deleveraging at the mark): half of it, or all of it; the spot it no
    # longer hedges must be sold within the leg timeout, the ADL alerted and journaled
    Fault("adl_partial", "holding", "inject", lambda s: {"adl": {"symbol": s, "fraction": 0.5}}, per_symbol=True),
    Fault("adl_full", "holding", "inject", lambda s: {"adl": {"symbol": s, "fraction": 1.0}}, per_symbol=True),
    # the operator's flatten: while the entry pair is in flight, while the guard's reduce pair is in flight, and
    # with the first perp close refused by the venue (retried with the two-leg backoff)
    Fault("flatten_in_flight", "entry", "control", None, window_s=(0.0, 0.1), slow_ms=600),
    Fault("flatten_during_guard", "guard", "control", None, window_s=(0.0, 0.1), slow_ms=600),
    Fault("flatten_perp_close_rejected", "holding", "control",
          lambda s: {"reject_next_order": {"venue": "futures", "symbol": s, "count": 1}}, per_symbol=True),
]}
# the exchange's own closing orders carry its client ids (one "adl_autoclose" per ADL): not the bot's, not duplicates
VENUE_CLOSE_PREFIXES = ("autoclose-", "adl_autoclose")


# ----------------------------------------------------------------------------------------------------------------------
# processes
# ----------------------------------------------------------------------------------------------------------------------
def _toml(symbols: list[str], url: str, journal: Path, phase: str, exit_now: bool = False,
          alert_url: str | None = None, control_port: int | None = None, exchange: str = "binance") -> str:
    lines = ['mode = "live"', f'journal = "{journal}"', "", "[exchange]", f'name = "{exchange}"', "", "[live]",
             f'exchange_url = "{url}"', "poll_interval_s = 2.0", "reconnect_max_s = 2.0"]
    if control_port is not None:
        lines.append(f"metrics_port = {control_port}")
    lines.append("")
    if control_port is not None:
        lines += ["[control]", f'token_env = "{CONTROL_TOKEN_VAR}"', ""]
    if alert_url:
        lines += ["[alerts]", f"urls = [{json.dumps(alert_url)}]", ""]
    for s in symbols:
        lev, guard = 2, {"enabled": False}
        if phase == "guard":
            lev = 5
            guard = {"enabled": True, "warn_distance": 0.40, "add_margin_distance": 0.35,
                     "reduce_distance": GUARD_REDUCE_DISTANCE,
                     "close_distance": 0.03, "target_distance": 0.36, "hysteresis": 0.05, "transfer_from_spot": True}
        entry, exit_, hold = (-1000.0, -2000.0, 3)
        if exit_now:
            entry, exit_, hold = (1000.0, 999.0, 0)
        lines += [f"[symbols.{s}]", f"notional_usdt = {NOTIONAL.get(s, 3000.0)}", f"leverage = {lev}",
                  'margin_mode = "isolated"', f"entry_apr = {entry}", f"exit_apr = {exit_}",
                  f"min_hold_intervals = {hold}", f"leg_timeout_s = {LEG_TIMEOUT_S}", "slippage_band = 0.01", "",
                  f"[symbols.{s}.guard]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in guard.items()]
        lines.append("")
    return "\n".join(lines) + "\n"


class Proc:
    def __init__(self, name: str, args: list[str], env: dict, log: Path):
        self.name, self.args, self.env, self.log_path = name, args, env, log
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[tuple[float, str]] = []
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(*self.args, cwd=str(ROOT), env=self.env,
                                                         stdout=asyncio.subprocess.PIPE,
                                                         stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    return
                text = line.decode(errors="replace").rstrip()
                self.lines.append((time.monotonic(), text))
                f.write(text + "\n")

    async def wait_line(self, pattern: str, timeout: float, since: int = 0) -> tuple[int, str] | None:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = since
        while time.monotonic() < deadline:
            while i < len(self.lines):
                if rx.search(self.lines[i][1]):
                    return i, self.lines[i][1]
                i += 1
            if self.proc.returncode is not None:
                return None
            await asyncio.sleep(0.02)
        return None

    def signal(self, sig) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, sig)

    async def wait(self, timeout: float) -> int | None:
        try:
            rc = await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=2)
        return rc


# ----------------------------------------------------------------------------------------------------------------------
# the venue's side
# ----------------------------------------------------------------------------------------------------------------------
class VenueWatch:
    """Polls the venue's admin state every POLL_S: legs per symbol, one-legged stretches."""

    def __init__(self, url: str, symbols: list[str], min_notional: float = 5.0):
        self.url, self.symbols, self.min_notional = url, symbols, min_notional
        self.http: aiohttp.ClientSession | None = None
        self.samples = 0
        self.failed = 0
        self._since: dict[str, float | None] = {s: None for s in symbols}
        self.longest: dict[str, float] = {s: 0.0 for s in symbols}
        self.legs: dict[str, tuple[float, float]] = {}
        self.distance: dict[str, float | None] = {}
        self._task: asyncio.Task | None = None
        self.paused = False  # while the venue itself is down (outage): keep the open stretch, do not sample
        self.flat: dict[str, bool] = {}  # no perp and no spot worth the minimum notional

    async def get(self, path: str):
        async with self.http.get(self.url + path, timeout=aiohttp.ClientTimeout(total=5)) as r:
            return await r.json()

    async def post(self, path: str, body: dict):
        async with self.http.post(self.url + path, json=body, timeout=aiohttp.ClientTimeout(total=5)) as r:
            return await r.json()

    def start(self) -> None:
        self.http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        now = time.monotonic()
        for s, t0 in self._since.items():
            if t0 is not None:
                self.longest[s] = max(self.longest[s], now - t0)
        if self.http:
            await self.http.close()

    async def _loop(self) -> None:
        while True:
            try:
                st = await self.get("/admin/state")
                self._sample(st, time.monotonic())
                self.samples += 1
            except Exception:  # noqa: BLE001 - an outage fault or the venue busy: count it, keep polling
                self.failed += 1
            await asyncio.sleep(POLL_S)

    def _sample(self, st: dict, now: float) -> None:
        perp = {p["symbol"]: float(p["positionAmt"]) for p in st["futures"]["positions"]}
        lps = {p["symbol"]: float(p.get("liquidationPrice") or 0.0) for p in st["futures"]["positions"]}
        for s in self.symbols:
            base = s[:-4]
            bal = st["spot"].get(base) or {"free": 0.0, "locked": 0.0}
            spot = float(bal["free"]) + float(bal["locked"])
            px = st["prices"][s]["mark"]
            p = perp.get(s, 0.0)
            self.legs[s] = (spot, p)
            # the short perp's distance to liquidation, as the venue computes it (None: no perp held)
            self.distance[s] = (lps[s] - px) / px if p < 0 and lps.get(s) else None
            spot_on = spot * px >= self.min_notional
            perp_on = abs(p) * px >= self.min_notional
            self.flat[s] = p == 0 and not spot_on
            unhedged = spot_on != perp_on
            if spot_on and perp_on:
                big = max(spot, abs(p))
                unhedged = abs(spot - abs(p)) / big > 0.25 or p > 0
            if unhedged:
                if self._since[s] is None:
                    self._since[s] = now
            elif self._since[s] is not None:
                self.longest[s] = max(self.longest[s], now - self._since[s])
                self._since[s] = None

    def both_legs(self) -> bool:
        return all(s in self.legs and self.legs[s][0] > 0 and self.legs[s][1] < 0 for s in self.symbols)


class AlertSink:
    """Where the node's alerts go in the cells that judge them: a local endpoint for apprise's json:// channel, so
    the cell sees what an operator would have received."""

    def __init__(self):
        self.port = free_port()
        self.received: list[dict] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _post(self, request: web.Request) -> web.Response:
        try:
            self.received.append(await request.json())
        except ValueError:
            self.received.append({"message": await request.text()})
        return web.json_response({})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# ----------------------------------------------------------------------------------------------------------------------
# one cell group: one fault, every symbol
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class CellResult:
    fault: str
    symbol: str
    passed: bool
    figures: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


async def _wait_both_legs(watch: VenueWatch, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if watch.both_legs():
            return
        await asyncio.sleep(0.1)


@dataclass
class _Cell:
    """One cell group's running processes and what it noted on the way."""

    fault: Fault
    symbols: list[str]
    url: str
    cfg: Path
    journal: Path
    node_args: list[str]
    env: dict
    log: Path
    watch: VenueWatch
    nodes: list[Proc] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    control_port: int | None = None  # control cells: the node's ops server, and its token in `env`
    alert_url: str | None = None
    flat: dict[str, dict] = field(default_factory=dict)  # control cells: per symbol {flat_after_s, flat_at_end}
    exchange: str = "binance"

    @property
    def node(self) -> Proc:
        return self.nodes[-1]

    async def start_node(self) -> bool:
        node = Proc("node", self.node_args, self.env, self.log)
        self.nodes.append(node)
        await node.start()
        return await node.wait_line(r"basisbot live: running", START_TIMEOUT_S) is not None

    async def prepare(self) -> None:
        """Faults armed before the node starts; for `withdraw`, a spot account that cannot pay for a spot leg."""
        fault, watch = self.fault, self.watch
        if fault.kind == "arm":
            for s in self.symbols:
                specs = fault.spec(s)
                for spec in specs if isinstance(specs, list) else [specs]:
                    await watch.post("/admin/faults", spec)
        if fault.kind == "withdraw":
            st = await watch.get("/admin/state")
            free = float(st["spot"]["USDT"]["free"])
            await watch.post("/admin/deposit", {"account": "spot", "asset": "USDT", "amount": -(free - 500.0)})
            if self.exchange == "okx":  # one unified account: the swap wallet pays for spot too; leave it 500 as well
                wallet = float(st["futures"]["crossWallet"])
                await watch.post("/admin/deposit", {"account": "futures", "asset": "USDT", "amount": -(wallet - 500.0)})

    async def reach_phase(self) -> float | None:
        """Wait for the fault's phase (entry, holding, exit, guard); when it began (None: never seen)."""
        fault, node = self.fault, self.node
        if fault.phase == "entry":
            hit = await node.wait_line(r": enter: ", 30)
            if hit and fault.kind == "control":  # a flatten must meet every symbol's entry in flight
                hit = await _every_symbol(node, self.symbols, r"{}: enter: ", 30)
            if hit is None and fault.kind != "withdraw":
                self.notes.append("no entry seen")
            return time.monotonic() if hit else None
        if fault.phase == "holding":
            await _wait_both_legs(self.watch)
            return time.monotonic()
        if fault.phase == "exit":
            await _wait_both_legs(self.watch)
            self.cfg.write_text(_toml(self.symbols, self.url, self.journal, fault.phase, exit_now=True,
                                      alert_url=self.alert_url, control_port=self.control_port,
                                      exchange=self.exchange), encoding="utf-8")
            hit = await node.wait_line(r": exit: ", 45)
            if hit is None:
                self.notes.append("no exit seen")
            return time.monotonic() if hit else None
        if fault.phase == "guard":
            hit = await node.wait_line(r"guard \w+: REDUCE|: reduce: ", 45)
            if hit and fault.kind == "control":  # a flatten must meet every symbol's reduce in flight
                hit = await _every_symbol(node, self.symbols, r"{}: reduce: ", 45)
            if hit is None:
                self.notes.append("no guard action seen")
            return time.monotonic() if hit else None
        return None

    async def strike(self, t_phase: float | None, delay: float) -> float | None:
        """The fault at its seeded moment after the phase began (inject a spec, or kill -9 and restart the node);
        when it struck (None: not at all)."""
        fault = self.fault
        if fault.kind == "control":
            return await self.flatten(t_phase, delay)
        if t_phase is None or fault.kind not in ("inject", "kill"):
            return t_phase if fault.kind == "arm" else None
        await asyncio.sleep(max(0.0, t_phase + delay - time.monotonic()))
        t_fault = time.monotonic()
        if fault.kind == "inject":
            for spec in ([fault.spec(s) for s in self.symbols] if fault.per_symbol else [fault.spec]):
                await self.watch.post("/admin/faults", spec)
        else:
            self.node.signal(signal.SIGKILL)
            await self.node.wait(10)
            if not await self.start_node():
                self.notes.append("node did not restart")
        return t_fault

    async def flatten(self, t_phase: float | None, delay: float) -> float | None:
        """Control cells: the fault's spec (if any), then the operator's flatten of every symbol at the seeded moment;
        the venue's slowing (slow_ms) is lifted once the flatten is answered."""
        fault, watch = self.fault, self.watch
        if t_phase is None:
            self.notes.append("phase not reached: no flatten sent")
            return None
        await asyncio.sleep(max(0.0, t_phase + delay - time.monotonic()))
        t_fault = time.monotonic()
        if fault.spec is not None:
            for s in self.symbols:
                await watch.post("/admin/faults", fault.spec(s) if fault.per_symbol else fault.spec)
        flat = await _flatten(self.control_port, self.env[CONTROL_TOKEN_VAR], watch, self.symbols, self.notes,
                              fault.slow_ms > 0)
        self.flat = {s: {**f, "symbol": s} for s, f in flat.items()}
        if fault.slow_ms:
            await watch.post("/admin/faults", {"delay_ms": 0})
        return t_fault

    async def until_settled(self) -> None:
        """Cells end after the settlement and its booking (venue T + 120 s) so funding is judged too."""
        settle_ms = _ms(SETTLEMENT) + 120_000
        for _ in range(600):
            c = await self.watch.get("/sim/clock")
            if c["time"] >= settle_ms:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(4.0)  # the node reads the income history ~3 s after the settlement

    async def sigterm(self) -> tuple[int | None, float]:
        """A bounded stop: (exit status, seconds it took); SIGKILL after 60 s."""
        t0 = time.monotonic()
        self.node.signal(signal.SIGTERM)
        rc = await self.node.wait(60)
        stop_s = time.monotonic() - t0
        if rc is None:
            self.node.signal(signal.SIGKILL)
            await self.node.wait(5)
            self.notes.append("node ignored SIGTERM for 60 s")
        return rc, stop_s

    async def venue_records(self) -> tuple[dict, list, int]:
        """The venue's orders, funding payments and count of refused orders."""
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(self.url + "/admin/orders") as r:
                    venue_orders = await r.json()
                async with http.get(self.url + "/admin/funding") as r:
                    venue_funding = await r.json()
                async with http.get(self.url + "/admin/state") as r:
                    refused = (await r.json())["faults"]["injected"]["rejected"]
            return venue_orders, venue_funding, refused
        except Exception as e:  # noqa: BLE001
            self.notes.append(f"venue state unavailable: {e}")
            return {"spot": [], "futures": []}, [], 0


async def run_fault(fault: Fault, symbols: list[str], seed: int, workdir: Path, exchange: str = "binance"
                    ) -> list[CellResult]:
    rng = random.Random(f"{seed}:{fault.name}")
    work = workdir / fault.name
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASISBOT_")}
    env.update(BASISBOT_API_KEY=KEY, BASISBOT_API_SECRET=SECRET, BASISBOT_API_PASSPHRASE=PASSPHRASE,
               PYTHONUNBUFFERED="1")
    ex = EXCHANGES[exchange]
    venue = Proc("venue", [PY, "-m", "basisbot.cli", "sim", "--port", str(port), "--data", str(ex["data"]),
                           "--start", VENUE_START, "--speed", str(SPEED), "--api-key", KEY, "--api-secret", SECRET,
                           *ex["sim_args"], "--symbols", ",".join(symbols), "--paused"], env, work / "venue.log")
    journal = work / "journal.sqlite"
    cfg = work / "basisbot.toml"
    sink = AlertSink() if fault.name.startswith("adl") else None
    if sink is not None:
        await sink.start()
    control_port = free_port() if fault.kind == "control" else None
    if control_port is not None:
        env[CONTROL_TOKEN_VAR] = f"fm-{seed}-" + "c" * 24
    cfg.write_text(_toml(symbols, url, journal, fault.phase, alert_url=sink.url if sink else None,
                         control_port=control_port, exchange=exchange), encoding="utf-8")
    node_args = [PY, "-m", "basisbot.cli", "live", "--config", str(cfg), "--env-file", "/nonexistent"]
    t_cell = time.monotonic()
    await venue.start()
    if await venue.wait_line(r"listening on", 60) is None:
        venue.signal(signal.SIGKILL)
        return [CellResult(fault.name, s, False, problems=["venue did not start"]) for s in symbols]
    watch = VenueWatch(url, symbols)
    watch.start()
    cell = _Cell(fault, symbols, url, cfg, journal, node_args, env, work / "node.log", watch,
                 control_port=control_port, alert_url=sink.url if sink else None, exchange=exchange)
    stop_s = None
    rc = None
    try:
        await cell.prepare()
        if not await cell.start_node():
            raise RuntimeError("node did not start")
        if fault.slow_ms:  # the node runs: from now on each order takes slow_ms to reach the book
            await watch.post("/admin/faults", {"delay_ms": fault.slow_ms})
        await watch.post("/admin/clock", {"resume": True})
        t_phase = await cell.reach_phase()
        lo, hi = fault.window_s
        t_fault = await cell.strike(t_phase, rng.uniform(lo, hi))
        if fault.clear_after_s is not None and t_fault is not None:
            await asyncio.sleep(max(0.0, t_fault + fault.clear_after_s - time.monotonic()))
            await watch.post("/admin/faults", {"clear": True})
        # observe, then make sure a settlement has passed
        await asyncio.sleep(max(0.0, (t_fault or time.monotonic()) + fault.hold_s - time.monotonic()))
        if fault.name == "second_leg_rejected_always":
            await watch.post("/admin/faults", {"clear": True})
        await cell.until_settled()
        for f in cell.flat.values():  # paused after the flatten: still flat although the config would enter at once
            f["flat_at_end"] = watch.flat.get(f["symbol"], False)
        rc, stop_s = await cell.sigterm()
    except Exception as e:  # noqa: BLE001 - the cell fails with the reason
        cell.notes.append(f"{type(e).__name__}: {e}")
        for n in cell.nodes:
            n.signal(signal.SIGKILL)
    finally:
        await asyncio.sleep(0.3)
        await watch.stop()
        venue_orders, venue_funding, refused = await cell.venue_records()
        venue.signal(signal.SIGTERM)
        await venue.wait(10)
        if sink is not None:
            await sink.stop()
    restarts = len(cell.nodes) - 1
    return judge(fault, symbols, watch, venue_orders, venue_funding, journal, rc, stop_s, cell.notes,
                 time.monotonic() - t_cell, restarts, refused, alerts=sink.received if sink else None,
                 flat=cell.flat if fault.kind == "control" else None)


async def _every_symbol(node: Proc, symbols: list[str], pattern: str, timeout: float):
    """The last of `pattern` (with {} = the symbol) logged for every symbol, or None."""
    hit = None
    for s in symbols:
        hit = await node.wait_line(pattern.format(s), timeout)
        if hit is None:
            return None
    return hit


async def _flatten(port: int, token: str, watch: VenueWatch, symbols: list[str], notes: list[str],
                   need_pair: bool) -> dict[str, dict]:
    """The operator's flatten of every symbol (what `basisbot control flatten --all` posts); then the time until each
    symbol is flat at the venue (polled every POLL_S by `watch`). `need_pair`: the node must answer that a pair was
    in flight for the symbol (else the cell did not test what it names)."""
    t0 = time.monotonic()
    answers: dict[str, dict] = {}
    try:
        async with watch.http.post(f"http://127.0.0.1:{port}/control", timeout=aiohttp.ClientTimeout(total=15),
                                   json={"command": "flatten", "symbols": "all", "origin": "cli",
                                         "reason": "fault matrix"},
                                   headers={"Authorization": f"Bearer {token}"}) as r:
            body = await r.json()
        if r.status != 200 or not body.get("ok"):
            notes.append(f"flatten refused: HTTP {r.status} {body.get('error')}")
        answers = {a["symbol"]: a for a in body.get("results") or []}
    except Exception as e:  # noqa: BLE001 - the cell fails with the reason
        notes.append(f"flatten not answered: {type(e).__name__}: {e}")
    out = {s: {"flat_after_s": None, "flat_at_end": False, "answer": answers.get(s, {}).get("answer"),
               "pair": answers.get(s, {}).get("pair"), "need_pair": need_pair} for s in symbols}
    # flat = flat from then on: a pair in flight may still be filling at the venue when the flatten is sent (the
    # venue looks flat before an entry's orders reach it), so the time is that of the last sample still holding
    last_held = dict.fromkeys(symbols, t0)
    n = watch.samples
    deadline = t0 + FLAT_WITHIN_S + 4.0
    while time.monotonic() < deadline:
        if watch.samples != n:
            n = watch.samples
            for s in symbols:
                if not watch.flat.get(s):
                    last_held[s] = time.monotonic()
        await asyncio.sleep(POLL_S / 5)
    for s in symbols:
        if watch.flat.get(s):
            out[s]["flat_after_s"] = round(last_held[s] - t0, 2)
    return out


def _ms(iso: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _read_journal(journal: Path) -> tuple[dict, set, list]:
    """The journal's orders by client id, its fills as (symbol, trade id) and its funding rows (empty if absent)."""
    if not journal.exists():
        return {}, set(), []
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    j_orders = {r["client_order_id"]: dict(r) for r in con.execute("SELECT * FROM orders")}
    j_fills = {(r["symbol"], str(r["trade_id"])) for r in con.execute("SELECT symbol, trade_id FROM fills")}
    j_funding = [dict(r) for r in con.execute("SELECT * FROM funding")]
    con.close()
    return j_orders, j_fills, j_funding


def _reduce_pairs(journal: Path, symbol: str) -> int:
    """How many guard reduces (leg pairs of intent "reduce") the journal holds for `symbol`."""
    if not journal.exists():
        return 0
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return con.execute("SELECT COUNT(DISTINCT pair_id) FROM legs WHERE symbol = ? AND intent = 'reduce'",
                           [symbol]).fetchone()[0]
    finally:
        con.close()


def _fill_orders(journal: Path) -> dict:
    """(symbol, trade id) -> client order id of every journaled fill. A venue-initiated close reaches nautilus as an
    order status report; the fill nautilus infers from it carries a trade id of its own, not the venue's."""
    if not journal.exists():
        return {}
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return {(r[0], str(r[1])): str(r[2] or "") for r in
                con.execute("SELECT symbol, trade_id, client_order_id FROM fills")}
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def _adl_journaled(journal: Path, symbol: str) -> bool:
    """A decision row naming the venue's deleveraging (action "adl")."""
    if not journal.exists():
        return False
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return con.execute("SELECT COUNT(*) FROM decisions WHERE symbol = ? AND action = 'adl'",
                           (symbol,)).fetchone()[0] > 0
    except sqlite3.OperationalError:  # no decisions table yet: nothing written
        return False
    finally:
        con.close()


def _unexplained(symbol: str, j_orders: dict, j_fills: set, venue_cids: set, venue_trades: set) -> list[str]:
    """Journal rows of `symbol` the venue contradicts: orders it acknowledged but does not hold (or the reverse),
    orders left in flight, fills it never made."""
    out = []
    for c, o in j_orders.items():
        if o.get("symbol") != symbol:
            continue
        at_venue = c in venue_cids
        st = o.get("status")
        if st in ("accepted", "filled", "partially_filled", "canceled", "expired") and not at_venue:
            out.append(f"{c} {st} not at venue")
        if st in ("not_at_venue",) and at_venue:
            out.append(f"{c} not_at_venue but the venue has it")
        if st in ("submitted", "initialized"):
            out.append(f"{c} left {st}")
    out += [f"fill {tid} not at venue" for sym, tid in j_fills if sym == symbol and tid not in venue_trades]
    return out


def _adl_problems(s: str, orders: list[dict], journal: Path, alerts: list[dict] | None) -> list[str]:
    """An ADL cell: the venue deleveraged the short, the journal names it, an alert says so."""
    problems = []
    if not any(o["clientOrderId"].startswith("adl_autoclose") for o in orders):
        problems.append("the venue did not deleverage the short")
    if not _adl_journaled(journal, s):
        problems.append("no journal decision naming the ADL")
    if not any(s in str(a.get("title", "")) and "AUTO-DELEVERAGED" in str(a.get("title", "")) for a in alerts or []):
        problems.append("no ADL alert")
    return problems


def _flatten_problems(f: dict | None) -> list[str]:
    """A control cell: flat within the limit of the command and still flat at the end, the node's answer."""
    problems = []
    if f is None or f["flat_after_s"] is None or f["flat_after_s"] > FLAT_WITHIN_S:
        problems.append(f"not flat within {FLAT_WITHIN_S:g}s of the flatten ({None if f is None else f['flat_after_s']})")
    elif not f["flat_at_end"]:
        problems.append("held again at the end: entered while paused")
    if f is not None and f["answer"] != "flattening":
        problems.append(f"the node answered {f['answer']!r} to the flatten")
    if f is not None and f["need_pair"] and not f["pair"]:
        problems.append("no pair was in flight at the flatten: the cell did not test what it names")
    return problems


def judge(fault: Fault, symbols, watch: VenueWatch, venue_orders: dict, venue_funding: list, journal: Path,
          rc, stop_s, notes, cell_s: float, restarts: int, refused: int = 0,
          alerts: list[dict] | None = None, flat: dict[str, dict] | None = None) -> list[CellResult]:
    """`refused`: orders the venue refused (all symbols; a refused order is not stored with the venue's orders, so
    a storm of refusals is judged on this count: at most ORDERS_PER_MIN_MAX per symbol and started minute)."""
    j_orders, j_fills, j_funding = _read_journal(journal)
    j_fill_orders = _fill_orders(journal)
    limit = LEG_TIMEOUT_S + 6.0 + 3.0 + fault.extra_limit_s
    out = []
    for s in symbols:
        problems = list(notes)
        orders = [o for v in ("spot", "futures") for o in venue_orders.get(v, []) if o["symbol"] == s]
        cids = [o["clientOrderId"] for o in orders]
        own = [c for c in cids if not c.startswith(VENUE_CLOSE_PREFIXES)]
        dup = len(own) - len(set(own))
        times = sorted(o["time"] for o in orders)  # venue ms: a minute of wall is SPEED minutes of venue time
        win = 60_000 * SPEED
        per_min = max((sum(1 for t in times if t0 <= t < t0 + win) for t0 in times), default=0)
        # the node journals the exchange's own closing orders under "<venue client id>-<venue order id>"
        journaled_as = [f"{o['clientOrderId']}-{o['orderId']}" if o["clientOrderId"].startswith(VENUE_CLOSE_PREFIXES)
                        else o["clientOrderId"] for o in orders]
        lacks = [j for j in journaled_as if j not in j_orders]
        venue_trades = {str(t["id"]) for o in orders for t in o["trades"]}
        inferred = {(s, t) for (sym, t), c in j_fill_orders.items() if sym == s and c.startswith(VENUE_CLOSE_PREFIXES)}
        unexplained = _unexplained(s, j_orders, j_fills - inferred, set(journaled_as), venue_trades)
        paid = [f for f in venue_funding if f["symbol"] == s]
        j_paid = [f["settled_payment"] for f in j_funding if f["symbol"] == s and f["settled_payment"] is not None]
        funding_lacks = [f for f in paid if not any(abs(f["payment"] - x) < 1e-6 for x in j_paid)]
        longest = watch.longest[s]
        if longest > limit:
            problems.append(f"one-legged {longest:.1f}s > {limit:.0f}s")
        if dup:
            problems.append(f"{dup} duplicate client id(s)")
        if per_min > ORDERS_PER_MIN_MAX:
            problems.append(f"{per_min} orders/min")
        refused_cap = ORDERS_PER_MIN_MAX * len(symbols) * max(1, -(-int(cell_s) // 60))
        if refused > refused_cap:
            problems.append(f"{refused} orders refused by the venue (storm; at most {refused_cap})")
        if lacks:
            problems.append(f"journal lacks {len(lacks)} venue order(s)")
        if funding_lacks:
            problems.append(f"journal lacks {len(funding_lacks)} funding payment(s)")
        if unexplained:
            problems.append(f"{len(unexplained)} journal row(s) unexplained: {unexplained[:3]}")
        if fault.name.startswith("adl"):
            problems += _adl_problems(s, orders, journal, alerts)
        if fault.name == "kill9_guard" and (n := _reduce_pairs(journal, s)) > 1:
            problems.append(f"{n} guard reduces: the restarted guard reduced again instead of putting the margin back")
        d = watch.distance.get(s)
        if fault.phase == "guard" and d is not None and d <= GUARD_REDUCE_DISTANCE:
            problems.append(f"perp left {d:.1%} from liquidation at the end (the guard reduces at "
                            f"{GUARD_REDUCE_DISTANCE:.0%}): the guard did not act")
        if rc not in (0,):
            problems.append(f"SIGTERM exit {rc} after {stop_s if stop_s is None else round(stop_s, 1)}s")
        f = (flat or {}).get(s)
        if flat is not None:
            problems += _flatten_problems(f)
        out.append(CellResult(fault.name, s, not problems, {
            "one_legged_s": round(longest, 2), "orders": len(orders), "max_orders_per_min": per_min,
            "funding_paid": len(paid), "funding_journaled": len(paid) - len(funding_lacks),
            "stop_s": None if stop_s is None else round(stop_s, 1), "exit": rc, "cell_s": round(cell_s, 1),
            "restarts": restarts, "polls": watch.samples, "end_distance": None if d is None else round(d, 4),
            "refused_all_symbols": refused,
            **({"flat_after_s": f["flat_after_s"], "pair_at_flatten": f["pair"]} if f else {})}, problems))
    return out


def print_matrix(results: list[CellResult], symbols: list[str]) -> None:
    by = {(r.fault, r.symbol): r for r in results}
    faults = list(dict.fromkeys(r.fault for r in results))
    w = max(len(f) for f in faults) + 2
    print("fault".ljust(w) + "".join(s.ljust(48) for s in symbols) + "worst one-legged")
    for f in faults:
        row = f.ljust(w)
        worst = 0.0
        for s in symbols:
            r = by.get((f, s))
            if r is None:
                row += "-".ljust(48)
                continue
            g = r.figures
            worst = max(worst, g.get("one_legged_s", 0.0))
            cell = (f"{'PASS' if r.passed else 'FAIL'} 1leg {g.get('one_legged_s')}s ord {g.get('orders')}"
                    + (f" flat {g['flat_after_s']}s" if g.get("flat_after_s") is not None else "")
                    + f"{'+' + str(g['refused_all_symbols']) + 'r' if g.get('refused_all_symbols') else ''} "
                    f"/min {g.get('max_orders_per_min')} fund {g.get('funding_journaled')}/{g.get('funding_paid')}")
            row += cell.ljust(48)
        print(row + f"{worst:.2f}s")
    for r in results:
        if not r.passed:
            print(f"  {r.fault} {r.symbol}: {'; '.join(r.problems)}")


async def main_async(args) -> int:
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    skip = EXCHANGES[args.exchange]["not_applicable"]
    names = [f.strip() for f in args.faults.split(",")] if args.faults else [f for f in FAULTS if f not in skip]
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        print(f"error: unknown fault(s) {unknown}; known: {', '.join(FAULTS)}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fault_matrix_"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    sem = asyncio.Semaphore(args.parallel)
    results: list[CellResult] = []

    async def one(name: str):
        async with sem:
            t = time.monotonic()
            res = await run_fault(FAULTS[name], symbols, args.seed, workdir, args.exchange)
            print(f"  {name}: {'pass' if all(r.passed for r in res) else 'FAIL'} ({time.monotonic() - t:.0f}s)",
                  flush=True)
            results.extend(res)

    await asyncio.gather(*(one(n) for n in names))
    order = {n: i for i, n in enumerate(names)}
    results.sort(key=lambda r: (order[r.fault], symbols.index(r.symbol)))
    print(f"\nfault matrix: {args.exchange}, seed {args.seed}, symbols {','.join(symbols)}, {len(names)} faults, "
          f"{time.monotonic() - t0:.0f}s wall (parallel {args.parallel}); logs in {workdir}")
    print_matrix(results, symbols)
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=1), encoding="utf-8")
    return 0 if all(r.passed for r in results) else 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--exchange", choices=sorted(EXCHANGES), default="binance",
                   help="the venue's API and the node's [exchange] name")
    p.add_argument("--faults", help=f"comma-separated subset of: {', '.join(FAULTS)}")
    p.add_argument("--parallel", type=int, default=3, help="fault cells run at once (each: one venue + one node)")
    p.add_argument("--workdir", help="where configs, journals and logs go (default: a temp folder)")
    p.add_argument("--json", help="also write the results as JSON here")
    return p.parse_args(argv)


def main(argv=None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
