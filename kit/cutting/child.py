"""Run heavy work in a child process at low priority, with its progress sent back.

Cutting must never disturb a recording, so it runs in a separate process
(its own interpreter, started with ``spawn``: forking a threaded daemon is
unsafe) at a raised nice value. On Linux the I/O scheduler derives a
process's I/O priority from its nice value unless one is set explicitly, so
the child yields the SD card too. Progress and the result come back over a
pipe; a child that dies or fails surfaces as :class:`~kit.cutting.CutError`.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Generic, TypeVar

from kit.cutting import CutError
from kit.errors import KitError

log = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[float], None]

NICENESS = 10
_POLL_S = 0.2


@dataclass(frozen=True)
class ChildRun(Generic[T]):
    """What a child run returned, and what it cost."""

    value: T
    peak_rss_bytes: int  # the child's own peak resident set
    wall_s: float  # from starting the child to having its result


def own_peak_rss_bytes() -> int:
    """This process's own peak resident set, in bytes.

    ``ru_maxrss`` is not enough in a spawned child: Linux carries the
    high-water mark across ``execve``, so it still counts the pages of the
    forked copy of the parent (a 200 MB test runner reads as a 200 MB cut).
    ``VmHWM`` belongs to the current address space only.
    """
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    """A cut belongs to its daemon: when the daemon dies (a kill -9 outside systemd,
    which would otherwise empty the cgroup), the kernel kills the cut too, so it can
    never collide with the next daemon's cut."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's pipe still ends it
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)  # the daemon died before the signal was asked for


def _child_main(
    conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...], niceness: int
) -> None:
    _die_with_parent()
    os.nice(niceness)
    last = [-1.0]

    def report(fraction: float) -> None:
        # Whole percents are plenty for a progress bar and keep the pipe quiet.
        if fraction >= 1.0 or fraction - last[0] >= 0.01:
            last[0] = fraction
            conn.send(("progress", min(1.0, max(0.0, fraction))))

    try:
        value = fn(*args, progress=report)
        conn.send(("done", value, own_peak_rss_bytes()))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        detail = traceback.format_exc()
        try:
            conn.send(("error", exc, detail))
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            conn.send(("error", CutError(f"{type(exc).__name__}: {exc}"), detail))
    finally:
        conn.close()


def run_in_child(
    fn: Callable[..., T],
    *args: Any,
    progress: Progress | None = None,
    niceness: int = NICENESS,
    cancel: threading.Event | None = None,
) -> ChildRun[T]:
    """Call ``fn(*args, progress=...)`` in a low-priority child process and return its value.

    ``fn`` must be a module-level function and its arguments and result
    picklable. ``progress`` is called in this process with fractions 0..1.
    Setting ``cancel`` stops the child (raising :class:`CutError`).
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main, args=(send, fn, args, niceness), name="kit-cut", daemon=True
    )
    started = time.perf_counter()
    process.start()
    send.close()
    answered = False
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise CutError("the cut was cancelled")
            if not receive.poll(_POLL_S):
                if not process.is_alive() and not receive.poll(0):
                    raise CutError(f"the cutting process died (exit code {process.exitcode})")
                continue
            try:
                message = receive.recv()
            except EOFError:
                process.join(timeout=5)
                raise CutError(f"the cutting process died (exit code {process.exitcode})") from None
            if message[0] == "progress":
                if progress is not None:
                    progress(message[1])
            elif message[0] == "done":
                answered = True
                return ChildRun(message[1], message[2], time.perf_counter() - started)
            else:
                answered = True
                _, exc, detail = message
                log.error("the cutting process failed:\n%s", detail)
                if isinstance(exc, KitError):
                    raise exc
                raise CutError(f"the cut failed: {type(exc).__name__}: {exc}") from exc
    finally:
        receive.close()
        _end(process, answered=answered)


def _end(process: Any, *, answered: bool) -> None:
    if answered:
        # It is exiting: reap it on the side rather than wait out its teardown (the
        # interpreter's and the codecs' exit: 0.06-0.24 s on this project's CI machine).
        threading.Thread(target=_reap, args=(process,), name="kit-cut-reap", daemon=True).start()
    else:
        _reap(process, 0)  # cancelled or interrupted: stopped now


def _reap(process: Any, timeout_s: float = 5.0) -> None:
    """Wait up to ``timeout_s`` for ``process`` to exit, then kill it."""
    process.join(timeout=timeout_s)
    if process.is_alive():
        process.kill()
        process.join()
