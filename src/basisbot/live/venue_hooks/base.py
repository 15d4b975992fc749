"""The interface of a venue's live hooks (see the package doc for what each venue does)."""

from __future__ import annotations

from decimal import Decimal

from basisbot.venues import VenueProfile, get_profile

ONE = Decimal(1)


def dec(value) -> Decimal | None:
    """An exact Decimal of an exchange value (strings as written, floats by their repr); None when empty."""
    if value in (None, ""):
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


class VenueHooks:
    """One exchange's differences for the live adapter. Subclasses implement every method."""

    name = ""
    # the unified account (OKX) has no spot -> futures transfer: margin comes from the one USDT balance
    transfer_from_spot = True
    # the predicted rate and next settlement come on their own stream (OKX funding-rate), not with the mark
    separate_funding_stream = False
    # reading the leverage tiers needs credentials (Binance's leverageBracket is signed; OKX's tiers are public)
    tiers_need_credentials = True
    # strategy config fields the venue needs (OKX: client order ids without hyphens)
    strategy_overrides: dict = {}
    # the venue's auto-deleveraging queue: its word for a position's place in it and the bucket first in line
    adl_scale = "rank"
    adl_top = 0

    @property
    def profile(self) -> VenueProfile:
        return get_profile(self.name)

    # -- session ------------------------------------------------------------------------------------------------------
    def make_clients(self, common: dict, extra_spot: dict, extra_perp: dict):
        raise NotImplementedError

    def point_at(self, ex, url: str) -> None:
        raise NotImplementedError

    def restore_errors(self, spot, perp) -> None:
        raise NotImplementedError

    def default_where(self) -> str:
        raise NotImplementedError

    def credentials(self, api_key: str | None, api_secret: str | None, passphrase: str | None) -> dict:
        if api_key and api_secret:
            return {"apiKey": api_key, "secret": api_secret}
        return {}

    # -- markets ------------------------------------------------------------------------------------------------------
    def market_id(self, symbol: str, kind: str) -> str:
        """The exchange's id of a carry symbol's spot ("spot") or perp ("perp") market."""
        return self.profile.spot_symbol(symbol) if kind == "spot" else self.profile.perp_symbol(symbol)

    def carry_symbol(self, market: dict) -> str:
        raise NotImplementedError

    def contract_value(self, market: dict) -> Decimal:
        """Base units per contract of a ccxt market (1 where the exchange trades the base asset itself)."""
        return ONE

    async def leverage_tiers(self, client, unified: dict[str, str], where: str) -> dict:
        """{carry symbol: tier table} of the perps `unified` ({ccxt symbol: carry symbol})."""
        raise NotImplementedError

    # -- orders -------------------------------------------------------------------------------------------------------
    def order_request(self, kind: str, cid: str, *, otype: str, post_only: bool, tif: str | None,
                      reduce_only: bool, margin_mode: str | None) -> tuple[str, dict]:
        """(ccxt order type, params) of one order."""
        raise NotImplementedError

    def by_client_id(self, cid: str) -> dict:
        raise NotImplementedError

    def cancel_by_client_id(self, cid: str) -> dict:
        raise NotImplementedError

    def trades_of_order(self, venue_order_id: str) -> dict:
        raise NotImplementedError

    def is_duplicate_order(self, e: Exception) -> bool:
        raise NotImplementedError

    def close_kind(self, o: dict) -> str | None:
        """"liquidation", "adl" or "insurance" for an order the exchange placed itself to close a position, else
        None."""
        raise NotImplementedError

    def close_done(self, o: dict) -> bool:
        """The exchange's closing order has executed."""
        return o.get("status") in ("closed", "filled")

    def close_client_id(self, o: dict) -> str:
        """The client order id such a close is reported to nautilus and journaled under: the exchange's own (if any)
        and its order id, "-" between. Unique per close: an exchange may give every ADL order the same client id,
        and nautilus keys orders by it (one symbol's close would be taken for an update of another's)."""
        return f"{o.get('clientOrderId') or 'venue-close'}-{o.get('id')}"

    def is_liquidation(self, o: dict) -> bool:
        """Any close the exchange made itself (liquidation, ADL, insurance fund)."""
        return self.close_kind(o) is not None

    def trade_client_id(self, t: dict) -> str | None:
        raise NotImplementedError

    async def fetch_orders(self, ex, symbol: str, since: int | None) -> list[dict]:
        raise NotImplementedError

    # -- account and margin -------------------------------------------------------------------------------------------
    async def setup_margin(self, ex, symbol: str, mode: str, leverage: int | None, log, label: str = "") -> None:
        """Margin mode and leverage of one perp at connect (`label`: the carry symbol, for the log)."""
        raise NotImplementedError

    async def add_isolated_margin(self, ex, symbol: str, amount: float) -> None:
        raise NotImplementedError

    def perp_account(self, bal: dict) -> tuple[float, float, float, float, float]:
        """(wallet, available, initial margin, maintenance margin, cross wallet) in USDT."""
        raise NotImplementedError

    def position(self, p: dict, prev, contract_value: Decimal):
        """`PerpPosition` (base units) of one ccxt position."""
        raise NotImplementedError

    def funding_fee_pushed(self, bal: dict) -> bool:
        """Whether a balance push announces a funding payment (then the income is read at once)."""
        return False

    def funding_source(self, income_id: str) -> str:
        return f"{self.name}:income:{income_id}"

    async def adl_ranks(self, ex, symbols: list[str]) -> dict[str, int] | None:
        """{ccxt symbol: place in the venue's auto-deleveraging queue (0 .. `adl_top`)} of the perps among `symbols`
        that hold a position (a symbol not listed has none); None when the venue does not report it."""
        return None

    # -- market data --------------------------------------------------------------------------------------------------
    def mark_fields(self, t: dict) -> tuple:
        """(venue ms, mark, index, predicted rate, next funding ms) of a watch_mark_price message."""
        raise NotImplementedError

    def funding_fields(self, fr: dict) -> tuple:
        """(venue ms, predicted rate, next funding ms, interval minutes or None) of a funding-rate message."""
        raise NotImplementedError

    async def poll_perp(self, ex, symbol: str) -> tuple:
        """REST fallback of the perp's stream(s): (venue ms, mark, index, predicted rate, next funding ms)."""
        raise NotImplementedError

    async def funding_intervals(self, ex) -> dict[str, int]:
        """{exchange id: interval minutes} the exchange states (empty when it states none)."""
        return {}
