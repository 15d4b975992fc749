"""Venue facts for every symbol: brackets of all 318 bundled USDⓈ-M symbols (or the operator's own snapshot, in
Binance's or ccxt's shape), market rules from the bundled exchangeInfo capture (or the operator's), clear refusals
saying what to supply, and the fourth bundled symbol (AVAXUSDT) through the backtest, `config check` and the local
venue."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from basisbot.backtest.run import prepare
from basisbot.cli import main
from basisbot.config.loading import load_settings
from basisbot.core import margin
from basisbot.core.brackets import BracketError, bracket_rows
from basisbot.core.carry import funding_payment
from basisbot.data.dump_writer import export_binance_dump
from basisbot.venues.binance import reference
from basisbot.venues.binance.brackets_file import load_brackets, parse_brackets, unified_to_id
from tests.helpers.sim_venue import run_scenario
from tests.invariants import assert_backtest_invariants

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "backtests" / "data" / "binance"
RAW_ALL = {e["symbol"]: e for e in json.loads(reference.BRACKETS_ALL.read_text())}

CONFIG = """
[backtest]
data = "{data}"
start = {start}
end = {end}
{extra}
[symbols.{sym}]
notional_usdt = {notional}
leverage = {lev}
entry_apr = -1000
exit_apr = -2000
[symbols.{sym}.guard]
enabled = false
"""


def write_config(folder: Path, name: str, *, sym: str, lev: int, start="2023-01-01", end="2023-02-01",
                 notional=20000, data=DATA, extra: str = "") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(CONFIG.format(data=data, start=start, end=end, sym=sym, lev=lev, notional=notional, extra=extra))
    return path


def backtest(cfg: Path, out: Path, *flags: str) -> int:
    return main(["backtest", "--config", str(cfg), "--out", str(out), "--quiet", *flags])


def read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def ccxt_tiers(symbol_entry: dict, *, info: bool, strings: bool = False) -> list[dict]:
    """A Binance leverageBracket entry as ccxt's fetch_leverage_tiers gives it (binance.parse_market_leverage_tiers):
    unified fields, and Binance's raw bracket under `info` (as decimal strings, like freqtrade's snapshot)."""
    out = []
    for b in symbol_entry["brackets"]:
        tier = {"tier": float(b["bracket"]), "currency": "USDT", "minNotional": float(b["notionalFloor"]),
                "maxNotional": float(b["notionalCap"]), "maintenanceMarginRate": float(b["maintMarginRatio"]),
                "maxLeverage": float(b["initialLeverage"])}
        if info:
            tier["info"] = {k: str(v) for k, v in b.items()} if strings else dict(b)
        out.append(tier)
    return out


def limit_at(entry: dict, notional: float) -> int:
    """The initial leverage of the raw bracket holding `notional` (floor <= N < cap)."""
    return next(b["initialLeverage"] for b in entry["brackets"] if b["notionalFloor"] <= notional < b["notionalCap"])


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("BASISBOT_"):
            monkeypatch.delenv(k)


# ---------------------------------------------------------------------------------------------------------------------
# bundled tables and the two input shapes


def test_bundled_brackets_cover_every_symbol_newer_tables_win():
    tables = reference.brackets()
    assert len(tables) == len(RAW_ALL) == 318
    assert {"AVAXUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT", "1000PEPEUSDT"} <= set(tables)
    newer = load_brackets(Path(str(reference.BRACKETS)))
    for sym, table in newer.items():  # the 2026 tables of BTC/ETH/SOL differ from the 2024 snapshot and win
        assert tables[sym] == table
        assert parse_brackets(RAW_ALL[sym])[sym] != table
    assert tables["AVAXUSDT"] == parse_brackets(RAW_ALL["AVAXUSDT"])["AVAXUSDT"]


def test_ccxt_shape_parses_to_the_same_tables_for_all_symbols():
    """Every real table, converted to ccxt's shape three ways (info as numbers, info as strings, unified fields only
    with cum rebuilt from continuity), parses back to Binance's own table."""
    binance = parse_brackets(list(RAW_ALL.values()))
    with_info = {f"{e['symbol'][:-4]}/USDT:USDT": ccxt_tiers(e, info=True) for e in RAW_ALL.values()}
    strings = {f"{e['symbol'][:-4]}/USDT:USDT": ccxt_tiers(e, info=True, strings=True) for e in RAW_ALL.values()}
    unified = {f"{e['symbol'][:-4]}/USDT:USDT": ccxt_tiers(e, info=False) for e in RAW_ALL.values()}
    assert parse_brackets(with_info) == binance
    assert parse_brackets(strings) == binance
    rebuilt = parse_brackets(unified)
    assert set(rebuilt) == set(binance)
    for sym, table in binance.items():
        got = rebuilt[sym]
        assert [(b.bracket, b.initial_leverage, b.notional_floor, b.notional_cap, b.mmr) for b in got.brackets] == \
            [(b.bracket, b.initial_leverage, b.notional_floor, b.notional_cap, b.mmr) for b in table.brackets]
        assert [b.cum for b in got.brackets] == pytest.approx([b.cum for b in table.brackets], rel=1e-12, abs=1e-6)


