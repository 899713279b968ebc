"""The daemon's state machine, driven through gpiozero's MockFactory and a fake clock.

No sleeps: the button's mock pin calls back synchronously, the callback posts
an event, and the test runs the worker one event at a time with ``step()``. A
stopped take's film is made in the worker's finaliser thread: the test waits for
its answer on the worker's queue (``step(timeout_s=…)``), and a take the fake
holds is made only when the test releases it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from kit.clock import NS_PER_S, FakeClock
from kit.crypto.keyring import Keyring
from kit.cutting.plan import CutRules
from kit.daemon.api import State
from kit.daemon.events import EventLog
from kit.daemon.messages import CutDone, CutDue, CutProgress, RecorderFailed, Shutdown, Tick
from kit.daemon.panel import Light, Panel
from kit.daemon.storage import RecordingRates, StorageGuard
from kit.daemon.wallclock import WallClock
from kit.daemon.worker import Worker
from kit.errors import HardwareError, NotFound, StateError, StorageFull
from kit.hardware.camera import VideoFormat
from kit.hardware.microphone import AudioFormat
from kit.model import DEFAULT_LABELS, Take, TakeState, Visit
from kit.recording.recorder import RecordingStats
from kit.recording.takes import Finished, Stopped
from kit.store import layout
from kit.store.database import Database
from kit.store.files import FileLayer
from kit.testing.privacy import consent, org_key
from kit.visits.library import Library

BUTTON, LED = 17, 27
NO_VISIT = "no visit is open: start one on the phone, with the family's consent"
MB = 1_000_000
RATES = RecordingRates(raw_bytes_per_s=MB, mp4_bytes_per_s=MB)  # 1 MB/s each, 2 MB/s peak
PLENTY = 10_000 * MB  # ~83 minutes


STATS = RecordingStats(
    video_frames=0,
    video_bytes=0,
    audio_frames=0,
    first_frame_ns=None,
    last_frame_ns=None,
    dropped_frames=0,
    mic_overflows=0,
    writer_cpu_ns=0,
    syncs=0,
    error="",
)


@dataclass
class FakeTakes:
    """Stands in for TakeService: records calls, fails on request. With ``hold``, the
    finaliser's thread waits in :meth:`finish` until the test releases that take."""

    db: Database
    fail_start: Exception | None = None
    fail_stop: Exception | None = None
    finalise_to: TakeState = TakeState.READY
    hold: bool = False
    started: list[str] = field(default_factory=list)
    trimmed: list[str] = field(default_factory=list)
    current: Take | None = None
    n: int = 0
    # Per take: its film has begun (set by the finaliser's thread), may finish (the test).
    begun: dict[str, threading.Event] = field(default_factory=dict)
    released: dict[str, threading.Event] = field(default_factory=dict)
    running: int = 0  # finishes under way at once
    most_at_once: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, visit_id: str) -> Take:
        if self.fail_start is not None:
            raise self.fail_start
        self.n += 1
        self.current = self.db.add_take(visit_id, f"take{self.n}", "boot")
        self.started.append(self.current.id)
        return self.current

    def _event(self, events: dict[str, threading.Event], take_id: str) -> threading.Event:
        with self._lock:
            return events.setdefault(take_id, threading.Event())

    def stop_recording(self) -> Stopped:
        take, self.current = self.current, None
        assert take is not None
        if self.fail_stop is not None:
            raise self.fail_stop
        return Stopped(self.db.update_take(take.id, state=TakeState.FINALISING), STATS)

    def finish(self, stopped: Stopped) -> Finished:
        """As the finaliser: reads the row first (a discard already there is honoured)."""
        take_id = stopped.take.id
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            take = self.db.take(take_id)
            self._event(self.begun, take_id).set()
            if self.hold:
                assert self._event(self.released, take_id).wait(30), f"{take_id} never released"
            if take.keep_until_ns == 0:
                return Finished(self.db.update_take(take_id, state=TakeState.DISCARDED), None)
            error = "mux failed" if self.finalise_to == TakeState.FAILED else ""
            done = self.db.update_take(take_id, state=self.finalise_to, error=error)
            return Finished(done, None)
        finally:
            with self._lock:
                self.running -= 1

    def release(self, *take_ids: str) -> None:
        for take_id in take_ids or tuple(self.begun):
            self._event(self.released, take_id).set()

    def held(self, take_id: str) -> bool:
        return self.hold and not self._event(self.released, take_id).is_set()

    def waiting(self, free_bytes: int, busy: Collection[str] = ()) -> list[Stopped]:
        """No take waits for room here (tests/torture/test_full_card.py covers it)."""
        return []

    def unfinished(self) -> list[str]:
        return []

    def trim(self, take_id: str) -> Take:
        """A discard: the take is cut short where the library says (all of it: discarded)."""
        self.trimmed.append(take_id)
        take = self.db.take(take_id)
        until, first = take.keep_until_ns, take.first_frame_ns or 0
        if until is None:
            return take
        if until <= first:
            return self.db.update_take(take_id, state=TakeState.DISCARDED)
        return self.db.update_take(take_id, end_ns=min(until, take.end_ns or until))


