"""Progress of long work (cut, recover, export, offload, verify) for the ``kit`` command.

At a terminal: one line on stderr, rewritten in place. Otherwise (a log,
a pipe, journald): a plain line every 10 %, so a log is not flooded. The
results themselves go to stdout, apart from this.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressLine:
    """``progress(fraction)`` shows "<what>: 42%"; :meth:`done` ends the line."""

    def __init__(self, what: str, stream: TextIO | None = None) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._shown = -1
        self._last = 0.0
        self._phase = ""

    def __call__(self, fraction: float, detail: str = "") -> None:
        percent = int(max(0.0, min(1.0, fraction)) * 100)
        if self.tty:
            now = time.monotonic()
            if percent == self._shown or (now - self._last < 0.1 and percent < 100):
                return
            self._last = now
            self.stream.write(f"\r{self.what}: {percent:3d}% {detail}".rstrip() + "\x1b[K")
        else:
            step = percent // 10 * 10
            if step <= self._shown:
                return
            percent = step
            self.stream.write(f"{self.what}: {percent}% {detail}".rstrip() + "\n")
        self._shown = percent
        self.stream.flush()

    def of_bytes(self, done: int, total: int) -> None:
        """For work that counts bytes."""
        self(done / max(1, total), f"{done / 1e6:.0f} of {total / 1e6:.0f} MB")

    def of_phase(self, phase: str, fraction: float) -> None:
        """For work in phases (an export: hashing, writing, verifying), each from 0 to 1."""
        if phase != self._phase:
            self._phase = phase
            self._shown = -1
        self(fraction, phase)

    def done(self) -> None:
        if self.tty and self._shown >= 0:
            self.stream.write("\n")
            self.stream.flush()
