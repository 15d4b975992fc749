"""The OKX venue's instruments: one spot pair (BTC-USDT) and one USDT-margined linear swap (BTC-USDT-SWAP) per carry
symbol, with OKX's rules, and the engine's markets built from them.

The engine keeps every quantity in base units; a swap's rules are handed to it in base units (lot = lotSz × ctVal,
minimum = minSz × ctVal, exact Decimals from ``basisbot.venues.okx.contracts``), and this layer converts OKX's
contract counts at its edge (``ContractSpec.to_base`` / ``to_contracts``).

Swap specs: the bundled OKX snapshot (or the operator's instruments file, ``--exchange-info`` for ``--exchange okx``).
Spot specs: OKX's v5 instruments example for BTC-USDT (tickSz 0.1, lotSz 0.00000001, minSz 0.00001); the other pairs
use the swap's tick and the same lot with a minimum of about 1 USDT at 2022 prices (a model: the bundled data holds
no spot rules for them).

Margin model: the engine's maintenance margin comes from a notional bracket table; it is the symbol's OKX position
tiers converted at the start price where the bundled tables (or ``--brackets``) have them, else the symbol's
bundled USDⓈ-M bracket table (a stand-in until OKX tiers are bundled for it; ``position-tiers`` then serves that
table in OKX's shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from basisbot.core.brackets import Bracket, BracketTable
from basisbot.sim.markets import Market
from basisbot.venues.binance import reference
from basisbot.venues.okx import tiers as okx_tiers
from basisbot.venues.okx.contracts import ContractSpec, OkxDataError, contract_specs

# spot rules (tickSz, lotSz, minSz)
_SPOT_RULES = {
    "BTCUSDT": ("0.1", "0.00000001", "0.00001"),
    "ETHUSDT": ("0.01", "0.00000001", "0.0001"),
    "SOLUSDT": ("0.001", "0.00000001", "0.01"),
    "AVAXUSDT": ("0.001", "0.00000001", "0.01"),
}
_LIST_TIME = "1611916828000"


@dataclass(frozen=True)
class OkxInstrument:
    symbol: str            # BTCUSDT
    swap: ContractSpec
    spot_id: str           # BTC-USDT
    spot_tick: Decimal
    spot_lot: Decimal
    spot_min: Decimal
    tiers: okx_tiers.TierTable | None
    max_leverage: int

    @property
    def swap_id(self) -> str:
        return self.swap.inst_id

    @property
    def family(self) -> str:
        return self.spot_id


def _tiers_as_brackets(table: okx_tiers.TierTable, price: float) -> BracketTable:
    """OKX's size tiers as a notional bracket table at `price` (the engine's margin model)."""
    out, cum, prev_mmr, floor = [], 0.0, 0.0, 0.0
    for n, t in enumerate(table.tiers, 1):
        cap = float(t.max_qty) * price
        mmr = float(t.mmr)
        cum += floor * (mmr - prev_mmr)
        out.append(Bracket(n, int(float(t.max_leverage)), floor, cap, mmr, cum))
        prev_mmr, floor = mmr, cap
    return BracketTable(table.symbol, tuple(out))


def build(symbols: list[str], start_prices: dict[str, float], *, markets_file: Path | None = None,
          tiers_file: Path | None = None) -> tuple[dict[str, Market], dict[str, OkxInstrument]]:
    """Engine markets and OKX instruments of `symbols`. Raises ValueError naming what to supply."""
    try:
        specs = contract_specs(markets_file)
        tables = okx_tiers.tier_tables(tiers_file, markets_file)
    except OkxDataError as e:
        raise ValueError(str(e)) from None
    brackets = reference.bracket_tables()
    markets: dict[str, Market] = {}
    insts: dict[str, OkxInstrument] = {}
    for s in symbols:
        if s not in specs:
            raise ValueError(f"symbol {s}: no OKX contract spec in the bundled snapshot ({', '.join(sorted(specs))})"
                             f"; pass OKX's instruments answer with --exchange-info")
        spec = specs[s]
        tick, lot, mn = _SPOT_RULES.get(s, (str(spec.tick_sz), "0.00000001", str(spec.ct_val)))
        table = tables.get(s)
        if table is not None:
            bt = _tiers_as_brackets(table, start_prices[s])
        elif s in brackets:
            bt = brackets[s]
        else:
            raise ValueError(okx_tiers.missing_tiers_message(s, tiers_file))
        max_lev = int(bt.brackets[0].initial_leverage)
        perp = reference.MarketSpec(symbol=s, base=spec.base, quote=spec.quote, tick_size=spec.tick_sz,
                                    step_size=spec.step_base, min_qty=spec.min_base,
                                    max_qty=spec.ct_val * Decimal(100_000_000), min_notional=Decimal(0))
        spot = reference.MarketSpec(symbol=s, base=spec.base, quote=spec.quote, tick_size=Decimal(tick),
                                    step_size=Decimal(lot), min_qty=Decimal(mn), max_qty=Decimal(9_000_000),
                                    min_notional=Decimal(0))
        markets[s] = Market(symbol=s, base=spec.base, quote=spec.quote, perp=perp, spot=spot, table=bt, perp_raw={})
        insts[s] = OkxInstrument(s, spec, f"{spec.base}-{spec.quote}", Decimal(tick), Decimal(lot), Decimal(mn),
                                 table, max_lev)
    return markets, insts


def dstr(d: Decimal) -> str:
    """A Decimal as OKX writes numbers: plain notation, no trailing zeros."""
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "") else s


def instrument_row(inst: OkxInstrument, inst_type: str) -> dict:
    """One row of GET /api/v5/public/instruments, field for field as OKX answers it."""
    blank = {"alias": "", "auctionEndTime": "", "baseCcy": "", "category": "1", "contTdSwTime": "", "ctMult": "",
             "ctType": "", "ctVal": "", "ctValCcy": "", "expTime": "", "futureSettlement": False, "instFamily": "",
             "instId": "", "instType": inst_type, "lever": "", "listTime": _LIST_TIME, "lotSz": "", "maxIcebergSz": "",
             "maxLmtAmt": "", "maxLmtSz": "", "maxMktAmt": "", "maxMktSz": "", "maxStopSz": "", "maxTriggerSz": "",
             "maxTwapSz": "", "minSz": "", "openType": "", "optType": "", "quoteCcy": "", "ruleType": "normal",
             "settleCcy": "", "state": "live", "stk": "", "tickSz": "", "uly": ""}
    if inst_type == "SPOT":
        blank.update(baseCcy=inst.swap.base, quoteCcy=inst.swap.quote, instId=inst.spot_id, lever="",
                     lotSz=dstr(inst.spot_lot), minSz=dstr(inst.spot_min), tickSz=dstr(inst.spot_tick),
                     maxLmtSz="9999999999", maxMktSz="1000000", maxLmtAmt="20000000", maxMktAmt="1000000",
                     maxStopSz="1000000", maxTriggerSz="9999999999", maxTwapSz="9999999999",
                     maxIcebergSz="9999999999")
        return blank
    sw = inst.swap
    blank.update(ctMult="1", ctType="linear", ctVal=dstr(sw.ct_val), ctValCcy=sw.base, instFamily=inst.family,
                 instId=sw.inst_id, lever=str(inst.max_leverage), lotSz=dstr(sw.lot_sz), minSz=dstr(sw.min_sz),
                 settleCcy=sw.quote, tickSz=dstr(sw.tick_sz), uly=inst.family, maxLmtSz="100000000",
                 maxMktSz="10000", maxLmtAmt="20000000", maxMktAmt="", maxStopSz="10000", maxTriggerSz="100000000",
                 maxTwapSz="100000000", maxIcebergSz="100000000")
    return blank


def tier_rows(inst: OkxInstrument, engine_table: BracketTable, mark: float, mgn_mode: str) -> list[dict]:
    """GET /api/v5/public/position-tiers rows (sizes in contracts): OKX's own tiers when known, else the engine's
    bracket table with its notional caps turned into contract sizes at the current mark."""
    rows = []
    ct = inst.swap.ct_val
    if inst.tiers is not None:
        for t in inst.tiers.tiers:
            rows.append((t.tier, t.min_qty / ct, t.max_qty / ct, t.mmr, t.imr, t.max_leverage))
    else:
        lo = Decimal(0)
        for b in engine_table.brackets:
            hi = (Decimal(repr(b.notional_cap)) / Decimal(repr(mark)) / ct).to_integral_value()
            rows.append((b.bracket, lo, hi, Decimal(repr(b.mmr)),
                         Decimal(1) / Decimal(b.initial_leverage), Decimal(b.initial_leverage)))
            lo = hi
    return [{"baseMaxLoan": "", "imr": dstr(imr), "instFamily": inst.family, "instId": "", "maxLever": dstr(lev),
             "maxSz": dstr(hi), "minSz": dstr(lo), "mmr": dstr(mmr), "optMgnFactor": "0", "quoteMaxLoan": "",
             "tier": str(n), "uly": inst.family}
            for n, lo, hi, mmr, imr, lev in rows]
