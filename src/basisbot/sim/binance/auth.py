"""Binance request security: ``X-MBX-APIKEY`` and HMAC-SHA256 ``signature`` over the query string plus the body
(concatenated, as Binance defines ``totalParams``), ``timestamp`` within ``recvWindow`` of the server's wall clock.

Security types, as Binance names them: NONE (public), USER_STREAM / MARKET_DATA (API key only), TRADE / USER_DATA
(API key + signature + timestamp). The timestamp is checked against the host's wall clock (like Binance checks it
against its own), not the replay clock: clients must not use ccxt's ``adjustForTimeDifference``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping

from basisbot.sim.engine import errors

_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")


def strip_signature(raw: str) -> str:
    if not raw:
        return ""
    parts = [p for p in raw.split("&") if not p.startswith("signature=")]
    return "&".join(parts)


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class Auth:
    def __init__(self, api_key: str, api_secret: str, recv_window_default_ms: int = 5000,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        self.api_key = api_key
        self.api_secret = api_secret
        self.recv_window_default_ms = recv_window_default_ms
        self.wall_ms = wall_ms

    def check_api_key(self, key: str | None) -> None:
        if not key or not _KEY_RE.match(key):
            raise errors.api_key_format_invalid()
        if not hmac.compare_digest(key, self.api_key):
            raise errors.invalid_api_key()

    def _check_time(self, params: Mapping[str, str]) -> None:
        ts_raw = params.get("timestamp")
        if ts_raw is None or ts_raw == "":
            raise errors.mandatory("timestamp")
        try:
            ts = int(ts_raw)
        except ValueError:
            raise errors.illegal_chars("timestamp") from None
        rw_raw = params.get("recvWindow")
        recv = self.recv_window_default_ms
        if rw_raw not in (None, ""):
            try:
                recv = int(float(rw_raw))
            except ValueError:
                raise errors.illegal_chars("recvWindow") from None
            if recv > 60000 or recv <= 0:
                raise errors.bad_recv_window()
        now = self.wall_ms()
        if ts > now + 1000:
            raise errors.ahead_of_server()
        if now - ts > recv:
            raise errors.outside_recv_window()

    def verify_signed(self, api_key: str | None, raw_query: str, raw_body: str, params: Mapping[str, str]) -> None:
        """Raise the BinanceError Binance would send, or return if the request is authentic and timely."""
        self.check_api_key(api_key)
        sig = params.get("signature")
        if not sig:
            raise errors.mandatory("signature")
        payload = strip_signature(raw_query) + strip_signature(raw_body)
        expected = sign(self.api_secret, payload)
        if not hmac.compare_digest(expected.lower(), str(sig).lower()):
            raise errors.bad_signature()
        self._check_time(params)

    def verify_ws_params(self, params: Mapping[str, object]) -> None:
        """WebSocket API signed request: params sorted by key, ``k=v`` joined by ``&``, signature excluded."""
        self.check_api_key(str(params.get("apiKey", "")) or None)
        sig = params.get("signature")
        if not sig:
            raise errors.mandatory("signature")
        payload = "&".join(f"{k}={_ws_value(v)}" for k, v in sorted(params.items()) if k != "signature")
        if not hmac.compare_digest(sign(self.api_secret, payload), str(sig).lower()):
            raise errors.bad_signature()
        self._check_time({k: str(v) for k, v in params.items()})


def _ws_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
