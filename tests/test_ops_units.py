"""basisbot.ops pieces on their own: the alert queue logic (fake clock), real apprise delivery to a local receiver,
the alert rules, settings and masking, the HTTP server's token, the status page."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from basisbot.config.loading import ConfigError, effective_config, load_settings
from basisbot.config.schema import AlertSettings, Settings
from basisbot.core.units import NS
from basisbot.journal.writer import Journal
from basisbot.nautilus.messages import FundingSettled, JournalRecord
from basisbot.ops.alert_channels import AppriseChannel, build_channels, resolve_urls
from basisbot.ops.alert_events import AlertRules, Outages, summary_due
from basisbot.ops.alerts import Alert, AlertDispatcher, Coalescer, RateLimiter, _Channel, backoff_delays
from basisbot.ops.server import OpsServer
from basisbot.ops.status import status_data
from basisbot.ops.status_page import render_page


class FakeClock:
    def __init__(self):
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> bool:
        self.slept.append(s)
        self.t += s
        return False


class Flaky:
    """A channel that fails its first `fail` sends, then delivers (records what it got)."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.calls = 0
        self.got: list[Alert] = []

    def __call__(self, alert: Alert) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise ConnectionRefusedError("connection refused")
        self.got.append(alert)


def channel(send, clock, **kw):
    warned, failures = [], []
    opts = dict(coalesce_s=60.0, max_per_minute=20, retries=3, backoff_s=1.0)
    opts.update(kw)
    ch = _Channel("test://x", send, clock=clock, sleep=clock.sleep, warn=warned.append,
                  on_failure=lambda *a: failures.append(a), **opts)
    return ch, warned, failures


def A(event="guard_add_margin", sym="BTCUSDT", body="b", key=None):
    return Alert(event, "warning", f"{event} {sym}", body, sym, key)


def test_repeats_are_coalesced_into_one_summary_per_window():
    clock = FakeClock()
    send = Flaky()
    ch, warned, _ = channel(send, clock)
    for i in range(5):
        ch.offer(A(body=f"distance {9 - i}%"))
        ch.pump()
        clock.t += 1
    ch.offer(A("entry", key="entry:pair-1"))  # another key goes out at once
    ch.pump()
    assert [a.body for a in send.got] == ["distance 9%", "b"]
    assert ch.stats.coalesced == 4
    clock.t += 60  # the window ends: one summary carrying the last repeat
    ch.pump()
    assert len(send.got) == 3 and send.got[2].repeats == 4 and "distance 5%" in send.got[2].body
    assert "(x4 in 60s)" in send.got[2].title
    # a repeat right after the summary is inside the summary's window; a quiet window expires the key
    ch.offer(A(body="again"))
    ch.pump()
    assert len(send.got) == 3
    clock.t += 61
    ch.pump()
    assert send.got[-1].repeats == 1
    clock.t += 61
    ch.pump()
    ch.offer(A(body="fresh"))
    ch.pump()
    assert send.got[-1].body == "fresh" and send.got[-1].repeats == 0
    assert warned == []


def test_rate_limit_delays_but_keeps_order():
    clock = FakeClock()
    send = Flaky()
    ch, _, _ = channel(send, clock, max_per_minute=3, coalesce_s=0)
    for i in range(6):
        ch.offer(A(key=f"k{i}", body=str(i)))
    wait = ch.pump()
    assert [a.body for a in send.got] == ["0", "1", "2"]  # the burst
    assert wait == pytest.approx(20.0)  # 3 per minute: the next token in 20 s
    clock.t += 20
    ch.pump()
    assert [a.body for a in send.got] == ["0", "1", "2", "3"]
    clock.t += 40
    ch.pump()
    assert [a.body for a in send.got] == [str(i) for i in range(6)]


