"""`basisbot data download`: market data of any symbol into a folder that `backtest --data`, `sweep --data` and
`sim --data` read as they are.

- `months`: the month range of a request (``YYYY-MM`` inclusive) and the current, still open month.
- `binance_dump`: Binance's public dump site (monthly zips, the current month's daily zips), every file checked
  against its published ``.CHECKSUM`` (sha256).
- `okx`: OKX's v5 REST API through a ccxt client: swap and spot candles, mark-price candles, funding history.
- `manifest`: ``manifest.json`` in the folder: what was fetched, from where, its checksum, months and rows; a
  second run fetches nothing the manifest lists whose file still matches it.
- `command`: the command line (exit 0 all verified, 1 something missing or corrupt, 2 bad input).
"""
