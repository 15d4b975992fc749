"""Trading journal: SQLite WAL with one writer, idempotent upserts, read-only readers, export; the JournalActor on a real
nautilus message bus (a small BacktestEngine and a standalone bus with stub events); `basisbot status` / `journal`."""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from nautilus_trader.accounting.margin_models import StandardMarginModel
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import MakerTakerFeeModel
from nautilus_trader.common.actor import Actor
from nautilus_trader.common.component import TestClock
from nautilus_trader.config import BacktestEngineConfig, LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import MarkPriceUpdate, QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import ClientOrderId, TradeId, TraderId, VenueOrderId
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.test_kit.stubs.component import TestComponentStubs
from nautilus_trader.test_kit.stubs.events import TestEventStubs
from nautilus_trader.test_kit.stubs.execution import TestExecStubs
from nautilus_trader.trading.strategy import Strategy

from basisbot.config.loading import load_settings
from basisbot.core.carry import FundingMemory, expected_funding, funding_mismatch
from basisbot.core.units import NS
from basisbot.journal.writer import EXPORT_ORDER, Journal, JournalReader
from basisbot.nautilus.instruments import make_perp, make_spot, perp_venue, spot_venue
from basisbot.nautilus.journal_actor import (
    FUNDING_PUBLISHED_ENDPOINT,
    FUNDING_SETTLED_TOPIC,
    FundingSettled,
    JournalActor,
    JournalActorConfig,
    classify_instrument,
)
from basisbot.nautilus.messages import (
    JOURNAL_TOPIC,
    RESTORE_ENDPOINT,
    JournalRecord,
    PerpMarginState,
    RestoreRequest,
    margin_topic,
)
from basisbot.ops.status import journal_main, render_status, status_main
from basisbot.strategies.basis_carry import BasisCarryStrategy
from basisbot.strategies.strategy_config import strategy_config
from basisbot.venues import get_profile
from basisbot.venues.binance import reference

ROOT = Path(__file__).resolve().parents[1]
M = 60 * NS
T0 = pd.Timestamp("2023-01-01", tz="UTC").value


def _records(symbol: str = "BTCUSDT", t: int = T0) -> list[JournalRecord]:
    """What BasisCarryStrategy publishes around one entry and one settlement."""
    pid = f"{symbol}-enter-{t}"
    tg = {"spot": 0.5, "perp": -0.5}
    T = t + 60 * M
    return [
        JournalRecord("decision", symbol, t, {"action": "enter", "reason": "predicted 0.000100/480m", "phase": "flat"}),
        JournalRecord("leg", symbol, t, {"pair_id": pid, "intent": "enter", "event": "start", "detail": "spot +0.5, perp -0.5",
                                         "status": "working", "targets": tg, "filled": {"spot": 0.0, "perp": 0.0}}),
        JournalRecord("leg", symbol, t + 1, {"pair_id": pid, "intent": "enter", "event": "fill", "detail": "spot 0.5 (0.5/0.5)",
                                             "status": "working", "targets": tg, "filled": {"spot": 0.5, "perp": 0.0}}),
        JournalRecord("leg", symbol, t + 2, {"pair_id": pid, "intent": "enter", "event": "fill", "detail": "perp 0.5 (0.5/0.5)",
                                             "status": "complete", "targets": tg, "filled": {"spot": 0.5, "perp": 0.5}}),
        JournalRecord("leg", symbol, t + 2, {"pair_id": pid, "intent": "enter", "event": "complete", "detail": "",
                                             "status": "complete", "targets": tg, "filled": {"spot": 0.5, "perp": 0.5}}),
        JournalRecord("guard", symbol, t + 5 * M, {"step": "warn", "distance": 0.11, "liquidation_price": 22000.0,
                                                   "mark": 20000.0, "add_margin": 0.0, "reduce_fraction": 0.0,
                                                   "reason": "distance 11.0% < warn 12.0%"}),
        JournalRecord("prediction", symbol, T - 10 * M, {"settlement_ns": T, "predicted_rate": 1e-4, "interval_minutes": 480,
                                                         "position_qty": -0.5, "mark": 20000.0}),
        JournalRecord("booking", symbol, T + M, {"settlement_ns": T, "predicted_rate": 1e-4, "position_qty": -0.5,
                                                 "phase": "in_carry"}),
    ]


def _replay(j: Journal) -> None:
    for rec in _records():
        j.record(rec)
    j.record_order("O-1", ts=T0, status="submitted", symbol="BTCUSDT", leg="spot", side="BUY", qty=0.5, type="MARKET",
                   tags=["ENTER"])
    j.record_order("O-1", ts=T0, status="accepted", venue_order_id="V-1")
    j.record_fill(trade_id="T-1", instrument_id="BTCUSDT.BINANCE_SPOT", client_order_id="O-1", symbol="BTCUSDT",
                  leg="spot", side="BUY", qty=0.5, price=20000.0, fee=10.0, fee_currency="USDT", ts=T0 + 1)
    j.record_order("O-2", ts=T0, status="submitted", symbol="BTCUSDT", leg="perp", side="SELL", qty=0.5, type="MARKET")
    j.record_fill(trade_id="T-1", instrument_id="BTCUSDT-PERP.BINANCE_PERP", client_order_id="O-2", symbol="BTCUSDT",
                  leg="perp", side="SELL", qty=0.5, price=20010.0, fee=5.0, fee_currency="USDT", ts=T0 + 2)
    j.record_position("BTCUSDT", T0 + 2, spot_qty=0.5, perp_qty=-0.5, perp_entry=20010.0, isolated_wallet=3335.0,
                      liquidation_price=26000.0, mark=20000.0, spot_price=19990.0, margin_mode="isolated")
    j.record_funding_settled("BTCUSDT", T0 + 60 * M + 3_000_000, rate=1e-4, payment=1.0, source="test")
    j.record_config_change(T0, "config/basisbot.toml", {"symbols": {"BTCUSDT": {"entry_apr": [0.08, 0.09]}}},
                           "applied", "BTCUSDT: applied", scope="BTCUSDT")
    j.record_control("BTCUSDT", T0 + 5, command="flatten", origin="cli", reason="test", answer="flattening",
                     state="flattening")
    j.record_risk(T0 + 6, limit_name="max_drawdown_pct", value=5.5, threshold=5.0, equity=945.0, reference=1000.0,
                  action="flatten", detail="drawdown")


