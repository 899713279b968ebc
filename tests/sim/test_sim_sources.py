"""The simulated camera and microphone keep the sync-pulse contract."""

import threading
import time
from collections.abc import Callable
from functools import partial

import av
import numpy as np
import pytest

from kit.clock import NS_PER_S, FakeClock, Instant, MonotonicClock
from kit.errors import HardwareError
from kit.hardware.camera import VideoFormat, VideoPacket
from kit.hardware.microphone import AudioBlock, AudioFormat
from kit.hardware.sim import camera as camera_module
from kit.hardware.sim.analysis import beep_onsets
from kit.hardware.sim.camera import SimulatedCamera
from kit.hardware.sim.framecode import read_code
from kit.hardware.sim.microphone import SimulatedMicrophone, pulse_signal
from kit.hardware.sim.pulses import SyncPulses


def test_pulse_signal_starts_each_whole_second() -> None:
    rate = 48_000
    t = np.arange(3 * rate, dtype=np.float64) * (NS_PER_S / rate) + 5e9
    signal = pulse_signal(t, epoch=5 * NS_PER_S) / 32768
    onsets = beep_onsets(signal.astype(np.float32), rate, 0.0)
    # Detected where the burst passes half its amplitude: within 0.2 ms of its start.
    assert onsets == pytest.approx([0.0, 1.0, 2.0], abs=2e-4)
    assert not pulse_signal(t, None).any()


def test_camera_records_h264_with_keyframes_every_second_and_codes() -> None:
    clock = MonotonicClock()
    pulses = SyncPulses()
    fmt = VideoFormat(320, 240, 30)
    camera = SimulatedCamera(fmt, clock, pulses, bitrate=500_000)
    packets: list[VideoPacket] = []
    camera.open()
    try:
        camera.start_recording(packets.append)
        epoch = pulses.epoch
        clock.sleep_until(clock.now() + int(2.2 * NS_PER_S))
        camera.stop_recording()
        preview = camera.preview_jpeg()
    finally:
        camera.close()
    assert epoch is not None and packets[0].pts_ns == epoch
    assert packets[0].keyframe and packets[0].data.startswith((b"\0\0\0\x01\x67", b"\0\0\x01\x67"))
    keyframes = [i for i, p in enumerate(packets) if p.keyframe]
    assert keyframes[:3] == [0, 30, 60]
    # SPS is repeated before every keyframe, so any keyframe can start a cut.
    assert all(
        b"\x00\x00\x01\x67" in packets[i].data[:8] or packets[i].data[4] == 0x67 for i in keyframes
    )
    # Stamped with the capture slot, exact to the nanosecond, however late delivered.
    assert len(packets) >= 61
    assert [p.pts_ns - epoch for p in packets] == pytest.approx(
        [k * 1e9 / 30 for k in range(len(packets))], abs=1
    )
    assert camera.dropped_frames == 0
    assert preview is not None and preview[1].startswith(b"\xff\xd8")
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for p in packets for f in decoder.decode(av.Packet(p.data))]
    codes = [read_code(np.asarray(f.to_ndarray(format="yuv420p"), np.uint8)[:240]) for f in frames]
    assert [c.number for c in codes if c] == list(range(len(frames)))
    assert codes[0] is not None and codes[0].t_us == epoch // 1000
    white = [
        i for i, f in enumerate(frames) if f.to_ndarray(format="yuv420p")[120:240].mean() > 180
    ]
    assert white == [0, 30, 60]


