"""The local venue's account operations: leverage, margin type, isolated margin added or removed, transfers between
the spot and futures accounts, test deposits, and the state views (`all_orders`, `state`)."""

from __future__ import annotations

from basisbot.core import isolated as iso_wallet
from basisbot.sim.engine import errors
from basisbot.sim.engine.book import parse_decimal
from basisbot.sim.engine.errors import BinanceError
from basisbot.sim.engine.markets import f8
from basisbot.sim.engine.order_matching import FUT, SPOT


class AccountOperations:
    """Account settings and money movements (leverage, margin type, isolated margin, transfers, deposits) and the
    read-only views of all orders and the whole state."""

    def set_leverage(self, symbol: str | None, leverage: str | None) -> dict:
        self.sync()
        m = self.market(symbol)
        try:
            lev = int(leverage or "")
        except ValueError:
            raise errors.mandatory("leverage") from None
        max_lev = m.table.brackets[0].initial_leverage
        if lev < 1 or lev > max_lev:
            raise BinanceError(-4028, f"Leverage {lev} is not valid", 400)
        pos = self.fut.positions[m.symbol]
        if pos.qty and abs(pos.qty) * self.mark(m.symbol) > self.fut.max_notional(m.symbol, lev):
            raise errors.max_position_at_leverage()
        self.fut.leverage[m.symbol] = lev
        return {"leverage": lev, "maxNotionalValue": f"{self.fut.max_notional(m.symbol, lev):.0f}",
                "symbol": m.symbol}

    def set_margin_type(self, symbol: str | None, margin_type: str | None) -> dict:
        self.sync()
        m = self.market(symbol)
        mt = (margin_type or "").upper()
        if mt == "CROSS":
            mt = "CROSSED"
        if mt not in ("ISOLATED", "CROSSED"):
            raise errors.mandatory("marginType") if not mt else errors.bad_param("marginType")
        if self.fut.margin_type[m.symbol] == mt:
            raise errors.no_need_margin_type()
        if self.fut.positions[m.symbol].qty:
            raise errors.margin_type_with_position()
        if any(o.symbol == m.symbol for o in self.open_orders[FUT].values()):
            raise errors.margin_type_with_orders()
        self.fut.margin_type[m.symbol] = mt
        return {"code": 200, "msg": "success"}

    def position_margin(self, symbol: str | None, amount: str | None, kind: str | None) -> dict:
        t = self.sync()
        m = self.market(symbol)
        amt = float(parse_decimal(amount, "amount"))
        if kind not in ("1", "2"):
            raise errors.mandatory("type") if not kind else errors.bad_param("type")
        if amt <= 0:
            raise errors.amount_not_positive()
        sym = m.symbol
        pos = self.fut.positions[sym]
        if not self.fut.isolated(sym):
            raise errors.add_margin_not_isolated()
        if pos.qty == 0:
            raise errors.position_is_zero()
        if kind == "1":
            if amt > self.available() + 1e-9:
                raise errors.cross_balance_insufficient()
            self.fut.cross_wallet -= amt
            pos.iso_wallet = iso_wallet.credit(pos.iso_wallet, amt)
        else:
            mark = self.mark(sym)
            im = abs(pos.qty) * mark / self.fut.leverage[sym]
            removable = pos.iso_wallet + min(self.fut.upnl(sym, mark), 0.0) - im
            if amt > removable + 1e-9:
                raise errors.isolated_balance_insufficient()
            pos.iso_wallet = iso_wallet.credit(pos.iso_wallet, -amt)
            self.fut.cross_wallet += amt
        pos.update_time = t
        self.emit(FUT, self.fut.account_update("MARGIN_TRANSFER", [sym], self.marks(t), t, 0.0))
        return {"amount": amt, "code": 200, "msg": "Successfully modify position margin.", "type": int(kind)}

    # ------------------------------------------------------------------------------------------------------------
    # transfers
    # ------------------------------------------------------------------------------------------------------------
    def transfer(self, kind: str | None, asset: str | None, amount: str | None) -> dict:
        t = self.sync()
        if not kind:
            raise errors.mandatory("type")
        if not asset:
            raise errors.mandatory("asset")
        amt = float(parse_decimal(amount, "amount"))
        if amt <= 0:
            raise errors.BinanceError(-1013, "Amount must be positive.", 400)
        asset = asset.upper()
        kind = kind.upper()
        if kind not in ("MAIN_UMFUTURE", "UMFUTURE_MAIN"):
            raise errors.BinanceError(-1130, "Data sent for parameter 'type' is not valid.", 400)
        if asset != "USDT":
            raise errors.BinanceError(-5013, "Asset transfer failed: this venue's USDⓈ-M wallet holds USDT only", 400)
        if kind == "MAIN_UMFUTURE":
            if self.spot.free(asset) + 1e-9 < amt:
                raise errors.transfer_insufficient()
            self.spot.debit(asset, amt)
            self.fut.cross_wallet += amt
            reason, spot_delta = "DEPOSIT", -amt
        else:
            if self.fut.max_withdraw(self.marks(), self.open_order_im()) + 1e-9 < amt:
                raise errors.transfer_insufficient()
            self.fut.cross_wallet -= amt
            self.spot.credit(asset, amt)
            reason, spot_delta = "WITHDRAW", amt
        tran = next(self._tran_ids)
        self.fut.add_income("", "TRANSFER", -spot_delta, t, info="TRANSFER")
        row = {"tranId": tran, "type": kind, "asset": asset, "amount": f8(amt), "status": "CONFIRMED",
               "timestamp": t}
        self.transfers.append(row)
        self.emit(SPOT, {"e": "balanceUpdate", "E": t, "a": asset, "d": f8(spot_delta), "T": t})
        self.emit(SPOT, self.spot.position_event([asset], t))
        self.emit(FUT, self.fut.account_update(reason, [], self.marks(t), t, -spot_delta))
        return {"tranId": tran}

    def deposit(self, account: str, asset: str, amount: float) -> None:
        """Admin: create money (test set-up)."""
        t = self.sync()
        asset = asset.upper()
        if account == SPOT:
            self.spot.credit(asset, amount)
            self.emit(SPOT, {"e": "balanceUpdate", "E": t, "a": asset, "d": f8(amount), "T": t})
            self.emit(SPOT, self.spot.position_event([asset], t))
        elif account == FUT:
            if asset != "USDT":
                raise ValueError("the futures wallet holds USDT only")
            self.fut.cross_wallet += amount
            self.emit(FUT, self.fut.account_update("ADMIN_DEPOSIT", [], self.marks(t), t, amount))
        else:
            raise ValueError("account must be 'spot' or 'futures'")

    # ------------------------------------------------------------------------------------------------------------
    # state for admin
    # ------------------------------------------------------------------------------------------------------------
    def all_orders(self, since_ms: int = 0) -> dict:
        """Admin: every order the venue holds (open or not) per venue, updated at or after `since_ms`, with its fills."""
        out = {}
        for v in (SPOT, FUT):
            out[v] = [{"orderId": o.order_id, "clientOrderId": o.client_order_id, "symbol": o.symbol, "side": o.side,
                       "type": o.type, "origQty": o.orig_qty, "executedQty": o.executed_qty, "status": o.status,
                       "time": o.time, "updateTime": o.update_time, "reduceOnly": getattr(o, "reduce_only", False),
                       "trades": [{"id": tr.trade_id, "qty": tr.qty, "price": tr.price, "commission": tr.commission,
                                   "commissionAsset": tr.commission_asset, "time": tr.time}
                                  for tr in o.trades]}
                      for o in self.orders[v].values() if o.update_time >= since_ms]
        return out

    def state(self) -> dict:
        t = self.sync()
        marks = self.marks(t)
        positions = []
        for s, p in self.fut.positions.items():
            if p.qty:
                positions.append({"symbol": s, "positionAmt": p.qty, "entryPrice": p.entry,
                                  "isolatedWallet": p.iso_wallet, "marginType": self.fut.margin_type[s],
                                  "leverage": self.fut.leverage[s], "markPrice": marks[s],
                                  "liquidationPrice": self.fut.liquidation_price(s, marks),
                                  "unRealizedProfit": self.fut.upnl(s, marks[s])})
        prices = {}
        for s in self.markets:
            sq, pq = self.spot_quote(s, t), self.perp_quote(s, t)
            p = self.paths[s]
            prices[s] = {"spotBid": sq.bid, "spotAsk": sq.ask, "perpBid": pq.bid, "perpAsk": pq.ask,
                         "mark": marks[s], "index": p.index(t), "spotOpen": p.spot_is_open(t),
                         "predictedFundingRate": p.predicted_rate(t, self.cfg.predicted_rate),
                         "nextFundingTime": p.next_funding_time(t)}
        return {
            "time": t,
            "prices": prices,
            "spot": {a: {"free": v[0], "locked": v[1]} for a, v in self.spot.balances.items()},
            "futures": {"crossWallet": self.fut.cross_wallet, "walletBalance": self.fut.wallet_balance(),
                        "available": self.available(), "positions": positions,
                        "leverage": dict(self.fut.leverage), "marginType": dict(self.fut.margin_type)},
            "openOrders": {v: [{"orderId": o.order_id, "clientOrderId": o.client_order_id, "symbol": o.symbol,
                                "side": o.side, "type": o.type, "price": o.price, "origQty": o.orig_qty,
                                "executedQty": o.executed_qty, "status": o.status}
                               for o in self.open_orders[v].values()] for v in (SPOT, FUT)},
            "funding": self.funding_log[-50:],
            "liquidations": self.liquidations[-50:],
            "transfers": self.transfers[-50:],
        }
