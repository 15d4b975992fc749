"""OKX v5 REST on the local venue: the route table and its handlers, on the shared engine.

Every answer is ``{"code": "0", "msg": "", "data": [...]}`` (OKX's envelope); refusals are OKX's (``errors.py``).
Public: ``/api/v5/public/{instruments,time,mark-price,funding-rate,funding-rate-history,position-tiers}``,
``/api/v5/market/{tickers,ticker}``. Private (``auth.py``): ``/api/v5/account/{balance,positions,config,
set-leverage,leverage-info,position/margin-balance,bills,bills-archive}``, ``/api/v5/trade/{order (POST place, GET
query),cancel-order,orders-pending,orders-history,fills,fills-history}``, ``/api/v5/asset/currencies``.

One unified account, as OKX has (no transfer between spot and swap): the engine's two wallets are one pool here.
The balance shows them summed, and before a spot buy or a swap order the USDT it needs moves, unseen, from the
other wallet.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from basisbot.core.units import HOUR_MS
from basisbot.sim.engine.errors import BinanceError
from basisbot.sim.engine.marketdata import window_stats, window_volume
from basisbot.sim.engine.order_matching import FUT, SPOT
from basisbot.sim.engine.orders import Order
from basisbot.sim.okx import errors, views
from basisbot.sim.okx.errors import OkxError
from basisbot.sim.okx.instruments import OkxInstrument, dstr, instrument_row, tier_rows
from basisbot.venues.okx import funding as okx_funding

_CL_ORD_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


@dataclass
class Req:
    method: str
    path: str
    params: dict[str, Any]
    items: list[dict] | None = None   # a JSON array body (batch endpoints)


@dataclass
class Envelope:
    """A batch answer: OKX's code "0" (all done), "1" (all failed) or "2" (some failed), each item's sCode in data."""

    data: list
    code: str
    msg: str


def batch(results: list[dict]) -> Envelope:
    failed = sum(1 for r in results if r.get("sCode") != "0")
    if not failed:
        return Envelope(results, "0", "")
    if failed == len(results):
        return Envelope(results, "1", "All operations failed")
    return Envelope(results, "2", "Bulk operation partially succeeded")


Handler = Callable[[Req], Awaitable[list]]


class OkxRest:
    """OKX's REST API on the venue `v` (``basisbot.sim.engine.core.Venue``) for the instruments `insts`."""

    def __init__(self, venue, insts: dict[str, OkxInstrument]):
        self.v = venue
        self.insts = insts
        self.by_id: dict[str, tuple[OkxInstrument, str]] = {}
        for inst in insts.values():
            self.by_id[inst.spot_id] = (inst, SPOT)
            self.by_id[inst.swap_id] = (inst, FUT)
        self.extra: dict[int, dict] = {}        # ordId -> what OKX echoes that the engine does not keep
        self.lever: dict[tuple[str, str], int] = {}   # (symbol, mgnMode) -> leverage
        for s in insts:
            for mode in ("cross", "isolated"):
                self.lever[(s, mode)] = venue.fut.leverage[s]
        self.c_time: dict[str, int] = {}
        self.bills: list[dict] = []
        self._bill_ids = iter(range(600_000_000_001, 10**15))
        self.bill_of_trade: dict[tuple[str, int], str] = {}
        self._funding_seen = 0
        self.public: dict[tuple[str, str], Handler] = {}
        self.private: dict[tuple[str, str], Handler] = {}
        self._routes()
        venue.user_listeners.append(self._on_engine_event)

    # ------------------------------------------------------------------------------------------------------------
    # routing
    # ------------------------------------------------------------------------------------------------------------
    def _routes(self) -> None:
        P = "/api/v5/"
        pub = {"public/instruments": self.instruments, "public/time": self.time, "public/mark-price": self.mark_price,
               "public/funding-rate": self.funding_rate, "public/funding-rate-history": self.funding_history,
               "public/position-tiers": self.position_tiers, "market/tickers": self.tickers,
               "market/ticker": self.ticker, "market/candles": self.candles, "market/history-candles": self.candles,
               "market/mark-price-candles": self.mark_candles, "market/history-mark-price-candles": self.mark_candles}
        for k, fn in pub.items():
            self.public[("GET", P + k)] = fn
        priv = {("GET", "account/balance"): self.balance, ("GET", "account/positions"): self.positions,
                ("GET", "account/config"): self.config, ("POST", "account/set-leverage"): self.set_leverage,
                ("GET", "account/leverage-info"): self.leverage_info,
                ("POST", "account/position/margin-balance"): self.margin_balance,
                ("GET", "account/bills"): self.get_bills, ("GET", "account/bills-archive"): self.get_bills,
                ("POST", "trade/order"): self.place, ("GET", "trade/order"): self.get_order,
                ("POST", "trade/batch-orders"): self.place_batch, ("POST", "trade/cancel-order"): self.cancel,
                ("POST", "trade/cancel-batch-orders"): self.cancel_batch, ("GET", "trade/orders-pending"): self.pending,
                ("GET", "trade/orders-history"): self.history, ("GET", "trade/fills"): self.fills,
                ("GET", "trade/fills-history"): self.fills, ("GET", "asset/currencies"): self.currencies}
        for (m, k), fn in priv.items():
            self.private[(m, P + k)] = fn

    def lookup(self, method: str, path: str) -> tuple[Handler | None, bool, bool]:
        """(handler, private, path known at all)."""
        key = (method.upper(), path.rstrip("/"))
        if key in self.public:
            return self.public[key], False, True
        if key in self.private:
            return self.private[key], True, True
        known = any(p == key[1] for _, p in (*self.public, *self.private))
        return None, False, known

    # ------------------------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------------------------
    def inst(self, inst_id: str | None, *, kind: str | None = None) -> tuple[OkxInstrument, str]:
        if not inst_id:
            raise errors.param_empty("instId")
        found = self.by_id.get(str(inst_id))
        if found is None or (kind is not None and found[1] != kind):
            raise errors.no_instrument(str(inst_id))
        return found

    def _inst_type_filter(self, p: dict) -> set[str]:
        it = str(p.get("instType") or "").upper()
        if it in ("", "ANY"):
            return {SPOT, FUT}
        if it == "SWAP":
            return {FUT}
        if it in ("SPOT", "MARGIN"):
            return {SPOT}
        return set()

    def prices(self) -> dict[str, float]:
        t = self.v.t
        return {inst.swap.base: self.v.paths[s].spot(t) for s, inst in self.insts.items()}

    def currencies_held(self) -> list[str]:
        return ["USDT", *[i.swap.base for i in self.insts.values()]]

    def _next_bill(self) -> str:
        return str(next(self._bill_ids))

    def unified_usdt(self) -> float:
        return self.v.spot.free("USDT") + self.v.spot.locked("USDT") + self.v.fut.wallet_balance()

    def _fund_spot(self, need: float) -> None:
        """Move USDT from the swap wallet to the spot wallet so that `need` is free there (one account)."""
        short = need - self.v.spot.free("USDT")
        if short <= 0:
            return
        movable = self.v.fut.max_withdraw(self.v.marks(), self.v.open_order_im())
        take = min(short, movable)
        if take > 0:
            self.v.fut.cross_wallet -= take
            self.v.spot.credit("USDT", take)

    def _fund_futures(self) -> None:
        """Move every free spot USDT into the swap wallet (margin for swap orders and isolated top-ups)."""
        free = self.v.spot.free("USDT")
        if free > 0:
            self.v.spot.debit("USDT", free)
            self.v.fut.cross_wallet += free

    # engine events -> bills
    def _on_engine_event(self, account: str, payload: dict) -> None:
        e = payload.get("e")
        if e == "ACCOUNT_UPDATE" and payload.get("a", {}).get("m") == "FUNDING_FEE":
            self._book_funding()
        elif e == "ORDER_TRADE_UPDATE" and payload["o"].get("x") == "TRADE":
            self._book_trade(FUT, int(payload["o"]["i"]), int(payload["o"]["t"]))
        elif e == "executionReport" and payload.get("x") == "TRADE":
            self._book_trade(SPOT, int(payload["i"]), int(payload["t"]))

    def _book_funding(self) -> None:
        log = self.v.funding_log
        while self._funding_seen < len(log):
            f = log[self._funding_seen]
            self._funding_seen += 1
            inst = self.insts[f["symbol"]]
            pay = float(f["payment"])
            mode = "isolated" if self.v.fut.isolated(f["symbol"]) else "cross"
            self.bills.append(views.bill_json(
                self._next_bill(), inst.swap_id, "SWAP", mode, "8", "174" if pay >= 0 else "173", pay,
                self.unified_usdt(), views.contracts(inst, abs(float(f["positionAmt"]))), views.num(f["markPrice"]),
                pay, 0.0, int(f["time"])))

    def _book_trade(self, venue: str, order_id: int, trade_id: int) -> None:
        o = self.v.orders[venue].get(order_id)
        if o is None:
            return
        tr = next((t for t in o.trades if t.trade_id == trade_id), None)
        if tr is None:
            return
        inst = self.insts[o.symbol]
        bill = self._next_bill()
        self.bill_of_trade[(venue, trade_id)] = bill
        if venue == FUT:
            mode = "isolated" if self.v.fut.isolated(o.symbol) else "cross"
            liq = o.type == "LIQUIDATION"
            sub = ("104" if o.side == "SELL" else "105") if liq else (
                ("3" if o.side == "BUY" else "4") if not tr.realized_pnl else ("6" if o.side == "BUY" else "5"))
            self.bills.append(views.bill_json(
                bill, inst.swap_id, "SWAP", mode, "5" if liq else "2", sub, tr.realized_pnl - tr.commission,
                self.unified_usdt(), views.contracts(inst, tr.qty), views.num(tr.price), tr.realized_pnl,
                -tr.commission, tr.time, str(o.order_id)))
        else:
            ccy = tr.commission_asset
            got = tr.qty - tr.commission if o.side == "BUY" else tr.quote_qty - tr.commission
            bal = self.unified_usdt() if ccy == "USDT" else self.v.spot.free(ccy) + self.v.spot.locked(ccy)
            self.bills.append(views.bill_json(
                bill, inst.spot_id, "SPOT", "", "2", "1" if o.side == "BUY" else "2", got, bal, views.num(tr.qty),
                views.num(tr.price), 0.0, -tr.commission, tr.time, str(o.order_id), ccy=ccy))

    def find(self, p: dict, *, inst_required: bool = True) -> Order | None:
        inst_id = p.get("instId")
        inst, venue = self.inst(inst_id) if (inst_id or inst_required) else (None, None)
        ord_id, cl = p.get("ordId"), p.get("clOrdId")
        if not ord_id and not cl:
            raise errors.param_empty("ordId or clOrdId")
        venues = [venue] if venue else [SPOT, FUT]
        for vn in venues:
            o = None
            if ord_id:
                try:
                    o = self.v.orders[vn].get(int(ord_id))
                except ValueError:
                    raise errors.param_error("ordId") from None
            else:
                oid = self.v.client_ids[vn].get(str(cl))
                o = self.v.orders[vn].get(oid) if oid is not None else None
            if o is not None and (inst is None or o.symbol == inst.symbol):
                return o
        return None

    def _order_row(self, o: Order) -> dict:
        ex = dict(self.extra.get(o.order_id, {}))
        if o.venue == FUT:
            ex.setdefault("lever", self.v.fut.leverage[o.symbol])
            ex.setdefault("tdMode", "isolated" if self.v.fut.isolated(o.symbol) else "cross")
        return views.order_json(o, self.insts[o.symbol], ex)

    # ------------------------------------------------------------------------------------------------------------
    # public
    # ------------------------------------------------------------------------------------------------------------
    async def instruments(self, r: Req) -> list:
        it = str(r.params.get("instType") or "").upper()
        if not it:
            raise errors.param_empty("instType")
        if it not in ("SPOT", "SWAP", "FUTURES", "OPTION", "MARGIN"):
            raise errors.param_error("instType")
        want = r.params.get("instId")
        rows = [] if it not in ("SPOT", "SWAP") else [instrument_row(i, it) for i in self.insts.values()]
        return [row for row in rows if not want or row["instId"] == want]

    async def time(self, r: Req) -> list:
        return [{"ts": str(self.v.sync())}]

    async def mark_price(self, r: Req) -> list:
        t = self.v.sync()
        it = str(r.params.get("instType") or "SWAP").upper()
        want = r.params.get("instId")
        if want:
            inst, venue = self.inst(want)
            it = "SWAP" if venue == FUT else it
            pairs = [(inst, venue)]
        else:
            pairs = [(i, FUT if it == "SWAP" else SPOT) for i in self.insts.values()]
        out = []
        for inst, venue in pairs:
            px = self.v.mark(inst.symbol, t) if venue == FUT else self.v.paths[inst.symbol].spot(t)
            out.append({"instId": inst.swap_id if venue == FUT else inst.spot_id, "instType": it,
                        "markPx": views.num(px), "ts": str(t)})
        return out

    def funding_row(self, inst: OkxInstrument, t: int) -> dict:
        p = self.v.paths[inst.symbol]
        nxt = p.next_funding_time(t)
        step = int(p.interval_hours(t) * HOUR_MS)
        rate = p.predicted_rate(t, self.v.cfg.predicted_rate)
        cap = okx_funding.cap(inst.symbol)
        mark, index = self.v.mark(inst.symbol, t), p.index(t)
        return {"formulaType": "noRate", "fundingRate": views.num(rate, 12), "fundingTime": str(nxt),
                "impactValue": "", "instId": inst.swap_id, "instType": "SWAP", "interestRate": "0",
                "maxFundingRate": views.num(cap), "method": "current_period", "minFundingRate": views.num(-cap),
                "nextFundingRate": "", "nextFundingTime": str(nxt + step),
                "premium": views.num((mark - index) / index if index else 0.0, 12),
                "settFundingRate": views.num(p.last_settled_rate(t), 12), "settState": "settled", "ts": str(t)}

    async def funding_rate(self, r: Req) -> list:
        t = self.v.sync()
        inst, _ = self.inst(r.params.get("instId"), kind=FUT)
        return [self.funding_row(inst, t)]

    async def funding_history(self, r: Req) -> list:
        """Settled rates, newest first; `before` (newer than, ms), `after` (older than, ms), `limit` (<= 100)."""
        t = self.v.sync()
        inst, _ = self.inst(r.params.get("instId"), kind=FUT)
        p = self.v.paths[inst.symbol]
        limit = _int(r.params.get("limit"), 100, "limit")
        limit = max(1, min(limit, 100))
        before, after = _int(r.params.get("before"), None, "before"), _int(r.params.get("after"), None, "after")
        rows = p.funding_history(None, None, len(p.fund_ts), t)
        if before is not None:
            rows = [x for x in rows if x[0] > before]
        if after is not None:
            rows = [x for x in rows if x[0] < after]
        rows = rows[:limit] if before is not None and after is None else rows[-limit:]
        return [{"formulaType": "noRate", "fundingRate": views.exact(rate), "fundingTime": str(ts),
                 "instId": inst.swap_id, "instType": "SWAP", "method": "current_period",
                 "realizedRate": views.exact(rate)} for ts, rate in reversed(rows)]

    async def candles(self, r: Req) -> list:
        """Hourly candles of the swap or the spot pair that have closed by the venue's time, newest first:
        [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]; a swap's vol in contracts, volCcy in the base coin. OKX's
        paging: `after` (older than, ms), `before` (newer than, ms), `limit` (at most 300, history 100)."""
        t = self.v.sync()
        inst, venue = self.inst(r.params.get("instId"))
        leg = "perp" if venue == FUT else "spot"
        bars = self._closed_bars(r, inst, t)
        rows = []
        for ts, row in bars:
            o, h, lo, c, v = (row[f"{leg}_{k}"] for k in ("open", "high", "low", "close", "volume"))
            if c != c:  # NaN: an hour the source lacks
                continue
            base = Decimal(repr(float(v)))
            vol = (base / inst.swap.ct_val).normalize() if leg == "perp" else base
            rows.append([str(ts), views.num(o), views.num(h), views.num(lo), views.num(c), dstr(vol), dstr(base),
                         "0", "1"])
        return rows

    async def mark_candles(self, r: Req) -> list:
        """Hourly mark-price candles (the swap's mark at each hour's close), newest first: [ts, o, h, l, c, confirm]."""
        t = self.v.sync()
        inst, _ = self.inst(r.params.get("instId"))
        rows = []
        for ts, row in self._closed_bars(r, inst, t):
            m = views.num(row["mark_close"])
            rows.append([str(ts), m, m, m, m, "1"])
        return rows

    def _closed_bars(self, r: Req, inst: OkxInstrument, t: int) -> list[tuple[int, Any]]:
        bar = str(r.params.get("bar") or "1m")
        if bar != "1H":
            raise OkxError("51000", f"Parameter bar error: the local venue serves 1H candles (got {bar})")
        cap = 100 if "history" in r.path else 300
        limit = max(1, min(_int(r.params.get("limit"), cap, "limit"), cap))
        before, after = _int(r.params.get("before"), None, "before"), _int(r.params.get("after"), None, "after")
        p = self.v.paths[inst.symbol]
        closed = [i for i in range(p.n) if int(p.open_ms[i]) + HOUR_MS <= t]
        if after is not None:
            closed = [i for i in closed if int(p.open_ms[i]) < after]
        if before is not None:
            closed = [i for i in closed if int(p.open_ms[i]) > before]
        picked = closed[:limit] if before is not None and after is None else closed[-limit:]
        return [(int(p.open_ms[i]), p.bars.iloc[i]) for i in reversed(picked)]

    async def position_tiers(self, r: Req) -> list:
        it = str(r.params.get("instType") or "").upper()
        if not it:
            raise errors.param_empty("instType")
        if it != "SWAP":
            return []
        mode = r.params.get("tdMode")
        if mode not in ("cross", "isolated"):
            raise errors.param_empty("tdMode") if not mode else errors.param_error("tdMode")
        fams = str(r.params.get("instFamily") or r.params.get("uly") or "")
        inst_id = r.params.get("instId")
        if inst_id:
            fams = self.inst(inst_id, kind=FUT)[0].family
        if not fams:
            raise errors.param_empty("instFamily")
        self.v.sync()
        out = []
        for fam in fams.split(","):
            inst = next((i for i in self.insts.values() if i.family == fam), None)
            if inst is None:
                raise errors.no_instrument(fam)
            out.extend(tier_rows(inst, mode))
        return out

    def _ticker_row(self, inst: OkxInstrument, venue: str, t: int) -> dict:
        p = self.v.paths[inst.symbol]
        kind = "perp" if venue == FUT else "spot"
        q = self.v.perp_quote(inst.symbol, t) if venue == FUT else self.v.spot_quote(inst.symbol, t)
        o, h, lo, c = window_stats(p, kind, max(p.first_open, t - 24 * HOUR_MS), t)
        vol = window_volume(p, kind, max(p.first_open, t - 24 * HOUR_MS), t)
        day0 = t - t % (24 * HOUR_MS)
        sod0 = window_stats(p, kind, max(p.first_open, day0), max(p.first_open, day0) + 1)[0]
        sod8 = window_stats(p, kind, max(p.first_open, day0 - 8 * HOUR_MS), max(p.first_open, day0 - 8 * HOUR_MS) + 1)[0]
        last = p.perp(t) if venue == FUT else p.spot(t)
        book = self.v.cfg.book_qty
        return {"instType": "SWAP" if venue == FUT else "SPOT", "instId": inst.swap_id if venue == FUT else inst.spot_id,
                "last": views.num(last), "lastSz": "0", "askPx": views.num(q.ask),
                "askSz": views.contracts(inst, book) if venue == FUT else views.num(book),
                "bidPx": views.num(q.bid), "bidSz": views.contracts(inst, book) if venue == FUT else views.num(book),
                "open24h": views.num(o), "high24h": views.num(h), "low24h": views.num(lo),
                "volCcy24h": views.num(vol if venue == FUT else vol * c),
                "vol24h": views.contracts(inst, vol) if venue == FUT else views.num(vol),
                "ts": str(t), "sodUtc0": views.num(sod0), "sodUtc8": views.num(sod8)}

    async def tickers(self, r: Req) -> list:
        t = self.v.sync()
        it = str(r.params.get("instType") or "").upper()
        if not it:
            raise errors.param_empty("instType")
        venue = {"SPOT": SPOT, "SWAP": FUT}.get(it)
        if venue is None:
            return []
        return [self._ticker_row(i, venue, t) for i in self.insts.values()]

    async def ticker(self, r: Req) -> list:
        t = self.v.sync()
        inst, venue = self.inst(r.params.get("instId"))
        return [self._ticker_row(inst, venue, t)]

    # ------------------------------------------------------------------------------------------------------------
    # account
    # ------------------------------------------------------------------------------------------------------------
    async def balance(self, r: Req) -> list:
        self.v.sync()
        ccys = self.currencies_held()
        want = r.params.get("ccy")
        if want:
            ccys = [c for c in ccys if c in str(want).split(",")]
        return [views.balance_json(self.v, ccys, self.prices())]

    def position_rows(self, symbols: list[str] | None = None, *, include_flat: bool = False) -> list:
        out = []
        for s, inst in self.insts.items():
            if symbols is not None and s not in symbols:
                continue
            p = self.v.fut.positions[s]
            if not p.qty and not include_flat:
                continue
            mode = "isolated" if self.v.fut.isolated(s) else "cross"
            out.append(views.position_json(self.v, inst, self.v.fut.leverage[s], self.c_time.get(s, p.update_time),
                                           self._pos_id(s, mode)))
        return out

    @staticmethod
    def _pos_id(symbol: str, mode: str) -> str:
        return str(700_000_000_000 + sum(ord(c) * 31 ** i for i, c in enumerate(symbol + mode)) % 10**11)

    async def positions(self, r: Req) -> list:
        self.v.sync()
        it = str(r.params.get("instType") or "").upper()
        if it and it not in ("SWAP", "ANY"):
            return []
        ids = r.params.get("instId")
        syms = None
        if ids:
            syms = [self.inst(i, kind=FUT)[0].symbol for i in str(ids).split(",")]
        return self.position_rows(syms)

    async def config(self, r: Req) -> list:
        return [{"acctLv": "2", "acctStpMode": "cancel_maker", "autoLoan": False, "ctIsoMode": "automatic",
                 "enableSpotBorrow": False, "feeType": "0", "greeksType": "PA", "ip": "127.0.0.1", "kycLv": "2",
                 "label": "basisbot sim", "level": "Lv1", "levelTmp": "", "liquidationGear": "-1",
                 "mainUid": "44705892343619584", "mgnIsoMode": "automatic", "opAuth": "1",
                 "perm": "read_only,trade", "posMode": "net_mode", "roleType": "0", "settleCcy": "USDT",
                 "settleCcyList": ["USDT"], "spotBorrowAutoRepay": False, "spotOffsetType": "", "spotRoleType": "0",
                 "spotTraderInsts": [], "traderInsts": [], "type": "0", "uid": "44705892343619584"}]

    async def set_leverage(self, r: Req) -> list:
        p = r.params
        inst, venue = self.inst(p.get("instId"))
        if venue != FUT:
            raise errors.param_error("instId")
        mode = str(p.get("mgnMode") or "")
        if mode not in ("cross", "isolated"):
            raise errors.param_empty("mgnMode") if not mode else errors.param_error("mgnMode")
        try:
            lev = Decimal(str(p.get("lever")))
        except InvalidOperation:
            raise errors.param_error("lever") from None
        if lev != lev.to_integral_value() or lev < 1 or lev > inst.max_leverage:
            raise OkxError("59102", f"Leverage exceeds the maximum leverage ({inst.max_leverage}x) or is below 1x",
                           400)
        s = inst.symbol
        self.v.sync()
        current = "isolated" if self.v.fut.isolated(s) else "cross"
        if current == mode or not self.v.fut.positions[s].qty:
            try:
                if current != mode and not any(o.symbol == s for o in self.v.open_orders[FUT].values()):
                    self.v.fut.margin_type[s] = "ISOLATED" if mode == "isolated" else "CROSSED"
                self.v.set_leverage(s, str(int(lev)))
            except BinanceError as e:
                raise OkxError("59102" if e.code == -4028 else "51004", e.msg, 400) from None
        self.lever[(s, mode)] = int(lev)
        return [{"instId": inst.swap_id, "lever": str(int(lev)), "mgnMode": mode, "posSide": str(p.get("posSide")
                                                                                                   or "net")}]

    async def leverage_info(self, r: Req) -> list:
        mode = str(r.params.get("mgnMode") or "")
        if mode not in ("cross", "isolated"):
            raise errors.param_empty("mgnMode") if not mode else errors.param_error("mgnMode")
        out = []
        for iid in str(r.params.get("instId") or "").split(","):
            inst, _ = self.inst(iid, kind=FUT)
            out.append({"ccy": "", "instId": inst.swap_id, "lever": str(self.lever[(inst.symbol, mode)]),
                        "mgnMode": mode, "posSide": "net"})
        return out

    async def margin_balance(self, r: Req) -> list:
        p = r.params
        inst, _ = self.inst(p.get("instId"), kind=FUT)
        kind = str(p.get("type") or "")
        if kind not in ("add", "reduce"):
            raise errors.param_empty("type") if not kind else errors.param_error("type")
        if str(p.get("posSide") or "net") != "net":
            raise errors.param_error("posSide")
        amt = p.get("amt")
        try:
            amount = Decimal(str(amt))
        except InvalidOperation:
            raise errors.param_error("amt") from None
        if not amount.is_finite() or amount <= 0:
            raise errors.param_error("amt")
        s = inst.symbol
        t = self.v.sync()
        pos = self.v.fut.positions[s]
        if not pos.qty:
            raise OkxError("59300", "Margin call failed. Position does not exist.", 200)
        if not self.v.fut.isolated(s):
            raise OkxError("59301", "Margin adjustment is only available for isolated margin positions.", 200)
        if kind == "add":
            self._fund_futures()
        try:
            self.v.position_margin(s, str(amount), "1" if kind == "add" else "2")
        except BinanceError as e:
            if kind == "add":
                raise OkxError("51008", "Order failed. Insufficient USDT balance in account.", 200) from None
            raise OkxError("59302", f"Margin adjustment failed: {e.msg}", 200) from None
        chg = float(amount) if kind == "add" else -float(amount)
        self.bills.append(views.bill_json(
            self._next_bill(), inst.swap_id, "SWAP", "isolated", "6", "160" if kind == "add" else "161", -chg,
            self.unified_usdt(), views.contracts(inst, abs(pos.qty)), "", 0.0, 0.0, t, pos_bal=pos.iso_wallet,
            pos_bal_chg=chg))
        return [{"amt": dstr(amount), "ccy": "USDT", "instId": inst.swap_id, "leverage": str(self.v.fut.leverage[s]),
                 "posSide": "net", "type": kind}]

    async def get_bills(self, r: Req) -> list:
        self.v.sync()
        p = r.params
        rows = list(reversed(self.bills))
        for key in ("instType", "instId", "type", "subType", "ccy", "mgnMode"):
            if p.get(key):
                rows = [b for b in rows if b[key] == str(p[key])]
        if p.get("ctType") == "inverse":
            rows = []
        begin, end = _int(p.get("begin"), None, "begin"), _int(p.get("end"), None, "end")
        if begin is not None:
            rows = [b for b in rows if int(b["ts"]) >= begin]
        if end is not None:
            rows = [b for b in rows if int(b["ts"]) <= end]
        if p.get("after"):
            rows = [b for b in rows if int(b["billId"]) < int(p["after"])]
        if p.get("before"):
            rows = [b for b in rows if int(b["billId"]) > int(p["before"])]
        limit = max(1, min(_int(p.get("limit"), 100, "limit"), 100))
        return rows[:limit]

    async def currencies(self, r: Req) -> list:
        out = []
        for ccy in self.currencies_held():
            out.append({"burningFeeRate": "", "canDep": True, "canInternal": True, "canWd": True, "ccy": ccy,
                        "chain": f"{ccy}-{ccy}", "ctAddr": "", "depEstOpenTime": "", "depQuotaFixed": "",
                        "depQuoteDailyLayer2": "", "fee": "0", "logoLink": "", "mainNet": True, "maxFee": "0",
                        "maxFeeForCtAddr": "", "maxWd": "100000000", "minDep": "0.00000001",
                        "minDepArrivalConfirm": "1", "minFee": "0", "minFeeForCtAddr": "", "minInternal": "0",
                        "minWd": "0.00000001", "minWdUnlockConfirm": "1", "name": ccy, "needTag": False,
                        "usedDepQuotaFixed": "", "usedWdQuota": "0", "wdEstOpenTime": "", "wdQuota": "10000000",
                        "wdTickSz": "8"})
        return out

    # ------------------------------------------------------------------------------------------------------------
    # trading
    # ------------------------------------------------------------------------------------------------------------
    def _check_cl_ord_id(self, cl: str | None) -> str | None:
        if cl in (None, ""):
            return None
        cl = str(cl)
        if len(cl) > 32 or not set(cl) <= _CL_ORD_OK:
            raise errors.order_error("51000", "Parameter clOrdId error")
        for vn in (SPOT, FUT):
            if cl in self.v.client_ids[vn]:
                known = self.v.orders[vn][self.v.client_ids[vn][cl]]
                if self.v.cfg.duplicate_client_id != "open" or known.is_open:
                    raise errors.duplicate_cl_ord_id()
        return cl

    async def place(self, r: Req) -> list:
        try:
            return [self._place(r.params)]
        except OkxError as e:  # every refusal of a placement is order-level, as OKX answers it
            e.order_level = True
            e.status = 200
            raise
        except BinanceError as e:
            raise errors.from_binance(e) from None

    async def place_batch(self, r: Req):
        items = r.items if r.items is not None else [r.params]
        if not items or len(items) > 20:
            raise errors.param_error("the batch (1 to 20 orders)")
        results = []
        for p in items:
            try:
                results.append(self._place(p))
            except (OkxError, BinanceError) as e:
                err = errors.from_binance(e) if isinstance(e, BinanceError) else e
                results.append({"clOrdId": str(p.get("clOrdId") or ""), "ordId": "", "sCode": err.code,
                                "sMsg": err.msg, "tag": str(p.get("tag") or ""), "ts": str(self.v.t)})
        return batch(results)

    async def cancel_batch(self, r: Req):
        items = r.items if r.items is not None else [r.params]
        if not items or len(items) > 20:
            raise errors.param_error("the batch (1 to 20 orders)")
        results = []
        for p in items:
            try:
                results.append((await self.cancel(Req("POST", r.path, p)))[0])
            except OkxError as e:
                results.append({"clOrdId": str(p.get("clOrdId") or ""), "ordId": str(p.get("ordId") or ""),
                                "sCode": e.code, "sMsg": e.msg, "ts": str(self.v.t)})
        return batch(results)

    def _place(self, p: dict) -> dict:
        t = self.v.sync()
        inst, venue = self.inst(p.get("instId"))
        cl = self._check_cl_ord_id(p.get("clOrdId"))
        side, ord_type, td = self._order_kind(p, venue)
        sz, px = self._order_size_price(p, inst, venue, ord_type)
        engine_type, tif = {"market": ("MARKET", ""), "optimal_limit_ioc": ("MARKET", ""), "limit": ("LIMIT", "GTC"),
                            "ioc": ("LIMIT", "IOC"), "fok": ("LIMIT", "FOK"),
                            "post_only": ("LIMIT_MAKER" if venue == SPOT else "LIMIT", "" if venue == SPOT else "GTX")
                            }[ord_type]
        req = {"symbol": inst.symbol, "side": side.upper(), "type": engine_type, "newClientOrderId": cl}
        if tif:
            req["timeInForce"] = tif
        if px is not None:
            req["price"] = str(px)
        extra = {"tdMode": td, "tag": str(p.get("tag") or ""), "sz": dstr(sz)}
        if venue == FUT:
            o = self._place_swap(p, inst, td, sz, req, extra)
        else:
            o = self._place_spot(p, inst, t, side, engine_type, sz, px, req, extra)
        self.extra[o.order_id] = extra
        return {"clOrdId": o.client_order_id if cl else "", "ordId": str(o.order_id), "sCode": "0",
                "sMsg": "Order placed", "tag": extra["tag"], "ts": str(t)}

    @staticmethod
    def _order_kind(p: dict, venue) -> tuple[str, str, str]:
        """(side, ordType, tdMode) of an order request, each checked as OKX checks it."""
        side = str(p.get("side") or "").lower()
        if side not in ("buy", "sell"):
            raise errors.order_error("51000", "Parameter side error")
        ord_type = str(p.get("ordType") or "").lower()
        if ord_type not in ("market", "limit", "post_only", "ioc", "fok", "optimal_limit_ioc"):
            raise errors.order_error("51000", "Parameter ordType error")
        td = str(p.get("tdMode") or "")
        if (venue == SPOT and td != "cash") or (venue == FUT and td not in ("cross", "isolated")):
            raise errors.order_error("51000", "Parameter tdMode error")
        return side, ord_type, td

    @staticmethod
    def _order_size_price(p: dict, inst: OkxInstrument, venue, ord_type: str) -> tuple[Decimal, Decimal | None]:
        """(sz, px) of an order request: a positive size; a price on the tick for the priced order types."""
        try:
            sz = Decimal(str(p.get("sz")))
        except InvalidOperation:
            raise errors.order_error("51000", "Parameter sz error") from None
        if not sz.is_finite() or sz <= 0:
            raise errors.order_error("51000", "Parameter sz error")
        if ord_type not in ("limit", "post_only", "ioc", "fok"):
            return sz, None
        try:
            px = Decimal(str(p.get("px")))
        except InvalidOperation:
            raise errors.order_error("51000", "Parameter px error") from None
        tick = inst.swap.tick_sz if venue == FUT else inst.spot_tick
        if not px.is_finite() or px <= 0 or px % tick != 0:
            raise errors.order_error("51000", "Parameter px error")
        return sz, px

    def _place_swap(self, p: dict, inst: OkxInstrument, td: str, sz: Decimal, req: dict, extra: dict):
        """A swap order: size in contracts on the lot, sent to the engine in base units (contracts x ctVal)."""
        if sz % inst.swap.lot_sz != 0:
            raise errors.lot_error()
        if sz < inst.swap.min_sz:
            raise errors.below_min()
        req["quantity"] = str(inst.swap.to_base(sz))
        reduce = str(p.get("reduceOnly", "false")).lower() in ("true", "1")
        req["reduceOnly"] = "true" if reduce else "false"
        self._apply_margin_mode(inst, td)
        extra["lever"] = self.v.fut.leverage[inst.symbol]
        self._fund_futures()
        return self.v.futures_new_order(req)

    def _place_spot(self, p: dict, inst: OkxInstrument, t: int, side: str, engine_type: str, sz: Decimal,
                    px: Decimal | None, req: dict, extra: dict):
        """A spot order: a market buy sized in quote currency by default (OKX's tgtCcy), else in base on the lot."""
        tgt = str(p.get("tgtCcy") or ("quote_ccy" if engine_type == "MARKET" and side == "buy" else "base_ccy"))
        if tgt not in ("base_ccy", "quote_ccy"):
            raise errors.order_error("51000", "Parameter tgtCcy error")
        extra["tgtCcy"] = tgt
        if engine_type == "MARKET" and tgt == "quote_ccy":
            req["quoteOrderQty"] = str(sz)
            need = float(sz)
        else:
            if sz % inst.spot_lot != 0:
                raise errors.lot_error()
            if sz < inst.spot_min:
                raise errors.below_min()
            req["quantity"] = str(sz)
            price = float(px) if px is not None else self.v.spot_quote(inst.symbol, t).ask
            need = float(sz) * price
        if side == "buy":
            self._fund_spot(need)
        o, _ = self.v.spot_new_order(req)
        return o

    def _apply_margin_mode(self, inst: OkxInstrument, td: str) -> None:
        s = inst.symbol
        want = "ISOLATED" if td == "isolated" else "CROSSED"
        if self.v.fut.margin_type[s] == want:
            return
        busy = self.v.fut.positions[s].qty or any(o.symbol == s for o in self.v.open_orders[FUT].values())
        if busy:
            raise errors.order_error("51000", "Parameter tdMode error: the position is in the other margin mode")
        self.v.fut.margin_type[s] = want
        self.v.fut.leverage[s] = self.lever[(s, td)]

    async def cancel(self, r: Req) -> list:
        p = r.params
        t = self.v.sync()
        o = self.find(p)
        if o is None or not o.is_open:
            raise errors.cancel_missing()
        try:
            if o.venue == FUT:
                self.v.futures_cancel({"symbol": o.symbol, "orderId": str(o.order_id)})
            else:
                self.v.spot_cancel({"symbol": o.symbol, "orderId": str(o.order_id)})
        except BinanceError as e:
            raise errors.from_binance(e) from None
        return [{"clOrdId": o.client_order_id, "ordId": str(o.order_id), "sCode": "0", "sMsg": "", "ts": str(t)}]

    async def get_order(self, r: Req) -> list:
        self.v.sync()
        o = self.find(r.params)
        if o is None:
            raise errors.order_missing()
        return [self._order_row(o)]

    def _orders(self, p: dict, rows) -> list:
        venues = self._inst_type_filter(p)
        inst_id = p.get("instId")
        out = [o for o in rows if o.venue in venues]
        if inst_id:
            inst, venue = self.inst(inst_id)
            out = [o for o in out if o.symbol == inst.symbol and o.venue == venue]
        out.sort(key=lambda o: o.order_id, reverse=True)
        limit = max(1, min(_int(p.get("limit"), 100, "limit"), 100))
        return [self._order_row(o) for o in out[:limit]]

    async def pending(self, r: Req) -> list:
        self.v.sync()
        return self._orders(r.params, [o for vn in (SPOT, FUT) for o in self.v.open_orders[vn].values()])

    async def history(self, r: Req) -> list:
        self.v.sync()
        if not r.params.get("instType"):
            raise errors.param_empty("instType")
        return self._orders(r.params, [o for vn in (SPOT, FUT) for o in self.v.orders[vn].values() if not o.is_open])

    async def fills(self, r: Req) -> list:
        self.v.sync()
        p = r.params
        venues = self._inst_type_filter(p)
        trades = [tr for vn in (SPOT, FUT) if vn in venues for tr in self.v.trades[vn]]
        if p.get("instId"):
            inst, venue = self.inst(p["instId"])
            trades = [tr for tr in trades if tr.symbol == inst.symbol and tr.venue == venue]
        if p.get("ordId"):
            trades = [tr for tr in trades if str(tr.order_id) == str(p["ordId"])]
        begin, end = _int(p.get("begin"), None, "begin"), _int(p.get("end"), None, "end")
        if begin is not None:
            trades = [tr for tr in trades if tr.time >= begin]
        if end is not None:
            trades = [tr for tr in trades if tr.time <= end]
        trades.sort(key=lambda tr: (tr.time, tr.trade_id), reverse=True)
        limit = max(1, min(_int(p.get("limit"), 100, "limit"), 100))
        out = []
        for tr in trades[:limit]:
            o = self.v.orders[tr.venue][tr.order_id]
            bill = self.bill_of_trade.get((tr.venue, tr.trade_id), "")
            out.append(views.fill_json(tr, o, self.insts[tr.symbol], bill, self.v.mark(tr.symbol, tr.time)))
        return out


def _int(value, default, name: str):
    if value in (None, ""):
        return default
    try:
        return int(str(value))
    except ValueError:
        raise errors.param_error(name) from None


def parse_body(raw: str) -> dict | list[dict]:
    """A POST body: a JSON object, or an array of objects (batch endpoints)."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        raise OkxError("50002", "Invalid JSON", 400) from None
    if isinstance(body, list) and all(isinstance(x, dict) for x in body):
        return body
    if not isinstance(body, dict):
        raise OkxError("50002", "Invalid JSON", 400)
    return body
