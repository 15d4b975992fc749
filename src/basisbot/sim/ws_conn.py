"""One websocket client of the local venue, whatever API it speaks: a bounded outgoing queue drained by a sender
task (a slow consumer is disconnected, as the exchanges do), and the teardown when the socket ends."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web


class WsConn:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, maxsize: int):
        self.ws = ws
        self.request = request
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self.sender: asyncio.Task | None = None
        self.dead = False

    def enqueue(self, payload) -> None:
        """A message (text, or an object sent as compact JSON) for the sender; a full queue drops the client."""
        if self.dead:
            return
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.abort()

    def abort(self) -> None:
        self.dead = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)

    def start_sender(self) -> None:
        self.sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        try:
            while True:
                item = await self.queue.get()
                if item is None or self.ws.closed:
                    break
                await self.ws.send_str(item)
        except (ConnectionError, RuntimeError):
            self.dead = True

    async def close_socket(self, code: int) -> None:
        """Close the websocket with `code` (the venue hangs up), giving it 2 s."""
        self.dead = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code), 2.0)

    async def close(self) -> None:
        """The socket ended: stop the sender and wait for it."""
        self.dead = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.sender


async def close_all(conns) -> None:
    """Every client: a going-away close (1001), then the transport dropped."""
    await asyncio.gather(*(c.close_socket(1001) for c in list(conns)), return_exceptions=True)
    for c in list(conns):
        c.abort()


def drop_all(conns, mode: str = "abort") -> int:
    """The venue drops every client (a fault): a going-away close ("close") or the transport cut ("abort"); how many."""
    dropped = list(conns)
    for conn in dropped:
        if mode == "close":
            asyncio.ensure_future(conn.close_socket(1001))
        else:
            conn.abort()
    return len(dropped)
