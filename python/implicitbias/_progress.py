"""A minimal progress bar on stderr (no dependency), silent when disabled."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, "label") as bar: bar.update(k)``; draws on stderr."""

    def __init__(self, total: int, label: str = "", enabled: bool = True, width: int = 30) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.enabled = enabled
        self.width = width
        self.done = 0
        self.start = time.perf_counter()

    def __enter__(self) -> "Progress":
        self._draw()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def update(self, k: int = 1) -> None:
        self.done = min(self.total, self.done + k)
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        frac = self.done / self.total
        filled = int(round(frac * self.width))
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(
            f"\r{self.label} [{bar}] {self.done}/{self.total}  {elapsed:6.1f}s elapsed, ~{eta:5.1f}s left"
        )
        sys.stderr.flush()
