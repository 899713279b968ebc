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

Set up for a living room (``camera.focus``, ``camera.mains_hz``,
``camera.full_field``), each only where the camera advertises it:

* Focus: libcamera leaves a Camera Module 3's lens at its default position
  (about 1 m). ``AfMode`` continuous keeps it on the family; a fixed
  distance is ``AfMode`` manual plus ``LensPosition`` in dioptres (1 / metres,
  clamped to the lens's range). The values are libcamera's enums
  (``control_ids_core.yaml``: AfModeManual 0, AfModeContinuous 2); its Python
  binding takes plain ints for int32 controls. picamera2 refuses a control the
  camera does not advertise, hence the ``camera_controls`` checks.
* Flicker: ``AeFlickerMode`` FlickerManual (1) with ``AeFlickerPeriod`` half
  the mains period (10000 us at 50 Hz, 8333 at 60 Hz). The Pi's IPA offers
  FlickerOff and FlickerManual only, no FlickerAuto.
* Field of view: picamera2 lets libcamera pick the sensor mode closest to the
  output size, which on a Camera Module 2 at 720p is a 1920x1080 centre crop.
  :func:`choose_sensor_mode` picks, from ``Picamera2.sensor_modes``, the mode
  that shows the most of the scene at the configured rate, and passes it as
  ``sensor={"output_size", "bit_depth"}`` (the Bookworm API; picamera2 turns it
  into libcamera's SensorConfiguration). Reading ``sensor_modes`` configures
  the camera once per mode, so it is read once, before ``configure``.

The camera's device nodes refused with EPERM (not EACCES: file permissions)
mean a device cgroup (systemd's ``DeviceAllow=``) left them out, which only a
new process can fix: :class:`~kit.hardware.camera.CameraBlocked`. libcamera
skips a media device it cannot open, so this often shows as "no cameras",
and an EPERM in an exception may also come from the unit's system call
filter; so on any failure the adapter opens the device nodes itself
(:func:`blocked_camera_nodes`), and only that decides.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kit.clock import Clock
from kit.errors import DeviceNotFound, HardwareError, StateError
from kit.hardware.camera import CameraBlocked, VideoFormat, VideoPacket, VideoSink

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


# libcamera's enum values (control_ids_core.yaml).
AF_MODE_MANUAL = 0
AF_MODE_CONTINUOUS = 2
FLICKER_MANUAL = 1

ControlLimits = Mapping[str, tuple[Any, Any, Any]]
"""picamera2's ``camera_controls``: control name to (min, max, default)."""


def room_controls(available: ControlLimits, focus_m: float | None, mains_hz: int) -> dict[str, Any]:
    """The focus and flicker controls for a room, limited to what the camera advertises.

    ``focus_m`` None is continuous autofocus, else a fixed distance in metres;
    ``mains_hz`` 0 leaves flicker avoidance as libcamera starts it (off).
    """
    controls: dict[str, Any] = {}
    if "AfMode" in available:
        if focus_m is None:
            controls["AfMode"] = AF_MODE_CONTINUOUS
        elif "LensPosition" in available:
            low, high, _ = available["LensPosition"]
            dioptres = 1.0 / focus_m
            if isinstance(low, int | float) and isinstance(high, int | float):
                dioptres = min(max(dioptres, float(low)), float(high))
            controls["AfMode"] = AF_MODE_MANUAL
            controls["LensPosition"] = dioptres
    if mains_hz and "AeFlickerPeriod" in available and "AeFlickerMode" in available:
        low, high, _ = available["AeFlickerMode"]
        if not (isinstance(low, int) and isinstance(high, int)) or low <= FLICKER_MANUAL <= high:
            controls["AeFlickerMode"] = FLICKER_MANUAL
            # Lights flicker at twice the mains frequency.
            controls["AeFlickerPeriod"] = round(1_000_000 / (2 * mains_hz))
    return controls


# Modes whose fields of view are within this of the widest count as equally wide:
# crop limits differ by a few rows between modes that all use the whole sensor.
_SAME_FIELD = 0.98


def visible_area(crop_limits: Sequence[int], aspect: float) -> float:
    """Sensor pixels an output of ``aspect`` (width / height) shows from a mode's crop limits.

    The ISP crops the mode's field to the output's aspect ratio, so a 4:3 mode
    shows its full width at 16:9, and a 16:9 crop mode only what it reads out.
    """
    width, height = float(crop_limits[2]), float(crop_limits[3])
    return min(width, height * aspect) * min(height, width / aspect)


def choose_sensor_mode(
    modes: Sequence[Mapping[str, Any]], size: tuple[int, int], fps: float
) -> Mapping[str, Any] | None:
    """The sensor mode that shows most of the scene at ``fps`` for an output of ``size``.

    ``modes`` are picamera2's ``sensor_modes`` (``size``, ``bit_depth``,
    ``fps``, ``crop_limits`` as (x, y, width, height) on the sensor). Of the
    modes fast enough and within 2 % of the widest view, the smallest that
    needs no upscaling wins (else the largest), then the deepest bits. None
    when no mode qualifies (a USB camera lists no raw modes).
    """
    width, height = size
    aspect = width / height
    usable = [
        m
        for m in modes
        if {"size", "bit_depth", "fps", "crop_limits"} <= m.keys()
        and float(m["fps"]) >= fps - 0.01  # picamera2 rounds a mode's fps to 2 places
    ]
    if not usable:
        return None
    widest = max(visible_area(m["crop_limits"], aspect) for m in usable)
    wide = [m for m in usable if visible_area(m["crop_limits"], aspect) >= _SAME_FIELD * widest]

    def preference(mode: Mapping[str, Any]) -> tuple[bool, int, int]:
        mode_w, mode_h = mode["size"]
        enough = mode_w >= width and mode_h >= height
        area = mode_w * mode_h
        return (not enough, area if enough else -area, -int(mode["bit_depth"]))

    return min(wide, key=preference)


_EPERM_TEXT = os.strerror(errno.EPERM)  # how libcamera's binding words -EPERM
CAMERA_NODES = ("media*", "video*", "v4l-subdev*", "dma_heap/*")


def refused_by_kernel(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it came from is EPERM (picamera2 re-raises with causes)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.EPERM:
            return True
        if _EPERM_TEXT in str(current):  # RuntimeError("Failed to acquire camera: ...")
            return True
        current = current.__cause__ or current.__context__
    return False


def _open_and_close(path: str) -> None:
    os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))


def blocked_camera_nodes(
    dev: Path = Path("/dev"), try_open: Callable[[str], None] = _open_and_close
) -> tuple[str, ...]:
    """The camera's device nodes (media, V4L2, DMA heaps) the kernel refuses with EPERM.

    Opening one read-only and closing it again touches no hardware setting.
    EACCES (file permissions: the user is not in ``video``) is not counted:
    a restart does not cure it.
    """
    blocked = []
    for pattern in CAMERA_NODES:
        for path in sorted(dev.glob(pattern)):
            try:
                try_open(str(path))
            except OSError as exc:
                if exc.errno == errno.EPERM:
                    blocked.append(str(path))
    return tuple(blocked)


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


def _blocked_message(what: str, nodes: tuple[str, ...]) -> str:
    where = ", ".join(nodes) if nodes else "a camera device"
    return (
        f"{what}: the kernel refuses {where} ({_EPERM_TEXT}). The service started "
        "before the camera's drivers loaded, so systemd's DeviceAllow= does not cover "
        "them; a restart of the service fixes it"
    )


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
        focus_m: float | None = None,
        mains_hz: int = 50,
        full_field: bool = True,
        blocked_nodes: Callable[[], tuple[str, ...]] = blocked_camera_nodes,
    ) -> None:
        """``focus_m`` None focuses continuously; ``blocked_nodes`` finds devices refused
        with EPERM (a stand-in in tests)."""
        self._format = video_format
        self._focus_m = focus_m
        self._mains_hz = mains_hz
        self._full_field = full_field
        self._blocked_nodes = blocked_nodes
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
            raise self._failure("libcamera could not list cameras", exc) from exc
        if len(cameras) <= self._camera_num:
            nodes = self._blocked_nodes()
            if nodes:
                raise CameraBlocked(_blocked_message("libcamera found no camera", nodes), nodes)
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
            sensor = self._sensor(picam) if self._full_field else None
            room = room_controls(picam.camera_controls, self._focus_m, self._mains_hz)
            # Fixed frame duration: exposure may not stretch a frame, so
            # frames come at exactly the nominal rate.
            controls = {"FrameDurationLimits": (frame_us, frame_us), **room}
            options: dict[str, Any] = {"sensor": sensor} if sensor else {}
            config = picam.create_video_configuration(
                main={"size": (fmt.width, fmt.height), "format": "YUV420"},
                lores={"size": self._preview_size, "format": "YUV420"},
                controls=controls,
                encode="main",
                display=None,
                **options,
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
            raise self._failure("the camera would not start", exc) from exc
        self._pc = pc
        self._picam = picam
        self._preview_encoder = preview
        log.info(
            "camera %s: %dx%d at %d fps from sensor mode %s, %s, preview %s every %d frames",
            cameras[self._camera_num].get("Model", "?"),
            fmt.width,
            fmt.height,
            fmt.fps,
            sensor or "chosen by libcamera",
            room or "no focus or flicker controls",
            self._preview_size,
            self._preview_every,
        )

    def _sensor(self, picam: Any) -> dict[str, Any] | None:
        """picamera2's ``sensor`` configuration for the widest view at our rate, or None."""
        fmt = self._format
        try:
            modes = list(picam.sensor_modes)
        except Exception as exc:
            if refused_by_kernel(exc):
                raise
            log.warning("cannot list the sensor modes (%s): libcamera picks one", exc)
            return None
        mode = choose_sensor_mode(modes, (fmt.width, fmt.height), fmt.fps)
        if mode is None:
            log.info("no raw sensor mode reaches %d fps: libcamera picks one", fmt.fps)
            return None
        return {"output_size": tuple(mode["size"]), "bit_depth": int(mode["bit_depth"])}

    def _failure(self, what: str, exc: BaseException) -> HardwareError:
        """The error for a failure: CameraBlocked when the kernel refuses the devices.

        Only the device probe decides: an EPERM whose devices do open is not
        a device cgroup but (say) the unit's system call filter, which a
        restart would only repeat, every few seconds, for ever.
        """
        nodes = self._blocked_nodes()
        if nodes:
            return CameraBlocked(_blocked_message(f"{what} ({exc})", nodes), nodes)
        if refused_by_kernel(exc):
            return HardwareError(
                f"{what}: {exc}; the camera's devices open, so something else refuses: "
                "a system call outside the service's SystemCallFilter=?"
            )
        return HardwareError(f"{what}: {exc}")

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
            raise self._failure("the H.264 encoder would not start", exc) from exc
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
