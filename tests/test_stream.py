"""The gated event stream (`basisbot.backtest.stream`) against the full intra-hour expansion on real data: the same
decisions, orders, fills, guard actions, liquidations, settlements, margin transfers and hourly rows, from fewer
events."""

from pathlib import Path

import pytest

from basisbot.backtest.run import prepare, run_prepared
from basisbot.config.loading import load_settings
from basisbot.core.units import HOUR_NS

DATA = Path(__file__).resolve().parents[1] / "backtests" / "data" / "binance"
OKX_DATA = Path(__file__).resolve().parents[1] / "backtests" / "data" / "okx"


def _config(tmp: Path, name: str, *, guard: bool, lev: int, mode: str, start: str, end: str, spot: int) -> Path:
    text = f'[backtest]\ndata = "{DATA}"\nstart = {start}\nend = {end}\nspot_balance_usdt = {spot}\n'
    for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        text += (f'[symbols.{s}]\nenabled = true\nnotional_usdt = 20000\nleverage = {lev}\nmargin_mode = "{mode}"\n'
                 f"[symbols.{s}.guard]\nenabled = {str(guard).lower()}\n")
    cfg = tmp / f"{name}.toml"
    cfg.write_text(text)
    return cfg


def result_hours(result) -> set:
    """The hours of the run (the recorder's hourly equity rows)."""
    return {row[0] for row in result.recorder.equity_rows}


def _observed(result) -> dict:
    fills = [(f.ts_ns, f.symbol, f.leg, f.side, f.qty, f.price, f.fee_usdt, f.tag, f.client_order_id)
             for f in result.fills]
    return {
        "fills": fills,
        "decisions": {s: st.log_.decisions for s, st in result.strategies.items()},
        "guard": {s: [tuple(vars(e).values()) for e in st.log_.guard] for s, st in result.strategies.items()},
        "funding": [tuple(vars(r).values()) for r in result.ledger.funding],
        "liquidations": [tuple(vars(r).values()) for r in result.ledger.liquidations],
        "transfers": [tuple(vars(r).values()) for r in result.ledger.transfers],
        "equity": result.recorder.equity_rows,
        "state": result.recorder.state_rows,
    }


@pytest.mark.parametrize("name, guard, lev, mode, start, end, spot", [
    # 5x isolated without the guard: the January 2023 rally liquidates shorts inside hours
    ("liquidated", False, 5, "isolated", "2023-01-01", "2023-02-01", 100000),
    # 5x isolated with the guard: warnings, margin added and reductions at intra-hour marks
    ("guarded", True, 5, "isolated", "2023-01-01", "2023-02-01", 100000),
    # 3x through a calm quarter: entries, exits and settlements, most hours quiet
    ("calm", True, 3, "isolated", "2023-06-01", "2023-09-01", 100000),
    # spot cash for two of the three pairs: the third's entries are skipped hour after hour until an exit frees
    # the cash (an hour whose only wish is an entry that the balances refuse is left quiet)
    ("skipped", True, 3, "isolated", "2023-06-01", "2023-09-01", 45000),
])
def test_gated_stream_gives_the_full_expansions_run(tmp_path, name, guard, lev, mode, start, end, spot):
    cfg = _config(tmp_path, name, guard=guard, lev=lev, mode=mode, start=start, end=end, spot=spot)
    settings = load_settings(cfg, env_file=None)
    full = run_prepared(prepare(settings, config_path=cfg), full_paths=True)
    gated = run_prepared(prepare(settings, config_path=cfg), full_paths=False)
    a, b = _observed(full), _observed(gated)
    for key in a:
        assert a[key] == b[key], f"{name}: {key} differs between the full expansion and the gated stream"
    assert a["fills"] and a["funding"]
    if name == "liquidated":
        assert a["liquidations"]
    if name == "guarded":
        assert any(a["guard"].values())
    assert gated.events < full.events
    assert full.stream == {"stream": "every_path"} and gated.stream["stream"] == "gated"
    hours = gated.stream["symbol_hours"]
    assert sum(hours.values()) == 3 * len(result_hours(gated))
    if name in ("calm", "skipped"):
        assert gated.events < 0.5 * full.events
        # quiet hours handed over in runs of hours at once, the state checked once per run (in the calm quarter a
        # good share of them; skipped entries hour after hour keep most hours apart)
        assert gated.stream["in_quiet_runs"] > (0.3 * hours["quiet"] if name == "calm" else 0)
        # a quiet run hands over only what the hour after it reads: its last bars, prediction and mark
        assert gated.stream["left_out_of_runs"] > 0.5 * gated.stream["in_quiet_runs"]
    if name == "calm":
        # quiet runs go on through settlements (the decision, the payment and the booking checked inert ahead): most
        # of the quarter's settlements of the three symbols fall inside one
        settlements = sum(len(f.settlements) for f in prepare(settings, config_path=cfg).feeds.values())
        assert gated.stream["settlements_in_runs"] > 0.5 * settlements
    if name == "calm":
        # every event of the runs handed over: the same outputs, and exactly the events left out more
        whole = run_prepared(prepare(settings, config_path=cfg), full_paths=False, leave_out=False)
        c = _observed(whole)
        for key in a:
            assert a[key] == c[key], f"{name}: {key} differs with the quiet runs' events all handed over"
        assert whole.stream["left_out_of_runs"] == 0
        assert whole.events - gated.events == gated.stream["left_out_of_runs"]
    if name == "skipped":
        decisions = [d for log in a["decisions"].values() for d in log]
        assert any(d[1] == "skip_entry" for d in decisions) and any(d[1] == "enter" for d in decisions)