def test_round_trip_and_replay_is_idempotent(tmp_path):
    j = Journal(tmp_path / "var" / "j.sqlite")
    assert j.journal_mode() == "wal"
    _replay(j)
    first = j.export("json")
    counts = {t: len(first[t]) for t in EXPORT_ORDER}
    assert counts == {"orders": 2, "fills": 2, "funding": 1, "guard": 1, "legs": 4, "decisions": 1,
                      "config_changes": 1, "positions": 1, "marks": 0, "venue_clock": 0, "alerts": 0,
                      "control": 1, "risk": 1}
    _replay(j)  # a restart replaying the same events
    assert j.export("json") == first
    # the same trade id on two instruments is two fills; the order status only moved forward
    assert {f["instrument_id"] for f in first["fills"]} == {"BTCUSDT.BINANCE_SPOT", "BTCUSDT-PERP.BINANCE_PERP"}
    o1 = next(o for o in first["orders"] if o["client_order_id"] == "O-1")
    assert (o1["status"], o1["filled_qty"], o1["avg_px"], o1["venue_order_id"], o1["tags"]) == \
        ("filled", 0.5, 20000.0, "V-1", "ENTER")
    # funding: predicted row first, booking, then the settled payment matched to T despite 3 ms of jitter
    f = first["funding"][0]
    assert f["settlement_ts"] == T0 + 60 * M
    assert f["predicted_rate"] == 1e-4 and f["settled_rate"] == 1e-4 and f["booked_phase"] == "in_carry"
    assert f["expected_payment"] == pytest.approx(0.5 * 20000.0 * 1e-4)
    assert f["difference"] == pytest.approx(0.0) and f["flagged"] == 0
    # the queries the restart logic uses
    pair = j.latest_pair("BTCUSDT")
    assert pair["completed"] and pair["done"] and pair["intent"] == "enter"
    assert pair["targets"] == {"spot": 0.5, "perp": -0.5} and pair["filled"] == {"spot": 0.5, "perp": 0.5}
    assert [h[1] for h in pair["history"]] == ["start", "fill", "fill", "complete"]
    assert j.phase("BTCUSDT") == "in_carry"
    assert j.settlements_held("BTCUSDT") == 1
    assert j.latest_pair("ETHUSDT") is None and j.phase("ETHUSDT") == "flat" and j.restore_state("ETHUSDT") is None
    j.close()
    # the data survives a reopen (a restart) and the reader sees the same
    with JournalReader(tmp_path / "var" / "j.sqlite") as r:
        assert r.export("json") == first



def test_settlements_held_counts_those_that_fell_while_the_bot_was_down(tmp_path):
    """A restart's minimum-hold count: the settlements booked in carry since the entry, and those the bot was down for
    (never booked) on which the exchange's income history shows a payment; not a settlement before the entry, not one
    with no payment (nothing held), not one the bot booked outside the carry."""
    j = Journal(tmp_path / "j.sqlite")
    _replay(j)  # entry at T0, booked in carry at T0 + 1 h
    assert j.settlements_held("BTCUSDT") == 1
    h = 60 * M
    for ts, payment in ((T0 + 9 * h + 2_000_000, -0.7), (T0 + 17 * h + 1_000_000, 0.9),  # down: income only
                        (T0 + 25 * h, 0.0),  # no payment: no position
                        (T0 - 7 * h, 1.1)):  # before the entry
        j.record_funding_settled("BTCUSDT", ts, rate=1e-4, payment=payment, source="binance:income")
    j.record(JournalRecord("booking", "BTCUSDT", T0 + 33 * h + M, {
        "settlement_ns": T0 + 33 * h, "predicted_rate": 1e-4, "position_qty": -0.5, "phase": "exiting"}))
    j.record_funding_settled("BTCUSDT", T0 + 33 * h, rate=1e-4, payment=1.0, source="binance:income")
    assert j.settlements_held("BTCUSDT") == 3
    assert j.restore_state("BTCUSDT")["settlements_held"] == 3
    j.close()

