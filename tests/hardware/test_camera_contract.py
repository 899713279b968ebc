"""The Camera contract (kit.hardware.camera.Camera), checked against both implementations
that run here: the simulated camera, and the Pi adapter on the picamera2 stand-in with a
running sensor (tests/hardware/standins.py: frames on CLOCK_MONOTONIC, libx264 and MJPEG
as picamera2's libav encoders make them on a Pi 5).

What the recorder relies on: packets stamped with the frame's capture instant on the
kit clock, a frame period apart; the first packet of every recording a keyframe that
starts with its SPS, and one every second; real H.264 of the configured size; nothing
delivered after ``stop_recording`` returns; a second start refused; the preview a JPEG
of the preview size, numbered upwards; ``close`` then ``open`` works afresh. All on the
real clock, each recording about a second.
"""

from __future__ import annotations

import io
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from PIL import Image

from kit.clock import NS_PER_MS, NS_PER_S, MonotonicClock
from kit.errors import StateError
from kit.hardware.camera import Camera, VideoFormat, VideoPacket, starts_with_sps
from kit.hardware.picamera import PiCamera
from kit.hardware.sim.camera import SimulatedCamera
from kit.hardware.sim.pulses import SyncPulses
from tests.hardware.standins import CAMERA_MODULE_3, StandInPicamera2, picamera2_modules

FORMAT = VideoFormat(width=320, height=240, fps=30)
PREVIEW = (160, 120)
BITRATE = 400_000


def _simulated(clock: MonotonicClock) -> Camera:
    return SimulatedCamera(
        FORMAT, clock, SyncPulses(), bitrate=BITRATE, preview_size=PREVIEW, preview_fps=5.0
    )


def _pi(clock: MonotonicClock) -> Camera:
    return PiCamera(
        FORMAT,
        clock,
        bitrate=BITRATE,
        preview_size=PREVIEW,
        preview_fps=5.0,
        blocked_nodes=lambda: (),
    )


@pytest.fixture(params=["simulated", "picamera2"])
def camera(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Camera]:
    make: Callable[[MonotonicClock], Camera] = _simulated
    if request.param == "picamera2":
        for name, module in picamera2_modules().items():
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr(StandInPicamera2, "cameras", [CAMERA_MODULE_3])
        monkeypatch.setattr(StandInPicamera2, "sensor_runs", True)
        monkeypatch.setattr(StandInPicamera2, "instances", [])
        make = _pi
    made = make(MonotonicClock())
    yield made
    made.close()


@dataclass
class Recording:
    packets: list[VideoPacket]
    arrived_ns: list[int]  # when each packet reached the sink, on the kit clock
    after_stop: int  # packets delivered after stop_recording returned


def _record(camera: Camera, seconds: float) -> Recording:
    packets: list[VideoPacket] = []
    arrived: list[int] = []
    lock = threading.Lock()
    stopped = threading.Event()
    late = [0]

    def sink(packet: VideoPacket) -> None:
        with lock:
            if stopped.is_set():
                late[0] += 1
            packets.append(packet)
            arrived.append(time.monotonic_ns())

    camera.start_recording(sink)
    time.sleep(seconds)
    camera.stop_recording()
    with lock:
        stopped.set()
        count = len(packets)
    time.sleep(0.2)
    with lock:
        return Recording(packets[:count], arrived[:count], late[0])


def _decoded_sizes(packets: list[VideoPacket]) -> list[tuple[int, int]]:
    import av

    codec = av.CodecContext.create("h264", "r")
    sizes = []
    for packet in packets:
        for frame in codec.decode(av.Packet(packet.data)):
            sizes.append((frame.width, frame.height))
    for frame in codec.decode(None):
        sizes.append((frame.width, frame.height))
    return sizes


def _wait_preview(camera: Camera, after: int = 0, timeout_s: float = 3.0) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout_s
    while True:
        shown = camera.preview_jpeg()
        if shown is not None and shown[0] > after:
            return shown
        assert time.monotonic() < deadline, "no new preview frame"
        time.sleep(0.02)


def test_recording_before_open_is_refused(camera: Camera) -> None:
    assert camera.format == FORMAT
    with pytest.raises(StateError):
        camera.start_recording(lambda _p: None)
    camera.stop_recording()  # nothing recording: nothing to do
    camera.close()  # never opened: nothing to do


def test_the_preview_is_a_jpeg_of_the_preview_size_numbered_upwards(camera: Camera) -> None:
    assert camera.preview_jpeg() is None
    camera.open()
    seq, jpeg = _wait_preview(camera)
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG" and image.size == PREVIEW
    later, _ = _wait_preview(camera, after=seq)
    assert later > seq
    # About five a second (every sixth frame at 30 fps).
    began, first = time.monotonic(), later
    last, _ = _wait_preview(camera, after=first + 4)
    assert 0.5 <= time.monotonic() - began <= 2.0, (first, last)


def test_a_recording_is_stamped_on_the_kit_clock_a_frame_apart(camera: Camera) -> None:
    camera.open()
    took = _record(camera, 1.2)
    packets = took.packets
    assert len(packets) >= 30, len(packets)
    assert took.after_stop == 0
    stamps = [p.pts_ns for p in packets]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(abs(g - FORMAT.frame_ns) <= NS_PER_MS for g in gaps), gaps
    # Stamped at capture, delivered soon after, never before.
    for packet, arrived in zip(packets, took.arrived_ns, strict=True):
        assert 0 <= arrived - packet.pts_ns <= 500 * NS_PER_MS, (packet.pts_ns, arrived)
    assert camera.dropped_frames == 0


def test_every_recording_starts_with_a_keyframe_and_has_one_every_second(
    camera: Camera,
) -> None:
    camera.open()
    for _ in range(2):  # and again: a fresh encode each time
        packets = _record(camera, 1.3).packets
        assert packets[0].keyframe and starts_with_sps(packets[0].data)
        keys = [n for n, p in enumerate(packets) if p.keyframe]
        assert keys[:2] == [0, FORMAT.fps], keys
        assert all(starts_with_sps(packets[n].data) for n in keys)
        sizes = _decoded_sizes(packets)
        assert len(sizes) == len(packets)
        assert set(sizes) == {(FORMAT.width, FORMAT.height)}


def test_a_second_start_is_refused_and_the_first_goes_on(camera: Camera) -> None:
    camera.open()
    got: list[VideoPacket] = []
    camera.start_recording(got.append)
    with pytest.raises(StateError):
        camera.start_recording(lambda _p: None)
    time.sleep(0.3)
    camera.stop_recording()
    assert got and got[0].keyframe
    camera.stop_recording()  # a second stop does nothing


def test_close_then_open_works_afresh(camera: Camera) -> None:
    camera.open()
    camera.open()  # already open: nothing happens
    first = _record(camera, 0.4).packets
    camera.close()
    camera.close()
    camera.open()
    again = _record(camera, 0.4).packets
    assert first and again
    assert again[0].keyframe and starts_with_sps(again[0].data)
    assert again[0].pts_ns > first[-1].pts_ns
    assert abs(again[0].pts_ns - time.monotonic_ns()) < 2 * NS_PER_S


def test_closing_while_recording_delivers_nothing_after(camera: Camera) -> None:
    camera.open()
    got: list[VideoPacket] = []
    camera.start_recording(got.append)
    time.sleep(0.3)
    camera.close()
    count = len(got)
    time.sleep(0.3)
    assert len(got) == count and count > 0
