"""Venue-initiated closes and the ADL rank on the node's side: Binance's recorded ORDER_TRADE_UPDATE messages for a
liquidation, an auto-deleveraging and an insurance-fund close (the nautilus_trader Binance adapter's fixtures,
nautechsystems/nautilus_trader crates/adapters/binance/test_data/futures/user_data_json/order_update_calculated.json,
order_update_adl.json, order_update_insurance.json; abridged to the fields ccxt reads) parsed by ccxt.pro's own
binanceusdm parser, then classified by the execution client; the ADL alert and the ADL rank in the alerts and in
`basisbot status`'s data."""

from __future__ import annotations

import ccxt.pro as ccxtpro
import pytest

from basisbot.config.schema import AlertSettings
from basisbot.live.exec.margin import adl_rank_reason
from basisbot.live.venue_hooks import hooks_for
from basisbot.live.venue_hooks.binance import venue_close_client_id, venue_close_done, venue_close_kind
from basisbot.nautilus.messages import JournalRecord, Liquidated
from basisbot.ops.alert_events import AlertRules
from basisbot.ops.status import adl_rank_of


def _recorded(c: str, x: str, status: str, side: str, qty: str, price: str, oid: int) -> dict:
    return {"s": "BTCUSDT", "c": c, "S": side, "o": "LIMIT", "f": "IOC", "q": qty, "p": price, "ap": price,
            "sp": "0", "x": x, "X": status, "i": oid, "l": qty, "z": qty, "L": price, "N": "USDT", "n": "0.1",
            "T": 1568879465651, "t": oid + 1, "b": "0", "a": "0", "m": False, "R": True, "wt": "CONTRACT_PRICE",
            "ot": "LIMIT", "ps": "BOTH", "cp": False, "rp": "-2.50"}


RECORDED = {
    "liquidation": _recorded("autoclose-1234567890", "CALCULATED", "FILLED", "SELL", "0.014", "9910.12", 8886999),
    "adl": _recorded("adl_autoclose", "CALCULATED", "NEW_ADL", "BUY", "0.005", "42000.00", 8887001),
    "insurance": _recorded("autoclose-insurance-5678", "CALCULATED", "NEW_INSURANCE", "SELL", "0.020", "45000.00",
                           8887003),
}


ADL_TOP = hooks_for("binance").adl_top  # Binance's adlQuantile: 0..4


def _reason(rank: int) -> str:
    return adl_rank_reason(rank, ADL_TOP, "quantile")


@pytest.fixture(scope="module")
def parser():
    return ccxtpro.binanceusdm()


@pytest.mark.parametrize("kind", ["liquidation", "adl", "insurance"])
def test_recorded_venue_closes_through_ccxt_are_recognised(parser, kind):
    o = parser.parse_ws_order(RECORDED[kind])
    # ccxt maps FILLED to "closed" and passes Binance's NEW_ADL / NEW_INSURANCE through unmapped
    assert o["status"] == {"liquidation": "closed", "adl": "NEW_ADL", "insurance": "NEW_INSURANCE"}[kind]
    assert venue_close_kind(o) == kind
    assert venue_close_done(o)
    assert venue_close_client_id(o) == f"{RECORDED[kind]['c']}-{RECORDED[kind]['i']}"


def test_ordinary_orders_and_unfilled_closes_are_not_venue_closes(parser):
    mine = parser.parse_ws_order({**RECORDED["liquidation"], "c": "O-20220301-BTC-1", "x": "TRADE"})
    assert venue_close_kind(mine) is None
    pending = parser.parse_ws_order({**RECORDED["adl"], "l": "0", "z": "0"})
    assert venue_close_kind(pending) == "adl" and not venue_close_done(pending)
    # on REST an ADL order is FILLED: still an ADL by its client id
    rest = {"clientOrderId": "adl_autoclose", "status": "closed", "filled": 0.005, "id": "1"}
    assert venue_close_kind(rest) == "adl" and venue_close_done(rest)


def test_adl_alert_names_the_deleveraging_and_the_rank_alert_fires_in_the_top_bucket():
    sent = []
    rules = AlertRules(AlertSettings(), sent.append)
    rules.liquidated(Liquidated("BTCUSDT", -1, 0.034, 43542.87, 0.0, 1, "adl"))
    (a,) = sent
    assert a.event == "adl" and a.severity == "critical" and "AUTO-DELEVERAGED" in a.title
    rules.liquidated(Liquidated("BTCUSDT", -1, 0.069, 43542.87, 120.0, 2))
    assert sent[-1].event == "liquidation" and "LIQUIDATED" in sent[-1].title
    n = len(sent)
    for rank in range(ADL_TOP):
        rules.record(JournalRecord("decision", "BTCUSDT", 10 + rank,
                                   {"action": "adl_rank", "reason": _reason(rank), "phase": ""}))
    assert len(sent) == n  # below the top bucket: nothing sent
    rules.record(JournalRecord("decision", "BTCUSDT", 20, {"action": "adl_rank", "reason": _reason(ADL_TOP),
                                                           "phase": ""}))
    assert sent[-1].event == "adl_rank" and sent[-1].severity == "warning" and "4 of 4" in sent[-1].title


def test_adl_rank_read_back_from_the_journaled_text():
    assert adl_rank_of({"reason": _reason(3), "ts": 5}) == {"rank": 3, "top": 4, "ts": 5}
    assert adl_rank_of(None) is None and adl_rank_of({"reason": "something else"}) is None
