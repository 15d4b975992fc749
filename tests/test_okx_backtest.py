"""OKX backtests on the bundled OKX data (backtests/data/okx): the funding ledger in base units, the one-leg
invariant, the PnL split, liquidation at OKX's isolated liquidation price, the unified account, and bad input (another
venue's data, snapshots or tier files) refused with what to supply."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from basisbot.backtest.results import write_results
from basisbot.backtest.run import BacktestInputError, prepare, resolve_data_dir, run_prepared
from basisbot.config.loading import ConfigError, load_settings
from basisbot.core import margin
from basisbot.core.carry import FundingPredictor, funding_payment
from basisbot.data import market_data
from basisbot.venues import AccountModel, get_profile
from basisbot.venues.binance.brackets_file import parse_brackets
from basisbot.venues.okx import contracts, funding, tiers
from basisbot.venues.okx.profile import liquidation_price as okx_liquidation_price

REPO = Path(__file__).resolve().parents[1]
OKX_DATA = REPO / "backtests" / "data" / "okx"
BINANCE_DATA = REPO / "backtests" / "data" / "binance"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "AVAXUSDT")
OKX = get_profile("okx")


def _symbol_block(symbol: str, leverage: int, guard: bool, notional: float = 10_000) -> str:
    return (f"[symbols.{symbol}]\nenabled = true\nnotional_usdt = {notional}\nleverage = {leverage}\n"
            f"entry_apr = -1000\nexit_apr = -2000\n[symbols.{symbol}.guard]\nenabled = {str(guard).lower()}\n")


def okx_settings(tmp_path: Path, symbols, start: str, end: str, *, leverage: int = 2, guard: bool = False,
                 exchange: str = "okx", data: Path | None = OKX_DATA, extra: str = "", name: str = "okx.toml",
                 notional: float = 10_000, fees: str = ""):
    cfg = tmp_path / name
    data_line = f'data = "{data}"\n' if data is not None else ""
    cfg.write_text(f'[exchange]\nname = "{exchange}"\n[backtest]\n{data_line}start = {start}\nend = {end}\n'
                   f"spot_balance_usdt = 100000\nperp_balance_usdt = 50000\n{extra}"
                   + (f"[fees]\n{fees}" if fees else "")
                   + "".join(_symbol_block(s, leverage, guard, notional) for s in symbols))
    return load_settings(cfg), cfg


def published_tiers_file(tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    """OKX's published tables (`tiers.PUBLISHED`: SOL's in force from 2022-11-08, BTC's as recorded on 2022-02-11,
    ETH's and AVAX's from 2021, before the data window) written as OKX's position-tiers answer (sizes in contracts),
    the operator's `--brackets` file of a backtest that assumes them."""
    rows = []
    for symbol, tables in tiers.PUBLISHED.items():
        ct = contracts.BUNDLED[symbol].ct_val
        fam = contracts.spot_id(symbol)
        for t in tables[-1].tiers:
            rows.append({"instFamily": fam, "uly": fam, "tier": str(t.tier), "minSz": str(t.min_qty / ct),
                         "maxSz": str(t.max_qty / ct), "mmr": str(t.mmr), "imr": str(t.imr),
                         "maxLever": str(t.max_leverage)})
    path = tmp_path / "okx_position_tiers.json"
    path.write_text(json.dumps({"code": "0", "msg": "", "data": rows}))
    return path, tuple(s for s in SYMBOLS if s in tiers.PUBLISHED)


