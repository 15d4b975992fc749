"""The sweep's progress bar on stderr (tqdm): points done of the total, points already done by an earlier run,
failures, elapsed and the time left."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, label: str = "sweep", *, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled = total, label, enabled
        self.done = self.failed = self.skipped = 0
        self._bar = tqdm(total=total, desc=label, unit="point", file=stream or sys.stderr, disable=not enabled,
                         dynamic_ncols=True, leave=True)

    def update(self, *, ok: bool = True, skipped: bool = False) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self.skipped += 1 if skipped else 0
        bits = {}
        if self.skipped:
            bits["already done"] = self.skipped
        if self.failed:
            bits["failed"] = self.failed
        if bits:
            self._bar.set_postfix(bits, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
