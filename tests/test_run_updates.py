"""Which funding updates a quiet run hands to the engine (`basisbot.backtest.stream._kept_updates`): the last, each one
the strategy takes as news, each one whose interval the next does not repeat, and the last before each job; the rest
only set a rate and an interval that the next one sets again before anything reads them."""

from decimal import Decimal

from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId

from basisbot.backtest.feed import HOUR_NS, PRIO_PREDICTION, PRIO_SETTLEMENT
from basisbot.backtest.stream import _kept_updates

PERP = InstrumentId.from_str("BTCUSDT-PERP.BINANCE_PERP")
T0 = 1_700_000_000 * 10**9 // HOUR_NS * HOUR_NS
SETTLE = T0 + 8 * HOUR_NS


def _events(spec):
    """(hour, interval, next settlement, settlement?) -> the feed's (ts, priority, update) rows."""
    out = []
    for hour, interval, nxt, settles in spec:
        ts = T0 + hour * HOUR_NS + (1 if settles else 0)
        out.append((ts, PRIO_SETTLEMENT if settles else PRIO_PREDICTION,
                    FundingRateUpdate(PERP, Decimal("0.0001"), ts, ts, interval=interval, next_funding_ns=nxt)))
    return out


def test_only_the_last_of_updates_that_repeat_each_other():
    events = _events([(h, 480, SETTLE, False) for h in range(1, 6)])
    assert _kept_updates(events, list(range(5)), [], []) == [4]


def test_an_update_the_next_does_not_repeat_the_interval_of():
    events = _events([(1, 480, SETTLE, False), (2, 480, SETTLE, False), (3, 240, SETTLE, False),
                      (4, 240, SETTLE, False)])
    assert _kept_updates(events, list(range(4)), [], []) == [1, 3]


def test_news_and_the_update_before_each_job():
    events = _events([(1, 480, SETTLE, False), (2, 480, SETTLE, False), (3, 480, SETTLE, False),
                      (4, 480, SETTLE, False), (5, 480, SETTLE, False)])
    news = [events[1][0]]  # the strategy takes the second as news (a settlement it did not know)
    decision = T0 + 3 * HOUR_NS + 50 * 60 * 10**9  # a job between the third and the fourth reads the third
    assert _kept_updates(events, list(range(5)), [decision], news) == [1, 2, 4]
    # a job at the very time of the next update reads the one before it (alerts fire before the data of their time)
    assert _kept_updates(events, list(range(5)), [events[3][0]], []) == [2, 4]


def test_settlement_updates_are_left_to_the_caller():
    events = _events([(1, 480, SETTLE, False), (8, 480, SETTLE + 8 * HOUR_NS, True), (9, 480, SETTLE + 8 * HOUR_NS, False)])
    assert _kept_updates(events, [0, 1, 2], [], []) == [2]  # the settlement's is kept by the run in any case
