"""The two kits the contract runs over, behind one driver: the fake the web tests use
(kit.testing.fakes) and the real kit (kit.compose: the worker, the library, the take
recorder and the finaliser, simulated camera and microphone, a fake clock, an inline
cutter). As gpiozero runs its tests over every pin factory.

A driver adds what only a test needs: :meth:`Driver.settle` lets the kit finish
what it was asked (the real worker handles its queue, and waits on it for the films
its finaliser thread is making; a stop needs the camera's last frame, so time moves
on meanwhile) and :meth:`Driver.advance` lets time pass.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from kit.clock import NS_PER_S, FakeClock
from kit.compose import Cutting, Kit
from kit.daemon.api import Recording, VisitLibrary
from kit.daemon.events import EventLog
from kit.hardware.factory import Hardware, simulated_hardware
from kit.testing.fakes import FakeKit, jpeg_frames, placeholder_film
from kit.testing.kits import real_kit, small_config
from tests.torture.faults import UnpluggableMicrophone

FRAME_NS = NS_PER_S // 30


class Driver(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def recording(self) -> Recording: ...

    @property
    def visits(self) -> VisitLibrary: ...

    @property
    def events(self) -> EventLog: ...

    @property
    def clock(self) -> FakeClock: ...

    @property
    def data(self) -> Path: ...

    def settle(self) -> None: ...

    def advance(self, seconds: float) -> None: ...

    def pull_microphone(self) -> None: ...

    def put_back_microphone(self) -> None: ...

    def close(self) -> None: ...


class FakeDriver:
    name = "fake"

    def __init__(self, data: Path) -> None:
        self.data = data
        self.clock = FakeClock()
        self.kit = FakeKit(data, self.clock, film=placeholder_film, preview=jpeg_frames(2))
        self.recording = self.kit.recording
        self.visits = self.kit.visits
        self.events = self.kit.events

    def settle(self) -> None:
        """The fake acts at once."""

    def advance(self, seconds: float) -> None:
        self.clock.advance(round(seconds * NS_PER_S))

    def pull_microphone(self) -> None:
        self.kit.recording.pull_microphone()

    def put_back_microphone(self) -> None:
        self.kit.recording.put_back_microphone()

    def close(self) -> None:
        self.kit.close()


class RealDriver:
    """The real kit, stepped by the test; a pump moves the fake clock a frame at a time,
    waiting for the simulated camera and microphone to catch up after each."""

    name = "real"

    def __init__(self, data: Path) -> None:
        self.data = data
        self.clock = FakeClock()
        sim = simulated_hardware(small_config(data), self.clock)
        self.mic = UnpluggableMicrophone(sim.microphone)
        self.kit: Kit = real_kit(
            data,
            clock=self.clock,
            hardware=Hardware(sim.camera, self.mic, simulated=True),
            cutting=Cutting.INLINE,
            free=10**12,
        )
        self.recording = self.kit.worker
        self.visits = self.kit.library
        self.events = self.kit.events
        self._target: int = self.clock.now()
        self._free_run = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._paced: tuple[int, int] | None = None  # (kit, real) instants pacing began
        # While settle() lets time run, it runs no faster than real time: a stop is then
        # handled within a frame or two of when it was asked, not after frames the pump
        # moved on while the test's thread waited for a core (CI: a 12 s take ran 12.5).
        self._free_since: tuple[int, int] | None = None
        self._stepping = threading.Lock()  # held by the pump for each frame it moves on
        self._pump = threading.Thread(target=self._run_pump, name="clock-pump", daemon=True)
        self._pump.start()
        self.kit.hardware.camera.open()  # as kit run does at start-up: the preview runs
        self.kit.worker.begin()
        self.settle()

    def _run_pump(self) -> None:
        while not self._closing.is_set():
            with self._stepping:  # a step decided is finished before settle() returns
                with self._lock:
                    free = self._free_run.is_set()
                    due = free or self.clock.now() < self._target
                    paced = self._paced or (self._free_since if free else None)
                if due:
                    self._step(paced)
            if not due:
                self._closing.wait(0.002)

    def _step(self, paced: tuple[int, int] | None) -> None:
        if paced is not None:  # no faster than real time
            kit_ns, real_ns = paced
            ahead = (self.clock.now() - kit_ns) - (time.monotonic_ns() - real_ns)
            if ahead > 0:
                self._closing.wait(ahead / NS_PER_S)
        self.clock.advance(FRAME_NS)
        self.clock.settle(timeout_s=2.0)

    def _pace(self) -> None:
        """From now on the kit's clock runs no faster than real time: the recorder's device
        watch wakes on real time and takes a wake more than a second of the kit's clock
        late for a held-up process, not for a lost device."""
        with self._lock:
            if self._paced is None:
                self._paced = (self.clock.now(), time.monotonic_ns())

    def settle(self) -> None:
        """Handle everything queued, and wait for the films being made (on the worker's
        queue: the finaliser posts each one there); time runs meanwhile (a stop waits for
        the last frame)."""
        worker = self.kit.worker
        with self._lock:
            self._free_since = (self.clock.now(), time.monotonic_ns())
        self._free_run.set()
        try:
            while True:
                while worker.step():
                    pass
                if not worker.finalising:
                    return
                assert worker.step(timeout_s=30), "the finaliser never answered"
        finally:
            self._free_run.clear()
            with self._stepping:  # the clock stands still from here until told to move
                pass

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._target = self.clock.now() + round(seconds * NS_PER_S)
        while self.clock.now() < self._target:
            self._closing.wait(0.002)
        self.settle()

    def pull_microphone(self) -> None:
        """Out of its socket: its stream delivers nothing more (the kit notices within
        ``kit.recording.recorder.MIC_LOST_NS`` of its last block)."""
        self._pace()
        self.mic.unplug()

    def put_back_microphone(self) -> None:
        """Back: the recorder's next try starts it (``MIC_RETRY_NS``)."""
        self._pace()
        self.mic.plug()

    def close(self) -> None:
        from kit.daemon.messages import Shutdown

        worker = self.kit.worker
        worker.post(Shutdown())
        self._free_run.set()  # the simulated threads end on their next instant
        try:
            deadline = time.monotonic() + 60
            while not worker.finished:  # it waits for the films being made
                assert time.monotonic() < deadline, "the worker never finished"
                worker.step(timeout_s=1.0)
            self.kit.hardware.microphone.stop()
            self.kit.close()
        finally:
            self._closing.set()
            self._pump.join(timeout=5)


@pytest.fixture(params=["fake", "real"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    made: Driver = (
        FakeDriver(tmp_path / "data") if request.param == "fake" else RealDriver(tmp_path / "data")
    )
    yield made
    made.close()
