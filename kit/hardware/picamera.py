"""The Raspberry Pi camera module through picamera2: H.264 packets on the sensor's clock.

One video configuration carries two streams: ``main`` (YUV420 at the
recording size) goes to an H.264 encoder only while recording, ``lores``
(YUV420 at the preview size) goes to an MJPEG encoder all the time, a few
frames a second, for the phone's preview.

What this relies on in picamera2's source (``picamera2/encoders``, 0.3.x):

* ``Encoder._timestamp`` turns the request's ``SensorTimestamp`` (libcamera,
  ns, CLOCK_MONOTONIC on the Pi) into ``int(ns / 1000) - firsttimestamp``:
  outputs receive **microseconds since the encode's first frame**, and the
  raw first value (us) stays in ``encoder.firsttimestamp``. The V4L2 encoder
  carries it through the buffer's timeval, the libav one as ``packet.pts``
  with a 1/1000000 time base: the same unit either way. So the kit-clock
  instant is ``(firsttimestamp + timestamp) * 1000`` (exact to the
  microsecond). A fresh encoder per recording keeps this right on releases
  before 0.3.23, which did not reset ``firsttimestamp`` in ``start()``.
* ``picamera2.encoders.H264Encoder`` *is* ``LibavH264Encoder`` (libx264,
  ultrafast, zerolatency) on platforms without the VC4 hardware encoder,
  i.e. the Pi 5; on a Pi 4 it is the V4L2 hardware one. ``MJPEGEncoder`` is
  swapped for ``LibavMjpegEncoder`` the same way.
* ``Encoder.frame_skip_count`` (0.3.19+) makes an encoder take every n-th
  frame: the preview's rate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kit.clock import Clock
from kit.errors import DeviceNotFound, HardwareError, StateError
from kit.hardware.camera import VideoFormat, VideoPacket, VideoSink

log = logging.getLogger(__name__)

# The first packet's stamp further than this from the kit clock means the
# sensor timestamps are not on CLOCK_MONOTONIC: worth a loud warning.
_CLOCK_MISMATCH_NS = 5_000_000_000


class FrameGaps:
    """Counts frames lost between packets, from gaps in their sensor timestamps.

    libcamera drops a frame when no buffer is free (the encoder or our
    consumer fell behind); what we see is a hole in the sensor timestamps.
    A gap longer than 1.5 frame periods counts as ``round(gap / period) - 1``
    lost frames. Frames lost after the last packet are not seen.
    """

    def __init__(self, frame_ns: int) -> None:
        self._frame_ns = frame_ns
        self._last: int | None = None
        self.dropped = 0

    def add(self, pts_ns: int) -> int:
        """Note the next packet's instant; return how many frames were lost just before it."""
        last, self._last = self._last, pts_ns
        if last is None:
            return 0
        gap = pts_ns - last
        if gap <= self._frame_ns * 3 // 2:
            return 0
        lost = round(gap / self._frame_ns) - 1
        self.dropped += lost
        return lost


def sensor_instant_ns(first_us: int, relative_us: int) -> int:
    """The kit-clock instant of a frame from picamera2's encoder timestamps (see module doc)."""
    return (first_us + relative_us) * 1000


def _picamera2() -> Any:
    """The picamera2 package, or DeviceNotFound when it cannot be imported."""
    try:
        import picamera2
        import picamera2.encoders
        import picamera2.outputs
    except ImportError as exc:
        raise DeviceNotFound(
            "the Pi camera needs picamera2 (apt install python3-picamera2, and a venv made "
            f"with --system-site-packages): {exc}"
        ) from exc
    return picamera2


def _make_output(base: Any, deliver: Callable[[bytes, bool, int | None], None]) -> Any:
    """A picamera2 ``Output`` that hands each encoded frame to ``deliver``."""

    class _Forward(base):  # type: ignore[misc]  # picamera2 is untyped
        def outputframe(
            self,
            frame: Any,
            keyframe: bool = True,
            timestamp: int | None = None,
            packet: Any = None,
            audio: bool = False,
        ) -> None:
            if audio or frame is None:
                return
            deliver(bytes(frame), bool(keyframe), timestamp)

    return _Forward()


