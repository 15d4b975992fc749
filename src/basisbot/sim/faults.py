"""Fault injection: set from CLI flags at start-up and at run time through ``POST /admin/faults``.

JSON accepted by ``POST /admin/faults`` (every key optional, several at once allowed)::

    {"delay_ms": 250}                                  every REST request waits 250 ms (0 clears)
    {"fail_next": {"count": 3, "status": 429}}         the next 3 REST requests are refused (429, 418, 500, 502,
                                                       503, 504); "path_prefix": "/fapi" limits it to some paths;
                                                       "body": "json" sends Binance's -1001 JSON on a 5xx instead of
                                                       the gateway's plain-text page
    {"reject_next_order": {"venue": "spot", "count": 1, "code": -2010, "msg": "..."}}
                                                       the next order(s) on that venue are rejected (defaults: spot
                                                       -2010 "Account has insufficient balance for requested
                                                       action.", futures -2019 "Margin is insufficient.")
    {"partial_fill_next": {"venue": "futures", "fraction": 0.5}}
                                                       the next order on that venue fills only that fraction (rounded
                                                       down to the lot step); a MARKET/IOC rest expires, a GTC rest
                                                       stays open, unmatched, until cancelled
    {"freeze_mark": true} / {"freeze_mark": ["BTCUSDT"]} / {"freeze_mark": false}
                                                       stop / resume the markPrice streams (REST keeps working)
    {"drop_ws": true}                                  abort every websocket connection now
    {"clear": true}                                    remove every pending fault
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from basisbot.sim.errors import BinanceError, margin_insufficient, spot_insufficient

FAIL_STATUSES = (418, 429, 500, 502, 503, 504)
_GATEWAY_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class FailRule:
    remaining: int
    status: int
    path_prefix: str = ""
    body: str = "text"


@dataclass
class FaultState:
    delay_ms: int = 0
    fail_rules: deque = field(default_factory=deque)
    reject_next: dict = field(default_factory=lambda: {"spot": deque(), "futures": deque()})
    partial_next: dict = field(default_factory=lambda: {"spot": deque(), "futures": deque()})
    freeze_mark: set = field(default_factory=set)  # symbols, or {"*"}
    injected: dict = field(default_factory=lambda: {"failed": 0, "rejected": 0, "partial": 0, "ws_dropped": 0})

    # -- configuration ---------------------------------------------------------------------------------------------
    def apply(self, spec: dict) -> dict:
        """Apply a JSON fault spec; returns actions the server must run now (e.g. {"drop_ws": True})."""
        if not isinstance(spec, dict):
            raise ValueError("fault spec must be a JSON object")
        unknown = set(spec) - {"delay_ms", "fail_next", "reject_next_order", "partial_fill_next", "freeze_mark",
                               "drop_ws", "clear"}
        if unknown:
            raise ValueError(f"unknown fault(s): {sorted(unknown)}")
        actions = {}
        if spec.get("clear"):
            self.clear()
        if "delay_ms" in spec:
            d = int(spec["delay_ms"])
            if d < 0 or d > 120_000:
                raise ValueError("delay_ms must be in [0, 120000]")
            self.delay_ms = d
        if "fail_next" in spec:
            f = spec["fail_next"]
            if isinstance(f, int):
                f = {"count": f}
            status = int(f.get("status", 503))
            if status not in FAIL_STATUSES:
                raise ValueError(f"fail_next.status must be one of {FAIL_STATUSES}")
            count = int(f.get("count", 1))
            if count < 1:
                raise ValueError("fail_next.count must be >= 1")
            body = f.get("body", "text")
            if body not in ("text", "json"):
                raise ValueError("fail_next.body must be 'text' or 'json'")
            self.fail_rules.append(FailRule(count, status, str(f.get("path_prefix", "")), body))
        if "reject_next_order" in spec:
            r = spec["reject_next_order"]
            venue = _venue(r.get("venue", "spot"))
            default = spot_insufficient() if venue == "spot" else margin_insufficient()
            code = int(r.get("code", default.code))
            msg = str(r.get("msg", default.msg if code == default.code else "Order rejected."))
            for _ in range(int(r.get("count", 1))):
                self.reject_next[venue].append(BinanceError(code, msg, int(r.get("status", 400))))
        if "partial_fill_next" in spec:
            r = spec["partial_fill_next"]
            venue = _venue(r.get("venue", "spot"))
            frac = float(r.get("fraction", 0.5))
            if not 0.0 <= frac < 1.0:
                raise ValueError("partial_fill_next.fraction must be in [0, 1)")
            for _ in range(int(r.get("count", 1))):
                self.partial_next[venue].append(frac)
        if "freeze_mark" in spec:
            fm = spec["freeze_mark"]
            if fm is True:
                self.freeze_mark = {"*"}
            elif fm is False or fm is None:
                self.freeze_mark = set()
            else:
                self.freeze_mark = {str(s).upper() for s in fm}
        if spec.get("drop_ws"):
            actions["drop_ws"] = True
        return actions

    def clear(self) -> None:
        self.delay_ms = 0
        self.fail_rules.clear()
        for q in (*self.reject_next.values(), *self.partial_next.values()):
            q.clear()
        self.freeze_mark = set()

    # -- use -------------------------------------------------------------------------------------------------------
    def take_failure(self, path: str) -> FailRule | None:
        for rule in list(self.fail_rules):
            if path.startswith(rule.path_prefix):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.fail_rules.remove(rule)
                self.injected["failed"] += 1
                return rule
        return None

    def take_reject(self, venue: str) -> BinanceError | None:
        q = self.reject_next[venue]
        if q:
            self.injected["rejected"] += 1
            return q.popleft()
        return None

    def take_partial(self, venue: str) -> float | None:
        q = self.partial_next[venue]
        if q:
            self.injected["partial"] += 1
            return q.popleft()
        return None

    def mark_frozen(self, symbol: str) -> bool:
        return "*" in self.freeze_mark or symbol in self.freeze_mark

    def state(self) -> dict:
        return {
            "delay_ms": self.delay_ms,
            "fail_next": [{"remaining": r.remaining, "status": r.status, "path_prefix": r.path_prefix,
                           "body": r.body} for r in self.fail_rules],
            "reject_next_order": {v: [{"code": e.code, "msg": e.msg} for e in q] for v, q in self.reject_next.items()},
            "partial_fill_next": {v: list(q) for v, q in self.partial_next.items()},
            "freeze_mark": sorted(self.freeze_mark),
            "injected": dict(self.injected),
        }


def _venue(v: str) -> str:
    v = str(v).lower()
    if v in ("spot",):
        return "spot"
    if v in ("futures", "future", "perp", "swap", "linear", "usdm"):
        return "futures"
    raise ValueError(f"venue must be 'spot' or 'futures', got {v!r}")


def failure_response_parts(rule: FailRule) -> tuple[int, str, str, dict[str, str]]:
    """(status, content_type, body, headers) of an injected failure."""
    import json

    if rule.status in (418, 429):
        msg = ("Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. Please use WebSocket "
               "Streams for live updates to avoid polling the API.")
        if rule.status == 418:
            msg = ("Way too many requests; IP(127.0.0.1) banned until 9999999999999. Please use WebSocket Streams for "
                   "live updates to avoid bans.")
        body = json.dumps({"code": -1003, "msg": msg}, separators=(",", ":"))
        return rule.status, "application/json", body, {"Retry-After": "1"}
    if rule.body == "json":
        body = json.dumps({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
                          separators=(",", ":"))
        return rule.status, "application/json", body, {}
    text = _GATEWAY_TEXT.get(rule.status, "Error")
    html = (f"<html><head><title>{rule.status} {text}</title></head>"
            f"<body><center><h1>{rule.status} {text}</h1></center></body></html>")
    return rule.status, "text/html", html, {}
