"""The Pi's real adapters: their pure parts everywhere, the hardware itself on a Pi.

Tests marked ``pi`` need a Raspberry Pi with its camera module and USB
microphone (conftest skips them elsewhere; ``kit check`` runs them). The rest
run on any machine: they hide picamera2/sounddevice, or put the stand-ins of
``tests/hardware/standins.py`` in their place and drive the adapters' callbacks
the way PortAudio and picamera2's encoders would.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kit.clock import NS_PER_MS, NS_PER_S, FakeClock, MonotonicClock
from kit.errors import DeviceNotFound, HardwareError, StateError
from kit.hardware.camera import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    CameraBlocked,
    VideoFormat,
    VideoPacket,
    nal_types,
    starts_with_sps,
)
from kit.hardware.microphone import AudioBlock, AudioFormat
from kit.hardware.picamera import FrameGaps, PiCamera, sensor_instant_ns
from kit.hardware.soundcard import (
    InputDevice,
    SoundDeviceMicrophone,
    adc_instant,
    choose_input_device,
)
from tests.hardware.conftest import stamp_rate
from tests.hardware.standins import StandInPicamera2, StandInSoundDevice

VIDEO = VideoFormat(width=1280, height=720, fps=30)
AUDIO = AudioFormat(rate=48_000, channels=1)


def pi_camera() -> PiCamera:
    return PiCamera(
        VIDEO, MonotonicClock(), bitrate=4_000_000, preview_size=(320, 180), preview_fps=5.0
    )


# --- importing and missing libraries -------------------------------------------------


def test_the_adapters_import_without_touching_hardware_libraries() -> None:
    code = (
        "import sys, kit.hardware.picamera, kit.hardware.soundcard, kit.hardware.factory\n"
        "print(sorted(m for m in ('picamera2', 'libcamera', 'sounddevice') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_a_camera_without_picamera2_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    camera = pi_camera()
    with pytest.raises(DeviceNotFound, match="picamera2") as caught:
        camera.open()
    assert isinstance(caught.value, HardwareError | LookupError)


def test_a_microphone_without_sounddevice_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    mic = SoundDeviceMicrophone(AUDIO, MonotonicClock(), device=None, blocksize=480)
    with pytest.raises(DeviceNotFound, match="sounddevice"):
        mic.start(lambda _block: None)


def test_an_unopened_camera_refuses_to_record_and_closes_quietly() -> None:
    camera = pi_camera()
    assert camera.preview_jpeg() is None
    assert camera.dropped_frames == 0
    with pytest.raises(StateError):
        camera.start_recording(lambda _packet: None)
    camera.stop_recording()
    camera.close()


# --- camera timestamps ----------------------------------------------------------------


def test_sensor_instants_are_rebuilt_from_picamera2s_relative_microseconds() -> None:
    first_us = 1_234_567_890
    assert sensor_instant_ns(first_us, 0) == first_us * 1000
    assert sensor_instant_ns(first_us, 33_333) == (first_us + 33_333) * 1000


@pytest.mark.parametrize(
    ("gaps_in_periods", "lost"),
    [
        ([1, 1, 1, 1], 0),
        ([1, 1.4, 1], 0),  # jitter, not a lost frame
        ([1, 2, 1], 1),
        ([1, 1.6, 1], 1),
        ([3, 1, 5], 2 + 4),
    ],
)
def test_frame_gaps_count_lost_frames(gaps_in_periods: list[float], lost: int) -> None:
    period = VIDEO.frame_ns
    gaps = FrameGaps(period)
    t = 1_000 * NS_PER_S
    assert gaps.add(t) == 0
    for g in gaps_in_periods:
        t += round(g * period)
        gaps.add(t)
    assert gaps.dropped == lost


# --- microphone timestamps and device choice ------------------------------------------


def test_adc_instant_subtracts_the_age_of_the_first_sample() -> None:
    now = 5_000 * NS_PER_S
    # On ALSA both times are on CLOCK_REALTIME; only their difference counts.
    assert adc_instant(now, 1.8e9 + 0.025, 1.8e9, 480, 48_000) == pytest.approx(
        now - 25 * NS_PER_MS, abs=1_000
    )
    # A host API that leaves the ADC time at 0: one block back.
    assert adc_instant(now, 12.5, 0.0, 480, 48_000) == now - 10 * NS_PER_MS
    # Absurd ages (different clocks) fall back too.
    assert adc_instant(now, 1.8e9, 3.0, 480, 48_000) == now - 10 * NS_PER_MS
    # Slightly negative ages are kept, so consecutive stamps stay consistent.
    assert adc_instant(now, 100.0, 100.004, 480, 48_000) == pytest.approx(
        now + 4 * NS_PER_MS, abs=1_000
    )


DEVICES = [
    InputDevice(0, "bcm2835 Headphones: - (hw:0,0)", 0),
    InputDevice(1, "USB PnP Sound Device: Audio (hw:2,0)", 1),
    InputDevice(2, "pulse", 32),
    InputDevice(3, "default", 32),
]


@pytest.mark.parametrize(
    ("wanted", "default", "channels", "index"),
    [
        (None, 3, 1, 1),  # a USB microphone wins
        (None, 3, 2, 3),  # ...unless it lacks the channels: the default
        (2, None, 1, 2),
        ("2", None, 1, 2),
        ("usb pnp", 3, 1, 1),
        ("PULSE", 3, 1, 2),
        ("default", 2, 1, 3),
        ("Audio", 3, 1, 1),
    ],
)
def test_choose_input_device(
    wanted: str | int | None, default: int | None, channels: int, index: int
) -> None:
    assert choose_input_device(DEVICES, wanted, default, channels).index == index


def test_an_exact_name_beats_a_substring() -> None:
    devices = [InputDevice(0, "pulse monitor", 2), InputDevice(1, "pulse", 2)]
    assert choose_input_device(devices, "pulse", None).index == 1


@pytest.mark.parametrize(("wanted", "default"), [("focusrite", 3), (0, 3), (9, 3), (None, None)])
def test_no_matching_input_lists_the_inputs(wanted: str | int | None, default: int | None) -> None:
    devices = [d for d in DEVICES if "USB" not in d.name]
    with pytest.raises(DeviceNotFound, match=r"\[2\] pulse.*\[3\] default"):
        choose_input_device(devices, wanted, default)


# --- the microphone's callback, driven as PortAudio would -----------------------------


def test_the_callback_stamps_copies_and_flags_overflows(standin_sd: StandInSoundDevice) -> None:
    clock = FakeClock()
    mic = SoundDeviceMicrophone(AUDIO, clock, device=None, blocksize=4)
    got: list[AudioBlock] = []
    mic.start(got.append)
    (stream,) = standin_sd.streams
    assert stream.kwargs["device"] == 1  # the USB microphone
    assert stream.kwargs["dtype"] == "int16"
    assert stream.kwargs["samplerate"] == AUDIO.rate
    assert stream.kwargs["blocksize"] == 4
    buffer = np.array([[0], [100], [-200], [50]], dtype=np.int16)
    stream.block(buffer, age_s=0.02)
    buffer[:] = 7  # PortAudio reuses its buffer: the block must be a copy
    stream.block(buffer, age_s=0.02, overflow=True)
    stream.block(buffer, age_s=0.02)
    mic.stop()
    assert [b.overflow for b in got] == [False, True, False]
    assert mic.overflows == 1
    assert got[0].samples[:, 0].tolist() == [0, 100, -200, 50]
    assert got[0].t_ns == pytest.approx(clock.now() - 20 * NS_PER_MS, abs=1_000)
    assert mic.level_dbfs == pytest.approx(20 * np.log10(7 / 32768))
    assert not stream.active


def test_a_failing_sink_does_not_kill_the_stream(standin_sd: StandInSoundDevice) -> None:
    mic = SoundDeviceMicrophone(AUDIO, FakeClock(), device="usb", blocksize=2)
    got: list[AudioBlock] = []

    def sink(block: AudioBlock) -> None:
        if not got:
            got.append(block)
            raise RuntimeError("disk hiccup")
        got.append(block)

    mic.start(sink)
    (stream,) = standin_sd.streams
    samples = np.zeros((2, 1), dtype=np.int16)
    stream.block(samples, age_s=0.01)  # must not raise into PortAudio
    stream.block(samples, age_s=0.01)
    mic.stop()
    # The block after the failed hand-over says the sequence has a gap.
    assert [b.overflow for b in got] == [False, True]


def test_a_missing_device_is_reported_after_a_rescan(standin_sd: StandInSoundDevice) -> None:
    mic = SoundDeviceMicrophone(AUDIO, FakeClock(), device="focusrite", blocksize=480)
    with pytest.raises(DeviceNotFound, match=r"focusrite.*\[0\] default.*\[1\] USB Mic"):
        mic.start(lambda _block: None)
    assert standin_sd.rescans == 1
    assert not standin_sd.streams


# --- the camera's glue, against a stand-in for picamera2 -----------------------------


def test_the_camera_builds_and_stops_its_encoders_as_designed(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    camera = pi_camera()
    camera.open()
    picam = standin_picamera2.last()
    assert picam.started
    assert picam.config["main"] == {"size": (1280, 720), "format": "YUV420"}
    assert picam.config["lores"] == {"size": (320, 180), "format": "YUV420"}
    assert picam.config["encode"] == "main" and picam.config["display"] is None
    assert picam.encoders["lores"].frame_skip_count == 6  # 30 fps / 5 previews a second
    camera.start_recording(lambda _packet: None)
    h264 = picam.encoders["main"]
    assert h264.kwargs == {"bitrate": 4_000_000, "repeat": True, "iperiod": 30, "framerate": 30}
    camera.close()
    assert picam.closed
    assert not picam.encoders


def test_camera_packets_carry_sensor_instants_and_gaps_count_as_drops(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    camera = pi_camera()
    camera.open()
    packets: list[VideoPacket] = []
    camera.start_recording(packets.append)
    picam = standin_picamera2.last()
    h264 = picam.encoders["main"]
    first_us = time.monotonic_ns() // 1000
    h264.firsttimestamp = first_us  # as Encoder._timestamp sets it on the first frame
    out = h264.output
    out.outputframe(b"\x00\x00\x00\x01\x27key", True, 0)
    out.outputframe(b"\x00\x00\x00\x01\x41p", False, 33_333)
    out.outputframe(b"\x00\x00\x00\x01\x41p", False, 133_333)  # two frames lost
    out.outputframe(None, True, 150_000, "audio packet", True)  # audio: not ours
    camera.stop_recording()
    out.outputframe(b"late", False, 166_666)  # after stop: dropped on the floor
    assert [p.pts_ns for p in packets] == [
        first_us * 1000,
        (first_us + 33_333) * 1000,
        (first_us + 133_333) * 1000,
    ]
    assert [p.keyframe for p in packets] == [True, False, False]
    assert camera.dropped_frames == 2
    picam.encoders["lores"].output.outputframe(b"\xff\xd8jpeg", True, 0)
    picam.encoders["lores"].output.outputframe(b"\xff\xd8jpeg2", True, 200_000)
    assert camera.preview_jpeg() == (2, b"\xff\xd8jpeg2")
    camera.close()


def test_no_camera_attached_is_not_found(standin_picamera2: type[StandInPicamera2]) -> None:
    standin_picamera2.cameras = []
    camera = PiCamera(
        VIDEO,
        MonotonicClock(),
        bitrate=4_000_000,
        preview_size=(320, 180),
        preview_fps=5.0,
        blocked_nodes=lambda: (),
    )
    with pytest.raises(DeviceNotFound, match="no camera 0") as caught:
        camera.open()
    assert not isinstance(caught.value, CameraBlocked)  # a restart would not bring it


# --- on a real kit --------------------------------------------------------------------


@pytest.mark.pi
def test_the_camera_records_h264_on_the_kit_clock() -> None:
    camera = pi_camera()
    packets: list[VideoPacket] = []
    camera.open()
    try:
        time.sleep(1.0)  # the preview encoder produces a few JPEGs
        preview = camera.preview_jpeg()
        assert preview is not None
        assert preview[1][:2] == b"\xff\xd8"
        camera.start_recording(packets.append)
        time.sleep(3.0)
        camera.stop_recording()
        now = time.monotonic_ns()
    finally:
        camera.close()
    assert len(packets) == pytest.approx(3 * VIDEO.fps, abs=VIDEO.fps // 2)
    first = packets[0]
    assert first.keyframe
    # By NAL type: an SPS is 0x67 from libx264 (Pi 5) but 0x27 from the Pi 4's encoder.
    assert starts_with_sps(first.data)
    keyframes = [i for i, p in enumerate(packets) if p.keyframe]
    assert [b - a for a, b in itertools.pairwise(keyframes)] == [VIDEO.fps] * (len(keyframes) - 1)
    for i in keyframes:
        types = nal_types(packets[i].data)
        assert types[:2] == [NAL_SPS, NAL_PPS] and NAL_IDR in types
    pts = [p.pts_ns for p in packets]
    steps = [b - a for a, b in itertools.pairwise(pts)]
    assert all(s > 0 for s in steps)
    assert np.median(steps) == pytest.approx(VIDEO.frame_ns, rel=0.01)
    assert 0 < now - pts[-1] < NS_PER_S
    assert camera.dropped_frames == 0


@pytest.mark.pi
def test_the_usb_microphone_records_on_the_kit_clock() -> None:
    clock = MonotonicClock()
    mic = SoundDeviceMicrophone(AUDIO, clock, device=None, blocksize=480)
    blocks: list[tuple[AudioBlock, int]] = []
    lock = threading.Lock()

    def sink(block: AudioBlock) -> None:
        with lock:
            blocks.append((block, clock.now()))

    started = clock.now()
    mic.start(sink)
    time.sleep(2.0)
    mic.stop()
    assert "usb" in mic.device_name.lower()
    assert mic.overflows == 0
    assert blocks[0][1] - started < NS_PER_S // 2
    stamps = [b.t_ns for b, _ in blocks]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    for block, at in blocks:
        assert 0 < at - block.t_ns < 300 * NS_PER_MS
    # A USB microphone's crystal is within ~100 ppm; PortAudio's stamps follow it.
    assert stamp_rate([b for b, _ in blocks]) == pytest.approx(AUDIO.rate, rel=0.001)