class PiCamera:
    """The camera module: H.264 with a keyframe (and SPS/PPS) every second, plus a JPEG preview."""

    def __init__(
        self,
        video_format: VideoFormat,
        clock: Clock,
        *,
        bitrate: int,
        preview_size: tuple[int, int],
        preview_fps: float,
        camera_num: int = 0,
    ) -> None:
        self._format = video_format
        self._clock = clock
        self._bitrate = bitrate
        self._preview_size = preview_size
        self._preview_every = max(1, round(video_format.fps / max(preview_fps, 0.1)))
        self._camera_num = camera_num
        self._lock = threading.Lock()
        self._pc: Any = None
        self._picam: Any = None
        self._preview_encoder: Any = None
        self._encoder: Any = None
        self._sink: VideoSink | None = None
        self._gaps = FrameGaps(video_format.frame_ns)
        self._preview: tuple[int, bytes] | None = None
        self._preview_seq = 0
        self._checked_clock = False

    @property
    def format(self) -> VideoFormat:
        return self._format

    @property
    def dropped_frames(self) -> int:
        with self._lock:
            return self._gaps.dropped

    def open(self) -> None:
        if self._picam is not None:
            return
        pc = _picamera2()
        try:
            cameras = pc.Picamera2.global_camera_info()
        except Exception as exc:
            raise HardwareError(f"libcamera could not list cameras: {exc}") from exc
        if len(cameras) <= self._camera_num:
            raise DeviceNotFound(
                f"no camera {self._camera_num}: libcamera found {len(cameras)} "
                f"({cameras}); check the ribbon cable and camera_auto_detect=1 "
                "in /boot/firmware/config.txt"
            )
        fmt = self._format
        frame_us = round(1_000_000 / fmt.fps)
        picam: Any = None
        try:
            picam = pc.Picamera2(self._camera_num)
            config = picam.create_video_configuration(
                main={"size": (fmt.width, fmt.height), "format": "YUV420"},
                lores={"size": self._preview_size, "format": "YUV420"},
                # Fixed frame duration: exposure may not stretch a frame, so
                # frames come at exactly the nominal rate.
                controls={"FrameDurationLimits": (frame_us, frame_us)},
                encode="main",
                display=None,
            )
            picam.configure(config)
            picam.start()
            preview = pc.encoders.MJPEGEncoder()
            preview.frame_skip_count = self._preview_every
            picam.start_encoder(
                preview, _make_output(pc.outputs.Output, self._on_jpeg), name="lores"
            )
        except Exception as exc:
            if picam is not None:
                picam.close()
            raise HardwareError(f"the camera would not start: {exc}") from exc
        self._pc = pc
        self._picam = picam
        self._preview_encoder = preview
        log.info(
            "camera %s: %dx%d at %d fps, preview %s every %d frames",
            cameras[self._camera_num].get("Model", "?"),
            fmt.width,
            fmt.height,
            fmt.fps,
            self._preview_size,
            self._preview_every,
        )

    def close(self) -> None:
        picam = self._picam
        if picam is None:
            return
        try:
            self.stop_recording()
            if self._preview_encoder is not None:
                picam.stop_encoder(self._preview_encoder)
            picam.stop()
        finally:
            self._picam = None
            self._preview_encoder = None
            picam.close()

    def start_recording(self, sink: VideoSink) -> None:
        picam = self._picam
        if picam is None:
            raise StateError("open the camera before recording")
        with self._lock:
            if self._sink is not None:
                raise StateError("the camera is already recording")
        pc = self._pc
        fps = self._format.fps
        # repeat=True puts SPS/PPS before every keyframe, iperiod=fps makes one
        # every second: any second of a take can be cut or recovered alone.
        encoder = pc.encoders.H264Encoder(
            bitrate=self._bitrate, repeat=True, iperiod=fps, framerate=fps
        )
        with self._lock:
            self._gaps = FrameGaps(self._format.frame_ns)
            self._checked_clock = False
            self._encoder = encoder
            self._sink = sink
        try:
            picam.start_encoder(
                encoder, _make_output(pc.outputs.Output, self._on_h264), name="main"
            )
        except Exception as exc:
            with self._lock:
                self._sink = None
                self._encoder = None
            raise HardwareError(f"the H.264 encoder would not start: {exc}") from exc
        log.info("recording with %s at %d bit/s", type(encoder).__name__, self._bitrate)

    def stop_recording(self) -> None:
        encoder = self._encoder
        if encoder is None or self._picam is None:
            return
        try:
            # Returns after the encoder has drained: its last packet is delivered.
            self._picam.stop_encoder(encoder)
        except Exception as exc:
            raise HardwareError(f"the H.264 encoder did not stop cleanly: {exc}") from exc
        finally:
            with self._lock:
                self._sink = None
                self._encoder = None
        if self.dropped_frames:
            log.warning("camera lost %d frames while recording", self.dropped_frames)

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        with self._lock:
            return self._preview

    def _on_h264(self, data: bytes, keyframe: bool, timestamp_us: int | None) -> None:
        # On the encoder's thread (V4L2 poll thread, or the camera thread for libav).
        with self._lock:
            sink, encoder = self._sink, self._encoder
            if sink is None or encoder is None or timestamp_us is None:
                return
            pts = sensor_instant_ns(int(encoder.firsttimestamp), timestamp_us)
            lost = self._gaps.add(pts)
            check = not self._checked_clock
            self._checked_clock = True
        if lost:
            log.warning("camera lost %d frames before %d", lost, pts)
        if check and abs(self._clock.now() - pts) > _CLOCK_MISMATCH_NS:
            log.warning("sensor timestamps are not on the kit clock (first frame at %d)", pts)
        sink(VideoPacket(data, pts, keyframe))

    def _on_jpeg(self, data: bytes, keyframe: bool, timestamp_us: int | None) -> None:
        with self._lock:
            self._preview_seq += 1
            self._preview = (self._preview_seq, data)
