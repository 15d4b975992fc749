"""A fake of the Telegram Bot API on 127.0.0.1 (getMe, getUpdates with long polling, sendMessage), enough for
python-telegram-bot's `Bot(token, base_url=fake.base_url)`: tests queue users' messages with `say(chat_id, text)`
and read what the bot sent in `sent`. A request with another token is answered 401 as Telegram does."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web


class FakeBotAPI:
    def __init__(self, token: str):
        self.token = token
        self.updates: list[dict] = []
        self.sent: list[tuple[int, str]] = []
        self.calls: list[str] = []
        self._next = 1
        self._event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def say(self, chat_id: int, text: str) -> None:
        n = self._next
        self._next += 1
        self.updates.append({"update_id": n, "message": {
            "message_id": n, "date": int(time.time()), "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "op"}, "text": text}})
        self._event.set()

    async def _params(self, request: web.Request) -> dict:
        if request.content_type == "application/json":
            return await request.json()
        form = await request.post()
        out = {}
        for k, v in form.items():
            try:
                out[k] = json.loads(v)
            except (TypeError, ValueError):
                out[k] = v
        return out

    async def _handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        self.calls.append(method)
        if token != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        p = await self._params(request)
        if method == "getMe":
            return web.json_response({"ok": True, "result": {"id": 4242, "is_bot": True, "first_name": "basisbot",
                                                             "username": "fake_basisbot"}})
        if method == "getUpdates":
            offset = int(p.get("offset") or 0)
            deadline = time.monotonic() + min(float(p.get("timeout") or 0), 2.0)
            while True:
                pending = [u for u in self.updates if u["update_id"] >= offset]
                if pending or time.monotonic() >= deadline:
                    return web.json_response({"ok": True, "result": pending})
                self._event.clear()
                try:
                    await asyncio.wait_for(self._event.wait(), max(0.01, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    pass
        if method == "sendMessage":
            chat = int(p["chat_id"])
            self.sent.append((chat, str(p["text"])))
            return web.json_response({"ok": True, "result": {
                "message_id": 10_000 + len(self.sent), "date": int(time.time()), "chat": {"id": chat, "type": "private"},
                "text": p["text"]}})
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def __aenter__(self) -> FakeBotAPI:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()


__all__ = ["FakeBotAPI"]
