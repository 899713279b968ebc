"""The camera seam: H.264 packets stamped on the kit clock, plus preview JPEGs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class VideoFormat:
    """What a camera's recording stream carries."""

    width: int
    height: int
    fps: int
    codec: str = "h264"

    @property
    def frame_ns(self) -> int:
        """The nominal frame period in nanoseconds."""
        return round(1_000_000_000 / self.fps)


@dataclass(frozen=True)
class VideoPacket:
    """One encoded frame: Annex-B H.264 (SPS/PPS repeated before each keyframe).

    ``pts_ns`` is the frame's capture instant on the kit clock (the sensor
    timestamp), not the time it was delivered.
    """

    data: bytes
    pts_ns: int
    keyframe: bool


VideoSink = Callable[[VideoPacket], None]
"""Receives packets on the camera's thread; must return quickly."""


class Camera(Protocol):
    """A camera that previews continuously and records H.264 on demand.

    ``open`` starts the sensor (and the preview); ``start_recording`` begins a
    fresh encode whose first packet is a keyframe with SPS/PPS, delivered to
    ``sink`` on a camera thread; ``stop_recording`` returns once the last
    packet has been delivered.
    """

    @property
    def format(self) -> VideoFormat: ...

    @property
    def dropped_frames(self) -> int:
        """Frames the camera could not deliver while recording (target: 0)."""
        ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def start_recording(self, sink: VideoSink) -> None: ...

    def stop_recording(self) -> None: ...

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        """The newest preview frame as ``(sequence, JPEG bytes)``, or None before the first."""
        ...
