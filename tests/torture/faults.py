"""Hardware that fails the way real hardware does, built around the simulated camera and
microphone (kit.hardware.factory.simulated_hardware) and the sounddevice stand-in, plus
the real kit around them for the hardware-fault tests.

- :class:`UnpluggableMicrophone`: a USB microphone that can be pulled out and put back.
  Pulled out, its stream delivers nothing ever again (as a PortAudio stream whose device
  went away) and it will not start; put back, a new start records again.
- :class:`FailingCamera`: a camera whose recording stops delivering frames (its thread
  died), whose stop then fails, and which is gone until it is repaired.
- :class:`HotplugSoundDevice`: the sounddevice stand-in with a USB microphone that can be
  pulled out of a running stream: the stream stops and calls ``finished_callback``, and
  PortAudio's device list keeps the stale device until it is re-scanned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kit.clock import NS_PER_S, MonotonicClock
from kit.compose import Cutting, Kit, compose
from kit.daemon.messages import HardwareProblem, Shutdown
from kit.errors import DeviceNotFound, HardwareError, KitError
from kit.hardware.camera import Camera, VideoFormat, VideoPacket, VideoSink
from kit.hardware.factory import Hardware, simulated_hardware
from kit.hardware.microphone import AudioBlock, AudioFormat, AudioSink, Microphone
from kit.hardware.sim.analysis import FilmReport, analyse_film
from kit.model import Take
from kit.store import layout
from kit.testing.kits import plain_copy, small_config
from tests.hardware.standins import StandInDevice, StandInSoundDevice, StandInStream


class UnpluggableMicrophone:
    """A microphone in a USB socket (see the module's docstring)."""

    def __init__(self, inner: Microphone) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._plugged = True
        self._generation = 0  # a pull ends every stream started before it
        self._running = False
        self.first_after_plug_ns: int | None = None  # the first block's instant after a replug
        self._waiting_for_first = False

    @property
    def format(self) -> AudioFormat:
        return self._inner.format

    @property
    def overflows(self) -> int:
        return self._inner.overflows

    @property
    def level_dbfs(self) -> float:
        return self._inner.level_dbfs

    def start(self, sink: AudioSink) -> None:
        with self._lock:
            if not self._plugged:
                raise DeviceNotFound("no input device matches 'USB': it was unplugged")
            generation = self._generation

        def forward(block: AudioBlock) -> None:
            with self._lock:
                alive = self._plugged and generation == self._generation
                first = alive and self._waiting_for_first
                if first:
                    self._waiting_for_first = False
                    self.first_after_plug_ns = block.t_ns
            if alive:
                sink(block)

        self._inner.start(forward)
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._inner.stop()

    def unplug(self) -> None:
        with self._lock:
            self._plugged = False
            self._generation += 1

    def plug(self) -> None:
        with self._lock:
            self._plugged = True
            self._waiting_for_first = True


class FailingCamera:
    """A camera whose recording can die (see the module's docstring)."""

    def __init__(self, inner: Camera) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._broken = False
        self._generation = 0
        self._recording_broke = False
        self.last_packet_ns: int | None = None

    @property
    def format(self) -> VideoFormat:
        return self._inner.format

    @property
    def dropped_frames(self) -> int:
        return self._inner.dropped_frames

    def open(self) -> None:
        with self._lock:
            if self._broken:
                raise DeviceNotFound("no camera 0: libcamera found 0 ([])")
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def start_recording(self, sink: VideoSink) -> None:
        with self._lock:
            if self._broken:
                raise HardwareError("the camera is not there")
            generation = self._generation
            self._recording_broke = False

        def forward(packet: VideoPacket) -> None:
            with self._lock:
                alive = not self._broken and generation == self._generation
                if alive:
                    self.last_packet_ns = packet.pts_ns
            if alive:
                sink(packet)

        self._inner.start_recording(forward)

    def stop_recording(self) -> None:
        self._inner.stop_recording()
        with self._lock:
            broke, self._recording_broke = self._recording_broke, False
        if broke:
            raise HardwareError("the H.264 encoder did not stop cleanly: it had died")

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        with self._lock:
            if self._broken:
                return None
        return self._inner.preview_jpeg()

    def fail(self) -> None:
        """The camera's thread dies: no more frames, and it is gone until repaired."""
        with self._lock:
            self._broken = True
            self._recording_broke = True
            self._generation += 1

    def repair(self) -> None:
        with self._lock:
            self._broken = False


# --- the sounddevice stand-in with hot-plugging ------------------------------------------


class PullableStream(StandInStream):
    """A stand-in stream whose device can be pulled out while it runs."""

    def __init__(
        self,
        owner: StandInSoundDevice,
        kwargs: dict[str, Any],
        finished_callback: Callable[[], None] | None,
    ) -> None:
        super().__init__(owner, kwargs)
        self._finished = finished_callback

    def pull(self) -> None:
        """The device went away: PortAudio's callback thread ends on the error, the stream
        is inactive, and the finished callback runs (on PortAudio's thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.active = False
        if self._finished is not None:
            self._finished()

    def stop(self) -> None:
        was_active = self.active
        super().stop()
        if was_active and self._finished is not None:
            self._finished()  # after a stop too, as Pa_StopStream does


class HotplugSoundDevice(StandInSoundDevice):
    """The stand-in sounddevice, whose streams are :class:`PullableStream` s."""

    def _stream(
        self, settings: dict[str, Any], finished_callback: Callable[[], None] | None
    ) -> StandInStream:
        return PullableStream(self, settings, finished_callback)

    def pull(self, name: str) -> None:
        """Pull the device out: its running stream ends, PortAudio's list keeps a stale
        entry that can no longer be opened, and a re-scan no longer finds it."""
        index = next(i for i, d in enumerate(self.devices) if d.name == name)
        stale = self.devices[index]
        self.devices = [*self.devices]
        self.devices[index] = StandInDevice(stale.name, stale.max_input_channels, busy=True)
        self.after_rescan = [d for d in self.devices if d.name != name]
        for stream in self.streams:
            if stream.active and stream.kwargs["device"] == index:
                assert isinstance(stream, PullableStream)
                stream.pull()

    def plug(self, device: StandInDevice) -> None:
        """Plug it back in: only a re-scan finds it (PortAudio lists devices once)."""
        there = self.after_rescan
        if there is None:
            there = [d for d in self.devices if not d.busy]
        self.after_rescan = [*there, device]


# --- the real kit around the faulty hardware ---------------------------------------------


@dataclass
class FaultKit:
    """The real kit (kit.compose, its worker in a thread of its own, in real time) on a
    pluggable microphone and a failing camera."""

    kit: Kit
    mic: UnpluggableMicrophone
    camera: FailingCamera

    def wait(self, what: str, condition: Callable[[], object], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    def status_error(self) -> str:
        return self.kit.worker.status().error

    def start_take(self) -> tuple[str, int]:
        """Start a take; its id and first frame, once it records."""
        self.kit.worker.start("phone")
        self.wait("the take's first frame", lambda: self.kit.worker.status().started_ns)
        status = self.kit.worker.status()
        assert status.take_id is not None and status.started_ns is not None
        return status.take_id, status.started_ns

    def until(self, first_ns: int, seconds: float) -> None:
        """Wait until ``seconds`` into the take that began at ``first_ns``."""
        self.kit.clock.sleep_until(first_ns + round(seconds * NS_PER_S))

    def stop_and_finish(self, take_id: str) -> Take:
        """Stop the take (unless it stopped already) and wait for its film."""
        self.kit.worker.stop("phone")
        self.wait(
            "the take's film",
            lambda: self.kit.store.db.take(take_id).state.value not in ("recording", "finalising"),
            timeout_s=60,
        )
        return self.kit.store.db.take(take_id)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in self.kit.events.since(0) if e.kind == kind]

    def film(self, take: Take, out: Path) -> Path:
        rel = layout.take_mp4(layout.take_dir(take.visit_id, take.id))
        return plain_copy(self.kit.store.files, rel, out / take.id)


@contextmanager
def fault_kit(
    data: Path, *, mic_plugged: bool = True, camera_there: bool = True
) -> Iterator[FaultKit]:
    """The real kit on ``data``, started as ``kit run`` starts it (a camera that will not
    open is posted to the worker as a :class:`HardwareProblem`)."""
    clock = MonotonicClock()
    config = small_config(data)
    sim = simulated_hardware(config, clock)
    mic, camera = UnpluggableMicrophone(sim.microphone), FailingCamera(sim.camera)
    if not mic_plugged:
        mic.unplug()
    if not camera_there:
        camera.fail()
    kit = compose(
        config,
        Hardware(camera, mic, simulated=True),
        clock,
        boot_id="test-boot",
        cutting=Cutting.NONE,
    )
    try:
        kit.hardware.camera.open()
    except KitError as exc:
        kit.worker.post(HardwareProblem(f"camera: {exc}"))
    kit.worker.begin()
    thread = threading.Thread(target=kit.worker.run, kwargs={"tick_s": 0.1}, daemon=True)
    thread.start()
    try:
        yield FaultKit(kit, mic, camera)
    finally:
        kit.worker.post(Shutdown())
        thread.join(60)
        mic.stop()
        kit.close()


# --- what a film holds -------------------------------------------------------------------


def audio_of(path: Path) -> tuple[npt.NDArray[np.float32], int, float]:
    """The film's sound (first channel, -1..1), its rate, and the time of its first sample."""
    import av

    chunks = []
    start: float | None = None
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        for frame in container.decode(audio=0):
            if start is None:
                start = float(frame.time or 0.0)
            data = np.asarray(frame.to_ndarray(), dtype=np.float32)
            chunks.append(data[0] if data.ndim == 2 else data)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return samples, rate, start or 0.0


def peak_between(path: Path, from_s: float, to_s: float) -> float:
    """The loudest sample of the film's sound between two instants (seconds into it)."""
    samples, rate, start = audio_of(path)
    a = max(0, round((from_s - start) * rate))
    b = max(a, round((to_s - start) * rate))
    window = samples[a:b]
    assert window.size > 0, f"the film has no sound between {from_s} and {to_s} s"
    return float(np.max(np.abs(window)))


def beeps_by_white_frame(report: FilmReport) -> dict[float, float | None]:
    """Each white frame's time, with its nearest beep's offset from it (None: no beep
    within 0.25 s, as :func:`analyse_film` matches them)."""
    found: dict[float, float | None] = {}
    for white in report.white_times_s:
        nearest = min(report.onsets_s, key=lambda o: abs(o - white), default=None)
        ok = nearest is not None and abs(nearest - white) <= 0.25
        found[white] = nearest - white if ok and nearest is not None else None
    return found


def analyse(path: Path) -> FilmReport:
    return analyse_film(path)
