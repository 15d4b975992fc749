"""venues/binance"""
