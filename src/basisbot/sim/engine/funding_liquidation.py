"""The local venue's funding and liquidations: each settlement of the data at its exact time on the path's mark; an
isolated position liquidated when the mark crosses its liquidation price, cross positions when the margin ratio
reaches 1; auto-deleveraging and insurance-fund closes on demand (the `adl` fault); each position's ADL quantile.

What the user stream shows, as Binance pushes it (the nautilus_trader Binance adapter's fixtures
``order_update_calculated.json``, ``order_update_adl.json``, ``order_update_insurance.json`` carry the same shapes):

* liquidation: ORDER_TRADE_UPDATE ``c="autoclose-<ms>"``, ``o="LIQUIDATION"``, ``x="CALCULATED"``, ``X="FILLED"``,
  then ACCOUNT_UPDATE ``m="ORDER"`` with the position (and ``m="INSURANCE_CLEAR"`` with what the insurance fund took);
* auto-deleveraging: ``c="adl_autoclose"``, ``x="CALCULATED"``, ``X="NEW_ADL"``, then ACCOUNT_UPDATE ``m="ORDER"``;
* insurance-fund close: ``c="autoclose-<ms>"``, ``x="CALCULATED"``, ``X="NEW_INSURANCE"``, then ``m="ORDER"``.

REST (``/fapi/v1/order``, ``allOrders``) shows each of them FILLED with its trade in ``userTrades``; Binance charges no
commission on them.
"""

from __future__ import annotations

from decimal import Decimal