def test_a_slow_start_costs_a_recording_none_of_its_first_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a loaded machine the camera's set-up (its codecs, a first picture) took over
    half a second; frame 0 was still due at open(), so a recording started at once
    found the camera behind and lost its first frames (CI: films from frame 8 or 26)."""
    made = camera_module._PreviewEncoder.__init__

    def slow(self: object, *args: object) -> None:
        time.sleep(1.0)  # a busy machine
        made(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(camera_module._PreviewEncoder, "__init__", slow)
    clock = MonotonicClock()
    fmt = VideoFormat(320, 240, 30)
    camera = SimulatedCamera(fmt, clock, SyncPulses(), bitrate=400_000)
    packets: list[VideoPacket] = []
    camera.open()
    try:
        camera.start_recording(packets.append)
        clock.sleep_until(clock.now() + NS_PER_S)
        camera.stop_recording()
    finally:
        camera.close()
    assert camera.dropped_frames == 0
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for p in packets for f in decoder.decode(av.Packet(p.data))]
    codes = [read_code(np.asarray(f.to_ndarray(format="yuv420p"), np.uint8)[:240]) for f in frames]
    assert [c.number for c in codes if c] == list(range(len(frames)))
    assert len(frames) >= 29


def test_a_camera_that_cannot_start_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, *args: object) -> None:
        raise RuntimeError("no mjpeg encoder")

    monkeypatch.setattr(camera_module._PreviewEncoder, "__init__", broken)
    camera = SimulatedCamera(VideoFormat(320, 240, 30), MonotonicClock(), SyncPulses())
    with pytest.raises(HardwareError, match="did not start: no mjpeg encoder"):
        camera.open()
    monkeypatch.undo()
    camera.open()  # and it starts afresh once it can
    try:
        assert camera.preview_jpeg() is not None
    finally:
        camera.close()


class _Stepper:
    """Runs a simulated camera on a fake clock, moved from one frame's instant to the next."""

    def __init__(self, clock: FakeClock, fps: int) -> None:
        self.clock, self.fps = clock, fps
        self.start = clock.now()
        self.k = 0

    def instant(self, k: int) -> int:
        return self.start + k * NS_PER_S // self.fps

    def step(self, frames: int = 1, *, settle: bool = True) -> int:
        """Move on ``frames`` frames, then (if ``settle``) wait until the threads it woke
        sleep again."""
        self.k += frames
        self.clock.set(self.instant(self.k))
        if settle:
            self.clock.settle()
        return self.instant(self.k)

    def while_stepping(self, action: Callable[[], None]) -> None:
        """Run ``action`` (it waits for the camera's next frame) while time runs."""
        worker = threading.Thread(target=action)
        worker.start()
        while worker.is_alive():
            self.step()
            worker.join(0.01)


def _record_stepped(fmt: VideoFormat, bitrate: int, frames: int) -> list[VideoPacket]:
    """The first ``frames`` packets of a take, on a fake clock stepped frame by frame, each
    step only once the camera has delivered the frame before: it renders and encodes every
    frame, however slow the machine, and the result is the same on every run."""
    clock = FakeClock()
    time = _Stepper(clock, fmt.fps)
    pulses = SyncPulses()
    camera = SimulatedCamera(fmt, clock, pulses, bitrate=bitrate)
    packets: list[VideoPacket] = []
    delivered = threading.Condition()

    def sink(packet: VideoPacket) -> None:
        with delivered:
            packets.append(packet)
            delivered.notify_all()

    def caught_up(t: int) -> bool:
        """Whether the camera delivered the frame of instant ``t`` (if it records one)."""
        return t < (pulses.epoch or 0) or (bool(packets) and packets[-1].pts_ns == t)

    camera.open()
    try:
        camera.start_recording(sink)
        epoch = pulses.epoch
        assert epoch is not None
        while len(packets) < frames:
            t = time.step()
            with delivered:
                assert delivered.wait_for(partial(caught_up, t), 10)
        time.while_stepping(camera.stop_recording)
    finally:
        time.while_stepping(camera.close)
    assert camera.dropped_frames == 0 and packets[0].pts_ns == epoch
    return packets[:frames]


