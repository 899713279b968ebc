"""The recording state machine: the one owner of starting and stopping takes.

States: idle -> recording -> finalising -> (cutting ->) idle, plus error.
The button, the phone, the storage guard, the recorder and the visit library
only *post* events to the worker's queue; the worker alone starts and stops
takes and starts rough cuts. That keeps every transition in one thread, in
order, and testable without sleeps: a test posts events (or presses the mock
button) and calls :meth:`step`.

It implements :class:`kit.daemon.api.Recording` for the web layer. Visits,
tags and cuts belong to the visit library (:mod:`kit.visits.library`): the
worker asks it for the open visit (a take records only into an open visit
with the family's consent), hands it the tags it stamps, tells it when a take ends, and asks it
whenever it is idle which visit's cut is out of date.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from kit.audit.chain import AuditKind, Auditor, NoAudit
from kit.clock import NS_PER_S, Clock
from kit.daemon.api import State, Status
from kit.daemon.events import CutFinished, EventLog, Refused
from kit.daemon.messages import (
    CutDone,
    CutDue,
    CutProgress,
    DiscardRequest,
    HardwareProblem,
    Press,
    RecorderFailed,
    Shutdown,
    StartRequest,
    StopRequest,
    Sweep,
    Tick,
)
from kit.daemon.panel import Light
from kit.daemon.storage import StorageGuard, StorageState
from kit.errors import KitError, StateError, StorageFull
from kit.hardware.camera import Camera
from kit.hardware.microphone import Microphone
from kit.model import Tag, Take, TakeState
from kit.recording.takes import Finished
from kit.visits.library import Library

log = logging.getLogger(__name__)

__all__ = ["Cutter", "Lights", "Recorder", "State", "Takes", "Worker"]


class Takes(Protocol):
    """What the worker needs of :class:`kit.recording.takes.TakeService`."""

    @property
    def current(self) -> Take | None: ...

    def start(self, visit_id: str) -> Take: ...

    def stop(self) -> Finished: ...

    def trim(self, take_id: str) -> Take: ...


class Recorder(Protocol):
    """The live facts the worker shows while recording."""

    @property
    def first_frame_ns(self) -> int | None: ...


class Cutter(Protocol):
    """Makes the rough cut of a visit in the background; reports by callbacks."""

    def start(
        self,
        visit_id: str,
        on_progress: Callable[[float], None],
        on_done: Callable[[str], None],
    ) -> None: ...


class Lights(Protocol):
    def show(self, light: Light) -> None: ...


class Worker:
    """The recording state machine; the :class:`kit.daemon.api.Recording` the web layer uses."""

    def __init__(
        self,
        *,
        clock: Clock,
        library: Library,
        events: EventLog,
        takes: Takes,
        recorder: Recorder,
        camera: Camera,
        microphone: Microphone,
        guard: StorageGuard,
        free_bytes: Callable[[], int],
        ignore_stop_within_ns: int = NS_PER_S,
        cutter: Cutter | None = None,
        lights: Lights | None = None,
        boot_id: str = "",
        audit: Auditor | None = None,
        discard_ns: int = 60 * NS_PER_S,
        sweep: Callable[[], object] | None = None,
    ) -> None:
        self._audit = audit or NoAudit()
        self._discard_ns = discard_ns
        self._sweep = sweep
        self._clock = clock
        self._boot_id = boot_id
        self._library = library
        self._events = events
        self._takes = takes
        self._recorder = recorder
        self._camera = camera
        self._mic = microphone
        self._guard = guard
        self._free_bytes = free_bytes
        self._ignore_stop_within = ignore_stop_within_ns
        self._cutter = cutter
        self._lights = lights
        self._monitoring = False
        # The take that ended last, with its span, so a tag retried just after
        # Stop still lands in it.
        self._last_take: tuple[Take, int, int] | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._state = State.IDLE
        self._error = ""
        self._take: Take | None = None
        self._start_requested_ns = 0
        self._storage = guard.assess(free_bytes())
        self._cut_progress: float | None = None
        self._cut_visit: str | None = None
        self._stopped = False
        self._heartbeat_ns = clock.now()
        self._show()

    # -- the event queue -------------------------------------------------

    def post(self, event: object) -> None:
        """Queue an event for the worker (safe from any thread, never blocks)."""
        self._queue.put(event)

    def press(self) -> None:
        """The button callback: stamp the press and post it."""
        self.post(Press(self._clock.now()))

    def step(self, timeout_s: float = 0.0) -> bool:
        """Handle one queued event; False if none came within ``timeout_s``."""
        try:
            event = (
                self._queue.get(timeout=timeout_s) if timeout_s > 0 else self._queue.get_nowait()
            )
        except queue.Empty:
            return False
        self._handle(event)
        return True

    def run(self, tick_s: float = 0.5) -> None:
        """Handle events until :class:`Shutdown`; a Tick whenever the queue is quiet."""
        while not self._stopped:
            if not self.step(timeout_s=tick_s):
                self._handle(Tick())

    def begin(self) -> None:
        """Listen to the microphone for the level meter, and make any cut left out of date
        (by a crash, a shutdown or a power cut) before the first take (before :meth:`run`)."""
        self._monitor(on=True)
        self.post(CutDue())

    @property
    def finished(self) -> bool:
        return self._stopped

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    @property
    def heartbeat_ns(self) -> int:
        """When the worker last finished handling an event (for the watchdog)."""
        with self._lock:
            return self._heartbeat_ns

    # -- transitions -----------------------------------------------------

    def _handle(self, event: object) -> None:
        handlers: dict[type, Callable[[Any], None]] = {
            Press: lambda e: self._on_press(e.at_ns),
            StartRequest: lambda e: self._start(e.source),
            StopRequest: self._on_stop_request,
            Tick: lambda _: self._on_tick(),
            RecorderFailed: lambda e: self._on_recorder_failed(e.error),
            HardwareProblem: self._on_hardware_problem,
            CutProgress: self._on_cut_progress,
            CutDone: lambda e: self._on_cut_done(e.visit_id, e.error),
            CutDue: lambda _: self._cut_if_due(),
            DiscardRequest: lambda e: self._discard(e.source, e.whole),
            Sweep: lambda _: self._on_sweep(),
            Shutdown: lambda _: self._on_shutdown(),
        }
        try:
            handler = handlers.get(type(event))
            if handler is None:
                log.error("the worker got an unknown event %r", event)
            else:
                handler(event)
        except Exception as exc:  # the worker must outlive any one event
            log.exception("handling %r failed", event)
            self._set(State.ERROR, f"internal error: {exc}")
        finally:
            with self._lock:
                self._heartbeat_ns = self._clock.now()

    def _on_stop_request(self, event: StopRequest) -> None:
        if self.state == State.RECORDING:
            self._stop(f"stopped from the {event.source}")

    def _on_hardware_problem(self, event: HardwareProblem) -> None:
        if self.state != State.RECORDING:
            self._set(State.ERROR, event.message)

    def _on_cut_progress(self, event: CutProgress) -> None:
        with self._lock:
            self._cut_progress = event.fraction
        self._publish_status()

    def _on_shutdown(self) -> None:
        if self.state == State.RECORDING:
            self._stop("the kit is shutting down")
        self._stopped = True

    def _on_press(self, at_ns: int) -> None:
        state = self.state
        if state == State.RECORDING:
            if at_ns - self._start_requested_ns < self._ignore_stop_within:
                log.info(
                    "ignoring a press %.2f s after the start",
                    (at_ns - self._start_requested_ns) / NS_PER_S,
                )
                return
            self._stop("stopped by the button")
        elif state == State.FINALISING:
            log.info("ignoring a press while the take is being finalised")
        else:
            self._start("button", at_ns)

    def _start(self, source: str, at_ns: int | None = None) -> None:
        if self.state in (State.RECORDING, State.FINALISING):
            log.info("start from the %s ignored: already %s", source, self.state)
            return
        storage = self._assess()
        if not storage.may_start:
            message = (
                f"not enough space to record: {storage.minutes_left:.0f} min left, "
                f"{self._guard.min_start_minutes:.0f} needed"
            )
            log.warning(message)
            self._events.publish(Refused(message))
            self._set(State.ERROR if self.state == State.ERROR else self.state, message)
            return
        visit = self._library.open_visit()
        try:
            if visit is None:
                raise StateError(
                    "no visit is open: start one on the phone, with the family's consent"
                )
            self._library.may_record(visit)
        except KitError as exc:
            log.warning("start from the %s refused: %s", source, exc)
            self._events.publish(Refused(str(exc)))
            self._set(State.ERROR if self.state == State.ERROR else self.state, str(exc))
            return
        self._monitor(on=False)
        try:
            self._camera.open()  # idempotent; retries a camera that failed at start-up
            take = self._takes.start(visit.id)
        except KitError as exc:
            log.exception("the take could not start")
            self._set(State.ERROR, f"could not start recording: {exc}")
            self._monitor(on=True)
            return
        with self._lock:
            self._take = take
            self._start_requested_ns = at_ns if at_ns is not None else self._clock.now()
        log.info("recording take %s of visit %s (started from the %s)", take.id, visit.id, source)
        self._audit.record(
            AuditKind.RECORDING_STARTED, {"visit_id": visit.id, "take_id": take.id, "by": source}
        )
        self._set(State.RECORDING, "")

    def _stop(self, reason: str, error: str = "") -> None:
        log.info("stopping: %s", reason)
        first, stopped = self._recorder.first_frame_ns, self._clock.now()
        with self._lock:
            if first is not None and self._take is not None:
                # A tap made before this instant and sent while the take is being
                # finalised (or just after) still belongs to it.
                self._last_take = (self._take, first, stopped)
        self._set(State.FINALISING, error)
        try:
            finished = self._takes.stop()
        except KitError as exc:
            log.exception("stopping the take failed")
            self._set(State.ERROR, f"stopping failed: {exc}")
            return
        finally:
            self._monitor(on=True)
        take = finished.take
        with self._lock:
            self._take = take
        self._library.take_ended(take)
        self._audit.record(
            AuditKind.RECORDING_STOPPED,
            {
                "visit_id": take.visit_id,
                "take_id": take.id,
                "state": take.state.value,
                "seconds": round(take.duration_ns / NS_PER_S, 1),
            },
        )
        if take.state == TakeState.FAILED:
            self._set(State.ERROR, f"the take could not be finalised: {take.error}")
        elif error:
            self._set(State.ERROR, error)
        else:
            self._set(State.IDLE, "")
            self._cut_if_due()

    def _cut_if_due(self) -> None:
        """Make the next out-of-date rough cut, if the kit is free to."""
        with self._lock:
            busy = self._cut_visit is not None or self._state not in (State.IDLE, State.CUTTING)
        if busy:
            return  # a cut after this take (or after the running cut) will look again
        visit_id = self._library.cut_due() if self._cutter is not None else None
        if visit_id is None or self._cutter is None:
            self._library.seal_ended()  # every ended visit has its final cut: seal it
            return
        self._library.cut_started(visit_id)
        with self._lock:
            self._cut_progress = 0.0
            self._cut_visit = visit_id
        self._set(State.CUTTING, "")
        self._cutter.start(
            visit_id,
            on_progress=lambda f: self.post(CutProgress(visit_id, f)),
            on_done=lambda err: self.post(CutDone(visit_id, err)),
        )

    def _on_cut_done(self, visit_id: str, error: str) -> None:
        with self._lock:
            self._cut_progress = None
            self._cut_visit = None
        self._library.cut_finished(visit_id)
        self._events.publish(CutFinished(visit_id, error))
        if error:
            log.error("the rough cut of %s failed: %s", visit_id, error)
        if self.state == State.CUTTING:
            self._set(State.IDLE, f"the rough cut failed: {error}" if error else "")
        self._cut_if_due()  # tags edited during the cut make it out of date again

    def _discard(self, source: str, whole: bool) -> None:
        """Stop and destroy the last seconds (or all) of the take recording now, or else of
        the take that ended last; the library records it before any file is touched."""
        state = self.state
        with self._lock:
            take, last = self._take, self._last_take
        if state == State.RECORDING and take is not None:
            first = self._recorder.first_frame_ns
            now = self._clock.now()
            until = 0 if whole or first is None else max(first, now - self._discard_ns)
            self._library.discard(take, until)
            self._stop(f"discarded by the {source}")
            with self._lock:  # a late tap may land only in what was kept
                if self._last_take is not None:
                    kept, start, _ = self._last_take
                    self._last_take = (kept, start, max(start, until)) if until else None
            return
        if last is None:
            self._events.publish(Refused("there is no take to discard"))
            return
        take, first, stopped = last
        until = 0 if whole else max(first, stopped - self._discard_ns)
        self._library.discard(self._library.take(take.id), until)
        trimmed = self._takes.trim(take.id)
        with self._lock:
            self._last_take = None  # its discarded end takes no more late taps
        self._library.take_ended(trimmed)
        self._cut_if_due()

    def _on_sweep(self) -> None:
        if self.state not in (State.RECORDING, State.FINALISING) and self._sweep is not None:
            self._sweep()

    def _on_tick(self) -> None:
        if self.state != State.RECORDING:
            self._monitor(on=True)
        storage = self._assess()
        if self.state == State.RECORDING and storage.must_stop:
            self._stop(
                "the card is nearly full",
                error=f"stopped: the card is nearly full ({storage.minutes_left:.1f} min left)",
            )
            return
        self._show()
        self._publish_status()

    def _on_recorder_failed(self, error: Exception) -> None:
        if self.state != State.RECORDING:
            return
        message = str(error)
        if isinstance(error, StorageFull):
            message = "the card is full: recording stopped, everything up to then is kept"
        self._stop("the recorder failed", error=message)

    def _assess(self) -> StorageState:
        take = self._takes.current
        first = self._recorder.first_frame_ns if take is not None else None
        recorded = self._clock.now() - first if first is not None else 0
        storage = self._guard.assess(self._free_bytes(), recorded)
        with self._lock:
            self._storage = storage
        return storage

    def _monitor(self, *, on: bool) -> None:
        """Keep the microphone open between takes, so the level meter works while framing."""
        if on == self._monitoring:
            return
        try:
            if on:
                self._mic.start(lambda _block: None)
            else:
                self._mic.stop()
        except KitError as exc:
            log.warning(
                "the level meter's microphone %s failed: %s", "start" if on else "stop", exc
            )
            return
        self._monitoring = on

    def _set(self, state: State, error: str) -> None:
        with self._lock:
            changed = (state, error) != (self._state, self._error)
            self._state, self._error = state, error
        if changed:
            log.info("state: %s%s", state, f" ({error})" if error else "")
        self._show()
        self._publish_status()

    def _show(self) -> None:
        if self._lights is None:
            return
        with self._lock:
            state, low = self._state, self._storage.low
        light = {
            State.RECORDING: Light.RECORDING,
            State.FINALISING: Light.BUSY,
            State.CUTTING: Light.BUSY,
            State.ERROR: Light.ERROR,
        }.get(state, Light.LOW_STORAGE if low else Light.READY)
        if state == State.IDLE and low:
            light = Light.LOW_STORAGE
        self._lights.show(light)

    def _publish_status(self) -> None:
        self._events.publish(self.status())

    # -- Recording ---------------------------------------------------------

    @property
    def events(self) -> EventLog:
        return self._events

    def status(self) -> Status:
        with self._lock:
            state, error, take, storage = self._state, self._error, self._take, self._storage
            progress, cutting = self._cut_progress, self._cut_visit
        recording = state == State.RECORDING
        visit = self._library.open_visit()
        return Status(
            state=state,
            visit_id=visit.id if visit else None,
            take_id=take.id if take else None,
            started_ns=self._recorder.first_frame_ns if recording else None,
            now_ns=self._clock.now(),
            minutes_left=storage.minutes_left,
            low_storage=storage.low,
            level_dbfs=self._mic.level_dbfs if recording or self._monitoring else -120.0,
            boot_id=self._boot_id,
            error=error,
            cut_progress=progress,
            cut_visit_id=cutting,
        )

    def start(self, source: str = "phone") -> None:
        self.post(StartRequest(source))

    def discard(self, source: str = "phone", *, whole: bool = False) -> None:
        self.post(DiscardRequest(source, whole))

    def stop(self, source: str = "phone") -> None:
        self.post(StopRequest(source))

    def now_ns(self) -> int:
        return self._clock.now()

    def add_tag(
        self, tag_id: str, label: str, note: str, author: str, delay_ns: int
    ) -> tuple[Tag, bool]:
        now = self._clock.now()
        at = now - delay_ns
        with self._lock:
            state, take, last = self._state, self._take, self._last_take
            started = self._start_requested_ns
        if state == State.RECORDING and take is not None:
            # A delay reaching back before the take began lands on its first moment.
            first = self._recorder.first_frame_ns
            at = max(at, started if first is None else first)
        else:
            # A tap sent (or retried) while the take is finalised, or just after, still
            # belongs to the take it was made in.
            if last is None or not last[1] <= at <= last[2]:
                raise StateError("tags can only be added while recording")
            take = last[0]
        return self._library.add_tag(
            Tag(
                id=tag_id,
                visit_id=take.visit_id,
                take_id=take.id,
                at_ns=at,
                label=label,
                note=note,
                author=author,
                created_ns=now,
            )
        )

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        return self._camera.preview_jpeg()
