"""OKX's live hooks: the stock ccxt.pro `okx` client (one for the spot leg, one for the swap, both on the one unified
trading account), orders with OKX's clOrdId and tdMode, swaps in contracts (converted to base units by ctVal),
isolated margin added with `POST /api/v5/account/position/margin-balance` (no transfer: one account), funding from the
bills (ccxt `fetch_funding_history`, type 8), the predicted rate and next settlement from the funding-rate channel,
liquidations by the order's `category`, position tiers from the public `position-tiers` endpoint."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import ccxt.pro as ccxtpro

from basisbot.exchange.ccxt_setup import OKX_CLIENT_OPTIONS, use_local_okx_venue
from basisbot.live.venue_hooks.base import ONE, VenueHooks, dec

# the order categories OKX gives the orders it places itself on a position (liquidation, auto-deleveraging)
LIQUIDATION_CATEGORIES = ("full_liquidation", "partial_liquidation", "adl")


# the top of OKX's auto-deleveraging indicator (a position's `adl`, "0".."5"; older pages of the docs said 1..5)
OKX_ADL_TOP = 5


def okx_adl_ranks(positions: list[dict]) -> dict[str, int]:
    """{ccxt symbol: OKX's `adl`} of the open positions among ccxt okx positions (GET /api/v5/account/positions or
    the positions channel, the raw row in `info`): a flat row or an empty `adl` ("" where OKX has no indicator) is
    left out, as a symbol without a position. A value outside 0..5 is an error naming the instrument."""
    out = {}
    for p in positions:
        info = p.get("info") or {}
        pos = dec(info.get("pos"))
        if pos is None:
            pos = dec(p.get("contracts"))
        raw = info.get("adl")
        if not pos or raw in (None, ""):
            continue
        try:
            rank = int(str(raw))
        except ValueError:
            rank = -1
        if not 0 <= rank <= OKX_ADL_TOP:
            raise ccxt.BadResponse(f"{info.get('instId') or p.get('symbol')}: position adl {raw!r} is not OKX's "
                                   f"auto-deleveraging indicator 0..{OKX_ADL_TOP}")
        out[p.get("symbol")] = rank
    return out


class OkxHooks(VenueHooks):
    name = "okx"
    transfer_from_spot = False
    separate_funding_stream = True
    tiers_need_credentials = False
    # OKX's clOrdId is 1-32 letters and digits: nautilus' ids without hyphens ("O20221201000000001001001")
    strategy_overrides = {"use_hyphens_in_client_order_ids": False}
    # a position's `adl`: 0 (lowest priority) .. 5 (first in line when the insurance fund is depleted)
    adl_scale = "rank"
    adl_top = OKX_ADL_TOP

    # -- session ------------------------------------------------------------------------------------------------------
    def credentials(self, api_key: str | None, api_secret: str | None, passphrase: str | None) -> dict:
        if api_key and api_secret:
            return {"apiKey": api_key, "secret": api_secret, "password": passphrase or ""}
        return {}

    def make_clients(self, common: dict, extra_spot: dict, extra_perp: dict):
        options = {"fetchMarkets": dict(OKX_CLIENT_OPTIONS["fetchMarkets"])}
        return (ccxtpro.okx({**common, "options": {**options, "defaultType": "spot", **extra_spot}}),
                ccxtpro.okx({**common, "options": {**options, "defaultType": "swap", **extra_perp}}))

    def make_perp_client(self, common: dict, extra_perp: dict):
        return self.make_clients(common, {}, extra_perp)[1]

    def point_at(self, ex, url: str) -> None:
        use_local_okx_venue(ex, url)

    def restore_errors(self, spot, perp) -> None:
        return None  # ccxt's OKX error table does not depend on the host

    def default_where(self) -> str:
        return "www.okx.com"

    # -- markets ------------------------------------------------------------------------------------------------------
    def carry_symbol(self, market: dict) -> str:
        return f"{market['base']}{market['quote']}"

    def contract_value(self, market: dict) -> Decimal:
        if not market.get("contract"):
            return ONE
        info = market.get("info") or {}
        ct = dec(info.get("ctVal")) or dec(market.get("contractSize"))
        if ct is None or ct <= 0:
            from basisbot.live.instruments import InstrumentError

            raise InstrumentError(f"{market.get('symbol')}: no contract value (ctVal) in the exchange's market data")
        if info.get("ctValCcy") not in (None, "", market.get("base")):
            from basisbot.live.instruments import InstrumentError

            raise InstrumentError(f"{market.get('symbol')}: contract value in {info.get('ctValCcy')}, not the base "
                                  "asset (only linear USDT swaps are traded)")
        return ct.normalize()

    def rules(self, market: dict):
        """OKX's instrument row in base units: tick `tickSz`, lot `lotSz` and minimum `minSz` (× `ctVal` on a swap),
        no minimum notional (OKX sizes by contracts), the market order maximum `maxMktSz` (× `ctVal`)."""
        from basisbot.live.instruments import InstrumentError, MarketRules

        info = market.get("info") or {}
        ct = self.contract_value(market)
        tick, lot, minimum = dec(info.get("tickSz")), dec(info.get("lotSz")), dec(info.get("minSz"))
        if not tick or not lot or tick <= 0 or lot <= 0:
            raise InstrumentError(f"{market.get('symbol')}: no tickSz / lotSz in the exchange's market data")
        max_mkt = dec(info.get("maxMktSz"))
        if max_mkt is not None and not market.get("contract"):
            max_mkt = None  # a spot market order's maximum is in quote currency for buys: not a base limit
        return MarketRules(
            symbol=self.carry_symbol(market), base=str(market["base"]), quote=str(market["quote"]),
            tick_size=tick.normalize(), step_size=(lot * ct).normalize(),
            min_qty=((minimum or lot) * ct).normalize(),
            max_qty=(max_mkt * ct).normalize() if max_mkt and max_mkt > 0 else None,
            min_notional=None, min_price=None, max_price=None)

    async def leverage_tiers(self, client, unified: dict[str, str], where: str) -> dict:
        """OKX's isolated position tiers of each swap (public GET /api/v5/public/position-tiers), as the OKX profile's
        tier tables (sizes in base units by the bundled contract values)."""
        from basisbot.live.session import MissingTiers, VenueError
        from basisbot.venues.okx.contracts import OkxDataError
        from basisbot.venues.okx.tiers import parse_tiers

        out, missing = {}, []
        for carry in unified.values():
            family = self.market_id(carry, "spot")  # BTC-USDT
            ans = await client.publicGetPublicPositionTiers({"instType": "SWAP", "tdMode": "isolated",
                                                             "instFamily": family})
            if not (ans or {}).get("data"):
                missing.append(carry)
                continue
            try:
                tables = parse_tiers(ans, f"{where} position-tiers {family}")
            except OkxDataError as e:
                raise VenueError(f"unusable position tiers from the exchange: {e}") from e
            if carry not in tables:
                missing.append(carry)
            else:
                out[carry] = tables[carry]
        if missing:
            raise MissingTiers(missing, where, "GET /api/v5/public/position-tiers")
        return out

    # -- orders -------------------------------------------------------------------------------------------------------
    def order_request(self, kind: str, cid: str, *, otype: str, post_only: bool, tif: str | None,
                      reduce_only: bool, margin_mode: str | None) -> tuple[str, dict]:
        params: dict = {"clientOrderId": cid}
        if kind == "perp":
            params["marginMode"] = margin_mode or "isolated"  # OKX's tdMode, stated on every swap order
            if reduce_only:
                params["reduceOnly"] = True
        else:
            params["tgtCcy"] = "base_ccy"  # a market buy's size in the base asset, as nautilus states it
        if otype == "limit":
            if post_only:
                params["postOnly"] = True
            elif tif in ("IOC", "FOK"):
                params["timeInForce"] = tif
        return otype, params

    def by_client_id(self, cid: str) -> dict:
        return {"clOrdId": cid}

    def cancel_by_client_id(self, cid: str) -> dict:
        return {"clOrdId": cid}

    def trades_of_order(self, venue_order_id: str) -> dict:
        return {"ordId": venue_order_id}

    def is_duplicate_order(self, e: Exception) -> bool:
        s = str(e)
        return "51016" in s or "Duplicated clOrdId" in s

    def close_kind(self, o: dict) -> str | None:
        """OKX names the exchange's own closes by the order's category."""
        category = str((o.get("info") or {}).get("category") or "")
        if category not in LIQUIDATION_CATEGORIES:
            return None
        return "adl" if category == "adl" else "liquidation"

    def trade_client_id(self, t: dict) -> str | None:
        info = t.get("info") or {}
        return info.get("clOrdId") or None

    async def fetch_orders(self, ex, symbol: str, since: int | None) -> list[dict]:
        """OKX lists open and finished orders apart (ccxt has no fetch_orders for it)."""
        opened = await ex.fetch_open_orders(symbol)
        closed = await ex.fetch_closed_orders(symbol, since)
        seen = {o.get("id") for o in opened}
        return opened + [o for o in closed if o.get("id") not in seen]

    # -- account and margin -------------------------------------------------------------------------------------------
    async def setup_margin(self, ex, symbol: str, mode: str, leverage: int | None, log, label: str = "") -> None:
        """OKX states the margin mode on every order (tdMode); the leverage is set per instrument and mode."""
        if leverage:
            await ex.set_leverage(int(leverage), symbol, {"marginMode": mode})
            log.info(f"{label or symbol}: leverage {leverage}x ({mode})")

    async def add_isolated_margin(self, ex, symbol: str, amount: float) -> None:
        # ccxt's okx.add_margin sends this very request and then fails parsing OKX's answer: call it directly
        market = ex.market(symbol)
        res = await ex.privatePostAccountPositionMarginBalance(
            {"instId": market["id"], "posSide": "net", "type": "add", "amt": f"{amount:.2f}"})
        if str((res or {}).get("code", "0")) != "0":
            raise ccxt.ExchangeError(f"margin-balance refused: {res}")

    def perp_account(self, bal: dict) -> tuple[float, float, float, float, float]:
        """The unified account's USDT row: cash balance (wallet), available balance; OKX states margin per position."""
        info = bal.get("info") or {}
        rows = (info.get("data") or [{}])[0].get("details") if isinstance(info, dict) else None
        row = next((d for d in rows or [] if d.get("ccy") == "USDT"), None)
        if row is None:
            usdt = bal.get("USDT") or {}
            total = float(usdt.get("total") or 0.0)
            return total, float(usdt.get("free") or 0.0), 0.0, 0.0, total
        wallet = float(row.get("cashBal") or row.get("eq") or 0.0)
        avail = float(row.get("availBal") or row.get("availEq") or 0.0)
        return wallet, avail, float(row.get("imr") or 0.0), float(row.get("mmr") or 0.0), wallet

    def position(self, p: dict, prev, contract_value: Decimal):
        """A net-mode swap position: `pos` contracts (signed) × ctVal, `avgPx`, the isolated `margin`, `mgnMode`."""
        from basisbot.live.exec.account import PerpPosition

        info = p.get("info") or {}
        pos = dec(info.get("pos"))
        if pos is None:
            contracts = dec(p.get("contracts")) or Decimal(0)
            pos = -contracts if p.get("side") == "short" else contracts
        amt = pos * contract_value
        entry = float(info.get("avgPx") or p.get("entryPrice") or 0.0)
        mode = str(info.get("mgnMode") or p.get("marginMode") or (prev.mode if prev else "isolated")).lower()
        mode = "isolated" if mode.startswith("iso") else "cross"
        wallet = info.get("margin")
        wallet = float(wallet) if wallet not in (None, "") else float(p.get("collateral") or 0.0)
        ts = int(info.get("uTime") or p.get("timestamp") or 0)
        return PerpPosition(1 if amt > 0 else -1 if amt < 0 else 0, float(abs(amt)), entry if amt else 0.0,
                            wallet if amt else 0.0, mode, ts)

    def funding_source(self, income_id: str) -> str:
        return f"okx:bill:{income_id}"

    async def adl_ranks(self, ex, symbols: list[str]) -> dict[str, int] | None:
        """OKX states the indicator on each position (`adl`): ccxt has no fetchPositionsADLRank for OKX, so the
        positions are read (GET /api/v5/account/positions) and their raw rows parsed."""
        return okx_adl_ranks(await ex.fetch_positions(symbols))

    # -- market data --------------------------------------------------------------------------------------------------
    def mark_fields(self, t: dict) -> tuple:
        info = t.get("info") or {}
        venue_ms = t.get("timestamp") or _int(info.get("ts"))
        mark = t.get("markPrice") if t.get("markPrice") is not None else _f(info.get("markPx"))
        return venue_ms, mark, t.get("indexPrice"), None, None

    def funding_fields(self, fr: dict) -> tuple:
        info = fr.get("info") or {}
        venue_ms = _int(info.get("ts")) or fr.get("timestamp")
        rate = info.get("fundingRate") if info.get("fundingRate") not in (None, "") else fr.get("fundingRate")
        next_ms = fr.get("fundingTimestamp") or _int(info.get("fundingTime"))
        interval = None
        if fr.get("interval"):
            try:
                interval = int(round(float(str(fr["interval"]).rstrip("h")) * 60))
            except ValueError:
                interval = None
        return venue_ms, rate, next_ms, interval

    async def poll_perp(self, ex, symbol: str) -> tuple:
        fr = await ex.fetch_funding_rate(symbol)
        mp = await ex.fetch_mark_price(symbol)
        venue_ms, rate, next_ms, _ = self.funding_fields(fr)
        return mp.get("timestamp") or venue_ms, mp.get("markPrice"), mp.get("indexPrice"), rate, next_ms

    async def funding_intervals(self, ex) -> dict[str, int]:
        return {}  # OKX states the interval with each funding rate (fundingTime .. nextFundingTime)


def _f(v) -> float | None:
    try:
        return None if v in (None, "") else float(v)
    except (TypeError, ValueError):
        return None


def _int(v) -> int | None:
    try:
        return None if v in (None, "") else int(v)
    except (TypeError, ValueError):
        return None
