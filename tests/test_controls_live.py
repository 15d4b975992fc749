"""The operator's hands on a running node: `basisbot live` holding BTC and ETH carries on
`basisbot sim` replaying at 60x, commanded with `basisbot control` through its ops server, judged from the VENUE
(its admin state polled every 0.25 s, as the fault matrix does):

- a wrong token is refused (exit 1) and journaled without the token; an unknown symbol is bad input (exit 2);
- `flatten --all` leaves no position on either leg of either symbol within leg_timeout_s + 5 s, with no one-legged
  stretch longer than leg_timeout_s; the node stays flat while paused (the carry rules want to enter at once);
- a second flatten while the first one's pairs are in flight (the venue slowed meanwhile) answers "already
  flattening" and starts nothing; `status` shows the state (exit 0);
- `resume --all` lets both enter again; the journal holds every command with its origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

from pydantic import SecretStr

from basisbot import cli
from basisbot.config.loading import load_settings
from basisbot.journal.writer import JournalReader
from basisbot.live.node import NodeOptions
from basisbot.sim import SimServer
from basisbot.strategies.basis_carry import Phase
from tests.helpers.live_node import RunningNode, sim_config, until, write_config
from tests.helpers.sim_venue import KEY, SECRET, admin, state

SYMS = ("BTCUSDT", "ETHUSDT")
LEG_TIMEOUT_S = 3.0
TOKEN_VAR = "BASISBOT_TEST_CONTROL_TOKEN"
TOKEN = "ctl-" + "x" * 28
MIN_NOTIONAL = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VenueLegs:
    """The venue's legs per symbol every 0.25 s; the longest stretch with one leg alone (or the hedge off > 25%)."""

    def __init__(self, sim):
        self.sim = sim
        self.legs: dict[str, tuple[float, float]] = {}
        self.held: dict[str, tuple[bool, bool]] = {}  # (spot, perp) worth at least the venue's minimum notional
        self.longest = dict.fromkeys(SYMS, 0.0)
        self._since: dict[str, float | None] = dict.fromkeys(SYMS)
        self._task: asyncio.Task | None = None

    async def _loop(self):
        while True:
            st = await state(self.sim)
            now = time.monotonic()
            perp = {p["symbol"]: float(p["positionAmt"]) for p in st["futures"]["positions"]}
            for s in SYMS:
                bal = st["spot"].get(s[:-4]) or {"free": 0.0, "locked": 0.0}
                spot, p, px = float(bal["free"]) + float(bal["locked"]), perp.get(s, 0.0), st["prices"][s]["mark"]
                self.legs[s] = (spot, p)
                self.held[s] = (spot_on := spot * px >= MIN_NOTIONAL, abs(p) * px >= MIN_NOTIONAL)
                perp_on = self.held[s][1]
                bad = spot_on != perp_on or (spot_on and (abs(spot - abs(p)) / max(spot, abs(p)) > 0.25 or p > 0))
                if bad and self._since[s] is None:
                    self._since[s] = now
                elif not bad and self._since[s] is not None:
                    self.longest[s] = max(self.longest[s], now - self._since[s])
                    self._since[s] = None
            await asyncio.sleep(0.25)

    def start(self):
        self._task = asyncio.create_task(self._loop())

    async def stop(self):
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        now = time.monotonic()
        for s, t0 in self._since.items():
            if t0 is not None:
                self.longest[s] = max(self.longest[s], now - t0)

    def flat(self) -> bool:
        """No perp position, and no spot worth the minimum notional (what a sale could not deliver is dust)."""
        return all(s in self.legs and self.legs[s][1] == 0 and not self.held[s][0] for s in SYMS)

    def both_held(self) -> bool:
        return all(s in self.legs and self.legs[s][0] > 0 and self.legs[s][1] < 0 for s in SYMS)


async def control(cfg: Path, *args: str) -> int:
    return await asyncio.to_thread(cli.main, ["control", "--config", str(cfg), "--env-file", "/nonexistent", *args])


