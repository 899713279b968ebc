"""The storage's own floor: how long one small durable write takes, beside the kit.

A tag is acknowledged once it is durable, so no acknowledgement is faster than the
card makes one small write durable at that moment. :class:`FloorProbe` measures that
floor through a bench run: every ``period_s`` it overwrites 4 KiB of a file it wrote
whole beforehand (so the write allocates nothing and changes no size: the least any
durable write costs) and fdatasyncs it, on the kit's data directory's filesystem. A
bench reports its acknowledgements against it: what an ack takes beyond that floor is
the kit's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

BLOCK = 4096
FILE_BYTES = 1 << 20
PERIOD_S = 0.1


class FloorProbe(threading.Thread):
    """Times a bare 4 KiB overwrite + fdatasync in ``directory`` every ``period_s`` until
    :meth:`finish`, which returns the times in ms. The file is written whole (with
    random bytes, in case a controller compresses) and synced before the thread starts,
    so an unwritable directory raises ``OSError`` at once; it is removed at the end."""

    def __init__(
        self,
        directory: Path,
        period_s: float = PERIOD_S,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(name="storage-floor", daemon=True)
        self._period_s = period_s
        self._timer = timer
        self._stop_event = threading.Event()
        self.ms: list[float] = []
        self.error: OSError | None = None
        fd, name = tempfile.mkstemp(dir=directory, prefix=".kit-bench-floor-")
        self._fd, self._path = fd, Path(name)
        try:
            os.write(fd, os.urandom(FILE_BYTES))
            os.fsync(fd)
        except OSError:
            self._close()
            raise

    def run(self) -> None:
        blocks = FILE_BYTES // BLOCK
        n = 0
        while not self._stop_event.is_set():
            piece = os.urandom(BLOCK)
            start = self._timer()
            try:
                os.pwrite(self._fd, piece, (n % blocks) * BLOCK)
                os.fdatasync(self._fd)
            except OSError as exc:
                self.error = exc
                return
            self.ms.append((self._timer() - start) * 1000)
            n += 1
            self._stop_event.wait(self._period_s)

    def finish(self) -> list[float]:
        """Stop, remove the file, and return every time measured (ms)."""
        self._stop_event.set()
        if self.is_alive():
            self.join()
        self._close()
        return self.ms

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._path.unlink(missing_ok=True)
