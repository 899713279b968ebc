"""Write a bundle into a folder (a USB stick, a share), synced and verified from the medium.

The files go straight to ``<dest>/<name>/``, the manifest and its
signature last, each synced; then everything is read back from the medium
against the manifest. A folder without a manifest is an unfinished export
(a stick pulled out too early) and is cleared by the next one; one that
does not read back is removed. No folder is renamed: FAT drivers differ
most there (FUSE's fusefat loses a renamed folder's contents). Writing a
bundle that is already there and verifies does nothing (a repeated export
is harmless).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from kit.errors import KitError, StorageError, StorageFull
from kit.handoff.bundle import MANIFEST, PART_BYTES, Bundle, Entry, chunks
from kit.handoff.verify import Report, verify_bundle

log = logging.getLogger(__name__)

# Phases of an export, for the phone's progress bar: (name, share of the whole).
Progress = Callable[[str, float], None]


def _no_progress(_phase: str, _fraction: float) -> None:
    pass


def _drop_cache(f_or_fd: int) -> None:
    """Forget the file's cached pages, so reading it back reads the medium."""
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(f_or_fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _write_one(source: Entry, target: Path, limit: int, step: Callable[[int], None]) -> None:
    """Write ``source`` to ``target``, or to ``target.001``... if it is bigger than ``limit``."""
    split = source.size > limit
    digest = hashlib.sha256()
    part = 0
    out: BinaryIO | None = None
    written = 0  # in the current part
    try:
        with source.open() as f:
            for chunk in chunks(f):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    if out is None:
                        part += 1
                        name = f"{target.name}.{part:03d}" if split else target.name
                        out = (target.parent / name).open("wb")
                        written = 0
                    room = PART_BYTES - written if split else len(view)
                    piece = view[:room]
                    out.write(piece)
                    written += len(piece)
                    view = view[len(piece) :]
                    step(len(piece))
                    if split and written >= PART_BYTES:
                        _close_synced(out)
                        out = None
        if out is None and not split:  # an empty file
            out = target.open("wb")
    finally:
        if out is not None:
            _close_synced(out)
    if digest.hexdigest() != source.sha256:
        raise StorageError(
            f"{source.path} changed on the card since the bundle was made: export it again"
        )


def _close_synced(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())
    _drop_cache(out.fileno())
    out.close()


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _sync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bundle(
    bundle: Bundle,
    dest: Path,
    *,
    max_file_bytes: int | None = None,
    progress: Progress = _no_progress,
) -> tuple[Path, Report]:
    """Write ``bundle`` into the folder ``dest``; return where and its verification.

    ``max_file_bytes`` (FAT32: 4 GiB - 1) splits bigger files into 2 GiB parts.
    Raises :class:`~kit.errors.StorageFull` if it cannot fit and
    :class:`~kit.errors.StorageError` if what was written does not read back right.
    """
    final = dest / bundle.name
    if (final / MANIFEST).is_file():
        report = verify_bundle(final)
        if report.ok:
            log.info("%s is there already and verifies", final)
            progress("verified", 1.0)
            return final, report
        log.warning("replacing %s, which does not verify: %s", final, report.problems[:3])
    usage = shutil.disk_usage(dest)
    # A filesystem that reports no size at all (some FUSE ones) cannot be asked: try.
    if usage.total and bundle.size > usage.free:
        raise StorageFull(
            f"the bundle needs {_size(bundle.size)} and {dest} has {_size(usage.free)} free"
        )
    shutil.rmtree(final, ignore_errors=True)  # an unfinished or damaged earlier export
    limit = max_file_bytes or bundle.size + 1
    done = 0
    total = max(1, bundle.size)

    def wrote(n: int) -> None:
        nonlocal done
        done += n
        progress("writing", done / total)

    device = dest.stat().st_dev
    try:
        # Folders are made one level at a time, never their parents: a stick pulled out
        # mid-write takes its mount point with it, and the rest of the bundle must fail,
        # not land on the card in a folder made where the stick was.
        final.mkdir()
        for entry in bundle.entries:  # the manifest and its signature come last
            target = final / entry.path
            for folder in reversed(target.relative_to(final).parents[:-1]):
                if not (final / folder).is_dir():
                    (final / folder).mkdir()
                    _sync_dir((final / folder).parent)
            _write_one(entry, target, limit, wrote)
            _sync_dir(target.parent)
        if final.stat().st_dev != device:
            raise StorageError(f"{dest} is no longer the filesystem the export started on")
        report = verify_bundle(final, progress=lambda d, t: progress("verifying", d / max(1, t)))
        if not report.ok:
            raise StorageError(
                f"what was written to {dest} does not read back right: {report.problems[0]}"
            )
        _sync_dir(dest)
    except OSError as exc:
        shutil.rmtree(final, ignore_errors=True)
        if isinstance(exc, KitError):
            raise
        if exc.errno == errno.ENOSPC:
            raise StorageFull(f"{dest} is full: the bundle did not fit") from exc
        raise StorageError(f"cannot write the bundle to {dest}: {exc.strerror or exc}") from exc
    report.path = final
    progress("verified", 1.0)
    return final, report
