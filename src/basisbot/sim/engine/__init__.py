"""The local venue's engine: replayed prices, order matching, accounts, funding, isolated margin, liquidation and
faults, in base units and independent of the exchange API a client speaks (`sim/binance`, `sim/okx`)."""
