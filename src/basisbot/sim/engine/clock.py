"""Replay clock: maps wall time to replay time (ms since the epoch, UTC) at ``speed`` replay seconds per wall second.

The clock can be paused, resumed, sped up or slowed down, and jumped forward (never backward: the venue's state
- fills, funding, liquidations - only moves forward). It stops at ``end_ms`` (the close of the last bar).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ReplayClock:
    def __init__(self, start_ms: int, end_ms: int, speed: float, paused: bool = False,
                 wall: Callable[[], float] = time.monotonic):
        if end_ms < start_ms:
            raise ValueError(f"end {end_ms} before start {start_ms}")
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.start_ms = int(start_ms)
        self.end_ms = int(end_ms)
        self._wall = wall
        self._speed = float(speed)
        self._paused = paused
        self._anchor_replay = float(start_ms)
        self._anchor_wall = wall()

    # -- reading --------------------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        if self._paused:
            t = self._anchor_replay
        else:
            t = self._anchor_replay + (self._wall() - self._anchor_wall) * 1000.0 * self._speed
        return int(min(t, self.end_ms))

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def finished(self) -> bool:
        return self.now_ms() >= self.end_ms

    def state(self) -> dict:
        now = self.now_ms()
        return {
            "time": now,
            "start": self.start_ms,
            "end": self.end_ms,
            "speed": self._speed,
            "paused": self._paused,
            "finished": now >= self.end_ms,
        }

    # -- control --------------------------------------------------------------------------------------------------
    def _reanchor(self) -> None:
        self._anchor_replay = float(self.now_ms())
        self._anchor_wall = self._wall()

    def set_speed(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self._reanchor()
        self._speed = float(speed)

    def pause(self) -> None:
        self._reanchor()
        self._paused = True

    def resume(self) -> None:
        self._anchor_wall = self._wall()
        self._paused = False

    def jump_to(self, t_ms: int) -> int:
        """Move replay time forward to ``t_ms`` (clamped to the end). Returns the new time."""
        now = self.now_ms()
        if t_ms < now:
            raise ValueError(f"cannot jump backwards: {t_ms} < now {now}")
        self._anchor_replay = float(min(int(t_ms), self.end_ms))
        self._anchor_wall = self._wall()
        return self.now_ms()

    def advance(self, seconds: float) -> int:
        return self.jump_to(self.now_ms() + int(round(seconds * 1000)))