def test_retries_with_exponential_backoff_then_success():
    clock = FakeClock()
    send = Flaky(fail=2)
    ch, warned, failures = channel(send, clock, retries=3, backoff_s=0.5)
    ch.offer(A())
    ch.pump()
    assert clock.slept == [0.5, 1.0] and len(send.got) == 1 and ch.stats.retried == 2
    assert warned == [] and failures == []
    assert backoff_delays(8, 1.0) == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_failing_channel_warns_once_per_window_and_reports_the_count():
    clock = FakeClock()
    send = Flaky(fail=10 ** 6)
    ch, warned, failures = channel(send, clock, retries=1, backoff_s=0.1, coalesce_s=300)
    for i in range(4):
        ch.offer(A(key=f"k{i}"))
        ch.pump()
        clock.t += 10
    assert ch.stats.failed == 4 and send.calls == 8  # each tried twice
    assert len(warned) == 1 and "test://x" in warned[0] and "connection refused" in warned[0]
    assert len(failures) == 1
    clock.t += 300
    ch.offer(A(key="k9"))
    ch.pump()
    assert len(warned) == 2 and "(3 more failure(s) since the last warning)" in warned[1]
    assert failures[-1][3] == 4  # this one and the 3 suppressed


def test_coalescer_and_limiter_edges():
    c = Coalescer(0)
    assert c.offer(A(), 0) is not None and c.offer(A(), 0) is not None  # window 0: no coalescing
    r = RateLimiter(60, now=0.0)
    assert all(r.take(0.0) for _ in range(60)) and not r.take(0.0)
    assert r.wait_s(0.0) == pytest.approx(1.0) and r.take(1.0)


class Receiver:
    def __init__(self, status: int = 200):
        self.got: list[dict] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_dispatcher_delivers_through_apprise_and_survives_a_dead_channel():
    """Real apprise, real sockets: one live receiver, one refused port, one receiver answering 500. The live one
    gets every alert in order; the dead ones are warned about once each; submit never blocks."""
    ok, err = Receiver(), Receiver(status=500)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    warned, failures = [], []
    urls = [f"json://127.0.0.1:{ok.port}/hook", f"json://127.0.0.1:{dead_port}/hook", f"json://127.0.0.1:{err.port}/x"]
    chans = build_channels(urls, timeout_s=2.0)
    d = AlertDispatcher([(c.label, c) for c in chans], coalesce_s=30, retries=1, backoff_s=0.05,
                        min_severity="warning", warn=warned.append, on_failure=lambda *a: failures.append(a))
    d.start()
    try:
        t0 = time.perf_counter()
        for i in range(3):
            assert d.submit(Alert("entry", "error", f"alert {i}", f"body {i}", "BTCUSDT", key=f"k{i}"))
        assert not d.submit(Alert("entry", "info", "quiet", "below min severity"))
        assert time.perf_counter() - t0 < 0.05  # a queue put each
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (len(ok.got) < 3 or min(d.stats()[c.label].failed
                                                                       for c in chans[1:]) < 3):
            time.sleep(0.05)
    finally:
        d.stop()
        ok.close()
        err.close()
    assert [g["title"] for g in ok.got] == ["alert 0", "alert 1", "alert 2"]
    assert ok.got[0]["message"] == "body 0" and ok.got[0]["type"] == "failure"
    st = d.stats()
    assert st[chans[0].label].sent == 3 and st[chans[1].label].failed == 3 and st[chans[2].label].failed == 3
    assert len(err.got) == 6  # tried twice each
    assert len(warned) == 2  # one per failing channel for the window
    assert any(f"127.0.0.1:{dead_port}" in w and "Connection error" in w for w in warned)
    assert any("500" in w or "Internal Server Error" in w for w in warned)
    assert {f[0] for f in failures} == {chans[1].label, chans[2].label}


