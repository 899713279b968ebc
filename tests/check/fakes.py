"""Fake I/O sources for the check's probes: real small classes, no mock.patch."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kit.check.board import BoardSample
from kit.check.take import TakeLog
from kit.check.timing import FrameArrival
from kit.clock import NS_PER_MS, NS_PER_S
from kit.errors import HardwareError
from kit.hardware.camera import VideoFormat, VideoPacket, VideoSink
from kit.hardware.microphone import AudioBlock, AudioFormat, AudioSink
from kit.recording.alignment import BlockTime


class FakeCamera:
    """Delivers ``frames`` packets synchronously when recording starts."""

    def __init__(
        self,
        frames: int = 30,
        *,
        fps: int = 30,
        period_ns: int | None = None,
        first_keyframe: bool = True,
        preview: bool = True,
        dropped: int = 0,
        fail_open: bool = False,
    ) -> None:
        self._format = VideoFormat(width=1280, height=720, fps=fps)
        self._frames = frames
        self._period = period_ns if period_ns is not None else self._format.frame_ns
        self._first_keyframe = first_keyframe
        self._preview = preview
        self._dropped = dropped
        self._fail_open = fail_open
        self.calls: list[str] = []

    @property
    def format(self) -> VideoFormat:
        return self._format

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    def open(self) -> None:
        self.calls.append("open")
        if self._fail_open:
            raise HardwareError("camera is busy")

    def close(self) -> None:
        self.calls.append("close")

    def start_recording(self, sink: VideoSink) -> None:
        self.calls.append("start")
        for n in range(self._frames):
            key = n == 0 and self._first_keyframe
            sink(VideoPacket(b"\0\0\0\1" + bytes(100), 5_000_000_000 + n * self._period, key))

    def stop_recording(self) -> None:
        self.calls.append("stop")

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        return (1, b"\xff\xd8\xff\xd9") if self._preview else None


class FakeMicrophone:
    """Delivers ``blocks`` blocks of a constant ``amplitude`` when started."""

    def __init__(
        self, blocks: int = 60, *, amplitude: int = 1000, overflows: int = 0, rate: int = 48_000
    ) -> None:
        self._format = AudioFormat(rate=rate, channels=1)
        self._blocks = blocks
        self._amplitude = amplitude
        self._overflows = overflows
        self.calls: list[str] = []

    @property
    def format(self) -> AudioFormat:
        return self._format

    @property
    def overflows(self) -> int:
        return self._overflows

    @property
    def level_dbfs(self) -> float:
        return -120.0

    def start(self, sink: AudioSink) -> None:
        self.calls.append("start")
        samples = np.full((480, 1), self._amplitude, dtype=np.int16)
        for n in range(self._blocks):
            sink(AudioBlock(samples, t_ns=n * 10_000_000))

    def stop(self) -> None:
        self.calls.append("stop")


Answer = subprocess.CompletedProcess[str] | BaseException


@dataclass
class FakeRunner:
    """Answers commands from a table keyed by argv; records what it was asked."""

    answers: dict[tuple[str, ...], Answer] = field(default_factory=dict)
    default: Answer = field(default_factory=lambda: FileNotFoundError("no such program"))
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float
    ) -> subprocess.CompletedProcess[str]:
        key = tuple(argv)
        self.calls.append(key)
        answer = self.answers.get(key, self.default)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def answer(
        self, argv: Sequence[str], stdout: str = "", code: int = 0, stderr: str = ""
    ) -> None:
        self.answers[tuple(argv)] = subprocess.CompletedProcess(list(argv), code, stdout, stderr)


# --- a measured take, canned --------------------------------------------------------------


def healthy_take(seconds: float = 10.0, *, fps: int = 30, rate: int = 48_000) -> TakeLog:
    """What a kit that keeps up records: every frame 40 ms after its capture (+-1 ms), the
    mic's stamps on a 0 ppm line (+-0.5 ms), 50 °C, no throttling, a third of a core."""
    t0 = 2_000 * NS_PER_S
    period = NS_PER_S // fps
    frames = tuple(
        FrameArrival(t0 + n * period, t0 + n * period + 40 * NS_PER_MS + (n % 3 - 1) * NS_PER_MS)
        for n in range(round(seconds * fps))
    )
    block = 480
    blocks = tuple(
        BlockTime(t0 + k * block * NS_PER_S // rate + (k % 2) * NS_PER_MS // 2, block)
        for k in range(round(seconds * rate / block))
    )
    wall = round(seconds * NS_PER_S)
    return TakeLog(
        seconds=seconds,
        wall_ns=wall,
        video=VideoFormat(1280, 720, fps),
        audio=AudioFormat(rate, 1),
        frames=frames,
        blocks=blocks,
        dropped_frames=0,
        mic_overflows=0,
        video_bytes=round(4_000_000 / 8 * seconds),
        cpu_ns=wall // 3,
        writer_cpu_ns=wall // 50,
        board_busy=0.25,
        cores=4,
        samples=(
            BoardSample(t0, 50.0, 0, "sysfs"),
            BoardSample(t0 + wall, 52.5, 0, "sysfs"),
        ),
        stop_ns=150 * NS_PER_MS,
        live_film="",
    )


@dataclass
class FakeHttp:
    """Answers ``GET /`` with ``status``, or raises ``error``; records where it was asked."""

    status: int = 200
    error: OSError | None = None
    asked: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, host: str, port: int, timeout_s: float) -> int:
        self.asked.append((host, port))
        if self.error is not None:
            raise self.error
        return self.status
