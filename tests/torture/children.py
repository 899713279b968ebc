"""Work for a cutting child process (kit.cutting.child.run_in_child) in the torture tests:
module-level, so a spawned child can import it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def sleep_quietly(pid_file: str, seconds: float, *, progress: Callable[[float], None]) -> float:
    """Write this process's pid to ``pid_file``, then work ``seconds`` without a word of
    progress (a long stretch of a cut: a still being encoded, a film being copied)."""
    Path(pid_file).write_text(f"{os.getpid()}\n", encoding="ascii")
    progress(0.0)
    time.sleep(seconds)
    return seconds