@dataclass
class FakeRecorder:
    first_frame_ns: int | None = None


class FakeCamera:
    format = VideoFormat(320, 240, 30)
    dropped_frames = 0

    def open(self) -> None: ...
    def close(self) -> None: ...
    def start_recording(self, sink: object) -> None: ...
    def stop_recording(self) -> None: ...

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        return (7, b"\xff\xd8jpeg")


class FakeMic:
    format = AudioFormat(48_000, 1)
    overflows = 0
    level_dbfs = -23.0

    def start(self, sink: object) -> None: ...
    def stop(self) -> None: ...


@dataclass
class FakeCutter:
    calls: list[tuple[str, Callable[[float], None], Callable[[str], None]]] = field(
        default_factory=list
    )

    def start(
        self, visit_id: str, on_progress: Callable[[float], None], on_done: Callable[[str], None]
    ) -> None:
        self.calls.append((visit_id, on_progress, on_done))


@dataclass
class Kit:
    daemon: Worker
    library: Library
    clock: FakeClock
    takes: FakeTakes
    recorder: FakeRecorder
    factory: MockFactory
    panel: Panel
    free: list[int]
    cutter: FakeCutter | None

    def open_visit(self, case_ref: str = "C-1") -> Visit:
        """Start a visit with the family's consent (as the phone does), to record into."""
        return self.library.start_visit(case_ref, consent())

    def press(self) -> None:
        pin = self.factory.pin(BUTTON)
        pin.drive_low()
        pin.drive_high()

    def run(self) -> None:
        """Handle everything queued, and the finaliser's answer for every take it is making
        that the fake does not hold (waiting on the worker's queue for it, not sleeping)."""
        while True:
            while self.daemon.step():
                pass
            if not [t for t in self.daemon.finalising if not self.takes.held(t)]:
                return
            assert self.daemon.step(timeout_s=10), "the finaliser never answered"

    def light(self) -> Light | None:
        return self.panel.light

    def state(self) -> State:
        # A method, not a property: the state changes between two reads.
        return self.daemon.state

    def finished(self) -> bool:
        return self.daemon.finished


def _kit(
    tmp_path: Path, *, cutter: bool = False, free: int = PLENTY, visit: bool = True
) -> Iterator[Kit]:
    """The worker with fakes around it; ``visit``: a consented visit is open to record into."""
    clock = FakeClock()
    keyring = Keyring()
    db = Database(tmp_path / "kit.db", keyring.get)
    takes = FakeTakes(db)
    recorder = FakeRecorder()
    factory = MockFactory(pin_class=MockPWMPin)
    free_box = [free]
    holder: list[Worker] = []
    panel = Panel(BUTTON, LED, lambda: holder[0].press(), bounce_s=None, pin_factory=factory)  # noqa: PLW0108 - the daemon is built after the panel
    fake_cutter = FakeCutter() if cutter else None
    events = EventLog(capacity=5000)
    library = Library(
        db,
        FileLayer(tmp_path, keyring.get),
        events,
        clock,
        wall=WallClock(clock, system_time_ns=lambda: 0),
        boot_id="boot",
        cut_rules=CutRules(),
        on_cut_due=lambda: holder[0].post(CutDue()) if holder else None,
        keyring=keyring,
        recipients=(org_key().public,),
    )
    daemon = Worker(
        clock=clock,
        library=library,
        events=events,
        takes=takes,
        recorder=recorder,
        camera=FakeCamera(),
        microphone=FakeMic(),
        guard=StorageGuard(RATES, min_start_minutes=10, stop_at_minutes=1),
        free_bytes=lambda: free_box[0],
        ignore_stop_within_ns=NS_PER_S,
        cutter=fake_cutter,
        lights=panel,
        boot_id="boot",
    )
    holder.append(daemon)
    made = Kit(daemon, library, clock, takes, recorder, factory, panel, free_box, fake_cutter)
    if visit:
        made.open_visit()
    yield made
    takes.hold = False
    takes.release()
    daemon.close()
    panel.close()
    db.close()


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    yield from _kit(tmp_path)


@pytest.fixture
def cutting_kit(tmp_path: Path) -> Iterator[Kit]:
    yield from _kit(tmp_path, cutter=True)


@pytest.fixture
def bare_kit(tmp_path: Path) -> Iterator[Kit]:
    """No visit open yet."""
    yield from _kit(tmp_path, visit=False)


def _kinds(kit: Kit) -> list[str]:
    return [e.kind for e in kit.daemon.events.since(0)]


