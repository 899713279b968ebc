"""Build the camera and microphone from the config: the Pi's, or simulated ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kit.clock import NS_PER_MS, Clock
from kit.config import Config, focus_distance_m
from kit.hardware.camera import Camera, VideoFormat
from kit.hardware.microphone import AudioFormat, Microphone
from kit.hardware.sim.pulses import SyncPulses


@dataclass(frozen=True)
class Hardware:
    """The capture devices one kit owns."""

    camera: Camera
    microphone: Microphone
    simulated: bool


def video_format(config: Config) -> VideoFormat:
    cam = config.camera
    return VideoFormat(width=cam.width, height=cam.height, fps=cam.fps)


def audio_format(config: Config) -> AudioFormat:
    return AudioFormat(rate=config.audio.rate, channels=config.audio.channels)


def simulated_hardware(config: Config, clock: Clock) -> Hardware:
    """A camera and microphone that are real software, sharing the sync pulses."""
    from kit.hardware.sim.camera import SimulatedCamera
    from kit.hardware.sim.microphone import SimulatedMicrophone

    pulses = SyncPulses()
    cam, sim = config.camera, config.sim
    camera = SimulatedCamera(
        video_format(config),
        clock,
        pulses,
        bitrate=cam.bitrate,
        preset=sim.x264_preset,
        preview_size=(cam.preview_width, cam.preview_height),
        preview_fps=cam.preview_fps,
    )
    microphone = SimulatedMicrophone(
        audio_format(config),
        clock,
        pulses,
        skew_ppm=sim.mic_skew_ppm,
        latency_ns=round(sim.mic_latency_ms * NS_PER_MS),
        jitter_ns=round(sim.mic_timestamp_jitter_ms * NS_PER_MS),
        blocksize=config.audio.blocksize,
    )
    return Hardware(camera=camera, microphone=microphone, simulated=True)


def pi_hardware(config: Config, clock: Clock) -> Hardware:
    """The Pi camera module and the USB microphone (imports picamera2 and sounddevice)."""
    from kit.hardware.picamera import PiCamera
    from kit.hardware.soundcard import SoundDeviceMicrophone

    cam = config.camera
    camera = PiCamera(
        video_format(config),
        clock,
        bitrate=cam.bitrate,
        preview_size=(cam.preview_width, cam.preview_height),
        preview_fps=cam.preview_fps,
        focus_m=focus_distance_m(cam.focus),
        mains_hz=cam.mains_hz,
        full_field=cam.full_field,
    )
    microphone = SoundDeviceMicrophone(
        audio_format(config),
        clock,
        device=config.audio.device or None,
        blocksize=config.audio.blocksize,
    )
    return Hardware(camera=camera, microphone=microphone, simulated=False)


DEVICE_MODEL = Path("/proc/device-tree/model")


def is_raspberry_pi(model: Path = DEVICE_MODEL) -> bool:
    """Whether this machine is a Raspberry Pi (by its device-tree ``model``)."""
    try:
        return "raspberry pi" in model.read_text(encoding="ascii", errors="replace").lower()
    except OSError:
        return False