def test_gated_stream_on_okx(tmp_path):
    """OKX (its own liquidation price and tiers): 5x isolated without the guard through the March 2022 rally and with
    the guard, the gated stream gives what every path gives."""
    for guard in (False, True):
        text = (f'[exchange]\nname = "okx"\n[backtest]\ndata = "{OKX_DATA}"\nstart = 2022-03-01\nend = 2022-05-01\n')
        for s in ("BTCUSDT", "SOLUSDT"):
            text += (f"[symbols.{s}]\nenabled = true\nnotional_usdt = 10000\nleverage = 5\nentry_apr = -1000\n"
                     f"exit_apr = -2000\n[symbols.{s}.guard]\nenabled = {str(guard).lower()}\n")
        cfg = tmp_path / f"okx_{guard}.toml"
        cfg.write_text(text)
        settings = load_settings(cfg, env_file=None)
        full = run_prepared(prepare(settings, config_path=cfg), full_paths=True)
        gated = run_prepared(prepare(settings, config_path=cfg))  # the default: gated
        a, b = _observed(full), _observed(gated)
        for key in a:
            assert a[key] == b[key], f"okx guard={guard}: {key} differs between the full expansion and the gated stream"
        assert gated.stream["stream"] == "gated" and gated.events < full.events
        assert a["liquidations"] if not guard else any(a["guard"].values())


def test_quiet_runs_hand_over_everything_with_risk_limits(tmp_path):
    """With [risk] the actor reads every mark as it comes (stale data, equity): a quiet run leaves nothing out, and
    the outputs are still every path's."""
    cfg = _config(tmp_path, "risk", guard=True, lev=3, mode="isolated", start="2023-06-01", end="2023-07-01",
                  spot=100000)
    cfg.write_text(cfg.read_text() + "[risk]\nstale_data_s = 7200\nmax_drawdown_pct = 50\n")
    settings = load_settings(cfg, env_file=None)
    assert settings.risk.configured
    full = run_prepared(prepare(settings, config_path=cfg), full_paths=True)
    gated = run_prepared(prepare(settings, config_path=cfg), full_paths=False)
    a, b = _observed(full), _observed(gated)
    for key in a:
        assert a[key] == b[key], f"risk: {key} differs between the full expansion and the gated stream"
    assert gated.stream["in_quiet_runs"] > 0 and gated.stream["left_out_of_runs"] == 0
    assert full.risk == gated.risk


def test_gated_stream_with_jobs_on_the_hours_around_the_settlement(tmp_path):
    """A schedule whose pre-settlement decision comes an hour before each settlement and whose booking an hour after
    it, both on an hour's close: the hours holding a job are decided one by one (an hour joins the run after it only
    when it holds none: a booking changes what later predictions are judged by), and every decision, fill and
    settlement is every path's, through entries and exits."""
    cfg = _config(tmp_path, "jobs", guard=True, lev=3, mode="isolated", start="2022-05-01", end="2022-08-01",
                  spot=100000)
    cfg.write_text(cfg.read_text() + "[schedule]\ndecision_before_s = 3600\nbooking_after_s = 3600\n")
    settings = load_settings(cfg, env_file=None)
    assert settings.schedule.booking_after_s == 3600
    full = run_prepared(prepare(settings, config_path=cfg), full_paths=True)
    gated = run_prepared(prepare(settings, config_path=cfg), full_paths=False)
    a, b = _observed(full), _observed(gated)
    for key in a:
        assert a[key] == b[key], f"jobs: {key} differs between the full expansion and the gated stream"
    decisions = [d[1] for log in a["decisions"].values() for d in log]
    assert "enter" in decisions and "exit" in decisions and a["funding"], decisions
    assert gated.stream["joined_to_runs"] > 0 and gated.events < 0.5 * full.events


def _one_symbol(tmp: Path, name: str, lev: int) -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(f'[backtest]\ndata = "{DATA}"\nstart = 2023-06-10\nend = 2023-06-24\n'
                   f'[symbols.BTCUSDT]\nenabled = true\nnotional_usdt = 20000\nleverage = {lev}\n'
                   f'margin_mode = "isolated"\nentry_apr = -1000\nexit_apr = -2000\n'
                   f'[symbols.BTCUSDT.guard]\nenabled = true\n')
    return cfg