def test_unified_symbols_map_to_binance_ids():
    assert unified_to_id("BTC/USDT:USDT") == "BTCUSDT"
    assert unified_to_id("1000PEPE/USDT:USDT") == "1000PEPEUSDT"
    assert unified_to_id("BTC/USDT:USDT-240628") == "BTCUSDT_240628"
    assert unified_to_id("XRPUSDT") == "XRPUSDT"


def test_ccxt_shape_errors_name_file_entry_and_field(tmp_path):
    tiers = {"XRP/USDT:USDT": ccxt_tiers(RAW_ALL["XRPUSDT"], info=False)}
    del tiers["XRP/USDT:USDT"][2]["maintenanceMarginRate"]
    path = tmp_path / "tiers.json"
    path.write_text(json.dumps(tiers))
    with pytest.raises(BracketError) as e:
        load_brackets(path)
    msg = str(e.value)
    assert str(path) in msg and "XRP/USDT:USDT" in msg and "tiers[2].maintenanceMarginRate" in msg and "missing" in msg
    tiers = {"XRP/USDT:USDT": ccxt_tiers(RAW_ALL["XRPUSDT"], info=True, strings=True)}
    tiers["XRP/USDT:USDT"][1]["info"]["maintMarginRatio"] = "abc"
    assert "tiers[1].info.maintMarginRatio" in str(pytest.raises(BracketError, parse_brackets, tiers, "f").value)
    tiers = {"XRP/USDT:USDT": ccxt_tiers(RAW_ALL["XRPUSDT"], info=False)}
    tiers["XRP/USDT:USDT"][3]["minNotional"] += 1.0  # a gap after tier 2
    msg = str(pytest.raises(BracketError, parse_brackets, tiers, "f").value)
    assert "XRP/USDT:USDT" in msg and "tiers[3].minNotional" in msg and "maxNotional" in msg
    msg = str(pytest.raises(BracketError, parse_brackets, {"XRP/USDT:USDT": "x"}, "f").value)
    assert "XRP/USDT:USDT" in msg and "list of leverage tiers" in msg


# ---------------------------------------------------------------------------------------------------------------------
# config check


@pytest.mark.parametrize("sym", ["AVAXUSDT", "XRPUSDT"])
def test_config_check_uses_each_symbols_real_bracket(sym, tmp_path, capsys):
    notional = 20000
    allowed = limit_at(RAW_ALL[sym], notional)
    ok = write_config(tmp_path, "ok", sym=sym, lev=allowed, notional=notional)
    assert main(["config", "check", "--config", str(ok)]) == 0, capsys.readouterr()
    capsys.readouterr()
    bad = write_config(tmp_path, "bad", sym=sym, lev=allowed + 1, notional=notional)
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and sym in err and f"symbols.{sym}.leverage" in err and f"= {allowed + 1}" in err
    assert f"at most {allowed}x" in err and f"allowed: 1..{allowed}" in err


