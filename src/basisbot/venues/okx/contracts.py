"""OKX USDT-margined swaps trade in contracts: contract specs, exact contract <-> base conversion, and the parser of an
operator's markets file (OKX's `GET /api/v5/public/instruments?instType=SWAP` answer, or ccxt's `load_markets()` saved
as JSON).

A linear swap's contract is worth `ctVal` units of the base coin (`ctValCcy`); orders are sized in contracts on the
`lotSz` grid, at least `minSz` contracts; prices on the `tickSz` grid. basisbot states every quantity in base units
(contracts × ctVal), so positions and funding read the same on every venue.

The bundled snapshot (`BUNDLED`) holds the four bundled symbols as they traded in 2022-2023, the period of the bundled
data (backtests/data/SOURCES.md, "OKX contract specs"):
- ctVal: BTC 0.01, ETH 0.1, SOL 1, AVAX 1 (OKX's product page: "Contract Size 0.01BTC"; OKX's instruments answer as
  captured in ccxt's test data ts/src/test/static/markets/okx.json: BTC-USDT-SWAP ctVal 0.01, ETH-USDT-SWAP 0.1).
- lotSz = minSz = 1 contract: OKX sized USDT swaps in whole contracts then (the instruments example of OKX's v5 API
  documentation: BTC-USDT-SWAP lotSz 1, minSz 1); every hourly swap volume in the bundled data is a whole number of
  contracts. OKX later allowed fractions (ccxt's 2024 capture: lotSz 0.1); a user snapshot (`--markets`) brings those.
- tickSz: BTC 0.1, ETH 0.01, SOL 0.001, AVAX 0.001: the finest price step of every open/high/low/close and mark price in
  the bundled data (BTC and ETH match the instruments answer above).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from basisbot.venues.profile import VenueDataError


class OkxDataError(VenueDataError):
    """An OKX reference file (bundled or the operator's) is missing, malformed or for another venue; the message names
    it and what to supply."""


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """One USDT-margined OKX swap. Sizes in contracts as OKX states them; `*_base` properties in base units."""

    symbol: str  # carry symbol, BTCUSDT
    inst_id: str  # OKX instrument id, BTC-USDT-SWAP
    base: str
    quote: str
    ct_val: Decimal  # base units per contract
    lot_sz: Decimal  # contracts
    min_sz: Decimal  # contracts
    tick_sz: Decimal  # USDT

    @property
    def step_base(self) -> Decimal:
        """The lot in base units (lotSz × ctVal)."""
        return self.lot_sz * self.ct_val

    @property
    def min_base(self) -> Decimal:
        return self.min_sz * self.ct_val

    def to_base(self, contracts) -> Decimal:
        """Base quantity of a contract count (exact)."""
        return Decimal(str(contracts)) * self.ct_val

    def to_contracts(self, base_qty) -> Decimal:
        """Contract count of a base quantity; ValueError unless it is a whole number of lots (OKX rejects others)."""
        contracts = Decimal(str(base_qty)) / self.ct_val
        if contracts % self.lot_sz != 0:
            raise ValueError(f"{self.inst_id}: {base_qty} {self.base} is {contracts} contracts, not a multiple of the "
                             f"lot {self.lot_sz} contract(s) ({self.step_base} {self.base})")
        return contracts


def _spec(symbol: str, ct_val: str, tick: str) -> ContractSpec:
    base = symbol[:-4]
    return ContractSpec(symbol, f"{base}-USDT-SWAP", base, "USDT", Decimal(ct_val), Decimal(1), Decimal(1),
                        Decimal(tick))


BUNDLED: dict[str, ContractSpec] = {s.symbol: s for s in (
    _spec("BTCUSDT", "0.01", "0.1"),
    _spec("ETHUSDT", "0.1", "0.01"),
    _spec("SOLUSDT", "1", "0.001"),
    _spec("AVAXUSDT", "1", "0.001"),
)}


def inst_id(symbol: str) -> str:
    """OKX swap id of a carry symbol: BTCUSDT -> BTC-USDT-SWAP."""
    if not symbol.endswith("USDT") or len(symbol) <= 4:
        raise ValueError(f"symbol {symbol!r}: expected <BASE>USDT, e.g. BTCUSDT")
    return f"{symbol[:-4]}-USDT-SWAP"


def spot_id(symbol: str) -> str:
    """OKX spot id of a carry symbol: BTCUSDT -> BTC-USDT."""
    return inst_id(symbol)[: -len("-SWAP")]


def _dec(value, source: str, where: str, positive: bool = True) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise OkxDataError(f"{source}: {where}: must be a decimal number (got {value!r})") from None
    if not d.is_finite() or (d <= 0 if positive else d < 0):
        raise OkxDataError(f"{source}: {where}: must be a finite number {'> 0' if positive else '>= 0'} (got {value!r})")
    return d


def _from_instrument(row: dict, source: str, where: str) -> ContractSpec | None:
    """A ContractSpec from one row of OKX's instruments answer; None for rows that are not USDT-margined linear swaps."""
    if row.get("instType") != "SWAP" or row.get("settleCcy") != "USDT" or row.get("ctType") != "linear":
        return None
    iid = row.get("instId")
    missing = [k for k in ("instId", "ctVal", "ctValCcy", "lotSz", "minSz", "tickSz") if row.get(k) in (None, "")]
    if missing:
        raise OkxDataError(f"{source}: {where} ({iid!r}): missing field(s) {missing}")
    base = str(iid).split("-")[0]
    if row["ctValCcy"] != base:
        raise OkxDataError(f"{source}: {where} ({iid}): ctValCcy {row['ctValCcy']!r} is not the base coin {base!r}")
    at = f"{where} ({iid})"
    return ContractSpec(f"{base}USDT", iid, base, "USDT", _dec(row["ctVal"], source, at + ".ctVal"),
                        _dec(row["lotSz"], source, at + ".lotSz"), _dec(row["minSz"], source, at + ".minSz"),
                        _dec(row["tickSz"], source, at + ".tickSz"))


def parse_markets(obj: object, source: str = "<memory>") -> dict[str, ContractSpec]:
    """USDT-margined linear swaps of an OKX instruments answer (`{"code": "0", "data": [...]}` or the bare `data`
    list) or of ccxt's okx markets (`{"BTC/USDT:USDT": {..., "info": {instId, ctVal, ...}}}`) -> {carry symbol:
    ContractSpec}. Other instruments (spot, inverse, USDC) are skipped; a file of another venue (Binance's
    exchangeInfo, ccxt markets of another exchange) raises OkxDataError saying what to supply."""
    hint = ("supply OKX's instruments answer (curl -s 'https://www.okx.com/api/v5/public/instruments?instType=SWAP' "
            "> okx_instruments.json) or ccxt's markets (json.dump(ccxt.okx().load_markets(), f))")
    if isinstance(obj, dict) and isinstance(obj.get("symbols"), list):
        raise OkxDataError(f"{source}: this is Binance's exchangeInfo, not OKX contract specs; {hint}")
    rows: list[tuple[str, object]]
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        if str(obj.get("code", "0")) != "0":
            raise OkxDataError(f"{source}: OKX answered an error (code {obj.get('code')!r}: {obj.get('msg')!r}); {hint}")
        rows = [(f"data[{i}]", r) for i, r in enumerate(obj["data"])]
    elif isinstance(obj, list):
        rows = [(f"[{i}]", r) for i, r in enumerate(obj)]
    elif isinstance(obj, dict) and obj and all(isinstance(v, dict) and "info" in v for v in obj.values()):
        rows = [(f"{k!r}.info", v["info"]) for k, v in obj.items()]
        if not any(isinstance(r, dict) and "instId" in r for _, r in rows):
            raise OkxDataError(f"{source}: ccxt markets of another exchange (no OKX instId in any market's info); {hint}")
    else:
        raise OkxDataError(f"{source}: not OKX contract specs (expected an instruments answer with a 'data' list or "
                           f"ccxt markets keyed by symbol, got {type(obj).__name__}); {hint}")
    out: dict[str, ContractSpec] = {}
    for where, row in rows:
        if not isinstance(row, dict):
            raise OkxDataError(f"{source}: {where}: must be an object (got {row!r})")
        spec = _from_instrument(row, source, where)
        if spec is not None:
            out[spec.symbol] = spec
    if not out:
        raise OkxDataError(f"{source}: no USDT-margined linear swap (instType SWAP, settleCcy USDT) in the file; {hint}")
    return out


def load_markets(path: str | Path) -> dict[str, ContractSpec]:
    """`parse_markets` of a JSON file; unreadable or invalid JSON is an OkxDataError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise OkxDataError(f"{p}: cannot read the OKX markets file: {e.strerror or e}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise OkxDataError(f"{p}: invalid JSON: {e}") from None
    return parse_markets(obj, str(p))


def contract_specs(markets_file: str | Path | None = None) -> dict[str, ContractSpec]:
    """The bundled snapshot, overlaid by the operator's markets file (it wins for the symbols it lists)."""
    if markets_file is None:
        return dict(BUNDLED)
    return {**BUNDLED, **load_markets(markets_file)}


def spec_for(symbol: str, markets_file: str | Path | None = None) -> ContractSpec:
    """The contract spec of `symbol`; a symbol in neither the snapshot nor the file is an OkxDataError saying what to
    supply."""
    specs = contract_specs(markets_file)
    if symbol in specs:
        return specs[symbol]
    where = f"the bundled OKX snapshot ({', '.join(sorted(BUNDLED))})"
    if markets_file is not None:
        where += f" nor in {markets_file}"
    raise OkxDataError(f"symbol {symbol}: no OKX contract spec (contract value, lot, tick) in {where}. Save OKX's "
                       "instruments answer (curl -s 'https://www.okx.com/api/v5/public/instruments?instType=SWAP' > "
                       "okx_instruments.json) and pass it with --markets okx_instruments.json")
