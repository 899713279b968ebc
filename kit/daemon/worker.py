"""The recording state machine: the one owner of starting and stopping takes.

The hardware is idle, recording or in error. Beside it, films are made in the
background: a stopped take's (by one finaliser thread, :class:`Finalising`) and a
visit's rough cut (by the cutter). A stop takes only as long as stopping the
camera and the microphone (the raw streams are durable then); the take's film is
made afterwards, so the next take can start at once, while the previous one is
still being finalised or cut. :class:`kit.daemon.api.Status` carries both: the
state in one word, and what is being made.

The button, the phone, the storage guard, the recorder, the finaliser, the
cutter and the visit library only *post* events to the worker's queue; the
worker alone starts and stops takes and starts rough cuts. That keeps every
transition in one thread, in order, and testable without sleeps: a test posts
events (or presses the mock button) and calls :meth:`Worker.step`.

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
from collections import deque
from collections.abc import Callable, Collection
from typing import Any, Protocol

from kit.audit.chain import AuditKind, Auditor, NoAudit
from kit.clock import NS_PER_S, Clock
from kit.daemon.api import State, Status
from kit.daemon.events import (
    CAMERA_STOPPED,
    MIC_ABSENT,
    MIC_BACK,
    MIC_LOST,
    MIC_MISSING,
    NO_CAMERA,
    CutFinished,
    Device,
    DeviceChanged,
    DeviceState,
    EventLog,
    Refused,
)
from kit.daemon.messages import (
    CutDone,
    CutDue,
    CutProgress,
    DiscardRequest,
    Finalised,
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
from kit.errors import CUT_WAITS_FOR_ROOM, KitError, StateError, StorageFull, out_of_space
from kit.hardware.camera import Camera, CameraBlocked
from kit.hardware.microphone import Microphone
from kit.model import Tag, Take, TakeState
from kit.recording.recorder import CameraStalled, DeviceReport, MicrophoneBack, MicrophoneLost
from kit.recording.takes import Finished, Stopped
from kit.store import layout
from kit.visits.library import Library

log = logging.getLogger(__name__)

__all__ = ["Cutter", "Finalising", "Lights", "Recorder", "State", "Takes", "Worker"]

# When a film being made counts as stuck. The mux reports no progress of its own
# (TakeService.finish is one call), so the allowance covers the whole film: a base, plus
# a share of the take's length. Measured: a 10-minute 720p take muxes in under 2 s on
# this project's x86 CI machine and a Pi 4 is ~5-10x slower, so about 1/30 of the take's
# length on a Pi; 5 minutes plus a quarter of the take's length is 7x that or more.
FINALISE_STALL_NS = 300 * NS_PER_S
FINALISE_STALL_SHARE = 0.25
# How long a shutdown waits for the films being made before it leaves them to the next
# start's recovery (from their raw streams). kit run asks systemd for this and a margin
# (kit.daemon.run.FINALISE_ALLOWANCE_NS), past TimeoutStopSec.
SHUTDOWN_WAIT_NS = 280 * NS_PER_S
# Takes that ended lately, whose span a late tap (made before a stop, sent later) is
# checked against: a tap may be sent up to 10 minutes late, over several short takes.
RECENT_TAKES = 8
# How often takes waiting for room on the card are looked at again.
WAITING_CHECK_NS = 5 * NS_PER_S
# A cut that failed on a full card is tried again once this much more is free.
CUT_ROOM_BYTES = 16 * 1024 * 1024
# How often a microphone that would not start for the level meter is tried again
# (each try may re-scan the audio devices).
MONITOR_RETRY_NS = 5 * NS_PER_S


class Takes(Protocol):
    """What the worker needs of :class:`kit.recording.takes.TakeService`."""

    @property
    def current(self) -> Take | None: ...

    def start(self, visit_id: str) -> Take: ...

    def stop_recording(self) -> Stopped: ...

    def finish(self, stopped: Stopped) -> Finished: ...

    def trim(self, take_id: str) -> Take: ...

    def waiting(self, free_bytes: int, busy: Collection[str] = ()) -> list[Stopped]: ...

    def unfinished(self) -> list[str]: ...


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


class Finalising:
    """Makes stopped takes' films in one background thread, one at a time, in the order
    they stopped; each outcome is posted back to the worker as :class:`Finalised`.

    One thread, so never two finalises at once (and never one take twice). It keeps
    an eye on itself for the watchdog: :meth:`stalled` says when the film being made
    has gone past its allowance without progress (a start or an end). ``before``
    runs in the thread before each take (tests hold a take there until released).
    """

    def __init__(
        self,
        finish: Callable[[Stopped], Finished],
        post: Callable[[object], None],
        clock: Clock,
        *,
        stall_ns: int = FINALISE_STALL_NS,
        stall_share: float = FINALISE_STALL_SHARE,
        before: Callable[[Stopped], None] | None = None,
    ) -> None:
        self._finish = finish
        self._post = post
        self._clock = clock
        self._stall_ns = stall_ns
        self._stall_share = stall_share
        self._before = before
        self._jobs: queue.SimpleQueue[tuple[Stopped, int] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: tuple[str, int, int] | None = None  # take, last progress, allowance
        self._begun: deque[str] = deque(maxlen=RECENT_TAKES)  # takes it has begun, newest last
        self._thread: threading.Thread | None = None

    def submit(self, stopped: Stopped, recorded_ns: int) -> None:
        """Queue a stopped take (``recorded_ns`` long) to have its film made."""
        allowance = self._stall_ns + round(max(0, recorded_ns) * self._stall_share)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="finalise", daemon=True)
                self._thread.start()
        self._jobs.put((stopped, allowance))

    def begun(self, take_id: str) -> bool:
        """Whether the take's film has begun to be made (it may have read the take's row):
        a discard recorded later must be applied to the film afterwards."""
        with self._lock:
            return take_id in self._begun

    def stalled(self) -> str | None:
        """Why the film being made looks stuck, or None."""
        with self._lock:
            running = self._running
        if running is None:
            return None
        take_id, since, allowance = running
        quiet = self._clock.now() - since
        if quiet <= allowance:
            return None
        return (
            f"the film of take {take_id} has made no progress for {quiet / NS_PER_S / 60:.0f} "
            "min: the kit makes it again from the recording when it restarts"
        )

    def close(self, timeout_s: float = 1.0) -> None:
        """End the thread once the queue is done (waits ``timeout_s`` at most: a film
        still being made then is left to the next start's recovery)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._jobs.put(None)
            thread.join(timeout_s)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            stopped, allowance = job
            take_id = stopped.take.id
            with self._lock:
                self._running = (take_id, self._clock.now(), allowance)
                self._begun.append(take_id)
            finished, error = None, ""
            try:
                if self._before is not None:
                    self._before(stopped)
                finished = self._finish(stopped)
            except Exception as exc:  # the thread must outlive any one take
                log.exception("finalising take %s failed; its raw streams are kept", take_id)
                error = str(exc) or type(exc).__name__
            finally:
                with self._lock:
                    self._running = None
            self._post(Finalised(take_id, finished, error))


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
        before_finish: Callable[[Stopped], None] | None = None,
        finalise_stall_ns: int = FINALISE_STALL_NS,
        shutdown_wait_ns: int = SHUTDOWN_WAIT_NS,
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
        self._shutdown_wait = shutdown_wait_ns
        self._monitoring = False
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._finisher = Finalising(
            takes.finish, self.post, clock, stall_ns=finalise_stall_ns, before=before_finish
        )
        self._lock = threading.Lock()
        # The hardware: IDLE, RECORDING or ERROR; what is being made is beside it.
        self._state = State.IDLE
        self._error = ""
        self._take: Take | None = None
        self._start_requested_ns = 0
        # Stopped takes whose films are being made, in the order they stopped.
        self._finalising: dict[str, Take] = {}
        # Recently ended takes with their spans (first frame, stop), newest last: a tap
        # made before a stop and sent later (even while the next take records) lands in
        # the take it was made in.
        self._ended: list[tuple[Take, int, int]] = []
        # The take a discard between takes applies to (the one that ended last).
        self._last_take: tuple[Take, int, int] | None = None
        # Takes discarded after their film had begun: the film is cut short when done.
        self._late_discards: set[str] = set()
        self._storage = guard.assess(free_bytes())
        self._cut_progress: float | None = None
        self._cut_visit: str | None = None
        self._closing_since: int | None = None  # a shutdown was asked for at this instant
        self._stall_logged = False
        self._waiting_checked_ns = -WAITING_CHECK_NS
        self._card_full = False  # the error shown is the card's: cleared once it has room
        # Visits whose cut failed on a full card -> free bytes then: made again once the
        # card has CUT_ROOM_BYTES more (see _finish_waiting).
        self._cuts_waiting: dict[str, int] = {}
        # The microphone's trouble, shown beside any error (MIC_LOST, MIC_MISSING or
        # MIC_ABSENT), and when the level meter's microphone last failed to start.
        self._mic_warning = ""
        self._monitor_failed_ns: int | None = None
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
        """Handle events until :class:`Shutdown` is done; a Tick whenever the queue is quiet."""
        while not self._stopped:
            if not self.step(timeout_s=tick_s):
                self._handle(Tick())

    def begin(self) -> None:
        """Listen to the microphone for the level meter, and make any cut left out of date
        (by a crash, a shutdown or a power cut) before the first take (before :meth:`run`)."""
        self._monitor(on=True)
        self.post(CutDue())

    def close(self) -> None:
        """End the finaliser's thread (after :meth:`run`; a film still being made is left
        to the next start's recovery)."""
        self._finisher.close()

    @property
    def finished(self) -> bool:
        return self._stopped

    @property
    def state(self) -> State:
        """The state in one word (see :class:`kit.daemon.api.State`)."""
        with self._lock:
            return self._headline()

    @property
    def finalising(self) -> tuple[str, ...]:
        """The stopped takes whose films are still being made, oldest first."""
        with self._lock:
            return tuple(self._finalising)

    @property
    def heartbeat_ns(self) -> int:
        """When the worker last finished handling an event (for the watchdog)."""
        with self._lock:
            return self._heartbeat_ns

    def finalise_stalled(self) -> str | None:
        """Why the film being made in the background looks stuck, or None (the watchdog)."""
        return self._finisher.stalled()

    def _headline(self) -> State:
        if self._state != State.IDLE:
            return self._state  # recording, or an error: what the guider must know first
        if self._finalising:
            return State.FINALISING
        if self._cut_visit is not None:
            return State.CUTTING
        return State.IDLE

    # -- transitions -----------------------------------------------------

    def _handle(self, event: object) -> None:
        handlers: dict[type, Callable[[Any], object]] = {
            Press: lambda e: self._on_press(e.at_ns),
            StartRequest: lambda e: self._start(e.source),
            StopRequest: self._on_stop_request,
            Tick: lambda _: self._on_tick(),
            RecorderFailed: lambda e: self._on_recorder_failed(e.error),
            HardwareProblem: self._on_hardware_problem,
            Finalised: self._on_finalised,
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

    def _recording(self) -> bool:
        with self._lock:
            return self._state == State.RECORDING

    def _on_stop_request(self, event: StopRequest) -> None:
        if self._recording():
            self._stop(f"stopped from the {event.source}")

    def _on_hardware_problem(self, event: HardwareProblem) -> None:
        if not self._recording():
            self._set(State.ERROR, event.message)

    def _on_cut_progress(self, event: CutProgress) -> None:
        with self._lock:
            self._cut_progress = event.fraction
        self._publish_status()

    def _on_shutdown(self) -> None:
        if self._recording():
            self._stop("the kit is shutting down")
        if self._closing_since is None:
            self._closing_since = self._clock.now()
        pending = self.finalising
        if pending:
            log.info(
                "waiting for the film of %d take(s) before exiting (at most %.0f s)",
                len(pending),
                self._shutdown_wait / NS_PER_S,
            )
        self._end_if_done()

    def _end_if_done(self) -> None:
        """Once shutting down: end the loop when no film is being made, or when the wait
        is over (what is left is finalised at the next start, from its raw streams)."""
        if self._closing_since is None:
            return
        pending = self.finalising
        if pending and self._clock.now() - self._closing_since < self._shutdown_wait:
            return
        if pending:
            log.warning(
                "shutting down with take(s) %s still being finalised: the next start "
                "finishes them from their raw streams",
                ", ".join(pending),
            )
        self._stopped = True

    def _on_press(self, at_ns: int) -> None:
        if self._recording():
            if at_ns - self._start_requested_ns < self._ignore_stop_within:
                log.info(
                    "ignoring a press %.2f s after the start",
                    (at_ns - self._start_requested_ns) / NS_PER_S,
                )
                return
            self._stop("stopped by the button")
        else:
            self._start("button", at_ns)  # also while the last take's film is being made

    def _start(self, source: str, at_ns: int | None = None) -> None:
        if self._recording():
            log.info("start from the %s ignored: already recording", source)
            return
        if self._closing_since is not None:
            log.info("start from the %s ignored: the kit is shutting down", source)
            return
        storage = self._assess()
        if not storage.may_start:
            message = (
                f"not enough space to record: {storage.minutes_left:.0f} min left, "
                f"{self._guard.min_start_minutes:.0f} needed"
            )
            log.warning(message)
            self._events.publish(Refused(message))
            self._set_error(message)
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
            self._set_error(str(exc))
            return
        self._monitor(on=False)
        try:
            self._camera.open()  # idempotent; retries a camera that failed at start-up
        except KitError as exc:
            self._refuse_without_camera(source, exc)
            return
        try:
            take = self._takes.start(visit.id)
        except KitError as exc:
            log.exception("the take could not start")
            self._set(State.ERROR, f"could not start recording: {exc}")
            self._monitor(on=True)
            return
        with self._lock:
            self._take = take
            self._start_requested_ns = at_ns if at_ns is not None else self._clock.now()
            self._mic_warning = ""  # the recorder reports a microphone that did not start
        log.info("recording take %s of visit %s (started from the %s)", take.id, visit.id, source)
        self._audit.record(
            AuditKind.RECORDING_STARTED, {"visit_id": visit.id, "take_id": take.id, "by": source}
        )
        self._set(State.RECORDING, "")

    def _stop(self, reason: str, error: str = "") -> None:
        """Stop the hardware (fast: the raw streams are then durable) and hand the take to
        the finaliser; the kit is free to record again at once."""
        log.info("stopping: %s", reason)
        first, stopped_ns = self._recorder.first_frame_ns, self._clock.now()
        with self._lock:
            take = self._take
            if take is not None:
                self._finalising[take.id] = take  # the status says so from now on
                if first is not None:
                    # A tap made before this instant and sent while the take is being
                    # finalised (or later, even during the next take) still belongs to it.
                    self._remember((take, first, stopped_ns))
            # From here on, taps are checked against the take's span.
            self._state = State.IDLE
            # The level meter's microphone, tried at once, says if it is still missing.
            self._mic_warning = ""
            self._monitor_failed_ns = None
        stopped: Stopped | None = None
        try:
            stopped = self._takes.stop_recording()
        except KitError as exc:
            log.exception("stopping the take failed")
            if out_of_space(exc):
                with self._lock:
                    self._card_full = True
            self._set(State.ERROR, f"stopping failed: {exc}")
        finally:
            self._monitor(on=True)
            if stopped is None and take is not None:
                with self._lock:  # left as it is, for the next start's recovery
                    self._finalising.pop(take.id, None)
        if stopped is None:
            return
        with self._lock:
            self._take = stopped.take
            self._finalising[stopped.take.id] = stopped.take
            if first is None and stopped.stats.first_frame_ns is not None:
                # The first frame was still on its way to the writer: known only now.
                first = stopped.stats.first_frame_ns
                self._remember((stopped.take, first, stopped_ns))
        self._finisher.submit(stopped, stopped_ns - first if first is not None else 0)
        self._set(State.ERROR if error else State.IDLE, error)

    def _remember(self, span: tuple[Take, int, int]) -> None:
        """(With the lock.) A take that ended, for late taps and for a discard."""
        self._ended = [*self._ended, span][-RECENT_TAKES:]
        self._last_take = span

    def _on_finalised(self, event: Finalised) -> None:
        # The take stays listed as being finalised until _after_finalise: the status
        # then goes from "finalising" to "cutting" (or idle) in one step, never idle
        # for the moment between the film and its visit's cut.
        try:
            self._take_finalised(event)
        finally:
            self._after_finalise(event.take_id)

    def _take_finalised(self, event: Finalised) -> None:
        with self._lock:
            late = event.take_id in self._late_discards
            self._late_discards.discard(event.take_id)
        if event.finished is None:
            # The row is left as it was: the next start's recovery makes the film.
            self._set_error(f"the take could not be finalised: {event.error}", hard=True)
            return
        take = self._library.take(event.finished.take.id)
        if take.state in (TakeState.RECORDING, TakeState.FINALISING):
            # The card was full: the take waits (see _finish_waiting); nothing is lost.
            with self._lock:
                self._card_full = True
            self._set_error(take.error or "the card is full", hard=False)
            return
        if late and take.state == TakeState.READY:
            # Discarded while its film was being made: cut the film short now.
            take = self._takes.trim(take.id)
        with self._lock:
            if self._take is not None and self._take.id == take.id:
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
            self._set_error(f"the take could not be finalised: {take.error}", hard=True)

    def _after_finalise(self, take_id: str) -> None:
        """The take's film is done with: it leaves the takes being finalised, and the
        next cut (if one is due) starts in the same step; the status is then shown."""
        if self._closing_since is not None:
            with self._lock:
                self._finalising.pop(take_id, None)
            self._end_if_done()
        elif not self._cut_if_due(ending=take_id):
            self._show()
            self._publish_status()

    def _cut_if_due(self, ending: str | None = None) -> bool:
        """Make the next out-of-date rough cut, if the kit is free to: not recording, no
        take's film still being made (its visit's cut would be out of date at once, and
        its visit must not be sealed under it), not shutting down. ``ending``: a take
        whose film is done, taken off the takes being finalised as the cut starts (only
        this thread changes what is checked here; readers see both at once). True if a
        cut started."""
        with self._lock:
            busy = (
                self._cut_visit is not None
                or self._state != State.IDLE
                or any(take_id != ending for take_id in self._finalising)
                or self._closing_since is not None
            )
        visit_id = None
        if not busy and self._cutter is not None:
            visit_id = self._library.cut_due()
            if visit_id is not None:
                self._library.cut_started(visit_id)
        with self._lock:
            if ending is not None:
                self._finalising.pop(ending, None)
            if visit_id is not None:
                self._cut_progress = 0.0
                self._cut_visit = visit_id
        if busy:
            return False  # a cut after this take (or after the running cut) will look again
        if visit_id is None or self._cutter is None:
            with self._lock:
                waiting = set(self._cuts_waiting)
            # Every ended visit has its final cut (or waits for room to make it): seal it.
            self._library.seal_ended(waiting)
            return False
        self._set(State.IDLE, "")
        self._cutter.start(
            visit_id,
            on_progress=lambda f: self.post(CutProgress(visit_id, f)),
            on_done=lambda err: self.post(CutDone(visit_id, err)),
        )
        return True

    def _on_cut_done(self, visit_id: str, error: str) -> None:
        with self._lock:
            self._cut_progress = None
            self._cut_visit = None
            idle = self._state == State.IDLE
        self._library.cut_finished(visit_id)
        self._events.publish(CutFinished(visit_id, error))
        if error == CUT_WAITS_FOR_ROOM:
            with self._lock:
                self._cuts_waiting[visit_id] = self._free_bytes()
                self._card_full = True
            if idle:
                self._set(State.IDLE, error)
                return
        elif error:
            log.error("the rough cut of %s failed: %s", visit_id, error)
        if idle:
            self._set(State.IDLE, f"the rough cut failed: {error}" if error else "")
        else:
            self._show()
            self._publish_status()
        self._cut_if_due()  # tags edited during the cut make it out of date again

    def _discard(self, source: str, whole: bool) -> None:
        """Stop and destroy the last seconds (or all) of the take recording now, or else of
        the take that ended last; the library records it before any file is touched."""
        with self._lock:
            recording, take, last = self._state == State.RECORDING, self._take, self._last_take
        if recording and take is not None:
            first = self._recorder.first_frame_ns
            now = self._clock.now()
            until = 0 if whole or first is None else max(first, now - self._discard_ns)
            self._library.discard(take, until)
            self._stop(f"discarded by the {source}")
            with self._lock:  # a late tap may land only in what was kept
                self._forget(take.id, until)
            return
        if last is None:
            self._events.publish(Refused("there is no take to discard"))
            return
        take, first, stopped = last
        until = 0 if whole else max(first, stopped - self._discard_ns)
        self._library.discard(self._library.take(take.id), until)
        with self._lock:
            self._forget(take.id, None)  # its discarded end takes no more late taps
            self._last_take = None
            making = take.id in self._finalising
        if making:
            # The finaliser honours the discard if it has not begun (the row says it
            # first); else the film is cut short once it is made (see _on_finalised).
            if self._finisher.begun(take.id):
                with self._lock:
                    self._late_discards.add(take.id)
            log.info("take %s: its film is being made; the discard is applied to it", take.id)
            return
        trimmed = self._takes.trim(take.id)
        self._library.take_ended(trimmed)
        self._cut_if_due()

    def _forget(self, take_id: str, until: int | None) -> None:
        """(With the lock.) Late taps land in ``take_id`` only before ``until`` (None or 0:
        not at all)."""
        kept = []
        for take, start, end in self._ended:
            if take.id != take_id:
                kept.append((take, start, end))
            elif until:
                kept.append((take, start, max(start, min(end, until))))
        self._ended = kept
        if self._last_take is not None and self._last_take[0].id == take_id:
            self._last_take = next((s for s in kept if s[0].id == take_id), None)

    def _on_sweep(self) -> None:
        with self._lock:
            busy = self._state == State.RECORDING or bool(self._finalising)
        if not busy and self._sweep is not None:
            self._sweep()

    def _on_tick(self) -> None:
        if not self._recording() and self._closing_since is None:
            self._monitor(on=True)
        storage = self._assess()
        if self._recording() and storage.must_stop:
            self._stop(
                "the card is nearly full",
                error=f"stopped: the card is nearly full ({storage.minutes_left:.1f} min left)",
            )
            return
        self._finish_waiting()
        stall = self._finisher.stalled()
        if stall is not None and not self._stall_logged:
            log.error("%s", stall)
        self._stall_logged = stall is not None
        self._end_if_done()
        self._show()
        self._publish_status()

    def _finish_waiting(self) -> None:
        """Every so often, hand takes left unfinished (the card was full) to the
        finaliser once the card has room for their films."""
        now = self._clock.now()
        if self._closing_since is not None or now - self._waiting_checked_ns < WAITING_CHECK_NS:
            return
        self._waiting_checked_ns = now
        free = self._free_bytes()
        with self._lock:
            busy = set(self._finalising)
            card_full = self._card_full
            roomy = [v for v, then in self._cuts_waiting.items() if free >= then + CUT_ROOM_BYTES]
            for visit_id in roomy:
                del self._cuts_waiting[visit_id]
            cuts_waiting = bool(self._cuts_waiting)
        for visit_id in roomy:
            log.info("visit %s: there is room now; making its rough cut", visit_id)
            self._library.recut(visit_id)
        if (
            card_full
            and not cuts_waiting
            and not self._takes.unfinished()
            and not self._assess().must_stop
        ):
            # Everything the full card held up is made: the kit is well again.
            with self._lock:
                self._card_full = False
                clear = self._state == State.ERROR
            if clear:
                self._set(State.IDLE, "")
        for stopped in self._takes.waiting(free, busy):
            log.info("take %s: there is room now; making its film", stopped.take.id)
            with self._lock:
                self._finalising[stopped.take.id] = stopped.take
            self._finisher.submit(stopped, stopped.take.duration_ns)

    def _on_recorder_failed(self, error: Exception) -> None:
        """The recorder's report: a failure stops the take (everything recorded is kept);
        a lost microphone does not (the take goes on, picture only)."""
        take = self._recording_take()
        if take is None:
            return
        if isinstance(error, DeviceReport) and error.take_dir != layout.take_dir(
            take.visit_id, take.id
        ):
            log.info("a report about an earlier take came late: %s", error)
            return
        if isinstance(error, MicrophoneLost | MicrophoneBack):
            self._on_microphone(take, error)
            return
        message = str(error)
        if isinstance(error, StorageFull):
            message = "the card is full: recording stopped, everything up to then is kept"
            with self._lock:
                self._card_full = True
        if isinstance(error, CameraStalled):
            message = f"{CAMERA_STOPPED} ({error})"
            self._events.publish(DeviceChanged(Device.CAMERA, DeviceState.FAILED, message, take.id))
        self._stop("the recorder failed", error=message)
        if isinstance(error, CameraStalled):
            self._restart_camera()

    def _recording_take(self) -> Take | None:
        with self._lock:
            return self._take if self._state == State.RECORDING else None

    def _on_microphone(self, take: Take, report: MicrophoneLost | MicrophoneBack) -> None:
        """Say on the phone that the take records picture only, or sound again."""
        if isinstance(report, MicrophoneBack):
            warning, state, message = "", DeviceState.BACK, MIC_BACK
        else:
            warning = message = MIC_MISSING if report.at_start else MIC_LOST
            state = DeviceState.MISSING if report.at_start else DeviceState.LOST
        log.warning("take %s: %s (%s)", take.id, message, report)
        with self._lock:
            self._mic_warning = warning
        self._events.publish(DeviceChanged(Device.MICROPHONE, state, message, take.id))
        self._publish_status()

    def _restart_camera(self) -> None:
        """After the camera failed: close it and open it again, so the preview (and the
        next take) has it back if it can; else the next start tries again."""
        try:
            self._camera.close()
        except Exception:  # a failed camera may fail to close too: open it afresh anyway
            log.exception("closing the failed camera failed")
        try:
            self._camera.open()
        except KitError as exc:
            log.warning("the camera is not back: %s (a start tries again)", exc)

    def _refuse_without_camera(self, source: str, exc: KitError) -> None:
        """A start without a camera: refused, with what to do (no take is made)."""
        what = (
            "Restart the kit"  # only a new process gets the camera (see CameraBlocked)
            if isinstance(exc, CameraBlocked)
            else "Check the camera's cable, then press Record again"
        )
        message = f"{NO_CAMERA}: {exc}. {what}."
        log.warning("start from the %s refused: %s", source, message)
        self._events.publish(Refused(message))
        self._events.publish(DeviceChanged(Device.CAMERA, DeviceState.MISSING, message))
        self._set(State.ERROR, message)
        self._monitor(on=True)

    def _assess(self) -> StorageState:
        take = self._takes.current
        first = self._recorder.first_frame_ns if take is not None else None
        recorded = self._clock.now() - first if first is not None else 0
        storage = self._guard.assess(self._free_bytes(), recorded)
        with self._lock:
            self._storage = storage
        return storage

    def _monitor(self, *, on: bool) -> None:
        """Keep the microphone open between takes, so the level meter works while framing.
        One that will not start is tried again every :data:`MONITOR_RETRY_NS`, and the
        phone says meanwhile that a take would record picture only."""
        if on == self._monitoring:
            return
        now = self._clock.now()
        failed = self._monitor_failed_ns
        if on and failed is not None and now - failed < MONITOR_RETRY_NS:
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
            if on:
                with self._lock:
                    self._monitor_failed_ns = now
                    self._mic_warning = MIC_ABSENT
            else:
                self._monitoring = False  # a microphone that went away is closed all the same
            return
        if on:
            with self._lock:
                self._monitor_failed_ns = None
                self._mic_warning = ""
        self._monitoring = on

    def _set(self, state: State, error: str) -> None:
        """Set the hardware's state (idle, recording or error) and the error shown."""
        with self._lock:
            changed = (state, error) != (self._state, self._error)
            self._state, self._error = state, error
        if changed:
            log.info("state: %s%s", state, f" ({error})" if error else "")
        self._show()
        self._publish_status()

    def _set_error(self, error: str, *, hard: bool = False) -> None:
        """Show ``error``; ``hard``: the kit is in error, unless a take is recording (a
        take being recorded goes on whatever happened to an earlier one)."""
        with self._lock:
            state = self._state
        if hard and state != State.RECORDING:
            state = State.ERROR
        self._set(state, error)

    def _show(self) -> None:
        if self._lights is None:
            return
        with self._lock:
            state, low = self._state, self._storage.low
            making = bool(self._finalising) or self._cut_visit is not None
        if state == State.RECORDING:
            light = Light.RECORDING_BUSY if making else Light.RECORDING
        elif state == State.ERROR:
            light = Light.ERROR
        elif making:
            light = Light.BUSY
        else:
            light = Light.LOW_STORAGE if low else Light.READY
        self._lights.show(light)

    def _publish_status(self) -> None:
        self._events.publish(self.status())

    # -- Recording ---------------------------------------------------------

    @property
    def events(self) -> EventLog:
        return self._events

    def status(self) -> Status:
        with self._lock:
            state, error, take, storage = self._headline(), self._error, self._take, self._storage
            progress, cutting = self._cut_progress, self._cut_visit
            finalising = tuple(self._finalising)
            warning = self._mic_warning
        recording = state == State.RECORDING
        stall = self._finisher.stalled() if finalising else None
        shown = error or stall or ""
        if warning and warning not in shown:  # the microphone's trouble, beside any error
            shown = f"{shown} · {warning}" if shown else warning
        listening = (recording or self._monitoring) and not warning
        visit = self._library.open_visit()
        return Status(
            state=state,
            visit_id=visit.id if visit else None,
            take_id=take.id if take else None,
            started_ns=self._recorder.first_frame_ns if recording else None,
            now_ns=self._clock.now(),
            minutes_left=storage.minutes_left,
            low_storage=storage.low,
            level_dbfs=self._mic.level_dbfs if listening else -120.0,
            boot_id=self._boot_id,
            error=shown,
            cut_progress=progress,
            cut_visit_id=cutting,
            finalising=finalising,
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
            recording, take, ended = self._state == State.RECORDING, self._take, self._ended
            started = self._start_requested_ns
        # A tap sent (or retried) after a stop, while the take is finalised or the next
        # one records, still belongs to the take it was made in.
        earlier = next((t for t, first, end in reversed(ended) if first <= at <= end), None)
        if recording and take is not None:
            first = self._recorder.first_frame_ns
            begin = started if first is None else first
            if at >= begin or earlier is None:
                # A delay reaching back before the take began lands on its first moment.
                at = max(at, begin)
            else:
                take = earlier
        elif earlier is not None:
            take = earlier
        else:
            raise StateError("tags can only be added while recording")
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
