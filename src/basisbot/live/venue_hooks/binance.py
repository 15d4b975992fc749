"""Binance's live hooks: stock ccxt.pro `binance` (spot) and `binanceusdm` (USDⓈ-M) clients, separate spot and
futures wallets (isolated margin moved from spot by a transfer), income history for funding, liquidation orders by
their `autoclose-` client ids, the markPrice stream carrying the predicted rate and next settlement."""

from __future__ import annotations

import ccxt
import ccxt.pro as ccxtpro

from basisbot.exchange.ccxt_setup import SPOT_CLIENT_OPTIONS, restore_error_mapping, use_local_venue
from basisbot.live.venue_hooks.base import VenueHooks

VENUE_CLOSE_PREFIXES = ("autoclose-", "adl_autoclose")


def venue_close_kind(o: dict) -> str | None:
    """"liquidation", "adl" or "insurance" for an order the exchange placed itself to close a position (a ccxt order:
    Binance's raw status NEW_ADL / NEW_INSURANCE comes through ccxt unmapped), else None."""
    cid = str(o.get("clientOrderId") or "")
    status = str(o.get("status") or "")
    if status == "NEW_ADL" or cid.startswith("adl_autoclose"):
        return "adl"
    if status == "NEW_INSURANCE":
        return "insurance"
    if cid.startswith("autoclose-"):
        return "liquidation"
    return None


def venue_close_client_id(o: dict) -> str:
    """The client order id a venue-initiated close is reported to nautilus and journaled under: the exchange's own
    ("adl_autoclose", "autoclose-<ms>") and its order id, "-" between."""
    return f"{o.get('clientOrderId') or 'autoclose'}-{o.get('id')}"


def venue_close_done(o: dict) -> bool:
    """The exchange's closing order has executed: FILLED (ccxt "closed") on REST and for a liquidation; Binance's
    stream pushes an ADL or an insurance-fund close with status NEW_ADL / NEW_INSURANCE and the fill in it."""
    status = str(o.get("status") or "")
    if status in ("closed", "filled"):
        return True
    return status in ("NEW_ADL", "NEW_INSURANCE") and float(o.get("filled") or 0.0) > 0