def test_alert_urls_from_the_environment_are_resolved_and_never_shown(monkeypatch, tmp_path):
    monkeypatch.setenv("BB_TEST_HOOK", "tgram://123456789:abcdefghijklmnopqrstuvwxyz/987654321")
    urls = resolve_urls(["env:BB_TEST_HOOK", "json://127.0.0.1:9/hook"])
    assert urls[0].startswith("tgram://123456789")
    ch = AppriseChannel(urls[0])
    assert "abcdefghijklmnopqrstuvwxyz" not in ch.label and ch.label.startswith("tgram://")
    (tmp_path / ".env").write_text("BB_TEST_DOTENV=json://127.0.0.1:9/x\n")
    assert resolve_urls(["env:BB_TEST_DOTENV"], tmp_path / ".env") == ["json://127.0.0.1:9/x"]
    with pytest.raises(ConfigError, match=r"alerts.urls\[0\] = 'env:BB_NOT_SET'.*not set"):
        resolve_urls(["env:BB_NOT_SET"])
    with pytest.raises(ConfigError, match=r"alerts.urls\[0\]: apprise does not understand"):
        build_channels(["nosuchscheme://secret-token@host"], 1.0)
    # config check shows env references, masks literal URLs; a bad entry's error does not echo it
    cfg = tmp_path / "b.toml"
    cfg.write_text('[alerts]\nurls = ["env:BB_TEST_HOOK", "slack://T1/B2/SeCrEt"]\nmin_severity = "warning"\n'
                   '[alerts.levels]\nguard_warn = "info"\n')
    s = load_settings(cfg, env_file=None)
    rows = {k: v for k, v, _ in effective_config(s, cfg, None)}
    assert rows["alerts.urls"] == "['env:BB_TEST_HOOK', 'slack://***']"
    cfg.write_text('[alerts]\nurls = ["slack://T1/B2/SeCrEt", "env:bad-name"]\n')
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, env_file=None)
    assert "SeCrEt" not in str(e.value) and "urls[1]" in str(e.value)
    cfg.write_text('[alerts.levels]\nguard_typo = "info"\n[live]\nmetrics_port = 70000\n')
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, env_file=None)
    assert "guard_typo" in str(e.value) and "metrics_port" in str(e.value)


def rec(kind, data, sym="BTCUSDT", ts=1):
    return JournalRecord(kind, sym, ts, data)


def test_alert_rules_from_the_journal_stream():
    got: list[Alert] = []
    rules = AlertRules(AlertSettings(levels={"guard_warn": "info", "leg_timeout": "off"}), got.append, mode="paper")
    rules.funding_rate("BTCUSDT", 1e-4, 480, 1646035200000 * 1_000_000)
    rules.mark("BTCUSDT", 40000.0)
    rules.spot("BTCUSDT", 39990.0)
    rules.record(rec("leg", {"pair_id": "p1", "intent": "enter", "event": "complete", "status": "complete",
                             "filled": {"spot": 0.05, "perp": 0.05}, "targets": {"spot": 0.05, "perp": -0.05}}))
    e = got[-1]
    assert e.event == "entry" and e.severity == "info" and e.title.startswith("basisbot [paper] BTCUSDT")
    assert "bought spot 0.05, sold perp 0.05" in e.body and "+10.95% APR" in e.body
    assert "+0.2000 USDT expected" in e.body  # 0.05 × 40000 × 1e-4
    rules.record(rec("guard", {"step": "warn", "distance": 0.11, "mark": 40000.0, "liquidation_price": 44400.0}))
    rules.record(rec("guard", {"step": "close", "distance": 0.02, "mark": 43000.0, "liquidation_price": 43860.0}))
    assert [a.event for a in got[-2:]] == ["guard_warn", "guard_close"] and got[-1].severity == "critical"
    rules.record(rec("leg", {"pair_id": "p2", "intent": "enter", "event": "timeout", "detail": "pending"}))
    assert got[-1].event == "guard_close"  # leg_timeout is off
    rules.record(rec("leg", {"pair_id": "p2", "intent": "enter", "event": "unwind", "detail": "spot -0.05"}))
    assert got[-1].event == "leg_unwind" and got[-1].severity == "error"
    # funding: booked vs predicted
    T = 1646035200001 * 1_000_000
    rules.record(rec("prediction", {"settlement_ns": T, "predicted_rate": 1e-4, "position_qty": -0.05, "mark": 40000.0}))
    n = len(got)
    rules.funding_settled(FundingSettled("BTCUSDT", T + 2 * NS, 1.01e-4, 0.202, "test"))
    assert len(got) == n  # 0.002 off: within both thresholds
    rules.funding_settled(FundingSettled("BTCUSDT", T + 2 * NS, -3e-3, -6.0, "test"))
    assert got[-1].event == "funding_mismatch" and "difference -6.200000" in got[-1].body


