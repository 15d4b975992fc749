"""Local Binance-compatible venue (spot + USDⓈ-M futures, REST + websockets) replaying the bundled real data.

See ``server.py`` for the entry points, ``client.py`` for pointing ccxt at it.
"""

from basisbot.sim.config import SimConfig
from basisbot.sim.server import SimServer, add_sim_arguments, main, serve

__all__ = ["SimConfig", "SimServer", "add_sim_arguments", "main", "serve"]
