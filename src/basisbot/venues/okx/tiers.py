"""OKX position tiers (maintenance margin ratio by position SIZE, in contracts) and the isolated liquidation price of
a USDT-margined linear swap.

Tiers. OKX sets the maintenance margin ratio (mmr) by the position's size in contracts, not by its notional; its
announcements publish full tables and `GET /api/v5/public/position-tiers?instType=SWAP&tdMode=isolated&instFamily=..`
answers them (`tier, minSz, maxSz, mmr, imr, maxLever`). Tables here are converted to base units (contracts × ctVal).
Since the tier does not move with the price, the liquidation price needs no tier re-check. A tier's maximum leverage
caps the leverage of a position of that size (`TierTable.check_leverage`, `TierTable.max_qty_at_leverage`).

Published tables (`PUBLISHED`), each with its date of effect and source (backtests/data/SOURCES.md, "OKX position
tiers"):
- SOLUSDT from 2022-11-08 06:30 UTC ("OKX adjustment of SOL, GMT, SRM Position Tiers and Discount Rate"): up to 500
  contracts mmr 1.0 % (imr 1.3 %, 75x); up to 1,000: 1.5 % (2 %, 50x); up to 4,000: 2.0 % (5 %, 20x); up to 8,000:
  2.5 % (5.5 %, 18.18x); then +4,000 contracts and +0.5 % per tier.
- ETHUSDT from 2021-06-11 09:00 UTC ("OKEx position tiers to be adjusted"): up to 3,000 contracts (300 ETH) mmr 0.40 %
  (imr 0.80 %, 125x); up to 6,000: 0.50 % (1.00 %, 100x); up to 12,000: 1.00 % (1.50 %, 66.66x); then +12,000
  contracts and +0.5 % per tier.
- AVAXUSDT from 2021-03-04 10:00 UTC ("OKEx position tiers to be adjusted"): up to 375 contracts mmr 1.00 % (imr
  1.30 %, 75x); up to 750: 1.50 % (2.00 %, 50x); up to 1,500: 2.00 % (5.00 %, 20x). The copy read shows the next
  tier's size step (+1,500 contracts) but not its rates, so sizes beyond 1,500 are refused rather than guessed.
- BTCUSDT as recorded on 2022-02-11 23:45 UTC (OKX's position-tiers answer for the BTC-USDT swap family, printed by
  ccxt's okx.fetchLeverageTiers('BTC/USDT:USDT') in https://github.com/ccxt/ccxt/pull/11938): tier 1 up to 500
  contracts (5 BTC) mmr 0.40 % (imr 0.80 %, 125x). The print elides tiers 2 to 99 (it shows tier 100: 972,001 to
  982,000 contracts, mmr 49.5 %, imr 50 %, 2x), so sizes beyond 5 BTC are refused rather than guessed. `effective` is
  the time of the record (the table was in force then), not a date of effect.
The AVAXUSDT and BTCUSDT tables are `partial`: OKX itself has tiers beyond their last listed one, so a size beyond it
is unknown to the margin math here, not a size OKX refuses (the local OKX venue does not cap orders there).

Bundled for backtests (`BUNDLED`, the default of `tier_tables`), each used for the whole bundled window
(2022-03..2023-12): SOLUSDT's 2022-11-08 table, the only table found that took effect inside the window, and
BTCUSDT's record of 2022-02-11, 18 days before the window and the only BTC-USDT swap table found (whether OKX's
adjustments of 2022-03-04 and 2023 changed BTCUSDT's tier 1 is unknown: the copies read end before its rows). The
ETHUSDT and AVAXUSDT tables took effect 9 and 12 months before the window, and OKX adjusted the tiers of many swaps
after them (2022-03-04, 2022-06-09, 2023-04-24, 2023-05-19, 2023-06-15, 2023-10-31, 2023-12-18) in announcements whose
rows for these symbols could not be read. A backtest of ETH or AVAX therefore needs the operator's file
(`--brackets`, OKX's position-tiers answer or ccxt's fetch_market_leverage_tiers JSON); `missing_tiers_message` says
so.

Liquidation (OKX help, isolated margin: the position is liquidated when its margin ratio
(isolated margin + unrealised PnL) / (maintenance margin + taker fee of closing) falls to 100 %; maintenance margin =
mmr × position value and the fee = taker fee rate × position value, both at the mark). With q = contracts × ctVal
(base units), E the entry price, M the isolated margin, f the taker fee rate, solving M + side·q·(P - E) =
q·P·(mmr + f):

    long:  P = (q·E - M) / (q·(1 - mmr - f))
    short: P = (q·E + M) / (q·(1 + mmr + f))

f is the table's closing taker fee (`TierTable.fee`): OKX's regular-user (Lv1) rate 0.05 % by default, the run's
`fees.perp_taker` when configured, so that a user's own fee level moves the liquidation price.

Worked examples (tests/test_okx_tiers.py), Lv1 taker fee 0.05 %, margin = notional / 5 (5x), so that
P = E × (1 ± 1/5) / (1 ± (mmr + f)) whatever the size:
- short 100 SOL-USDT-SWAP contracts (100 SOL) at 20.000 with 400 USDT, tier 1 mmr 1 %: 2,400 / 101.05 = 23.7506;
  at 501 contracts (tier 2, mmr 1.5 %) the same short liquidates at 24 / 1.0155 = 23.6337;
- short 3,000 ETH-USDT-SWAP contracts (300 ETH) at 2,000 with 120,000 USDT, tier 1 mmr 0.40 %: 2,400 / 1.0045 =
  2,389.2484; at 3,001 contracts (300.1 ETH, tier 2, mmr 0.50 %): 2,400 / 1.0055 = 2,386.8722;
- long 375 AVAX-USDT-SWAP contracts (375 AVAX) at 20.000 with 1,500 USDT, tier 1 mmr 1.00 %: 16 / 0.9895 = 16.1698;
  at 376 contracts (tier 2, mmr 1.50 %): 16 / 0.9845 = 16.2519.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

from basisbot.venues.okx.contracts import BUNDLED as _BUNDLED_SPECS
from basisbot.venues.okx.contracts import ContractSpec, OkxDataError, _dec, contract_specs
from basisbot.venues.okx.fees import SWAP_TAKER


@dataclass(frozen=True, slots=True)
class Tier:
    """One OKX position tier, sizes in base units (contracts × ctVal): applies to min_qty < qty <= max_qty."""

    tier: int
    min_qty: Decimal
    max_qty: Decimal
    mmr: Decimal
    imr: Decimal
    max_leverage: Decimal


@dataclass(frozen=True, slots=True)
class TierTable:
    """A symbol's tiers, ascending. Beyond the last listed tier, OKX's rule "increase by `step_qty` and `step_mmr`
    from the previous tier" applies when `step_qty` is set (the initial margin ratio rises by the same step, and the
    tier's maximum leverage is that of its initial margin ratio, 1 / imr, never above the last listed tier's);
    otherwise sizes beyond the last tier are refused. `effective` (UTC, ISO 8601) and `source` date and cite a
    published table; tables read from an operator's file carry neither. `fee`: the taker fee rate of closing that
    OKX's liquidation condition counts beside the maintenance margin (module docstring); the regular user's rate
    unless the run's `fees.perp_taker` says otherwise (`with_fee`). `partial`: the listed tiers are known to stop
    short of the exchange's own last tier (the copy read elides or cuts the later ones), so a size beyond them is
    unknown here, not refused by the exchange; a table without a step rule that is not partial ends where the
    exchange's does (OKX's full position-tiers answer)."""

    symbol: str
    tiers: tuple[Tier, ...]
    step_qty: Decimal | None = None
    step_mmr: Decimal | None = None
    effective: str | None = None
    source: str | None = None
    fee: Decimal = SWAP_TAKER
    partial: bool = False

    def with_fee(self, fee) -> TierTable:
        """This table with `fee` (a fraction of notional, e.g. 0.0005) as the closing taker fee of the liquidation
        condition."""
        f = Decimal(str(fee))
        if not (0 <= f < 1):
            raise ValueError(f"{self.symbol}: taker fee must be a fraction of notional in [0, 1), got {fee}")
        return self if f == self.fee else replace(self, fee=f)

    def tier_for(self, qty) -> Tier:
        q = Decimal(str(qty))
        if q <= 0:
            raise ValueError(f"{self.symbol}: position size must be > 0, got {qty}")
        for t in self.tiers:
            if q <= t.max_qty:
                return t
        last = self.tiers[-1]
        if self.step_qty is None:
            raise ValueError(f"{self.symbol}: position of {q} exceeds the last tier ({last.max_qty})")
        n = ((q - last.max_qty) / self.step_qty).to_integral_value(ROUND_CEILING)  # whole steps beyond the last tier
        return self._step_tier(int(n))

    def _step_tier(self, n: int) -> Tier:
        """The n-th tier (n >= 1) beyond the last listed one, by OKX's step rule."""
        last = self.tiers[-1]
        imr = last.imr + n * self.step_mmr
        return Tier(last.tier + n, last.max_qty + (n - 1) * self.step_qty, last.max_qty + n * self.step_qty,
                    last.mmr + n * self.step_mmr, imr, min(last.max_leverage, 1 / imr))

    def mmr_for(self, qty) -> Decimal:
        return self.tier_for(qty).mmr

    def max_leverage_for(self, qty) -> Decimal:
        return self.tier_for(qty).max_leverage

    def check_leverage(self, leverage, qty) -> Tier:
        """The tier of a position of `qty` (base units) at `leverage`; ValueError naming the symbol, size, tier and
        its maximum when OKX would refuse that leverage for that size."""
        lev = Decimal(str(leverage))
        if not lev > 0:
            raise ValueError(f"{self.symbol}: leverage must be > 0, got {leverage}")
        t = self.tier_for(qty)
        if lev > t.max_leverage:
            largest = self.max_qty_at_leverage(lev)
            base = self.symbol.removesuffix("USDT")
            fits = (f"at {lev:f}x the position can be at most {largest:f} {base}" if largest is not None
                    else f"no size allows {lev:f}x")
            raise ValueError(f"{self.symbol}: leverage {lev:f}x exceeds OKX's maximum {t.max_leverage:f}x for a "
                             f"position of {Decimal(str(qty)):f} {base} (tier {t.tier}, {t.min_qty:f} < size <= "
                             f"{t.max_qty:f}); {fits}: lower the leverage or the size")
        return t

    def max_qty_at_leverage(self, leverage) -> Decimal | None:
        """The largest position (base units) OKX allows at `leverage`: the upper bound of the last tier whose maximum
        leverage is at least `leverage` (maximum leverage never rises with the tier). None when even tier 1 refuses
        it; the last listed bound when the table has no step rule and every listed tier allows it."""
        lev = Decimal(str(leverage))
        if not lev > 0:
            raise ValueError(f"{self.symbol}: leverage must be > 0, got {leverage}")
        allowed = [t for t in self.tiers if t.max_leverage >= lev]
        if not allowed:
            return None
        if allowed[-1] is not self.tiers[-1] or self.step_qty is None:
            return allowed[-1].max_qty
        # beyond the last listed tier the maximum leverage is 1 / imr_n with imr_n = imr_last + n x step_mmr:
        # lev <= 1 / imr_n  <=>  n <= (1/lev - imr_last) / step_mmr
        last = self.tiers[-1]
        n = max(int(((1 / lev - last.imr) / self.step_mmr).to_integral_value(ROUND_FLOOR)), 0)
        return last.max_qty + n * self.step_qty

    # The tier-table interface of the margin math (`basisbot.core.brackets.BracketTable` has the same methods), so the
    # guard, the backtest's perp venue and the reports read OKX's tables by size like Binance's by notional.
    def maintenance_at(self, qty: float, price: float) -> float:
        """What the position must keep at `price` not to be liquidated: (mmr of its size + the taker fee of closing,
        `fee`) × qty × price (OKX's margin ratio, module docstring); the inverse of `table_liquidation_price`."""
        return float(self.mmr_for(qty) + self.fee) * qty * price

    @property
    def base_mmr(self) -> float:
        """The first tier's maintenance margin rate."""
        return float(self.tiers[0].mmr)

    def leverage_limit(self, notional: float, price: float | None = None) -> int | float:
        """Largest leverage for a position of `notional` USDT at `price` (the tier is by size: notional / price);
        without a price, the first tier's (the loosest bound: a larger position can only fall in a later tier)."""
        lev = (self.tiers[0].max_leverage if price is None or not price > 0
               else self.max_leverage_for(Decimal(str(notional)) / Decimal(str(price))))
        return int(lev) if lev == lev.to_integral_value() else float(lev)


