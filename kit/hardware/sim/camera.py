"""A simulated camera that is real software: generated frames encoded to real H.264.

Frames are paced on the kit clock like a sensor: frame ``n`` is captured at
``start + n * period`` and stamped with that instant, however late the thread
gets to it. It previews continuously (JPEG) and encodes with libx264 only
while recording, with a keyframe every second and SPS/PPS before each one,
the same packet contract as the Pi's hardware encoder, and at its bitrate:
the scene (:mod:`scene`) carries enough detail that x264's rate control
reaches the configured bitrate, held within a quarter of a second's buffer.
"""

from __future__ import annotations

import logging
import threading
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from kit.clock import NS_PER_S, Clock
from kit.errors import HardwareError, StateError
from kit.hardware.camera import VideoFormat, VideoPacket, VideoSink
from kit.hardware.sim.framecode import FrameCode
from kit.hardware.sim.pulses import SyncPulses
from kit.hardware.sim.scene import Scene

log = logging.getLogger(__name__)

# The rate control's buffer, in seconds of the bitrate. The Pi's encoder holds
# its bitrate from second to second. Measured at 720p, 4 Mbit/s over 10 s: with
# a quarter of a second x264's first second runs 8 % over and every later one
# is within 1 %; with half a second the first runs 22 % over, with a whole one 45 %.
_VBV_BUFFER_S = 0.25
# A consumer later than this loses frames. picamera2 keeps 4-6 buffers; the
# simulation allows half a second, because it shares a 2-core CI machine with
# the test suite and a frame late from that load is not the recorder's fault.
# Frames it does skip are counted as dropped, as a real camera's would be.
_MAX_LAG_FRAMES = 15
_READY_TIMEOUT_S = 10.0


