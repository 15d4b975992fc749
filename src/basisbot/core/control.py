"""The operator's commands and a symbol's control state, pure (the strategy applies them; see README "Controls").

    pause    no new entries and no re-entry after an exit; held carries stay; the guard, the one-leg invariant,
             exits and settlement booking keep running.
    resume   entries allowed again (also ends a flatten still waiting for its pair, and clears a risk breach).
    flatten  close both legs of the held carry together (the two-leg machinery), then stay paused. A pair in flight
             finishes or unwinds first; a second flatten while one runs changes nothing.
    status   changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

COMMANDS = ("pause", "resume", "flatten", "status")
ORIGINS = ("cli", "page", "telegram", "risk")


@dataclass(frozen=True)
class ControlState:
    paused: bool = False
    flattening: bool = False
    origin: str = ""  # who set it
    reason: str = ""
    ts_ns: int = 0

    @property
    def mode(self) -> str:
        return "flattening" if self.flattening else "paused" if self.paused else "active"

    @property
    def entries_allowed(self) -> bool:
        return not self.paused

    @classmethod
    def from_mode(cls, mode: str | None, origin: str = "", reason: str = "", ts_ns: int = 0) -> ControlState:
        """The state a journaled mode stands for ("active" or unknown: active)."""
        return cls(paused=mode in ("paused", "flattening"), flattening=mode == "flattening", origin=origin,
                   reason=reason, ts_ns=ts_ns)


def apply(state: ControlState, command: str, origin: str, reason: str, ts_ns: int) -> tuple[ControlState, str]:
    """(new state, answer). Raises ValueError for an unknown command or origin."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")
    if origin not in ORIGINS:
        raise ValueError(f"unknown origin {origin!r} (known: {', '.join(ORIGINS)})")
    if command == "status":
        return state, state.mode
    if command == "pause":
        if state.paused:
            return state, f"already {state.mode}"
        return ControlState(True, False, origin, reason, ts_ns), "paused"
    if command == "resume":
        if not state.paused:
            return state, "already active"
        return ControlState(False, False, origin, reason, ts_ns), "resumed"
    if state.flattening:
        return state, "already flattening"
    return ControlState(True, True, origin, reason, ts_ns), "flattening"


def flattened(state: ControlState) -> ControlState:
    """A flatten that reached flat: stays paused."""
    return replace(state, flattening=False)


__all__ = ["COMMANDS", "ORIGINS", "ControlState", "apply", "flattened"]