def table_rows(table: TierTable) -> list[dict]:
    """A table as plain rows (sizes in base units, decimal strings) for a strategy config; `table_from_rows` reverses
    it. The last row may carry `stepQty` / `stepMmr` (OKX's rule beyond the last listed tier), the first the table's
    `effective` date and `source`, and its closing taker fee `takerFee` when it is not the regular user's."""
    rows = [{"tier": t.tier, "minQty": str(t.min_qty), "maxQty": str(t.max_qty), "mmr": str(t.mmr), "imr": str(t.imr),
             "maxLever": str(t.max_leverage)} for t in table.tiers]
    if table.step_qty is not None:
        rows[-1] = {**rows[-1], "stepQty": str(table.step_qty), "stepMmr": str(table.step_mmr)}
    if table.effective is not None or table.source is not None:  # a published table's date and citation
        rows[0] = {**rows[0], "effective": table.effective, "source": table.source}
    if table.fee != SWAP_TAKER:
        rows[0] = {**rows[0], "takerFee": str(table.fee)}
    if table.partial:
        rows[0] = {**rows[0], "partial": True}
    return rows


def table_from_rows(symbol: str, rows: list[dict], source: str = "strategy config") -> TierTable:
    """The TierTable of `table_rows`; Binance bracket rows are an OkxDataError saying what to supply."""
    if not rows:
        raise OkxDataError(f"{source}: {symbol}: no OKX position tiers; {_HINT}")
    if any("maintMarginRatio" in r or "notionalCap" in r for r in rows):
        raise OkxDataError(f"{source}: {symbol}: these are Binance leverage brackets, not OKX position tiers; {_HINT}")
    tiers = tuple(Tier(int(r["tier"]), Decimal(r["minQty"]), Decimal(r["maxQty"]), Decimal(r["mmr"]),
                       Decimal(r["imr"]), Decimal(r["maxLever"])) for r in rows)
    last = rows[-1]
    step_qty = Decimal(last["stepQty"]) if "stepQty" in last else None
    step_mmr = Decimal(last["stepMmr"]) if "stepMmr" in last else None
    fee = Decimal(rows[0]["takerFee"]) if "takerFee" in rows[0] else SWAP_TAKER
    return TierTable(symbol, tiers, step_qty, step_mmr, rows[0].get("effective"), rows[0].get("source"), fee,
                     bool(rows[0].get("partial", False)))


