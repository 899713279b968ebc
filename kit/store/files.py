"""The media file layer: every read and write of media goes through here.

Paths are relative to the data directory and may not escape it. Writers are
append-only or atomic (temp file, fsync, rename, fsync of the directory), so
a crash leaves either the old state or the new, never half a file.

Encryption at rest happens here: a visit whose directory holds ``key.age``
(its data key, wrapped for the organisation) is encrypted, and every file
below it is read and written through :class:`kit.crypto.chunked.EncryptedFile`
with the key the kit holds for it (``keys``). Callers see plain bytes and
never a path to one: there is none. Without the key, opening such a file
raises :class:`kit.errors.Sealed`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast

from kit.crypto.chunked import CHUNK_SIZE, EncryptedFile
from kit.errors import Sealed, StorageError
from kit.store import layout

KeyLookup = Callable[[str], bytes | None]


def _no_keys(_visit_id: str) -> bytes | None:
    return None


class FileLayer:
    """Media files below one root directory, encrypted per visit where the visit is."""

    def __init__(self, root: Path, keys: KeyLookup = _no_keys) -> None:
        self._root = root.resolve()
        self._keys = keys

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

    def key_for(self, rel: str) -> bytes | None:
        """The data key ``rel`` is encrypted with; None for a plain file; Sealed if the kit
        no longer holds it."""
        visit_id = layout.visit_of(rel)
        if visit_id is None or rel == layout.wrapped_key(visit_id):
            return None
        if not self.path(layout.wrapped_key(visit_id)).exists():
            return None  # a visit from before encryption at rest
        key = self._keys(visit_id)
        if key is None:
            raise Sealed("this visit is sealed: only the organisation's key opens it now")
        return key

    def encrypted(self, rel: str) -> bool:
        """Whether ``rel`` is (or would be) stored encrypted."""
        visit_id = layout.visit_of(rel)
        if visit_id is None or rel == layout.wrapped_key(visit_id):
            return False
        return self.path(layout.wrapped_key(visit_id)).exists()

    def makedirs(self, rel: str) -> None:
        """Create ``rel`` and any missing parents, each made durable in its parent
        (a power cut must not lose a visit's folder while its files survive)."""
        full = self.path(rel)
        missing = []
        folder = full
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for made in reversed(missing):
            made.mkdir(exist_ok=True)
            self._fsync_dir(made.parent)
        if not missing:
            self._fsync_dir(full.parent)

    def append(self, rel: str, *, chunk_size: int = CHUNK_SIZE) -> BinaryIO:
        """Open ``rel`` for appending (created if missing). An encrypted file made here
        gets ``chunk_size`` chunks (an existing one keeps its own)."""
        full = self.path(rel)
        key = self.key_for(rel)
        existed = full.exists()
        f: BinaryIO
        if key is None:
            f = full.open("ab")
        else:
            raw = full.open("r+b" if existed else "w+b")
            try:
                if existed and raw.seek(0, os.SEEK_END) > 0:
                    enc = EncryptedFile.open(raw, key, writable=True)
                    enc.seek(0, os.SEEK_END)
                else:
                    enc = EncryptedFile.create(raw, key, chunk_size=chunk_size)
            except BaseException:
                raw.close()
                raise
            f = cast(BinaryIO, enc)
        if not existed:
            self._fsync_dir(full.parent)
        return f

    def read(self, rel: str) -> BinaryIO:
        """Open ``rel`` for reading (seekable; decrypted as it is read)."""
        key = self.key_for(rel)
        raw = self.path(rel).open("rb")
        if key is None:
            return raw
        try:
            return cast(BinaryIO, EncryptedFile.open(raw, key))
        except BaseException:
            raw.close()
            raise

    @contextlib.contextmanager
    def replace(self, rel: str) -> Iterator[BinaryIO]:
        """Write ``rel`` atomically: it appears whole, and durable, or not at all."""
        full = self.path(rel)
        key = self.key_for(rel)
        tmp = full.with_name(f".{full.name}.partial")
        f: BinaryIO = tmp.open("w+b")
        if key is not None:
            try:
                f = cast(BinaryIO, EncryptedFile.create(f, key))
            except BaseException:
                f.close()
                tmp.unlink(missing_ok=True)
                raise
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):  # a full card fails the close's flush too
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
        """The size of ``rel``'s content (plain bytes, also for an encrypted file)."""
        if not self.encrypted(rel):
            return self.path(rel).stat().st_size
        with self.read(rel) as f:
            return f.seek(0, os.SEEK_END)

    def remove(self, rel: str, *, overwrite: bool = False) -> None:
        """Delete ``rel``; ``overwrite`` writes zeros over it first (a discard: on flash
        the card may keep old blocks, but those hold only ciphertext)."""
        full = self.path(rel)
        if overwrite and full.is_file():
            size = full.stat().st_size
            with full.open("r+b") as f:
                block = bytes(1 << 20)
                for _ in range(0, size, len(block)):
                    f.write(block)
                f.flush()
                os.fsync(f.fileno())
        full.unlink(missing_ok=True)
        self._fsync_dir(full.parent)

    def remove_tree(self, rel: str) -> None:
        """Delete the directory ``rel`` and everything in it (durably)."""
        full = self.path(rel)
        if full == self._root:
            raise StorageError("refusing to delete the whole data directory")
        shutil.rmtree(full, ignore_errors=True)
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
