"""kit.daemon.memory: freed memory goes back to the system, and the trimmer stops."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

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


def _in_a_child(code: str, how: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python (the allocator's settings are the process's, for
    good), with ``how`` as its argument."""
    return subprocess.run(
        [sys.executable, "-c", code, how], capture_output=True, text=True, check=True, timeout=60
    )


# What each child starts with: the kit's allocator settings and glibc's malloc.
_LIBC = """
import ctypes, ctypes.util, sys
from kit.daemon import memory
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
"""


# In a child process: the threshold is the whole process's, for good. It frees a 2 MB
# block (glibc then moves its threshold past 2 MB unless it is fixed), then asks for a
# 720p frame's worth and prints whether the frame got a mapping of its own (1) or not.
_FRAME_AFTER_A_BIGGER_BLOCK = (
    _LIBC
    + """
if sys.argv[1] == "fixed":
    assert memory.keep_big_blocks_mapped()
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]
libc.mallinfo2.restype = Info
libc.free(libc.malloc(2_000_000))
before = libc.mallinfo2().hblks
frame = libc.malloc(1280 * 720 * 3 // 2)
print(libc.mallinfo2().hblks - before)
libc.free(frame)
"""
)


@pytest.mark.parametrize(("how", "mapped"), [("moving", 0), ("fixed", 1)])
def test_a_frame_keeps_its_own_mapping_after_a_bigger_block_was_freed(
    how: str, mapped: int
) -> None:
    """ "moving" is glibc's default, shown so this test fails if glibc changes it: the
    frame is carved from the heap, whose freed pieces stay with the process."""
    done = _in_a_child(_FRAME_AFTER_A_BIGGER_BLOCK, how)
    assert int(done.stdout.split()[-1]) == mapped, done.stdout


def test_the_threshold_leaves_small_blocks_to_the_heap() -> None:
    """The threshold is not zero: small allocations are not each a system call."""
    assert 64 * 1024 <= memory.BIG_BLOCK_BYTES <= 1024 * 1024


# In a child process: six threads, all alive at once, each make a small allocation (a
# thread's first one picks its arena); malloc_stats() then names each arena on stderr.
_THREADS_AND_THEIR_ARENAS = (
    _LIBC
    + """
import threading
if sys.argv[1] == "limited":
    assert memory.limit_arenas()
all_in = threading.Barrier(6)
def allocate():
    libc.malloc(1000)
    all_in.wait()
threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.malloc_stats()
"""
)


@pytest.mark.parametrize(("how", "at_most"), [("default", None), ("limited", memory.ARENAS)])
def test_threads_share_the_arenas_once_limited(how: str, at_most: int | None) -> None:
    """ "default" shows glibc's own behaviour (an arena per thread, here more than two),
    so this test fails if glibc changes it."""
    done = _in_a_child(_THREADS_AND_THEIR_ARENAS, how)
    arenas = sum(line.startswith("Arena ") for line in done.stderr.splitlines())
    if at_most is None:
        assert arenas > memory.ARENAS, done.stderr
    else:
        assert 1 <= arenas <= at_most, done.stderr
