"""The local venue's funding and liquidations: each settlement of the data at its exact time on the path's mark; an
isolated position liquidated when the mark crosses its liquidation price, cross positions when the margin ratio
reaches 1."""

from __future__ import annotations

from basisbot.sim.markets import Market
from basisbot.sim.orders import Order, Trade, order_trade_update
from basisbot.sim.venue_orders import FUT


class FundingAndLiquidation:
    """Funding settlements at the data's exact times, isolated and cross liquidations (the exchange's
    liquidation order, the forceOrder stream)."""

    # ------------------------------------------------------------------------------------------------------------
    # funding & liquidation
    # ------------------------------------------------------------------------------------------------------------
    def _settle_funding(self, sym: str, idx: int, ts: int) -> None:
        p = self.paths[sym]
        rate = float(p.fund_rate[idx])
        mark = p.mark(ts)
        pos = self.fut.positions[sym]
        qty = pos.qty
        pay = self.fut.settle_funding(sym, mark, rate, ts)
        if pay is None:
            return
        self.funding_log.append({"symbol": sym, "time": ts, "rate": rate, "markPrice": mark, "positionAmt": qty,
                                 "payment": pay})
        iso = self.fut.isolated(sym)
        self.emit(FUT, self.fut.account_update("FUNDING_FEE", [sym] if iso else [], self.marks(ts), ts, pay))

    def _liquidate_isolated(self, sym: str, lp: float, t: int) -> None:
        m = self.markets[sym]
        pos = self.fut.positions[sym]
        self._cancel_all(FUT, sym, t, reason="EXPIRED")
        entry, wallet = pos.entry, pos.iso_wallet
        qty, realized, insurance = self.fut.liquidate_isolated(sym, lp, t)
        self._book_liquidation_order(sym, qty, lp, realized, t)
        self.liquidations.append({"symbol": sym, "time": t, "price": lp, "positionAmt": -qty, "entryPrice": entry,
                                  "isolatedWalletLost": wallet, "realizedPnl": realized, "insuranceClear": insurance,
                                  "marginType": "isolated"})
        self.emit(FUT, self.fut.account_update("ORDER", [sym], self.marks(t), t, 0.0))
        self._force_order_stream(sym, qty, lp, t, m)

    def _check_cross(self, t: int) -> None:
        marks = self.marks(t)
        cps = self.fut.cross_positions(marks)
        if not cps:
            return
        from basisbot.core.margin import cross_margin_ratio

        if cross_margin_ratio(self.fut.cross_wallet, [cp for _, cp in cps]) < 1.0:
            return
        mm = sum(cp.maintenance_margin for _, cp in cps)
        syms = []
        for sym, cp in cps:
            self._cancel_all(FUT, sym, t, reason="EXPIRED")
            entry = self.fut.positions[sym].entry
            qty, realized = self.fut.liquidate_cross(sym, marks[sym], t)
            self._book_liquidation_order(sym, qty, marks[sym], realized, t)
            self.liquidations.append({"symbol": sym, "time": t, "price": marks[sym], "positionAmt": -qty,
                                      "entryPrice": entry, "realizedPnl": realized, "marginType": "cross"})
            syms.append(sym)
            self._force_order_stream(sym, qty, marks[sym], t, self.markets[sym])
        clear = -min(mm, max(self.fut.cross_wallet, 0.0))
        if clear:
            self.fut.cross_wallet += clear
            self.fut.add_income("", "INSURANCE_CLEAR", clear, t)
        self.emit(FUT, self.fut.account_update("ORDER", syms, marks, t, 0.0))

    def _book_liquidation_order(self, sym: str, qty: float, price: float, realized: float, t: int) -> None:
        m = self.markets[sym]
        side = "BUY" if qty > 0 else "SELL"
        o = Order(FUT, next(self._order_ids[FUT]), f"autoclose-{t}", sym, side, "LIQUIDATION", "IOC", abs(qty),
                  price, t, t, status="FILLED", executed_qty=abs(qty), cum_quote=abs(qty) * price,
                  reduce_only=True, orig_type="LIQUIDATION")
        tr = Trade(FUT, next(self._trade_ids[FUT]), o.order_id, sym, side, price, abs(qty), abs(qty) * price, 0.0,
                   "USDT", t, False, realized)
        o.trades.append(tr)
        self.orders[FUT][o.order_id] = o
        self.trades[FUT].append(tr)
        self.emit(FUT, order_trade_update(o, m, "TRADE", t, tr))

    def _force_order_stream(self, sym: str, qty: float, price: float, t: int, m: Market) -> None:
        side = "BUY" if qty > 0 else "SELL"
        payload = {"e": "forceOrder", "E": t, "o": {
            "s": sym, "S": side, "o": "LIMIT", "f": "IOC", "q": m.fmt_perp_qty(abs(qty)),
            "p": m.fmt_perp_price(price), "ap": m.fmt_perp_price(price), "X": "FILLED",
            "l": m.fmt_perp_qty(abs(qty)), "z": m.fmt_perp_qty(abs(qty)), "T": t}}
        self.emit_public(f"{sym.lower()}@forceOrder", payload)