def check_always_in(result, summary: dict, symbols) -> None:
    """Always-in at 2x without a guard: one funding row per settlement of the data while the short is open, at the
    data's rate, payment = -base qty × mark × rate, the quantity a whole number of contracts; hedged within the leg
    timeout; the PnL split reconciled to the cent."""
    specs = OKX.bundled_perp_rules()
    for s in symbols:
        rows = [f for f in result.ledger.funding if f.symbol == s]
        perp_fills = [f for f in result.fills if f.symbol == s and f.leg == "perp"]
        assert perp_fills and all(f.tag == "ENTER" for f in perp_fills[:1])
        opened = perp_fills[0].ts_ns
        settled = result.feeds[s].settlements  # (sim_ts, exact_ts, rate) of every settlement in the window
        expected = [(exact, rate) for sim, exact, rate in settled if sim > opened]
        assert [(r.ts_ns, r.rate) for r in rows] == expected, s
        data_rates = result.feeds[s].settlements
        assert {r.rate for r in rows} <= {rate for _, _, rate in data_rates}
        ct = specs[s].contract_value
        for r in rows:
            assert r.position_qty < 0
            assert r.payment == funding_payment(r.position_qty, r.mark_price, r.rate)
            assert r.payment == pytest.approx(-r.position_qty * r.mark_price * r.rate, rel=1e-12, abs=1e-12)
            contracts_held = Decimal(str(-r.position_qty)) / ct
            assert contracts_held == contracts_held.to_integral_value(), (s, r.position_qty, ct)
        sym = summary["symbols"][s]
        assert sym["liquidations"] == 0
        assert sym["max_unhedged_s"] <= sym["leg_timeout_s"]
        assert sym["settlements"] == len(rows)
        assert sym["funding_pnl"] == pytest.approx(sum(r.payment for r in rows), abs=1e-6)
        assert sym["always_in_funding"] != 0 and sym["capture"] is not None
    assert abs(summary["total"]["reconciliation_error"]) < 0.01


def test_okx_profile_states_its_facts():
    assert (OKX.name, OKX.spot_venue, OKX.perp_venue) == ("okx", "OKX_SPOT", "OKX_PERP")
    assert OKX.account is AccountModel.UNIFIED and OKX.unified_account
    assert (OKX.fees.spot_maker, OKX.fees.spot_taker, OKX.fees.perp_maker, OKX.fees.perp_taker) == \
        (0.0008, 0.001, 0.0002, 0.0005)
    assert OKX.funding.cap("BTCUSDT") == 0.00375 and OKX.funding.cap("SOLUSDT") == 0.015
    assert OKX.funding.rate_from_premium(0.0004, 8) == 0.0004  # no interest term
    assert OKX.funding.predictor_lag_periods == funding.BUNDLED_DATA_LAG == 2
    assert OKX.funding.max_interval_hours == 10.0
    btc = OKX.bundled_perp_rules()["BTCUSDT"]
    assert (btc.contract_value, btc.step_size, btc.min_qty, btc.tick_size) == \
        (Decimal("0.01"), Decimal("0.01"), Decimal("0.01"), Decimal("0.1"))
    assert (OKX.spot_symbol("BTCUSDT"), OKX.perp_symbol("BTCUSDT")) == ("BTC-USDT", "BTC-USDT-SWAP")
    # the tier table round-trips through a strategy config's plain rows
    sol = OKX.bundled_tiers()["SOLUSDT"]
    assert OKX.tiers_from_rows("SOLUSDT", OKX.tier_rows(sol)) == sol
    # the pinned example of venues/okx/tiers.py through the profile's float formula
    assert OKX.liquidation_price(-1, 100.0, 20.0, 400.0, sol) == pytest.approx(2400 / 101.05, rel=1e-12)


def test_okx_tier_table_serves_the_margin_math():
    """The guard's margin sizing inverts OKX's formula: the wallet `margin.wallet_for_distance` asks for puts OKX's
    liquidation price exactly at the target distance, and the reduce fraction is judged with OKX's price."""
    sol = OKX.bundled_tiers()["SOLUSDT"]
    side, qty, entry, mark, target = -1, 300.0, 20.0, 21.0, 0.15
    wallet = margin.wallet_for_distance(side, qty, entry, mark, target, sol)
    assert okx_liquidation_price(side, qty, entry, wallet, sol) == pytest.approx(mark * (1 + target), rel=1e-12)
    frac = margin.reduce_fraction_for_distance(side, qty, entry, mark, 400.0, target, sol,
                                               liquidation=okx_liquidation_price)
    rest_qty, rest_wallet = margin.reduce_position(side, qty, entry, mark, 400.0, frac)
    lp = okx_liquidation_price(side, rest_qty, entry, rest_wallet, sol)
    assert margin.distance_to_liquidation(side, mark, lp) >= target
    assert 0 < frac < 1