from basisbot.sim.engine.markets import Market, round_step_down
from basisbot.sim.engine.order_matching import FUT
from basisbot.sim.engine.orders import Order, Trade, order_trade_update


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
        if insurance:
            self.emit(FUT, self.fut.account_update("INSURANCE_CLEAR", [], self.marks(t), t, insurance))
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

    def _book_liquidation_order(self, sym: str, qty: float, price: float, realized: float, t: int,
                                cid: str | None = None, stream_status: str = "FILLED") -> None:
        """The exchange's own closing order (signed `qty` of the closing trade) booked FILLED with its trade, pushed
        with execution type CALCULATED and `stream_status` (FILLED, NEW_ADL or NEW_INSURANCE)."""
        m = self.markets[sym]
        side = "BUY" if qty > 0 else "SELL"
        o = Order(FUT, next(self._order_ids[FUT]), cid or f"autoclose-{t}", sym, side, "LIQUIDATION", "IOC",
                  abs(qty), price, t, t, status="FILLED", executed_qty=abs(qty), cum_quote=abs(qty) * price,
                  reduce_only=True, orig_type="LIQUIDATION")
        tr = Trade(FUT, next(self._trade_ids[FUT]), o.order_id, sym, side, price, abs(qty), abs(qty) * price, 0.0,
                   "USDT", t, False, realized)
        o.trades.append(tr)
        self.orders[FUT][o.order_id] = o
        self.trades[FUT].append(tr)
        self.emit(FUT, order_trade_update(o, m, "CALCULATED", t, tr, status=stream_status))

    # ------------------------------------------------------------------------------------------------------------
    # auto-deleveraging, insurance-fund closes, ADL quantile
    # ------------------------------------------------------------------------------------------------------------
    def bankruptcy_price(self, sym: str) -> float:
        """The price at which the position's margin is exhausted: isolated, entry -/+ isolated wallet per unit
        (long/short); cross, the position's liquidation price on the shared wallet (the venue keeps no separate
        bankruptcy figure for cross)."""
        pos = self.fut.positions[sym]
        if not pos.qty:
            return 0.0
        if self.fut.isolated(sym):
            return max(0.0, pos.entry - pos.side * pos.iso_wallet / abs(pos.qty))
        return self.fut.liquidation_price(sym, self.marks())

    def deleverage(self, sym: str, fraction: float, price: str | float = "mark", via: str = "adl") -> dict:
        """Close `fraction` (0..1] of `sym`'s futures position on the venue's own initiative, now: `via` "adl"
        (auto-deleveraging: the position is taken by a liquidated counterparty's order) or "insurance" (the
        insurance fund takes it). Price: "mark", "bankruptcy" (this position's own) or a number; Binance fills an
        ADL at the liquidated counterparty's bankruptcy price, which a replay does not have: the mark stands in for
        it. The quantity is rounded down to the lot step (fraction 1: the whole position). Returns the record."""
        if sym not in self.markets:
            raise ValueError(f"adl: unknown symbol {sym!r}")
        pos = self.fut.positions[sym]
        if not pos.qty:
            raise ValueError(f"adl: {sym} holds no futures position")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"adl: fraction must be in (0, 1], got {fraction}")
        t = self.t
        if price == "mark":
            px = self.mark(sym, t)
        elif price == "bankruptcy":
            px = self.bankruptcy_price(sym)
        else:
            px = float(price)
            if px <= 0:
                raise ValueError(f"adl: price must be positive, got {price!r}")
        m = self.markets[sym]
        px = float(m.fmt_perp_price(px))
        held = abs(pos.qty)
        step = Decimal(str(m.perp.step_size))
        qty = held if fraction >= 1.0 else float(round_step_down(held * fraction, step))
        if qty <= 0:
            raise ValueError(f"adl: {fraction} of {sym}'s position {pos.qty} is less than one lot ({step})")
        signed = qty if pos.qty < 0 else -qty
        before, entry = pos.qty, pos.entry
        realized = self.fut.apply_fill(sym, signed, px, 0.0, t)
        cid, status = ("adl_autoclose", "NEW_ADL") if via == "adl" else (f"autoclose-{t}", "NEW_INSURANCE")
        self._book_liquidation_order(sym, signed, px, realized, t, cid=cid, stream_status=status)
        rec = {"symbol": sym, "time": t, "price": px, "positionAmt": before, "closedQty": abs(signed),
               "entryPrice": entry, "realizedPnl": realized, "kind": via,
               "marginType": "isolated" if self.fut.isolated(sym) else "cross"}
        self.liquidations.append(rec)
        self.emit(FUT, self.fut.account_update("ORDER", [sym], self.marks(t), t, 0.0))
        return rec

    def adl_quantile(self, sym: str) -> int:
        """The position's place in the ADL queue, 0 (none) .. 4 (first to be deleveraged), as Binance's
        `adlQuantile` reports it. Binance ranks profitable positions by PnL ratio x effective leverage against every
        other trader's; a replay has no other traders, so this is a model: 0 without a position, 1 while not in
        profit, then 2 / 3 / 4 from the score 0.5 / 1 / 2 (an override set by the `adl_quantile` fault wins)."""
        forced = self.faults.adl_quantile.get(sym)
        if forced is not None:
            return forced
        pos = self.fut.positions[sym]
        if not pos.qty:
            return 0
        mark = self.mark(sym)
        upnl = self.fut.upnl(sym, mark)
        margin = pos.iso_wallet if self.fut.isolated(sym) else abs(pos.qty) * mark / self.fut.leverage[sym]
        equity = margin + upnl
        if upnl <= 0 or margin <= 0 or equity <= 0:
            return 1
        score = (upnl / margin) * (abs(pos.qty) * mark / equity)
        return 4 if score >= 2.0 else 3 if score >= 1.0 else 2 if score >= 0.5 else 1

    def _force_order_stream(self, sym: str, qty: float, price: float, t: int, m: Market) -> None:
        side = "BUY" if qty > 0 else "SELL"
        payload = {"e": "forceOrder", "E": t, "o": {
            "s": sym, "S": side, "o": "LIMIT", "f": "IOC", "q": m.fmt_perp_qty(abs(qty)),
            "p": m.fmt_perp_price(price), "ap": m.fmt_perp_price(price), "X": "FILLED",
            "l": m.fmt_perp_qty(abs(qty)), "z": m.fmt_perp_qty(abs(qty)), "T": t}}
        self.emit_public(f"{sym.lower()}@forceOrder", payload)
