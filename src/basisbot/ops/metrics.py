"""Prometheus metrics of a live/paper node, on a registry of their own (nothing of prometheus_client's process-wide
default registry), every series prefixed ``basisbot_`` and labelled by carry symbol.

Per symbol: mark, spot, basis, predicted funding rate and APR, seconds to the next settlement, positions (by leg) and
hedge ratio, distance to liquidation, accrued funding (expected at the next settlement at the predicted rate on the
current position) and settled funding; guard actions by step, orders and rejects (by leg), leg gap and fill latency
histograms. Node-wide: websocket reconnects (by client), journal write latency, alerts sent / failed (by channel).

Updated on the event loop by `basisbot.ops.actor.OpsActor` and the ops service's 1 s tick; read by the HTTP server
thread (prometheus_client's metrics are thread-safe).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from basisbot.core.carry import expected_funding
from basisbot.ops.alert_events import apr

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class OpsMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        r = self.registry = CollectorRegistry(auto_describe=True)
        sym = ["symbol"]

        def g(name, doc, labels=sym):
            return Gauge(f"basisbot_{name}", doc, labels, registry=r)

        self.up = Gauge("basisbot_up", "1 while the node's trader runs", ["mode"], registry=r)
        self.venue = Gauge("basisbot_venue", "1 for the exchange the node trades on", ["exchange"], registry=r)
        self.mark = g("mark_price", "perp mark price")
        self.spot = g("spot_price", "spot price (mid)")
        self.basis = g("basis_ratio", "mark / spot - 1")
        self.rate = g("predicted_funding_rate", "predicted funding rate per interval")
        self.apr = g("predicted_funding_apr", "predicted funding rate annualised")
        self.next_settlement = g("next_settlement_seconds", "seconds to the next funding settlement")
        self.position = g("position_qty", "position in base units (perp short < 0)", ["symbol", "leg"])
        self.hedge = g("hedge_ratio", "|perp qty| / spot qty")
        self.distance = g("liquidation_distance_ratio", "distance of the mark to the liquidation price (0.1 = 10%)")
        self.liq_price = g("liquidation_price", "perp liquidation price")
        self.adl_rank = g("adl_quantile", "the perp's place in the venue's auto-deleveraging queue on the venue's "
                                          "own scale: Binance adlQuantile 0..4, OKX adl 0..5; the top (4 on "
                                          "Binance, 5 on OKX) is first to be deleveraged")
        self.accrued = g("accrued_funding_usdt", "funding expected at the next settlement (predicted rate, position)")
        self.settled = g("settled_funding_usdt", "funding settled since the node started (exchange income)")
        self.guard = Counter("basisbot_guard_actions", "guard actions", ["symbol", "step"], registry=r)
        self.orders = Counter("basisbot_orders", "orders submitted", ["symbol", "leg"], registry=r)
        self.rejects = Counter("basisbot_order_rejects", "orders rejected or denied", ["symbol", "leg"], registry=r)
        self.fills = Counter("basisbot_fills", "fills", ["symbol", "leg"], registry=r)
        self.leg_gap = Histogram("basisbot_leg_gap_seconds", "time between the two legs' first fills of a pair",
                                 sym, buckets=LATENCY_BUCKETS, registry=r)
        self.fill_latency = Histogram("basisbot_fill_latency_seconds", "order submitted -> first fill",
                                      ["symbol", "leg"], buckets=LATENCY_BUCKETS, registry=r)
        self.reconnects = Counter("basisbot_ws_reconnects", "websocket stream reconnects", ["client"], registry=r)
        self.stream_down = Gauge("basisbot_stream_down", "1 while a venue stream is down", ["client"], registry=r)
        self.journal_latency = Gauge("basisbot_journal_write_latency_seconds", "journal write latency (one commit)",
                                     ["stat"], registry=r)
        self.journal_writes = Gauge("basisbot_journal_writes", "journal writes since start", registry=r)
        self.alerts_sent = Counter("basisbot_alerts_sent", "alerts delivered", ["channel"], registry=r)
        self.alerts_failed = Counter("basisbot_alerts_failed", "alerts not delivered after retries", ["channel"],
                                     registry=r)
        self._state: dict[str, dict] = {}
        self._reconnects_seen: dict[str, int] = {}

    def st(self, symbol: str) -> dict:
        s = self._state.get(symbol)
        if s is None:
            s = self._state[symbol] = {"spot_qty": None, "perp_qty": None, "mark": None, "spot": None, "rate": None,
                                       "interval": 480, "next_ns": None, "liq": None, "side": 0, "settled": 0.0}
            self.settled.labels(symbol).set(0.0)
        return s

    # -- inputs -------------------------------------------------------------------------------------------------------
    def on_mark(self, symbol: str, mark: float) -> None:
        s = self.st(symbol)
        s["mark"] = mark
        self.mark.labels(symbol).set(mark)
        self._derived(symbol)

    def on_spot(self, symbol: str, price: float) -> None:
        s = self.st(symbol)
        s["spot"] = price
        self.spot.labels(symbol).set(price)
        self._derived(symbol)

    def on_funding(self, symbol: str, rate: float, interval_minutes: int | None, next_ns: int | None) -> None:
        s = self.st(symbol)
        s["rate"] = rate
        if interval_minutes:
            s["interval"] = int(interval_minutes)
        if next_ns:
            s["next_ns"] = int(next_ns)
        self.rate.labels(symbol).set(rate)
        self.apr.labels(symbol).set(apr(rate, s["interval"]))
        self._derived(symbol)

    def on_position(self, symbol: str, leg: str, qty: float) -> None:
        s = self.st(symbol)
        s[f"{leg}_qty"] = qty
        self.position.labels(symbol, leg).set(qty)
        self._derived(symbol)

    def on_liquidation_price(self, symbol: str, side: int, price: float | None) -> None:
        s = self.st(symbol)
        s["liq"], s["side"] = price, side
        if price:
            self.liq_price.labels(symbol).set(price)
        self._derived(symbol)

    def on_settled(self, symbol: str, payment: float) -> None:
        s = self.st(symbol)
        s["settled"] += payment
        self.settled.labels(symbol).set(s["settled"])

    def tick(self, now_ns: int) -> None:
        """Time-driven values (countdown)."""
        for symbol, s in self._state.items():
            if s["next_ns"]:
                nxt, step = s["next_ns"], s["interval"] * 60 * 1_000_000_000
                while nxt <= now_ns and step > 0:
                    nxt += step
                self.next_settlement.labels(symbol).set((nxt - now_ns) / 1e9)

    def _derived(self, symbol: str) -> None:
        s = self._state[symbol]
        mark, spot, perp, spot_q = s["mark"], s["spot"], s["perp_qty"], s["spot_qty"]
        if mark and spot:
            self.basis.labels(symbol).set(mark / spot - 1)
        if spot_q and perp is not None:
            self.hedge.labels(symbol).set(abs(perp) / spot_q)
        acc = expected_funding(perp, mark, s["rate"])
        if acc is not None:
            self.accrued.labels(symbol).set(acc)
        if mark and s["liq"] and s["side"] and perp:
            lp = s["liq"]
            self.distance.labels(symbol).set((lp - mark) / mark if s["side"] < 0 else (mark - lp) / mark)

    def reconnects_total(self, client: str, total: int) -> None:
        """Counters from the clients' own totals (only the increase is added)."""
        seen = self._reconnects_seen.get(client, 0)
        if total > seen:
            self.reconnects.labels(client).inc(total - seen)
        self._reconnects_seen[client] = total
        self.reconnects.labels(client)  # the series exists from the start (0)

    def journal_stats(self, stats: dict) -> None:
        self.journal_writes.set(stats.get("writes", 0))
        for k in ("mean", "p50", "p99", "max"):
            self.journal_latency.labels(k).set(stats.get(f"{k}_us", 0.0) / 1e6)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["OpsMetrics"]