def test_core_predictor_with_lag_two_is_okx_predictor():
    """The backtest's predictor (core, lag from the profile) predicts what venues/okx's own predictor predicts."""
    d = market_data.load_symbol(OKX_DATA, "BTCUSDT", "2022-03-01", "2022-04-01", exchange="okx")
    core = FundingPredictor("premium", cap=funding.cap("BTCUSDT"), rate_from_premium=OKX.funding.rate_from_premium,
                            lag_periods=OKX.funding.predictor_lag_periods)
    own = funding.OkxFundingPredictor(funding.cap("BTCUSDT"))
    settle = list(zip(d.funding["ts"], d.funding["rate"], d.funding["interval_hours"]))
    i, compared = 0, 0
    for ts, row in d.bars.iterrows():
        close = ts + pd.Timedelta(hours=1)
        while i < len(settle) and settle[i][0] <= close:
            core.on_settlement(settle[i][1], settle[i][2])
            own.on_settlement(settle[i][1], settle[i][2])
            i += 1
        p = (row["mark_close"] - row["spot_close"]) / row["spot_close"]
        core.on_premium(p)
        own.on_premium(p)
        assert core.predict() == own.predict()
        compared += core.predict() is not None
    assert compared > 600


def test_always_in_2x_on_okx(tmp_path):
    tier_file, symbols = published_tiers_file(tmp_path)
    assert symbols == SYMBOLS
    settings, cfg = okx_settings(tmp_path, symbols, "2022-03-01", "2022-05-01", extra=f'brackets = "{tier_file}"\n')
    result = run_prepared(prepare(settings, config_path=cfg))
    summary = write_results(result, tmp_path / "out")
    check_always_in(result, summary, symbols)
    funding_csv = pd.read_csv(tmp_path / "out" / "funding.csv")
    assert (funding_csv["position_qty"] < 0).all()
    # instruments on OKX's venues; quantities in base units on the contract lot
    assert str(result.strategies[symbols[0]].cfg.perp_instrument_id).endswith(".OKX_PERP")
    assert result.strategies["SOLUSDT"].cfg.exchange == "okx"


@pytest.mark.slow
def test_always_in_2x_on_okx_whole_data(tmp_path):
    """The OKX symbols with published tiers over the 22 bundled months."""
    tier_file, symbols = published_tiers_file(tmp_path)
    settings, cfg = okx_settings(tmp_path, symbols, "2022-03-01", "2024-01-01", extra=f'brackets = "{tier_file}"\n')
    result = run_prepared(prepare(settings, config_path=cfg))
    check_always_in(result, write_results(result, tmp_path / "out"), symbols)


