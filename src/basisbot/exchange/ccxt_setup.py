"""ccxt client setup shared by the live node and the tests: the stock ccxt / ccxt.pro ``binance`` and ``binanceusdm``
clients' options (``SPOT_CLIENT_OPTIONS``), and pointing them at another venue such as the local one (``basisbot sim``).

Only the hosts in ``exchange.urls['api']`` change (paths are kept, ``https``/``wss`` become ``http``/``ws``)::

    ex = ccxt.pro.binanceusdm({"apiKey": KEY, "secret": SECRET})
    use_local_venue(ex, "http://127.0.0.1:8080")

Options a client should set (all optional, see the README section in the report):

* spot client: ``options["fetchMarkets"] = {"types": ["spot"]}``. ccxt.pro tells a spot stream from a futures
  stream by the ``stream.binance.com`` host in the websocket URL (``is_spot_url``); once the host is rewritten,
  a symbol id such as BTCUSDT that is both a spot and a swap market resolves to the swap market, so spot
  bookTicker / kline messages would be filed under the wrong symbol. Loading only spot markets removes the
  ambiguity. (binanceusdm already loads only linear markets.)
* never ``adjustForTimeDifference``: the venue's serverTime is the *replay* time; signatures are checked against
  the wall clock.

Error mapping: ccxt picks its market-specific error tables (``exceptions['spot'|'linear']``) from the request URL's
host (``get_exceptions_by_url`` looks for ``https://api.binance.com/``, ``https://fapi.binance.com/``...). With the
host rewritten only the common table applies, e.g. futures ``-2019 Margin is insufficient.`` raises a plain
``ExchangeError`` instead of ``InsufficientFunds``. :func:`restore_error_mapping` (or ``use_local_venue(...,
restore_errors=True)``) makes the client pick the table from the URL path instead, so it raises what it would raise
against Binance.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SPOT_CLIENT_OPTIONS = {"fetchMarkets": {"types": ["spot"]}}


def _rewrite(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    scheme = "ws" if parts.scheme in ("ws", "wss") else "http"
    return urlunsplit((scheme, f"{host}:{port}", parts.path, parts.query, parts.fragment))


def _walk(node, fn):
    if isinstance(node, dict):
        return {k: _walk(v, fn) for k, v in node.items()}
    if isinstance(node, str) and "://" in node:
        return fn(node)
    return node


def use_local_venue(exchange, base_url: str, *, restore_errors: bool = False):
    """Rewrite every host in ``exchange.urls['api']`` to the venue at ``base_url`` (``http://127.0.0.1:PORT``)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname, parts.port
    if host is None or port is None:
        raise ValueError(f"base_url must look like http://127.0.0.1:8080, got {base_url!r}")
    exchange.urls["api"] = _walk(exchange.urls["api"], lambda u: _rewrite(u, host, port))
    if restore_errors:
        restore_error_mapping(exchange)
    return exchange


OKX_CLIENT_OPTIONS = {"fetchMarkets": {"types": ["spot", "swap"]}}


def use_local_okx_venue(exchange, base_url: str):
    """Point a stock ccxt / ccxt.pro ``okx`` client at a local venue speaking OKX's v5 API (``basisbot sim --exchange
    okx``): its REST host (``https://{hostname}``) and websocket host (``wss://ws.okx.com:443/ws/v5``) become
    ``base_url``'s, paths kept. Only spot and swap markets are loaded (the venue lists no futures or options), and
    the client must not be in sandbox mode (that adds a header and a query the venue does not expect). OKX's error
    table in ccxt does not depend on the host: the client raises what it raises against OKX."""
    use_local_venue(exchange, base_url)
    if exchange.options.get("sandboxMode"):
        raise ValueError("the okx client is in sandbox mode; the local venue answers the production API only")
    exchange.options["fetchMarkets"] = dict(OKX_CLIENT_OPTIONS["fetchMarkets"])
    return exchange


def non_local_urls(exchange, base_url: str) -> list[str]:
    """URLs in ``exchange.urls['api']`` that do not point at ``base_url``'s host and port (should be empty)."""
    parts = urlsplit(base_url)
    bad: list[str] = []

    def check(u: str) -> str:
        p = urlsplit(u)
        if (p.hostname, p.port) != (parts.hostname, parts.port):
            bad.append(u)
        return u

    _walk(exchange.urls["api"], check)
    return bad


_PATH_MARKET_TYPES = (
    ("/api/", "spot"), ("/sapi/", "spot"), ("/fapi/", "linear"), ("/dapi/", "inverse"), ("/eapi/", "option"),
    ("/papi/", "portfolioMargin"),
)


def restore_error_mapping(exchange, market_type: str | None = None) -> None:
    """Make ccxt choose its market-specific error table from the URL *path* (``/api``, ``/sapi`` -> spot,
    ``/fapi`` -> linear, ...) instead of the Binance host name, so a client pointed at the local venue raises the
    exceptions it raises against Binance (see the module docstring). Only this client instance is changed; calling
    it again is a no-op. ``market_type`` is accepted for compatibility and not needed: the path decides, as the
    host does against Binance (a spot client's /fapi request uses the linear table)."""
    if getattr(exchange, "_sim_errors_by_path", False):
        return
    exchange._sim_errors_by_path = True
    original = exchange.get_exceptions_by_url

    def by_path(url, exact_or_broad):
        path = urlsplit(url).path if url else ""
        for prefix, market_type in _PATH_MARKET_TYPES:
            if path.startswith(prefix):
                return exchange.exceptions.get(market_type, {}).get(exact_or_broad, {})
        return original(url, exact_or_broad)

    exchange.get_exceptions_by_url = by_path