def test_order_status_never_moves_back_and_partial_fills(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.record_order("O-9", ts=1, status="submitted", qty=1.0, symbol="ETHUSDT", leg="perp", side="SELL")
    j.record_fill(trade_id="A", instrument_id="ETHUSDT-PERP.BINANCE_PERP", client_order_id="O-9", symbol="ETHUSDT",
                  leg="perp", side="SELL", qty=0.4, price=1000.0, fee=0.2, fee_currency="USDT", ts=3)
    assert j.rows("orders")[0]["status"] == "partially_filled"
    j.record_order("O-9", ts=2, status="accepted")  # late: does not undo the partial fill
    assert j.rows("orders")[0]["status"] == "partially_filled"
    j.record_order("O-9", ts=4, status="canceled")
    j.record_order("O-9", ts=2, status="accepted")
    row = j.rows("orders")[0]
    assert (row["status"], row["filled_qty"], row["ts_created"], row["ts_last"]) == ("canceled", 0.4, 1, 4)


def test_phase_from_the_last_pair(tmp_path):
    j = Journal(tmp_path / "j.sqlite")

    def leg(pid, ts, intent, event, status):
        j.record_leg(pair_id=pid, ts=ts, symbol="SOLUSDT", intent=intent, event=event, detail="", status=status)

    leg("e", 1, "enter", "start", "working")
    assert j.phase("SOLUSDT") == "entering" and not j.latest_pair("SOLUSDT")["done"]
    leg("e", 2, "enter", "unwind", "flat")
    assert j.phase("SOLUSDT") == "flat"
    leg("e2", 3, "enter", "complete", "complete")
    leg("x", 4, "exit", "start", "working")
    assert j.phase("SOLUSDT") == "exiting"
    leg("x", 5, "exit", "stuck", "stuck")
    assert j.phase("SOLUSDT") == "in_carry"  # a stuck close leaves exposure
    leg("x2", 6, "exit", "complete", "complete")
    assert j.phase("SOLUSDT") == "flat"


def test_funding_reconciliation_flags_a_mismatch_not_a_match(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    T1, T2 = T0 + 8 * 60 * M, T0 + 16 * 60 * M
    for T in (T1, T2):
        j.record_prediction("BTCUSDT", T, ts=T - 10 * M, predicted_rate=1e-4, interval_minutes=480,
                            position_qty=-0.5, mark=20000.0)
        j.record_settlement_capture("BTCUSDT", T, position_qty=-0.5, mark=20100.0)  # the mark at T wins
    ok = j.record_funding_settled("BTCUSDT", T1 - 2_000_000, rate=1.2e-4, payment=0.5 * 20100.0 * 1.2e-4,
                                  source="binance:income")
    assert ok["flagged"] == 0 and not ok["newly_flagged"]
    assert ok["settlement_ts"] == T1 and ok["expected_payment"] == pytest.approx(1.206)
    bad = j.record_funding_settled("BTCUSDT", T2, rate=1.2e-4, payment=1.206 + 0.05, source="binance:income")
    assert bad["flagged"] == 1 and bad["newly_flagged"] and bad["difference"] == pytest.approx(0.05)
    again = j.record_funding_settled("BTCUSDT", T2, rate=1.2e-4, payment=1.206 + 0.05, source="binance:income")
    assert again["flagged"] == 1 and not again["newly_flagged"]  # replay: no second warning
    assert len(j.rows("funding")) == 2
    assert j.funding_settled("BTCUSDT") == (pytest.approx(1.206 * 2 + 0.05), 2, 1)
    # tolerances: both the absolute and the relative one must be exceeded
    assert not funding_mismatch(100.0, 100.005, 0.01, 1e-6)
    assert not funding_mismatch(1e6, 1e6 + 0.5, 0.01, 1e-6)
    assert funding_mismatch(1e6, 1e6 + 2.0, 0.01, 1e-6)
    assert expected_funding(-0.5, 20000.0, 1e-4) == pytest.approx(1.0)


def test_reader_is_read_only_and_never_blocks_the_writer(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    j.record_decision("BTCUSDT", 1, action="start", reason="", phase="flat")
    holding, writer_done, seen = threading.Event(), threading.Event(), {}

    def reader():
        with JournalReader(path) as r:
            conn = r.db.conn
            conn.execute("BEGIN")  # a long read transaction (a slow `basisbot status`)
            seen["before"] = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
            holding.set()
            writer_done.wait(10)
            seen["same_snapshot"] = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
            conn.execute("COMMIT")
            seen["after"] = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
            try:
                conn.execute("INSERT INTO decisions (ts, symbol, action, reason) VALUES (9, 'X', 'x', 'x')")
            except sqlite3.OperationalError as e:
                seen["write_error"] = str(e)

    t = threading.Thread(target=reader)
    t.start()
    assert holding.wait(10)
    worst = 0.0
    for i in range(200):
        t0 = time.perf_counter()
        j.record_decision("BTCUSDT", 10 + i, action="hold", reason=f"r{i}", phase="in_carry")
        worst = max(worst, time.perf_counter() - t0)
    writer_done.set()
    t.join(10)
    assert seen["before"] == seen["same_snapshot"] == 1  # the reader keeps its snapshot ...
    assert seen["after"] == 201  # ... and sees everything once it starts a new one
    assert "readonly" in seen["write_error"]
    assert worst < 0.5  # never waited on the reader (typically ~0.1 ms)
    stats = j.latency_stats()
    assert stats["writes"] == 201 and stats["p50_us"] < 20_000


def test_export_json_and_csv(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    _replay(j)
    out = j.export("json", tmp_path / "export" / "journal.json")
    on_disk = json.loads((tmp_path / "export" / "journal.json").read_text())
    assert on_disk == json.loads(json.dumps(out))
    for key in ("orders", "fills", "funding", "guard", "legs", "decisions", "config_changes", "positions"):
        assert isinstance(on_disk[key], list)
    assert on_disk["legs"][0]["targets"] == {"perp": -0.5, "spot": 0.5}  # JSON columns come back as objects
    assert on_disk["config_changes"][0]["diff"]["symbols"]["BTCUSDT"]["entry_apr"] == [0.08, 0.09]
    texts = j.export("csv", tmp_path / "csv")
    for table in EXPORT_ORDER:
        rows = list(csv.DictReader((tmp_path / "csv" / f"{table}.csv").open()))
        assert len(rows) == len(out[table]), table
        assert texts[table].startswith(next(iter(rows[0])) if rows else "")
    fills = list(csv.DictReader((tmp_path / "csv" / "fills.csv").open()))
    assert {r["leg"] for r in fills} == {"spot", "perp"} and float(fills[0]["fee"]) == 10.0


# ---------------------------------------------------------------------------------------------------------------------
# JournalActor on a real message bus


def test_classify_instrument():
    assert classify_instrument("BTCUSDT-PERP.BINANCE_PERP") == ("BTCUSDT", "perp")
    assert classify_instrument("BTCUSDT.BINANCE_SPOT") == ("BTCUSDT", "spot")
    assert classify_instrument("BTC/USDT:USDT.BINANCE") == ("BTCUSDT", "perp")
    assert classify_instrument("BTC/USDT.BINANCE") == ("BTCUSDT", "spot")
    assert classify_instrument("ETHUSDT.BINANCEUSDM") == ("ETHUSDT", "perp")


BINANCE = get_profile("binance")
SPOT_VENUE, PERP_VENUE = spot_venue(BINANCE), perp_venue(BINANCE)
SPOT = make_spot("BTCUSDT", 0.001, 0.001, profile=BINANCE)
PERP = make_perp("BTCUSDT", 3, reference.brackets()["BTCUSDT"], 0.0005, 0.0002, profile=BINANCE)
T1, T2 = T0 + 60 * M, T0 + 70 * M
RATE = 1e-4


def _mark(i: int) -> float:
    return 16510.5 + i  # marks at T0 + i minutes + 30 s


class _Publisher(Strategy):
    """Does what BasisCarryStrategy and the live execution client do on the bus: journal records, two legs, a limit
    order it cancels, a margin state, predictions, bookings and settled funding (one matching, one not)."""

    def on_start(self) -> None:
        self.replies: list = []
        self.msgbus.send(RESTORE_ENDPOINT, RestoreRequest("BTCUSDT", self.replies.append))
        self.subscribe_quote_ticks(SPOT.id)
        self.subscribe_quote_ticks(PERP.id)
        self.sent = False
        self.filled: set[str] = set()
        self.pid = None
        for name, ts, fn in (("predict1", T1 - 10 * M, lambda e: self._predict(T1)),
                             ("book1", T1 + M, lambda e: self._book(T1, 0.01 * _mark(59) * RATE)),
                             ("predict2", T2 - 10 * M, lambda e: self._predict(T2)),
                             ("book2", T2 + M, lambda e: self._book(T2, 0.01 * _mark(69) * RATE + 0.05)),
                             ("limit", T0 + 5 * M, lambda e: self._limit()),
                             ("cancel", T0 + 6 * M, lambda e: self.cancel_all_orders(SPOT.id))):
            self.clock.set_time_alert_ns(name, ts, fn)

    def _j(self, kind: str, **data) -> None:
        self.msgbus.publish(JOURNAL_TOPIC, JournalRecord(kind, "BTCUSDT", self.clock.timestamp_ns(), data))

    def _leg(self, event: str, detail: str, status: str) -> None:
        self._j("leg", pair_id=self.pid, intent="enter", event=event, detail=detail, status=status,
                targets={"spot": 0.01, "perp": -0.01},
                filled={"spot": 0.01 if "spot" in self.filled else 0.0, "perp": 0.01 if "perp" in self.filled else 0.0})

    def on_quote_tick(self, tick) -> None:
        if self.sent or self.cache.quote_tick(SPOT.id) is None or self.cache.quote_tick(PERP.id) is None:
            return
        self.sent = True
        self.pid = f"BTCUSDT-enter-{self.clock.timestamp_ns()}"
        self._j("decision", action="enter", reason="test entry", phase="flat")
        self._leg("start", "spot +0.01, perp -0.01", "working")
        self.submit_order(self.order_factory.market(SPOT.id, OrderSide.BUY, SPOT.make_qty(0.01), tags=["ENTER"]))
        self.submit_order(self.order_factory.market(PERP.id, OrderSide.SELL, PERP.make_qty(0.01), tags=["ENTER"]))

    def on_order_filled(self, event) -> None:
        leg = "spot" if event.instrument_id == SPOT.id else "perp"
        self.filled.add(leg)
        done = self.filled == {"spot", "perp"}
        self._leg("fill", f"{leg} 0.01 (0.01/0.01)", "complete" if done else "working")
        if done:
            self._leg("complete", "", "complete")
            self.msgbus.publish(margin_topic("BTCUSDT"), PerpMarginState(
                "BTCUSDT", "isolated", -1, 0.01, event.last_px.as_double(), 0.01 * event.last_px.as_double() / 3,
                40000.0, 90000.0, self.clock.timestamp_ns()))
            self._j("guard", step="warn", distance=0.11, liquidation_price=18000.0, mark=16511.0, add_margin=0.0,
                    reduce_fraction=0.0, reason="test warn")

    def _limit(self) -> None:
        self.submit_order(self.order_factory.limit(SPOT.id, OrderSide.BUY, SPOT.make_qty(0.01), SPOT.make_price(10000)))

    def _predict(self, T: int) -> None:
        self._j("prediction", settlement_ns=T, predicted_rate=RATE, interval_minutes=480, position_qty=-0.01,
                mark=16000.0)

    def _book(self, T: int, payment: float) -> None:
        self._j("booking", settlement_ns=T, predicted_rate=RATE, position_qty=-0.01, phase="in_carry")
        # the exchange stamps its income a few milliseconds off T
        self.msgbus.publish(FUNDING_SETTLED_TOPIC, FundingSettled("BTCUSDT", T + 4_000_000, RATE, payment, "test"))


def _engine() -> BacktestEngine:
    eng = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("JOURNAL-001"),
                                              logging=LoggingConfig(log_level="ERROR", print_config=False)))
    eng.add_venue(venue=SPOT_VENUE, oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None,
                  starting_balances=[Money(100_000, USDT)], fee_model=MakerTakerFeeModel())
    eng.add_venue(venue=PERP_VENUE, oms_type=OmsType.NETTING, account_type=AccountType.MARGIN, base_currency=USDT,
                  starting_balances=[Money(50_000, USDT)], fee_model=MakerTakerFeeModel(),
                  margin_model=StandardMarginModel(), default_leverage=Decimal(1))
    eng.add_instrument(SPOT)
    eng.add_instrument(PERP)
    data = []
    for i in range(80):
        t = T0 + i * M
        data.append(QuoteTick(SPOT.id, Price(16500 + i, 2), Price(16501 + i, 2), Quantity(10, 5), Quantity(10, 5), t, t))
        data.append(QuoteTick(PERP.id, Price(16510 + i, 2), Price(16511 + i, 2), Quantity(10, 3), Quantity(10, 3), t, t))
        data.append(MarkPriceUpdate(PERP.id, Price(_mark(i), 2), t + 30 * NS, t + 30 * NS))
    eng.add_data(data)
    return eng


def test_actor_on_a_backtest_engine(tmp_path):
    path = tmp_path / "var" / "journal.sqlite"
    # what an earlier run left: a completed entry and one settlement held -> the restore reply
    prior = Journal(path)
    for rec in _records(t=T0 - 24 * 60 * M):
        prior.record(rec)
    prior.close()

    eng = _engine()
    actor = JournalActor(JournalActorConfig(journal_path=str(path), snapshot_interval_s=600,
                                            instruments={"BTCUSDT": [str(SPOT.id), str(PERP.id)]}))
    pub = _Publisher(StrategyConfig(strategy_id="Publisher-001"))
    eng.add_actor(actor)
    eng.add_strategy(pub)
    eng.run()
    eng.dispose()

    # restore: answered on the bus before the strategy traded
    (reply,) = pub.replies
    assert reply["phase"] == "in_carry" and reply["settlements_held"] == 1
    assert reply["pair"]["status"] == "complete" and reply["pair"]["targets"] == {"spot": 0.5, "perp": -0.5}
    assert reply["pair"]["filled"] == {"spot": 0.5, "perp": 0.5}

    with JournalReader(path) as r:
        data = r.export("json")
        orders = {(o["leg"], o["type"]): o for o in data["orders"]}
        assert orders[("spot", "MARKET")]["status"] == "filled" and orders[("spot", "MARKET")]["side"] == "BUY"
        assert orders[("perp", "MARKET")]["status"] == "filled" and orders[("perp", "MARKET")]["side"] == "SELL"
        assert orders[("spot", "LIMIT")]["status"] == "canceled" and orders[("spot", "LIMIT")]["price"] == 10000.0
        assert all(o["symbol"] == "BTCUSDT" and o["tags"] in ("ENTER", None) for o in data["orders"])
        fills = {f["leg"]: f for f in data["fills"]}
        assert fills["spot"]["price"] == 16501.0 and fills["perp"]["price"] == 16510.0
        assert fills["spot"]["fee"] == pytest.approx(0.01 * 16501.0 * 0.001) and fills["perp"]["fee_currency"] == "USDT"
        # the new pair is the latest; two settlements held in it
        pair = r.latest_pair("BTCUSDT")
        assert pair["completed"] and pair["targets"] == {"spot": 0.01, "perp": -0.01}
        assert r.phase("BTCUSDT") == "in_carry" and r.settlements_held("BTCUSDT") == 2
        # funding: position and mark captured at T (the last mark before T), settled payments reconciled
        f = {row["settlement_ts"]: row for row in data["funding"]}
        assert f[T1]["captured_at_settlement"] == 1 and f[T1]["mark_price"] == _mark(59)
        assert f[T1]["position_qty"] == -0.01 and f[T1]["flagged"] == 0
        assert f[T1]["difference"] == pytest.approx(0.0, abs=1e-12)
        assert f[T2]["mark_price"] == _mark(69) and f[T2]["flagged"] == 1
        assert f[T2]["difference"] == pytest.approx(0.05)
        assert [row["settlement_ts"] for row in actor.flagged] == [T2]
        # position snapshots: legs from position events, wallet and liquidation price from the margin state
        snaps = data["positions"]
        last = snaps[-1]
        assert (last["spot_qty"], last["perp_qty"], last["margin_mode"]) == (0.01, -0.01, "isolated")
        assert last["liquidation_price"] > last["mark"] > 0 and last["spot_price"] > 0
        assert len(snaps) <= 12  # throttled: 80 minutes of marks every minute, a snapshot at most every 10
        assert data["decisions"][-1]["action"] == "enter" and data["guard"][-1]["reason"] == "test warn"
    stats = actor.journal.latency_stats()
    assert stats["writes"] > 20 and actor.errors == 0



def test_restart_restores_the_funding_memory_a_run_that_never_stopped_holds(tmp_path):
    """The strategy's funding memory (the persistent level its entry and exit rules blend in) survives a restart: a
    run observes each settlement's pre-settlement prediction at its booking; the restarted strategy rebuilds the same
    memory, float for float, from the journal (and keeps the prediction of the settlement still ahead for its
    booking). Real rates and intervals: SOLUSDT's settlements of December 2022, journaled as the strategy does, with
    a stretch the bot was down (nothing journaled) and a settlement it booked without having decided on it (it
    started in between)."""
    rows = []
    with open(ROOT / "backtests/data/binance/SOLUSDT_funding_2022-2023.csv") as f:
        for r in csv.DictReader(f):
            ts = pd.Timestamp(r["datetime"]).value
            if T0 - 31 * 24 * 60 * M <= ts < T0 + 8 * 60 * M:
                rows.append((ts, float(r["funding_rate"])))
    settlements = []  # (settlement_ns, rate, interval_minutes, decided, booked)
    for i, (ts, rate) in enumerate(rows[:-1]):
        interval = 480 if i == 0 else round((ts - rows[i - 1][0]) / (60 * M)) * 60
        if 40 <= i < 45:
            continue  # the bot was down
        settlements.append((ts, rate, interval, i != 50, True))  # 50: started after its decision, before its booking
    # the settlement still ahead at the restart (T0): decided on before the stop, not booked
    settlements.append((T0 + 5 * M, rows[-1][1], 480, True, False))

    path = tmp_path / "var" / "journal.sqlite"
    prior = Journal(path)
    events = []
    for ts, rate, interval, decided, booked in settlements:
        if decided:
            prior.record(JournalRecord("prediction", "BTCUSDT", ts - 10 * M, {
                "settlement_ns": ts, "predicted_rate": rate, "interval_minutes": interval, "position_qty": -0.5,
                "mark": 16000.0}))
            events.append((ts - 10 * M, "decision", rate, interval))
        if booked:
            prior.record(JournalRecord("booking", "BTCUSDT", ts + M, {
                "settlement_ns": ts, "predicted_rate": rate, "position_qty": -0.5, "phase": "in_carry"}))
            events.append((ts + M, "booking", None, None))
    prior.close()

    settings = load_settings(ROOT / "config/basisbot.toml")
    strat = BasisCarryStrategy(strategy_config(settings, "BTCUSDT", str(SPOT.id), str(PERP.id), None,
                                               table=reference.brackets()["BTCUSDT"]))
    # the run that never stopped, as the strategy's jobs do it: a decision holds its prediction, the booking after
    # the settlement feeds it to the memory
    run, held = FundingMemory(strat.cfg.persistence_halflife), None
    for t, kind, rate, interval in sorted(events):
        if t > T0:
            break
        if kind == "decision":
            held = (rate, interval / 60)
        elif held is not None:
            run.observe(*held)
            held = None
    assert run.count == len(rows) - 1 - 5 - 1 and held == (rows[-1][1], 8.0)

    eng = _engine()  # its data starts at T0: the restart
    eng.add_actor(JournalActor(JournalActorConfig(journal_path=str(path), instruments={
        "BTCUSDT": [str(SPOT.id), str(PERP.id)]})))
    eng.add_strategy(strat)
    eng.run()
    eng.dispose()
    assert strat.memory.count == run.count and strat.memory.hourly == run.hourly
    assert strat._rate_at_decision == held


def _standalone_actor(tmp_path):
    msgbus, cache = TestComponentStubs.msgbus(), TestComponentStubs.cache()
    actor = JournalActor(JournalActorConfig(journal_path=str(tmp_path / "j.sqlite"), capture_settlement_marks=False))
    actor.register_base(TestComponentStubs.portfolio(), msgbus, cache, TestClock())
    actor.start()
    return actor, msgbus, cache



def test_actor_journals_at_start_the_settlements_read_while_connecting(tmp_path):
    """A live node's execution client reads the income of the settlements that fell while the node was down as it
    connects, before actors start (what it publishes then reaches no journal): the journal asks for them when it
    starts, so the restore the strategies ask for next counts them as held."""
    path = tmp_path / "j.sqlite"
    prior = Journal(path)
    _replay(prior)  # an entry at T0 and one settlement booked in carry
    prior.close()
    msgbus, cache = TestComponentStubs.msgbus(), TestComponentStubs.cache()
    read = [FundingSettled("BTCUSDT", T0 + 9 * 60 * M + 2_000_000, 1e-4, -1.0, "binance:income:7", position_qty=-0.5),
            FundingSettled("BTCUSDT", T0 + 17 * 60 * M + 1_000_000, 1e-4, -1.0, "binance:income:8", position_qty=-0.5)]
    msgbus.register(FUNDING_PUBLISHED_ENDPOINT, lambda handler: [handler(m) for m in read])
    actor = JournalActor(JournalActorConfig(journal_path=str(path), capture_settlement_marks=False))
    actor.register_base(TestComponentStubs.portfolio(), msgbus, cache, TestClock())
    actor.start()
    replies: list = []
    msgbus.send(RESTORE_ENDPOINT, RestoreRequest("BTCUSDT", replies.append))
    assert replies[0]["settlements_held"] == 3
    assert [(r["settled_payment"], r["source"]) for r in actor.journal.rows("funding", order_by="settlement_ts")][1:] \
        == [(-1.0, "binance:income:7"), (-1.0, "binance:income:8")]
    actor.stop()

class _LateIncome(Actor):
    """Publishes `FundingSettled`s at given times of the run, as a live execution client does when its read of the
    income history while connecting failed and a retry finds them after the strategies restored."""

    def __init__(self, at: list[tuple[int, FundingSettled]]):
        super().__init__()
        self._at = at

    def on_start(self) -> None:
        for i, (t, msg) in enumerate(self._at):
            self.clock.set_time_alert_ns(f"late-income-{i}", t,
                                         lambda _e, msg=msg: self.msgbus.publish(FUNDING_SETTLED_TOPIC, msg))


def test_a_settlement_held_while_down_and_read_after_the_restore_counts_toward_the_minimum_hold(tmp_path):
    """The strategy restores one settlement held (booked in carry before the stop). The node was down over two more;
    the income read at connection failed, and a retry finds one of them after the restore: the journal publishes its
    count again and the strategy's `settlements_held` follows it (2), once (the same payment read again changes
    nothing). A payment on a settlement after the start is not published: the strategy books that one itself."""
    path = tmp_path / "j.sqlite"
    t = T0 - 24 * 60 * M  # the entry; its first settlement (t + 1 h) booked in carry, then the node stopped
    prior = Journal(path)
    for rec in _records(t=t):
        prior.record(rec)
    prior.close()
    down = t + 9 * 60 * M + 2_000_000  # a settlement while the node was down (the exchange stamps it a few ms late)
    late = [(T0 + 10 * M, FundingSettled("BTCUSDT", down, 1e-4, -1.0, "binance:income:7", position_qty=-0.5)),
            (T0 + 20 * M, FundingSettled("BTCUSDT", down, 1e-4, -1.0, "binance:income:7", position_qty=-0.5)),
            (T0 + 40 * M, FundingSettled("BTCUSDT", T0 + 30 * M, 1e-4, -1.0, "binance:income:9", position_qty=-0.5))]
    settings = load_settings(ROOT / "config/basisbot.toml")
    strat = BasisCarryStrategy(strategy_config(settings, "BTCUSDT", str(SPOT.id), str(PERP.id), None,
                                               table=reference.brackets()["BTCUSDT"]))
    eng = _engine()  # its data starts at T0: the restart
    actor = JournalActor(JournalActorConfig(journal_path=str(path), capture_settlement_marks=False,
                                            instruments={"BTCUSDT": [str(SPOT.id), str(PERP.id)]}))
    eng.add_actor(actor)
    eng.add_actor(_LateIncome(late))
    eng.add_strategy(strat)
    eng.run()
    restored = strat._restored["settlements_held"]
    eng.dispose()
    assert restored == 1
    assert strat.settlements_held == 2
    assert [reason for _, action, reason in strat.log_.decisions if action == "settlements_held"] == [
        "1 -> 2: a settlement held while the node was down, read after the restore"]
    with JournalReader(path) as r:
        assert [f["settlement_ts"] for f in r.rows("funding", order_by="settlement_ts")] == [t + 60 * M, down,
                                                                                             T0 + 30 * M]


def test_actor_with_stub_events_replayed_twice(tmp_path):
    actor, bus, cache = _standalone_actor(tmp_path)
    spot, perp = TestInstrumentProvider.btcusdt_binance(), TestInstrumentProvider.btcusdt_perp_binance()
    o_spot = TestExecStubs.market_order(instrument=spot, order_side=OrderSide.BUY, quantity=spot.make_qty(0.5),
                                        client_order_id=ClientOrderId("O-SPOT"))
    o_perp = TestExecStubs.market_order(instrument=perp, order_side=OrderSide.SELL, quantity=perp.make_qty(0.5),
                                        client_order_id=ClientOrderId("O-PERP"))
    o_rej = TestExecStubs.market_order(instrument=perp, order_side=OrderSide.SELL, quantity=perp.make_qty(0.5),
                                       client_order_id=ClientOrderId("O-REJ"))
    for order in (o_spot, o_perp, o_rej):  # live: the execution engine caches every order before its events
        cache.add_order(order)
    events = [
        TestEventStubs.order_submitted(o_spot, ts_event=1),
        TestEventStubs.order_accepted(o_spot, venue_order_id=VenueOrderId("V-S"), ts_event=2),
        TestEventStubs.order_filled(o_spot, spot, trade_id=TradeId("1"), last_px=Price.from_str("20000.00"),
                                    venue_order_id=VenueOrderId("V-S"), ts_event=3),
        TestEventStubs.order_submitted(o_perp, ts_event=1),
        TestEventStubs.order_accepted(o_perp, venue_order_id=VenueOrderId("V-P"), ts_event=2),
        TestEventStubs.order_filled(o_perp, perp, trade_id=TradeId("1"), last_qty=perp.make_qty(0.2),
                                    last_px=Price.from_str("20010.0"), venue_order_id=VenueOrderId("V-P"), ts_event=3),
        TestEventStubs.order_submitted(o_rej, ts_event=4),
        TestEventStubs.order_rejected(o_rej, ts_event=5),
    ]
    for _ in range(2):  # a restart replays everything
        for ev in events:
            bus.publish(f"events.order.{ev.strategy_id}", ev)
        bus.publish(margin_topic("BTCUSDT"), PerpMarginState("BTCUSDT", "isolated", -1, 0.2, 20010.0, 1334.0, 1e4, 1e4,
                                                               10))
        bus.publish(FUNDING_SETTLED_TOPIC, FundingSettled("BTCUSDT", T0, 1e-4, 0.4, "test", position_qty=-0.2,
                                                          mark_price=20000.0))
    j = actor.journal
    orders = {o["client_order_id"]: o for o in j.rows("orders")}
    assert len(orders) == 3 and len(j.rows("fills")) == 2 and len(j.rows("positions")) == 1
    assert orders[o_spot.client_order_id.value]["status"] == "filled"
    assert orders[o_spot.client_order_id.value]["leg"] == "spot"
    assert orders[o_perp.client_order_id.value]["status"] == "partially_filled"
    assert orders[o_perp.client_order_id.value]["leg"] == "perp" and orders[o_perp.client_order_id.value]["price"] is None
    assert orders["O-REJ"]["status"] == "rejected" and orders["O-REJ"]["reason"] == "ORDER_REJECTED"
    assert {f["leg"]: f["symbol"] for f in j.rows("fills")} == {"spot": "BTCUSDT", "perp": "BTCUSDT"}
    snap = j.rows("positions")[0]
    assert snap["perp_qty"] == -0.2 and snap["liquidation_price"] > 20010.0
    (f,) = j.rows("funding")
    assert f["expected_payment"] == pytest.approx(0.4) and f["flagged"] == 0 and "supplied" in f["note"]
    # restore endpoint on the same bus
    replies = []
    bus.send(RESTORE_ENDPOINT, RestoreRequest("BTCUSDT", replies.append))
    bus.send(RESTORE_ENDPOINT, RestoreRequest("DOGEUSDT", replies.append))
    assert replies[0]["phase"] == "flat" and replies[0]["pair"] is None and replies[0]["position"]["perp_qty"] == -0.2
    assert replies[1] is None
    actor.stop()
    bus.publish(JOURNAL_TOPIC, JournalRecord("decision", "BTCUSDT", 99, {"action": "x", "reason": "", "phase": "flat"}))
    assert j.rows("decisions") == []  # unsubscribed on stop


def test_a_bad_record_is_logged_not_raised(tmp_path):
    actor, bus, _ = _standalone_actor(tmp_path)
    bus.publish(JOURNAL_TOPIC, JournalRecord("prediction", "BTCUSDT", 1, {"predicted_rate": 1e-4}))  # no settlement_ns
    bus.publish(JOURNAL_TOPIC, JournalRecord("decision", "BTCUSDT", 2, {"action": "enter", "reason": "r", "phase": "flat"}))
    assert actor.errors == 1 and len(actor.journal.rows("decisions")) == 1


# ---------------------------------------------------------------------------------------------------------------------
# basisbot status / journal


def _config(tmp_path: Path, journal: Path) -> Path:
    cfg = tmp_path / "basisbot.toml"
    cfg.write_text(f'mode = "paper"\njournal = "{journal}"\n[symbols.BTCUSDT]\nhedge_ratio = 1.0\nleverage = 3\n'
                   '[symbols.ETHUSDT]\nenabled = true\n')
    return cfg


def _args(cfg: Path, **kw) -> argparse.Namespace:
    return argparse.Namespace(config=cfg, env_file=None, **kw)


def test_status_with_an_open_carry(tmp_path, capsys):
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    _replay(j)
    T_next = T0 + 68 * 60 * M  # next settlement after the replayed one
    j.record_prediction("BTCUSDT", T_next, ts=T_next - 10 * M, predicted_rate=2e-4, interval_minutes=480,
                        position_qty=-0.5, mark=20000.0)
    j.close()
    settings = load_settings(_config(tmp_path, path), env_file=None)
    text = render_status(path, settings, now_ns=T_next - 110 * M)
    assert "BTCUSDT  phase: in_carry" in text
    assert "spot +0.5  perp -0.5" in text
    assert "hedge ratio 1.0000 (target 1.0000, drift +0.00%)" in text
    assert "basis       +0.0500%" in text
    assert "predicted +0.000200 per 8h (+21.90% APR)" in text and "in 1h 50m" in text
    assert "accrued     +2.0000 USDT" in text  # 0.5 × 20000 × 2e-4
    assert "settled     +1.0000 USDT over 1 settlement(s)" in text
    assert "liquidation 30.00% away" in text  # (26000 - 20000) / 20000
    assert "guard       last: warn" in text and "distance 11.00%" in text
    assert "ETHUSDT  phase: flat" in text and "no position snapshot yet" in text
    assert "last config change: applied" in text
    # through status_main: exit 0, printed
    assert status_main(_args(_config(tmp_path, path))) == 0
    assert "BTCUSDT  phase: in_carry" in capsys.readouterr().out


def test_status_and_journal_without_a_journal(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, Path("var/none.sqlite"))
    assert status_main(_args(cfg)) == 0
    out = capsys.readouterr().out
    assert "no journal yet at var/none.sqlite" in out
    assert journal_main(_args(cfg, format="json")) == 0
    assert json.loads(capsys.readouterr().out) == {t: [] for t in EXPORT_ORDER}
    assert not (tmp_path / "var").exists()  # a read never creates the journal
    bad = tmp_path / "bad.toml"
    bad.write_text("[symbols.BTCUSDT]\nhedge_ratio = 9\n")
    assert status_main(_args(bad)) == 2
    assert "hedge_ratio" in capsys.readouterr().err


def test_journal_main_json_csv_table(tmp_path, capsys):
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    _replay(j)
    cfg = _config(tmp_path, path)
    assert journal_main(_args(cfg, format="json")) == 0
    obj = json.loads(capsys.readouterr().out)  # ONE JSON object
    assert {k: type(v) for k, v in obj.items()} == {t: list for t in EXPORT_ORDER}
    assert len(obj["orders"]) == 2 and len(obj["fills"]) == 2 and len(obj["funding"]) == 1 and len(obj["guard"]) == 1
    assert journal_main(_args(cfg, format="csv", out=tmp_path / "csv")) == 0
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == sorted(f"{t}.csv" for t in EXPORT_ORDER)
    assert journal_main(_args(cfg, format="csv")) == 2  # a folder is needed
    capsys.readouterr()
    assert journal_main(_args(cfg, format="table")) == 0
    out = capsys.readouterr().out
    assert "== orders (2 rows)" in out and "== funding (1 row)" in out and "2023-01-01 00:00:00Z" in out
    j.close()


def test_a_guard_reduce_whose_margin_was_not_put_back_is_told_to_a_restart(tmp_path):
    """The restore state says when the last pair is a guard reduce with no "restore_margin" decision since it began:
    the restarted guard puts the released margin back instead of reducing a second time."""
    j = Journal(tmp_path / "j.sqlite")

    def leg(pid, ts, intent, event, status):
        j.record_leg(pair_id=pid, ts=ts, symbol="SOLUSDT", intent=intent, event=event, detail="", status=status)

    leg("e", 1, "enter", "complete", "complete")
    assert j.restore_state("SOLUSDT")["reduce_unrestored"] is False
    leg("r", 10, "reduce", "start", "working")
    assert j.restore_state("SOLUSDT")["reduce_unrestored"] is True  # killed with the reduce in flight
    leg("r", 11, "reduce", "complete", "complete")
    j.record_decision("SOLUSDT", 9, action="restore_margin", reason="an older one")
    assert j.reduce_unrestored("SOLUSDT")  # done at the venue, margin not put back yet
    j.record_decision("SOLUSDT", 12, action="restore_margin", reason="after reduce: add 5.00 USDT")
    assert not j.reduce_unrestored("SOLUSDT")
    leg("r2", 20, "reduce", "complete", "complete")
    assert j.reduce_unrestored("SOLUSDT")
    leg("x", 30, "exit", "complete", "complete")
    assert not j.reduce_unrestored("SOLUSDT")  # the last pair is no reduce
