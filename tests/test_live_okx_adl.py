"""OKX's auto-deleveraging indicator (a position's `adl`) on the node's side.

OKX's docs (www.okx.com/docs-v5/en/#trading-account-rest-api-get-positions, response parameters): "adl: Auto-Deleveraging
(ADL) indicator. Range: 0-5, where 0 = lowest ADL priority ... and 5 = highest priority (first in queue if the
insurance fund is depleted)" (earlier versions of the page: "Divided into 5 levels, from 1 to 5"); the documented
answer's row (tests/data/okx_v5_recorded.json, "GET /api/v5/account/positions?instType=SWAP", OKX's example as ccxt
4.5.90 reproduces it in okx.py) is a position at a loss with "adl": "1". ccxt's okx has no fetchPositionsADLRank, so
the OKX hook reads the indicator from `fetch_positions`.

- the hook parses OKX's documented row as ccxt's own okx parser hands it over, at every value of the scale, leaves a
  flat row and an empty indicator out, and names the instrument of a value off the scale;
- the alert fires at 5 of 5 on OKX (not at 4 of 5) and at 4 of 4 on Binance; the page badge and `adl_rank_of` carry
  the venue's top;
- against the local OKX venue through the stock ccxt.pro okx client: a short the venue ranks at the top bucket is
  journaled as "ADL rank 5 of 5", shows in the status data, sets the metric and raises the alert.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import ccxt
import ccxt.pro as ccxtpro
import pytest

from basisbot.config.schema import AlertSettings
from basisbot.journal.reader import JournalReader
from basisbot.live.exec.client import ExecOptions
from basisbot.live.exec.margin import adl_rank_reason
from basisbot.live.node import NodeOptions
from basisbot.live.venue_hooks import hooks_for
from basisbot.live.venue_hooks.okx import okx_adl_ranks
from basisbot.nautilus.messages import JournalRecord
from basisbot.ops.alert_events import AlertRules
from basisbot.ops.status import adl_rank_of, status_data
from basisbot.ops.status_page import _adl_badge
from basisbot.sim import SimServer
from basisbot.strategies.basis_carry import Phase
from tests.helpers.live_node import RunningNode, until
from tests.helpers.okx_live import okx_settings, okx_sim_config
from tests.helpers.sim_venue import admin
from tests.test_sim_adl import refused as refused_fault

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = json.loads((ROOT / "tests" / "data" / "okx_v5_recorded.json").read_text())["endpoints"][
    "GET /api/v5/account/positions?instType=SWAP"]
OKX, BINANCE = hooks_for("okx"), hooks_for("binance")
SYM, SWAP = "BTCUSDT", "BTC/USDT:USDT"


def _rows(**changes) -> list[dict]:
    """OKX's documented positions row as a net-mode BTC-USDT-SWAP short, through ccxt okx's own parser."""
    row = {**DOCUMENTED, "instId": "BTC-USDT-SWAP", "instType": "SWAP", "posSide": "net", "pos": "-7", "ccy": "USDT",
           **changes}
    return [ccxtpro.okx().parse_position(row, {"symbol": SWAP, "id": "BTC-USDT-SWAP", "contractSize": 0.01,
                                               "linear": True, "inverse": False, "spot": False, "swap": True,
                                               "type": "swap", "settle": "USDT", "quote": "USDT", "base": "BTC",
                                               "contract": True, "option": False, "future": False, "margin": False})]


def test_the_okx_hook_reads_the_documented_adl_indicator_on_okx_scale():
    assert (OKX.adl_top, OKX.adl_scale) == (5, "rank") and (BINANCE.adl_top, BINANCE.adl_scale) == (4, "quantile")
    assert okx_adl_ranks(_rows()) == {SWAP: 1}  # the documented row, as documented: "adl": "1"
    for value in range(6):
        assert okx_adl_ranks(_rows(adl=str(value))) == {SWAP: value}
    # a flat row (OKX lists a closed position for a while) and an empty indicator: no place in the queue
    assert okx_adl_ranks(_rows(pos="0", adl="3")) == {}
    assert okx_adl_ranks(_rows(adl="")) == {}
    with pytest.raises(ccxt.BadResponse, match=r"BTC-USDT-SWAP: position adl '7' is not OKX's auto-deleveraging "
                                                r"indicator 0\.\.5"):
        okx_adl_ranks(_rows(adl="7"))
    assert adl_rank_reason(5, OKX.adl_top, OKX.adl_scale) == "ADL rank 5 of 5"
    assert adl_rank_of({"reason": "ADL rank 5 of 5", "ts": 7}) == {"rank": 5, "top": 5, "ts": 7}


def test_the_rank_alert_fires_in_each_venues_own_top_bucket():
    for hooks, symbol in ((OKX, "BTCUSDT"), (BINANCE, "ETHUSDT")):
        sent = []
        rules = AlertRules(AlertSettings(), sent.append)
        for ts, rank in enumerate(range(hooks.adl_top + 1)):
            rules.record(JournalRecord("decision", symbol, 10 + ts, {
                "action": "adl_rank", "reason": adl_rank_reason(rank, hooks.adl_top, hooks.adl_scale), "phase": ""}))
            if rank < hooks.adl_top:
                assert sent == [], (hooks.name, rank)
        (a,) = sent
        top = f"{hooks.adl_top} of {hooks.adl_top}"
        assert a.event == "adl_rank" and a.severity == "warning" and top in a.title, a
    # the badge: bad in the venue's top bucket, a warning one below
    assert 'class="adl dist bad"' in _adl_badge({"rank": 5, "top": 5, "ts": 1})
    assert 'class="adl dist warn"' in _adl_badge({"rank": 4, "top": 5, "ts": 1})
    assert 'class="adl dist bad"' in _adl_badge({"rank": 4, "top": 4, "ts": 1})


ALWAYS_IN = {"notional_usdt": 2150.0, "leverage": 2, "margin_mode": "isolated", "entry_apr": -1000.0,
             "exit_apr": -2000.0}
WINDOWS = {"decision_before_s": 600, "blackout_before_s": 300, "blackout_after_s": 60, "booking_after_s": 60,
           "guard_sweep_s": 60}


def _adl_rows(path: Path) -> list[str]:
    if not path.exists():
        return []
    with JournalReader(path) as r:
        return [d["reason"] for d in r.rows("decisions", "symbol = ? AND action = 'adl_rank'", [SYM],
                                            order_by="ts, rowid")]


@pytest.mark.slow  # long end-to-end run: `pytest -m slow` (the default run keeps the invariant checks)
def test_okx_short_at_the_top_of_the_adl_queue_is_journaled_shown_measured_and_alerted(tmp_path):
    journal = tmp_path / "journal.sqlite"

    async def scenario():
        async with SimServer(okx_sim_config(speed=60.0, start="2022-03-01T06:00:00Z")) as sim:
            settings = okx_settings(tmp_path, sim.url, schedule=WINDOWS, symbols={SYM: ALWAYS_IN})
            opts = NodeOptions(log_level="ERROR", exec=ExecOptions(funding_poll_s=0.5))
            async with RunningNode(settings, "live", opts) as run:
                strat = run.strategy(SYM)
                await until(lambda: strat.phase is Phase.IN_CARRY and not strat._busy(), 30, what="entry")
                # the venue's own model ranks the fresh 2x short (at a loss or barely in profit) low on OKX's scale
                first = await until(lambda: _adl_rows(journal), 15, what="the short's ADL rank journaled")
                await admin(sim, "/admin/faults", {"adl_quantile": {"symbol": SYM, "value": 4}})
                await until(lambda: "ADL rank 4 of 5" in _adl_rows(journal), 15, what="rank 4 of 5")
                below_top = [a for a in run.app.ops.rules.emitted if a.event == "adl_rank"]
                await admin(sim, "/admin/faults", {"adl_quantile": {"symbol": SYM, "value": 5}})
                await until(lambda: "ADL rank 5 of 5" in _adl_rows(journal), 15, what="rank 5 of 5")
                alerts = await until(lambda: [a for a in run.app.ops.rules.emitted if a.event == "adl_rank"], 10,
                                     what="the ADL rank alert")
                metrics = run.app.ops.metrics_body()[0].decode()
                data = run.app.ops.status_data()
                page = run.app.ops.page()
                refused = await refused_fault(sim, {"adl_quantile": {"symbol": SYM, "value": 6}})
        return first, below_top, alerts, metrics, data, page, refused, run

    first, below_top, alerts, metrics, data, page, refused, run = asyncio.run(scenario())
    assert first[0] in ("ADL rank 1 of 5", "ADL rank 2 of 5"), first
    assert below_top == []  # 4 of 5 is not OKX's top bucket
    (alert,) = alerts
    assert "ADL rank 5 of 5" in alert.title and alert.symbol == SYM and "[OKX]" in alert.title, alert
    assert f'basisbot_adl_quantile{{symbol="{SYM}"}} 5.0' in metrics
    (st,) = [s for s in data["symbols"] if s["symbol"] == SYM]
    assert st["adl_rank"]["rank"] == 5 and st["adl_rank"]["top"] == 5
    assert 'data-adl-rank="5">ADL 5/5' in page and 'class="adl dist bad"' in page
    # the JSON `basisbot status` reads, from the journal after the run
    (after,) = [s for s in status_data(journal, okx_settings(tmp_path, "http://127.0.0.1:1", schedule=WINDOWS,
                                                             symbols={SYM: ALWAYS_IN}))["symbols"]
                if s["symbol"] == SYM]
    assert (after["adl_rank"]["rank"], after["adl_rank"]["top"]) == (5, 5)
    assert "0..5" in refused["error"], refused  # OKX's scale: 6 is refused by the venue's fault API
    assert run.rc == 0

