"""Controls and risk limits without a node: the command rules, the risk book, the settings, the ops server's
POST /control (auth, methods, bad input), the Telegram command parser and the CLI's bad input."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from basisbot import cli
from basisbot.config.loading import ConfigError, load_settings
from basisbot.core import control, risk
from basisbot.ops.control import ControlHub
from basisbot.ops.server import OpsServer

DAY = risk.DAY_NS


# -- the command rules ----------------------------------------------------------------------------------------------
def test_commands():
    s = control.ControlState()
    assert s.mode == "active" and s.entries_allowed
    s, a = control.apply(s, "pause", "cli", "", 1)
    assert (s.mode, a) == ("paused", "paused") and not s.entries_allowed
    s2, a = control.apply(s, "pause", "page", "", 2)
    assert s2 is s and a == "already paused"
    s, a = control.apply(s, "flatten", "telegram", "why", 3)
    assert (s.mode, a, s.origin, s.reason) == ("flattening", "flattening", "telegram", "why")
    s2, a = control.apply(s, "flatten", "cli", "", 4)
    assert s2 is s and a == "already flattening"  # a second flatten changes nothing
    assert control.apply(s, "status", "cli", "", 5) == (s, "flattening")
    done = control.flattened(s)
    assert done.mode == "paused"
    s, a = control.apply(done, "resume", "cli", "", 6)
    assert (s.mode, a) == ("active", "resumed")
    assert control.apply(s, "resume", "cli", "", 7)[1] == "already active"
    with pytest.raises(ValueError, match="unknown command 'stop'"):
        control.apply(s, "stop", "cli", "", 8)
    with pytest.raises(ValueError, match="unknown origin"):
        control.apply(s, "pause", "email", "", 8)
    assert control.ControlState.from_mode("flattening").flattening
    assert control.ControlState.from_mode("paused").mode == "paused"
    assert control.ControlState.from_mode(None).mode == "active"


# -- the risk book --------------------------------------------------------------------------------------------------
def test_daily_loss_counts_from_the_utc_day_and_latches():
    book = risk.RiskBook(risk.Limits(max_daily_loss_usdt=100))
    t = 10 * DAY + 3600 * 10**9
    assert book.on_equity(t, 1000) == []
    assert book.on_equity(t + 1, 901) == []  # 99 lost: not beyond
    (b,) = book.on_equity(t + 2, 899.5)
    assert (b.limit, b.value, b.reference, b.action) == ("max_daily_loss_usdt", 100.5, 1000, "pause")
    assert book.on_equity(t + 3, 500) == []  # latched: one breach
    assert "daily loss 100.50 USDT" in b.describe()
    cleared = book.rearm(t + 4, 500)
    assert cleared == [b] and book.tripped == {}
    assert book.on_equity(t + 5, 450) == []
    book2 = risk.RiskBook(risk.Limits(max_daily_loss_usdt=100))
    book2.on_equity(11 * DAY - 1, 1000)
    assert book2.on_equity(11 * DAY, 950) == []  # a new UTC day starts at 950
    assert book2.on_equity(11 * DAY + 1, 849)[0].reference == 950


def test_drawdown_from_the_peak():
    book = risk.RiskBook(risk.Limits(max_drawdown_pct=5, action="flatten"))
    book.on_equity(1, 1000)
    book.on_equity(2, 1100)
    assert book.on_equity(3, 1045.5) == []  # 4.95%
    (b,) = book.on_equity(4, 1044)
    assert b.reference == 1100 and b.action == "flatten" and abs(b.value - 100 * 56 / 1100) < 1e-12


def test_entry_limits():
    book = risk.RiskBook(risk.Limits(max_gross_notional_usdt=10_000, stale_data_s=5))
    assert book.entry_refusal(6000, 4000) is None
    assert "max_gross_notional_usdt 10000" in book.entry_refusal(6000, 4001)
    assert book.stale(10 * 10**9, 6 * 10**9) is None
    assert "6.0s old" in book.stale(12 * 10**9, 6 * 10**9)
    assert "no mark" in book.stale(1, None)
    assert risk.gross_notional([(1, 100, -1, 101), (2, 10, -2, 10)]) == 241
    with pytest.raises(ValueError):
        risk.Limits(action="close")


# -- settings -------------------------------------------------------------------------------------------------------
def _cfg(tmp_path, text: str):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_settings_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(_cfg(tmp_path, '[risk]\naction = "close"\nmax_drawdown_pct = -1\n'), env_file=None,
                      check_venue=False)
    text = str(e.value)
    assert "risk.action" in text and "risk.max_drawdown_pct" in text
    with pytest.raises(ConfigError, match="control.token_env"):
        load_settings(_cfg(tmp_path, '[control]\ntoken_env = "not a var"\n'), env_file=None, check_venue=False)
    s = load_settings(_cfg(tmp_path, "[risk]\n"), env_file=None, check_venue=False)
    assert not s.risk.configured and s.control.token_env is None


# -- the ops server's POST /control -----------------------------------------------------------------------------------
class Hub(ControlHub):
    def __init__(self):
        super().__init__(["BTCUSDT", "ETHUSDT"], msgbus=lambda: None, alert=lambda *a, **k: None,
                         running=lambda: True)
        self.got, self.refusals = [], []

    def submit(self, command, symbols, origin, reason=""):
        parsed = self.parse(command, symbols)
        if isinstance(parsed, str):
            return 400, {"ok": False, "error": parsed}
        self.got.append((parsed, origin))
        return 200, {"ok": True, "results": []}

    def refused(self, origin, why):
        self.refusals.append((origin, why))


def _post(url, body, headers=None, method="POST"):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, raw.decode()


@pytest.fixture
def server():
    hub = Hub()
    srv = OpsServer("127.0.0.1", 0, metrics=lambda: (b"", "text/plain"), page=lambda: "", data=lambda: {},
                    health=lambda: (True, {}), control=hub, control_token="s3cret-token")
    srv.start()
    yield srv, hub
    srv.stop()


def test_control_endpoint_auth_and_input(server):
    srv, hub = server
    url = srv.url + "/control"
    ok = {"Authorization": "Bearer s3cret-token"}
    assert _post(url, {"command": "pause", "symbols": ["btcusdt"]}, ok) == (200, {"ok": True, "results": []})
    assert hub.got == [(("pause", ("BTCUSDT",)), "cli")]
    code, body = _post(url, {"command": "pause", "symbols": "all"}, {"Authorization": "Bearer wrong"})
    assert code == 401 and "refused" in body["error"]
    basic = base64.b64encode(b"x:s3cret-token").decode()
    assert _post(url, {"command": "pause"}, {"Authorization": f"Basic {basic}"})[0] == 401  # bearer only
    assert _post(url, {"command": "pause"}, {"Cookie": "token=s3cret-token"})[0] == 401
    assert [o for o, _ in hub.refusals] == ["cli", "cli", "cli"]
    assert all("s3cret" not in why for _, why in hub.refusals)
    code, body = _post(url, {"command": "pause", "symbols": ["DOGEUSDT"]}, ok)
    assert code == 400 and "unknown symbol(s) DOGEUSDT" in body["error"]
    assert _post(url, {"command": "stop"}, ok)[0] == 400
    assert _post(url, {"command": "pause", "origin": "risk"}, ok)[0] == 400  # only the node's risk actor is "risk"
    assert _post(url, ["pause"], ok)[0] == 400
    assert _post(url, None, ok, method="GET")[0] == 405  # no state change on GET
    assert len(hub.got) == 1


def test_control_off_without_a_token():
    srv = OpsServer("127.0.0.1", 0, metrics=lambda: (b"", "text/plain"), page=lambda: "", data=lambda: {},
                    health=lambda: (True, {}))
    srv.start()
    try:
        code, body = _post(srv.url + "/control", {"command": "pause"}, {"Authorization": "Bearer x"})
        assert code == 404 and "control is off" in body["error"]
    finally:
        srv.stop()


def test_hub_refuses_while_the_node_is_not_running():
    hub = ControlHub(["BTCUSDT"], msgbus=lambda: None, alert=lambda *a, **k: None, running=lambda: False)
    code, body = hub.submit("pause", "all", "cli")
    assert code == 503 and "not running yet" in body["error"]


# -- the CLI's bad input ----------------------------------------------------------------------------------------------
def test_cli_exit_codes(tmp_path, monkeypatch, capsys):
    cfg = _cfg(tmp_path, '[live]\nmetrics_port = 1\n[control]\ntoken_env = "BB_TEST_CTL"\n'
                         '[symbols.BTCUSDT]\nnotional_usdt = 1000\n')
    args = ["control", "--config", str(cfg), "--env-file", "/nonexistent"]
    assert cli.main(args + ["pause", "--all"]) == 2  # the token variable is not set
    assert "BB_TEST_CTL" in capsys.readouterr().err
    monkeypatch.setenv("BB_TEST_CTL", "tok")
    assert cli.main(args + ["pause", "ETHUSDT"]) == 2
    assert "unknown symbol(s) ETHUSDT" in capsys.readouterr().err
    assert cli.main(args + ["flatten"]) == 2
    assert cli.main(args + ["pause", "BTCUSDT", "--all"]) == 2
    assert cli.main(args + ["pause", "--all"]) == 1  # nothing listens on port 1
    assert "no node answered" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(args)  # no command
    assert e.value.code == 2


# -- Telegram's parser ------------------------------------------------------------------------------------------------
def test_telegram_answers(monkeypatch):
    from pydantic import SecretStr

    from basisbot.ops.telegram import HELP, TelegramControl

    hub = Hub()
    applied = []
    hub.apply_on_loop = lambda cmd, syms, origin, reason: applied.append((cmd, syms, origin)) or [
        {"symbol": "BTCUSDT", "answer": "paused", "state": "paused", "phase": "in_carry", "spot_qty": "1",
         "perp_qty": "-1", "pair": None}]
    tg = TelegramControl(SecretStr("123:abc"), [7], hub)
    assert tg.answer("/pause@basisbot_bot BTCUSDT", 7).startswith("BTCUSDT: paused")
    assert applied == [("pause", ("BTCUSDT",), "telegram")]
    assert tg.answer("/flatten", 8) is None and hub.refusals[-1][0] == "telegram"  # not an allowed chat
    assert tg.answer("/flatten nope", 7).startswith("refused: unknown symbol(s) NOPE")
    assert tg.answer("hello", 7) == HELP and tg.answer("/help", 7) == HELP
    assert len(applied) == 1
    assert tg._scrub("url https://x/bot123:abc/getUpdates failed") == "url https://x/bot***/getUpdates failed"


def test_status_page_buttons_only_with_control():
    from basisbot.ops.status_page import render_page

    data = {"now_ns": 0, "symbols": [], "journal": "j.sqlite", "exists": False}
    plain = render_page(data)
    assert "ctl(" not in plain and "read-only" in plain
    page = render_page(data, control={"states": {"BTCUSDT": "paused"}})
    assert "BTCUSDT (paused)" in page and "confirm(" in page and "credentials: 'omit'" in page
    assert "Authorization" in page and "method: 'POST'" in page and "document.cookie" not in page
