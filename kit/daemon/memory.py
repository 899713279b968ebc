"""Giving freed memory back to the system, so a kit that records for hours stays flat.

Recording churns through big short-lived buffers (frames, audio blocks, encoded
packets) on several threads. glibc's allocator keeps what they freed, in pieces
between live allocations, so the daemon's resident memory crept up by about
1.5 MB a minute while recording, and did not come down between takes.
``malloc_trim(0)`` hands every whole free page back; it takes about a millisecond.
Elsewhere than glibc (musl, macOS) there is nothing to do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_PERIOD_S = 60.0


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Give the allocator's whole free pages back to the system; whether it could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def trim_periodically(
    done: Callable[[], bool], period_s: float = TRIM_PERIOD_S
) -> threading.Thread:
    """A daemon thread that releases free memory every ``period_s`` until ``done()``."""
    trim = _malloc_trim()

    def run() -> None:
        if trim is None:
            log.info("no malloc_trim here (not glibc): freed memory stays with the process")
            return
        waited = 0.0
        while not done():
            time.sleep(min(1.0, period_s))
            waited += min(1.0, period_s)
            if waited >= period_s:
                trim(0)
                waited = 0.0

    thread = threading.Thread(target=run, name="memory", daemon=True)
    thread.start()
    return thread