def test_5x_short_liquidates_at_okx_liquidation_price(tmp_path):
    """SOL's March 2022 rally (87 -> 120 USDT) liquidates a 5x isolated short without a guard: the fill is at OKX's
    isolated liquidation price of the liquidating state (size, entry, isolated margin), not Binance's."""
    settings, cfg = okx_settings(tmp_path, ["SOLUSDT"], "2022-03-10", "2022-04-10", leverage=5)
    result = run_prepared(prepare(settings, config_path=cfg))
    liqs = result.ledger.liquidations
    assert liqs, "no liquidation in SOL's March 2022 rally at 5x"
    table = OKX.bundled_tiers()["SOLUSDT"]
    liq_fills = [f for f in result.fills if f.tag == "LIQUIDATION"]
    assert len(liq_fills) == len(liqs)
    for liq, fill in zip(liqs, liq_fills):
        expected = float(tiers.table_liquidation_price(-1, Decimal(str(liq.qty)), Decimal(str(liq.entry)),
                                                       Decimal(str(liq.wallet_lost)), table))
        assert liq.price == pytest.approx(expected, rel=1e-12)
        assert fill.price == round(expected, 3)  # on SOL-USDT-SWAP's 0.001 tick
        assert fill.qty == liq.qty and liq.bar_worst >= liq.price
        binance_formula = margin.liquidation_price(-1, liq.qty, liq.entry, liq.wallet_lost,
                                                   parse_brackets([{"symbol": "SOLUSDT", "brackets": [
                                                       {"bracket": 1, "initialLeverage": 75, "notionalFloor": 0,
                                                        "notionalCap": 1e12, "maintMarginRatio": 0.01, "cum": 0}]}])
                                                   ["SOLUSDT"])
        assert abs(liq.price - binance_formula) > 0.05  # OKX's fee term moves it
    # the first liquidating state: the initial margin (5x) plus the funding credited to the isolated wallet
    first = liqs[0]
    credited = sum(f.payment for f in result.ledger.funding if f.ts_ns < first.ts_ns)
    assert first.wallet_lost == pytest.approx(margin.initial_margin(first.qty * first.entry, 5) + credited, rel=1e-9)


def test_guard_on_okx_adds_margin_from_the_unified_account(tmp_path):
    """The same rally with the guard on: the guard sees OKX's liquidation price, adds isolated margin from the
    account's available USDT (no transfer reported) and nothing is liquidated."""
    settings, cfg = okx_settings(tmp_path, ["SOLUSDT"], "2022-03-10", "2022-04-10", leverage=5, guard=True)
    result = run_prepared(prepare(settings, config_path=cfg))
    strat = result.strategies["SOLUSDT"]
    assert strat.guard.liquidation is OKX.liquidation_price
    summary = write_results(result, tmp_path / "out")
    sym = summary["symbols"]["SOLUSDT"]
    assert sym["liquidations"] == 0 and sym["guard_actions"] > 0
    assert sym["margin_added"] > 0 and sym["margin_transferred_from_spot"] == 0
    assert all(t.from_spot == 0 for t in result.ledger.transfers)
    guard = pd.read_csv(tmp_path / "out" / "guard.csv")
    assert len(guard) > 0
    assert abs(summary["total"]["reconciliation_error"]) < 0.01


# -- bad input ---------------------------------------------------------------------------------------------------------


def test_symbol_missing_from_the_okx_snapshot_names_the_markets_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        okx_settings(tmp_path, ["DOGEUSDT"], "2022-03-01", "2022-04-01")
    msg = str(e.value)
    assert "DOGEUSDT" in msg and "no OKX contract spec" in msg and "--markets" in msg


def test_okx_data_with_binance_name_and_the_reverse(tmp_path):
    settings, cfg = okx_settings(tmp_path, ["SOLUSDT"], "2022-03-01", "2022-03-05", exchange="binance")
    with pytest.raises(market_data.DataError) as e:
        prepare(settings, config_path=cfg)
    assert "okx data" in str(e.value) and '[exchange] name = "okx"' in str(e.value)
    settings, cfg = okx_settings(tmp_path, ["SOLUSDT"], "2022-03-01", "2022-03-05", data=BINANCE_DATA)
    with pytest.raises(market_data.DataError) as e:
        prepare(settings, config_path=cfg)
    assert "binance data" in str(e.value) and '[exchange] name = "binance"' in str(e.value)


