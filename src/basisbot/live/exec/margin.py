"""Live execution, perp margin operations (the exchange's own calls are the venue hooks'; Binance's described here,
OKX's in `basisbot.live.venue_hooks.okx`: leverage per mode, margin-balance top-ups, no transfer): at connect, margin
mode (isolated by default) and leverage per symbol from the config. The `ADJUST_MARGIN_ENDPOINT` handler adds
isolated margin (`add_margin`) from the free futures balance, first moving the shortfall from spot (`transfer` spot ->
future) when allowed; `MarginAdjusted` is published on `margin_topic(symbol) + ".adjusted"`. `PerpMarginState` is
published on `margin_topic(symbol)` whenever the exchange's position (positionAmt, entryPrice, isolatedWallet, margin
type) or the free balances change, and `Liquidated` on `liquidation_topic(symbol)` when the exchange's liquidation
order (`autoclose-...`) shows up; the liquidation fill reaches nautilus as an order status report (claimed by the
strategy via external_order_claims).
"""

from __future__ import annotations

import asyncio
import math

import ccxt
from nautilus_trader.model.currencies import USDT

from basisbot.core.margin import perp_shortfall, split_margin_request
from basisbot.live.exec.account import PerpPosition
from basisbot.nautilus.messages import (
    JOURNAL_TOPIC,
    AdjustMarginRequest,
    JournalRecord,
    Liquidated,
    MarginAdjusted,
    PerpMarginState,
    liquidation_topic,
    margin_topic,
)


def adl_rank_reason(rank: int, top: int, scale: str = "rank") -> str:
    """The journaled text of a short's place in the venue's ADL queue on the venue's own scale ("ADL quantile 4 of 4"
    on Binance, "ADL rank 5 of 5" on OKX): `basisbot.ops.status.adl_rank_of` reads rank and top back from it."""
    return f"ADL {scale} {rank} of {top}"


# client order ids the exchange gives its own closing orders (Binance's USDⓈ-M "Event: Order Update")
# the Binance hooks read the exchange's own closing orders; their rules, as the tests and the fault matrix name them