async def scenario(tmp: Path, monkeypatch, capsys) -> dict:
    out: dict = {}
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    port = free_port()
    async with SimServer(sim_config(speed=60.0, start="2022-03-01T01:00:00Z", symbols=list(SYMS))) as sim:
        sym_cfg = {"notional_usdt": 3000.0, "leverage": 2, "entry_apr": -1000.0, "exit_apr": -2000.0,
                   "min_hold_intervals": 0, "leg_timeout_s": LEG_TIMEOUT_S, "slippage_band": 0.01,
                   "guard": {"enabled": False}}
        cfg = write_config(tmp, sim.url, symbols={s: dict(sym_cfg) for s in SYMS},
                           live={"metrics_port": port})
        with cfg.open("a") as f:
            f.write(f'[control]\ntoken_env = "{TOKEN_VAR}"\n')
        settings = load_settings(cfg, env_file=None).model_copy(
            update={"api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET)})
        venue = VenueLegs(sim)
        venue.start()
        try:
            async with RunningNode(settings, "live", NodeOptions(log_level="WARNING", env_file=None)) as node:
                strats = [node.strategy(s) for s in SYMS]
                await until(lambda: all(st.phase is Phase.IN_CARRY for st in strats), 40, what="both entered")
                await until(venue.both_held, 10, what="venue holds both legs of both")
                capsys.readouterr()
                # bad input and a wrong token first: nothing may change
                out["unknown_symbol_rc"] = await control(cfg, "pause", "DOGEUSDT")
                out["no_target_rc"] = await control(cfg, "flatten")
                monkeypatch.setenv(TOKEN_VAR, "wrong-token")
                out["wrong_token_rc"] = await control(cfg, "flatten", "--all")
                monkeypatch.setenv(TOKEN_VAR, TOKEN)
                out["after_refusals"] = [st.control.mode for st in strats]
                out["refusal_err"] = capsys.readouterr().err
                # flatten every symbol, judged from the venue; the first flatten's orders take 0.6 s to reach the
                # venue's book, so that the second flatten meets its pairs in flight
                await admin(sim, "/admin/faults", {"delay_ms": 600})
                t0 = time.monotonic()
                out["flatten_rc"] = await control(cfg, "flatten", "--all", "--reason", "test")
                out["flatten_out"] = capsys.readouterr().out
                out["second_flatten_rc"] = await control(cfg, "flatten", "--all")
                out["second_flatten_out"] = capsys.readouterr().out
                await admin(sim, "/admin/faults", {"delay_ms": 0})
                await until(lambda: venue.flat() and all(st.control.mode == "paused" for st in strats),
                            LEG_TIMEOUT_S + 15, interval=0.05, what="flat")
                out["flat_after_s"] = time.monotonic() - t0
                out["longest_one_leg_s"] = dict(venue.longest)
                # paused: the rules (entry_apr -1000) would enter at once; nothing may be bought
                await asyncio.sleep(6.0)
                out["flat_while_paused"] = venue.flat() and all(st.phase is Phase.FLAT for st in strats)
                out["status_rc"] = await control(cfg, "status")
                out["status_out"] = capsys.readouterr().out
                out["resume_rc"] = await control(cfg, "resume", "--all")
                await until(lambda: all(st.phase is Phase.IN_CARRY for st in strats), 30, what="re-entered")
                await until(venue.both_held, 10, what="venue holds both legs again")
                out["reentered"] = True
        finally:
            await venue.stop()
        out["longest_total_s"] = dict(venue.longest)
    with JournalReader(settings.journal) as r:
        out["control_rows"] = r.rows("control", order_by="ts, rowid")
        out["decisions"] = [(d["symbol"], d["action"]) for d in r.rows("decisions", order_by="ts, rowid")]
    out["journal_bytes"] = Path(settings.journal).read_bytes()
    return out


def test_flatten_pause_resume_on_the_local_venue(tmp_path, monkeypatch, capsys):
    out = asyncio.run(asyncio.wait_for(scenario(tmp_path, monkeypatch, capsys), 240))
    with capsys.disabled():
        print(f"\nflat after {out['flat_after_s']:.2f}s; longest one-legged stretch {out['longest_total_s']}")
    assert out["unknown_symbol_rc"] == 2 and out["no_target_rc"] == 2
    assert out["wrong_token_rc"] == 1 and "refused" in out["refusal_err"]
    assert out["after_refusals"] == ["active", "active"]
    assert out["flatten_rc"] == 0, out
    assert "flattening" in out["flatten_out"] and out["second_flatten_rc"] == 0
    assert out["second_flatten_out"].count("already flattening") == 2, out["second_flatten_out"]
    assert out["flat_after_s"] <= LEG_TIMEOUT_S + 5, out["flat_after_s"]
    assert max(out["longest_total_s"].values()) <= LEG_TIMEOUT_S, out["longest_total_s"]
    assert out["flat_while_paused"]
    assert out["status_rc"] == 0 and out["status_out"].count("-> paused") == 2, out["status_out"]
    assert out["resume_rc"] == 0 and out["reentered"]
    rows = out["control_rows"]
    by = {(r["symbol"], r["command"]) for r in rows}
    for s in SYMS:
        assert {(s, "flatten"), (s, "flattened"), (s, "resume")} <= by, rows
    assert all(r["origin"] == "cli" for r in rows if r["symbol"] in SYMS)
    refused = [r for r in rows if r["command"] == "refused"]
    assert refused and all(r["origin"] == "cli" for r in refused)
    assert TOKEN.encode() not in out["journal_bytes"] and b"wrong-token" not in out["journal_bytes"]
    assert sum(1 for s, a in out["decisions"] if a == "flatten") == 2  # one close per symbol: no second flatten


async def telegram_scenario(tmp: Path, monkeypatch) -> dict:
    from tests.helpers.fake_telegram import FakeBotAPI

    bot_token = "4242:" + "T" * 30
    monkeypatch.setenv("BASISBOT_TEST_TG_TOKEN", bot_token)
    out: dict = {}
    async with FakeBotAPI(bot_token) as tg, \
            SimServer(sim_config(speed=60.0, start="2022-03-01T01:00:00Z", symbols=list(SYMS))) as sim:
        sym_cfg = {"notional_usdt": 3000.0, "leverage": 2, "entry_apr": -1000.0, "exit_apr": -2000.0,
                   "min_hold_intervals": 0, "leg_timeout_s": LEG_TIMEOUT_S, "guard": {"enabled": False}}
        cfg = write_config(tmp, sim.url, symbols={s: dict(sym_cfg) for s in SYMS})
        with cfg.open("a") as f:
            f.write(f'[control]\ntelegram_token_env = "BASISBOT_TEST_TG_TOKEN"\ntelegram_chat_ids = [111]\n'
                    f'telegram_base_url = "{tg.base_url}"\ntelegram_poll_s = 1\n')
        settings = load_settings(cfg, env_file=None).model_copy(
            update={"api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET)})
        venue = VenueLegs(sim)
        venue.start()
        try:
            async with RunningNode(settings, "live", NodeOptions(log_level="WARNING", env_file=None)) as node:
                strats = {s: node.strategy(s) for s in SYMS}
                await until(lambda: all(st.phase is Phase.IN_CARRY for st in strats.values()), 40, what="entered")
                await until(venue.both_held, 10, what="venue holds both")

                async def ask(chat: int, text: str, replies: int = 1) -> list[str]:
                    n = len(tg.sent)
                    tg.say(chat, text)
                    await until(lambda: len(tg.sent) >= n + replies, 10, what=f"reply to {text}")
                    return [t for _, t in tg.sent[n:]]

                tg.say(999, "/flatten")  # not an allowed chat: ignored, never answered
                out["status"] = (await ask(111, "/status"))[0]
                out["after_stranger"] = [st.control.mode for st in strats.values()]
                out["pause_eth"] = (await ask(111, "/pause ETHUSDT"))[0]
                out["flatten_btc"] = (await ask(111, "/flatten BTCUSDT"))[0]
                out["bad_symbol"] = (await ask(111, "/flatten DOGEUSDT"))[0]
                await until(lambda: venue.legs["BTCUSDT"][1] == 0 and not venue.held["BTCUSDT"][0]
                            and strats["BTCUSDT"].control.mode == "paused", 15, what="BTC flat")
                out["eth_held"] = venue.legs["ETHUSDT"][0] > 0 and venue.legs["ETHUSDT"][1] < 0
                out["modes"] = {s: st.control.mode for s, st in strats.items()}
                out["to_stranger"] = [t for c, t in tg.sent if c == 999]
        finally:
            await venue.stop()
        out["longest"] = dict(venue.longest)
    with JournalReader(settings.journal) as r:
        out["control_rows"] = r.rows("control", order_by="ts, rowid")
    out["journal_bytes"] = Path(settings.journal).read_bytes()
    out["bot_token"] = bot_token
    return out


def test_telegram_commands_against_a_fake_bot_api(tmp_path, monkeypatch):
    out = asyncio.run(asyncio.wait_for(telegram_scenario(tmp_path, monkeypatch), 240))
    assert "BTCUSDT: active" in out["status"] and "ETHUSDT: active" in out["status"], out["status"]
    assert out["after_stranger"] == ["active", "active"] and out["to_stranger"] == []
    assert out["pause_eth"].startswith("ETHUSDT: paused"), out["pause_eth"]
    assert out["flatten_btc"].startswith("BTCUSDT: flattening"), out["flatten_btc"]
    assert out["bad_symbol"].startswith("refused: unknown symbol(s) DOGEUSDT"), out["bad_symbol"]
    assert out["eth_held"] and out["modes"] == {"BTCUSDT": "paused", "ETHUSDT": "paused"}
    assert max(out["longest"].values()) <= LEG_TIMEOUT_S
    rows = out["control_rows"]
    assert {(r["symbol"], r["command"], r["origin"]) for r in rows} >= {
        ("*", "refused", "telegram"), ("ETHUSDT", "pause", "telegram"), ("BTCUSDT", "flatten", "telegram"),
        ("BTCUSDT", "flattened", "telegram")}
    assert out["bot_token"].encode() not in out["journal_bytes"]


async def restart_scenario(tmp: Path, monkeypatch) -> dict:
    """Flatten BTC and pause ETH (held), stop the node, start it again on the same journal: both come back so."""
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    out: dict = {}
    async with SimServer(sim_config(speed=60.0, start="2022-03-01T01:00:00Z", symbols=list(SYMS))) as sim:
        sym_cfg = {"notional_usdt": 3000.0, "leverage": 2, "entry_apr": -1000.0, "exit_apr": -2000.0,
                   "min_hold_intervals": 0, "leg_timeout_s": LEG_TIMEOUT_S, "guard": {"enabled": False}}
        cfg = write_config(tmp, sim.url, symbols={s: dict(sym_cfg) for s in SYMS}, live={"metrics_port": free_port()})
        with cfg.open("a") as f:
            f.write(f'[control]\ntoken_env = "{TOKEN_VAR}"\n')
        settings = load_settings(cfg, env_file=None).model_copy(
            update={"api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET)})
        venue = VenueLegs(sim)
        venue.start()
        try:
            async with RunningNode(settings, "live", NodeOptions(log_level="WARNING", env_file=None)) as node:
                strats = {s: node.strategy(s) for s in SYMS}
                await until(lambda: all(st.phase is Phase.IN_CARRY for st in strats.values()), 40, what="entered")
                out["pause_rc"] = await control(cfg, "pause", "ETHUSDT")
                out["flatten_rc"] = await control(cfg, "flatten", "BTCUSDT")
                await until(lambda: strats["BTCUSDT"].control.mode == "paused" and venue.legs["BTCUSDT"][1] == 0,
                            15, what="BTC flat")
            async with RunningNode(settings, "live", NodeOptions(log_level="WARNING", env_file=None)) as node:
                strats = {s: node.strategy(s) for s in SYMS}
                await asyncio.sleep(6.0)  # the rules would enter BTC at once, were it not paused
                out["modes"] = {s: st.control.mode for s, st in strats.items()}
                out["phases"] = {s: st.phase for s, st in strats.items()}
                out["btc_flat"] = venue.legs["BTCUSDT"][1] == 0 and not venue.held["BTCUSDT"][0]
                out["eth_held"] = venue.legs["ETHUSDT"][1] < 0
                out["resume_rc"] = await control(cfg, "resume", "BTCUSDT")
                await until(lambda: strats["BTCUSDT"].phase is Phase.IN_CARRY, 30, what="BTC re-entered")
        finally:
            await venue.stop()
    return out


def test_control_state_survives_a_restart(tmp_path, monkeypatch):
    out = asyncio.run(asyncio.wait_for(restart_scenario(tmp_path, monkeypatch), 240))
    assert out["pause_rc"] == 0 and out["flatten_rc"] == 0
    assert out["modes"] == {"BTCUSDT": "paused", "ETHUSDT": "paused"}
    assert out["phases"] == {"BTCUSDT": Phase.FLAT, "ETHUSDT": Phase.IN_CARRY}
    assert out["btc_flat"] and out["eth_held"] and out["resume_rc"] == 0


async def risk_scenario(tmp: Path) -> dict:
    """[risk] in a live node: the gross notional cap lets one carry in and refuses the other; a drawdown limit
    below the entry's fees (~4.5 USDT of 150k: 0.003%) trips at the entry and flattens what is held; journaled,
    alerted, flat at the venue."""
    out: dict = {}
    async with SimServer(sim_config(speed=60.0, start="2022-03-01T01:00:00Z", symbols=list(SYMS))) as sim:
        sym_cfg = {"notional_usdt": 3000.0, "leverage": 2, "entry_apr": -1000.0, "exit_apr": -2000.0,
                   "min_hold_intervals": 0, "leg_timeout_s": LEG_TIMEOUT_S, "guard": {"enabled": False}}
        cfg = write_config(tmp, sim.url, symbols={s: dict(sym_cfg) for s in SYMS})
        with cfg.open("a") as f:  # one carry is ~6000 USDT over both legs: a second one is beyond 9000
            f.write("[risk]\nmax_gross_notional_usdt = 9000\nmax_drawdown_pct = 0.001\naction = \"flatten\"\n")
        settings = load_settings(cfg, env_file=None).model_copy(
            update={"api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET)})
        venue = VenueLegs(sim)
        venue.start()
        try:
            async with RunningNode(settings, "live", NodeOptions(log_level="WARNING", env_file=None)) as node:
                strats = {s: node.strategy(s) for s in SYMS}
                await until(lambda: all(st.control.mode == "paused" for st in strats.values()), 30,
                            what="the drawdown limit paused every symbol")
                await until(venue.flat, 15, what="flat at the venue")
                out["entered"] = [s for s, st in strats.items()
                                  if any(a == "enter" for _, a, _ in st.log_.decisions)]
                out["skipped"] = [(s, r) for s, st in strats.items() for _, a, r in st.log_.decisions
                                  if a == "skip_entry"]
                out["alerts"] = [a.event for a in node.app.ops.rules.emitted]
        finally:
            await venue.stop()
        out["longest"] = dict(venue.longest)
    with JournalReader(settings.journal) as r:
        out["risk_rows"] = r.rows("risk")
        out["control_rows"] = r.rows("control")
    return out


def test_risk_limits_in_a_live_node(tmp_path):
    out = asyncio.run(asyncio.wait_for(risk_scenario(tmp_path), 240))
    assert len(out["entered"]) == 1, out
    assert any("max_gross_notional_usdt 9000" in r for _, r in out["skipped"]), out["skipped"]
    (row,) = out["risk_rows"]
    assert row["limit_name"] == "max_drawdown_pct" and row["action"] == "flatten" and row["value"] > 0.001
    assert {(r["symbol"], r["command"], r["origin"]) for r in out["control_rows"]} >= {
        (s, "flatten", "risk") for s in SYMS}
    assert "risk_breach" in out["alerts"]
    assert max(out["longest"].values()) <= LEG_TIMEOUT_S
