"""Telegram control (optional): `/status`, `/pause [SYM ...]`, `/resume [SYM ...]`, `/flatten [SYM ...]` (no symbol:
all) from the chats in `[control] telegram_chat_ids`, through python-telegram-bot's `Bot` (long polling with
getUpdates on the node's event loop; `[control] telegram_base_url` points it at another Bot API server, e.g. a local
fake in tests). A message from any other chat is ignored (no answer) and journaled + alerted as `control_refused`.

Why python-telegram-bot rather than aiogram: it adds only httpx to our dependencies, where aiogram pins pydantic
below the version the config layer runs on (installing it downgrades pydantic); and its `Bot` is usable on its own,
without handing the event loop to a framework's dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import SecretStr

from basisbot.ops.control import ControlHub

HELP = ("commands: /status, /pause [SYM ...], /resume [SYM ...], /flatten [SYM ...] (no symbol: every symbol)")
DEFAULT_BASE_URL = "https://api.telegram.org/bot"


def format_replies(command: str, replies: list[dict]) -> str:
    if not replies:
        return f"{command}: no strategy answered"
    return "\n".join(f"{r['symbol']}: {r['answer'] if command != 'status' else r['state']} · phase {r['phase']} · "
                     f"spot {r['spot_qty']} · perp {r['perp_qty']}" + (f" · pair {r['pair']} in flight" if r['pair']
                                                                       else "") for r in replies)


class TelegramControl:
    def __init__(self, token: SecretStr, chat_ids: list[int], hub: ControlHub, *, base_url: str | None = None,
                 poll_s: float = 10.0, log=None):
        self._token = token
        self.allowed = frozenset(int(c) for c in chat_ids)
        self.hub = hub
        self.base_url = base_url or DEFAULT_BASE_URL
        self.poll_s = poll_s
        self.log = log
        self.handled = 0
        self.ignored = 0

    def _scrub(self, text: str) -> str:
        """An error text with the bot token removed (httpx errors can quote the URL, which holds it)."""
        return str(text).replace(self._token.get_secret_value(), "***")

    def _warn(self, msg: str) -> None:
        if self.log is not None:
            self.log.warning(self._scrub(msg))

    async def run(self) -> None:
        from telegram import Bot

        bot = Bot(self._token.get_secret_value(), base_url=self.base_url)
        backoff = 1.0
        while True:  # initialise (getMe) until the Bot API answers
            try:
                await bot.initialize()
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._warn(f"telegram: getMe failed ({type(e).__name__}: {e}); retrying in {backoff:g}s")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
        offset = None
        backoff = 1.0
        try:
            while True:
                try:
                    updates = await bot.get_updates(offset=offset, timeout=int(self.poll_s),
                                                    allowed_updates=["message"])
                    backoff = 1.0
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    self._warn(f"telegram: getUpdates failed ({type(e).__name__}: {e}); retrying in {backoff:g}s")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
                    continue
                for u in updates:
                    offset = u.update_id + 1
                    try:
                        await self.handle(bot, u)
                    except asyncio.CancelledError:
                        raise
                    except Exception as e:  # one bad update never stops the loop
                        self._warn(f"telegram: update {u.update_id}: {type(e).__name__}: {e}")
        finally:
            with contextlib.suppress(Exception):
                await bot.shutdown()

    def answer(self, text: str, chat_id: int) -> str | None:
        """The reply to `text` from `chat_id` (None: ignored, from a chat not allowed). On the loop's thread."""
        words = text.strip().split()
        if not words or not words[0].startswith("/"):
            return None if chat_id not in self.allowed else HELP
        command = words[0][1:].split("@", 1)[0].lower()
        if chat_id not in self.allowed:
            self.ignored += 1
            self.hub.refused("telegram", f"/{command[:20]} from chat {chat_id}, not in telegram_chat_ids: ignored")
            return None
        if command in ("start", "help"):
            return HELP
        parsed = self.hub.parse(command, words[1:] or None)
        if isinstance(parsed, str):
            return f"refused: {parsed}\n{HELP}"
        cmd, syms = parsed
        self.handled += 1
        replies = self.hub.apply_on_loop(cmd, syms, "telegram", f"chat {chat_id}")
        return format_replies(cmd, replies)

    async def handle(self, bot, update) -> None:
        msg = update.message
        if msg is None or not msg.text:
            return
        reply = self.answer(msg.text, msg.chat_id)
        if reply is not None:
            await bot.send_message(chat_id=msg.chat_id, text=reply)


__all__ = ["HELP", "TelegramControl", "format_replies"]
