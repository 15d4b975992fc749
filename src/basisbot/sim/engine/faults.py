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

Per-symbol, per-side and order-timeout faults (what the fault matrix in benchmarks/fault_matrix.py injects):

    "symbol": "BTCUSDT" inside reject_next_order / partial_fill_next / timeout_next_order
                                                       only orders on that symbol take the fault (default: any)
    "side": "SELL" inside reject_next_order            only orders on that side take it (default: any)
    {"timeout_next_order": {"venue": "futures", "count": 1, "mode": "drop", "delay_ms": 15000}}
                                                       the venue BOOKS the next order (it executes), then "drop"
                                                       closes the connection without an answer, or "delay" answers
                                                       after delay_ms (past the client's timeout): the client sees a
                                                       network error / timeout for an order the venue accepted
    {"delay_fill_push": {"venue": "spot", "ms": 600, "count": 1, "symbol": "SOLUSDT"}}
                                                       the next `count` fills on that venue reach the user stream
                                                       `ms` late (the order's later updates wait behind them, in
                                                       order), while the balance/account update goes out at once:
                                                       the account shows a fill before the fill itself arrives, as
                                                       on exchanges whose order and balance updates travel apart
    {"bad_print": {"symbol": "BTCUSDT", "factor": 0.9, "count": 1, "stream": "mark"}}
                                                       the next `count` stream messages of that symbol ("mark":
                                                       markPrice p; "book": bookTicker b/a, spot and futures) carry
                                                       the price × factor (streams only: REST and fills keep the
                                                       true price)
    {"expire_listen_keys": true}                       every listen key expires now (listenKeyExpired is sent)
    {"clock_skew": {"ms": 10000, "duration_s": 5}}     the venue's wall clock runs `ms` ahead for duration_s (0:
                                                       until cleared): signed requests fall outside recvWindow
                                                       (-1021) while it lasts
    {"outage": {"duration_s": 5}}                      a venue restart: every websocket dropped, listen keys
                                                       forgotten, REST connections closed unanswered and
                                                       websocket upgrades refused for duration_s (the accounts,
                                                       orders and positions survive, as on the exchange)

What the venue does on its own (see funding_liquidation.py for the events it pushes):

    {"adl": {"symbol": "BTCUSDT", "fraction": 0.5, "price": "mark", "via": "adl"}}
                                                       now, the venue closes that fraction (0..1], rounded down to
                                                       the lot; 1 = all) of the symbol's futures position itself:
                                                       "via" "adl" (auto-deleveraging, c=adl_autoclose, X=NEW_ADL)
                                                       or "insurance" (insurance-fund close, c=autoclose-...,
                                                       X=NEW_INSURANCE); "price" "mark" (default), "bankruptcy"
                                                       (the position's own) or a number. A list deleverages
                                                       several symbols. Refused (400) when the symbol holds no
                                                       futures position.
    {"adl_quantile": {"symbol": "BTCUSDT", "value": 4}}
                                                       the venue reports that place in its ADL queue for the
                                                       symbol's position until cleared ("value": null, or
                                                       "clear"), on the exchange's own scale: Binance's
                                                       GET /fapi/v1/adlQuantile 0..4, OKX's position `adl` 0..5
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from basisbot.sim.engine.errors import BinanceError, margin_insufficient, spot_insufficient

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
class TimeoutRule:
    symbol: str | None
    mode: str  # "drop" | "delay"
    delay_ms: int


