"""Fake I/O sources for the health probes: real small classes, no mock.patch."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kit.errors import HardwareError
from kit.hardware.camera import VideoFormat, VideoPacket, VideoSink
from kit.hardware.microphone import AudioBlock, AudioFormat, AudioSink


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
