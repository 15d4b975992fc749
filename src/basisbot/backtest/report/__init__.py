"""The self-contained HTML report of a backtest: `html` assembles it from the results folder; `data` reads,
`sections` and `charts` render, `format` formats."""
