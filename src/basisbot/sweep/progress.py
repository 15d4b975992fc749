"""A one-line progress bar on stderr: points done of the total, failures, elapsed and the time left."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str = "sweep", *, enabled: bool = True, stream=None, width: int = 30):
        self.total, self.label, self.enabled, self.width = total, label, enabled, width
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.done = self.failed = self.skipped = 0
        self.t0 = time.monotonic()
        self._ran = 0

    def update(self, *, ok: bool = True, skipped: bool = False) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self.skipped += 1 if skipped else 0
        self._ran += 0 if skipped else 1
        self.show()

    def text(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        elapsed = time.monotonic() - self.t0
        left = self.total - self.done
        eta = elapsed / self._ran * left if self._ran and left else 0.0
        bits = [f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}"]
        if self.skipped:
            bits.append(f"{self.skipped} already done")
        if self.failed:
            bits.append(f"{self.failed} failed")
        bits.append(f"{elapsed:.0f}s" + (f", ~{eta:.0f}s left" if left and self._ran else ""))
        return "  ".join(bits)

    def show(self) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self.text().ljust(100)[:160])
        else:
            self.stream.write(self.text() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