def test_operators_brackets_file_wins_in_config_check(tmp_path, capsys, monkeypatch):
    """BTCUSDT's bundled 2026 table allows 150x at 100,000 USDT; the operator's 2024 snapshot (ccxt shape, as
    freqtrade ships it) allows 100x: with backtest.brackets set, the check uses the operator's file."""
    notional, lev = 100_000, 125
    assert reference.brackets()["BTCUSDT"].max_leverage(notional) > lev > limit_at(RAW_ALL["BTCUSDT"], notional)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "btc_2024.json").write_text(
        json.dumps({"BTC/USDT:USDT": ccxt_tiers(RAW_ALL["BTCUSDT"], info=True, strings=True)}))
    monkeypatch.chdir(tmp_path)  # a relative path is tried here first, then next to the config file
    plain = write_config(tmp_path / "cfg", "plain", sym="BTCUSDT", lev=lev, notional=notional)
    assert main(["config", "check", "--config", str(plain)]) == 0
    capsys.readouterr()
    own = write_config(tmp_path / "cfg", "own", sym="BTCUSDT", lev=lev, notional=notional,
                       extra='brackets = "btc_2024.json"')
    assert main(["config", "check", "--config", str(own)]) == 2
    err = capsys.readouterr().err
    assert f"at most {limit_at(RAW_ALL['BTCUSDT'], notional)}x" in err and "btc_2024.json" in err
    assert "symbols.BTCUSDT.leverage" in err
    missing = write_config(tmp_path / "cfg", "missing", sym="BTCUSDT", lev=3, extra='brackets = "nope.json"')
    assert main(["config", "check", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "backtest.brackets" in err and "nope.json" in err and "not found" in err


# ---------------------------------------------------------------------------------------------------------------------
# backtests


def test_avax_from_public_dump_at_2x_liquidated_with_exact_funding(tmp_path):
    """AVAXUSDT, exported to Binance's public-dump layout with the project's writer, 2x always-in without the guard
    through the January 2023 rally (10.8 -> 22 USDT): the short is liquidated at Binance's liquidation price with
    AVAX's own bracket, the spot leg is sold in the same instant, and every funding row is a settlement of the source
    file while the short was open, paid exactly -qty x mark x rate."""
    dump = tmp_path / "dump"
    export_binance_dump(DATA, "AVAXUSDT", dump, start="2023-01-01", end="2023-02-01")
    cfg = write_config(tmp_path, "avax", sym="AVAXUSDT", lev=2, data=dump)
    out = tmp_path / "avax"
    assert backtest(cfg, out) == 0
    summary = assert_backtest_invariants(out)  # max_unhedged_s <= leg_timeout_s, liquidation included
    assert summary["symbols"]["AVAXUSDT"]["liquidations"] >= 1
    liqs = read_csv(out / "liquidations.csv")
    assert liqs
    first = liqs[0]
    side, qty, entry = int(first["side"]), float(first["qty"]), float(first["entry_price"])
    assert side == -1
    assert float(first["liquidation_price"]) == pytest.approx(margin.liquidation_price(
        side, qty, entry, float(first["wallet_lost"]), reference.brackets()["AVAXUSDT"]), rel=1e-9)
    trades = read_csv(out / "trades.csv")
    liq_fill = next(t for t in trades if t["tag"] == "LIQUIDATION")
    unwind = [t for t in trades if t["tag"] == "UNWIND" and t["ts"] == liq_fill["ts"]]
    assert unwind and all(t["leg"] == "spot" and t["side"] == "SELL" for t in unwind)
    assert sum(float(t["qty"]) for t in unwind) == pytest.approx(
        sum(float(t["qty"]) for t in trades if t["leg"] == "spot" and t["tag"] == "ENTER"
            and t["ts"] <= liq_fill["ts"]), abs=1e-9)

    # funding: the source settlements while the short was open, exact
    src = pd.read_csv(DATA / "AVAXUSDT_funding_2022-2023.csv")
    src["ts"] = pd.to_datetime(src["datetime"], format="ISO8601")
    opens = [pd.Timestamp(t["ts"]) for t in trades if t["leg"] == "perp" and t["tag"] == "ENTER"]
    closes = [pd.Timestamp(t["ts"]) for t in trades if t["leg"] == "perp" and t["tag"] != "ENTER"]
    end = pd.Timestamp("2023-02-01", tz="UTC")
    intervals = list(zip(opens, closes + [end] * (len(opens) - len(closes))))
    expected = src[[any(a < ts <= b for a, b in intervals) for ts in src["ts"]]]
    rows = read_csv(out / "funding.csv")
    assert len(rows) == len(expected) > 80
    assert [pd.Timestamp(r["ts"]) for r in rows] == list(expected["ts"])
    assert [float(r["rate"]) for r in rows] == list(expected["funding_rate"])
    for r in rows:
        q, mark, rate = float(r["position_qty"]), float(r["mark_price"]), float(r["rate"])
        assert q < 0 and float(r["payment"]) == funding_payment(q, mark, rate)
    s = json.loads((out / "summary.json").read_text())
    assert s["symbols"]["AVAXUSDT"]["liquidations"] == len(liqs)
    assert s["symbols"]["AVAXUSDT"]["funding_pnl"] == pytest.approx(sum(float(r["payment"]) for r in rows), abs=1e-6)
    assert abs(s["total"]["reconciliation_error"]) < 1e-5


def test_brackets_file_in_either_shape_gives_the_bundled_run(tmp_path):
    """The bundled BTCUSDT table written as Binance's leverageBracket answer (config key) and as ccxt tiers without
    `info` (command-line flag, cum rebuilt) gives the bundled run exactly, liquidation included (5x, January 2023,
    a 60,000 USDT short); the 2024 snapshot's table (second bracket from 50,000) moves the liquidation price."""
    table = reference.brackets()["BTCUSDT"]
    (tmp_path / "binance.json").write_text(json.dumps([{"symbol": "BTCUSDT", "notionalCoef": 1.0,
                                                        "brackets": bracket_rows(table)}]))
    (tmp_path / "ccxt.json").write_text(json.dumps(
        {"BTC/USDT:USDT": ccxt_tiers({"brackets": bracket_rows(table)}, info=False)}))
    (tmp_path / "btc_2024.json").write_text(json.dumps(
        {"BTC/USDT:USDT": ccxt_tiers(RAW_ALL["BTCUSDT"], info=True, strings=True)}))
    runs = {}
    for name, extra, flags in (("bundled", "", ()),
                               ("binance", f'brackets = "{tmp_path / "binance.json"}"', ()),
                               ("ccxt", "", ("--brackets", str(tmp_path / "ccxt.json"))),
                               ("btc_2024", "", ("--brackets", str(tmp_path / "btc_2024.json")))):
        cfg = write_config(tmp_path, name, sym="BTCUSDT", lev=5, notional=60000, extra=extra)
        assert backtest(cfg, tmp_path / name, *flags) == 0
        runs[name] = tmp_path / name
    liq, liq_2024 = read_csv(runs["bundled"] / "liquidations.csv"), read_csv(runs["btc_2024"] / "liquidations.csv")
    assert liq and liq_2024
    assert float(liq_2024[0]["liquidation_price"]) < float(liq[0]["liquidation_price"])  # higher MMR: earlier
    assert float(liq_2024[0]["liquidation_price"]) == pytest.approx(margin.liquidation_price(
        -1, float(liq_2024[0]["qty"]), float(liq_2024[0]["entry_price"]), float(liq_2024[0]["wallet_lost"]),
        parse_brackets(RAW_ALL["BTCUSDT"])["BTCUSDT"]), rel=1e-9)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "client_order_id"} for r in rows]  # noqa: E731
    for name in ("binance", "ccxt"):
        for f in ("funding.csv", "liquidations.csv", "guard.csv", "equity.csv"):
            assert (runs[name] / f).read_text() == (runs["bundled"] / f).read_text(), (name, f)
        assert strip(read_csv(runs[name] / "trades.csv")) == strip(read_csv(runs["bundled"] / "trades.csv"))
        sa, sb = (json.loads((runs[n] / "summary.json").read_text()) for n in ("bundled", name))
        assert sa["symbols"] == sb["symbols"] and sa["total"] == sb["total"]


