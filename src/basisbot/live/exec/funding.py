"""Live execution, funding income: after each settlement (the user stream's FUNDING_FEE account update, the announced
settlement time + a booking delay, and a slow periodic check) the income history is read and one `FundingSettled` per
new payment is published on `basisbot.funding.settled`. The ones published so far are handed again to whoever asks
(`FUNDING_PUBLISHED_ENDPOINT`: the journal, when it starts after the connection's catch-up).
"""

from __future__ import annotations

import contextlib

import ccxt

from basisbot.core.units import NS
from basisbot.nautilus.messages import FUNDING_SETTLED_TOPIC, FundingSettled


class FundingIncome:
    """Funding income: after each settlement the income history is read and one `FundingSettled` per new payment
    published."""

    def _replay_funding_published(self, handler) -> None:
        """`FUNDING_PUBLISHED_ENDPOINT`: every `FundingSettled` published so far, to `handler`, in order."""
        for msg in list(self.funding_published):
            handler(msg)

    async def _schedule_funding_checks(self) -> None:
        for iid, sym in self._symbols.items():
            xid = self._exchange_ids[iid]
            try:
                fr = await self.ex.fetch_funding_rate(sym)
            except ccxt.BaseError as e:
                self._log.warning(f"{xid}: next funding time unknown ({e}); relying on the stream and polling")
                continue
            nxt = fr.get("fundingTimestamp") or (fr.get("info") or {}).get("nextFundingTime")
            if nxt:
                self._arm_funding_timer(xid, int(nxt))

    def _arm_funding_timer(self, xid: str, next_ms: int) -> None:
        if self._next_funding_ms.get(xid) == next_ms:
            return
        self._next_funding_ms[xid] = next_ms
        old = self._funding_timers.pop(xid, None)
        if old:
            old.cancel()
        # position just before the settlement (the income entry does not carry it)
        pre_delay = (self.session.time.to_local(next_ms - 1000) - self._clock.timestamp_ns()) / NS
        book_delay = (self.session.time.to_local(next_ms) - self._clock.timestamp_ns()) / NS + \
            self.opts.booking_delay_s

        def snap():
            p = self._positions.get(xid)
            self._pre_settlement_qty[xid] = (p.side * p.qty) if p else 0.0

        if pre_delay > 0:
            self._loop.call_later(pre_delay, snap)
        else:
            snap()

        def book():
            self.create_task(self._book_funding(), log_msg="funding booking")
            self.create_task(self._schedule_funding_checks(), log_msg="next funding time")

        self._funding_timers[xid] = self._loop.call_later(max(book_delay, 0.0), book)

    async def _book_funding(self) -> None:
        async with self._book_lock:  # stream, timers, resyncs and the poll loop may all ask at once
            incomplete = []
            for iid, sym in self._symbols.items():
                if not await self._book_funding_symbol(self._exchange_ids[iid], sym):
                    incomplete.append(self._exchange_ids[iid])
        self._retry_funding(incomplete)

    def _retry_funding(self, incomplete: list[str]) -> None:
        """A failed or unpriced income read is read again soon (1 s, doubling, at most every `funding_poll_s`), not
        only at the slow periodic check: a burst of exchange errors around a settlement must not leave its payment
        unbooked for minutes."""
        if not incomplete:
            self._funding_retry_s = 0.0
            return
        if not self._running or (self._funding_retry is not None and not self._funding_retry.cancelled()
                                 and self._funding_retry.when() > self._loop.time()):
            return
        self._funding_retry_s = min(max(1.0, 2 * self._funding_retry_s), self.opts.funding_poll_s)
        self._log.info(f"funding income of {', '.join(incomplete)} read again in {self._funding_retry_s:.0f} s")
        self._funding_retry = self._loop.call_later(
            self._funding_retry_s, lambda: self.create_task(self._book_funding(), log_msg="funding booking retry"))

    async def _book_funding_symbol(self, xid: str, sym: str) -> bool:
        """Publishes the new payments of one symbol; False when the read failed or a payment could not be priced yet
        (the caller reads again)."""
        since = self._funding_since.get(xid, self._funding_since_ms)
        try:
            rows = await self.ex.fetch_funding_history(sym, since)
        except ccxt.BaseError as e:
            self._log.warning(f"{xid}: funding history query failed: {type(e).__name__}: {e}")
            return False
        pending: list[int] = []
        newest = since
        for row in rows:
            info = row.get("info") or {}
            income_id = str(row.get("id") or info.get("tranId") or f"{xid}-{row.get('timestamp')}")
            ts_ms = int(row.get("timestamp") or info.get("time") or 0)
            newest = max(newest, ts_ms + 1)
            if income_id in self._funding_seen:
                continue
            payment = float(row.get("amount") or 0.0)
            rate = mark = None
            with contextlib.suppress(ccxt.BaseError, IndexError, TypeError, ValueError, KeyError):
                hist = await self.ex.fetch_funding_rate_history(sym, ts_ms - 60_000, 5)
                near = min(hist, key=lambda h: abs(int(h["timestamp"]) - ts_ms)) if hist else None
                if near is not None and abs(int(near["timestamp"]) - ts_ms) <= 60_000:
                    rate = float(near["fundingRate"])
                    mp = (near.get("info") or {}).get("markPrice")
                    mark = float(mp) if mp not in (None, "") else None
            qty = self._pre_settlement_qty.get(xid)
            if rate is None and qty and mark:
                rate = -payment / (qty * mark)
            if rate is None:
                self._log.warning(f"{xid}: funding {payment:+.6f} at {ts_ms}: settled rate not available yet; "
                                  "will retry")
                pending.append(ts_ms)
                continue
            self._funding_seen.add(income_id)
            msg = FundingSettled(symbol=xid, settlement_ts_ns=self.session.time.to_local(ts_ms), rate=rate,
                                 payment=payment, source=self.hooks.funding_source(income_id), position_qty=qty,
                                 mark_price=mark)
            self.funding_published.append(msg)
            self._log.info(f"{xid}: funding settled {payment:+.6f} USDT at rate {rate:.8f} (income {income_id})")
            self._msgbus.publish(FUNDING_SETTLED_TOPIC, msg)
        # read on from the newest entry (the exchange pages from startTime), or from the first one still unpriced
        self._funding_since[xid] = min(pending) if pending else newest
        return not pending