def _table(symbol: str, rows: list[tuple[int, int, str, str, str]], step: tuple[int, str] | None, effective: str,
           source: str, partial: bool = False) -> TierTable:
    """A published table: rows (tier, max size in contracts, mmr, imr, max leverage) as OKX printed them, converted
    to base units with the bundled contract value; `partial` when the copy read stops before OKX's last tier."""
    ct_val = _BUNDLED_SPECS[symbol].ct_val
    tiers, lo = [], Decimal(0)
    for tier, max_sz, mmr, imr, lev in rows:
        hi = Decimal(max_sz) * ct_val
        tiers.append(Tier(tier, lo, hi, Decimal(mmr), Decimal(imr), Decimal(lev)))
        lo = hi
    return TierTable(symbol, tuple(tiers), None if step is None else Decimal(step[0]) * ct_val,
                     None if step is None else Decimal(step[1]), effective, source, partial=partial)


PUBLISHED: dict[str, tuple[TierTable, ...]] = {
    "SOLUSDT": (_table("SOLUSDT", [
        (1, 500, "0.01", "0.013", "75"),
        (2, 1000, "0.015", "0.02", "50"),
        (3, 4000, "0.02", "0.05", "20"),
        (4, 8000, "0.025", "0.055", "18.18"),
    ], (4000, "0.005"), "2022-11-08T06:30:00Z",
        "OKX, 'OKX adjustment of SOL, GMT, SRM Position Tiers and Discount Rate', 2022-11-08"),),
    "ETHUSDT": (_table("ETHUSDT", [
        (1, 3000, "0.004", "0.008", "125"),
        (2, 6000, "0.005", "0.01", "100"),
        (3, 12000, "0.01", "0.015", "66.66"),
    ], (12000, "0.005"), "2021-06-11T09:00:00Z",
        "OKEx, 'OKEx position tiers to be adjusted' (9:00 am UTC on Jun. 11), "
        "https://support.okexcn.com/hc/en-us/articles/4402607424781-OKEx-position-tiers-to-be-adjusted"),),
    "AVAXUSDT": (_table("AVAXUSDT", [
        (1, 375, "0.01", "0.013", "75"),
        (2, 750, "0.015", "0.02", "50"),
        (3, 1500, "0.02", "0.05", "20"),
    ], None, "2021-03-04T10:00:00Z",
        "OKEx, 'OKEx position tiers to be adjusted' (10:00 am UTC on Mar. 4), "
        "https://www.okex.com/support/hc/en-us/articles/360057232692-OKEx-position-tiers-to-be-adjusted-",
        partial=True),),
    "BTCUSDT": (_table("BTCUSDT", [
        (1, 500, "0.004", "0.008", "125"),
    ], None, "2022-02-11T23:45:19Z",
        "OKX position-tiers answer for BTC-USDT swaps recorded 2022-02-11 23:45 UTC by ccxt's "
        "okx.fetchLeverageTiers('BTC/USDT:USDT'), https://github.com/ccxt/ccxt/pull/11938 (tiers 2-99 elided)",
        partial=True),),
}

