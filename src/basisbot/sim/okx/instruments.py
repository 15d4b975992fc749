"""The OKX venue's instruments: one spot pair (BTC-USDT) and one USDT-margined linear swap (BTC-USDT-SWAP) per carry
symbol, with OKX's rules, and the engine's markets built from them.

The engine keeps every quantity in base units; a swap's rules are handed to it in base units (lot = lotSz × ctVal,
minimum = minSz × ctVal, exact Decimals from ``basisbot.venues.okx.contracts``), and this layer converts OKX's
contract counts at its edge (``ContractSpec.to_base`` / ``to_contracts``).

Swap specs: the bundled OKX snapshot (or the operator's instruments file, ``--exchange-info`` for ``--exchange okx``).
Spot specs: OKX's v5 instruments example for BTC-USDT (tickSz 0.1, lotSz 0.00000001, minSz 0.00001); the other pairs
use the swap's tick and the same lot with a minimum of about 1 USDT at 2022 prices (a model: the bundled data holds
no spot rules for them).

Margin model: each swap has the position tiers the venue enforces (`venue_tiers`, sizes in base units): the symbol's
OKX tiers where the bundled tables (or ``--brackets``) have them, completed where they stop short of OKX's own last
tier, else the symbol's bundled USDⓈ-M bracket table turned into sizes at the start price (a stand-in until OKX tiers
are bundled for it). ``position-tiers`` serves them; the engine's notional bracket table (maintenance margin, the
largest position at a leverage, the order cap 51004) is them converted at the start price; and the engine liquidates
an isolated position at OKX's own liquidation price (`VenueProfile.liquidation_price` of the OKX profile: the tier's
mmr plus the taker fee of closing, the venue's configured futures taker fee) on them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

from basisbot.core.brackets import Bracket, BracketTable
from basisbot.sim.engine.markets import Market
from basisbot.venues import get_profile
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
_RATIO, _LEVER = Decimal("0.0001"), Decimal("0.01")


@dataclass(frozen=True)
class OkxInstrument:
    symbol: str            # BTCUSDT
    swap: ContractSpec
    spot_id: str           # BTC-USDT
    spot_tick: Decimal
    spot_lot: Decimal
    spot_min: Decimal
    tiers: okx_tiers.TierTable  # the tiers the venue enforces and serves (`venue_tiers`)
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


def _stand_in_tiers(prev: list[okx_tiers.Tier], stand_in: BracketTable, price: float, ct_val: Decimal) -> None:
    """Append to `prev` the stand-in brackets whose notional cap, in whole contracts at `price`, lies beyond the last
    tier of `prev`; a tier's mmr and initial margin ratio never fall, and its maximum leverage never rises, from the
    tier before it (OKX's tiers only tighten with size)."""
    px = Decimal(repr(price))
    for b in stand_in.brackets:
        hi = (Decimal(repr(b.notional_cap)) / px / ct_val).to_integral_value() * ct_val
        lo = prev[-1].max_qty if prev else Decimal(0)
        if hi <= lo:
            continue
        lev, mmr = Decimal(b.initial_leverage), Decimal(repr(b.mmr))
        if prev:
            lev, mmr = min(lev, prev[-1].max_leverage), max(mmr, prev[-1].mmr)
        imr = max(Decimal(1) / lev, prev[-1].imr) if prev else Decimal(1) / lev
        prev.append(okx_tiers.Tier(len(prev) + 1, lo, hi, mmr, imr, lev))


def venue_tiers(symbol: str, table: okx_tiers.TierTable | None, stand_in: BracketTable | None, price: float,
                ct_val: Decimal) -> okx_tiers.TierTable:
    """The position tiers the local venue enforces for `symbol` (sizes in base units), whose last tier is the
    largest position it accepts (51004 beyond):

    - OKX's table with its step rule ("+step size and +step mmr per tier"): the listed tiers, then the step rule
      carried on to the tier whose initial margin ratio reaches 100 % (1x, the last leverage there is);
    - OKX's table without a step rule and not `partial` (OKX's own position-tiers answer): as listed, its last tier
      being OKX's largest position;
    - a `partial` table (OKX has tiers beyond its last listed one, e.g. BTCUSDT's record of tier 1 only): the listed
      tiers, then, for sizes beyond them, what the venue used before it had OKX tiers for the symbol: the symbol's
      bundled USDⓈ-M brackets turned into whole contracts at `price` (no tighter than the last listed tier). Real OKX
      takes such sizes, so the listed tiers must not become an order cap; a symbol without that stand-in keeps the
      listed tiers alone (nothing is known beyond them);
    - no OKX table: the stand-in brackets alone, in whole contracts at `price`.
    Raises ValueError naming what to supply when there is neither."""
    if table is None:
        if stand_in is None:
            raise ValueError(okx_tiers.missing_tiers_message(symbol, None))
        tiers: list[okx_tiers.Tier] = []
        _stand_in_tiers(tiers, stand_in, price, ct_val)
        return okx_tiers.TierTable(symbol, tuple(tiers))
    tiers = list(table.tiers)
    if table.step_qty is not None:
        n = 1
        while (t := table.tier_for(table.tiers[-1].max_qty + n * table.step_qty)).imr <= 1:
            tiers.append(t)
            n += 1
    elif table.partial and stand_in is not None:
        _stand_in_tiers(tiers, stand_in, price, ct_val)
    return replace(table, tiers=tuple(tiers), step_qty=None, step_mmr=None, partial=False)


def build(symbols: list[str], start_prices: dict[str, float], *, markets_file: Path | None = None,
          tiers_file: Path | None = None, taker_fee: float | None = None
          ) -> tuple[dict[str, Market], dict[str, OkxInstrument]]:
    """Engine markets and OKX instruments of `symbols`; `taker_fee` (the venue's futures taker fee, a fraction of
    notional) is the closing fee of OKX's liquidation condition (OKX's regular-user rate when None). Raises
    ValueError naming what to supply."""
    try:
        specs = contract_specs(markets_file)
        tables = okx_tiers.tier_tables(tiers_file, markets_file)
    except OkxDataError as e:
        raise ValueError(str(e)) from None
    brackets = reference.bracket_tables()
    okx = get_profile("okx")
    markets: dict[str, Market] = {}
    insts: dict[str, OkxInstrument] = {}
    for s in symbols:
        if s not in specs:
            raise ValueError(f"symbol {s}: no OKX contract spec in the bundled snapshot ({', '.join(sorted(specs))})"
                             f"; pass OKX's instruments answer with --exchange-info")
        spec = specs[s]
        tick, lot, mn = _SPOT_RULES.get(s, (str(spec.tick_sz), "0.00000001", str(spec.ct_val)))
        if s not in tables and s not in brackets:
            raise ValueError(okx_tiers.missing_tiers_message(s, tiers_file))
        table = venue_tiers(s, tables.get(s), brackets.get(s), start_prices[s], spec.ct_val)
        if taker_fee is not None:
            table = table.with_fee(taker_fee)
        bt = _tiers_as_brackets(table, start_prices[s])
        max_lev = int(bt.brackets[0].initial_leverage)
        perp = reference.MarketSpec(symbol=s, base=spec.base, quote=spec.quote, tick_size=spec.tick_sz,
                                    step_size=spec.step_base, min_qty=spec.min_base,
                                    max_qty=spec.ct_val * Decimal(100_000_000), min_notional=Decimal(0))
        spot = reference.MarketSpec(symbol=s, base=spec.base, quote=spec.quote, tick_size=Decimal(tick),
                                    step_size=Decimal(lot), min_qty=Decimal(mn), max_qty=Decimal(9_000_000),
                                    min_notional=Decimal(0))
        markets[s] = Market(symbol=s, base=spec.base, quote=spec.quote, perp=perp, spot=spot, table=bt, perp_raw={},
                            profile=okx, tiers=table)
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


def tier_rows(inst: OkxInstrument, mgn_mode: str) -> list[dict]:
    """GET /api/v5/public/position-tiers rows (sizes in contracts): the tiers the venue enforces (`venue_tiers`)."""
    ct = inst.swap.ct_val
    # ratios OKX prints with at most 4 decimals and leverages with 2 ("0.013", "18.18"); the step rule and the stand-in
    # give exact quotients (1 / 0.055), shown the same way: the initial ratio rounded up, the leverage down
    rows = [(t.tier, t.min_qty / ct, t.max_qty / ct, t.mmr, t.imr.quantize(_RATIO, ROUND_CEILING),
             t.max_leverage.quantize(_LEVER, ROUND_FLOOR)) for t in inst.tiers.tiers]
    return [{"baseMaxLoan": "", "imr": dstr(imr), "instFamily": inst.family, "instId": "", "maxLever": dstr(lev),
             "maxSz": dstr(hi), "minSz": dstr(lo), "mmr": dstr(mmr), "optMgnFactor": "0", "quoteMaxLoan": "",
             "tier": str(n), "uly": inst.family}
            for n, lo, hi, mmr, imr, lev in rows]