def test_tier_file_of_the_wrong_venue(tmp_path):
    binance_brackets = REPO / "src" / "basisbot" / "venues" / "binance" / "reference_data" / "leverage_brackets.json"
    with pytest.raises(ConfigError) as e:
        okx_settings(tmp_path, ["SOLUSDT"], "2022-03-01", "2022-04-01", extra=f'brackets = "{binance_brackets}"\n')
    assert "Binance" in str(e.value) and "OKX position tiers" in str(e.value) and "position-tiers" in str(e.value)
    okx_answer = tmp_path / "okx_tiers.json"
    okx_answer.write_text(json.dumps({"code": "0", "msg": "", "data": [
        {"instFamily": "SOL-USDT", "tier": "1", "minSz": "0", "maxSz": "500", "mmr": "0.01", "imr": "0.013",
         "maxLever": "75"}]}))
    with pytest.raises(ConfigError) as e:
        okx_settings(tmp_path, ["SOLUSDT"], "2022-03-01", "2022-04-01", exchange="binance", data=BINANCE_DATA,
                     extra=f'brackets = "{okx_answer}"\n', name="binance.toml")
    assert "OKX's position tiers" in str(e.value) and 'name = "okx"' in str(e.value)


def test_okx_tier_answer_and_markets_file_are_read(tmp_path):
    """An operator's OKX position-tiers answer replaces the bundled table (sizes converted with the contract value)
    and `config check` validates leverage against it; a markets file adds a symbol."""
    answer = tmp_path / "okx_tiers.json"
    answer.write_text(json.dumps({"code": "0", "msg": "", "data": [
        {"instFamily": "SOL-USDT", "tier": "1", "minSz": "0", "maxSz": "100", "mmr": "0.02", "imr": "0.05",
         "maxLever": "20"},
        {"instFamily": "SOL-USDT", "tier": "2", "minSz": "101", "maxSz": "1000", "mmr": "0.05", "imr": "0.1",
         "maxLever": "10"}]}))
    settings, _ = okx_settings(tmp_path, ["SOLUSDT"], "2022-03-01", "2022-04-01", leverage=5,
                               extra=f'brackets = "{answer}"\n')
    with pytest.raises(ConfigError) as e:
        okx_settings(tmp_path, ["SOLUSDT"], "2022-03-01", "2022-04-01", leverage=25, extra=f'brackets = "{answer}"\n')
    assert "leverage' = 25" in str(e.value) and "at most 20x" in str(e.value)
    markets = tmp_path / "okx_instruments.json"
    markets.write_text(json.dumps({"code": "0", "data": [
        {"instType": "SWAP", "instId": "DOGE-USDT-SWAP", "settleCcy": "USDT", "ctType": "linear", "ctVal": "1000",
         "ctValCcy": "DOGE", "lotSz": "1", "minSz": "1", "tickSz": "0.00001"}]}))
    specs = OKX.perp_rules(markets)
    assert specs["DOGEUSDT"].step_size == Decimal(1000) and specs["DOGEUSDT"].contract_value == Decimal(1000)
    assert specs["BTCUSDT"] == OKX.bundled_perp_rules()["BTCUSDT"]
    assert contracts.spec_for("DOGEUSDT", markets).inst_id == "DOGE-USDT-SWAP"


def test_default_data_folder_follows_the_venue(tmp_path):
    """A config without backtest.data reads its venue's bundled data."""
    settings, cfg = okx_settings(tmp_path, ["SOLUSDT"], "2022-03-01", "2022-03-05", data=None)
    assert resolve_data_dir(None, cfg, "okx").resolve() == OKX_DATA.resolve()
    p = prepare(settings, config_path=cfg)
    assert p.data_path.resolve() == OKX_DATA.resolve()
    assert market_data.data_venue(p.data_path) == "okx"


def test_symbol_without_bundled_tiers_asks_for_a_tier_file(tmp_path):
    settings, cfg = okx_settings(tmp_path, ["ETHUSDT"], "2022-03-01", "2022-04-01")
    with pytest.raises(BacktestInputError) as e:
        prepare(settings, config_path=cfg)
    assert "ETHUSDT" in str(e.value) and "no OKX position tiers" in str(e.value) and "--brackets" in str(e.value)
    assert "took effect on 2021-06-11" in str(e.value)


