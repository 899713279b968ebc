"""The camera seam: H.264 packets stamped on the kit clock, plus preview JPEGs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from kit.errors import HardwareError

# H.264 NAL unit types (ITU-T H.264 table 7-1) the kit looks for.
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9


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


def nal_types(data: bytes) -> list[int]:
    """The NAL unit types in an Annex-B access unit, in order.

    The type is the low five bits of the byte after each start code; the two
    bits above it (``nal_ref_idc``) differ between encoders, so an SPS starts
    ``67`` from libx264 but ``27`` from the Pi 4's hardware encoder.
    """
    types = []
    at = data.find(b"\x00\x00\x01")
    while at >= 0 and at + 3 < len(data):
        types.append(data[at + 3] & 0x1F)
        at = data.find(b"\x00\x00\x01", at + 3)
    return types


def starts_with_sps(data: bytes) -> bool:
    """Whether an access unit begins (after any delimiter) with a sequence parameter set,
    so a decoder can start there."""
    types = [t for t in nal_types(data) if t != NAL_AUD]
    return bool(types) and types[0] == NAL_SPS


class CameraBlocked(HardwareError):
    """The kernel refuses the camera's device nodes (EPERM), and only a new process gets in.

    Under systemd, ``DeviceAllow=char-video4linux`` and the like are resolved
    to device numbers when the unit starts; a unit started before udev loaded
    the camera's drivers is left without them for its whole life. The daemon
    should exit non-zero on this error so that ``Restart=on-failure`` starts a
    process that may use the camera.
    """

    retry_by_restart: ClassVar[bool] = True

    def __init__(self, message: str, nodes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.nodes = nodes


VideoSink = Callable[[VideoPacket], None]
"""Receives packets on the camera's thread; must return quickly."""


class Camera(Protocol):
    """A camera that previews continuously and records H.264 on demand.

    ``open`` starts the sensor (and the preview); ``start_recording`` begins a
    fresh encode whose first packet is a keyframe with SPS/PPS, delivered to
    ``sink`` on a camera thread; ``stop_recording`` returns once the last
    packet has been delivered.

    A camera that fails while recording stops delivering; the recorder stops the
    take after :data:`kit.recording.recorder.CAMERA_STALL_NS` without a frame.
    ``stop_recording`` may then raise :class:`kit.errors.HardwareError` (the take
    is kept all the same), but must deliver nothing afterwards. ``close`` then
    ``open`` starts the camera afresh; ``open`` raises ``HardwareError`` while it
    is gone (a start is then refused).
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