def test_symbol_without_market_rules_says_how_to_supply_them(tmp_path, capsys):
    """1000PEPEUSDT has brackets (2024 snapshot) but was listed after the 2021 exchangeInfo capture."""
    cfg = write_config(tmp_path, "pepe", sym="1000PEPEUSDT", lev=2)
    assert main(["config", "check", "--config", str(cfg)]) == 0  # a known perpetual, leverage within its bracket
    capsys.readouterr()
    assert backtest(cfg, tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "1000PEPEUSDT" in err and "exchangeInfo" in err and "backtest.exchange_info" in err
    assert "--exchange-info" in err and "fapi/v1/exchangeInfo" in err
    assert backtest(cfg, tmp_path / "o", "--exchange-info", str(tmp_path / "none.json")) == 2
    err = capsys.readouterr().err
    assert "--exchange-info" in err and "none.json" in err and "not found" in err
    (tmp_path / "bad.json").write_text(json.dumps({"rateLimits": []}))
    assert backtest(cfg, tmp_path / "o", "--exchange-info", str(tmp_path / "bad.json")) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "exchangeInfo" in err and "symbols" in err


def test_unknown_symbol_and_bad_brackets_file_are_refused(tmp_path, capsys):
    cfg = write_config(tmp_path, "foo", sym="FOOBARUSDT", lev=2)
    assert backtest(cfg, tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "FOOBARUSDT" in err and "unknown USDⓈ-M perpetual" in err and "backtest.brackets" in err
    (tmp_path / "b.json").write_text("[{\"symbol\": \"AVAXUSDT\", \"brackets\": [{\"bracket\": 1}]}]")
    cfg = write_config(tmp_path, "avax", sym="AVAXUSDT", lev=2)
    assert backtest(cfg, tmp_path / "o", "--brackets", str(tmp_path / "b.json")) == 2
    err = capsys.readouterr().err
    assert "--brackets" in err and "b.json" in err and "AVAXUSDT" in err and "brackets[0].initialLeverage" in err


def test_operators_exchange_info_wins_per_symbol(tmp_path):
    """The operator's exchangeInfo (here the capture's own AVAXUSDT entry with a finer lot step) sets the market
    rules of the instruments the backtest builds; other symbols keep the bundled capture's."""
    capture = json.loads(reference.EXCHANGE_INFO.read_text())
    entry = next(s for s in capture["symbols"] if s["symbol"] == "AVAXUSDT")
    for f in entry["filters"]:
        if f["filterType"] == "LOT_SIZE":
            assert f["stepSize"] == "1"
            f["stepSize"] = f["minQty"] = "0.1"
    (tmp_path / "ei.json").write_text(json.dumps({"symbols": [entry]}))
    cfg = write_config(tmp_path, "avax", sym="AVAXUSDT", lev=2, start="2023-01-01", end="2023-01-03",
                       extra=f'exchange_info = "{tmp_path / "ei.json"}"')
    p = prepare(load_settings(cfg, env_file=None), config_path=cfg)
    assert str(p.perp_insts["AVAXUSDT"].size_increment) == "0.1"
    assert str(p.spot_insts["AVAXUSDT"].size_increment) == "0.001"
    assert reference.market_specs(tmp_path / "ei.json")["BTCUSDT"] == reference.perp_specs()["BTCUSDT"]
    assert str(prepare(load_settings(write_config(tmp_path, "plain", sym="AVAXUSDT", lev=2, start="2023-01-01",
                                                  end="2023-01-03"), env_file=None)).perp_insts["AVAXUSDT"]
               .size_increment) == "1"


# ---------------------------------------------------------------------------------------------------------------------
# the local venue


def test_local_venue_serves_every_symbol_with_brackets():
    """`basisbot sim` on the bundled folder serves all four symbols; its leverageBracket answer and ccxt's
    fetch_leverage_tiers over it give each symbol's bundled table."""

    async def scenario(sim, spot, fut):
        assert sorted(sim.markets) == ["AVAXUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"]
        raw = await fut.fapiPrivateGetLeverageBracket()
        assert sorted(e["symbol"] for e in raw) == sorted(sim.markets)
        tiers = await fut.fetch_leverage_tiers(["AVAX/USDT:USDT"])
        assert list(tiers) == ["AVAX/USDT:USDT"]
        return raw, tiers, await fut.fetch_leverage_tiers()

    raw, tiers, every = run_scenario(scenario, symbols=None)
    assert parse_brackets(raw) == {s: reference.brackets()[s] for s in ("AVAXUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT")}
    assert parse_brackets(tiers, "sim") == {"AVAXUSDT": reference.brackets()["AVAXUSDT"]}
    assert tiers["AVAX/USDT:USDT"][1]["maintenanceMarginRate"] == RAW_ALL["AVAXUSDT"]["brackets"][1]["maintMarginRatio"]
    assert parse_brackets(every, "sim") == parse_brackets(raw)


def test_local_venue_refuses_a_symbol_without_market_rules(tmp_path):
    from basisbot.sim.engine.markets import build_market

    with pytest.raises(ValueError, match=r"1000PEPEUSDT.*exchangeInfo.*--exchange-info"):
        build_market("1000PEPEUSDT")
    assert build_market("XRPUSDT").table == reference.brackets()["XRPUSDT"]
    with pytest.raises(ValueError, match="nope.json"):
        build_market("XRPUSDT", brackets=tmp_path / "nope.json")
