"""OKX v5 request authentication, as OKX checks it.

REST: headers ``OK-ACCESS-KEY``, ``OK-ACCESS-PASSPHRASE``, ``OK-ACCESS-TIMESTAMP`` (ISO 8601 UTC with milliseconds,
``2020-12-08T09:08:57.715Z``) and ``OK-ACCESS-SIGN`` = base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath
+ body)), where requestPath includes the query string of a GET and body is the JSON body of a POST. A timestamp more
than 30 s away from the server's clock is refused (50102). Websocket login: ``{"op": "login", "args": [{"apiKey",
"passphrase", "timestamp" (Unix seconds), "sign"}]}`` with the sign over timestamp + "GET" + "/users/self/verify".
The clock is the host's wall clock (plus an injected skew), not the replay clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from basisbot.sim.okx import errors
from basisbot.sim.okx.errors import OkxError

WINDOW_MS = 30_000


def sign(secret: str, prehash: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


def _iso_ms(value: str) -> int:
    if not value.endswith("Z"):
        raise ValueError(value)
    dt = datetime.fromisoformat(value[:-1] + "+00:00")
    return int(dt.timestamp() * 1000)


class OkxAuth:
    def __init__(self, api_key: str, api_secret: str, passphrase: str,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        self.api_key = api_key
        self.api_secret = api_secret
        self.passphrase = passphrase
        self.wall_ms = wall_ms

    def verify_rest(self, headers: Mapping[str, str], method: str, request_path: str, body: str) -> None:
        """Raise the OkxError OKX would send, or return if the request is authentic and timely."""
        for name in ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE"):
            if not headers.get(name):
                raise errors.missing_header(name)
        if not hmac.compare_digest(headers["OK-ACCESS-KEY"], self.api_key):
            raise errors.invalid_key()
        if not hmac.compare_digest(headers["OK-ACCESS-PASSPHRASE"], self.passphrase):
            raise errors.bad_passphrase()
        ts = headers["OK-ACCESS-TIMESTAMP"]
        try:
            ts_ms = _iso_ms(ts)
        except ValueError:
            raise errors.invalid_timestamp() from None
        if abs(self.wall_ms() - ts_ms) > WINDOW_MS:
            raise errors.expired_timestamp()
        expected = sign(self.api_secret, ts + method.upper() + request_path + (body or ""))
        if not hmac.compare_digest(expected, headers["OK-ACCESS-SIGN"]):
            raise errors.bad_signature()

    def verify_login(self, arg: Mapping[str, object]) -> None:
        """A websocket login argument; raises OkxError with OKX's websocket codes (60xxx)."""
        if not isinstance(arg, Mapping):
            raise OkxError("60012", "Illegal request", 200)
        if str(arg.get("apiKey", "")) != self.api_key:
            raise OkxError("60005", "Invalid apiKey", 200)
        if str(arg.get("passphrase", "")) != self.passphrase:
            raise OkxError("60024", "Wrong passphrase", 200)
        ts = str(arg.get("timestamp", ""))
        try:
            ts_ms = int(float(ts) * 1000)
        except ValueError:
            raise OkxError("60006", "Timestamp request expired", 200) from None
        if abs(self.wall_ms() - ts_ms) > WINDOW_MS:
            raise OkxError("60006", "Timestamp request expired", 200)
        if not hmac.compare_digest(sign(self.api_secret, ts + "GET/users/self/verify"), str(arg.get("sign", ""))):
            raise OkxError("60007", "Invalid sign", 200)