def test_outages_and_daily_summary_timing():
    o = Outages(30)
    assert o.observe("perp user stream orders", True, 0) == []
    assert o.observe("perp user stream orders", True, 29) == []
    assert o.observe("perp user stream orders", True, 31) == [("venue_disconnect", "perp user stream orders", 31)]
    assert o.observe("perp user stream orders", True, 60) == []  # once
    assert o.observe("perp user stream orders", False, 65) == [("venue_recovered", "perp user stream orders", 65)]
    assert o.observe("x", True, 100) == [] and o.observe("x", False, 110) == []  # a blip says nothing
    at = dt.datetime(2024, 5, 1, 8, 4, tzinfo=dt.timezone.utc)
    assert not summary_due(at, "08:05", None)
    assert summary_due(at.replace(minute=5), "08:05", None)
    assert not summary_due(at.replace(minute=6), "08:05", at.date())
    assert summary_due(at + dt.timedelta(days=1, minutes=1), "08:05", at.date())
    assert not summary_due(at, None, None)


def test_server_token_health_and_page(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    t = 1_700_000_000 * NS
    j.record_position("BTCUSDT", t, spot_qty=0.5, perp_qty=-0.5, perp_entry=20000.0, isolated_wallet=2000.0,
                      liquidation_price=23000.0, mark=20000.0, spot_price=19990.0, margin_mode="isolated")
    j.record_leg(pair_id="p", ts=t - 10, symbol="BTCUSDT", intent="enter", event="complete", detail="",
                 status="complete", targets={"spot": 0.5, "perp": -0.5}, filled={"spot": 0.5, "perp": 0.5})
    j.record_guard("BTCUSDT", t + 1, step="warn", distance=0.11, reason="close <b>to</b> liquidation")
    j.close()
    settings = Settings(journal=path, symbols={"BTCUSDT": {}, "ETHUSDT": {}})
    data = status_data(path, settings, now_ns=t + 60 * NS)
    html = render_page(data, refresh_s=7)
    assert '<meta http-equiv="refresh" content="7">' in html
    assert 'data-phase="in_carry"' in html and 'data-distance="0.150000"' in html  # (23000 - 20000) / 20000
    assert "ETHUSDT" in html and "close &lt;b&gt;to&lt;/b&gt; liquidation" in html  # escaped
    srv = OpsServer("127.0.0.1", 0, metrics=lambda: (b"basisbot_up 1\n", "text/plain"), page=lambda: html,
                    data=lambda: data, health=lambda: (True, {"trader": "running"}), token="s3cret")
    srv.start()
    try:
        def get(p, auth=None):
            req = urllib.request.Request(srv.url + p, headers={"Authorization": auth} if auth else {})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        assert get("/healthz")[0] == 200  # liveness needs no token
        assert get("/metrics")[0] == 401 and get("/", "Bearer nope")[0] == 401
        assert get("/metrics", "Bearer s3cret") == (200, "basisbot_up 1\n")
        basic = "Basic " + base64.b64encode(b"ops:s3cret").decode()
        code, body = get("/status", basic)
        assert code == 200 and "BTCUSDT" in body
        assert json.loads(get("/status.json", basic)[1])["symbols"][0]["symbol"] == "BTCUSDT"
        assert get("/nope", basic)[0] == 404
    finally:
        srv.stop()
