"""Write-behind: a big file made durable as it is written, not all at the end.

A file written without syncs piles its data up in the page cache; its final
fsync then writes all of it at once. On ext4 (``data=ordered``, the default on
Raspberry Pi OS) a journal commit waits for the data of every file in it, so
while that flush runs, every other fsync on the card waits too: a tag's commit
behind a 300 MB cut film waits until the card has written 300 MB (seconds
here, tens of seconds on an SD card). A writer that syncs every megabyte keeps
what anyone else can wait for to about a megabyte.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# About 50 ms of writing on a slow SD card (20 MB/s): what a tag's commit may wait for.
WRITE_BEHIND_BYTES = 1 << 20


class WriteBehindFile(io.BufferedRandom):
    """A new file (opened ``w+b``) whose data is made durable every ``every`` bytes
    written (fdatasync; the caller still syncs at the end, as with any file). ``every``
    None: never before the end, a plain file."""

    def __init__(self, path: Path, every: int | None = WRITE_BEHIND_BYTES) -> None:
        if every is not None and every <= 0:
            raise ValueError(f"write-behind needs a positive byte count, not {every}")
        super().__init__(io.FileIO(path, "w+"))
        self._every = every
        self._unsynced = 0

    def write(self, buffer: ReadableBuffer, /) -> int:
        n = super().write(buffer)
        self._unsynced += n
        if self._every is not None and self._unsynced >= self._every:
            self.flush()
            os.fdatasync(self.fileno())
            self._unsynced = 0
        return n
