"""The media file layer: every read and write of media goes through here.

Paths are relative to the data directory and may not escape it. Writers are
append-only or atomic (temp file, fsync, rename, fsync of the directory), so
a crash leaves either the old state or the new, never half a file. Encryption
at rest is meant to be a change to this module alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from kit.errors import StorageError


class FileLayer:
    """Media files below one root directory."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    @property
    def root(self) -> Path:
        return self._root

    def path(self, rel: str) -> Path:
        """The absolute path of ``rel``, refusing anything outside the root."""
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise StorageError(f"not a path inside the data directory: {rel!r}")
        full = (self._root / pure).resolve()
        if full != self._root and self._root not in full.parents:
            raise StorageError(f"not a path inside the data directory: {rel!r}")
        return full

    def makedirs(self, rel: str) -> None:
        full = self.path(rel)
        full.mkdir(parents=True, exist_ok=True)
        self._fsync_dir(full.parent)

    def append(self, rel: str) -> BinaryIO:
        """Open ``rel`` for appending (created if missing)."""
        full = self.path(rel)
        existed = full.exists()
        f = full.open("ab")
        if not existed:
            self._fsync_dir(full.parent)
        return f

    def read(self, rel: str) -> BinaryIO:
        return self.path(rel).open("rb")

    @contextlib.contextmanager
    def replace(self, rel: str) -> Iterator[BinaryIO]:
        """Write ``rel`` atomically: it appears whole, and durable, or not at all."""
        full = self.path(rel)
        tmp = full.with_name(f".{full.name}.partial")
        f = tmp.open("w+b")
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        f.close()
        tmp.replace(full)
        self._fsync_dir(full.parent)

    @staticmethod
    def sync(f: BinaryIO) -> None:
        """Make everything written to ``f`` durable."""
        f.flush()
        os.fsync(f.fileno())

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def size(self, rel: str) -> int:
        return self.path(rel).stat().st_size

    def remove(self, rel: str) -> None:
        full = self.path(rel)
        full.unlink(missing_ok=True)
        self._fsync_dir(full.parent)

    def free_bytes(self) -> int:
        """Free space on the data directory's filesystem, for unprivileged writers."""
        return shutil.disk_usage(self._root).free

    def sync_dir(self, directory: Path) -> None:
        """Make ``directory``'s entries (new, renamed or removed files) durable."""
        self._fsync_dir(directory)

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
