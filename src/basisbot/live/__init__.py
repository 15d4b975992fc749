"""Live and paper trading on a nautilus TradingNode: ccxt / ccxt.pro clients for Binance spot + USDⓈ-M.

Modules: `venue` (shared ccxt.pro clients, URL rewrite, venue time base), `instruments` (ccxt markets -> nautilus
instruments), `data_client` (quotes, mark, index, predicted funding), `exec_client` (orders, fills, accounts,
positions, margin, funding income, reconciliation reports), `paper` (simulated fills on live data), `node`
(TradingNode assembly, `live_main` / `paper_main`).
"""
