"""The ops HTTP server: one port (`[live] metrics_port`, bound to `metrics_host`, 127.0.0.1 by default), read-only.

    GET /metrics          Prometheus text exposition of the node's own registry
    GET /healthz          200 {"status": "ok", ...} while the trader runs, 503 otherwise (never needs a token)
    GET / and /status     the status page (HTML, refreshes itself)
    GET /status.json      the same data as JSON
    POST /control         the operator's commands (`[control] token_env` set; off otherwise): JSON body
                          {"command": "pause"|"resume"|"flatten"|"status", "symbols": [..] | "all"}; only with
                          ``Authorization: Bearer <control token>`` (never a cookie, never basic auth, never a GET)

With a token (`[live] status_token_env` names the environment variable holding it) every path but /healthz requires
``Authorization: Bearer <token>`` or HTTP basic auth with the token as password (any user name; browsers prompt).
Runs in its own daemon threads (`ThreadingHTTPServer`), so a slow scrape or page never touches the event loop.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class OpsServer:
    def __init__(self, host: str, port: int, *, metrics: Callable[[], tuple[bytes, str]],
                 page: Callable[[], str], data: Callable[[], dict], health: Callable[[], tuple[bool, dict]],
                 token: str | None = None, on_error: Callable[[str], None] | None = None,
                 control=None, control_token: str | None = None):
        self.host, self.port = host, port
        self.metrics, self.page, self.data, self.health = metrics, page, data, health
        self.token = token
        self.control = control  # basisbot.ops.control.ControlHub, or None: control off
        self.control_token = control_token
        self.on_error = on_error or (lambda msg: None)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _authorized(self, header: str | None) -> bool:
        if not self.token:
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        if scheme == "basic":
            try:
                _, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except Exception:
                return False
            return hmac.compare_digest(password.encode(), self.token.encode())
        return False

    def _control_authorized(self, header: str | None) -> bool:
        """Bearer <control token>, compared in constant time."""
        if not self.control_token or not header:
            return False
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.control_token.encode())

    def start(self) -> None:
        handler = type("Handler", (_OpsHandler,), {"srv": self})
        self._httpd = _Server((self.host, self.port), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="basisbot-ops-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None


class _OpsHandler(BaseHTTPRequestHandler):
    """The ops server's requests: GET views (token), POST /control (control token). `srv` is the `OpsServer`."""

    srv: OpsServer
    server_version = "basisbot-ops"
    sys_version = ""

    def log_message(self, *args):  # no per-request stderr lines
        pass

    def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        srv = self.srv
        srv.requests += 1
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            if path == "/healthz":
                ok, info = srv.health()
                self._send(200 if ok else 503, json.dumps({"status": "ok" if ok else "down", **info}).encode(),
                           "application/json")
                return
            if not srv._authorized(self.headers.get("Authorization")):
                self._send(401, b"token required\n", "text/plain; charset=utf-8",
                           {"WWW-Authenticate": 'Basic realm="basisbot", charset="UTF-8"'})
                return
            self._view(path)
        except Exception as e:  # a failing view is a 500, never a dead server
            srv.on_error(f"ops server: {path}: {type(e).__name__}: {e}")
            try:
                self._send(500, f"error: {type(e).__name__}\n".encode(), "text/plain; charset=utf-8")
            except Exception:
                pass

    def _view(self, path: str) -> None:
        srv = self.srv
        if path == "/metrics":
            body, ctype = srv.metrics()
            self._send(200, body, ctype)
        elif path in ("/", "/status"):
            self._send(200, srv.page().encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/status.json":
            self._send(200, json.dumps(srv.data(), default=str).encode(), "application/json")
        elif path == "/control":
            self._send(405, b"POST only\n", "text/plain; charset=utf-8", {"Allow": "POST"})
        else:
            self._send(404, b"not found: /, /status, /status.json, /metrics, /healthz\n", "text/plain; charset=utf-8")

    def _json(self, code: int, body: dict) -> None:
        self._send(code, json.dumps(body, default=str).encode(), "application/json")

    def do_POST(self):
        srv = self.srv
        srv.requests += 1
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, 65_536)) if length > 0 else b""
            if path != "/control":
                self._json(404, {"ok": False, "error": "not found: POST /control"})
                return
            self._control(raw)
        except Exception as e:  # a failing command is a 500, never a dead server
            srv.on_error(f"ops server: POST {path}: {type(e).__name__}: {e}")
            try:
                self._json(500, {"ok": False, "error": f"{type(e).__name__}"})
            except Exception:
                pass

    def _control(self, raw: bytes) -> None:
        """POST /control: off without a control token, refused (and journaled) with a wrong one, else the command."""
        srv = self.srv
        if srv.control is None or not srv.control_token:
            self._json(404, {"ok": False, "error": "control is off: set [control] token_env (the "
                                                   "variable holding the control token) and restart"})
            return
        if not srv._control_authorized(self.headers.get("Authorization")):
            srv.control.refused("page" if "page" in (self.headers.get("X-Basisbot-Origin") or "")
                                else "cli", f"wrong or missing token from {self.client_address[0]}")
            self._json(401, {"ok": False, "error": "refused: wrong or missing control token"})
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as e:
            self._json(400, {"ok": False, "error": f"body: a JSON object expected ({e})"})
            return
        origin = body.get("origin", "cli")
        if origin not in ("cli", "page"):
            self._json(400, {"ok": False, "error": "origin: cli or page"})
            return
        code, answer = srv.control.submit(body.get("command"), body.get("symbols"), origin,
                                          str(body.get("reason") or "")[:200])
        self._json(code, answer)


__all__ = ["OpsServer"]