def test_press_starts_next_press_stops_and_the_led_follows(kit: Kit) -> None:
    assert kit.state() == State.IDLE and kit.light() == Light.READY
    kit.press()
    kit.run()
    assert kit.state() == State.RECORDING and kit.light() == Light.RECORDING
    kit.recorder.first_frame_ns = kit.clock.now()
    kit.clock.advance(3 * NS_PER_S)
    assert kit.daemon.status().as_json()["elapsed_s"] == 3.0
    kit.press()
    kit.run()
    assert kit.state() == State.IDLE and kit.light() == Light.READY
    assert kit.takes.started == ["take1"]
    states = [e.data["state"] for e in kit.daemon.events.since(0) if e.kind == "status"]
    assert states[-3:] == ["recording", "finalising", "idle"]


def test_a_double_press_cannot_end_a_take(kit: Kit) -> None:
    kit.press()
    kit.run()
    kit.clock.advance(NS_PER_S // 2)
    kit.press()  # 0.5 s after the start: a bounce or a double press
    kit.run()
    assert kit.state() == State.RECORDING
    kit.clock.advance(NS_PER_S)
    kit.press()
    kit.run()
    assert kit.state() == State.IDLE


def test_the_phone_can_stop_at_once(kit: Kit) -> None:
    kit.daemon.start("phone")
    kit.run()
    assert kit.state() == State.RECORDING
    kit.daemon.stop("phone")
    kit.run()
    assert kit.state() == State.IDLE
    kit.daemon.stop("phone")  # stopping when idle is harmless
    kit.daemon.start("phone")
    kit.daemon.start("phone")  # a second start while recording is ignored
    kit.run()
    assert kit.takes.started == ["take1", "take2"] and kit.state() == State.RECORDING


def test_after_a_take_the_cut_runs_and_reports_progress(cutting_kit: Kit) -> None:
    kit = cutting_kit
    assert kit.cutter is not None
    kit.press()
    kit.run()
    kit.clock.advance(2 * NS_PER_S)
    kit.press()
    kit.run()
    assert kit.state() == State.CUTTING and kit.light() == Light.BUSY
    _visit_id, on_progress, on_done = kit.cutter.calls[0]
    on_progress(0.5)
    kit.run()
    assert kit.daemon.status().cut_progress == 0.5
    # A press while cutting starts the next take; the cut goes on in the background.
    kit.press()
    kit.run()
    assert kit.state() == State.RECORDING
    on_done("")
    kit.run()
    assert kit.state() == State.RECORDING and kit.daemon.status().cut_progress is None
    assert "cut" in _kinds(kit)


def test_the_status_goes_from_finalising_to_cutting_without_idle_between(
    cutting_kit: Kit,
) -> None:
    """The take leaves "finalising" in the step that starts its visit's cut: a phone (or a
    test waiting for idle) never sees the kit idle, with the LED ready, between the two."""
    kit = cutting_kit
    kit.press()
    kit.run()
    kit.clock.advance(2 * NS_PER_S)
    since = kit.daemon.events.last_id
    kit.press()
    kit.run()
    assert kit.state() == State.CUTTING and kit.light() == Light.BUSY
    states = [e.data["state"] for e in kit.daemon.events.since(since) if e.kind == "status"]
    assert states[0] == "finalising" and states[-1] == "cutting"
    assert "idle" not in states, states


def test_a_failed_cut_is_reported_and_the_kit_stays_usable(cutting_kit: Kit) -> None:
    kit = cutting_kit
    assert kit.cutter is not None
    kit.daemon.start()
    kit.run()
    kit.daemon.stop()
    kit.run()
    kit.daemon.post(CutDone(kit.cutter.calls[0][0], "out of memory"))
    kit.run()
    assert kit.state() == State.IDLE
    assert "rough cut failed: out of memory" in kit.daemon.status().error


def test_no_take_starts_below_the_storage_floor(kit: Kit) -> None:
    kit.free[0] = 5 * 60 * 2 * MB  # 5 minutes at 2 MB/s peak
    kit.daemon.post(Tick())
    kit.run()
    assert kit.light() == Light.LOW_STORAGE
    kit.press()
    kit.run()
    assert kit.state() == State.IDLE and kit.takes.started == []
    assert "not enough space" in kit.daemon.status().error
    assert "refused" in _kinds(kit)
    assert kit.daemon.status().minutes_left == pytest.approx(5.0)


def test_a_take_stops_cleanly_when_the_card_fills(kit: Kit) -> None:
    kit.press()
    kit.run()
    kit.recorder.first_frame_ns = kit.clock.now()
    kit.clock.advance(10 * NS_PER_S)
    kit.free[0] = 60 * 2 * MB  # one minute left (and the take's MP4 still to write)
    kit.daemon.post(Tick())
    kit.run()
    assert kit.state() == State.ERROR and kit.light() == Light.ERROR
    assert "nearly full" in kit.daemon.status().error
    assert kit.takes.db.take("take1").state == TakeState.READY


def test_a_write_failure_stops_the_take_and_keeps_it(kit: Kit) -> None:
    kit.press()
    kit.run()
    kit.daemon.post(RecorderFailed(StorageFull("ENOSPC")))
    kit.run()
    assert kit.state() == State.ERROR
    assert "card is full" in kit.daemon.status().error
    assert kit.takes.db.take("take1").state == TakeState.READY
    kit.daemon.post(RecorderFailed(StorageFull("late report")))  # nothing recording: ignored
    kit.run()
    assert kit.state() == State.ERROR


def test_a_camera_failure_is_an_error_and_a_press_retries(kit: Kit) -> None:
    kit.takes.fail_start = HardwareError("no camera")
    kit.press()
    kit.run()
    assert kit.state() == State.ERROR and "no camera" in kit.daemon.status().error
    assert kit.light() == Light.ERROR
    kit.takes.fail_start = None
    kit.press()
    kit.run()
    assert kit.state() == State.RECORDING and kit.daemon.status().error == ""


def test_stop_and_finalise_failures_are_errors(kit: Kit) -> None:
    kit.takes.finalise_to = TakeState.FAILED
    kit.daemon.start()
    kit.daemon.stop()
    kit.run()
    assert kit.state() == State.ERROR and "mux failed" in kit.daemon.status().error
    kit.takes.finalise_to = TakeState.READY
    kit.takes.fail_stop = HardwareError("camera hung")
    kit.daemon.start()
    kit.daemon.stop()
    kit.run()
    assert kit.state() == State.ERROR and "camera hung" in kit.daemon.status().error


def test_shutdown_finalises_the_take_first(kit: Kit) -> None:
    kit.press()
    kit.run()
    kit.daemon.post(Shutdown())
    kit.run()
    assert kit.daemon.finished
    assert kit.takes.db.take("take1").state == TakeState.READY


def test_progress_and_unknown_events_never_kill_the_worker(kit: Kit) -> None:
    kit.daemon.post(CutProgress("s", 0.25))
    kit.daemon.post(object())
    kit.run()
    assert kit.state() == State.IDLE and kit.daemon.status().cut_progress == 0.25


def test_an_exception_inside_a_transition_is_an_error_state(kit: Kit) -> None:
    kit.takes.fail_start = ZeroDivisionError("bug")  # not a KitError: a bug
    kit.press()
    kit.run()
    assert kit.state() == State.ERROR and "internal error" in kit.daemon.status().error


def test_tags_are_stamped_at_the_tap_and_stored_once(kit: Kit) -> None:
    with pytest.raises(StateError):
        kit.daemon.add_tag("t1", "Guiding", "", "phone", 0)
    kit.press()
    kit.run()
    kit.recorder.first_frame_ns = kit.clock.now()
    kit.clock.advance(NS_PER_S)
    now = kit.clock.now()
    tag, new = kit.daemon.add_tag("t1", "Guiding", "lovely turn-taking", "phone-1", 150_000_000)
    assert new and tag.at_ns == now - 150_000_000 and tag.take_id == "take1"
    kit.clock.advance(NS_PER_S)
    again, new = kit.daemon.add_tag("t1", "Guiding", "lovely turn-taking", "phone-1", 0)
    assert not new and again.at_ns == tag.at_ns
    with pytest.raises(ValueError, match="label"):
        kit.daemon.add_tag("t2", "", "", "phone", 0)
    with pytest.raises(ValueError, match="note"):
        kit.daemon.add_tag("t3", "Guiding", "x" * 501, "phone", 0)
    kit.library.update_tag("t1", label="Receiving initiatives")
    kit.library.delete_tag("t1")
    assert kit.library.tags(tag.visit_id) == []
    kit.library.restore_tag("t1")
    assert [t.label for t in kit.library.tags(tag.visit_id)] == ["Receiving initiatives"]
    actions = [e.data["action"] for e in kit.daemon.events.since(0) if e.kind == "tag"]
    assert actions == ["added", "updated", "deleted", "restored"]


def test_labels_default_to_the_vig_principles_and_can_be_edited(kit: Kit) -> None:
    assert kit.library.labels() == list(DEFAULT_LABELS)
    kit.library.set_labels(["Attentive", " Guiding "])
    assert kit.library.labels() == ["Attentive", "Guiding"]
    for bad in ([], ["a", "a"], [""], ["x" * 61], [str(i) for i in range(13)]):
        with pytest.raises(ValueError):
            kit.library.set_labels(bad)


def test_status_carries_preview_and_level(kit: Kit) -> None:
    assert kit.daemon.preview_jpeg() == (7, b"\xff\xd8jpeg")
    assert kit.daemon.status().level_dbfs == -120.0  # nothing listening yet
    kit.daemon.begin()  # the mic opens for the meter while framing the shot
    assert kit.daemon.status().level_dbfs == -23.0
    kit.daemon.start()
    kit.run()
    assert kit.daemon.status().level_dbfs == -23.0
    status = kit.daemon.status().as_json()
    assert status["now_ns"] == kit.clock.now() and status["started_ns"] is None


def test_a_tap_retried_just_after_stop_still_lands_in_its_take(kit: Kit) -> None:
    kit.press()
    kit.run()
    kit.recorder.first_frame_ns = kit.clock.now()
    kit.clock.advance(5 * NS_PER_S)
    kit.daemon.stop()
    kit.run()
    kit.clock.advance(NS_PER_S // 2)
    # Tapped 0.8 s ago (before the stop), acknowledged only now: kept.
    tag, new = kit.daemon.add_tag("late", "Guiding", "", "phone", 800_000_000)
    assert new and tag.take_id == "take1"
    # Tapped after the stop: refused.
    with pytest.raises(StateError):
        kit.daemon.add_tag("after", "Guiding", "", "phone", 100_000_000)


def test_visits_are_labelled_with_the_phones_time(tmp_path: Path) -> None:
    from datetime import datetime

    from kit.daemon.wallclock import WallClock

    clock = FakeClock()
    wall = WallClock(clock, system_time_ns=lambda: 0)  # a Pi that booted in 1970
    assert wall.label(clock.now()) == ""
    wall.set_from_phone(datetime.fromisoformat("2026-11-25T14:03:00+00:00").timestamp())
    clock.advance(60 * NS_PER_S)
    assert wall.label(clock.now()) == "2026-11-25T14:04:00Z"


def test_cut_files_and_moves_are_checked(kit: Kit, tmp_path: Path) -> None:
    kit.daemon.start()
    kit.run()
    kit.recorder.first_frame_ns = first = kit.clock.now()
    tag, _ = kit.daemon.add_tag("t1", "Guiding", "", "phone", 0)
    kit.clock.advance(5 * NS_PER_S)
    kit.daemon.stop()
    kit.run()
    kit.takes.db.update_take("take1", first_frame_ns=first, end_ns=first + 5 * NS_PER_S)
    with pytest.raises(ValueError, match="outside its take"):
        kit.library.update_tag("t1", at_ns=first + 6 * NS_PER_S)
    assert kit.library.update_tag("t1", at_ns=first + NS_PER_S).at_ns == first + NS_PER_S
    for bad in ("../../kit.db", "/etc/passwd", "nothing.mp4", ".cut.json.partial"):
        with pytest.raises(NotFound):
            kit.library.cut_file(tag.visit_id, bad)
    files = kit.library.files
    files.makedirs(layout.cut_dir(tag.visit_id))
    with files.replace(layout.in_cut(tag.visit_id, layout.FILM)) as f:
        f.write(b"film")
    assert files.path(layout.in_cut(tag.visit_id, layout.FILM)).read_bytes() != b"film"
    media = kit.library.cut_file(tag.visit_id, "rough-cut.mp4")
    with media.file:
        assert media.file.read() == b"film" and media.size == 4  # decrypted as it is read


def test_the_status_names_the_visit_being_cut(cutting_kit: Kit) -> None:
    kit = cutting_kit
    kit.daemon.start()
    kit.run()
    kit.daemon.stop()
    kit.run()
    visit_id = kit.daemon.status().visit_id
    assert kit.daemon.status().as_json()["cut_visit_id"] == visit_id
    kit.daemon.post(CutDone(visit_id or "", ""))
    kit.run()
    assert kit.daemon.status().as_json()["cut_visit_id"] is None


def _refusals(kit: Kit) -> list[str]:
    return [str(e.data["reason"]) for e in kit.daemon.events.since(0) if e.kind == "refused"]


def test_the_button_records_only_into_an_open_visit_with_consent(bare_kit: Kit) -> None:
    kit = bare_kit
    assert kit.library.open_visit() is None
    kit.press()  # no visit: the button opens none (the family has not consented)
    kit.run()
    assert kit.state() == State.IDLE and kit.takes.started == []
    assert kit.library.open_visit() is None and kit.library.visits() == []
    assert kit.daemon.status().error == NO_VISIT and _refusals(kit) == [NO_VISIT]
    first = kit.open_visit("C-1041")
    kit.press()
    kit.run()
    assert kit.state() == State.RECORDING and kit.daemon.status().error == ""
    assert kit.daemon.status().visit_id == first.id
    kit.clock.advance(2 * NS_PER_S)
    kit.press()
    kit.run()
    kit.library.end_visit(first.id)
    kit.press()  # the visit has ended: refused again, not recorded into a new one
    kit.run()
    assert kit.state() == State.IDLE and kit.takes.started == ["take1"]
    assert kit.library.open_visit() is None and kit.daemon.status().error == NO_VISIT
    assert kit.takes.db.take("take1").visit_id == first.id
    assert [v.id for v in kit.library.visits()] == [first.id]


def test_a_visit_without_consent_is_not_recorded_into(bare_kit: Kit) -> None:
    kit = bare_kit
    # A visit stored below the library, with no consent record (as before the consent form).
    kit.library.db.add_visit(
        Visit(id="oldvisit0001", case_ref="C-9", started_ns=0, boot_id="b", started_wall="")
    )
    kit.daemon.start("phone")
    kit.run()
    assert kit.state() == State.IDLE and kit.takes.started == []
    assert "no consent record" in kit.daemon.status().error
    assert len(_refusals(kit)) == 1


def test_a_cut_left_undone_is_made_when_the_kit_starts(cutting_kit: Kit) -> None:
    kit = cutting_kit
    assert kit.cutter is not None
    visit = kit.library.open_visit()
    assert visit is not None
    kit.takes.db.add_take(visit.id, "old", "boot")
    kit.takes.db.update_take("old", state=TakeState.READY, first_frame_ns=0, end_ns=NS_PER_S)
    kit.daemon.begin()  # as after a restart: a ready take, no film
    kit.run()
    assert kit.state() == State.CUTTING
    assert [c[0] for c in kit.cutter.calls] == [visit.id]


def test_a_change_during_a_cut_makes_it_again_and_a_failure_is_not_retried(
    cutting_kit: Kit,
) -> None:
    kit = cutting_kit
    assert kit.cutter is not None
    kit.press()
    kit.run()
    kit.recorder.first_frame_ns = kit.clock.now()
    kit.daemon.add_tag("t1", "Guiding", "", "phone", 0)
    kit.clock.advance(2 * NS_PER_S)
    kit.press()
    kit.run()
    assert len(kit.cutter.calls) == 1  # the cut after the take
    kit.library.update_tag("t1", label="Receiving initiatives")  # while it is being made
    kit.run()
    assert len(kit.cutter.calls) == 1  # one cut at a time
    kit.cutter.calls[0][2]("")  # done (the fake cutter writes no manifest)
    kit.run()
    assert len(kit.cutter.calls) == 2  # made again: the edit came after the first began
    kit.cutter.calls[1][2]("out of memory")
    kit.run()
    assert len(kit.cutter.calls) == 2 and kit.state() == State.IDLE  # not retried as it is
    kit.library.update_tag("t1", note="looked up")
    kit.run()
    assert len(kit.cutter.calls) == 3  # a change: tried again


def test_a_hundred_recut_requests_make_one_more_cut(cutting_kit: Kit) -> None:
    kit = cutting_kit
    assert kit.cutter is not None
    kit.daemon.start()
    kit.run()
    kit.daemon.stop()
    kit.run()
    visit = kit.library.open_visit()
    assert visit is not None and len(kit.cutter.calls) == 1
    for _ in range(100):
        kit.library.recut(visit.id)
    kit.run()
    assert len(kit.cutter.calls) == 1 and kit.state() == State.CUTTING  # the status says so
    kit.cutter.calls[0][2]("")
    kit.run()
    assert len(kit.cutter.calls) == 2  # the hundred asked for one more, not a hundred
    kit.cutter.calls[1][2]("")
    kit.run()
    assert len(kit.cutter.calls) == 2 and kit.state() == State.IDLE


def test_a_discard_stops_the_take_and_destroys_its_last_minute_or_all_of_it(kit: Kit) -> None:
    kit.press()
    kit.run()
    kit.recorder.first_frame_ns = first = kit.clock.now()
    kit.clock.advance(90 * NS_PER_S)
    kit.daemon.discard("button")  # the last 60 s (privacy.discard_s) of the take recording
    kit.run()
    assert kit.state() == State.IDLE
    take = kit.takes.db.take("take1")
    assert take.keep_until_ns == first + 30 * NS_PER_S
    kit.daemon.discard("phone", whole=True)  # then all of it: the take that ended last
    kit.run()
    assert kit.takes.db.take("take1").state == TakeState.DISCARDED
    kit.daemon.discard("phone")  # nothing left to discard
    kit.run()
    assert _refusals(kit)[-1] == "there is no take to discard"


# -- record again at once: the film is made in the background -------------------------


def _record_take(kit: Kit, seconds: int) -> str:
    """Press, record ``seconds`` (the first frame at once), press again; the take's id."""
    kit.press()
    kit.run()
    assert kit.state() == State.RECORDING
    kit.recorder.first_frame_ns = kit.clock.now()
    take = kit.daemon.status().take_id
    assert take is not None
    kit.clock.advance(seconds * NS_PER_S)
    kit.press()
    kit.run()
    return take


def _take_events(kit: Kit) -> list[tuple[str, str]]:
    return [
        (e.data["take_id"], e.data["state"]) for e in kit.daemon.events.since(0) if e.kind == "take"
    ]


def test_a_new_take_starts_while_the_last_ones_film_is_being_made(kit: Kit) -> None:
    kit.takes.hold = True  # the film takes as long as the test says
    first = _record_take(kit, 5)
    stopped_at = kit.clock.now()
    # Stopped at once: the hardware is free, the film is being made.
    status = kit.daemon.status()
    assert status.state == State.FINALISING and status.finalising == (first,)
    assert status.as_json()["finalising_take_ids"] == [first]
    assert kit.light() == Light.BUSY
    assert kit.takes.db.take(first).state == TakeState.FINALISING
    assert kit.takes.begun[first].wait(5)  # in the finaliser's thread, held there

    kit.clock.advance(NS_PER_S)
    kit.press()  # no longer ignored while finalising: the next take starts
    kit.run()
    second = kit.daemon.status().take_id
    assert second is not None
    kit.recorder.first_frame_ns = kit.clock.now()
    status = kit.daemon.status()
    assert kit.takes.started == [first, second] and second != first
    assert status.state == State.RECORDING and status.finalising == (first,)
    assert status.started_ns == kit.recorder.first_frame_ns
    assert kit.light() == Light.RECORDING_BUSY  # both show
    kit.clock.advance(2 * NS_PER_S)

    # A tap made 0.5 s before the first take stopped, sent only now: the first take's.
    late, _ = kit.daemon.add_tag(
        "late", "Guiding", "", "phone", kit.clock.now() - stopped_at + NS_PER_S // 2
    )
    assert (late.take_id, late.at_ns) == (first, stopped_at - NS_PER_S // 2)
    # Tapped between the takes: the second take's first moment, as before.
    gap, _ = kit.daemon.add_tag(
        "gap", "Guiding", "", "phone", kit.clock.now() - stopped_at - NS_PER_S // 2
    )
    assert (gap.take_id, gap.at_ns) == (second, kit.recorder.first_frame_ns)
    now, _ = kit.daemon.add_tag("now", "Guiding", "", "phone", 0)
    assert (now.take_id, now.at_ns) == (second, kit.clock.now())

    kit.takes.release(first)
    kit.run()
    assert kit.takes.db.take(first).state == TakeState.READY
    status = kit.daemon.status()
    assert status.state == State.RECORDING and status.finalising == () and status.take_id == second
    assert kit.light() == Light.RECORDING
    assert _take_events(kit) == [(first, "ready")]

    kit.clock.advance(2 * NS_PER_S)
    kit.press()
    kit.run()
    assert kit.daemon.status().finalising == (second,) and kit.light() == Light.BUSY
    kit.takes.release(second)
    kit.run()
    assert [kit.takes.db.take(t).state for t in (first, second)] == [TakeState.READY] * 2
    assert kit.state() == State.IDLE and kit.light() == Light.READY
    assert kit.daemon.status().error == "" and kit.takes.most_at_once == 1
    assert _take_events(kit) == [(first, "ready"), (second, "ready")]
    states = [e.data["state"] for e in kit.daemon.events.since(0) if e.kind == "status"]
    assert "finalising" in states[states.index("recording") :]


def test_films_are_made_one_at_a_time_in_the_order_the_takes_stopped(kit: Kit) -> None:
    kit.takes.hold = True
    first = _record_take(kit, 2)
    kit.clock.advance(NS_PER_S)
    second = _record_take(kit, 2)
    assert kit.daemon.status().finalising == (first, second)
    assert kit.takes.begun[first].wait(5)
    assert second not in kit.takes.begun  # waits behind the first, never beside it
    kit.takes.release(first)
    kit.run()
    assert kit.takes.db.take(first).state == TakeState.READY
    assert kit.takes._event(kit.takes.begun, second).wait(5)
    assert kit.daemon.status().finalising == (second,)
    kit.takes.release(second)
    kit.run()
    assert kit.takes.most_at_once == 1 and kit.daemon.status().finalising == ()


def test_no_cut_and_no_seal_while_a_film_is_being_made(cutting_kit: Kit) -> None:
    kit = cutting_kit
    assert kit.cutter is not None
    kit.takes.hold = True
    first = _record_take(kit, 2)
    visit = kit.library.open_visit()
    assert visit is not None
    kit.library.end_visit(visit.id)  # ended while its last take's film is being made
    kit.run()
    assert kit.cutter.calls == [] and kit.library.visit(visit.id).readable  # not sealed
    kit.takes.release(first)
    kit.run()
    assert [c[0] for c in kit.cutter.calls] == [visit.id]  # then its cut (then its seal)
    assert kit.state() == State.CUTTING


def test_a_failed_film_is_an_error_but_the_take_recording_goes_on(kit: Kit) -> None:
    kit.takes.hold = True
    kit.takes.finalise_to = TakeState.FAILED
    first = _record_take(kit, 2)
    kit.press()
    kit.run()
    kit.takes.release(first)
    kit.run()
    status = kit.daemon.status()
    assert status.state == State.RECORDING and "mux failed" in status.error
    assert kit.takes.db.take(first).state == TakeState.FAILED


def test_shutdown_waits_for_the_films_being_made(kit: Kit) -> None:
    kit.takes.hold = True
    kit.press()
    kit.run()
    kit.recorder.first_frame_ns = kit.clock.now()
    kit.clock.advance(3 * NS_PER_S)
    kit.daemon.post(Shutdown())  # mid-take: stopped at once, its film waited for
    kit.run()
    assert not kit.finished() and kit.daemon.status().finalising == ("take1",)
    kit.press()  # no new take while shutting down
    kit.run()
    assert kit.takes.started == ["take1"]
    kit.takes.release("take1")
    kit.run()
    assert kit.finished() and kit.takes.db.take("take1").state == TakeState.READY


def test_shutdown_leaves_a_film_that_takes_too_long_to_recovery(kit: Kit) -> None:
    from kit.daemon.worker import SHUTDOWN_WAIT_NS

    kit.takes.hold = True
    kit.press()
    kit.run()
    kit.recorder.first_frame_ns = kit.clock.now()
    kit.clock.advance(3 * NS_PER_S)
    kit.daemon.post(Shutdown())
    kit.run()
    kit.clock.advance(SHUTDOWN_WAIT_NS - NS_PER_S)
    kit.daemon.post(Tick())
    kit.run()
    assert not kit.finished()
    kit.clock.advance(NS_PER_S)
    kit.daemon.post(Tick())
    kit.run()
    assert kit.finished()
    # The row still says finalising: the next start's recovery makes the film.
    assert kit.takes.db.take("take1").state == TakeState.FINALISING


def test_a_discard_after_stop_reaches_the_film_being_made(kit: Kit) -> None:
    kit.takes.hold = True
    first = _record_take(kit, 2)
    assert kit.takes.begun[first].wait(5)
    kit.clock.advance(NS_PER_S)
    second = _record_take(kit, 2)  # its film waits behind the first's
    kit.daemon.discard("phone", whole=True)  # the take that ended last: the second
    kit.run()
    kit.takes.release(first, second)
    kit.run()
    assert kit.takes.db.take(first).state == TakeState.READY
    # The second's film had not begun: the finaliser read the discard itself.
    assert kit.takes.db.take(second).state == TakeState.DISCARDED
    assert kit.takes.trimmed == []
    kit.clock.advance(NS_PER_S)
    third = _record_take(kit, 2)
    assert kit.takes.begun[third].wait(5)
    kit.daemon.discard("button", whole=True)  # its film has begun: cut short once made
    kit.run()
    assert kit.takes.db.take(third).state == TakeState.FINALISING
    kit.takes.release(third)
    kit.run()
    assert kit.takes.trimmed == [third]
    assert kit.takes.db.take(third).state == TakeState.DISCARDED
    assert _take_events(kit)[-1] == (third, "discarded")


def test_a_stuck_film_shows_and_stops_the_watchdog_once_no_take_records(kit: Kit) -> None:
    from kit.daemon.notify import Notifier
    from kit.daemon.run import Watchdog
    from kit.daemon.worker import FINALISE_STALL_NS

    watchdog = Watchdog(Notifier(None), kit.daemon, kit.clock, interval_ns=30 * NS_PER_S)

    def tick(seconds: float) -> bool:
        """Let time pass (the worker ticks meanwhile); whether the watchdog pings."""
        kit.clock.advance(round(seconds * NS_PER_S))
        kit.daemon.post(Tick())
        kit.run()
        return watchdog.check()

    kit.takes.hold = True  # a mux that hangs
    first = _record_take(kit, 60)
    allowance = FINALISE_STALL_NS + 15 * NS_PER_S  # the base, plus a quarter of the take
    assert tick(allowance / NS_PER_S - 1)  # slow, but not stuck yet
    assert kit.daemon.status().error == ""
    assert not tick(2)  # stuck: no more pings, so systemd restarts the kit
    status = kit.daemon.status()
    assert status.state == State.FINALISING and f"film of take {first}" in status.error
    assert "no progress for 5 min" in status.error
    assert kit.daemon.finalise_stalled() is not None
    # A take recording is not cut short for it: the pings go on until it stops.
    kit.press()
    kit.run()
    assert kit.state() == State.RECORDING and tick(1)
    kit.press()
    kit.run()
    assert not tick(1)
    kit.takes.release()  # it came unstuck after all: healthy again
    kit.run()
    assert tick(1) and kit.daemon.status().error == ""
    assert kit.daemon.finalise_stalled() is None


def test_a_hung_worker_stops_the_watchdog(kit: Kit) -> None:
    from kit.daemon.notify import Notifier
    from kit.daemon.run import Watchdog

    watchdog = Watchdog(Notifier(None), kit.daemon, kit.clock, interval_ns=30 * NS_PER_S)
    kit.daemon.post(Tick())
    kit.run()
    assert watchdog.check()
    kit.clock.advance(31 * NS_PER_S)  # no event handled meanwhile
    assert not watchdog.check()


def test_systemd_status_line_says_both(kit: Kit) -> None:
    from kit.daemon.run import status_line

    kit.takes.hold = True
    first = _record_take(kit, 2)
    assert status_line(kit.daemon.status().as_json()).startswith("finalising, ")
    kit.press()
    kit.run()
    line = status_line(kit.daemon.status().as_json())
    assert line.startswith("recording, ") and line.endswith(", 1 take being finalised")
    kit.takes.release(first)
    kit.run()
    assert "finalised" not in status_line(kit.daemon.status().as_json())
