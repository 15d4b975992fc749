"""Live execution, user streams: `watch_orders` (accepted / cancelled / expired), `watch_my_trades` (fills,
deduplicated by trade id, so a trade seen in a REST response, on the stream and in a catch-up query is applied once),
`watch_balance` and (perp) `watch_positions` (triggers for a REST refresh of the account state and of the positions).

Every stream loop reconnects with exponential backoff (capped by `live.reconnect_max_s`) and resynchronises from REST
after a drop: in-flight orders, their trades, balances, positions and funding income. While an order is in flight, the
poll loop (every `live.poll_interval_s`) queries it too.
"""

from __future__ import annotations

import asyncio
import time


class UserStreams:
    """The ccxt.pro user streams (orders, trades, balance, positions) with reconnect and resync, and the REST polling
    fallback while an order is in flight or a stream is down."""

    async def _stream_loop(self, name: str, watch, handler) -> None:
        delay = self.opts.reconnect_initial_s
        while self._running:
            try:
                res = await watch()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not self._running:
                    return
                if self._stream_down.get(name) is None:
                    self._stream_down[name] = time.monotonic()
                self.stream_reconnects += 1
                self._log.warning(f"{name} stream: {type(e).__name__}: {e}; reconnecting in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.opts.reconnect_max_s)
                # the resubscription happens on the next watch; resync what may have been missed meanwhile
                self.create_task(self._resync(name), log_msg=f"{self.id}: resync after {name} drop")
                continue
            if self._stream_down.get(name) is not None:
                self._log.info(f"{name} stream back after {time.monotonic() - self._stream_down[name]:.1f}s")
                self._stream_down[name] = None
            delay = self.opts.reconnect_initial_s
            try:
                handler(res)
            except Exception as e:  # a bad message must not kill the stream
                self._log.exception(f"{name} stream handler failed", e)

    async def _resync(self, why: str) -> None:
        await asyncio.sleep(0.5)  # let the watch reconnect first
        for track in [t for t in self._tracks.values() if not t.terminal]:
            await self._sync_track(track)
        await self._refresh(publish=True, positions=True)
        if self.kind == "perp":
            await self._book_funding()
            await self._catch_up_liquidations()

    def _on_orders(self, orders: list[dict]) -> None:
        for o in orders:
            sym = o.get("symbol")
            if sym not in self._by_symbol:
                continue
            cid = o.get("clientOrderId")
            if self.kind == "perp" and self.hooks.is_liquidation(o):
                self._on_liquidation_order(o)
                continue
            track = self._track_for(cid, str(o.get("id")) if o.get("id") else None)
            if track is None:
                self._log.info(f"order {cid} / {o.get('id')} on {sym} is not this node's: reported for reconciliation")
                self._send_external_report(o)
                continue
            self.create_task(self._apply_order(track, o), log_msg=f"order update {track.cid}")

    def _on_trades(self, trades: list[dict]) -> None:
        for t in trades:
            if t.get("symbol") not in self._by_symbol:
                continue
            cid = self.hooks.trade_client_id(t)
            if cid and self.hooks.is_liquidation({"clientOrderId": cid}):
                continue  # handled as a liquidation order
            track = self._track_for(cid, str(t.get("order")) if t.get("order") else None)
            if track is None:
                continue
            self._apply_trade(track, t)

    def _on_balance(self, bal: dict) -> None:
        if self.kind == "perp" and self.hooks.funding_fee_pushed(bal):
            self._loop.call_later(0.2, lambda: self.create_task(self._book_funding(), log_msg="funding booking"))
        self._schedule_refresh(positions=self.kind == "perp")

    def _on_positions(self, positions: list[dict]) -> None:
        changed = False
        for p in positions:
            xid = self._xid_of(p.get("symbol"))
            if xid is None:
                continue
            self._set_position(xid, self._position_of(p, self._positions.get(xid)))
            changed = True
        if changed:
            self._schedule_refresh(positions=False)

    async def _poll_loop(self) -> None:
        last_funding = time.monotonic()
        while self._running:
            await asyncio.sleep(self.opts.poll_interval_s)
            now = time.monotonic()
            for track in [t for t in self._tracks.values() if not t.terminal and not t.outcome_unknown]:
                if now - track.sent_at >= self.opts.poll_interval_s:
                    await self._sync_track(track)
            if any(v is not None for v in self._stream_down.values()):
                await self._refresh(publish=True)
            if self.kind == "perp" and now - last_funding >= self.opts.funding_poll_s:
                last_funding = now
                await self._book_funding()
                await self._poll_adl_rank()
