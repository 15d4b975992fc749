"""The local venue (spot + perpetual, REST + websockets; Binance's or OKX's API) replaying the bundled real data.

See ``README.md`` and ``server.py`` for the entry points, ``client.py`` for pointing ccxt at it. Names are resolved
lazily so ``basisbot.sim.cliargs`` can be imported without aiohttp/pandas.
"""

from __future__ import annotations

__all__ = ["SimConfig", "SimServer", "add_sim_arguments", "main", "serve"]


def __getattr__(name: str):
    if name == "SimConfig":
        from basisbot.sim.config import SimConfig

        return SimConfig
    if name == "add_sim_arguments":
        from basisbot.sim.cliargs import add_sim_arguments

        return add_sim_arguments
    if name in ("SimServer", "main", "serve"):
        from basisbot.sim import server

        return getattr(server, name)
    raise AttributeError(f"module 'basisbot.sim' has no attribute {name!r}")
