"""Run the simulated camera and microphone on a fake clock, as fast as they keep up.

A :class:`ClockPump` advances a :class:`~kit.clock.FakeClock` on a thread of
its own in small steps, waiting after each for the simulated devices' threads
to go back to sleep (``FakeClock.settle``). Time moves only when asked to:
while the code under test waits (:meth:`ClockPump.wait_until`, its
``wait_until`` seam) and while a device stops or closes (its thread must wake
to notice). A thread that is busy when time moves is not waited for, and the
simulated camera is busy for a while when it opens (its first frame, its
encoder); so while the camera records, the pump also never runs more than
:data:`MAX_LEAD_FRAMES` frames ahead of the last frame it delivered. A
60-second take then records every frame, in a few seconds of real time, the
same way on every run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import TracebackType

from kit.clock import NS_PER_MS, FakeClock
from kit.hardware.camera import Camera, VideoFormat, VideoPacket, VideoSink
from kit.hardware.factory import Hardware
from kit.hardware.microphone import AudioFormat, AudioSink, Microphone

MAX_LEAD_FRAMES = 3
STEP_NS = 5 * NS_PER_MS


class _PacedCamera:
    """The camera, reporting each delivered frame to the pump."""

    def __init__(self, camera: Camera, pump: ClockPump) -> None:
        self._camera = camera
        self._pump = pump

    @property
    def format(self) -> VideoFormat:
        return self._camera.format

    @property
    def dropped_frames(self) -> int:
        return self._camera.dropped_frames

    def open(self) -> None:
        self._camera.open()

    def close(self) -> None:
        with self._pump.running():
            self._camera.close()

    def start_recording(self, sink: VideoSink) -> None:
        def deliver(packet: VideoPacket) -> None:
            sink(packet)
            self._pump.delivered(packet.pts_ns)

        self._pump.recording(True)
        self._camera.start_recording(deliver)

    def stop_recording(self) -> None:
        self._pump.recording(False)  # the last frame of a recording delivers nothing
        with self._pump.running():
            self._camera.stop_recording()

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        return self._camera.preview_jpeg()


class _PacedMicrophone:
    """The microphone, with time running while it stops."""

    def __init__(self, microphone: Microphone, pump: ClockPump) -> None:
        self._mic = microphone
        self._pump = pump

    @property
    def format(self) -> AudioFormat:
        return self._mic.format

    @property
    def overflows(self) -> int:
        return self._mic.overflows

    @property
    def level_dbfs(self) -> float:
        return self._mic.level_dbfs

    def start(self, sink: AudioSink) -> None:
        self._mic.start(sink)

    def stop(self) -> None:
        with self._pump.running():
            self._mic.stop()


class ClockPump:
    """Keeps a fake clock running in the background, in step with a camera."""

    def __init__(self, clock: FakeClock, frame_ns: int, step_ns: int = STEP_NS) -> None:
        self.clock = clock
        self._frame_ns = frame_ns
        self._step = step_ns
        self._cond = threading.Condition()
        self._closing = False
        self._recording = False
        self._last = 0
        self._target: int = clock.now()
        self._free = 0
        self._thread = threading.Thread(target=self._run, name="clock-pump", daemon=True)

    def hardware(self, hardware: Hardware) -> Hardware:
        """``hardware`` with its camera reporting to this pump."""
        return Hardware(
            _PacedCamera(hardware.camera, self), _PacedMicrophone(hardware.microphone, self), True
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Time runs freely inside this block (a device stopping waits for its next instant)."""
        with self._cond:
            self._free += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._free -= 1

    def recording(self, on: bool) -> None:
        with self._cond:
            self._recording = on
            self._last = self.clock.now()
            self._cond.notify_all()

    def delivered(self, pts_ns: int) -> None:
        with self._cond:
            self._last = max(self._last, pts_ns)
            self._cond.notify_all()

    def wait_until(self, instant: int) -> None:
        """Block (in real time) until the pump has brought the clock to ``instant``."""
        with self._cond:
            self._target = max(self._target, instant)
            self._cond.notify_all()
            while self.clock.now() < instant:
                if not self._cond.wait(timeout=30):
                    raise TimeoutError(f"the clock pump never reached {instant}")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not self._due():
                    self._cond.wait(timeout=5)
                if self._closing:
                    return
            self.clock.advance(self._step)
            self.clock.settle(timeout_s=5)
            with self._cond:
                self._cond.notify_all()

    def _due(self) -> bool:
        """Whether time should move now (called holding the condition)."""
        now = self.clock.now()
        if self._free:
            return True
        ahead = self._recording and now > self._last + MAX_LEAD_FRAMES * self._frame_ns
        return now < self._target and not ahead

    def __enter__(self) -> ClockPump:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
