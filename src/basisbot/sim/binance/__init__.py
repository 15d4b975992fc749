"""Binance's spot and USDⓈ-M REST and websocket API on the local venue's engine (what ccxt's binance and
binanceusdm clients speak)."""
