"""The daemon's cutter: rough cuts one at a time, in the background, reported by callbacks.

It fits :class:`kit.daemon.worker.Cutter`: ``start`` returns at once; a thread
of its own runs each requested cut in turn (each in its low-priority child
process, see :func:`kit.cutting.visit.cut_visit`) and calls back with
progress and, always, once with the outcome ("" or what went wrong). Cuts never
run side by side: they would write the same files, and a Pi has little to spare.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kit.cutting.plan import CutRules
from kit.cutting.visit import CutResult, cut_visit
from kit.errors import CUT_WAITS_FOR_ROOM, out_of_space
from kit.store.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Request:
    visit_id: str
    on_progress: Callable[[float], None]
    on_done: Callable[[str], None]


class RoughCutter:
    """What both cutters share: the store, the cut's rules, and one cut with its outcome."""

    def __init__(self, store: Store, rules: CutRules, *, aac_bitrate: int = 128_000) -> None:
        self._store = store
        self._rules = rules
        self._aac_bitrate = aac_bitrate
        self.last: CutResult | None = None  # the latest successful cut, for whoever asks

    def _cut(
        self,
        visit_id: str,
        on_progress: Callable[[float], None],
        *,
        in_child: bool,
        cancel: threading.Event | None = None,
    ) -> str:
        """Make the cut; "" when it worked, else what went wrong (logged with the traceback)."""
        try:
            self.last = cut_visit(
                self._store,
                visit_id,
                self._rules,
                on_progress,
                in_child=in_child,
                aac_bitrate=self._aac_bitrate,
                cancel=cancel,
            )
        except Exception as exc:  # a thread boundary: report with the traceback, keep going
            if out_of_space(exc):
                log.warning("the rough cut of visit %s stopped: the card is full", visit_id)
                return CUT_WAITS_FOR_ROOM
            log.exception("the rough cut of visit %s failed", visit_id)
            return str(exc) or type(exc).__name__
        return ""

    def start(
        self,
        visit_id: str,
        on_progress: Callable[[float], None],
        on_done: Callable[[str], None],
    ) -> None:
        """Make the cut of ``visit_id``: progress, then always one ``on_done`` with ""
        or what went wrong (see :class:`kit.daemon.worker.Cutter`)."""
        self._submit(_Request(visit_id, on_progress, on_done))

    def _submit(self, request: _Request) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop cutting (nothing to stop here)."""


class BackgroundCutter(RoughCutter):
    """Queues rough cuts and makes them one after another on a worker thread."""

    def __init__(self, store: Store, rules: CutRules, *, aac_bitrate: int = 128_000) -> None:
        super().__init__(store, rules, aac_bitrate=aac_bitrate)
        self._lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()

    def _submit(self, request: _Request) -> None:
        """Queue the cut; returns at once."""
        with self._lock:
            if self._cancel.is_set():
                request.on_done("the cutter is shut down")
                return
            self._queue.append(request)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cutter", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
                request = self._queue.popleft()
            error = self._cut(
                request.visit_id, request.on_progress, in_child=True, cancel=self._cancel
            )
            try:
                request.on_done(error)
            except Exception:  # a thread boundary
                log.exception("the cut's completion callback failed")

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop: cancel the running cut (its child is killed) and drop queued ones."""
        with self._lock:
            self._cancel.set()
            dropped = list(self._queue)
            self._queue.clear()
            thread = self._thread
        for request in dropped:
            request.on_done("the cutter is shut down")
        if thread is not None:
            thread.join(timeout_s)


class InlineCutter(RoughCutter):
    """Makes each cut at once, in this process and thread (tests and headless use).

    Same contract as :class:`BackgroundCutter`: progress, then always one
    ``on_done`` with "" or what went wrong.
    """

    def _submit(self, request: _Request) -> None:
        request.on_done(self._cut(request.visit_id, request.on_progress, in_child=False))
