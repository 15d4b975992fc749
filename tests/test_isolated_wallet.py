"""One isolated-wallet ledger (`basisbot.core.isolated`): its rules, and the backtest's perp venue and the local
venue's futures account following the same position through it to the same wallet."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from nautilus_trader.model.enums import PositionSide
from nautilus_trader.model.identifiers import InstrumentId

from basisbot.core import isolated
from basisbot.core.margin import initial_margin
from basisbot.nautilus.perp_simulation import PerpMarginModule, PerpSymbol, _PositionBook
from basisbot.sim.engine.accounts import FuturesAccount
from basisbot.sim.engine.markets import build_market
from basisbot.sim.engine.prices import load_paths
from basisbot.venues.binance import reference
from tests.helpers.sim_venue import DATA

LEV = 4


def btc_closes(n: int) -> list[float]:
    """`n` consecutive hourly perp closes of the bundled BTCUSDT data (2022-03-01 onwards)."""
    p = load_paths(str(DATA), "BTCUSDT")
    start = int(np.datetime64("2022-03-01T07:00", "ms").astype(np.int64))
    return [p.perp(start + h * 3_600_000) for h in range(n)]


def test_the_rules():
    px = btc_closes(4)
    w = isolated.follow_position(0.0, (0, 0.0, 0.0), (-1, 0.2, px[0]), LEV)
    assert w == (initial_margin(0.2 * px[0], LEV), initial_margin(0.2 * px[0], LEV))
    entry = (0.2 * px[0] + 0.1 * px[1]) / 0.3
    up = isolated.follow_position(w.wallet, (-1, 0.2, px[0]), (-1, 0.3, entry), LEV)
    assert up.moved == pytest.approx(0.1 * px[1] / LEV) and up.wallet == w.wallet + up.moved
    down = isolated.follow_position(up.wallet, (-1, 0.3, entry), (-1, 0.1, entry), LEV)
    assert down.wallet == pytest.approx(up.wallet / 3) and down.moved == pytest.approx(-up.wallet * 2 / 3)
    flip = isolated.follow_position(down.wallet, (-1, 0.1, entry), (1, 0.05, px[2]), LEV)
    assert flip.wallet == initial_margin(0.05 * px[2], LEV) and flip.moved == pytest.approx(flip.wallet - down.wallet)
    assert isolated.follow_position(flip.wallet, (1, 0.05, px[2]), (0, 0.0, 0.0), LEV) == (0.0, -flip.wallet)
    assert isolated.credit(10.0, -2.5) == 7.5


def _perp_venue_wallets(states: list[tuple[int, float, float]]) -> list[float]:
    """The backtest perp venue's isolated wallet as nautilus reports the position (side, qty, avg entry) after each
    fill, through `PerpMarginModule._sync_position` itself."""
    iid = InstrumentId.from_str("BTCUSDT-PERP.BINANCE")
    spec = PerpSymbol("BTCUSDT", iid, reference.brackets()["BTCUSDT"], LEV, "isolated")
    book = _PositionBook()
    current: list = []
    venue = SimpleNamespace(ledger=SimpleNamespace(books={"BTCUSDT": book}),
                            cache=SimpleNamespace(positions_open=lambda venue, instrument_id: current))
    out = []
    for t, (side, qty, entry) in enumerate(states):
        current[:] = [] if side == 0 else [SimpleNamespace(
            quantity=SimpleNamespace(as_double=lambda q=qty: q), avg_px_open=entry, ts_opened=t,
            side=PositionSide.LONG if side > 0 else PositionSide.SHORT)]
        PerpMarginModule._sync_position(venue, "BTCUSDT", spec)
        out.append(book.wallet)
    return out


def test_backtest_and_local_venue_keep_the_same_isolated_wallet():
    px = btc_closes(6)
    # open short, add, reduce, close, open short again, flip to long through one buy
    fills = [(-0.229, px[0]), (-0.1, px[1]), (0.15, px[2]), (0.179, px[3]), (-0.2, px[4]), (0.5, px[5])]
    account = FuturesAccount(50_000.0, {"BTCUSDT": build_market("BTCUSDT")}, LEV, "ISOLATED")
    pos = account.positions["BTCUSDT"]
    sim_wallets, states, totals = [], [], []
    for t, (qty, price) in enumerate(fills):
        realized = account.apply_fill("BTCUSDT", qty, price, 0.0, t)
        sim_wallets.append(pos.iso_wallet)
        states.append((pos.side, abs(pos.qty), pos.entry))
        totals.append((account.wallet_balance(), realized))
    assert [s[0] for s in states] == [-1, -1, -1, 0, -1, 1]
    assert sim_wallets[3] == 0.0 and sim_wallets[-1] == pytest.approx(0.3 * px[5] / LEV)
    assert _perp_venue_wallets(states) == pytest.approx(sim_wallets, abs=1e-8)
    # moving margin between the wallets changes no balance: only realised PnL does
    balance = 50_000.0
    for wallet_balance, realized in totals:
        balance += realized
        assert wallet_balance == pytest.approx(balance, abs=1e-8)