def _run_both(cfg: Path, change) -> tuple:
    """The every-path and the gated run of `cfg`, each on data `change(prepared)` alters the same way."""
    settings = load_settings(cfg, env_file=None)
    out = []
    for full in (True, False):
        p = prepare(settings, config_path=cfg)
        change(p)
        out.append(run_prepared(p, full_paths=full))
    return out[0], out[1]


def test_gated_stream_through_a_settlement_that_brings_the_guard_in(tmp_path):
    """A settlement whose payment alone brings the guard in: its rate set to -12% (the short pays 12% of its notional,
    at 5x most of its isolated margin). Quiet runs go on through settlements: the margin state a payment can bring
    bounds the marks of the hours after it, so the guard acts at the same mark as with every path."""
    cfg = _one_symbol(tmp_path, "drain", 5)
    at = {}

    def drain(p):
        feed = p.feeds["BTCUSDT"]
        k = next(i for i, e in enumerate(feed.settlements) if e[1] >= 1687003200000000000)  # 2023-06-17T12:00Z
        sim_ts, exact, _ = feed.settlements[k]
        feed.settlements[k] = (sim_ts, exact, -0.12)
        at["ts"] = exact

    full, gated = _run_both(cfg, drain)
    a, b = _observed(full), _observed(gated)
    for key in a:
        assert a[key] == b[key], f"{key} differs between the full expansion and the gated stream"
    paid = [r for r in a["funding"] if r[0] == at["ts"]]
    assert paid and paid[0][5] < -0.1 * 20000 * 0.9  # the short paid about 12% of its notional
    # the guard acted within the hour after the payment (and not in the hour before it)
    acted = [e for e in a["guard"]["BTCUSDT"] if at["ts"] - HOUR_NS < e[0] < at["ts"] + HOUR_NS]
    assert acted and all(e[0] > at["ts"] for e in acted)
    assert gated.stream["settlements_in_runs"] > 10 and gated.events < 0.5 * full.events


def test_gated_stream_with_a_settlement_late_into_its_hour(tmp_path):
    """A settlement the venue applies 20 minutes into its hour takes the mark of that moment: a quiet run goes through
    a settlement only when it comes before its hour's path, so the payment is the every-path stream's."""
    cfg = _one_symbol(tmp_path, "late", 3)
    at = {}

    def late(p):
        feed = p.feeds["BTCUSDT"]
        k = next(i for i, e in enumerate(feed.settlements) if e[1] >= 1687003200000000000)
        sim_ts, exact, rate = feed.settlements[k]
        feed.settlements[k] = (exact + 20 * 60 * 10**9, exact + 20 * 60 * 10**9, rate)
        at["ts"], at["close"] = exact + 20 * 60 * 10**9, (exact // HOUR_NS) * HOUR_NS

    full, gated = _run_both(cfg, late)
    a, b = _observed(full), _observed(gated)
    for key in a:
        assert a[key] == b[key], f"{key} differs between the full expansion and the gated stream"
    paid = [r for r in a["funding"] if r[0] == at["ts"]]
    assert paid
    closing = [h.close_mark for h in prepare(load_settings(cfg, env_file=None), config_path=cfg).feeds["BTCUSDT"].hours
               if h.close_ns == at["close"]]
    assert closing and paid[0][3] != closing[0]  # an intra-hour mark, not the hour's opening one


def test_gated_stream_with_an_entry_the_perp_balance_refuses(tmp_path):
    """BTC in carry from the start; ETH's entry refused for the perp balance (about 57 USDT short) until, nine days
    later, the account lets it in. The perp account's free balance moves while nothing trades (the other position's
    margin with its mark, funding), so only refusals nothing in a quiet run can change (an instrument minimum, the
    spot balance) are left inside one: the entry comes at the same moment as with every path (with perp-balance
    refusals inside runs it came 27 hours late)."""
    cfg = tmp_path / "perp_short.toml"
    cfg.write_text(f'[backtest]\ndata = "{DATA}"\nstart = 2023-06-10\nend = 2023-06-24\nperp_balance_usdt = 4080\n'
                   + "".join(f'[symbols.{s}]\nenabled = true\nnotional_usdt = 20000\nleverage = 5\n'
                             f'margin_mode = "isolated"\nentry_apr = -1000\nexit_apr = -2000\n'
                             for s in ("BTCUSDT", "ETHUSDT")))
    full, gated = _run_both(cfg, lambda p: None)
    a, b = _observed(full), _observed(gated)
    for key in a:
        assert a[key] == b[key], f"{key} differs between the full expansion and the gated stream"
    eth = [d[1:] for d in a["decisions"]["ETHUSDT"]]
    assert eth[0][0] == "skip_entry" and eth[0][1].startswith("perp balance") and ("enter",) == eth[1][:1]
