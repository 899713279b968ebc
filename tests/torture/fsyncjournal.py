"""The power-cut model's recorder, inside a ``kit`` process (and its cutting child).

A ``sitecustomize`` on the child's PYTHONPATH (written by :mod:`tests.torture.power`)
calls :func:`install` when ``POWERCUT_JOURNAL`` is set. From then on, below the data
directory ``POWERCUT_ROOT``:

* every ``os.fsync`` / ``os.fdatasync`` of a file appends ``{"ino", "size"}`` to the
  journal: the file's length when it was made durable (taken before the call: what
  was written before it is durable after it);
* every one of a directory appends ``{"dir", "entries": {name: inode}}``: the names
  it held, and what each named, when its entries were made durable;
* every ``os.unlink``/``os.remove`` of a file, and every ``os.replace``/``os.rename``
  over one, first hard-links that file into the morgue ``POWERCUT_MORGUE`` under its
  inode number, so a power cut before the directory is synced again can still bring
  back what the old name held.

The journal is opened ``O_APPEND`` and each record is one ``write``: records of both
processes interleave whole. A process stopped (or killed) between an fsync and its
record leaves a journal that says the fsync had not happened yet, which is a state a
power cut can leave too (the kit did nothing after that fsync).

SQLite syncs its own files from C (``synchronous=FULL``): none of that passes here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import stat
from collections.abc import Callable
from typing import Any

_installed = False


def install(journal: str, morgue: str, root: str) -> None:
    """Wrap os.fsync, os.fdatasync, os.unlink, os.remove, os.replace and os.rename."""
    global _installed  # noqa: PLW0603 - once per process, like sitecustomize itself
    if _installed:
        return
    _installed = True
    out = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    below = root.rstrip("/") + "/"

    def inside(path: str) -> bool:
        return path == root or path.startswith(below)

    def note(record: dict[str, Any]) -> None:
        os.write(out, (json.dumps(record) + "\n").encode())

    def synced(real: Callable[[Any], None]) -> Callable[[Any], None]:
        def sync(what: Any) -> None:
            fd = what if isinstance(what, int) else what.fileno()
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
                info = os.fstat(fd)
            except OSError:
                real(fd)
                return
            if not inside(path):
                real(fd)
            elif stat.S_ISDIR(info.st_mode):
                with os.scandir(path) as listing:
                    entries = {e.name: e.inode() for e in listing}
                real(fd)
                note({"dir": path, "entries": entries})
            else:
                real(fd)
                note({"file": path, "ino": info.st_ino, "size": info.st_size})

        return sync

    def full_path(path: Any, dir_fd: int | None) -> str:
        name = os.fsdecode(os.fspath(path))
        if dir_fd is not None and not os.path.isabs(name):
            return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name)
        return os.path.abspath(name)

    def keep(path: Any, dir_fd: int | None) -> None:
        """Hard-link the file at ``path`` into the morgue before its name goes."""
        try:
            full = full_path(path, dir_fd)
            info = os.lstat(full)
        except (OSError, TypeError, ValueError):
            return
        if inside(full) and stat.S_ISREG(info.st_mode):
            target = os.path.join(morgue, str(info.st_ino))
            if not os.path.exists(target):
                with contextlib.suppress(OSError):  # another process linked it first
                    os.link(full, target)

    def unlinking(real: Callable[..., None]) -> Callable[..., None]:
        def unlink(path: Any, *, dir_fd: int | None = None) -> None:
            keep(path, dir_fd)
            real(path, dir_fd=dir_fd)

        return unlink

    def renaming(real: Callable[..., None]) -> Callable[..., None]:
        def rename(
            src: Any, dst: Any, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None
        ) -> None:
            keep(dst, dst_dir_fd)
            real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

        return rename

    # Typeshed's fd type (int | HasFileno) is private; the wrappers take Any.
    os.fsync = synced(os.fsync)  # type: ignore[assignment]
    os.fdatasync = synced(os.fdatasync)  # type: ignore[assignment]
    os.unlink = unlinking(os.unlink)
    os.remove = unlinking(os.remove)
    os.replace = renaming(os.replace)
    os.rename = renaming(os.rename)


def install_kill_point(name: str) -> None:
    """A crash at an exact point: SIGKILL this process as it is about to unlink (or
    remove) a file called ``name``, before the name goes."""
    real_unlink, real_remove = os.unlink, os.remove

    def dying(real: Callable[..., None]) -> Callable[..., None]:
        def unlink(path: Any, *, dir_fd: int | None = None) -> None:
            if os.path.basename(os.fsdecode(os.fspath(path))) == name:
                os.kill(os.getpid(), signal.SIGKILL)
            real(path, dir_fd=dir_fd)

        return unlink

    os.unlink = dying(real_unlink)
    os.remove = dying(real_remove)


def install_kill_after_open(name: str) -> None:
    """A crash at an exact point: SIGKILL this process just after it opens (so creates,
    for writing) a file called ``name`` through ``io.open`` (``open``, ``Path.open``)."""
    real_open = io.open

    def opening(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened = real_open(file, *args, **kwargs)
        named = isinstance(file, str | bytes | os.PathLike)
        if named and os.path.basename(os.fsdecode(os.fspath(file))) == name:
            os.kill(os.getpid(), signal.SIGKILL)
        return opened

    io.open = opening  # pathlib calls io.open at each call


def install_from_environ() -> None:
    """:func:`install` with the ``POWERCUT_*`` variables, if the journal is asked for;
    :func:`install_kill_point` if ``POWERCUT_KILL_AT_UNLINK`` names a file, and
    :func:`install_kill_after_open` if ``POWERCUT_KILL_AFTER_OPEN`` does."""
    journal = os.environ.get("POWERCUT_JOURNAL")
    if journal:
        install(journal, os.environ["POWERCUT_MORGUE"], os.environ["POWERCUT_ROOT"])
    name = os.environ.get("POWERCUT_KILL_AT_UNLINK")
    if name:
        install_kill_point(name)
    name = os.environ.get("POWERCUT_KILL_AFTER_OPEN")
    if name:
        install_kill_after_open(name)
