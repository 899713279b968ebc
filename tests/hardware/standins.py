"""Stand-ins for sounddevice and picamera2 that follow the real APIs' signatures.

Each records exactly what the adapter asked of it, so tests can check the
arguments, and behaves as the real library does where the adapter depends
on it (read from their sources: python-sounddevice 0.5, picamera2 0.3.36,
libcamera's Raspberry Pi IPA). ``test_standins_match_*`` compares the
signatures with the real libraries where they are installed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

# --- sounddevice -----------------------------------------------------------------------


class PortAudioError(Exception):
    """sounddevice.PortAudioError: args are (message, PaErrorCode[, host error info])."""


PA_INVALID_SAMPLE_RATE = -9997
PA_DEVICE_UNAVAILABLE = -9985


@dataclass(frozen=True)
class StandInDevice:
    """A PortAudio device: what query_devices reports, and the rates it records natively."""

    name: str
    max_input_channels: int
    rates: tuple[int, ...] = (48_000,)
    default_samplerate: float = 48_000.0
    busy: bool = False

    def info(self, index: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": index,
            "hostapi": 0,
            "max_input_channels": self.max_input_channels,
            "max_output_channels": 0,
            "default_low_input_latency": 0.0087,
            "default_low_output_latency": 0.0,
            "default_high_input_latency": 0.035,
            "default_high_output_latency": 0.0,
            "default_samplerate": self.default_samplerate,
        }


class StandInStream:
    """sounddevice.InputStream. ``block`` plays PortAudio's callback by hand; with
    ``realtime`` the stream delivers a 440 Hz tone at its rate from a thread of its own."""

    def __init__(self, owner: StandInSoundDevice, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.samplerate = float(kwargs["samplerate"])
        self.blocksize = int(kwargs["blocksize"])
        self.channels = int(kwargs["channels"])
        self.latency = float(kwargs["latency"]) if kwargs["latency"] is not None else 0.0087
        self.active = False
        self.closed = False
        self._owner = owner
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.active = True
        if self._owner.realtime:
            self._thread = threading.Thread(target=self._run, name="standin-portaudio")
            self._thread.start()

    def stop(self) -> None:
        # As Pa_StopStream: returns once the callback thread has finished.
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.active = False

    def close(self) -> None:
        self.stop()
        self.closed = True

    def block(self, samples: np.ndarray, age_s: float, *, overflow: bool = False) -> None:
        # On ALSA both times are CLOCK_REALTIME seconds; only their difference counts.
        now = time.time()
        time_info = SimpleNamespace(
            inputBufferAdcTime=now - age_s, currentTime=now, outputBufferDacTime=0.0
        )
        status = SimpleNamespace(input_overflow=overflow)
        self.kwargs["callback"](samples, samples.shape[0], time_info, status)

    def _run(self) -> None:
        rate, frames = self.samplerate, self.blocksize
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = start + (n + 1) * frames / rate  # the block's last sample is captured
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            t = (n * frames + np.arange(frames)) / rate
            tone = np.rint(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
            samples = np.repeat(tone[:, None], self.channels, axis=1)
            lateness = max(0.0, time.monotonic() - due)
            self.block(samples, age_s=frames / rate + lateness)
            n += 1


@dataclass
class StandInSoundDevice:
    """The sounddevice module, as far as the adapter uses it."""

    devices: list[StandInDevice]
    realtime: bool = False
    default: Any = field(default_factory=lambda: SimpleNamespace(device=[-1, -1]))
    PortAudioError: ClassVar[type[PortAudioError]] = PortAudioError
    streams: list[StandInStream] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    rescans: int = 0
    after_rescan: list[StandInDevice] | None = None  # what a re-scan finds, if it differs

    def query_devices(self, device: int | str | None = None, kind: str | None = None) -> Any:
        if device is not None or kind is not None:
            raise NotImplementedError("the adapter lists every device")
        return [d.info(i) for i, d in enumerate(self.devices)]

    def check_input_settings(
        self,
        device: int | str | None = None,
        channels: int | None = None,
        dtype: str | None = None,
        extra_settings: Any = None,
        samplerate: float | None = None,
    ) -> None:
        self.checks.append(
            {"device": device, "channels": channels, "dtype": dtype, "samplerate": samplerate}
        )
        self._check(device, channels, samplerate)

    def InputStream(  # sounddevice's class, called as a function here
        self,
        samplerate: float | None = None,
        blocksize: int | None = None,
        device: int | str | None = None,
        channels: int | None = None,
        dtype: str | None = None,
        latency: float | str | None = None,
        extra_settings: Any = None,
        callback: Callable[..., None] | None = None,
        finished_callback: Callable[[], None] | None = None,
        clip_off: bool | None = None,
        dither_off: bool | None = None,
        never_drop_input: bool | None = None,
        prime_output_buffers_using_stream_callback: bool | None = None,
    ) -> StandInStream:
        self._check(device, channels, samplerate)
        settings = {
            "samplerate": samplerate,
            "blocksize": blocksize,
            "device": device,
            "channels": channels,
            "dtype": dtype,
            "latency": latency,
            "callback": callback,
        }
        stream = self._stream(settings, finished_callback)
        self.streams.append(stream)
        return stream

    def _stream(
        self, settings: dict[str, Any], finished_callback: Callable[[], None] | None
    ) -> StandInStream:
        """The stream ``InputStream`` opens (a subclass may hand out another kind)."""
        return StandInStream(self, settings)

    def _terminate(self) -> None:
        self.rescans += 1

    def _initialize(self) -> None:
        if self.after_rescan is not None:
            self.devices = self.after_rescan

    def _check(self, device: Any, channels: int | None, samplerate: float | None) -> None:
        if not isinstance(device, int) or not 0 <= device < len(self.devices):
            raise ValueError(f"No input device matching {device!r}")
        found = self.devices[device]
        if channels is not None and channels > found.max_input_channels:
            raise PortAudioError("Invalid number of channels", -9998)
        if found.busy:
            raise PortAudioError("Device unavailable", PA_DEVICE_UNAVAILABLE)
        if samplerate is not None and round(samplerate) not in found.rates:
            # Pa_IsFormatSupported / Pa_OpenStream on an ALSA hw: device.
            raise PortAudioError("Invalid sample rate", PA_INVALID_SAMPLE_RATE)


# --- picamera2 -------------------------------------------------------------------------

# What libcamera's Raspberry Pi IPA advertises (ipa_base.cpp), as picamera2's
# camera_controls reports it: name -> (min, max, default).
COMMON_CONTROLS: dict[str, tuple[Any, Any, Any]] = {
    "FrameDurationLimits": (33_333, 120_000, 33_333),
    "NoiseReductionMode": (0, 4, 0),
    "ExposureTime": (1, 66_666, 20_000),
    "AeFlickerMode": (0, 1, 0),  # FlickerOff, FlickerManual: no FlickerAuto on the Pi
    "AeFlickerPeriod": (100, 1_000_000, None),
    "ScalerCrop": ((0, 0, 0, 0), (65535, 65535, 65535, 65535), (0, 0, 0, 0)),
}
AF_CONTROLS: dict[str, tuple[Any, Any, Any]] = {
    "AfMode": (0, 2, 0),
    "AfRange": (0, 2, 0),
    "AfSpeed": (0, 1, 0),
    "AfTrigger": (0, 1, 0),
    "LensPosition": (0.0, 15.0, 1.0),  # the IPA replaces 0..32 with the lens's own range
}

# Picamera2.sensor_modes for the Camera Modules (rpicam-hello --list-cameras on a Pi 4).
IMX219_MODES: list[dict[str, Any]] = [
    {
        "size": size,
        "bit_depth": depth,
        "fps": fps,
        "crop_limits": crop,
        "unpacked": f"SRGGB{depth}",
        "format": f"SRGGB{depth}_CSI2P" if depth == 10 else "SRGGB8",
        "exposure_limits": (75, 11_766_829, None),
    }
    for depth in (10, 8)
    for size, fps, crop in (
        ((640, 480), 103.33, (1000, 752, 1280, 960)),
        ((1640, 1232), 41.85, (0, 0, 3280, 2464)),
        ((1920, 1080), 47.57, (680, 692, 1920, 1080)),
        ((3280, 2464), 21.19, (0, 0, 3280, 2464)),
    )
]
IMX708_MODES: list[dict[str, Any]] = [
    {
        "size": size,
        "bit_depth": 10,
        "fps": fps,
        "crop_limits": crop,
        "unpacked": "SRGGB10",
        "format": "SRGGB10_CSI2P",
        "exposure_limits": (9, 77_193_582, None),
    }
    for size, fps, crop in (
        ((1536, 864), 120.13, (768, 432, 3072, 1728)),
        ((2304, 1296), 56.03, (0, 0, 4608, 2592)),
        ((4608, 2592), 14.35, (0, 0, 4608, 2592)),
    )
]


@dataclass(frozen=True)
class StandInCamera:
    """One attached camera: what global_camera_info lists, and what it can do."""

    model: str
    controls: dict[str, tuple[Any, Any, Any]]
    modes: list[dict[str, Any]]


CAMERA_MODULE_3 = StandInCamera("imx708", COMMON_CONTROLS | AF_CONTROLS, IMX708_MODES)
CAMERA_MODULE_2 = StandInCamera("imx219", dict(COMMON_CONTROLS), IMX219_MODES)
USB_CAMERA = StandInCamera("uvc", {"FrameDurationLimits": (33_333, 1_000_000, 33_333)}, [])


class StandInEncoder:
    """picamera2's encoders: H264Encoder(bitrate=None, repeat=True, iperiod=None,
    framerate=None, enable_sps_framerate=False, qp=None, profile=None), and
    MJPEGEncoder(bitrate=None). The test plays the output side."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.frame_skip_count = 1
        self.firsttimestamp: int | None = None
        self.output: Any = None
        self.name: str | None = None


