"""Spot and USDⓈ-M futures accounts: balances, wallets, positions, funding, liquidation bookkeeping.

Money model of the futures account (USDT only, one-way mode), the same conventions as the backtest's
``perp_venue`` so the two agree:

* ``cross_wallet`` is the wallet not committed to isolated positions; Binance's ``walletBalance`` is
  ``cross_wallet + sum(isolated wallets)``.
* an ISOLATED position's wallet follows it by the rules the backtest's perp venue uses too
  (``basisbot.core.isolated``): opening / increasing moves initial margin from the cross wallet into it, reducing
  returns the closed share, closing returns all of it.
* realized PnL and commissions go to the cross wallet; funding of an isolated position goes to its isolated wallet
  (Binance credits it there), of a cross position to the cross wallet.
* an isolated position is liquidated when the mark crosses the liquidation price of the exchange the venue serves
  (``Market.liquidation_price``: Binance's ``basisbot.core.margin.liquidation_price``, OKX's with the taker fee of
  closing, as the backtests' venue profiles state them); the whole isolated wallet is lost (realized PnL at the liquidation price + the rest to the insurance fund).
* cross positions are liquidated when ``basisbot.core.margin.cross_margin_ratio`` reaches 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from basisbot.core import isolated as iso_wallet
from basisbot.core import margin
from basisbot.core.carry import funding_payment
from basisbot.sim.engine.markets import Market, f8

EPS = 1e-12


def _clean(x: float, nd: int = 10) -> float:
    x = round(x, nd)
    return 0.0 if abs(x) < EPS else x


# -- spot -----------------------------------------------------------------------------------------------------------

class SpotAccount:
    def __init__(self, balances: dict[str, float]):
        self.balances: dict[str, list[float]] = {a: [float(v), 0.0] for a, v in balances.items()}
        self.update_time = 0

    def _row(self, asset: str) -> list[float]:
        return self.balances.setdefault(asset, [0.0, 0.0])

    def free(self, asset: str) -> float:
        return self._row(asset)[0]

    def locked(self, asset: str) -> float:
        return self._row(asset)[1]

    def credit(self, asset: str, amount: float) -> None:
        r = self._row(asset)
        r[0] = _clean(r[0] + amount)

    def debit(self, asset: str, amount: float) -> None:
        r = self._row(asset)
        r[0] = _clean(r[0] - amount)

    def lock(self, asset: str, amount: float) -> None:
        r = self._row(asset)
        r[0] = _clean(r[0] - amount)
        r[1] = _clean(r[1] + amount)

    def unlock(self, asset: str, amount: float) -> None:
        r = self._row(asset)
        amount = min(amount, r[1])
        r[1] = _clean(r[1] - amount)
        r[0] = _clean(r[0] + amount)

    def spend_locked(self, asset: str, amount: float) -> None:
        r = self._row(asset)
        r[1] = _clean(r[1] - amount)

    def balances_json(self) -> list[dict]:
        return [{"asset": a, "free": f8(v[0]), "locked": f8(v[1])} for a, v in sorted(self.balances.items())]

    def position_event(self, assets: list[str], event_time: int) -> dict:
        """outboundAccountPosition for the assets that changed."""
        return {"e": "outboundAccountPosition", "E": event_time, "u": event_time,
                "B": [{"a": a, "f": f8(self.free(a)), "l": f8(self.locked(a))} for a in assets]}


# -- futures --------------------------------------------------------------------------------------------------------

@dataclass
class Position:
    symbol: str
    qty: float = 0.0          # signed, negative = short
    entry: float = 0.0
    iso_wallet: float = 0.0   # isolated margin wallet (isolated mode only)
    update_time: int = 0

    @property
    def side(self) -> int:
        return 0 if self.qty == 0 else (1 if self.qty > 0 else -1)


class FuturesAccount:
    def __init__(self, usdt: float, markets: dict[str, Market], leverage: int, margin_type: str):
        self.cross_wallet = float(usdt)
        self.markets = markets
        self.positions = {s: Position(s) for s in markets}
        self.leverage = {s: int(leverage) for s in markets}
        self.margin_type = {s: margin_type for s in markets}   # "ISOLATED" | "CROSSED"
        self.income: list[dict] = []
        self._tran = 9_000_000_000
        self.update_time = 0

    # -- reading ---------------------------------------------------------------------------------------------------
    def isolated(self, symbol: str) -> bool:
        return self.margin_type[symbol] == "ISOLATED"

    def wallet_balance(self) -> float:
        return self.cross_wallet + sum(p.iso_wallet for p in self.positions.values())

    def upnl(self, symbol: str, mark: float) -> float:
        p = self.positions[symbol]
        return 0.0 if p.qty == 0 else p.qty * (mark - p.entry)

    def position_im(self, symbol: str, mark: float) -> float:
        p = self.positions[symbol]
        return abs(p.qty) * mark / self.leverage[symbol]

    def maint_margin(self, symbol: str, mark: float) -> float:
        p = self.positions[symbol]
        if p.qty == 0:
            return 0.0
        return self.markets[symbol].table.maintenance_margin(abs(p.qty) * mark)

    def cross_upnl(self, marks: dict[str, float]) -> float:
        return sum(self.upnl(s, marks[s]) for s, p in self.positions.items() if p.qty and not self.isolated(s))

    def cross_im(self, marks: dict[str, float]) -> float:
        return sum(self.position_im(s, marks[s]) for s, p in self.positions.items() if p.qty and not self.isolated(s))

    def available(self, marks: dict[str, float], open_order_im: float) -> float:
        return self.cross_wallet + self.cross_upnl(marks) - self.cross_im(marks) - open_order_im

    def max_withdraw(self, marks: dict[str, float], open_order_im: float) -> float:
        avail = self.available(marks, open_order_im)
        return max(0.0, min(avail, self.cross_wallet - self.cross_im(marks) - open_order_im))

    def cross_positions(self, marks: dict[str, float]) -> list[tuple[str, margin.CrossPosition]]:
        out = []
        for s, p in self.positions.items():
            if p.qty and not self.isolated(s):
                out.append((s, margin.CrossPosition(p.side, abs(p.qty), p.entry, marks[s], self.markets[s].table)))
        return out

    def liquidation_price(self, symbol: str, marks: dict[str, float]) -> float:
        p = self.positions[symbol]
        if p.qty == 0:
            return 0.0
        if self.isolated(symbol):
            return self.markets[symbol].liquidation_price(p.side, abs(p.qty), p.entry, p.iso_wallet)
        cps = self.cross_positions(marks)
        me = next(cp for s, cp in cps if s == symbol)
        others = [cp for s, cp in cps if s != symbol]
        return margin.cross_liquidation_price(self.cross_wallet, me, others)

    def max_notional(self, symbol: str, leverage: int) -> float:
        caps = [b.notional_cap for b in self.markets[symbol].table.brackets if b.initial_leverage >= leverage]
        return max(caps) if caps else 0.0

    # -- income ----------------------------------------------------------------------------------------------------
    def next_tran(self) -> int:
        self._tran += 1
        return self._tran

    def add_income(self, symbol: str, kind: str, amount: float, t: int, trade_id: int | str = "",
                   info: str | None = None) -> dict:
        row = {"symbol": symbol, "incomeType": kind, "income": f8(amount), "asset": "USDT",
               "info": info if info is not None else kind, "time": t, "tranId": self.next_tran(),
               "tradeId": str(trade_id) if trade_id != "" else ""}
        self.income.append(row)
        return row

    # -- changes ---------------------------------------------------------------------------------------------------
    def apply_fill(self, symbol: str, signed_qty: float, price: float, fee: float, t: int) -> float:
        """Book a fill into the position; returns the realized PnL (commission excluded)."""
        p = self.positions[symbol]
        before = (p.side, abs(p.qty), p.entry)
        realized = 0.0
        dq = signed_qty
        if p.qty == 0 or (p.qty > 0) == (dq > 0):
            new_qty = p.qty + dq
            p.entry = (abs(p.qty) * p.entry + abs(dq) * price) / abs(new_qty)
            p.qty = _clean(new_qty)
        else:
            close = min(abs(dq), abs(p.qty))
            realized = close * (price - p.entry) * p.side
            self.cross_wallet += realized
            p.qty = _clean(p.qty + math.copysign(close, dq))
            rest = abs(dq) - close
            if p.qty == 0:
                p.entry = 0.0
            if rest > EPS:  # flipped
                p.qty = _clean(math.copysign(rest, dq))
                p.entry = price
        if self.isolated(symbol):
            move = iso_wallet.follow_position(p.iso_wallet, before, (p.side, abs(p.qty), p.entry),
                                              self.leverage[symbol])
            p.iso_wallet = move.wallet
            self.cross_wallet -= move.moved
        self.cross_wallet -= fee
        self.cross_wallet = _clean(self.cross_wallet)
        p.iso_wallet = _clean(p.iso_wallet)
        p.update_time = t
        self.update_time = t
        if realized:
            self.add_income(symbol, "REALIZED_PNL", realized, t)
        if fee:
            self.add_income(symbol, "COMMISSION", -fee, t)
        return realized

    def settle_funding(self, symbol: str, mark: float, rate: float, t: int) -> float | None:
        p = self.positions[symbol]
        if p.qty == 0:
            return None
        pay = funding_payment(p.qty, mark, rate)
        if self.isolated(symbol):
            p.iso_wallet = _clean(iso_wallet.credit(p.iso_wallet, pay))
        else:
            self.cross_wallet = _clean(self.cross_wallet + pay)
        p.update_time = t
        self.update_time = t
        self.add_income(symbol, "FUNDING_FEE", pay, t)
        return pay

    def liquidate_isolated(self, symbol: str, price: float, t: int) -> tuple[float, float, float]:
        """Close the isolated position at ``price``; the isolated wallet is lost.
        Returns (qty closed (signed, of the closing trade), realized PnL, insurance clearance)."""
        p = self.positions[symbol]
        qty = -p.qty
        realized = p.qty * (price - p.entry)
        lost = p.iso_wallet
        insurance = -(lost + realized)     # what is left of the wallet after the loss goes to the insurance fund
        self.add_income(symbol, "REALIZED_PNL", realized, t)
        if abs(insurance) > EPS:
            self.add_income(symbol, "INSURANCE_CLEAR", insurance, t)
        p.qty, p.entry, p.iso_wallet, p.update_time = 0.0, 0.0, 0.0, t
        self.update_time = t
        return qty, realized, insurance

    def liquidate_cross(self, symbol: str, price: float, t: int) -> tuple[float, float]:
        p = self.positions[symbol]
        qty = -p.qty
        realized = p.qty * (price - p.entry)
        self.cross_wallet = _clean(self.cross_wallet + realized)
        self.add_income(symbol, "REALIZED_PNL", realized, t)
        p.qty, p.entry, p.update_time = 0.0, 0.0, t
        self.update_time = t
        return qty, realized

    # -- JSON ------------------------------------------------------------------------------------------------------
    def position_update_json(self, symbol: str, mark: float) -> dict:
        p = self.positions[symbol]
        m = self.markets[symbol]
        return {"s": symbol, "pa": m.fmt_perp_qty(p.qty), "ep": f8(p.entry), "bep": f8(p.entry), "cr": "0",
                "up": f8(self.upnl(symbol, mark)), "mt": "isolated" if self.isolated(symbol) else "cross",
                "iw": f8(p.iso_wallet), "ps": "BOTH"}

    def account_update(self, reason: str, symbols: list[str], marks: dict[str, float], t: int,
                       balance_change: float = 0.0, with_balance: bool = True) -> dict:
        a: dict = {"m": reason, "B": [], "P": [self.position_update_json(s, marks[s]) for s in symbols]}
        if with_balance:
            a["B"].append({"a": "USDT", "wb": f8(self.wallet_balance()), "cw": f8(self.cross_wallet),
                           "bc": f8(balance_change)})
        return {"e": "ACCOUNT_UPDATE", "E": t, "T": t, "a": a}