def test_btc_runs_on_the_bundled_tiers(tmp_path):
    """BTCUSDT's bundled table (the 2022-02-11 record) serves a backtest without an operator's file."""
    settings, cfg = okx_settings(tmp_path, ["BTCUSDT"], "2022-03-01", "2022-03-10")
    p = prepare(settings, config_path=cfg)
    assert p.brackets["BTCUSDT"].tiers == tiers.BUNDLED["BTCUSDT"].tiers


def test_leverage_checked_at_the_tier_of_the_largest_position(tmp_path, capsys):
    """Tiers by size: the configured notional bought at the window's lowest price must fit a tier that allows the
    leverage. 100,000 USDT of SOL at March 2022's low (75.4) is 1,326 SOL, tier 3 of SOL's table (20x at most):
    60x passes the first tier (75x) but not the tier of the position, in `config check` and in the backtest."""
    from basisbot.cli import main

    settings, cfg = okx_settings(tmp_path, ["SOLUSDT"], "2022-03-01", "2022-04-01", leverage=60, notional=100_000)
    assert main(["config", "check", "--config", str(cfg)]) != 0
    err = capsys.readouterr().err
    assert "symbols.SOLUSDT.leverage' = 60" in err and "tier 3, 1000 < size <= 4000" in err
    assert "at 60x the position can be at most 500 SOL" in err and "the largest notional 60x allows" in err
    with pytest.raises(BacktestInputError, match=r"exceeds OKX's maximum 20x .* \(tier 3"):
        prepare(settings, config_path=cfg)
    # 20x fits tier 3; BTC beyond its recorded tier 1 (5 BTC) is refused, naming the last tier
    _, cfg = okx_settings(tmp_path, ["SOLUSDT"], "2022-03-01", "2022-04-01", leverage=20, notional=100_000)
    assert main(["config", "check", "--config", str(cfg)]) == 0
    capsys.readouterr()
    settings, cfg = okx_settings(tmp_path, ["BTCUSDT"], "2022-03-01", "2022-04-01", notional=300_000)
    with pytest.raises(BacktestInputError, match=r"BTCUSDT: position of .* exceeds the last tier \(5.00\)"):
        prepare(settings, config_path=cfg)


def test_users_taker_fee_moves_the_okx_liquidation_price(tmp_path):
    """`fees.perp_taker` is the closing fee of OKX's liquidation condition in the run's tables, the strategy's rows
    and the liquidation the backtest fills at."""
    settings, cfg = okx_settings(tmp_path, ["SOLUSDT"], "2022-03-10", "2022-04-10", leverage=5,
                                 fees="perp_taker = 0.0002\n")
    p = prepare(settings, config_path=cfg)
    table = p.brackets["SOLUSDT"]
    assert table.fee == Decimal("0.0002") and table == tiers.BUNDLED["SOLUSDT"].with_fee("0.0002")
    result = run_prepared(p)
    assert OKX.tiers_from_rows("SOLUSDT", result.strategies["SOLUSDT"].cfg.brackets) == table
    liqs = result.ledger.liquidations
    assert liqs
    for liq in liqs:
        expected = float(tiers.table_liquidation_price(-1, Decimal(str(liq.qty)), Decimal(str(liq.entry)),
                                                       Decimal(str(liq.wallet_lost)), table))
        assert liq.price == pytest.approx(expected, rel=1e-12)
        regular = float(tiers.table_liquidation_price(-1, Decimal(str(liq.qty)), Decimal(str(liq.entry)),
                                                      Decimal(str(liq.wallet_lost)), tiers.BUNDLED["SOLUSDT"]))
        assert liq.price > regular  # a lower closing fee liquidates a short later
