"""One kit process per data directory: an exclusive lock held for the process's life.

Two writers on one data directory destroy footage: ``kit recover`` run beside a
recording kit finalises the take being recorded and deletes its raw streams;
a second ``kit run`` records into the same visit. Every command that writes
(``kit run``, ``kit record``, ``kit recover``, ``kit cut``) takes this lock
first and refuses, with a clear message, when another process holds it.
The kernel releases a flock when its process dies, so a crash leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from kit.errors import StorageError


class DataDirLock:
    """An exclusive ``flock`` on ``<data dir>/kit.lock``, holding the holder's pid."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open the lock {path}: {exc}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self._fd)
            self._fd = None
            raise StorageError(
                f"{path.parent} is in use by another kit process{holder}: "
                "stop it first (for example: systemctl stop kit)"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def _holder(self) -> str:
        assert self._fd is not None
        with contextlib.suppress(OSError, ValueError):
            pid = int(os.pread(self._fd, 32, 0).decode().strip())
            return f" (pid {pid})"
        return ""

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
