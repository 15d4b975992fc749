"""The operator's commands to a running node, from any channel (CLI through the ops server, the status page,
Telegram): validated, handed to the node's event loop, published as a `ControlCommand` that every strategy concerned
applies (`basisbot.core.control`), answered with what each strategy says. Every command is journaled by the
strategies (table `control`, with its origin) and alerted here; a refused one (wrong token, unknown chat) is
journaled and alerted as `control_refused`, never with the token.

    hub = ControlHub(symbols, publish=..., alert=..., running=..., timeout_s=5)
    code, body = hub.submit("flatten", [], "cli")      # from any thread; code: 200 | 400 | 503 | 504
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable

from basisbot.core.control import COMMANDS, ORIGINS
from basisbot.nautilus.messages import CONTROL_TOPIC, JOURNAL_TOPIC, ControlCommand, JournalRecord


class ControlHub:
    def __init__(self, symbols: list[str], *, msgbus: Callable[[], object], alert: Callable[..., None],
                 running: Callable[[], bool], timeout_s: float = 5.0):
        self.symbols = sorted(symbols)
        self._msgbus = msgbus  # the node's message bus (None while building)
        self._alert = alert  # alert(event, title, body, symbol=None)
        self._running = running
        self.timeout_s = timeout_s
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- validation -----------------------------------------------------------------------------------------------
    def parse(self, command, symbols) -> tuple[str, tuple[str, ...]] | str:
        """(command, symbols: () = all) or the reason the input is bad."""
        if not isinstance(command, str) or command not in COMMANDS:
            return f"unknown command {command!r}: one of {', '.join(COMMANDS)}"
        if symbols in (None, "all", "*", []):
            return command, ()
        if isinstance(symbols, str):
            symbols = [symbols]
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            return "symbols: a list of symbol names, or \"all\""
        wanted = tuple(dict.fromkeys(s.strip().upper() for s in symbols))
        unknown = [s for s in wanted if s not in self.symbols]
        if unknown:
            return f"unknown symbol(s) {', '.join(unknown)}: this node trades {', '.join(self.symbols)}"
        return command, wanted

    # -- commands -------------------------------------------------------------------------------------------------
    def submit(self, command, symbols, origin: str, reason: str = "") -> tuple[int, dict]:
        """From any thread but the loop's. (HTTP-like status, answer)."""
        if origin not in ORIGINS:
            return 400, {"ok": False, "error": f"unknown origin {origin!r}"}
        parsed = self.parse(command, symbols)
        if isinstance(parsed, str):
            return 400, {"ok": False, "error": parsed}
        cmd, syms = parsed
        loop = self.loop
        if loop is None or loop.is_closed() or not self._running():
            return 503, {"ok": False, "error": "the node is not running yet (starting or stopping): try again"}
        fut = asyncio.run_coroutine_threadsafe(self._apply(cmd, syms, origin, reason), loop)
        try:
            replies = fut.result(self.timeout_s)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            return 504, {"ok": False, "error": f"the node did not answer within {self.timeout_s:g}s"}
        return 200, {"ok": True, "command": cmd, "symbols": list(syms) or "all", "origin": origin,
                     "results": replies}

    async def _apply(self, cmd: str, syms: tuple[str, ...], origin: str, reason: str) -> list[dict]:
        return self.apply_on_loop(cmd, syms, origin, reason)

    def apply_on_loop(self, cmd: str, syms: tuple[str, ...], origin: str, reason: str) -> list[dict]:
        """On the event loop's thread: publish, collect the strategies' answers, alert."""
        replies: list[dict] = []
        bus = self._msgbus()
        bus.publish(CONTROL_TOPIC, ControlCommand(cmd, syms, origin, reason, time.time_ns(), replies.append))
        replies.sort(key=lambda r: r["symbol"])
        if cmd != "status":
            lines = "\n".join(f"{r['symbol']}: {r['answer']} (now {r['state']}, phase {r['phase']}, spot "
                              f"{r['spot_qty']}, perp {r['perp_qty']})" for r in replies)
            target = ", ".join(syms) or "all symbols"
            self._alert("control", f"{cmd} {target} ({origin})",
                        f"{cmd} of {target} from {origin}" + (f": {reason}" if reason else "") + f"\n{lines}")
        return replies

    def refused(self, origin: str, why: str) -> None:
        """A command refused before it reached the node (wrong token, unknown chat): journaled and alerted. From any
        thread; `why` never holds a secret."""
        loop = self.loop

        def on_loop():
            bus = self._msgbus()
            if bus is not None:
                bus.publish(JOURNAL_TOPIC, JournalRecord("control", "*", time.time_ns(), {
                    "command": "refused", "origin": origin, "reason": why, "answer": "refused", "state": ""}))
            self._alert("control_refused", f"control refused ({origin})", why)

        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(on_loop)
            except RuntimeError:  # the loop closed meanwhile
                pass


__all__ = ["ControlHub"]
