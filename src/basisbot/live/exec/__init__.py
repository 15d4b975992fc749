"""The live execution client on ccxt.pro (`client.CcxtExecutionClient`), one module per concern: orders, the user
streams, account and positions, margin, funding income, reconciliation reports."""