# The table a backtest of the bundled data (2022-03-01..2023-12-31) uses: tables found that took effect inside that
# window, and BTCUSDT's record from just before it, the only BTC-USDT swap table found (module docstring).
BUNDLED_WINDOW_START = "2022-03-01T00:00:00Z"
BUNDLED_RECORDED_BEFORE_WINDOW = frozenset({"BTCUSDT"})
BUNDLED: dict[str, TierTable] = {
    sym: tables[-1] for sym, tables in PUBLISHED.items()
    if tables[-1].effective >= BUNDLED_WINDOW_START or sym in BUNDLED_RECORDED_BEFORE_WINDOW
}


def liquidation_price(side: int, qty, entry, margin, mmr, fee=SWAP_TAKER):
    """OKX isolated liquidation price of a USDT-margined linear swap (module docstring). `qty` in base units > 0,
    `side` +1 long / -1 short. Decimal in, Decimal out (exact); floats work too. Returns 0 for a long whose margin
    covers the whole position (it cannot be liquidated above a price of 0)."""
    if side not in (1, -1):
        raise ValueError(f"side must be +1 (long) or -1 (short), got {side!r}")
    if not qty > 0 or not entry > 0:
        raise ValueError(f"qty and entry must be > 0, got qty={qty}, entry={entry}")
    one = type(qty)(1)
    price = (side * qty * entry - margin) / (qty * (side - (mmr + fee)))
    return max(price, 0 * one)


