"""Export jobs: a sealed visit copied to a USB stick, one at a time, in its own thread.

The phone asks (``POST /api/visits/<id>/export``); :meth:`Exports.start`
checks what it can at once (the visit can leave the kit, the stick is there
and writable, no other copy is running) and returns; the copy runs in a
thread of its own at a lower priority (nice 10), never in the worker thread
that drives recording. Its progress goes to the phones as ``export`` events
(:class:`kit.daemon.events.ExportProgress`): ``hashing`` (reading the visit
once, unless its bundle is kept), ``writing``, ``verifying`` (read back from
the stick), ``ejecting`` (flushed, unmounted, powered off), then ``done``
with ``safe_to_remove``, or ``failed`` with a reason a person can act on.

Nothing half-written looks complete: the bundle goes into a hidden
``.<name>.partial`` folder first and is renamed only once it verifies
(kit/handoff/write.py). After a failure the kit still tries to eject a stick
it opened, so that it too can be pulled out safely. Every copy that reached
the stick is in the audit trail (``visit.exported``: the visit, ``usb``,
bytes, files, the filesystem, whether it worked; no label, no path).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kit.audit.chain import AuditKind, Auditor, NoAudit
from kit.daemon.events import EventLog, ExportPhase, ExportProgress
from kit.errors import KitError, StateError, StorageError, StorageFull
from kit.handoff.bundle import Bundle, NotBundleable, check_bundleable
from kit.handoff.service import HandOff
from kit.handoff.usb import Stick, StickError, StickGone, Sticks, StickUnusable, find
from kit.handoff.write import write_bundle
from kit.store.store import new_id

log = logging.getLogger(__name__)

# The share of the whole job each phase takes, for one progress bar on the phone (measured
# on this project's CI machine: hashing and verifying read at disk speed, writing to a
# stick is the slowest; on a kit the stick's write speed dominates even more).
_SPAN = {
    ExportPhase.HASHING: (0.0, 0.3),
    ExportPhase.WRITING: (0.3, 0.75),
    ExportPhase.VERIFYING: (0.75, 0.95),
    ExportPhase.EJECTING: (0.95, 1.0),
}
PUBLISH_INTERVAL_S = 0.25  # at most 4 progress events a second: the event log keeps 5000
EXPORT_NICE = 10  # as the rough cut's child: recording and the phones come first

_PULLED_OUT = (
    "The stick was pulled out before the copy finished. Nothing on it is a finished "
    "copy: plug it back in and copy again."
)


class ExportBusy(StateError):
    """Another export is running: one at a time."""


class _Cancelled(StorageError):
    """The kit is shutting down: the copy stops (its partial folder is removed)."""


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


class Exports:
    """Copies sealed visits to USB sticks, one at a time (see the module's docstring)."""

    def __init__(
        self,
        handoff: HandOff,
        sticks: Sticks,
        events: EventLog,
        audit: Auditor | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        nice: int = EXPORT_NICE,
        publish_interval_s: float = PUBLISH_INTERVAL_S,
    ) -> None:
        self.handoff = handoff
        self._sticks = sticks
        self._events = events
        self._audit = audit or NoAudit()
        self._clock = clock
        self._nice = nice
        self._interval = publish_interval_s
        self._lock = threading.Lock()
        self._job: ExportProgress | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._published_at = 0.0

    @property
    def sticks_source(self) -> Sticks:
        """Where the sticks come from (real, or simulated folders)."""
        return self._sticks

    # --- what the phone asks -------------------------------------------------------------

    def sticks(self) -> list[Stick]:
        """The USB sticks plugged in now."""
        return self._sticks.list()

    def current(self) -> ExportProgress | None:
        """The running export, or the last one (until the next starts), or None."""
        with self._lock:
            return self._job

    def start(self, visit_id: str, stick_id: str) -> ExportProgress:
        """Start copying ``visit_id`` to the stick ``stick_id``; the job as it starts.

        Refuses at once: :class:`kit.errors.NotFound` for an unknown visit,
        :class:`NotBundleable` for a visit that cannot leave the kit (yet),
        :class:`StickGone` for a stick that is not plugged in,
        :class:`StickUnusable` for one the kit cannot write, and
        :class:`ExportBusy` while another copy runs.
        """
        if self._cancel.is_set():
            raise ExportBusy("the kit is shutting down")
        check_bundleable(self.handoff.db.visit(visit_id))
        stick = find(self._sticks, stick_id)
        if not stick.usable:
            raise StickUnusable(f"{stick.label} is {stick.problem}")
        with self._lock:
            if self._job is not None and self._job.running:
                raise ExportBusy("another copy to a USB stick is running: wait until it is done")
            job = ExportProgress(
                job_id=new_id(),
                visit_id=visit_id,
                to="usb",
                stick=stick.id,
                stick_label=stick.label,
                phase=ExportPhase.HASHING,
            )
            self._job = job
            self._published_at = self._clock()
            self._thread = threading.Thread(
                target=self._run, args=(job, stick), name=f"export-{job.job_id}", daemon=True
            )
        self._events.publish(job)
        self._thread.start()
        return job

    def wait(self, timeout_s: float | None = None) -> ExportProgress | None:
        """Wait for the running export to end (tests, the CLI); the job as it ended."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return self.current()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop a running export (its partial folder is removed) and wait for it."""
        self._cancel.set()
        self.wait(timeout_s)

    # --- the export thread ---------------------------------------------------------------

    def _lower_priority(self) -> None:
        """Nice this thread only (Linux: a thread id is a process id for setpriority)."""
        tid = threading.get_native_id()
        try:
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, max(current, self._nice))
        except OSError as exc:
            log.warning("the export runs at normal priority: %s", exc)

    def _update(self, force: bool = False, **changes: object) -> None:
        """Change the job and, at most every ``publish_interval_s`` (or when ``force``d, a
        new phase, a finished one), tell the phones."""
        with self._lock:
            assert self._job is not None
            before = self._job
            job = dataclasses.replace(before, **changes)  # type: ignore[arg-type]
            self._job = job
            now = self._clock()
            due = (
                force
                or job.phase != before.phase
                or job.fraction >= 1.0
                or now - self._published_at >= self._interval
            )
            if due:
                self._published_at = now
        if due:
            self._events.publish(job)

    def _progress(self, phase: ExportPhase, fraction: float) -> None:
        if self._cancel.is_set():
            raise _Cancelled("the copy was stopped: the kit is shutting down")
        fraction = min(1.0, max(0.0, fraction))
        low, high = _SPAN[phase]
        current = self.current()
        size = current.bytes if current is not None else 0
        self._update(
            phase=phase,
            fraction=round(fraction, 4),
            overall=round(low + (high - low) * fraction, 4),
            bytes_done=round(size * fraction),
        )

    def _write_progress(self, phase: str, fraction: float) -> None:
        if phase in (ExportPhase.WRITING, ExportPhase.VERIFYING):
            self._progress(ExportPhase(phase), fraction)

    def _run(self, job: ExportProgress, stick: Stick) -> None:
        self._lower_priority()
        bundle: Bundle | None = None
        dest: Path | None = None
        free: int | None = None
        written = False
        try:
            bundle = self.handoff.bundle(
                job.visit_id, lambda d, t: self._progress(ExportPhase.HASHING, d / max(1, t))
            )
            self._update(bytes=bundle.size, bundle=bundle.name)
            self._progress(ExportPhase.HASHING, 1.0)
            dest = self._sticks.mount(stick.id)
            with contextlib.suppress(OSError):
                free = shutil.disk_usage(dest).free
            self._progress(ExportPhase.WRITING, 0.0)
            write_bundle(
                bundle, dest, max_file_bytes=stick.max_file_bytes, progress=self._write_progress
            )
            written = True
            self._record(bundle, stick, ok=True)
            self._progress(ExportPhase.EJECTING, 0.0)
            self._sticks.eject(stick.id)
        except Exception as exc:  # noqa: BLE001 - a thread's boundary: _failed logs it
            self._failed(job, stick, exc, bundle=bundle, free=free, opened=dest, written=written)
            return
        log.info(
            "visit %s copied to %s (%d bytes) and ejected", job.visit_id, stick.id, bundle.size
        )
        self._update(
            force=True,
            phase=ExportPhase.DONE,
            fraction=1.0,
            overall=1.0,
            bytes_done=bundle.size,
            safe_to_remove=True,
        )

    def _record(self, bundle: Bundle, stick: Stick, *, ok: bool) -> None:
        self._audit.record(
            AuditKind.EXPORTED,
            {
                "visit_id": bundle.visit_id,
                "to": "usb",
                "bytes": bundle.size,
                "files": len(bundle.entries),
                "fstype": stick.fstype,
                "ok": ok,
            },
        )

    def _present(self, stick_id: str) -> bool:
        try:
            return any(s.id == stick_id for s in self._sticks.list())
        except KitError:
            return False

    def _failed(
        self,
        job: ExportProgress,
        stick: Stick,
        exc: Exception,
        *,
        bundle: Bundle | None,
        free: int | None,
        opened: Path | None,
        written: bool,
    ) -> None:
        present = self._present(stick.id)
        message = self._explain(
            exc,
            bundle=bundle,
            free=free,
            present=present,
            opened=opened is not None,
            written=written,
        )
        if isinstance(exc, KitError | OSError):
            log.warning("export of visit %s to %s failed: %s", job.visit_id, stick.id, exc)
        else:
            log.error("export of visit %s failed", job.visit_id, exc_info=exc)
        if bundle is not None and opened is not None and not written:
            self._record(bundle, stick, ok=False)  # something may have reached the stick
        safe = opened is None or not present  # never opened, or already out
        if opened is not None and present and not written:
            # Let it be pulled out safely after all (a full stick, a damaged copy).
            try:
                self._sticks.eject(stick.id)
                safe = True
            except KitError as eject_exc:
                log.warning("could not eject %s after the failure: %s", stick.id, eject_exc)
        self._update(force=True, phase=ExportPhase.FAILED, error=message, safe_to_remove=safe)

    @staticmethod
    def _explain(  # noqa: PLR0911 - one answer for each kind of failure, first match wins
        exc: Exception,
        *,
        bundle: Bundle | None,
        free: int | None,
        present: bool,
        opened: bool,
        written: bool,
    ) -> str:
        """What the phone says: what happened, and what to do."""
        if written:
            if isinstance(exc, StickGone) or not present:
                return (
                    "The copy was finished and checked, but the stick was pulled out before "
                    "the kit ejected it. Check it on a computer with `kit verify`."
                )
            return (
                f"The copy is on the stick and checked, but the kit could not eject it ({exc}). "
                "Don't pull it out yet: tap the stick again to retry."
            )
        if isinstance(exc, _Cancelled):
            return "The copy was stopped: the kit is shutting down. Copy again after it restarts."
        if isinstance(exc, StorageFull) and bundle is not None:
            has = f"it has {_gb(free)} free" if free is not None else "it has less"
            return (
                f"The stick is too full: this visit needs {_gb(bundle.size)} and {has}. "
                "Nothing was left on it. Use a bigger stick, or make room on it on a computer."
            )
        if not present and (opened or isinstance(exc, StickGone)):
            return _PULLED_OUT
        if isinstance(exc, NotBundleable | StickGone | StickUnusable | StickError):
            return str(exc)
        if isinstance(exc, KitError):
            return f"The copy failed: {exc}. Nothing on the stick is a finished copy."
        if isinstance(exc, OSError):
            return (
                f"The copy failed: {exc.strerror or exc}. Nothing on the stick is a finished copy."
            )
        return "The copy failed (the kit's log says why). Nothing on the stick is a finished copy."
