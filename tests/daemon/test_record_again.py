"""Record again at once, through the real kit: the second take records while the first
one's film is still being made, and both come out whole and in sync.

The real kit (kit.compose: the worker in its own thread, its finaliser thread, the take
recorder and the finaliser, the simulated camera and microphone) in real time, as
``kit run`` runs it. The first take's film is held in the finaliser's thread
(``before_finish``) until the second take records, then made while it records. The
test waits for what it asked for by looking (a real-time test: nothing to step).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kit.clock import NS_PER_S, MonotonicClock
from kit.compose import Cutting, Kit, compose
from kit.daemon.api import State
from kit.daemon.messages import Shutdown
from kit.daemon.panel import Light
from kit.hardware.factory import simulated_hardware
from kit.hardware.sim.analysis import analyse_film
from kit.model import TakeState
from kit.recording.takes import Stopped
from kit.store import layout
from kit.testing.kits import plain_copy, small_config
from kit.testing.privacy import consent


class Gate:
    """Holds each stopped take in the finaliser's thread until the test releases it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entered: dict[str, threading.Event] = {}
        self._released: dict[str, threading.Event] = {}
        self._open = False

    def _event(self, events: dict[str, threading.Event], take_id: str) -> threading.Event:
        with self._lock:
            return events.setdefault(take_id, threading.Event())

    def __call__(self, stopped: Stopped) -> None:
        self._event(self._entered, stopped.take.id).set()
        with self._lock:
            opened = self._open
        if not opened:
            assert self._event(self._released, stopped.take.id).wait(60), "never released"

    def entered(self, take_id: str) -> bool:
        return self._event(self._entered, take_id).is_set()

    def release(self, take_id: str) -> None:
        self._event(self._released, take_id).set()

    def release_all(self) -> None:
        """Release every take held, and hold none from now on."""
        with self._lock:
            self._open = True
            held = list(self._entered)
        for take_id in held:
            self.release(take_id)


class Led:
    """The LED's patterns, as the worker shows them."""

    def __init__(self) -> None:
        self.shown: list[Light] = []

    def show(self, light: Light) -> None:
        self.shown.append(light)

    @property
    def now(self) -> Light:
        return self.shown[-1]


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def led() -> Led:
    return Led()


@pytest.fixture
def kit(tmp_path: Path, gate: Gate, led: Led) -> Iterator[Kit]:
    """The real kit (as kit.testing.kits.real_kit builds it), with the LED and the gate."""
    clock = MonotonicClock()
    config = small_config(tmp_path / "data")
    kit = compose(
        config,
        simulated_hardware(config, clock),
        clock,
        boot_id="test-boot",
        cutting=Cutting.INLINE,
        lights=led,
        before_finish=gate,
    )
    kit.hardware.camera.open()
    kit.worker.begin()
    thread = threading.Thread(target=kit.worker.run, kwargs={"tick_s": 0.1}, daemon=True)
    thread.start()
    yield kit
    gate.release_all()
    kit.worker.post(Shutdown())
    thread.join(60)
    kit.hardware.microphone.stop()
    kit.close()


def _wait(what: str, condition: Callable[[], object], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _record_for(kit: Kit, seconds: float) -> tuple[str, int]:
    """Start a take and wait until ``seconds`` of it are recorded; (its id, first frame)."""
    kit.worker.start("phone")
    _wait("the take's first frame", lambda: kit.worker.status().started_ns)
    status = kit.worker.status()
    assert status.take_id is not None and status.started_ns is not None
    first = status.started_ns
    _wait(f"{seconds} s of the take", lambda: kit.clock.now() >= first + seconds * NS_PER_S)
    return status.take_id, first


def _check_film(kit: Kit, take_id: str, out: Path) -> int:
    """The take's film: every frame, in order, each beep on its white frame; its frames."""
    take = kit.store.db.take(take_id)
    assert take.state == TakeState.READY, take
    rel = layout.take_mp4(layout.take_dir(take.visit_id, take.id))
    report = analyse_film(plain_copy(kit.store.files, rel, out / take_id))
    assert report.numbers == list(range(len(report.frames)))  # none lost, none repeated
    assert len(report.white_times_s) >= 2
    assert report.unmatched_white_s == []
    assert report.max_abs_offset_s <= 0.005  # every beep within 5 ms of its white frame
    return len(report.frames)


def test_a_second_take_records_while_the_first_is_finalised(
    kit: Kit, gate: Gate, led: Led, tmp_path: Path
) -> None:
    worker = kit.worker
    kit.library.start_visit("C-1041", consent())
    first, first_frame = _record_for(kit, 2.5)
    worker.stop("phone")
    _wait("the first take's film to be begun", lambda: gate.entered(first))
    # (The worker sets the LED just after the state: wait for both.)
    _wait("the LED", lambda: worker.state == State.FINALISING and led.now == Light.BUSY)
    assert worker.status().finalising == (first,)

    second, second_frame = _record_for(kit, 1.0)  # at once, while the first film is made
    assert second != first
    status = worker.status()
    assert status.state == State.RECORDING and status.finalising == (first,)
    assert led.now == Light.RECORDING_BUSY  # recording, and a film still being made
    # Tapped in the first take, sent only now: it lands there, not in the take recording.
    delay = worker.now_ns() - (first_frame + NS_PER_S)
    tag, _ = worker.add_tag("tag0000001", "Guiding", "", "Sam", delay)
    assert tag.take_id == first
    assert abs(tag.at_ns - (first_frame + NS_PER_S)) < NS_PER_S // 1000  # (real time ran on)

    gate.release(first)  # made now, while the second take records on
    _wait("the first take's film", lambda: not worker.finalising and led.now == Light.RECORDING)
    assert kit.store.db.take(first).state == TakeState.READY
    status = worker.status()
    assert status.state == State.RECORDING and status.take_id == second
    _wait("3 s of the second take", lambda: kit.clock.now() >= second_frame + 3 * NS_PER_S)
    worker.stop("phone")
    _wait("the second take's film to be begun", lambda: gate.entered(second))
    assert worker.status().finalising == (second,)
    gate.release(second)
    _wait(
        "the second film and the cut", lambda: worker.state == State.IDLE and led.now == Light.READY
    )
    assert worker.status().error == ""

    frames = [_check_film(kit, take_id, tmp_path / "plain") for take_id in (first, second)]
    assert frames[0] >= 2.5 * 30 - 1 and frames[1] >= 3 * 30 - 1
    ended = [(e.data["take_id"], e.data["state"]) for e in kit.events.since(0) if e.kind == "take"]
    assert ended == [(first, "ready"), (second, "ready")]
    # The visit's cut, made once both films were, holds the late tag.
    cut = kit.library.cut(tag.visit_id)
    assert cut is not None and cut["up_to_date"]
    assert [c["tag_ids"] for c in cut["clips"]] == [["tag0000001"]]
