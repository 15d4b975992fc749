"""Live execution, account state: spot CASH with every non-zero asset; perp MARGIN USDT (total = wallet balance,
free = available); the exchange's perp positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import ccxt
from nautilus_trader.execution.messages import QueryAccount
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import AccountBalance, MarginBalance, Money

from basisbot.live.venue_hooks.base import ONE
from basisbot.nautilus.instruments import currency


def account_balance(free: float, used: float, cur) -> AccountBalance:
    """total = free + locked exactly at the currency's precision (nautilus checks it; float sums of large balances
    rounded one by one can miss it by a unit of the last place). The free amount is rounded down: a balance finer
    than the precision (OKX takes a 0.1% spot fee in the asset bought: 1.0240533 ETH bought, 1.0230292467 held) must
    never read as more than the account holds, or a sale of all of it is refused."""
    step = Decimal(1).scaleb(-cur.precision)
    # float noise first (0.3 - 0.1 = 0.19999999999999998 is 0.2), then down to the precision
    f = Decimal(repr(float(free))).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)
    f = f.quantize(step, rounding=ROUND_FLOOR)
    u = Decimal(repr(float(used))).quantize(step, rounding=ROUND_HALF_EVEN)
    return AccountBalance(Money(f + u, cur), Money(u, cur), Money(f, cur))


@dataclass
class PerpPosition:
    side: int = 0
    qty: float = 0.0
    entry: float = 0.0
    wallet: float = 0.0
    mode: str = "isolated"
    update_ms: int = 0


class AccountState:
    """Account state from REST (debounced refresh) and our own fills: spot CASH balances, perp MARGIN USDT, the
    exchange's positions."""

    async def _query_account(self, command: QueryAccount) -> None:
        await self._refresh(publish=True)

    def _schedule_refresh(self, positions: bool = True) -> None:
        if not self._running or self._refresh_handle is not None:
            return

        def fire():
            self._refresh_handle = None
            self.create_task(self._refresh(publish=True, positions=positions), log_msg=f"{self.id}: refresh")

        self._refresh_handle = self._loop.call_later(self.opts.refresh_debounce_s, fire)

    async def _refresh(self, publish: bool = True, positions: bool = True) -> None:
        async with self._refresh_lock:
            fills_before = self._fills_seen
            in_flight_before = self.kind == "spot" and self._fills_in_flight()
            try:
                bal = await self.ex.fetch_balance()
                if self.kind == "perp" and positions:
                    pos = await self.ex.fetch_positions(list(self._symbols.values()))
                    seen = set()
                    for p in pos:
                        xid = self._xid_of(p.get("symbol"))
                        if xid is not None:
                            self._set_position(xid, self._position_of(p, self._positions.get(xid)))
                            seen.add(xid)
                    for xid in self._exchange_ids.values():
                        if xid not in seen:
                            prev = self._positions.get(xid)
                            self._set_position(xid, PerpPosition(mode=prev.mode if prev else "isolated"))
            except ccxt.BaseError as e:
                self._log.warning(f"account refresh failed: {type(e).__name__}: {e}")
                return
            if self._fills_seen != fills_before:
                self._schedule_refresh(positions)  # read before one of our fills was applied: read again
                return
            if in_flight_before or (self.kind == "spot" and self._fills_in_flight()):
                # the spot balances move with our own fills as they arrive; a balance read while an order may have
                # filled at the venue can already hold a fill whose update has not reached us, which would then be
                # counted twice: held back until the order is done (its last fill or its end schedules a read)
                self._refresh_deferred = True
                return
            self._refresh_deferred = False
            self._publish_account(bal)
            if self.kind == "perp" and publish:
                for xid in self._exchange_ids.values():
                    self._publish_margin(xid)

    def _publish_account(self, bal: dict) -> None:
        ts = self._clock.timestamp_ns()
        if self.kind == "spot":
            self._balances = {}
            for code, total in (bal.get("total") or {}).items():
                if total or code == "USDT":
                    self._balances[code] = [float(bal.get("free", {}).get(code) or 0.0),
                                            float(bal.get("used", {}).get(code) or 0.0)]
            self._publish_spot_balances(ts)
            return
        wallet, avail, init, maint, self._cross_wallet = self.hooks.perp_account(bal)
        self._available = avail
        free = min(avail, wallet)
        balances = [account_balance(free, wallet - free, USDT)]
        margins = [MarginBalance(Money(init, USDT), Money(maint, USDT))] if init or maint else []
        self.generate_account_state(balances, margins, True, ts)

    def _account_calculated(self) -> bool:
        """Whether nautilus moves this account's balances on fills itself. Never for an exchange-reported account,
        unless a backtest or sandbox client in the same process registered this venue name as calculated (a
        process-global registry in nautilus): then applying our fills too would count them twice."""
        acct = self._cache.account(self.account_id)
        return bool(acct is not None and acct.calculate_account_state)

    def _publish_spot_balances(self, ts: int) -> None:
        balances = []
        for code, (free, used) in self._balances.items():
            if free + used <= 0 and code != "USDT":
                continue
            cur = currency(code)
            free = max(free, 0.0)
            balances.append(account_balance(free, used, cur))
        if not balances:
            balances = [AccountBalance(Money(0, USDT), Money(0, USDT), Money(0, USDT))]
        self.generate_account_state(balances, [], True, ts)

    def _apply_fill_to_balances(self, inst: Instrument, side: OrderSide, qty: float, px: float, fee: float,
                                fee_code: str) -> None:
        base, quote = inst.base_currency.code, inst.quote_currency.code
        sign = 1.0 if side == OrderSide.BUY else -1.0
        for code, delta in ((base, sign * qty), (quote, -sign * qty * px), (fee_code, -fee)):
            entry = self._balances.setdefault(code, [0.0, 0.0])
            entry[0] += delta
        self._publish_spot_balances(self._clock.timestamp_ns())

    def _set_position(self, xid: str, pos: PerpPosition) -> None:
        prev = self._positions.get(xid)
        if prev is not None and prev.side != 0:
            self._last_open[xid] = prev
        self._positions[xid] = pos

    def _xid_of(self, unified: str | None) -> str | None:
        iid = self._by_symbol.get(unified)
        return self._exchange_ids[iid] if iid is not None else None

    def _position_of(self, p: dict, prev: PerpPosition | None) -> PerpPosition:
        """The exchange's position in base units (the venue hooks read its fields; contracts × ctVal on OKX)."""
        iid = self._by_symbol.get(p.get("symbol"))
        return self.hooks.position(p, prev, self._ct.get(iid, ONE))

    @staticmethod
    def _norm_position(p: dict, prev: PerpPosition | None) -> PerpPosition:
        """A Binance position (user stream or REST shape)."""
        from basisbot.live.venue_hooks.binance import BinanceHooks

        return BinanceHooks().position(p, prev, ONE)