class BinanceHooks(VenueHooks):
    name = "binance"
    # GET /fapi/v1/adlQuantile: 0 (no position) .. 4 (first to be deleveraged)
    adl_scale = "quantile"
    adl_top = 4

    # -- session ------------------------------------------------------------------------------------------------------
    def make_clients(self, common: dict, extra_spot: dict, extra_perp: dict):
        spot_options = {**SPOT_CLIENT_OPTIONS, "defaultType": "spot",
                        "newOrderRespType": {"market": "FULL", "limit": "FULL"}, **extra_spot}
        perp_options = {"warnOnFetchOpenOrdersWithoutSymbol": False, **extra_perp}
        return (ccxtpro.binance({**common, "options": spot_options}),
                ccxtpro.binanceusdm({**common, "options": perp_options}))

    def make_perp_client(self, common: dict, extra_perp: dict):
        return ccxtpro.binanceusdm({**common, "options": {"warnOnFetchOpenOrdersWithoutSymbol": False,
                                                          **extra_perp}})

    def point_at(self, ex, url: str) -> None:
        use_local_venue(ex, url, restore_errors=True)

    def restore_errors(self, spot, perp) -> None:
        restore_error_mapping(spot, "spot")
        restore_error_mapping(perp, "linear")

    def default_where(self) -> str:
        return "api.binance.com / fapi.binance.com"

    # -- markets ------------------------------------------------------------------------------------------------------
    def carry_symbol(self, market: dict) -> str:
        return str(market["id"])

    def rules(self, market: dict):
        from basisbot.live.instruments import market_rules

        return market_rules(market)

    async def leverage_tiers(self, client, unified: dict[str, str], where: str) -> dict:
        from basisbot.venues.binance.brackets_file import parse_ccxt_tiers

        tiers = await client.fetch_leverage_tiers(list(unified))
        tiers = tiers if isinstance(tiers, dict) else {}
        missing = [i for u, i in unified.items() if not tiers.get(u)]
        if missing:
            from basisbot.live.session import MissingTiers

            raise MissingTiers(missing, where)
        return parse_ccxt_tiers({u: tiers[u] for u in unified}, f"{where} fetch_leverage_tiers", ids=unified)

    # -- orders -------------------------------------------------------------------------------------------------------
    def order_request(self, kind: str, cid: str, *, otype: str, post_only: bool, tif: str | None,
                      reduce_only: bool, margin_mode: str | None) -> tuple[str, dict]:
        params: dict = {"newClientOrderId": cid}
        if kind == "perp" and reduce_only:
            params["reduceOnly"] = True
        if otype == "limit":
            if post_only:
                if kind == "spot":
                    otype = "LIMIT_MAKER"
                else:
                    params["timeInForce"] = "GTX"
            else:
                params["timeInForce"] = tif or "GTC"
        return otype, params

    def by_client_id(self, cid: str) -> dict:
        return {"clientOrderId": cid}

    def cancel_by_client_id(self, cid: str) -> dict:
        return {"origClientOrderId": cid}

    def trades_of_order(self, venue_order_id: str) -> dict:
        return {"orderId": venue_order_id}

    def is_duplicate_order(self, e: Exception) -> bool:
        s = str(e)
        return "Duplicate order sent" in s or '"code":-4116' in s or "ClientOrderId is duplicated" in s

    def close_kind(self, o: dict) -> str | None:
        return venue_close_kind(o)

    def close_done(self, o: dict) -> bool:
        return venue_close_done(o)

    def close_client_id(self, o: dict) -> str:
        return venue_close_client_id(o)

    def trade_client_id(self, t: dict) -> str | None:
        info = t.get("info") or {}
        raw = info.get("o") if isinstance(info.get("o"), dict) else info
        return raw.get("c") if isinstance(raw, dict) else None

    async def fetch_orders(self, ex, symbol: str, since: int | None) -> list[dict]:
        return await ex.fetch_orders(symbol, since)

    # -- account and margin -------------------------------------------------------------------------------------------
    async def setup_margin(self, ex, symbol: str, mode: str, leverage: int | None, log, label: str = "") -> None:
        label = label or symbol
        try:
            await ex.set_margin_mode(mode, symbol)
            log.info(f"{label}: margin mode {mode}")
        except ccxt.BaseError as e:
            msg = str(e)
            if "-4046" in msg or "No need to change margin type" in msg:
                pass  # already so
            elif "-4048" in msg or "-4047" in msg:
                log.warning(f"{label}: margin mode not changed to {mode} (open position or orders): {msg}")
            else:
                raise
        if leverage:
            await ex.set_leverage(int(leverage), symbol)
            log.info(f"{label}: leverage {leverage}x")

    async def add_isolated_margin(self, ex, symbol: str, amount: float) -> None:
        await ex.add_margin(symbol, amount)

    def perp_account(self, bal: dict) -> tuple[float, float, float, float, float]:
        info = bal.get("info") or {}
        asset = next((a for a in info.get("assets") or [] if a.get("asset") == "USDT"), None) \
            if isinstance(info, dict) else None
        if asset is not None:
            wallet = float(asset.get("walletBalance") or 0.0)
            return (wallet, float(asset.get("availableBalance") or 0.0), float(asset.get("initialMargin") or 0.0),
                    float(asset.get("maintMargin") or 0.0), float(asset.get("crossWalletBalance") or wallet))
        # /fapi/v2/balance shape
        row = next((a for a in info if isinstance(a, dict) and a.get("asset") == "USDT"), {}) \
            if isinstance(info, list) else {}
        wallet = float(row.get("balance") or bal.get("USDT", {}).get("total") or 0.0)
        avail = float(row.get("availableBalance") or bal.get("USDT", {}).get("free") or 0.0)
        return wallet, avail, 0.0, 0.0, float(row.get("crossWalletBalance") or wallet)

    def position(self, p: dict, prev, contract_value):
        from basisbot.live.exec.account import PerpPosition

        info = p.get("info") or {}
        amt = info.get("pa", info.get("positionAmt"))
        if amt is None:
            contracts = float(p.get("contracts") or 0.0)
            amt = -contracts if p.get("side") == "short" else contracts
        amt = float(amt)
        entry = float(info.get("ep", info.get("entryPrice")) or p.get("entryPrice") or 0.0)
        wallet = info.get("iw", info.get("isolatedWallet"))
        wallet = float(wallet) if wallet not in (None, "") else float(p.get("collateral") or 0.0)
        mt = str(info.get("mt") or info.get("marginType") or p.get("marginMode") or
                 (prev.mode if prev else "isolated")).lower()
        mode = "isolated" if mt.startswith("iso") else "cross"
        return PerpPosition(1 if amt > 0 else -1 if amt < 0 else 0, abs(amt), entry if amt else 0.0,
                            wallet if amt else 0.0, mode, int(p.get("timestamp") or 0))

    def funding_fee_pushed(self, bal: dict) -> bool:
        info = bal.get("info") or {}
        return isinstance(info.get("a"), dict) and info["a"].get("m") == "FUNDING_FEE"

    def funding_source(self, income_id: str) -> str:
        return f"binance:income:{income_id}"

    async def adl_ranks(self, ex, symbols: list[str]) -> dict[str, int] | None:
        """Binance's `adlQuantile` of each position (ccxt `fetch_positions_adl_rank`: one-way mode's BOTH bucket)."""
        if not ex.has.get("fetchPositionsADLRank"):
            return None
        return {r["symbol"]: int(r["rank"]) for r in await ex.fetch_positions_adl_rank(symbols)
                if r.get("symbol") and r.get("rank") is not None}

    # -- market data --------------------------------------------------------------------------------------------------
    def mark_fields(self, t: dict) -> tuple:
        info = t.get("info") or {}
        venue_ms = info.get("E") or t.get("timestamp")
        mark = t.get("markPrice") if t.get("markPrice") is not None else _f(info.get("p"))
        index = t.get("indexPrice") if t.get("indexPrice") is not None else _f(info.get("i"))
        return venue_ms, mark, index, info.get("r"), info.get("T")

    async def poll_perp(self, ex, symbol: str) -> tuple:
        fr = await ex.fetch_funding_rate(symbol)
        info = fr.get("info") or {}
        venue_ms = fr.get("timestamp") or info.get("time")
        return (venue_ms, fr.get("markPrice"), fr.get("indexPrice"), info.get("lastFundingRate", fr.get("fundingRate")),
                info.get("nextFundingTime") or fr.get("fundingTimestamp"))

    async def funding_intervals(self, ex) -> dict[str, int]:
        res = await ex.fetch_funding_intervals()
        out = {}
        for sym, fr in (res or {}).items():
            info = fr.get("info") or {}
            hours = info.get("fundingIntervalHours")
            if hours is None and fr.get("interval"):
                hours = float(str(fr["interval"]).rstrip("h"))
            if hours:
                out[str(info.get("symbol") or ex.market(sym)["id"])] = int(round(float(hours) * 60))
        return out


def _f(v) -> float | None:
    try:
        return None if v in (None, "") else float(v)
    except (TypeError, ValueError):
        return None