class StandInH264Encoder(StandInEncoder):
    def __init__(
        self,
        bitrate: int | None = None,
        repeat: bool = True,
        iperiod: int | None = None,
        framerate: float | None = None,
        enable_sps_framerate: bool = False,
        qp: int | None = None,
        profile: str | None = None,
    ) -> None:
        given = {"bitrate": bitrate, "repeat": repeat, "iperiod": iperiod, "framerate": framerate}
        super().__init__(**given)


class StandInMJPEGEncoder(StandInEncoder):
    def __init__(self, bitrate: int | None = None) -> None:
        super().__init__(bitrate=bitrate)


class StandInOutput:
    """picamera2.outputs.Output."""

    def __init__(self, pts: Any = None) -> None:
        self.recording = False

    def outputframe(
        self,
        frame: Any,
        keyframe: bool = True,
        timestamp: int | None = None,
        packet: Any = None,
        audio: bool = False,
    ) -> None:
        raise AssertionError("the adapter must override outputframe")


@dataclass
class _Encoding:
    """An encoder the sensor feeds: its codec, frames offered, and its last stamp (us)."""

    encoder: StandInEncoder
    codec: Any
    reformatter: Any  # one per encode: VideoFrame.reformat() starts swscale threads each time
    offered: int = 0
    last_us: int = 0


