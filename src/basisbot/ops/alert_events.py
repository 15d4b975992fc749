"""What is worth telling the operator: bus traffic in, `Alert`s out (no I/O; `submit` is the dispatcher's).

Inputs are what the strategy and the clients already publish (the journal's stream, `basisbot.nautilus.messages`):

| event | from | default |
|---|---|---|
| entry / exit | `leg` record, intent enter / exit, event complete (sizes from the pair's fills; predicted funding from the
  funding-rate stream; exit reason from the last `exit` decision) | info |
| guard_warn, guard_add_margin, guard_reduce, guard_close | `guard` record, by step | off, warning, error, critical |
| liquidation | `Liquidated` on `basisbot.liquidation.SYMBOL` | critical |
| leg_unwind / leg_timeout / leg_stuck | `leg` record, event unwind / timeout / stuck | error / warning / critical |
| funding_mismatch | `FundingSettled` vs the `prediction` record of the same settlement: booked − predicted beyond both
  `funding_diff_usdt` and `funding_diff_rel` × |predicted| | warning |
| venue_disconnect / venue_recovered | `Outages`: a stream down longer than `disconnect_after_s`, and its return | error / info |
| config_refused | a `refused` row in the journal's config_changes | warning |
| daily_summary | `basisbot status` text at `daily_summary_utc` | info |

Severities come from `[alerts] levels` (per event; "off" mutes it) over these defaults.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from basisbot.config.settings import AlertSettings
from basisbot.ops.alerts import Alert

NS = 1_000_000_000
SETTLEMENT_MATCH_NS = 60 * NS


def apr(rate: float, interval_minutes: int) -> float:
    return rate * (365 * 24 * 60 / (interval_minutes or 480))


def predicted_payment(position_qty: float | None, mark: float | None, rate: float | None) -> float | None:
    """Funding received at a settlement (positive = received): a short (qty < 0) receives a positive rate."""
    if position_qty is None or mark is None or rate is None:
        return None
    return -position_qty * mark * rate


def funding_mismatch(predicted: float | None, booked: float, abs_tol: float, rel_tol: float) -> bool:
    if predicted is None:
        return False
    diff = abs(booked - predicted)
    return diff > abs_tol and diff > rel_tol * abs(predicted)


def _ts(ns: int | None) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / NS, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _per(interval: int) -> str:
    return f"{interval // 60}h" if interval % 60 == 0 else f"{interval}m"


@dataclass
class _Sym:
    rate: float | None = None
    interval: int = 480
    next_funding_ns: int | None = None
    mark: float | None = None
    spot: float | None = None
    exit_reason: str | None = None
    predictions: dict[int, tuple[float, float | None, float | None]] = field(default_factory=dict)
    settled_since_entry: float = 0.0


class Outages:
    """Stream outages: `observe(name, down, now_s)` returns [(event, name, seconds)] — venue_disconnect once a stream
    has been down `after_s`, venue_recovered when it comes back after such an alert (a shorter blip says nothing)."""

    def __init__(self, after_s: float):
        self.after_s = after_s
        self._since: dict[str, float] = {}
        self._alerted: set[str] = set()

    def observe(self, name: str, down: bool, now: float) -> list[tuple[str, str, float]]:
        if down:
            since = self._since.setdefault(name, now)
            if name not in self._alerted and now - since >= self.after_s:
                self._alerted.add(name)
                return [("venue_disconnect", name, now - since)]
            return []
        since = self._since.pop(name, None)
        if since is not None and name in self._alerted:
            self._alerted.discard(name)
            return [("venue_recovered", name, now - since)]
        return []

    def down(self) -> dict[str, float]:
        return dict(self._since)


def summary_due(now: dt.datetime, hhmm: str | None, last_day: dt.date | None) -> bool:
    """The daily summary is due once per UTC day, at or after HH:MM."""
    if not hhmm:
        return False
    h, m = (int(x) for x in hhmm.split(":"))
    return now.date() != last_day and (now.hour, now.minute) >= (h, m)


class AlertRules:
    def __init__(self, cfg: AlertSettings, submit: Callable[[Alert], object], mode: str = "live",
                 venue: str | None = None):
        self.cfg = cfg
        self.submit = submit
        self.mode = mode
        self.venue = venue  # the exchange's name, shown in every alert's title (None: not shown)
        self._sym: dict[str, _Sym] = {}
        self.emitted: list[Alert] = []  # every alert handed to the dispatcher (most recent 200)

    def _s(self, symbol: str) -> _Sym:
        st = self._sym.get(symbol)
        if st is None:
            st = self._sym[symbol] = _Sym()
        return st

    def emit(self, event: str, title: str, body: str, symbol: str | None = None, key: str | None = None) -> None:
        sev = self.cfg.level(event)
        if sev == "off":
            return
        tag = ("[paper] " if self.mode == "paper" else "") + (f"[{self.venue}] " if self.venue else "")
        alert = Alert(event, sev, f"basisbot {tag}{title}", body, symbol, key)
        self.emitted.append(alert)
        del self.emitted[:-200]
        self.submit(alert)

    # -- market state -------------------------------------------------------------------------------------------------
    def funding_rate(self, symbol: str, rate: float, interval_minutes: int | None, next_funding_ns: int | None) -> None:
        st = self._s(symbol)
        st.rate = rate
        if interval_minutes:
            st.interval = int(interval_minutes)
        if next_funding_ns:
            st.next_funding_ns = int(next_funding_ns)

    def mark(self, symbol: str, mark: float) -> None:
        self._s(symbol).mark = mark

    def spot(self, symbol: str, price: float) -> None:
        self._s(symbol).spot = price

    # -- the journal's stream -----------------------------------------------------------------------------------------
    def record(self, rec) -> None:
        kind, d = rec.kind, rec.data
        if kind == "leg":
            self._leg(rec.symbol, rec.ts_ns, d)
        elif kind == "guard":
            self._guard(rec.symbol, d)
        elif kind == "decision":
            if d.get("action") == "exit":
                self._s(rec.symbol).exit_reason = d.get("reason")
        elif kind == "prediction":
            t = d.get("settlement_ns")
            if t:
                preds = self._s(rec.symbol).predictions
                preds[int(t)] = (d.get("predicted_rate"), d.get("position_qty"), d.get("mark"))
                for old in sorted(preds)[:-8]:
                    del preds[old]

    def _funding_line(self, st: _Sym, perp_qty: float | None) -> str:
        if st.rate is None:
            return "predicted funding: not known yet"
        pay = predicted_payment(perp_qty, st.mark, st.rate)
        nxt = f", next settlement {_ts(st.next_funding_ns)}" if st.next_funding_ns else ""
        return (f"predicted funding {st.rate:+.6f} per {_per(st.interval)} ({apr(st.rate, st.interval):+.2%} APR)"
                + (f", {pay:+.4f} USDT expected at the next settlement" if pay is not None else "") + nxt)

    def _leg(self, symbol: str, ts: int, d: dict) -> None:
        event, intent = d.get("event"), d.get("intent")
        filled = d.get("filled") or {}
        targets = d.get("targets") or {}
        st = self._s(symbol)
        pair = d.get("pair_id") or f"{symbol}-{intent}-{ts}"
        if event == "complete" and intent == "enter":
            spot_q = abs(filled.get("spot", 0.0))
            perp_q = abs(filled.get("perp", 0.0))
            notional = f" (≈ {spot_q * st.spot:,.2f} USDT spot notional)" if st.spot and spot_q else ""
            st.settled_since_entry = 0.0
            self.emit("entry", f"{symbol}: entered carry",
                      f"{symbol}: bought spot {spot_q:g}, sold perp {perp_q:g}{notional}.\n"
                      f"{self._funding_line(st, -perp_q)}.", symbol, key=f"entry:{pair}")
        elif event == "complete" and intent == "exit":
            spot_q = abs(filled.get("spot", 0.0))
            perp_q = abs(filled.get("perp", 0.0))
            self.emit("exit", f"{symbol}: exited carry",
                      f"{symbol}: sold spot {spot_q:g}, bought back perp {perp_q:g}"
                      + (f" ({st.exit_reason})" if st.exit_reason else "") + ".\n"
                      f"{self._funding_line(st, None)}; settled funding this carry {st.settled_since_entry:+.4f} USDT.",
                      symbol, key=f"exit:{pair}")
        elif event == "unwind":
            self.emit("leg_unwind", f"{symbol}: {intent} legs unwound",
                      f"{symbol}: a leg of the {intent} pair failed; unwinding what traded: {d.get('detail', '')} "
                      f"(targets {targets}, filled {filled}).", symbol)
        elif event == "timeout":
            self.emit("leg_timeout", f"{symbol}: {intent} leg timeout",
                      f"{symbol}: {intent} legs not filled in time ({d.get('detail', '')}); cancelling, then "
                      f"catching up or unwinding (filled {filled} of {targets}).", symbol)
        elif event == "stuck":
            self.emit("leg_stuck", f"{symbol}: {intent} STUCK, exposure left",
                      f"{symbol}: the {intent} pair could not complete: {d.get('detail', '')}. A leg is unhedged; "
                      f"check the venue.", symbol)

    def _guard(self, symbol: str, d: dict) -> None:
        step = d.get("step") or ""
        event = f"guard_{step}"
        if event not in ("guard_warn", "guard_add_margin", "guard_reduce", "guard_close"):
            return
        dist = d.get("distance")
        what = {"warn": "near liquidation", "add_margin": f"adding {d.get('add_margin') or 0:.2f} USDT margin",
                "reduce": f"reducing both legs by {d.get('reduce_fraction') or 0:.1%}",
                "close": "closing both legs"}[step]
        self.emit(event, f"{symbol}: guard {step.replace('_', ' ')}",
                  f"{symbol}: {what}; distance to liquidation "
                  + (f"{dist:.2%}" if dist is not None else "-")
                  + f" (mark {d.get('mark') or 0:g}, liquidation price {d.get('liquidation_price') or 0:g})"
                  + (f": {d['reason']}" if d.get("reason") else ""), symbol)

    # -- other topics -------------------------------------------------------------------------------------------------
    def liquidated(self, msg) -> None:
        self.emit("liquidation", f"{msg.symbol}: LIQUIDATED",
                  f"{msg.symbol}: the perp leg ({msg.side * msg.qty:+g}) was liquidated at {msg.price:g}; isolated "
                  f"wallet lost {msg.wallet_lost:.2f} USDT. The spot leg is being sold.", msg.symbol,
                  key=f"liquidation:{msg.symbol}:{msg.ts_ns}")

    def funding_settled(self, msg) -> None:
        st = self._s(msg.symbol)
        st.settled_since_entry += msg.payment
        t = min(st.predictions, key=lambda k: abs(k - msg.settlement_ts_ns), default=None)
        if t is None or abs(t - msg.settlement_ts_ns) > SETTLEMENT_MATCH_NS:
            return
        rate, qty, mark = st.predictions[t]
        pred = predicted_payment(qty, mark, rate)
        if not funding_mismatch(pred, msg.payment, self.cfg.funding_diff_usdt, self.cfg.funding_diff_rel):
            return
        self.emit("funding_mismatch", f"{msg.symbol}: funding booked {msg.payment:+.4f} vs predicted {pred:+.4f} USDT",
                  f"{msg.symbol} settlement {_ts(t)}: booked {msg.payment:+.6f} USDT at rate {msg.rate:+.6f}; "
                  f"predicted {pred:+.6f} USDT at rate {rate:+.6f} (position {qty}, mark {mark}); "
                  f"difference {msg.payment - pred:+.6f} USDT.", msg.symbol, key=f"funding:{msg.symbol}:{t}")

    def outage(self, event: str, name: str, seconds: float) -> None:
        if event == "venue_disconnect":
            self.emit(event, f"venue stream down: {name}",
                      f"{name} has been down for {seconds:.0f}s (reconnecting with backoff; REST polling covers "
                      "the gap). Trading goes on on what REST returns.", None, key=f"outage:{name}")
        else:
            self.emit(event, f"venue stream back: {name}", f"{name} is back after {seconds:.0f}s.", None,
                      key=f"recovered:{name}")

    def config_refused(self, ts_ns: int, source: str, message: str) -> None:
        self.emit("config_refused", "config change refused",
                  f"{source} at {_ts(ts_ns)}: the change was refused, the running config stays.\n{message}", None,
                  key=f"config:{ts_ns}")

    def daily_summary(self, text: str, day: dt.date) -> None:
        self.emit("daily_summary", f"daily summary {day.isoformat()}", text, None, key=f"summary:{day}")


__all__ = ["AlertRules", "Outages", "apr", "funding_mismatch", "predicted_payment", "summary_due"]