class _NoticingClock(FakeClock):
    """A fake clock that tells when the thread ``watch`` reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.watch: threading.Thread | None = None
        self.read_by_watch = threading.Event()

    def now(self) -> Instant:
        if threading.current_thread() is self.watch:
            self.read_by_watch.set()
        return super().now()


def test_frames_captured_before_the_stop_are_recorded_however_late() -> None:
    """A sensor keeps the frames it captured before a stop; a late thread must too."""
    fmt = VideoFormat(320, 240, 30)
    clock = _NoticingClock()
    time = _Stepper(clock, fmt.fps)
    pulses = SyncPulses()
    camera = SimulatedCamera(fmt, clock, pulses, bitrate=400_000)
    packets: list[VideoPacket] = []
    delivered = threading.Condition()
    held, release = threading.Event(), threading.Event()

    def sink(packet: VideoPacket) -> None:
        with delivered:
            packets.append(packet)
            hold = len(packets) == 3
            if hold:
                held.set()
            delivered.notify_all()
        if hold:  # the camera's thread waits here, as if the machine were busy
            assert release.wait(10)

    def caught_up(t: int) -> bool:
        last = packets[-1].pts_ns if packets else None
        return held.is_set() or t < (pulses.epoch or 0) or last == t

    camera.open()
    try:
        camera.start_recording(sink)
        # Not settling: the thread that is held does not go back to sleep.
        while not held.is_set():
            t = time.step(settle=False)
            with delivered:
                assert delivered.wait_for(partial(caught_up, t), 10)
        # Four more frames are captured meanwhile; the stop comes at the last one's instant.
        stop_at = time.step(4, settle=False)
        clock.watch = stopper = threading.Thread(target=camera.stop_recording)
        stopper.start()
        # The stop is asked for once its instant is taken (stop_recording reads the clock).
        assert clock.read_by_watch.wait(10), "stop_recording never read the clock"
        release.set()
        stopper.join(10)
        assert not stopper.is_alive()
    finally:
        release.set()
        time.while_stepping(camera.close)
    stamps = [p.pts_ns - packets[0].pts_ns for p in packets]
    assert stamps == pytest.approx([k * 1e9 / fmt.fps for k in range(6)], abs=1)
    assert packets[-1].pts_ns < stop_at and camera.dropped_frames == 0


@pytest.mark.parametrize(
    ("width", "height", "bitrate"),
    [(1280, 720, 4_000_000), (1280, 720, 2_000_000), (320, 240, 400_000)],
)
def test_camera_produces_its_configured_bitrate(width: int, height: int, bitrate: int) -> None:
    """As the Pi's encoder does: the benchmarks' byte figures depend on it."""
    seconds = 4
    fmt = VideoFormat(width, height, 30)
    packets = _record_stepped(fmt, bitrate, seconds * fmt.fps)
    per_second = [0] * seconds
    for i, p in enumerate(packets):
        per_second[i // fmt.fps] += len(p.data)
    assert sum(per_second) * 8 / seconds == pytest.approx(bitrate, rel=0.15), per_second
    # The rate control's buffer holds every second near it too, the first included.
    assert [b * 8 for b in per_second] == pytest.approx([bitrate] * seconds, rel=0.2)


def test_codes_and_white_frames_survive_the_bitrate_at_720p() -> None:
    fmt = VideoFormat(1280, 720, 30)
    packets = _record_stepped(fmt, 4_000_000, 2 * fmt.fps + 1)
    decoder = av.CodecContext.create("h264", "r")
    planes = [
        np.asarray(f.to_ndarray(format="yuv420p"), np.uint8)[: fmt.height]
        for p in packets
        for f in decoder.decode(av.Packet(p.data))
    ]
    codes = [read_code(plane) for plane in planes]
    assert [c.number if c else None for c in codes] == list(range(len(planes)))
    assert [c.t_us if c else None for c in codes] == [p.pts_ns // 1000 for p in packets]
    white = [i for i, plane in enumerate(planes) if plane[fmt.height // 2 :].mean() > 180]
    assert white == [0, 30, 60]


def test_microphone_runs_fast_by_its_skew_and_beeps_on_true_seconds() -> None:
    clock = MonotonicClock()
    pulses = SyncPulses()
    mic = SimulatedMicrophone(
        AudioFormat(48_000, 1), clock, pulses, skew_ppm=5_000, latency_ns=50_000_000, jitter_ns=0
    )
    blocks: list[AudioBlock] = []
    done = threading.Event()
    started = clock.now()
    pulses.start(started + 100_000_000)
    mic.start(blocks.append)
    clock.sleep_until(started + int(2.5 * NS_PER_S))
    mic.stop()
    done.set()
    assert blocks[0].t_ns - started == pytest.approx(50_000_000, abs=2_000_000)
    # 5000 ppm fast: over the covered span it produced 0.5 % more samples than nominal.
    span = blocks[-1].t_ns - blocks[0].t_ns
    samples = sum(b.frames for b in blocks[:-1])
    assert samples / (span / 1e9) == pytest.approx(48_000 * 1.005, rel=2e-4)
    audio = (np.concatenate([b.samples[:, 0] for b in blocks]) / 32768).astype(np.float32)
    # Beeps start on true instants; counted in samples they come 0.5 % "late".
    onsets = beep_onsets(audio, 48_000, 0.0)
    first_true = (started + 100_000_000 - blocks[0].t_ns) / 1e9
    assert onsets[0] == pytest.approx(first_true * 1.005, abs=1e-4)
    assert onsets[1] - onsets[0] == pytest.approx(1.005, abs=1e-4)