@dataclass
class FaultState:
    delay_ms: int = 0
    fail_rules: deque = field(default_factory=deque)
    # per venue: deque of (symbol or None, item)
    reject_next: dict = field(default_factory=lambda: {"spot": deque(), "futures": deque()})
    partial_next: dict = field(default_factory=lambda: {"spot": deque(), "futures": deque()})
    timeout_next: dict = field(default_factory=lambda: {"spot": deque(), "futures": deque()})
    fill_push_delay: dict = field(default_factory=lambda: {"spot": deque(), "futures": deque()})  # (symbol, ms)
    freeze_mark: set = field(default_factory=set)  # symbols, or {"*"}
    bad_prints: dict = field(default_factory=dict)  # (symbol, stream) -> [remaining, factor]
    adl_quantile: dict = field(default_factory=dict)  # symbol -> forced ADL rank 0..adl_top
    adl_top: int = 4  # the top of the exchange's ADL scale: Binance's adlQuantile 4, OKX's adl 5
    skew_ms: int = 0
    skew_until: float | None = None  # monotonic; None: until cleared
    outage_until: float = 0.0  # monotonic
    injected: dict = field(default_factory=lambda: {"failed": 0, "rejected": 0, "partial": 0, "ws_dropped": 0,
                                                    "timed_out": 0, "bad_prints": 0, "keys_expired": 0,
                                                    "skewed": 0, "outage_refused": 0, "adl": 0,
                                                    "fill_pushes_delayed": 0})
    wall: object = time.monotonic

    # -- configuration ---------------------------------------------------------------------------------------------
    def apply(self, spec: dict) -> dict:
        """Apply a JSON fault spec; returns actions the server must run now (e.g. {"drop_ws": True})."""
        if not isinstance(spec, dict):
            raise ValueError("fault spec must be a JSON object")
        unknown = set(spec) - {"delay_ms", "fail_next", "reject_next_order", "partial_fill_next", "freeze_mark",
                               "drop_ws", "clear", "timeout_next_order", "bad_print", "expire_listen_keys",
                               "clock_skew", "outage", "drop_mode", "adl", "adl_quantile",
                               "delay_fill_push"}
        if unknown:
            raise ValueError(f"unknown fault(s): {sorted(unknown)}")
        actions: dict = {}
        if spec.get("clear"):
            self.clear()
        # one setter per fault, applied in this order; "drop_mode" is read by the server with "drop_ws"
        setters = (("delay_ms", self._set_delay), ("fail_next", self._add_fail_next),
                   ("reject_next_order", self._add_reject_next), ("partial_fill_next", self._add_partial_next),
                   ("timeout_next_order", self._add_timeout_next), ("bad_print", self._add_bad_print),
                   ("clock_skew", self._set_clock_skew), ("delay_fill_push", self._add_fill_push_delay))
        for key, setter in setters:
            if key in spec:
                setter(spec[key])
        if "outage" in spec:
            actions["outage"] = self._start_outage(spec["outage"])
        if spec.get("expire_listen_keys"):
            actions["expire_listen_keys"] = True
        if "freeze_mark" in spec:
            self._set_freeze_mark(spec["freeze_mark"])
        if "adl_quantile" in spec:
            self._set_adl_quantile(spec["adl_quantile"])
        if "adl" in spec:
            actions["adl"] = _adl_specs(spec["adl"])
        if spec.get("drop_ws"):
            actions["drop_ws"] = True
        return actions

    def _set_delay(self, value) -> None:
        d = int(value)
        if d < 0 or d > 120_000:
            raise ValueError("delay_ms must be in [0, 120000]")
        self.delay_ms = d

    def _add_fail_next(self, f) -> None:
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

    def _add_reject_next(self, r: dict) -> None:
        venue = _venue(r.get("venue", "spot"))
        default = spot_insufficient() if venue == "spot" else margin_insufficient()
        code = int(r.get("code", default.code))
        msg = str(r.get("msg", default.msg if code == default.code else "Order rejected."))
        sym = _symbol(r)
        side = r.get("side")
        if side is not None and str(side).upper() not in ("BUY", "SELL"):
            raise ValueError("reject_next_order.side must be 'BUY' or 'SELL'")
        side = None if side is None else str(side).upper()
        for _ in range(int(r.get("count", 1))):
            self.reject_next[venue].append((sym, (side, BinanceError(code, msg, int(r.get("status", 400))))))

    def _add_partial_next(self, r: dict) -> None:
        venue = _venue(r.get("venue", "spot"))
        frac = float(r.get("fraction", 0.5))
        if not 0.0 <= frac < 1.0:
            raise ValueError("partial_fill_next.fraction must be in [0, 1)")
        sym = _symbol(r)
        for _ in range(int(r.get("count", 1))):
            self.partial_next[venue].append((sym, frac))

    def _add_timeout_next(self, r: dict) -> None:
        venue = _venue(r.get("venue", "futures"))
        mode = str(r.get("mode", "drop"))
        if mode not in ("drop", "delay"):
            raise ValueError("timeout_next_order.mode must be 'drop' or 'delay'")
        delay = int(r.get("delay_ms", 15_000))
        if not 0 <= delay <= 120_000:
            raise ValueError("timeout_next_order.delay_ms must be in [0, 120000]")
        for _ in range(int(r.get("count", 1))):
            self.timeout_next[venue].append((_symbol(r), TimeoutRule(_symbol(r), mode, delay)))

    def _add_fill_push_delay(self, r: dict) -> None:
        if not isinstance(r, dict):
            raise ValueError("delay_fill_push must be an object {venue, ms, count, symbol}")
        venue = _venue(r.get("venue", "spot"))
        try:
            ms, count = int(r.get("ms", 500)), int(r.get("count", 1))
        except (TypeError, ValueError):
            raise ValueError(f"delay_fill_push.ms and .count must be integers, got {r!r}") from None
        if not 1 <= ms <= 60_000:
            raise ValueError(f"delay_fill_push.ms must be in [1, 60000], got {ms}")
        if count < 1:
            raise ValueError(f"delay_fill_push.count must be >= 1, got {count}")
        for _ in range(count):
            self.fill_push_delay[venue].append((_symbol(r), ms))

    def _add_bad_print(self, r: dict) -> None:
        sym = _symbol(r)
        if sym is None:
            raise ValueError("bad_print.symbol is required")
        stream = str(r.get("stream", "mark"))
        if stream not in ("mark", "book"):
            raise ValueError("bad_print.stream must be 'mark' or 'book'")
        factor = float(r.get("factor", 0.9))
        if not 0 < factor < 10 or factor == 1.0:
            raise ValueError("bad_print.factor must be in (0, 10) and not 1")
        self.bad_prints[(sym, stream)] = [int(r.get("count", 1)), factor]

    def _set_clock_skew(self, r) -> None:
        if isinstance(r, (int, float)):
            r = {"ms": r}
        self.skew_ms = int(r.get("ms", 0))
        dur = float(r.get("duration_s", 0))
        self.skew_until = self.wall() + dur if dur > 0 else None

    def _start_outage(self, r) -> float:
        dur = float(r.get("duration_s", 5) if isinstance(r, dict) else r)
        if not 0 < dur <= 600:
            raise ValueError("outage.duration_s must be in (0, 600]")
        self.outage_until = self.wall() + dur
        return dur

    def _set_adl_quantile(self, r) -> None:
        for item in r if isinstance(r, list) else [r]:
            if not isinstance(item, dict):
                raise ValueError("adl_quantile must be an object {symbol, value} or a list of them")
            sym = _symbol(item)
            if sym is None:
                raise ValueError("adl_quantile.symbol is required")
            value = item.get("value")
            if value is None:
                self.adl_quantile.pop(sym, None)
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= self.adl_top:
                raise ValueError(f"adl_quantile.value must be an integer 0..{self.adl_top} (or null), got {value!r}")
            self.adl_quantile[sym] = value

    def _set_freeze_mark(self, fm) -> None:
        if fm is True:
            self.freeze_mark = {"*"}
        elif fm is False or fm is None:
            self.freeze_mark = set()
        else:
            self.freeze_mark = {str(s).upper() for s in fm}

    def clear(self) -> None:
        self.delay_ms = 0
        self.fail_rules.clear()
        for q in (*self.reject_next.values(), *self.partial_next.values(), *self.timeout_next.values(),
                  *self.fill_push_delay.values()):
            q.clear()
        self.freeze_mark = set()
        self.bad_prints.clear()
        self.skew_ms, self.skew_until = 0, None
        self.outage_until = 0.0
        self.adl_quantile.clear()

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

    @staticmethod
    def _take(q: deque, symbol: str | None):
        for i, (sym, item) in enumerate(q):
            if sym is None or symbol is None or sym == symbol:
                del q[i]
                return item
        return None

    def take_reject(self, venue: str, symbol: str | None = None, side: str | None = None) -> BinanceError | None:
        q = self.reject_next[venue]
        for i, (sym, (sd, err)) in enumerate(q):
            if (sym is None or symbol is None or sym == symbol) and (sd is None or side is None or sd == side):
                del q[i]
                self.injected["rejected"] += 1
                return err
        return None

    def take_partial(self, venue: str, symbol: str | None = None) -> float | None:
        item = self._take(self.partial_next[venue], symbol)
        if item is not None:
            self.injected["partial"] += 1
        return item

    def take_timeout(self, venue: str, symbol: str | None = None) -> TimeoutRule | None:
        item = self._take(self.timeout_next[venue], symbol)
        if item is not None:
            self.injected["timed_out"] += 1
        return item

    def take_fill_push_delay(self, venue: str, symbol: str | None) -> int | None:
        """How many ms this fill's user-stream update is held back, or None."""
        item = self._take(self.fill_push_delay[venue], symbol)
        if item is not None:
            self.injected["fill_pushes_delayed"] += 1
        return item

    def take_bad_print(self, symbol: str, stream: str) -> float | None:
        """The factor to apply to this stream message of `symbol`, or None."""
        rule = self.bad_prints.get((symbol, stream))
        if rule is None:
            return None
        rule[0] -= 1
        if rule[0] <= 0:
            del self.bad_prints[(symbol, stream)]
        self.injected["bad_prints"] += 1
        return rule[1]

    def clock_skew_ms(self) -> int:
        if self.skew_ms and self.skew_until is not None and self.wall() >= self.skew_until:
            self.skew_ms, self.skew_until = 0, None
        return self.skew_ms

    def in_outage(self) -> bool:
        return self.wall() < self.outage_until

    def mark_frozen(self, symbol: str) -> bool:
        return "*" in self.freeze_mark or symbol in self.freeze_mark

    def state(self) -> dict:
        return {
            "delay_ms": self.delay_ms,
            "fail_next": [{"remaining": r.remaining, "status": r.status, "path_prefix": r.path_prefix,
                           "body": r.body} for r in self.fail_rules],
            "reject_next_order": {v: [{"code": e.code, "msg": e.msg, "symbol": s, "side": sd} for s, (sd, e) in q]
                                  for v, q in self.reject_next.items()},
            "partial_fill_next": {v: [{"fraction": f, "symbol": s} for s, f in q] for v, q in self.partial_next.items()},
            "timeout_next_order": {v: [{"mode": r.mode, "delay_ms": r.delay_ms, "symbol": s} for s, r in q]
                                   for v, q in self.timeout_next.items()},
            "delay_fill_push": {v: [{"ms": ms, "symbol": s} for s, ms in q] for v, q in self.fill_push_delay.items()},
            "bad_print": [{"symbol": k[0], "stream": k[1], "remaining": v[0], "factor": v[1]}
                          for k, v in self.bad_prints.items()],
            "clock_skew_ms": self.clock_skew_ms(),
            "outage_s": max(0.0, self.outage_until - self.wall()),
            "freeze_mark": sorted(self.freeze_mark),
            "adl_quantile": dict(self.adl_quantile),
            "injected": dict(self.injected),
        }