class MarginOperations:
    """Perp margin: margin mode and leverage at connect, `PerpMarginState` publication, the strategy's
    `AdjustMarginRequest`s (perp wallet first, then a transfer from spot), and the exchange's liquidations."""

    async def _setup_margin(self) -> None:
        for iid, sym in self._symbols.items():
            xid = self._exchange_ids[iid]
            lev, mode = self.opts.margin.get(xid, (None, "isolated"))
            await self.hooks.setup_margin(self.ex, sym, mode, lev, self._log, label=xid)

    def _spot_free_usdt(self) -> float:
        from basisbot.nautilus.instruments import spot_venue

        acct = self._cache.account_for_venue(spot_venue(self.hooks.profile))
        if acct is None:
            return 0.0
        b = acct.balance_free(USDT)
        return b.as_double() if b is not None else 0.0

    def _publish_margin(self, xid: str, force: bool = False) -> None:
        pos = self._positions.get(xid) or PerpPosition()
        perp_free, spot_free = max(self._available, 0.0), self._spot_free_usdt()
        wallet = pos.wallet
        if pos.mode == "cross" and pos.side != 0:
            # cross: the position is backed by the cross wallet (less what other cross positions need: one carry
            # symbol per cross account is assumed here; several would need their losses and maintenance subtracted)
            wallet = self._cross_wallet
        key = (pos.side, round(pos.qty, 12), round(pos.entry, 8), round(wallet, 6), pos.mode,
               round(perp_free, 2), round(spot_free, 2))
        if not force and self._published.get(xid) == key:
            return
        self._published[xid] = key
        state = PerpMarginState(symbol=xid, mode=pos.mode, side=pos.side, qty=pos.qty, entry_price=pos.entry,
                                wallet=wallet, perp_free=perp_free, spot_free=spot_free,
                                ts_ns=self._clock.timestamp_ns())
        self._msgbus.publish(margin_topic(xid), state)

    def republish_margin(self) -> None:
        """Publish every symbol's margin state again, unchanged or not: the strategies subscribe when the trader
        starts, after this client connected and published what it read (without this the guard stays blind to a
        position held across a restart until its margin changes, hours away between settlements)."""
        for xid in self._exchange_ids.values():
            self._publish_margin(xid, force=True)

    def _on_adjust_margin_request(self, req: AdjustMarginRequest) -> None:
        self.create_task(self._adjust_margin(req), log_msg=f"adjust margin {req.symbol}")

    async def _adjust_margin(self, req: AdjustMarginRequest) -> None:
        lock = self._margin_locks.setdefault(req.symbol, asyncio.Lock())
        async with lock:
            iid = next((i for i, x in self._exchange_ids.items() if x == req.symbol), None)
            pos = self._positions.get(req.symbol)
            if iid is None or pos is None or pos.side == 0 or req.amount <= 0:
                self._reply(req, 0.0, 0.0, False, "no open position or non-positive amount")
                return
            amount = math.ceil(req.amount * 100) / 100  # USDT cents, rounded up: reach the target distance
            moved_spot = 0.0
            try:
                bal = await self.ex.fetch_balance()
                avail = float((bal.get("USDT") or {}).get("free") or 0.0)
                isolated = pos.mode == "isolated"
                # one unified account (OKX): the available USDT already is the spot's, nothing to transfer
                spot_allowed = req.from_spot and self.opts.allow_transfer_from_spot and self.hooks.transfer_from_spot
                spot_free = 0.0
                if perp_shortfall(amount, avail, isolated) > 0 and spot_allowed:
                    spot_bal = await self.session.spot.fetch_balance()
                    spot_free = float((spot_bal.get("USDT") or {}).get("free") or 0.0)
                top_up = split_margin_request(amount, avail, spot_free, isolated=isolated, spot_allowed=spot_allowed,
                                              cents=True)
                moved_spot = top_up.from_spot
                if moved_spot > 0:
                    await self.ex.transfer("USDT", moved_spot, "spot", "linear")  # MAIN -> UMFUTURE
                    self._log.info(f"{req.symbol}: moved {moved_spot:.2f} USDT spot -> futures ({req.reason})")
                if isolated and top_up.added > 0:
                    await self.hooks.add_isolated_margin(self.ex, self._symbols[iid], top_up.added)
                from_perp, moved = top_up.from_perp, top_up.added  # cross: the wallet backs the position directly
            except ccxt.BaseError as e:
                self._log.error(f"{req.symbol}: margin request {amount:.2f} failed: {type(e).__name__}: {e}")
                self._reply(req, 0.0, moved_spot, False, f"{type(e).__name__}: {e}")
                await self._refresh(publish=True)
                return
            self._reply(req, from_perp, moved_spot, moved > 0, f"added {moved:.2f} of {req.amount:.2f} USDT")
            await self._refresh(publish=True)

    def _reply(self, req: AdjustMarginRequest, from_perp: float, from_spot: float, ok: bool, msg: str) -> None:
        reply = MarginAdjusted(req.symbol, req.amount, from_perp, from_spot, ok, msg, self._clock.timestamp_ns())
        self.margin_replies.append(reply)
        self._msgbus.publish(margin_topic(req.symbol) + ".adjusted", reply)

    def _on_liquidation_order(self, o: dict) -> None:
        """The exchange's own closing order (`hooks.close_kind`): a liquidation, an auto-deleveraging or an
        insurance-fund close. Reported to nautilus as a filled external order (its fill moves the position), and
        `Liquidated` (with the kind) published for the strategy, the alerts and the journal."""
        vid = str(o.get("id"))
        kind = self.hooks.close_kind(o)
        if vid in self._liquidations_seen or kind is None or not self.hooks.close_done(o):
            return
        self._liquidations_seen.add(vid)
        xid = self._xid_of(o.get("symbol"))
        pos = self._positions.get(xid) or PerpPosition()
        if pos.side == 0:
            pos = self._last_open.get(xid) or pos  # the exchange's position update may have come first
        qty = float(self._base_of(o.get("symbol"), o.get("filled") or o.get("amount") or 0))
        price = float(o.get("average") or o.get("price") or 0.0)
        side = pos.side or (-1 if o.get("side") == "buy" else 1)
        if kind == "liquidation":
            self._log.error(f"{xid}: LIQUIDATED by the exchange: {side * qty:+g} at {price}, isolated wallet "
                            f"{pos.wallet:.2f} lost")
        else:
            what = "AUTO-DELEVERAGED (ADL)" if kind == "adl" else "CLOSED BY THE INSURANCE FUND"
            self._log.error(f"{xid}: {what}: {side * qty:+g} of {side * pos.qty:+g} at {price} "
                            f"(order {o.get('clientOrderId')}, status {o.get('status')})")
        # Binance names every ADL order "adl_autoclose": nautilus keys orders by client id, so the report carries
        # the venue's order id too (one order per close, on any symbol)
        self._send_external_report({**o, "status": "closed", "clientOrderId": self.hooks.close_client_id(o)})
        lost = pos.wallet if kind == "liquidation" else 0.0
        liq = Liquidated(xid, side, qty, price, lost, self._ts(o.get("timestamp") or o.get("lastUpdateTimestamp")),
                         kind)
        self.liquidations.append(liq)
        self._msgbus.publish(liquidation_topic(xid), liq)
        self._schedule_refresh()

    async def _poll_adl_rank(self) -> None:
        """Each short's place in the exchange's auto-deleveraging queue, read by the venue hook (`adl_ranks`:
        Binance's `adlQuantile` 0..4, OKX's position `adl` 0..5; the hook's `adl_top` is the bucket first in line),
        journaled as a decision "adl_rank" whenever it changes (what `basisbot status`, the metrics, the status page
        and the alert read)."""
        hooks = self.hooks
        try:
            ranks = await hooks.adl_ranks(self.ex, list(self._symbols.values()))
        except ccxt.BaseError as e:
            self._log.warning(f"ADL {hooks.adl_scale} not read: {type(e).__name__}: {e}")
            return
        if ranks is None:
            return
        seen = {}
        for sym, rank in ranks.items():
            xid = self._xid_of(sym)
            if xid is not None:
                seen[xid] = rank
        last = self.__dict__.setdefault("_adl_ranks", {})
        top = hooks.adl_top
        for xid in self._exchange_ids.values():
            rank = seen.get(xid, 0)  # not listed: no position, nothing to deleverage
            if last.get(xid, 0 if xid not in seen else None) == rank:
                continue
            last[xid] = rank
            if rank >= top:
                self._log.warning(f"{xid}: ADL {hooks.adl_scale} {rank} of {top}: first in line to be "
                                  "auto-deleveraged")
            self._msgbus.publish(JOURNAL_TOPIC, JournalRecord(
                "decision", xid, self._clock.timestamp_ns(),
                {"action": "adl_rank", "reason": adl_rank_reason(rank, top, hooks.adl_scale), "phase": ""}))

    async def _catch_up_liquidations(self) -> None:
        since = self.session.time.venue_now_ms() - 3_600_000
        for sym in self._symbols.values():
            try:
                orders = await self.hooks.fetch_orders(self.ex, sym, since)
            except ccxt.BaseError:
                continue
            for o in orders:
                if self.hooks.is_liquidation(o):
                    self._on_liquidation_order(o)

    def _send_external_report(self, o: dict) -> None:
        report = self._order_report(o)
        if report is not None:
            self._send_order_status_report(report)
