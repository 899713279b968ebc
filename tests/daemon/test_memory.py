"""kit.daemon.memory: freed memory goes back to the system, and the trimmer stops."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kit.daemon import memory


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_freed_pieces_go_back_to_the_system() -> None:
    """Many small buffers freed around a few kept ones: glibc keeps the pages until
    trimmed (Python's own small objects are not malloc's, so bytearrays of 4 KiB)."""
    kept = []
    churn = [bytearray(4096) for _ in range(40_000)]  # about 160 MB
    for n in range(0, len(churn), 64):
        kept.append(churn[n])  # one in 64 stays: no page of the heap is wholly free
    del churn
    before = _rss_kb()
    assert memory.release_free_memory()  # this is glibc
    after = _rss_kb()
    assert before - after > 50_000, (before, after)
    assert len(kept) == 625


def test_the_trimmer_stops_when_told() -> None:
    done = threading.Event()
    thread = memory.trim_periodically(done.is_set, period_s=0.05)
    time.sleep(0.2)
    done.set()
    thread.join(timeout=3)
    assert not thread.is_alive()
