"""How long the card takes to make a small write durable: the recorder's fsync, measured.

While recording, the kit appends to its stream files and fsyncs them about
once a second (``storage.fsync_interval_s``): at 4 Mbit/s that is some
500 KB, a handful of 64 KiB pieces. A card whose fsync stalls for seconds
(garbage collection in a cheap controller) makes a power cut lose more than
the promised second, however fast its sequential write speed. So this writes
and fsyncs ``count`` pieces of 64 KiB one at a time in the data directory and
reports the percentiles of each write+fsync.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kit.check.stats import spread_ms
from kit.clock import NS_PER_MS, NS_PER_S
from kit.daemon.health import CheckItem, Level

FSYNC = "fsync"
PIECE_BYTES = 64 * 1024


def probe_fsync(
    directory: Path,
    *,
    count: int = 100,
    piece_bytes: int = PIECE_BYTES,
    interval_s: float = 1.0,
    timer: Callable[[], int] = time.perf_counter_ns,
) -> CheckItem:
    """Write+fsync ``count`` pieces of ``piece_bytes``; percentiles in ms.

    Warns when the 99th percentile exceeds a quarter of the recorder's fsync
    interval (little room left in each second); fails when any one takes two
    intervals (a power cut could then lose more than the interval promises).
    """
    if not directory.is_dir():
        return CheckItem(
            FSYNC,
            Level.FAIL,
            f"no data directory {directory}",
            "the kit service creates it on first start; or pass --data",
        )
    piece = os.urandom(piece_bytes)  # incompressible, in case a controller compresses
    took: list[int] = []
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".kit-check-fsync-")
        try:
            for _ in range(count):
                start = timer()
                os.write(fd, piece)
                os.fsync(fd)
                took.append(timer() - start)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                Path(name).unlink()
    except OSError as exc:
        return CheckItem(
            FSYNC,
            Level.FAIL,
            f"cannot write to {directory}: {exc}",
            "run as root or as the kit user: sudo kit check",
        )
    data: dict[str, Any] = {"fsync_count": count, "fsync_piece_bytes": piece_bytes}
    data |= spread_ms(took, "fsync")
    if not took:
        return CheckItem(FSYNC, Level.SKIP, "no pieces written (--fsync-count 0)", "", data)
    value = (
        f"64 KiB write+fsync: p50 {data['fsync_p50_ms']:.1f} ms, p99 {data['fsync_p99_ms']:.1f} ms,"
        f" max {data['fsync_max_ms']:.1f} ms over {count}"
    )
    interval_ms = interval_s * NS_PER_S / NS_PER_MS
    if data["fsync_max_ms"] > 2 * interval_ms:
        hint = "the card stalls: a power cut may lose more than a second; use an A1/A2 card"
        return CheckItem(FSYNC, Level.FAIL, value, hint, data)
    if data["fsync_p99_ms"] > interval_ms / 4:
        hint = "slow to make writes durable: an A1/A2 (application class) card does better"
        return CheckItem(FSYNC, Level.WARN, value, hint, data)
    return CheckItem(FSYNC, Level.OK, value, "", data)