class StandInSensor:
    """A running camera: a frame every period of CLOCK_MONOTONIC, handed to each
    running encoder as picamera2 hands a request to its encoders.

    What it does as picamera2 0.3.x does (``Encoder.encode``, ``_timestamp``,
    ``LibavH264Encoder``): an encoder takes every ``frame_skip_count``-th frame; its
    first frame's ``SensorTimestamp`` (ns, CLOCK_MONOTONIC) in microseconds becomes
    ``firsttimestamp`` and its outputs get microseconds since then; the H.264 one is
    libx264 (ultrafast, zerolatency, a keyframe every ``iperiod`` frames, SPS/PPS
    repeated before each), real Annex-B access units; the MJPEG one real JPEGs of the
    lores size. ``stop_encoder`` returns once the encoder's last output was delivered.
    """

    def __init__(self, fps: int, main: tuple[int, int], lores: tuple[int, int]) -> None:
        self._period_ns = 1_000_000_000 // fps
        self._fps = fps
        self._main, self._lores = main, lores
        self._lock = threading.Lock()  # held while a frame is handed to the encoders
        self._running: dict[str, _Encoding] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="standin-sensor", daemon=True)
        self._thread.start()

    def start_encoder(self, name: str, encoder: StandInEncoder) -> None:
        import av
        from av.video.reformatter import VideoReformatter

        if name == "main":
            w, h = self._main
            codec = av.CodecContext.create("libx264", "w")
            codec.pix_fmt = "yuv420p"
            iperiod = encoder.kwargs.get("iperiod") or self._fps
            options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "g": str(iperiod),
                "keyint_min": str(iperiod),
                "sc_threshold": "0",
            }
            # SPS/PPS before every keyframe only with repeat=True (libav's default
            # repeats them; picamera2's V4L2 encoder does so only when asked).
            repeat = 1 if encoder.kwargs.get("repeat") else 0
            codec.options = {**options, "x264-params": f"repeat-headers={repeat}"}
        else:
            w, h = self._lores
            codec = av.CodecContext.create("mjpeg", "w")
            codec.pix_fmt = "yuvj420p"
        codec.width, codec.height = w, h
        codec.time_base = Fraction(1, self._fps)
        with self._lock:
            encoder.firsttimestamp = None
            self._running[name] = _Encoding(encoder, codec, VideoReformatter())

    def stop_encoder(self, name: str) -> None:
        with self._lock:  # no frame is being handed over: none will be after this
            encoding = self._running.pop(name)
            for packet in encoding.codec.encode(None):
                self._deliver(encoding, packet)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import av

        n = 0
        next_ns = time.monotonic_ns()
        while not self._stop.is_set():
            delay = next_ns - time.monotonic_ns()
            if delay > 0 and self._stop.wait(delay / 1e9):
                return
            sensor_ns = next_ns  # the exposure's instant, as libcamera stamps it
            next_ns += self._period_ns
            with self._lock:
                for name, encoding in self._running.items():
                    encoding.offered += 1
                    if (encoding.offered - 1) % max(1, encoding.encoder.frame_skip_count):
                        continue
                    encoder, codec = encoding.encoder, encoding.codec
                    if encoder.firsttimestamp is None:
                        encoder.firsttimestamp = sensor_ns // 1000
                    encoding.last_us = sensor_ns // 1000 - encoder.firsttimestamp
                    plane = np.full((codec.height * 3 // 2, codec.width), 16 + n % 200, np.uint8)
                    frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
                    if name != "main":
                        frame = encoding.reformatter.reformat(frame, format="yuvj420p")
                    frame.pts = encoding.offered
                    for packet in codec.encode(frame):
                        self._deliver(encoding, packet)
            n += 1

    @staticmethod
    def _deliver(encoding: _Encoding, packet: Any) -> None:
        # zerolatency and MJPEG hold no frame back: a packet is the frame just given.
        output = encoding.encoder.output
        output.outputframe(bytes(packet), bool(packet.is_keyframe), encoding.last_us)


class StandInPicamera2:
    """picamera2.Picamera2, recording the calls the adapter makes.

    Set the class attributes to script a test: ``cameras`` attached, an exception
    for ``Picamera2()`` to raise (``fail_init``) or ``configure`` (``fail_configure``).
    With ``sensor_runs`` a started camera delivers frames itself (:class:`StandInSensor`);
    without it the test plays the encoders' output side.
    """

    cameras: ClassVar[list[StandInCamera]] = [CAMERA_MODULE_3]
    fail_init: ClassVar[BaseException | None] = None
    fail_configure: ClassVar[BaseException | None] = None
    fail_start_encoder: ClassVar[BaseException | None] = None
    sensor_runs: ClassVar[bool] = False
    instances: ClassVar[list[StandInPicamera2]] = []

    def __init__(
        self,
        camera_num: int = 0,
        verbose_console: int | None = None,
        tuning: Any = None,
        allocator: Any = None,
    ) -> None:
        if StandInPicamera2.fail_init is not None:
            raise StandInPicamera2.fail_init
        self.camera = StandInPicamera2.cameras[camera_num]
        self.created: dict[str, Any] | None = None
        self.config: dict[str, Any] = {}
        self.encoders: dict[str, StandInEncoder] = {}
        self.started = False
        self.closed = False
        self.configured_before_modes = False
        self.sensor: StandInSensor | None = None
        StandInPicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return [
            {"Model": c.model, "Id": f"/base/i2c@{i}", "Num": i}
            for i, c in enumerate(StandInPicamera2.cameras)
        ]

    @property
    def camera_controls(self) -> dict[str, tuple[Any, Any, Any]]:
        return dict(self.camera.controls)

    @property
    def sensor_modes(self) -> list[dict[str, Any]]:
        # The real property reconfigures the camera once per mode: not while it runs.
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        self.configured_before_modes = bool(self.config)
        return [dict(m) for m in self.camera.modes]

    def create_video_configuration(
        self,
        main: dict[str, Any] | None = None,
        lores: dict[str, Any] | None = None,
        raw: dict[str, Any] | None = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 6,
        controls: dict[str, Any] | None = None,
        display: str | None = "main",
        encode: str | None = "main",
        queue: bool = True,
        sensor: dict[str, Any] | None = None,
        use_case: str = "video",
    ) -> dict[str, Any]:
        given: dict[str, Any] = {"main": main, "lores": lores, "controls": controls}
        given |= {"display": display}
        given |= {"encode": encode, "sensor": sensor, "raw": raw, "buffer_count": buffer_count}
        self.created = given
        unknown = set(controls or {}) - set(self.camera.controls)
        if unknown:  # picamera2's Controls refuse what libcamera does not advertise
            raise RuntimeError(f"Control {sorted(unknown)[0]} is not advertised by libcamera")
        if sensor is not None and set(sensor) - {"bit_depth", "output_size"}:
            raise RuntimeError(f"Unexpected keys {set(sensor)} in sensor configuration")
        return dict(given)

    def configure(self, camera_config: dict[str, Any] | None = None) -> None:
        if StandInPicamera2.fail_configure is not None:
            raise StandInPicamera2.fail_configure
        self.config = camera_config or {}

    def start(self, config: Any = None, show_preview: bool | None = False) -> None:
        self.started = True
        if StandInPicamera2.sensor_runs and self.sensor is None:
            fps = round(1_000_000 / self.config["controls"]["FrameDurationLimits"][0])
            size = self.config["main"]["size"], self.config["lores"]["size"]
            self.sensor = StandInSensor(fps, *size)
            for name, encoder in self.encoders.items():
                self.sensor.start_encoder(name, encoder)

    def stop(self) -> None:
        self.started = False
        if self.sensor is not None:
            self.sensor.close()
            self.sensor = None

    def close(self) -> None:
        self.stop()
        self.closed = True

    def start_encoder(
        self,
        encoder: StandInEncoder | None = None,
        output: Any = None,
        pts: Any = None,
        quality: Any = None,
        name: str | None = None,
    ) -> None:
        if StandInPicamera2.fail_start_encoder is not None and name == "main":
            raise StandInPicamera2.fail_start_encoder
        assert encoder is not None and name is not None
        encoder.output = output
        encoder.name = name
        self.encoders[name] = encoder
        if self.sensor is not None:
            self.sensor.start_encoder(name, encoder)

    def stop_encoder(self, encoders: Any = None) -> None:
        name = next(k for k, v in self.encoders.items() if v is encoders)
        del self.encoders[name]
        if self.sensor is not None:
            self.sensor.stop_encoder(name)

    @classmethod
    def last(cls) -> StandInPicamera2:
        return cls.instances[-1]


def picamera2_modules() -> dict[str, Any]:
    """The sys.modules entries that make ``import picamera2`` (and submodules) the stand-in."""
    encoders = SimpleNamespace(H264Encoder=StandInH264Encoder, MJPEGEncoder=StandInMJPEGEncoder)
    outputs = SimpleNamespace(Output=StandInOutput)
    package = SimpleNamespace(Picamera2=StandInPicamera2, encoders=encoders, outputs=outputs)
    return {"picamera2": package, "picamera2.encoders": encoders, "picamera2.outputs": outputs}
