"""Giving freed memory back to the system, so a kit that records for hours stays flat.

Recording churns through big short-lived buffers (frames, audio blocks, encoded
packets) on several threads. glibc's allocator keeps what they freed, in pieces
between live allocations, so the daemon's resident memory crept up by about
1.5 MB a minute while recording, and did not come down between takes.
``malloc_trim(0)`` hands every whole free page back; it takes about a millisecond.

That is not enough over hours: glibc serves a block bigger than its mmap threshold
(128 KiB) with a mapping of its own, returned whole when freed, but each such free
raises the threshold to the block's size. After the first frame (1.4 MB at 720p) is
freed, every frame comes from the heap and the arenas instead, where what is freed
between longer-lived allocations stays. :func:`keep_big_blocks_mapped` fixes the
threshold (which also stops glibc moving it).

Each thread that first allocates also gets an arena of its own, up to eight per core,
and a freed piece stays in its arena: the web server's threads, the event streams and
each take's recording threads spread what they keep over many arenas, none of which
empties. :func:`limit_arenas` (at start) has all threads share two.

Elsewhere than glibc (musl, macOS) there is nothing to do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

log = logging.getLogger(__name__)

TRIM_PERIOD_S = 60.0
BIG_BLOCK_BYTES = 256 * 1024  # a frame or an encoder's picture: always its own mapping
ARENAS = 2  # as MALLOC_ARENA_MAX=2: the threads share these
_M_MMAP_THRESHOLD = -3  # mallopt's parameter numbers (malloc.h)
_M_ARENA_MAX = -8


def _libc_function(name: str) -> Any:
    """glibc's function ``name``, or None where the C library has none (not glibc)."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        return getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None


def _malloc_trim() -> Callable[[int], int] | None:
    trim = _libc_function("malloc_trim")
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast("Callable[[int], int]", trim)


def _mallopt(param: int, value: int) -> bool:
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(param, value))


def keep_big_blocks_mapped(threshold: int = BIG_BLOCK_BYTES) -> bool:
    """Serve every allocation of ``threshold`` bytes or more with its own mapping, given
    back when freed, for the life of the process; whether the C library agreed.

    Called once at start, before the first frame: blocks already in the heap stay there.
    """
    return _mallopt(_M_MMAP_THRESHOLD, threshold)


def limit_arenas(count: int = ARENAS) -> bool:
    """Let all threads share at most ``count`` allocator arenas, for the life of the
    process; whether the C library agreed. Called once at start, before the threads:
    arenas made already stay."""
    return _mallopt(_M_ARENA_MAX, count)


def tune_for_hours() -> None:
    """Set the allocator up for a daemon that records for hours: once, first thing."""
    keep_big_blocks_mapped()
    limit_arenas()


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