def table_liquidation_price(side: int, qty, entry, margin, table: TierTable, fee=None):
    """`liquidation_price` with the mmr of the position's tier (by size: no re-check with the price needed) and the
    table's closing taker fee (`TierTable.fee`) unless `fee` is given."""
    mmr = table.mmr_for(qty)
    if fee is None:
        fee = table.fee
    if isinstance(qty, float):
        return liquidation_price(side, qty, float(entry), float(margin), float(mmr), float(fee))
    return liquidation_price(side, Decimal(str(qty)), Decimal(str(entry)), Decimal(str(margin)), mmr, Decimal(str(fee)))


# ---------------------------------------------------------------------------------------------------------------------
# The operator's tier file


_HINT = ("supply OKX's position tiers (curl -s 'https://www.okx.com/api/v5/public/position-tiers?instType=SWAP&"
         "tdMode=isolated&instFamily=BTC-USDT' > okx_tiers.json) or ccxt's tiers "
         "(json.dump(ccxt.okx().fetch_market_leverage_tiers('BTC/USDT:USDT'), f), or a dict of them by symbol)")


def _okx_rows_to_tables(rows: list[tuple[str, dict]], specs: dict[str, ContractSpec], source: str):
    grouped: dict[str, list[tuple[str, dict]]] = {}
    for where, r in rows:
        if not isinstance(r, dict):
            raise OkxDataError(f"{source}: {where}: must be an object (got {r!r})")
        if "bracket" in r or "notionalCap" in r or "maintMarginRatio" in r:
            raise OkxDataError(f"{source}: {where}: this is a Binance leverage bracket, not an OKX position tier; {_HINT}")
        fam = r.get("instFamily") or r.get("uly") or (r.get("instId") or "").removesuffix("-SWAP")
        if not fam or "-" not in fam:
            raise OkxDataError(f"{source}: {where}: no instFamily (e.g. 'BTC-USDT'); {_HINT}")
        grouped.setdefault(fam, []).append((where, r))
    out: dict[str, TierTable] = {}
    for fam, items in grouped.items():
        base, quote = fam.split("-")[:2]
        if quote != "USDT":
            continue
        symbol = f"{base}USDT"
        if symbol not in specs:
            raise OkxDataError(f"{source}: {fam}: tiers are in contracts and {symbol} has no contract value in the "
                               "OKX snapshot; pass the instruments file with --markets as well")
        ct = specs[symbol].ct_val
        tiers = []
        for where, r in sorted(items, key=lambda x: int(_dec(x[1].get("tier"), source, x[0] + ".tier"))):
            missing = [k for k in ("tier", "minSz", "maxSz", "mmr", "imr", "maxLever") if r.get(k) in (None, "")]
            if missing:
                raise OkxDataError(f"{source}: {where} ({fam}): missing field(s) {missing}")
            tiers.append(Tier(int(_dec(r["tier"], source, where + ".tier")),
                              _dec(r["minSz"], source, where + ".minSz", positive=False) * ct,
                              _dec(r["maxSz"], source, where + ".maxSz") * ct,
                              _dec(r["mmr"], source, where + ".mmr"), _dec(r["imr"], source, where + ".imr"),
                              _dec(r["maxLever"], source, where + ".maxLever")))
        for a, b in zip(tiers, tiers[1:]):
            if b.mmr < a.mmr or b.max_qty <= a.max_qty:
                raise OkxDataError(f"{source}: {fam}: tier {b.tier} must have a larger maxSz and an mmr no smaller "
                                   f"than tier {a.tier}")
        out[symbol] = TierTable(symbol, tuple(tiers))
    return out


