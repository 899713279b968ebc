"""Fixtures for the hardware adapters: a PulseAudio null sink, stand-ins, and the Pi gate.

The null sink lets CI drive the real sounddevice adapter on a machine with no
sound card: PortAudio's ALSA ``pulse`` device records the sink's monitor, and
``paplay`` plays test signals into the sink.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

from kit.clock import NS_PER_S
from kit.hardware.factory import is_raspberry_pi
from kit.hardware.microphone import AudioBlock
from tests.hardware.standins import (
    CAMERA_MODULE_3,
    StandInDevice,
    StandInPicamera2,
    StandInSoundDevice,
    picamera2_modules,
)

SINK = "vsink"
RATE = 48_000
_TOOLS = ("pulseaudio", "pactl", "pacat", "paplay")


@dataclass(frozen=True)
class PulseNullSink:
    """A running PulseAudio null sink whose monitor is the default source."""

    sink: str
    device: str  # the PortAudio device that records the monitor
    rate: int

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        """Start playing ``wav`` into the sink."""
        return subprocess.Popen(["paplay", "-d", self.sink, str(wav)])


def must_have(reason: str) -> NoReturn:
    """Skip for lack of ``reason``'s tooling, except in CI, which must run these paths."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI must exercise this path, but {reason}")
    pytest.skip(reason)


def _pactl(*args: str) -> str:
    done = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout


def _running() -> bool:
    return subprocess.run(["pulseaudio", "--check"], check=False, timeout=10).returncode == 0


def _wait_for(condition: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"PulseAudio: {condition} did not happen within {timeout} s")


def _sink_ready() -> bool:
    """The null sink is RUNNING and renders in short blocks (its pending render < 0.1 s)."""
    for section in _pactl("list", "sinks").split("Sink #")[1:]:
        if f"Name: {SINK}\n" not in section:
            continue
        latency = re.search(r"Latency: (\d+) usec", section)
        return "State: RUNNING" in section and latency is not None and int(latency[1]) < 100_000
    return False


def _rescan_portaudio() -> bool:
    """Make PortAudio see the ``pulse`` device; False if it does not exist."""
    fresh = "sounddevice" not in sys.modules
    try:
        import sounddevice as sd
    except OSError as exc:  # the PortAudio library itself is missing
        must_have(f"PortAudio is not installed (apt install libportaudio2): {exc}")
    if not fresh:
        # PortAudio lists devices once; a re-init picks up the new server.
        sd._terminate()
        sd._initialize()
    return any(d["name"] == "pulse" and d["max_input_channels"] > 0 for d in sd.query_devices())


@pytest.fixture(scope="session")
def pulse_null_sink() -> Iterator[PulseNullSink]:
    """PulseAudio with a null sink kept running by a silent stream, torn down afterwards.

    As root, ``pulseaudio`` only warns that it is not meant to run as root
    (checked with PulseAudio 16.1); ``--system`` is not needed and would
    change where clients look for the server.
    """
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        must_have(f"{', '.join(missing)} not installed (apt install pulseaudio pulseaudio-utils)")
    started = False
    module: str | None = None
    if not _running():
        subprocess.run(
            [
                "pulseaudio",
                "-D",
                "-n",
                "--exit-idle-time=-1",
                "-L",
                f"module-null-sink sink_name={SINK}",
                "-L",
                "module-native-protocol-unix",
            ],
            check=True,
            timeout=30,
        )
        started = True
        _wait_for("server start", _running)
    elif SINK not in _pactl("list", "short", "sinks"):
        module = _pactl("load-module", "module-null-sink", f"sink_name={SINK}").strip()
    # The silent stream keeps the sink RUNNING, so its monitor delivers in
    # real time. Its 20 ms latency matters: with pacat's default (~2 s) the
    # null sink renders in ~2 s chunks and recorded blocks arrive in bursts,
    # the first 1.3-1.8 s late (measured here). Even then, an idle null sink
    # finishes the 2 s render it had started before switching to short ones,
    # so wait for its reported latency to drop (it does ~2 s after pacat).
    with Path("/dev/zero").open("rb") as zero:
        feeder = subprocess.Popen(
            [
                "pacat",
                "-p",
                "-d",
                SINK,
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "--latency-msec=20",
            ],
            stdin=zero,
        )
    try:
        _wait_for("the null sink running in short blocks", _sink_ready)
        _pactl("set-default-source", f"{SINK}.monitor")
        if not _rescan_portaudio():
            must_have("PortAudio has no 'pulse' device (apt install libasound2-plugins)")
        yield PulseNullSink(sink=SINK, device="pulse", rate=RATE)
    finally:
        feeder.terminate()
        feeder.wait(timeout=10)
        if module is not None:
            _pactl("unload-module", module)
        if started:
            subprocess.run(["pulseaudio", "--kill"], check=False, timeout=30)


@pytest.fixture
def standin_sd(monkeypatch: pytest.MonkeyPatch) -> StandInSoundDevice:
    """``import sounddevice`` gives a stand-in with ALSA's default device and a 48 kHz USB mic."""
    sd = StandInSoundDevice(
        devices=[
            StandInDevice("default", 2, rates=(16_000, 44_100, 48_000), default_samplerate=44_100),
            StandInDevice("USB Mic: Audio (hw:1,0)", 1, rates=(48_000,)),
        ]
    )
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    return sd


@pytest.fixture
def standin_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[StandInPicamera2]:
    """``import picamera2`` gives the stand-in, with a Camera Module 3 attached."""
    for name, module in picamera2_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(StandInPicamera2, "cameras", [CAMERA_MODULE_3])
    monkeypatch.setattr(StandInPicamera2, "fail_init", None)
    monkeypatch.setattr(StandInPicamera2, "fail_configure", None)
    monkeypatch.setattr(StandInPicamera2, "fail_start_encoder", None)
    monkeypatch.setattr(StandInPicamera2, "instances", [])
    return StandInPicamera2


def stamp_rate(blocks: Sequence[AudioBlock]) -> float:
    """Samples per second implied by the blocks' stamps (a least-squares line).

    A fit over every block, rather than first and last, is not thrown by one
    callback that waited for the GIL.
    """
    starts = np.cumsum([0] + [b.frames for b in blocks[:-1]])
    stamps = np.array([b.t_ns for b in blocks], dtype=np.float64)
    ns_per_frame = np.polyfit(starts, stamps - stamps[0], 1)[0]
    return float(NS_PER_S / ns_per_frame)


def pi_camera_available() -> bool:
    """Whether this is a Raspberry Pi with picamera2 importable."""
    return is_raspberry_pi() and importlib.util.find_spec("picamera2") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if pi_camera_available():
        return
    skip = pytest.mark.skip(reason="needs a Raspberry Pi with picamera2 (run by `kit check`)")
    here = Path(__file__).parent
    for item in items:
        # Hooks here see the whole session; gate only this directory's tests.
        if item.get_closest_marker("pi") is not None and item.path.is_relative_to(here):
            item.add_marker(skip)
