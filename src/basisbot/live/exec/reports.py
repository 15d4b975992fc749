"""Live execution, reconciliation reports (`generate_order_status_reports`, `generate_fill_reports`,
`generate_position_status_reports`) from `fetch_orders` / `fetch_open_orders`, `fetch_my_trades` and
`fetch_positions` / spot balances, so a restarted node starts from what the exchange holds.
"""

from __future__ import annotations

import math
from decimal import Decimal

import ccxt
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import (
    GenerateFillReports,
    GenerateOrderStatusReport,
    GenerateOrderStatusReports,
    GeneratePositionStatusReports,
)
from nautilus_trader.execution.reports import FillReport, OrderStatusReport, PositionStatusReport
from nautilus_trader.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, PositionSide, TimeInForce
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId, TradeId, VenueOrderId
from nautilus_trader.model.objects import Money, Price, Quantity

from basisbot.live.exec.orders import ORDER_STATUS, TIME_IN_FORCE
from basisbot.nautilus.instruments import currency


class ReconciliationReports:
    """Reconciliation reports for a (re)starting node: order status, fills and positions as the exchange holds
    them."""

    def _order_report(self, o: dict) -> OrderStatusReport | None:
        iid = self._by_symbol.get(o.get("symbol"))
        if iid is None or not o.get("id"):
            return None
        inst = self._instruments[iid]
        amount = float(self._base(iid, o.get("amount") or 0))
        if amount <= 0:
            return None
        filled = float(self._base(iid, o.get("filled") or 0))
        status = ORDER_STATUS.get(o.get("status"), OrderStatus.ACCEPTED)
        if status == OrderStatus.ACCEPTED and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        otype = OrderType.LIMIT if str(o.get("type") or "").lower().startswith("limit") else OrderType.MARKET
        tif = TIME_IN_FORCE.get(str(o.get("timeInForce") or "GTC").upper(), TimeInForce.GTC)
        if otype == OrderType.MARKET and tif not in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK):
            tif = TimeInForce.GTC
        price = o.get("price") if otype == OrderType.LIMIT else None
        avg = o.get("average")
        ts_acc = self._ts(o.get("timestamp"))
        ts_last = self._ts(o.get("lastUpdateTimestamp") or o.get("lastTradeTimestamp") or o.get("timestamp"))
        cid = o.get("clientOrderId")
        return OrderStatusReport(
            account_id=self.account_id,
            instrument_id=iid,
            client_order_id=ClientOrderId(str(cid)) if cid else None,
            venue_order_id=VenueOrderId(str(o["id"])),
            order_side=OrderSide.BUY if o.get("side") == "buy" else OrderSide.SELL,
            order_type=otype,
            time_in_force=tif,
            order_status=status,
            quantity=Quantity(amount, inst.size_precision),
            filled_qty=Quantity(filled, inst.size_precision),
            price=Price(float(price), inst.price_precision) if price else None,
            avg_px=Decimal(str(avg)) if avg else None,
            reduce_only=bool(o.get("reduceOnly")),
            post_only=bool(o.get("postOnly")),
            report_id=UUID4(),
            ts_accepted=ts_acc,
            ts_last=max(ts_last, ts_acc),
            ts_init=self._clock.timestamp_ns(),
        )

    def _fill_report(self, t: dict) -> FillReport | None:
        iid = self._by_symbol.get(t.get("symbol"))
        if iid is None or not t.get("id") or not t.get("order"):
            return None
        inst = self._instruments[iid]
        fee = t.get("fee") or {}
        info = t.get("info") or {}
        cid = info.get("clientOrderId") or (info.get("c") if isinstance(info, dict) else None) \
            or self.hooks.trade_client_id(t)
        return FillReport(
            account_id=self.account_id,
            instrument_id=iid,
            venue_order_id=VenueOrderId(str(t["order"])),
            trade_id=TradeId(str(t["id"])),
            order_side=OrderSide.BUY if t.get("side") == "buy" else OrderSide.SELL,
            last_qty=Quantity(float(self._base(iid, t["amount"])), inst.size_precision),
            last_px=Price(float(t["price"]), inst.price_precision),
            commission=Money(float(fee.get("cost") or 0.0), currency(fee.get("currency") or "USDT")),
            liquidity_side=LiquiditySide.MAKER if t.get("takerOrMaker") == "maker" else LiquiditySide.TAKER,
            client_order_id=ClientOrderId(str(cid)) if cid else None,
            report_id=UUID4(),
            ts_event=self._ts(t.get("timestamp")),
            ts_init=self._clock.timestamp_ns(),
        )

    def _wanted(self, instrument_id: InstrumentId | None) -> list[InstrumentId]:
        if instrument_id is None:
            return list(self._symbols)
        return [instrument_id] if instrument_id in self._symbols else []

    @staticmethod
    def _since_ms(start) -> int | None:
        if start is None:
            return None
        return int(start.timestamp() * 1000)

    async def generate_order_status_report(self, command: GenerateOrderStatusReport) -> OrderStatusReport | None:
        iid = command.instrument_id
        if iid not in self._symbols:
            return None
        try:
            if command.venue_order_id is not None:
                o = await self.ex.fetch_order(command.venue_order_id.value, self._symbols[iid])
            elif command.client_order_id is not None:
                o = await self.ex.fetch_order(None, self._symbols[iid], {"clientOrderId": command.client_order_id.value})
            else:
                return None
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as e:
            self._log.warning(f"order status report failed: {type(e).__name__}: {e}")
            return None
        return self._order_report(o)

    async def generate_order_status_reports(self, command: GenerateOrderStatusReports) -> list[OrderStatusReport]:
        out = []
        since = self._since_ms(command.start)
        for iid in self._wanted(command.instrument_id):
            sym = self._symbols[iid]
            try:
                orders = (await self.ex.fetch_open_orders(sym) if command.open_only
                          else await self.hooks.fetch_orders(self.ex, sym, since))
            except ccxt.BaseError as e:
                self._log.error(f"order reports for {sym} failed: {type(e).__name__}: {e}")
                continue
            for o in orders:
                r = self._order_report(o)
                if r is not None:
                    out.append(r)
        self._log.info(f"Generated {len(out)} order status reports")
        return out

    async def generate_fill_reports(self, command: GenerateFillReports) -> list[FillReport]:
        out = []
        since = self._since_ms(command.start)
        for iid in self._wanted(command.instrument_id):
            sym = self._symbols[iid]
            params = self.hooks.trades_of_order(command.venue_order_id.value) if command.venue_order_id else {}
            try:
                trades = await self.ex.fetch_my_trades(sym, since, None, params)
            except ccxt.BaseError as e:
                self._log.error(f"fill reports for {sym} failed: {type(e).__name__}: {e}")
                continue
            for t in trades:
                r = self._fill_report(t)
                if r is not None:
                    out.append(r)
        self._log.info(f"Generated {len(out)} fill reports")
        return out

    async def generate_position_status_reports(self, command: GeneratePositionStatusReports
                                               ) -> list[PositionStatusReport]:
        out = []
        now = self._clock.timestamp_ns()
        wanted = self._wanted(command.instrument_id)
        try:
            if self.kind == "perp":
                positions = await self.ex.fetch_positions([self._symbols[i] for i in wanted]) if wanted else []
                held = {}
                for p in positions:
                    xid = self._xid_of(p.get("symbol"))
                    if xid is None:
                        continue
                    pos = self._position_of(p, self._positions.get(xid))
                    self._set_position(xid, pos)
                    held[self._by_symbol[p["symbol"]]] = pos
                for iid in wanted:
                    inst = self._instruments[iid]
                    pos = held.get(iid)
                    if pos is None or pos.side == 0:
                        out.append(PositionStatusReport.create_flat(self.account_id, iid, inst.size_precision, now))
                        continue
                    out.append(PositionStatusReport(
                        account_id=self.account_id, instrument_id=iid,
                        position_side=PositionSide.LONG if pos.side > 0 else PositionSide.SHORT,
                        quantity=Quantity(pos.qty, inst.size_precision), report_id=UUID4(), ts_last=now,
                        ts_init=now, avg_px_open=Decimal(str(pos.entry)) if pos.entry else None))
            else:
                # a spot "position" is the base asset held (the account is the strategy's: see README)
                bal = await self.ex.fetch_balance()
                for iid in wanted:
                    inst = self._instruments[iid]
                    code = inst.base_currency.code
                    total = float((bal.get("total") or {}).get(code) or 0.0)
                    step = inst.size_increment.as_double()
                    qty = math.floor(total / step + 1e-9) * step if step > 0 else total
                    if qty < step:
                        out.append(PositionStatusReport.create_flat(self.account_id, iid, inst.size_precision, now))
                        continue
                    out.append(PositionStatusReport(
                        account_id=self.account_id, instrument_id=iid, position_side=PositionSide.LONG,
                        quantity=Quantity(qty, inst.size_precision), report_id=UUID4(), ts_last=now, ts_init=now,
                        avg_px_open=await self._spot_avg_cost(iid, qty)))
        except ccxt.BaseError as e:
            self._log.error(f"position reports failed: {type(e).__name__}: {e}")
            return []
        self._log.info(f"Generated {len(out)} position status reports")
        return out

    async def _spot_avg_cost(self, iid: InstrumentId, qty: float) -> Decimal | None:
        """Average price of the most recent buys that make up `qty` (None when the history does not cover it)."""
        try:
            trades = await self.ex.fetch_my_trades(self._symbols[iid])
        except ccxt.BaseError:
            return None
        need, cost = qty, 0.0
        for t in sorted(trades, key=lambda x: x.get("timestamp") or 0, reverse=True):
            if t.get("side") != "buy":
                continue
            take = min(need, float(t["amount"]))
            cost += take * float(t["price"])
            need -= take
            if need <= 1e-12:
                break
        if need > qty * 0.5 or qty - need <= 0:
            return None
        return Decimal(str(round(cost / (qty - need), 8)))
