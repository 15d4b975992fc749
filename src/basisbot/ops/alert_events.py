"""What is worth telling the operator: bus traffic in, `Alert`s out (no I/O; `submit` is the dispatcher's).

Inputs are what the strategy and the clients already publish (the journal's stream, `basisbot.nautilus.messages`):

| event | from | default |
|---|---|---|
| entry / exit | `leg` record, intent enter / exit, event complete (sizes from the pair's fills; predicted funding from the
  funding-rate stream; exit reason from the last `exit` decision) | info |
| guard_warn, guard_add_margin, guard_reduce, guard_close | `guard` record, by step | off, warning, error, critical |
| liquidation | `Liquidated` on `basisbot.liquidation.SYMBOL` | critical |
| adl | `Liquidated` of kind "adl" / "insurance" (the venue closed part or all of the perp itself) | critical |
| adl_rank | a `decision` record "adl_rank" in the top bucket (the exchange client journals each change) | warning |
| leg_unwind / leg_timeout / leg_stuck | `leg` record, event unwind / timeout / stuck | error / warning / critical |
| funding_mismatch | `FundingSettled` vs the `prediction` record of the same settlement: booked − predicted beyond both
  `funding_diff_usdt` and `funding_diff_rel` × |predicted| | warning |
| venue_disconnect / venue_recovered | `Outages`: a stream down longer than `disconnect_after_s`, and its return | error / info |
| config_refused | a `refused` row in the journal's config_changes | warning |
| daily_summary | `basisbot status` text at `daily_summary_utc` | info |
| control / control_refused | an operator's command (ops server, page, Telegram), a flatten complete, a command by the
  risk limits / a refused command (wrong token, unknown chat) | warning / warning |
| risk_breach | `risk` record: a `[risk]` limit crossed, with its figures and action | critical |

Severities come from `[alerts] levels` (per event; "off" mutes it) over these defaults.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from basisbot.config.schema import AlertSettings
from basisbot.core.carry import annualise, expected_funding, funding_mismatch
from basisbot.core.legs import Intent
from basisbot.core.units import NS
from basisbot.ops.alerts import Alert

SETTLEMENT_MATCH_NS = 60 * NS


def apr(rate: float, interval_minutes: int) -> float:
    """`carry.annualise` of a rate per `interval_minutes` (unknown: the 8-hour default)."""
    return annualise(rate, (interval_minutes or 480) / 60)


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
        elif kind == "risk":
            if d.get("action") == "cleared":
                self.emit("control", f"risk limit {d.get('limit')} cleared", str(d.get("detail") or ""))
            else:
                self.emit("risk_breach", f"RISK LIMIT BREACHED: {d.get('limit')} -> {d.get('action')}",
                          str(d.get("detail") or ""), key=f"risk:{d.get('limit')}:{rec.ts_ns}")
        elif kind == "control" and d.get("origin") == "risk" and d.get("command") != "flattened":
            self.emit("control", f"{rec.symbol}: {d.get('command')} by the risk limits", str(d.get("reason") or ""),
                      rec.symbol, key=f"control:{rec.symbol}:{rec.ts_ns}")
        elif kind == "control" and d.get("command") == "flattened":
            self.emit("control", f"{rec.symbol}: flatten complete", f"{rec.symbol}: flat on both legs; paused "
                      "until resume", rec.symbol, key=f"flattened:{rec.symbol}:{rec.ts_ns}")
        elif kind == "decision":
            if d.get("action") == "exit":
                self._s(rec.symbol).exit_reason = d.get("reason")
            elif d.get("action") == "adl_rank":
                self._adl_rank(rec.symbol, rec.ts_ns, str(d.get("reason") or ""))
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
        pay = expected_funding(perp_qty, st.mark, st.rate)
        nxt = f", next settlement {_ts(st.next_funding_ns)}" if st.next_funding_ns else ""
        return (f"predicted funding {st.rate:+.6f} per {_per(st.interval)} ({apr(st.rate, st.interval):+.2%} APR)"
                + (f", {pay:+.4f} USDT expected at the next settlement" if pay is not None else "") + nxt)

    def _leg(self, symbol: str, ts: int, d: dict) -> None:
        event, intent = d.get("event"), d.get("intent")
        filled = d.get("filled") or {}
        targets = d.get("targets") or {}
        st = self._s(symbol)
        pair = d.get("pair_id") or f"{symbol}-{intent}-{ts}"
        if event == "complete" and intent == Intent.ENTER:
            spot_q = abs(filled.get("spot", 0.0))
            perp_q = abs(filled.get("perp", 0.0))
            notional = f" (≈ {spot_q * st.spot:,.2f} USDT spot notional)" if st.spot and spot_q else ""
            st.settled_since_entry = 0.0
            self.emit("entry", f"{symbol}: entered carry",
                      f"{symbol}: bought spot {spot_q:g}, sold perp {perp_q:g}{notional}.\n"
                      f"{self._funding_line(st, -perp_q)}.", symbol, key=f"entry:{pair}")
        elif event == "complete" and intent == Intent.EXIT:
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

    def _adl_rank(self, symbol: str, ts: int, reason: str) -> None:
        m = re.search(r"(\d+) of (\d+)", reason)
        if m is None or int(m.group(1)) < int(m.group(2)):
            return
        self.emit("adl_rank", f"{symbol}: ADL rank {m.group(1)} of {m.group(2)}",
                  f"{symbol}: the perp is in the top bucket of the venue's auto-deleveraging queue ({reason}): in a "
                  f"sharp move it is among the first profitable positions to be closed by the venue, leaving the "
                  f"spot unhedged.", symbol, key=f"adl_rank:{symbol}:{ts}")

    # -- other topics -------------------------------------------------------------------------------------------------
    def liquidated(self, msg) -> None:
        kind = getattr(msg, "kind", "liquidation")
        if kind != "liquidation":
            what = "AUTO-DELEVERAGED (ADL)" if kind == "adl" else "CLOSED BY THE INSURANCE FUND"
            self.emit("adl", f"{msg.symbol}: perp {what}",
                      f"{msg.symbol}: the venue closed {msg.qty:g} of the perp leg ({what.lower()}) at "
                      f"{msg.price:g}. The spot it no longer hedges is being sold.", msg.symbol,
                      key=f"adl:{msg.symbol}:{msg.ts_ns}")
            return
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
        pred = expected_funding(qty, mark, rate)
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


__all__ = ["AlertRules", "Outages", "apr", "summary_due"]
