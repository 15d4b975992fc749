"""OKX's v5 REST and websocket API on the local venue's engine (what ccxt's okx client speaks): contracts
converted to the engine's base units, one unified account."""
