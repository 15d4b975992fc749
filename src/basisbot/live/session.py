"""One connection to the exchange for the whole node: the stock ccxt.pro spot and perp clients of `[exchange] name`
(Binance: `binance` + `binanceusdm`; OKX: `okx` twice, see `basisbot.live.venue_hooks`), their markets, and the time
base that maps the exchange's timestamps onto the node's clock.

- Credentials come from `Settings.api_key/api_secret` (and, for OKX, `api_passphrase`; environment or `.env`, named
  by `exchange.api_key_env` ...); paper mode runs without them (public market data only).
- `live.exchange_url` rewrites every REST and websocket host of both clients (`basisbot.exchange.ccxt_setup.use_local_venue`:
  hosts only, paths kept, https/wss -> http/ws), and ccxt's market-specific error tables are merged back so the
  clients raise what they would raise against Binance (InsufficientFunds, OrderNotFound...).
- `VenueTime`: against Binance the exchange's times are UTC and the mapping is the identity. A replaying venue (the
  local simulator) runs its own clock: its serverTime is far from the wall clock, and it can jump forward. The node
  then maps venue time to local time linearly (offset, and `speed` replay seconds per wall second, default 1) and
  re-anchors when a jump is observed, so settlement times, schedule windows and leg timeouts stay consistent with the
  strategy's (wall) clock. The speed comes from `[live] venue_speed`, `--venue-speed`, or the local venue itself
  (`read_venue_clock`: GET /sim/clock, answered by `basisbot sim` only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import ccxt

from basisbot.core.units import MS, NS
from basisbot.exchange.ccxt_setup import non_local_urls
from basisbot.live.venue_hooks import VenueHooks, hooks_for

log = logging.getLogger("basisbot.live")



class VenueError(Exception):
    """The venue could not be reached or refused what the node needs at start-up (message says what)."""


class CredentialsNeeded(Exception):
    """Reading what the node needs from the exchange requires API credentials (message says what)."""


class MissingTiers(Exception):
    """The exchange gave no leverage brackets for some configured perps."""

    def __init__(self, symbols: list[str], where: str, endpoint: str = "GET /fapi/v1/leverageBracket"):
        self.symbols = symbols
        super().__init__(f"the exchange ({where}) gave no leverage brackets for {', '.join(symbols)} "
                         f"({endpoint}): not a USDⓈ-M perpetual it trades for this account")


class VenueTime:
    """venue ms -> local ns. Identity against Binance; linear with re-anchoring against a replaying venue."""

    def __init__(self, *, speed: float = 1.0, follow_jumps: bool = False, tolerance_s: float = 2.0,
                 clock_ns=time.time_ns):
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = float(speed)
        self.follow_jumps = follow_jumps
        self.tolerance_ns = int(tolerance_s * NS)
        self._clock_ns = clock_ns
        self._anchor_venue_ns = 0  # venue time at the anchor
        self._anchor_local_ns = 0  # local time at the anchor
        self.identity = True
        self.jumps = 0
        self.on_anchor = None  # called with (venue_ms, local_ns, speed) after each (re-)anchoring

    def calibrate(self, venue_ms: int, local_ns: int | None = None) -> None:
        """Anchor venue time `venue_ms` at local time `local_ns` (now by default)."""
        self._anchor_venue_ns = int(venue_ms) * MS
        self._anchor_local_ns = self._clock_ns() if local_ns is None else int(local_ns)
        self.identity = False
        if self.on_anchor is not None:
            try:
                self.on_anchor(int(venue_ms), self._anchor_local_ns, self.speed)
            except Exception:  # pragma: no cover - a listener's failure never breaks the time base
                log.exception("venue time anchor listener failed")

    @property
    def anchor(self) -> tuple[int, int]:
        """(venue ms, local ns) of the current anchor."""
        return self._anchor_venue_ns // MS, self._anchor_local_ns

    def to_local(self, venue_ms: int | float | None) -> int:
        if venue_ms is None:
            return self._clock_ns()
        v = int(venue_ms * MS)
        if self.identity:
            return v
        return self._anchor_local_ns + int((v - self._anchor_venue_ns) / self.speed)

    def to_venue_ms(self, local_ns: int) -> int:
        if self.identity:
            return local_ns // MS
        return (self._anchor_venue_ns + int((local_ns - self._anchor_local_ns) * self.speed)) // MS

    def venue_now_ms(self) -> int:
        return self.to_venue_ms(self._clock_ns())

    def observe(self, venue_ms: int | None) -> bool:
        """Feed the event time of a fresh venue message; re-anchors (returns True) on a jump of the venue's clock."""
        if venue_ms is None or self.identity or not self.follow_jumps:
            return False
        now = self._clock_ns()
        predicted_local = self.to_local(venue_ms)
        # an event is never from the future; a late one (network) only lags: re-anchor on clear jumps either way
        if abs(predicted_local - now) > self.tolerance_ns:
            self.calibrate(venue_ms, now)
            self.jumps += 1
            log.warning("venue clock jumped: re-anchored venue %s ms at local now (jump #%d)", venue_ms, self.jumps)
            return True
        return False


