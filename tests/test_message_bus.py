"""A backtest's message bus streams nothing out of the process: nautilus' publishable types are read from nautilus
itself, and the engine the backtest builds tests no message against them."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pandas as pd
from nautilus_trader.common.component import MessageBus, TestClock
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.identifiers import InstrumentId, TradeId, TraderId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.serialization.serializer import MsgSpecSerializer

from basisbot.backtest.run import build_engine, prepare
from basisbot.config.loading import load_settings
from basisbot.nautilus.message_bus import in_process_message_bus, publishable_types

REPO = Path(__file__).resolve().parents[1]


class Listener:
    """What nautilus' bus hands externally published messages to (a stream writer in production)."""

    def __init__(self):
        self.topics: list[str] = []

    def is_closed(self) -> bool:
        return False

    def publish(self, topic: str, payload: bytes) -> None:
        self.topics.append(topic)


def tick() -> TradeTick:
    return TradeTick(InstrumentId.from_str("BTCUSDT.BINANCE_SPOT"), Price.from_str("20000.00"),
                     Quantity.from_str("0.001"), AggressorSide.BUYER, TradeId("1"), 1, 1)


def published_externally(bus: MessageBus) -> list[str]:
    listener = Listener()
    bus.add_listener(listener)
    bus.publish("data.trades.BINANCE_SPOT.BTCUSDT", tick())
    return listener.topics


def bus(config) -> MessageBus:
    return MessageBus(TraderId("TEST-001"), TestClock(), serializer=MsgSpecSerializer(encoding=msgspec.msgpack),
                      config=config)


def test_publishable_types_are_nautilus_own():
    types = publishable_types()
    # market data, order and account events, commands: what the bus would stream out
    names = {t.__name__ for t in types}
    assert {"TradeTick", "QuoteTick", "Bar", "OrderFilled", "AccountState", "SubmitOrder", "str"} <= names
    assert len(types) >= 60


def test_the_filter_is_what_keeps_a_trade_off_the_listeners():
    assert published_externally(bus(None)) == ["data.trades.BINANCE_SPOT.BTCUSDT"]  # nautilus' default streams it
    assert published_externally(bus(in_process_message_bus())) == []


def test_the_backtest_engine_streams_nothing_out():
    p = prepare(load_settings(REPO / "config" / "basisbot.toml"), start="2023-01-01", end="2023-01-02",
                symbols=["BTCUSDT"])
    engine, _ = build_engine(p)
    try:
        assert published_externally(engine.kernel.msgbus) == []
        engine.run(end=pd.Timestamp("2023-01-01T06:00:00Z"))  # and the engine runs with it
        assert engine.iteration > 0
    finally:
        engine.dispose()


def test_a_nautilus_without_the_export_keeps_its_default_bus(monkeypatch):
    from nautilus_trader.serialization import base

    capi = dict(base.__pyx_capi__)
    monkeypatch.setattr(base, "__pyx_capi__", {k: v for k, v in capi.items() if k != "_EXTERNAL_PUBLISHABLE_TYPES"})
    assert publishable_types() == set() and in_process_message_bus() is None
    # another variable under the name (a dict, not the set of types): refused the same way
    monkeypatch.setattr(base, "__pyx_capi__", {"_EXTERNAL_PUBLISHABLE_TYPES": capi["_OBJECT_TO_DICT_MAP"]})
    assert publishable_types() == set()