def parse_tiers(obj: object, source: str = "<memory>", markets_file: str | Path | None = None) -> dict[str, TierTable]:
    """OKX position tiers from OKX's position-tiers answer (`{"code": "0", "data": [...]}` or the bare list) or from
    ccxt's fetch_market_leverage_tiers JSON (a list of tiers of one symbol, or a dict symbol -> list, each tier's
    `info` holding OKX's row). Binance's leverageBracket (or ccxt tiers taken from Binance) raises OkxDataError
    saying what to supply."""
    specs = contract_specs(markets_file)
    rows: list[tuple[str, object]]
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        if str(obj.get("code", "0")) != "0":
            raise OkxDataError(f"{source}: OKX answered an error (code {obj.get('code')!r}); {_HINT}")
        rows = [(f"data[{i}]", r) for i, r in enumerate(obj["data"])]
    elif isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
        rows = []
        for k, tiers in obj.items():
            for i, t in enumerate(tiers):
                rows.append((f"{k!r}[{i}].info", t.get("info") if isinstance(t, dict) else t))
    elif isinstance(obj, list) and obj and isinstance(obj[0], dict) and "brackets" in obj[0]:
        raise OkxDataError(f"{source}: this is Binance's GET /fapi/v1/leverageBracket answer, not OKX position "
                           f"tiers; {_HINT}")
    elif isinstance(obj, list):
        rows = [(f"[{i}]" + (".info" if isinstance(r, dict) and "info" in r else ""),
                 r.get("info") if isinstance(r, dict) and "info" in r else r) for i, r in enumerate(obj)]
    else:
        raise OkxDataError(f"{source}: not OKX position tiers (got {type(obj).__name__}); {_HINT}")
    out = _okx_rows_to_tables(rows, specs, source)
    if not out:
        raise OkxDataError(f"{source}: no USDT-margined swap tiers in the file; {_HINT}")
    return out


def load_tiers(path: str | Path, markets_file: str | Path | None = None) -> dict[str, TierTable]:
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise OkxDataError(f"{p}: cannot read the OKX tier file: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise OkxDataError(f"{p}: invalid JSON: {e}") from None
    return parse_tiers(obj, str(p), markets_file)


def tier_tables(user_file: str | Path | None = None, markets_file: str | Path | None = None) -> dict[str, TierTable]:
    """Bundled tables, overlaid by the operator's file (it wins for the symbols it lists)."""
    if user_file is None:
        return dict(BUNDLED)
    return {**BUNDLED, **load_tiers(user_file, markets_file)}


def missing_tiers_message(symbol: str, user_file: str | Path | None = None) -> str:
    where = f"the bundled OKX tables ({', '.join(sorted(BUNDLED))})"
    if user_file is not None:
        where += f" nor in {user_file}"
    older = ""
    if symbol in PUBLISHED and symbol not in BUNDLED:
        older = (f" (the latest table found for it took effect on {PUBLISHED[symbol][-1].effective[:10]}, before the "
                 "bundled data, and OKX adjusted tiers since)")
    return (f"symbol {symbol}: no OKX position tiers in {where}{older}; {_HINT} and pass it with "
            "--brackets okx_tiers.json")