class SimulatedCamera:
    """Generated frames with sync pulses and frame codes, encoded to H.264 with PyAV."""

    def __init__(
        self,
        video_format: VideoFormat,
        clock: Clock,
        pulses: SyncPulses,
        *,
        bitrate: int = 4_000_000,
        preset: str = "ultrafast",
        preview_size: tuple[int, int] = (320, 180),
        preview_fps: float = 5.0,
    ) -> None:
        self._format = video_format
        self._clock = clock
        self._pulses = pulses
        self._bitrate = bitrate
        self._preset = preset
        self._preview_size = preview_size
        self._preview_every = max(1, round(video_format.fps / max(preview_fps, 0.1)))
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._epoch = 0
        self._sink: VideoSink | None = None
        self._record_from: int | None = None
        self._stop_at: int | None = None  # the instant a stop was asked for
        self._stopped = threading.Event()
        self._ready = threading.Event()  # streaming: the epoch is set
        self._encoder: Any = None
        self._dropped = 0
        self._preview: tuple[int, bytes] | None = None
        self._preview_seq = 0
        self._error: BaseException | None = None
        w, h = video_format.width, video_format.height
        self._yuv = np.full((h * 3 // 2, w), 128, dtype=np.uint8)
        self._scene = Scene(w, h, video_format.fps)

    @property
    def format(self) -> VideoFormat:
        return self._format

    @property
    def dropped_frames(self) -> int:
        with self._lock:
            return self._dropped

    def open(self) -> None:
        """Start streaming: returns once the first frame's instant is set (as picamera2's
        ``start()`` returns with the camera running), so a recording started right after
        does not find the camera behind by its own set-up."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="sim-camera", daemon=True)
        self._thread.start()
        started = self._ready.wait(timeout=_READY_TIMEOUT_S)
        if not started or self._error is not None:
            error = self._error
            self.close()
            raise HardwareError(f"the simulated camera did not start: {error or 'timed out'}")

    def close(self) -> None:
        if self._sink is not None:
            self.stop_recording()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def start_recording(self, sink: VideoSink) -> None:
        if self._thread is None:
            raise StateError("open the camera before recording")
        with self._lock:
            if self._sink is not None:
                raise StateError("the camera is already recording")
            # The first recorded frame is one the thread cannot have begun yet,
            # so the microphone learns the pulse epoch before that instant.
            now = self._clock.now()
            n0 = (now - self._epoch) * self._format.fps // NS_PER_S + 2
            self._record_from = n0
            self._pulses.start(self._slot(n0))
            self._encoder = self._new_encoder()
            self._dropped = 0
            self._stop_at = None
            self._stopped.clear()
            self._sink = sink

    def stop_recording(self) -> None:
        with self._lock:
            if self._sink is None:
                return
            self._stop_at = self._clock.now()
        if not self._stopped.wait(timeout=10):
            raise HardwareError("the simulated camera did not finish its recording")
        self._pulses.stop()
        if self._error is not None:
            raise HardwareError(f"the simulated camera failed: {self._error}")

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        with self._lock:
            return self._preview

    def _slot(self, n: int) -> int:
        """The capture instant of frame ``n`` (exact: no rounding drift over hours)."""
        return self._epoch + n * NS_PER_S // self._format.fps

    def _new_encoder(self) -> Any:
        import av

        fmt = self._format
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = fmt.width, fmt.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, fmt.fps)
        ctx.framerate = Fraction(fmt.fps, 1)
        ctx.bit_rate = self._bitrate
        # A keyframe every second (like picamera2's iperiod = framerate), no
        # scene-cut keyframes, no B-frames, SPS/PPS repeated in-band; the
        # bitrate held by a VBV buffer, as a hardware encoder holds it.
        ctx.options = {
            "maxrate": str(self._bitrate),
            "bufsize": str(round(self._bitrate * _VBV_BUFFER_S)),
            "preset": self._preset,
            "tune": "zerolatency",
            "g": str(fmt.fps),
            "keyint_min": str(fmt.fps),
            "sc_threshold": "0",
            "bf": "0",
            "threads": "1",
        }
        return ctx

    def _run(self) -> None:
        import av

        period = self._format.frame_ns
        try:
            preview = _PreviewEncoder(self._preview_size, self._format.fps)
            # The set-up (the codecs, a first picture) can take a loaded machine over
            # half a second: frame 0 is captured after it, or the camera would start
            # that far behind and skip the frames a recording starts with.
            self._make_preview(self._render(0, self._clock.now(), 0), preview)
        except Exception as exc:
            log.exception("simulated camera failed to start")
            self._error = exc
            self._ready.set()
            return
        self._epoch = self._clock.now()
        self._ready.set()
        n = 0
        try:
            while not self._stop.is_set():
                t = self._slot(n)
                self._clock.sleep_until(t)
                if self._stop.is_set():
                    break
                late = (self._clock.now() - t) // period
                if late > _MAX_LAG_FRAMES:
                    self._skip(n, int(late))
                    n += int(late)
                    continue
                self._frame(av, n, t, preview)
                n += 1
        except Exception as exc:
            log.exception("simulated camera failed")
            self._error = exc
            with self._lock:
                self._sink = None
            self._stopped.set()

    def _skip(self, n: int, count: int) -> None:
        with self._lock:
            if self._sink is not None and self._record_from is not None:
                dropped = max(0, n + count - max(n, self._record_from))
                self._dropped += dropped
                if dropped:
                    log.warning("simulated camera fell behind: %d frames dropped", dropped)

    def _frame(self, av: Any, n: int, t: int, preview: _PreviewEncoder) -> None:
        with self._lock:
            sink, start, stop_at = self._sink, self._record_from, self._stop_at
        recording = sink is not None and start is not None and n >= start
        # A frame captured before the stop was asked for is recorded, however late this
        # thread gets to it (as a sensor's buffered frames are); the first one after ends it.
        if sink is not None and stop_at is not None and t >= stop_at:
            self._finish(sink)
            recording = False
        number = n - start if recording and start is not None else n
        luma = self._render(n, t, number)
        if recording and sink is not None:
            frame = av.VideoFrame.from_ndarray(self._yuv, format="yuv420p")
            frame.pts = n - (start or 0)
            for packet in self._encoder.encode(frame):
                sink(VideoPacket(bytes(packet), t, bool(packet.is_keyframe)))
        if n % self._preview_every == 0:
            self._make_preview(luma, preview)

    def _finish(self, sink: VideoSink) -> None:
        for packet in self._encoder.encode(None):
            # zerolatency holds no frames back; this only drains a flush marker.
            sink(VideoPacket(bytes(packet), self._clock.now(), bool(packet.is_keyframe)))
        with self._lock:
            self._sink = None
            self._record_from = None
            self._encoder = None
        self._stopped.set()

    def _render(self, n: int, t: int, number: int) -> npt.NDArray[np.uint8]:
        fmt = self._format
        luma = self._yuv[: fmt.height]
        white = self._pulses.is_white(t, fmt.frame_ns)
        self._scene.draw(luma, n, FrameCode(number=number, t_us=t // 1000), white=white)
        return luma

    def _make_preview(self, luma: npt.NDArray[np.uint8], preview: _PreviewEncoder) -> None:
        pw, ph = self._preview_size
        h, w = luma.shape
        small = luma[:: max(1, h // ph), :: max(1, w // pw)][:ph, :pw]
        plane = np.full((ph * 3 // 2, pw), 128, dtype=np.uint8)
        plane[: small.shape[0], : small.shape[1]] = small
        data = preview.encode(plane, self._preview_seq)
        with self._lock:
            self._preview_seq += 1
            self._preview = (self._preview_seq, data)


class _PreviewEncoder:
    """YUV 4:2:0 planes to JPEG, with one encoder and one converter for the camera's life
    (``VideoFrame.reformat()`` makes a converter each time, which starts and joins
    swscale's threads: 2 here, ~3 ms a preview)."""

    def __init__(self, size: tuple[int, int], fps: int) -> None:
        import av
        from av.video.reformatter import VideoReformatter

        self._encoder = av.CodecContext.create("mjpeg", "w")
        self._encoder.width, self._encoder.height = size
        self._encoder.pix_fmt = "yuvj420p"
        self._encoder.time_base = Fraction(1, fps)
        self._encoder.options = {"qscale": "6"}
        self._to_jpeg = VideoReformatter()

    def encode(self, plane: npt.NDArray[np.uint8], pts: int) -> bytes:
        import av

        frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
        picture = self._to_jpeg.reformat(frame, format="yuvj420p")
        picture.pts = pts
        return b"".join(bytes(p) for p in self._encoder.encode(picture))
