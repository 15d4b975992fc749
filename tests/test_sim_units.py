"""Local venue building blocks without a network: replay clock, price paths, signatures, faults, venue maths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from basisbot.core import margin
from basisbot.core.carry import funding_payment
from basisbot.core.units import HOUR_MS
from basisbot.data.market_data import load_symbol
from basisbot.sim.binance.auth import Auth, sign
from basisbot.sim.config import SimConfig
from basisbot.sim.engine import errors
from basisbot.sim.engine.book import make_quote, resting_fills
from basisbot.sim.engine.clock import ReplayClock
from basisbot.sim.engine.core import Venue
from basisbot.sim.engine.errors import BinanceError
from basisbot.sim.engine.faults import FaultState
from basisbot.sim.engine.markets import build_market
from basisbot.sim.engine.prices import load_paths
from basisbot.venues.binance import reference
from tests.helpers.sim_venue import DATA, KEY, SECRET


class FakeWall:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_replay_clock_speed_pause_jump_and_end():
    wall = FakeWall()
    c = ReplayClock(0, 10_000_000, speed=60, wall=wall)
    wall.t += 2
    assert c.now_ms() == 120_000
    c.pause()
    wall.t += 5
    assert c.now_ms() == 120_000
    c.resume()
    c.set_speed(10)
    wall.t += 1
    assert c.now_ms() == 130_000
    assert c.jump_to(5_000_000) == 5_000_000
    with pytest.raises(ValueError):
        c.jump_to(10)
    wall.t += 10_000
    assert c.now_ms() == 10_000_000 and c.finished


def test_paths_touch_every_high_and_low_and_mark_ends_at_mark_close():
    data = load_symbol(DATA, "BTCUSDT", "2022-03-01", "2022-03-03", allow_perp_gaps=True)
    p = load_paths(str(DATA), "BTCUSDT")
    for ts, row in data.bars.iterrows():
        t0 = int(ts.value // 1_000_000)
        vs = [p.perp(t0 + k) for k in (0, HOUR_MS // 3, 2 * HOUR_MS // 3, HOUR_MS - 1)]
        assert vs[0] == pytest.approx(row.perp_open) and vs[3] == pytest.approx(row.perp_close)
        assert max(vs) == pytest.approx(row.perp_high) and min(vs) == pytest.approx(row.perp_low)
        # rising bar: low first, falling bar: high first
        assert vs[1] == pytest.approx(row.perp_low if row.perp_close >= row.perp_open else row.perp_high)
        assert p.mark(t0 + HOUR_MS - 1) == pytest.approx(row.mark_close)
        s = [p.spot(t0 + k) for k in (0, HOUR_MS // 3, 2 * HOUR_MS // 3, HOUR_MS - 1)]
        assert max(s) == pytest.approx(row.spot_high) and min(s) == pytest.approx(row.spot_low)
    # between vertices the path is linear
    t = int(data.bars.index[0].value // 1_000_000)
    mid = t + HOUR_MS // 6
    assert p.perp(mid) == pytest.approx((p.perp(t) + p.perp(t + HOUR_MS // 3)) / 2, rel=1e-6)


def test_paths_handle_the_real_gaps():
    sol = load_paths(str(DATA), "SOLUSDT")
    t = int(np.datetime64("2022-02-27T12:00", "ms").astype(np.int64))  # perp hole: perp follows the mark
    assert sol.perp(t + 1000) == pytest.approx(sol.mark(t + 1000))
    outage = int(np.datetime64("2023-03-24T13:00", "ms").astype(np.int64))  # spot outage: market closed
    assert not sol.spot_is_open(outage + 60_000) and sol.spot_is_open(outage - 60_000)
    assert sol.spot(outage + 60_000) == sol.spot(outage + 3_000_000)


def test_funding_schedule_and_predicted_rate():
    p = load_paths(str(DATA), "BTCUSDT")
    i = 10
    ts, prev_ts = int(p.fund_ts[i]), int(p.fund_ts[i - 1])
    assert p.next_funding_time(prev_ts) == ts and p.next_funding_time(ts - 1) == ts
    assert p.predicted_rate(prev_ts, "interpolate") == pytest.approx(p.fund_rate[i - 1])
    assert p.predicted_rate(ts - 1, "interpolate") == pytest.approx(p.fund_rate[i], abs=1e-9)
    assert p.predicted_rate(prev_ts + 5, "next") == p.fund_rate[i]
    assert p.interval_hours(prev_ts) == 8
    assert list(p.settlements_between(prev_ts, ts)) == [i]
    hist = p.funding_history(None, None, 3, ts)
    assert [h[0] for h in hist] == [int(x) for x in p.fund_ts[i - 2:i + 1]]


def test_book_quotes_and_resting_fill_rule():
    q = make_quote(43000.123, 0.01, 5)
    assert (q.bid, q.ask) == (pytest.approx(43000.12), pytest.approx(43000.13))
    assert q.marketable("BUY", 43000.13) and not q.marketable("BUY", 43000.12)
    assert resting_fills("BUY", 43000.0, 42999.99) and not resting_fills("BUY", 43000.0, 43000.0)
    assert resting_fills("SELL", 43000.0, 43000.0) and not resting_fills("SELL", 43000.0, 42999.99)


def test_signature_checks():
    now = [1_700_000_000_000]
    auth = Auth(KEY, SECRET, wall_ms=lambda: now[0])
    q = f"symbol=BTCUSDT&timestamp={now[0]}"
    body = "quantity=1&side=BUY"
    sig = sign(SECRET, q + body)  # Binance: query string and body concatenated
    params = {"symbol": "BTCUSDT", "timestamp": str(now[0]), "quantity": "1", "side": "BUY", "signature": sig}
    auth.verify_signed(KEY, q, body + f"&signature={sig}", params)
    with pytest.raises(BinanceError) as e:
        auth.verify_signed(KEY, q, body + "&signature=00", {**params, "signature": "00"})
    assert e.value.code == -1022 and e.value.status == 400
    with pytest.raises(BinanceError) as e:
        auth.verify_signed("other" + "x" * 59, q, body, params)
    assert e.value.code == -2015 and e.value.status == 401
    with pytest.raises(BinanceError) as e:
        auth.verify_signed(None, q, body, params)
    assert e.value.code == -2014
    now[0] += 6000  # default recvWindow 5000
    with pytest.raises(BinanceError) as e:
        auth.verify_signed(KEY, q, body + f"&signature={sig}", params)
    assert e.value.code == -1021
    now[0] -= 10_000  # request 4 s in the future
    with pytest.raises(BinanceError) as e:
        auth.verify_signed(KEY, q, body + f"&signature={sig}", params)
    assert e.value.code == -1021
    ws_params = {"apiKey": KEY, "timestamp": now[0] + 4000}
    ws_params["signature"] = sign(SECRET, f"apiKey={KEY}&timestamp={now[0] + 4000}")
    now[0] += 4000
    auth.verify_ws_params(ws_params)


def test_fault_specs():
    f = FaultState()
    f.apply({"fail_next": {"count": 2, "status": 429, "path_prefix": "/fapi"}, "delay_ms": 5,
             "reject_next_order": {"venue": "spot"}, "partial_fill_next": {"venue": "perp", "fraction": 0.3},
             "freeze_mark": ["btcusdt"]})
    assert f.take_failure("/api/v3/time") is None
    assert f.take_failure("/fapi/v1/time").status == 429 and f.take_failure("/fapi/v1/time") is not None
    assert f.take_failure("/fapi/v1/time") is None
    assert f.take_reject("spot").code == -2010 and f.take_reject("spot") is None
    f.apply({"reject_next_order": {"venue": "spot", "side": "sell", "count": 2}})  # sales refused, buys go through
    assert f.take_reject("spot", "BTCUSDT", "BUY") is None
    assert f.take_reject("spot", "BTCUSDT", "SELL").code == -2010 and f.state()["reject_next_order"]["spot"][0]["side"] == "SELL"
    assert f.take_reject("spot", "BTCUSDT", "SELL") is not None and f.take_reject("spot", "BTCUSDT", "SELL") is None
    assert f.take_partial("futures") == 0.3
    assert f.mark_frozen("BTCUSDT") and not f.mark_frozen("ETHUSDT")
    assert f.apply({"drop_ws": True}) == {"drop_ws": True}
    for bad in ({"nope": 1}, {"fail_next": {"status": 404}}, {"partial_fill_next": {"fraction": 1.5}},
                {"reject_next_order": {"side": "short"}}):
        with pytest.raises(ValueError):
            f.apply(bad)
    f.apply({"clear": True})
    assert f.state()["freeze_mark"] == [] and f.delay_ms == 0


def _venue(**over) -> Venue:
    cfg = SimConfig(data_dir=DATA, api_key=KEY, api_secret=SECRET, **over)
    markets = {"BTCUSDT": build_market("BTCUSDT")}
    paths = {"BTCUSDT": load_paths(str(DATA), "BTCUSDT")}
    start = int(np.datetime64("2022-03-01T07:00", "ms").astype(np.int64))
    clock = ReplayClock(start, paths["BTCUSDT"].end_ms, speed=1, paused=True)
    return Venue(cfg, markets, paths, clock, FaultState())


def test_venue_funding_and_isolated_margin_use_the_project_formulas():
    v = _venue(default_margin_type="ISOLATED", default_leverage=4)
    events = []
    v.user_listeners.append(lambda acct, p: events.append((acct, p)))
    o = v.futures_new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.2"})
    assert o.status == "FILLED"
    pos = v.fut.positions["BTCUSDT"]
    assert pos.qty == -0.2 and pos.iso_wallet == pytest.approx(0.2 * o.avg_price / 4)
    table = reference.brackets()["BTCUSDT"]
    assert v.fut.liquidation_price("BTCUSDT", v.marks()) == margin.liquidation_price(
        -1, 0.2, o.avg_price, pos.iso_wallet, table)
    p = v.paths["BTCUSDT"]
    ts = p.next_funding_time(v.t)
    wallet = pos.iso_wallet
    v.clock.jump_to(ts + 1)
    v.sync()
    expected = funding_payment(-0.2, p.mark(ts), float(p.fund_rate[p.next_settlement_index(ts - 1)]))
    assert pos.iso_wallet == pytest.approx(wallet + expected, abs=1e-9)
    upd = [e for a, e in events if a == "futures" and e.get("e") == "ACCOUNT_UPDATE"
           and e["a"]["m"] == "FUNDING_FEE"]
    assert len(upd) == 1 and upd[0]["E"] == ts
    assert v.fut.income[-1]["incomeType"] == "FUNDING_FEE"
    # close: the isolated wallet returns to the cross wallet, PnL and fees booked there
    total_before = v.fut.wallet_balance()
    c = v.futures_new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.2",
                             "reduceOnly": "true"})
    assert pos.qty == 0 and pos.iso_wallet == 0
    pnl = -0.2 * (c.avg_price - o.avg_price)
    assert v.fut.wallet_balance() == pytest.approx(total_before + pnl - 0.2 * c.avg_price * 0.0005)
    with pytest.raises(BinanceError) as e:
        v.futures_new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.2",
                             "reduceOnly": "true"})
    assert e.value.code == -2022


def test_venue_spot_accounting_and_errors():
    v = _venue(spot_balances={"USDT": 1000.0})
    with pytest.raises(BinanceError) as e:
        v.spot_new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})
    assert e.value.msg == "Account has insufficient balance for requested action."
    o, fills = v.spot_new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quoteOrderQty": "500"})
    assert o.status == "FILLED" and o.cum_quote <= 500 and len(fills) == 1
    assert v.spot.free("BTC") == pytest.approx(o.executed_qty * 0.999)
    assert v.spot.free("USDT") == pytest.approx(1000 - o.cum_quote)
    with pytest.raises(BinanceError) as e:
        v.spot_new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.001",
                          "price": "40000"})
    assert e.value.code == -1102  # timeInForce
    cid = {"newClientOrderId": "dup-1"}
    v.spot_new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.001", **cid})
    with pytest.raises(BinanceError) as e:
        v.spot_new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.001", **cid})
    assert (e.value.code, e.value.msg) == (-2010, "Duplicate order sent.")
    with pytest.raises(BinanceError) as e:
        v.spot_new_order({"symbol": "XRPUSDT", "side": "SELL", "type": "MARKET", "quantity": "1"})
    assert e.value.code == -1121
    assert isinstance(errors.market_closed(), BinanceError)
    assert math.isfinite(v.state()["prices"]["BTCUSDT"]["mark"])