def _symbol(r: dict) -> str | None:
    sym = r.get("symbol")
    return str(sym).upper() if sym else None


def _adl_specs(r) -> list[dict]:
    """The `adl` fault's deleveragings, checked: [{symbol, fraction, price, via}]."""
    out = []
    for item in r if isinstance(r, list) else [r]:
        if not isinstance(item, dict):
            raise ValueError("adl must be an object {symbol, fraction, price, via} or a list of them")
        sym = _symbol(item)
        if sym is None:
            raise ValueError("adl.symbol is required")
        try:
            frac = float(item.get("fraction", 1.0))
        except (TypeError, ValueError):
            raise ValueError(f"adl.fraction must be a number in (0, 1], got {item.get('fraction')!r}") from None
        if not 0.0 < frac <= 1.0:
            raise ValueError(f"adl.fraction must be in (0, 1], got {frac}")
        price = item.get("price", "mark")
        if price not in ("mark", "bankruptcy") and (isinstance(price, bool) or not isinstance(price, (int, float))
                                                    or price <= 0):
            raise ValueError(f"adl.price must be 'mark', 'bankruptcy' or a positive number, got {price!r}")
        via = str(item.get("via", "adl"))
        if via not in ("adl", "insurance"):
            raise ValueError(f"adl.via must be 'adl' or 'insurance', got {via!r}")
        out.append({"symbol": sym, "fraction": frac, "price": price, "via": via})
    return out


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
