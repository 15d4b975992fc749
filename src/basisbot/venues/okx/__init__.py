"""OKX facts for backtests, pure (no nautilus, no ccxt): contract specs of the USDT-margined swaps (`contracts`), the
funding formula, caps and a causal predictor (`funding`), position tiers and the isolated liquidation price (`tiers`),
and regular-user fees (`fees`). Sources are cited in each module and in backtests/data/SOURCES.md."""