async def read_venue_clock(url: str, timeout_s: float = 2.0) -> dict | None:
    """The local venue's replay clock (`basisbot sim`'s GET /sim/clock: {"time": venue ms, "speed", "paused",
    "wall_ms"}), or None when the venue does not serve it (Binance, another venue) or cannot be reached."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
            async with http.get(url.rstrip("/") + "/sim/clock") as resp:
                if resp.status != 200:
                    return None
                body = await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("speed"), (int, float)) or not body["speed"] > 0:
        return None
    return body


@dataclass
class SessionOptions:
    exchange_url: str | None = None
    api_key: str | None = None
    api_secret: str | None = None
    api_passphrase: str | None = None  # OKX
    exchange: str = "binance"  # [exchange] name: which venue hooks the clients follow
    rate_limit: bool = True  # ccxt's client-side throttle (keep on against Binance)
    timeout_ms: int = 10_000
    venue_speed: float = 1.0  # replay seconds per wall second of a replaying venue (the local simulator)
    extra_spot_options: dict = field(default_factory=dict)
    extra_perp_options: dict = field(default_factory=dict)


class VenueSession:
    """The two ccxt.pro clients (shared by the data and execution clients) and the venue time base."""

    def __init__(self, opts: SessionOptions):
        self.opts = opts
        self.hooks: VenueHooks = hooks_for(opts.exchange)
        creds = self.hooks.credentials(opts.api_key, opts.api_secret, opts.api_passphrase)
        self.authenticated = bool(creds)
        common = {"enableRateLimit": opts.rate_limit, "timeout": opts.timeout_ms, **creds}
        self.spot, self.perp = self.hooks.make_clients(common, opts.extra_spot_options, opts.extra_perp_options)
        if opts.exchange_url:
            for ex in (self.spot, self.perp):
                self._point_at_local(ex)
        else:
            self.hooks.restore_errors(self.spot, self.perp)
        self.time = VenueTime(speed=opts.venue_speed, follow_jumps=bool(opts.exchange_url))
        self.spot_markets: dict = {}
        self.perp_markets: dict = {}
        self._closed = False

    def _point_at_local(self, ex) -> None:
        self.hooks.point_at(ex, self.opts.exchange_url)
        bad = non_local_urls(ex, self.opts.exchange_url)
        if bad:
            raise VenueError(f"could not rewrite every host to {self.opts.exchange_url}: {bad[:3]}")

    async def start(self, *, retries: int = 3) -> None:
        """Load both clients' markets and calibrate the time base (a few retries on network errors)."""
        delay = 0.5
        for attempt in range(retries + 1):
            try:
                self.spot_markets = await self.spot.load_markets()
                self.perp_markets = await self.perp.load_markets()
                await self.calibrate()
                return
            except ccxt.NetworkError as e:
                if attempt >= retries:
                    raise VenueError(f"cannot reach the exchange ({self.where()}): {e}") from e
                log.warning("load markets failed (%s), retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay *= 2
            except ccxt.BaseError as e:
                raise VenueError(f"the exchange ({self.where()}) refused: {e}") from e

    async def calibrate(self) -> None:
        t0 = time.time_ns()
        server_ms = await self.perp.fetch_time()
        t1 = time.time_ns()
        mid = (t0 + t1) // 2
        if self.opts.exchange_url and (abs(server_ms * MS - mid) > 60 * NS or self.opts.venue_speed != 1.0):
            self.time.calibrate(server_ms, mid)
            log.info("replaying venue: venue time %d ms anchored at local %d ns (speed %g)", server_ms, mid,
                     self.time.speed)

    def where(self) -> str:
        return self.opts.exchange_url or self.hooks.default_where()

    def _perp_client(self, api_key: str | None, api_secret: str | None):
        """An authenticated USDⓈ-M client: the session's own, or (paper: the session stays public) a short-lived one
        with `api_key` (read-only is enough) and the session's host rewriting and markets."""
        if self.authenticated:
            return self.perp, False
        if not (api_key and api_secret):
            return None, False
        creds = self.hooks.credentials(api_key, api_secret, self.opts.api_passphrase)
        tmp = self.hooks.make_perp_client({"enableRateLimit": self.opts.rate_limit, "timeout": self.opts.timeout_ms,
                                           **creds}, self.opts.extra_perp_options)
        if self.opts.exchange_url:
            self._point_at_local(tmp)
        if self.perp.markets:
            tmp.set_markets(self.perp.markets, self.perp.currencies)
        return tmp, True

    async def leverage_tiers(self, exchange_ids: list[str], *, api_key: str | None = None,
                             api_secret: str | None = None) -> dict:
        """The exchange's leverage brackets of these perps (ccxt `fetch_leverage_tiers`, Binance's signed
        `GET /fapi/v1/leverageBracket`) as {exchange id: BracketTable}.

        Raises `CredentialsNeeded` without credentials, `MissingTiers` naming the symbols the exchange gave none
        for, and `VenueError` when the exchange cannot be reached or answers something unusable."""
        from basisbot.core.brackets import BracketError
        from basisbot.live.instruments import find_market

        unified = {find_market(self.perp_markets, self.hooks.market_id(i, "perp"), kind="perp")["symbol"]: i
                   for i in exchange_ids}
        if self.hooks.tiers_need_credentials:
            client, temporary = self._perp_client(api_key, api_secret)
        else:
            client, temporary = self.perp, False
        if client is None:
            raise CredentialsNeeded("the leverage brackets are read from the exchange (GET /fapi/v1/leverageBracket "
                                    "is a signed endpoint)")
        try:
            return await self.hooks.leverage_tiers(client, unified, self.where())
        except ccxt.AuthenticationError as e:
            raise VenueError(f"the exchange ({self.where()}) refused the credentials reading leverage brackets: "
                             f"{e}") from e
        except ccxt.BaseError as e:
            raise VenueError(f"cannot read leverage brackets from the exchange ({self.where()}): {e}") from e
        except BracketError as e:
            raise VenueError(f"unusable leverage brackets from the exchange: {e}") from e
        finally:
            if temporary:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), 5)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for ex in (self.spot, self.perp):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ex.close(), 5)

    # -- symbol helpers -------------------------------------------------------------------------------------------
    def spot_symbol(self, exchange_id: str) -> str:
        """Unified ccxt spot symbol ("BTC/USDT") of a carry symbol ("BTCUSDT")."""
        from basisbot.live.instruments import find_market

        return find_market(self.spot_markets, self.hooks.market_id(exchange_id, "spot"), kind="spot")["symbol"]

    def perp_symbol(self, exchange_id: str) -> str:
        from basisbot.live.instruments import find_market

        return find_market(self.perp_markets, self.hooks.market_id(exchange_id, "perp"), kind="perp")["symbol"]

    def contract_value(self, unified: str):
        """Base units per contract of a ccxt market (1 on Binance and on spot markets)."""
        markets = self.perp_markets if unified in self.perp_markets else self.spot_markets
        return self.hooks.contract_value(markets[unified])
