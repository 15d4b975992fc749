"""What the REST route modules and the websocket hub need of the running venue server, as structural types: they
are handed the `SimServer` but do not import it (the server imports them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from basisbot.sim.binance.auth import Auth
    from basisbot.sim.binance.listen_keys import ListenKeys
    from basisbot.sim.config import SimConfig
    from basisbot.sim.engine.core import Venue
    from basisbot.sim.engine.faults import FaultState


class StreamHost(Protocol):
    """What the websocket hub reads: config, the venue, auth, faults and the listen keys."""

    cfg: SimConfig
    venue: Venue
    auth: Auth
    faults: FaultState
    listen_keys: ListenKeys


class ListenKeyStreams(Protocol):
    async def close_listen_key(self, key: str) -> None: ...


class VenueHost(StreamHost, Protocol):
    """What the REST routes read: the above plus the hub, to close a deleted listen key's streams."""

    hub: ListenKeyStreams
