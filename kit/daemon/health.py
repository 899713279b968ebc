"""Health probes: one small function per thing that can be wrong with a kit.

Each probe takes its I/O source as a parameter (a device factory, a path, a
command runner) and returns a :class:`CheckItem`, so tests run every probe on
any machine with fake files and a fake runner. ``kit check``
(:mod:`kit.check`) wires them to the real system; the daemon may reuse the
cheap ones (temperature, throttling, free space) for its status.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kit.daemon.storage import StorageGuard, free_bytes
from kit.errors import KitError
from kit.hardware.camera import Camera, VideoPacket
from kit.hardware.microphone import AudioBlock, Microphone, peak_dbfs

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
MIB = 1024 * 1024

BUSY_HINT = "if the kit service is running it holds the device: sudo systemctl stop kit"


class Level(StrEnum):
    """How an item came out."""

    OK = "OK"
    WARN = "WARN"  # works, but a person should know (and maybe act)
    FAIL = "FAIL"  # the kit cannot film properly until this is fixed
    SKIP = "SKIP"  # cannot be tested on this machine


@dataclass(frozen=True)
class CheckItem:
    """One line of the report: what was checked, how it came out, what to do."""

    name: str
    level: Level
    value: str
    hint: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.level),
            "value": self.value,
            "hint": self.hint,
            "data": dict(self.data),
        }


class Runner(Protocol):
    """Runs a command given as an argv list and returns its output (never a shell)."""

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float
    ) -> subprocess.CompletedProcess[str]: ...


def run_command(argv: Sequence[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """The real :class:`Runner`: ``subprocess.run`` capturing text, never raising on exit codes.

    Raises ``FileNotFoundError`` when the program is missing and
    ``subprocess.TimeoutExpired`` when it overruns; the probes handle both.
    """
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
    )


# --- capture devices ----------------------------------------------------------------------

Finding = tuple[Level, str, str]
"""A problem a probe found: its level, a few words for the value, a hint."""


def _verdict(name: str, value: str, findings: list[Finding], data: dict[str, Any]) -> CheckItem:
    """One item from all findings: the worst level, every finding's words and hints."""
    if not findings:
        return CheckItem(name, Level.OK, value, "", data)
    order = [Level.OK, Level.SKIP, Level.WARN, Level.FAIL]
    level = max((f[0] for f in findings), key=order.index)
    words = ", ".join(f[1] for f in findings if f[1])
    hints = "; ".join(dict.fromkeys(f[2] for f in findings if f[2]))
    return CheckItem(name, level, f"{value}, {words}" if words else value, hints, data)


def probe_camera(get_camera: Callable[[], Camera], *, wait_s: float = 5.0) -> CheckItem:
    """The camera opens, records a second of H.264 that starts on a keyframe, and previews.

    ``get_camera`` builds (or hands over) the camera; an ImportError or KitError
    from it is the item's failure. Waits at most ``wait_s`` for the frames.
    """
    name = "camera"
    try:
        camera = get_camera()
    except (ImportError, KitError) as exc:
        return CheckItem(name, Level.FAIL, f"no camera: {exc}", _hardware_hint(exc))
    fmt = camera.format
    wanted = max(2, fmt.fps)
    packets: list[VideoPacket] = []
    lock = threading.Lock()
    enough = threading.Event()

    def sink(packet: VideoPacket) -> None:
        with lock:
            packets.append(packet)
            if len(packets) >= wanted:
                enough.set()

    try:
        camera.open()
        try:
            camera.start_recording(sink)
            try:
                enough.wait(wait_s)
            finally:
                camera.stop_recording()
            preview = camera.preview_jpeg()
            dropped = camera.dropped_frames
        finally:
            camera.close()
    except KitError as exc:
        return CheckItem(name, Level.FAIL, f"camera failed: {exc}", BUSY_HINT)
    with lock:
        got = list(packets)
    data: dict[str, Any] = {
        "frames": len(got),
        "width": fmt.width,
        "height": fmt.height,
        "fps_nominal": fmt.fps,
        "dropped": dropped,
        "preview": preview is not None,
    }
    if not got:
        hint = "check the ribbon cable (contacts facing the right way); " + BUSY_HINT
        return CheckItem(name, Level.FAIL, f"no frames within {wait_s:g} s", hint, data)
    span_ns = got[-1].pts_ns - got[0].pts_ns
    fps = (len(got) - 1) * 1e9 / span_ns if span_ns > 0 else 0.0
    data["fps_measured"] = round(fps, 2)
    findings: list[Finding] = []
    if not got[0].keyframe:
        findings.append((Level.FAIL, "first frame not a keyframe", "a camera adapter bug"))
    if len(got) < wanted or abs(fps - fmt.fps) > 0.1 * fmt.fps:
        hint = "a slow or overloaded Pi: see temperature and power"
        findings.append((Level.WARN, f"expected {fmt.fps} fps", hint))
    if preview is None:
        findings.append((Level.WARN, "no preview", "the phone would show no picture"))
    if dropped:
        findings.append((Level.WARN, f"{dropped} dropped", ""))
    value = f"{len(got)} frames, {fps:.1f} fps by sensor time, {fmt.width}x{fmt.height}"
    return _verdict(name, value, findings, data)


def probe_microphone(
    get_microphone: Callable[[], Microphone], *, seconds: float = 0.5, wait_s: float = 3.0
) -> CheckItem:
    """The microphone delivers ``seconds`` of samples; reports their peak level in dBFS."""
    name = "microphone"
    try:
        mic = get_microphone()
    except (ImportError, KitError) as exc:
        return CheckItem(name, Level.FAIL, f"no microphone: {exc}", _hardware_hint(exc))
    fmt = mic.format
    wanted = max(1, round(fmt.rate * seconds))
    blocks: list[AudioBlock] = []
    lock = threading.Lock()
    enough = threading.Event()

    def sink(block: AudioBlock) -> None:
        with lock:
            blocks.append(block)
            if sum(b.frames for b in blocks) >= wanted:
                enough.set()

    try:
        mic.start(sink)
        try:
            enough.wait(wait_s)
        finally:
            mic.stop()
        overflows = mic.overflows
    except KitError as exc:
        return CheckItem(name, Level.FAIL, f"microphone failed: {exc}", BUSY_HINT)
    with lock:
        got = list(blocks)
    data: dict[str, Any] = {
        "rate": fmt.rate,
        "channels": fmt.channels,
        "frames": sum(b.frames for b in got),
        "overflows": overflows,
    }
    if not got:
        hint = "is the USB microphone plugged in? " + BUSY_HINT
        return CheckItem(name, Level.FAIL, f"no samples within {wait_s:g} s", hint, data)
    level = peak_dbfs(np.concatenate([b.samples for b in got]))
    data["level_dbfs"] = round(level, 1)
    findings: list[Finding] = []
    if level <= -120.0:
        findings.append((Level.WARN, "digital silence", "is the microphone muted?"))
    elif level > -1.0:
        findings.append((Level.WARN, "clipping", "lower the gain in alsamixer"))
    if overflows:
        findings.append((Level.WARN, f"{overflows} overflows", "samples were lost"))
    value = f"{fmt.rate} Hz x{fmt.channels}, peak {level:.1f} dBFS"
    item = _verdict(name, value, findings, data)
    if item.level is Level.OK:
        return CheckItem(name, Level.OK, value, "speak or clap: the level should rise", data)
    return item


def _hardware_hint(exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        return "the Pi's camera/audio libraries are missing: this is not a kit's Raspberry Pi OS"
    return BUSY_HINT


def probe_gpio(
    button_pin: int, led_pin: int, *, pin_factory: Any = None, blinks: int = 3
) -> CheckItem:
    """The button and LED pins can be claimed; the LED blinks ``blinks`` times.

    ``pin_factory`` is a gpiozero pin factory (None: gpiozero's default, the
    real pins on a Pi; tests pass gpiozero's ``MockFactory``).
    """
    name = "gpio"
    pins = f"button GPIO{button_pin}, LED GPIO{led_pin}"
    data: dict[str, Any] = {"button_pin": button_pin, "led_pin": led_pin}
    try:
        import gpiozero
    except ImportError as exc:
        return CheckItem(name, Level.FAIL, f"{pins}: {exc}", "pip install gpiozero", data)
    with warnings.catch_warnings(record=True) as caught:
        # gpiozero warns once per pin library it cannot load; they explain a failure.
        warnings.simplefilter("always")
        try:
            button = gpiozero.Button(button_pin, pin_factory=pin_factory)
        except gpiozero.GPIOZeroError as exc:
            return _gpio_failure(name, pins, exc, caught, data)
        try:
            led = gpiozero.LED(led_pin, pin_factory=pin_factory)
        except gpiozero.GPIOZeroError as exc:
            button.close()
            return _gpio_failure(name, pins, exc, caught, data)
    try:
        if blinks:
            led.blink(on_time=0.2, off_time=0.2, n=blinks, background=False)
        led.on()
        lit = bool(led.is_lit)
        led.off()
        pressed = bool(button.is_pressed)
    finally:
        led.close()
        button.close()
    data.update(pressed=pressed, led_switched=lit)
    value = f"{pins}; button {'pressed' if pressed else 'released'}"
    if not lit:
        return CheckItem(name, Level.FAIL, value + ", LED did not switch on", "", data)
    hint = "did the LED blink? hold the button during the check to see 'pressed'"
    return CheckItem(name, Level.OK, value, hint, data)


def _gpio_failure(
    name: str,
    pins: str,
    exc: Exception,
    caught: list[warnings.WarningMessage],
    data: dict[str, Any],
) -> CheckItem:
    reasons = "; ".join(str(w.message) for w in caught)
    value = f"{pins}: {exc}" + (f" ({reasons})" if reasons else "")
    if ".lgd-nfy" in value:  # lgpio makes its notification FIFOs in the working directory
        hint = "lgpio needs a writable working directory: cd /tmp and check again"
    elif isinstance(exc, ImportError):  # gpiozero's BadPinFactory: no pin library works here
        hint = "needs a Raspberry Pi with python3-lgpio"
    else:
        hint = "check [gpio] in the config; " + BUSY_HINT
    return CheckItem(name, Level.FAIL, value, hint, data)


# --- storage ------------------------------------------------------------------------------

MIN_GOOD_WRITE_BYTES_PER_S = 10_000_000
"""An SD card's Class 10 / U1 minimum sequential write speed (the SD Association's rating)."""


def probe_write_speed(
    directory: Path,
    guard: StorageGuard,
    *,
    size_bytes: int = 64 * MIB,
    timer: Callable[[], float] = time.perf_counter,
) -> CheckItem:
    """Write and fsync ``size_bytes`` to a temporary file in ``directory``; MB/s.

    Fails below twice what recording while finalising the previous take writes
    (the guard's peak rate); warns below a Class 10 card's rated 10 MB/s.
    """
    name = "card speed"
    if not directory.is_dir():
        return CheckItem(
            name,
            Level.FAIL,
            f"no data directory {directory}",
            "the kit service creates it on first start; or pass --data",
        )
    if free_bytes(directory) < 4 * size_bytes:
        return CheckItem(name, Level.SKIP, "too little free space to test", "free some space")
    chunk = os.urandom(MIB)  # incompressible, in case a controller compresses
    written = 0
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".kit-check-") as f:
            start = timer()
            while written < size_bytes:
                written += f.write(chunk[: size_bytes - written])
            f.flush()
            os.fsync(f.fileno())
            elapsed = timer() - start
    except OSError as exc:
        return CheckItem(
            name,
            Level.FAIL,
            f"cannot write to {directory}: {exc}",
            "run as root or as the kit user: sudo kit check",
        )
    rate = written / elapsed if elapsed > 0 else float("inf")
    need = 2 * guard.rates.peak_bytes_per_s
    data = {"bytes": written, "seconds": round(elapsed, 3), "mb_per_s": round(rate / 1e6, 1)}
    value = f"{rate / 1e6:.1f} MB/s writing {written // MIB} MiB with fsync"
    if rate < need:
        hint = f"recording needs at least {need / 1e6:.1f} MB/s: use an A1/U1 card or better"
        return CheckItem(name, Level.FAIL, value, hint, data)
    if rate < MIN_GOOD_WRITE_BYTES_PER_S:
        hint = "slower than a Class 10 card: finalising and cutting will be slow"
        return CheckItem(name, Level.WARN, value, hint, data)
    return CheckItem(name, Level.OK, value, "", data)


def probe_free_space(guard: StorageGuard, free: int) -> CheckItem:
    """How many minutes ``free`` bytes allow, against the guard's floors."""
    state = guard.assess(free)
    data = {"free_bytes": free, "minutes_left": round(state.minutes_left, 1)}
    value = f"{state.minutes_left:.0f} min of recording ({free / 1e9:.1f} GB free)"
    if not state.may_start:
        hint = f"a take needs {guard.min_start_minutes:g} min: copy visits off and delete them"
        return CheckItem("free space", Level.FAIL, value, hint, data)
    if state.low:
        return CheckItem("free space", Level.WARN, value, "space is running low", data)
    return CheckItem("free space", Level.OK, value, "", data)


# --- the board ----------------------------------------------------------------------------

WARM_C = 70.0
"""Warn from here: the Pi 4's firmware starts slowing the CPU at 80 °C (the Pi 3B+ at 60)."""
HOT_C = 80.0


def probe_temperature(path: Path = THERMAL_ZONE) -> CheckItem:
    """The SoC temperature from the kernel's thermal zone (millidegrees Celsius)."""
    name = "temperature"
    try:
        millis = int(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return CheckItem(name, Level.SKIP, f"no thermal sensor at {path}")
    except (OSError, ValueError) as exc:
        return CheckItem(name, Level.FAIL, f"cannot read {path}: {exc}")
    celsius = millis / 1000
    data = {"celsius": celsius}
    value = f"{celsius:.1f} °C"
    hint = "the Pi slows itself down when hot: give it air, a heatsink or a case with a fan"
    if celsius >= HOT_C:
        return CheckItem(name, Level.FAIL, value, hint, data)
    if celsius >= WARM_C:
        return CheckItem(name, Level.WARN, value, hint, data)
    return CheckItem(name, Level.OK, value, "", data)


THROTTLE_BITS = {
    0: "under-voltage now",
    1: "frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage since boot",
    17: "frequency capped since boot",
    18: "throttled since boot",
    19: "soft temperature limit since boot",
}
"""The bits of ``vcgencmd get_throttled``, as Raspberry Pi's documentation lists them."""


def decode_throttled(value: int) -> list[str]:
    """The words for each set bit of a ``get_throttled`` value, in bit order."""
    words = [word for bit, word in sorted(THROTTLE_BITS.items()) if value >> bit & 1]
    unknown = value & ~sum(1 << bit for bit in THROTTLE_BITS)
    if unknown:
        words.append(f"unknown bits {unknown:#x}")
    return words


_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+|\d+)")


def probe_throttling(runner: Runner) -> CheckItem:
    """Under-voltage and throttling flags from ``vcgencmd get_throttled``."""
    name = "power"
    argv = ["vcgencmd", "get_throttled"]
    try:
        done = runner(argv, timeout_s=10)
    except FileNotFoundError:
        return CheckItem(name, Level.SKIP, "vcgencmd not found (not Raspberry Pi OS)")
    except subprocess.TimeoutExpired:
        return CheckItem(name, Level.FAIL, "vcgencmd did not answer within 10 s")
    match = _THROTTLED.search(done.stdout)
    if done.returncode != 0 or match is None:
        message = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
        return CheckItem(
            name, Level.WARN, f"vcgencmd failed: {message}", "it needs the video group or root"
        )
    raw = int(match.group(1), 0)
    words = decode_throttled(raw)
    data = {"throttled": f"{raw:#x}", "flags": words}
    hint = "use the official 5.1 V supply and a short, thick USB cable"
    if raw & 0xF:
        return CheckItem(name, Level.FAIL, f"{raw:#x}: " + ", ".join(words), hint, data)
    if raw:
        return CheckItem(name, Level.WARN, f"{raw:#x}: " + ", ".join(words), hint, data)
    return CheckItem(name, Level.OK, "no under-voltage or throttling since boot", "", data)


def probe_clock(runner: Runner, flag: Path = TIMESYNC_FLAG) -> CheckItem:
    """Whether the system time is synchronised (the Pi has no real-time clock)."""
    name = "clock"
    hint = (
        "no RTC and no internet on its own hotspot: the date may be wrong; recordings are "
        "timed on the monotonic clock, and wall-clock labels come from the phone"
    )
    if flag.exists():
        return CheckItem(name, Level.OK, "synchronised (timesyncd)", "", {"synchronised": True})
    argv = ["timedatectl", "show", "-p", "NTPSynchronized", "--value"]
    try:
        done = runner(argv, timeout_s=10)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return CheckItem(name, Level.WARN, f"unknown: {exc}", hint, {"synchronised": None})
    answer = done.stdout.strip()
    if done.returncode == 0 and answer == "yes":
        return CheckItem(name, Level.OK, "synchronised", "", {"synchronised": True})
    if done.returncode == 0 and answer == "no":
        return CheckItem(name, Level.WARN, "not synchronised", hint, {"synchronised": False})
    message = (done.stderr or answer).strip().splitlines()
    reason = message[0] if message else f"exit code {done.returncode}"
    return CheckItem(name, Level.WARN, f"unknown: {reason}", hint, {"synchronised": None})


def probe_service(runner: Runner, unit: str = "kit.service") -> CheckItem:
    """Whether the kit service is running (then it holds the camera, mic and GPIO)."""
    name = "service"
    try:
        done = runner(["systemctl", "is-active", unit], timeout_s=10)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return CheckItem(name, Level.SKIP, f"cannot ask systemd: {exc}")
    state = done.stdout.strip() or "unknown"
    if state in {"active", "activating", "reloading"}:
        return CheckItem(
            name,
            Level.WARN,
            f"{unit} is {state}",
            "it holds the camera, microphone and GPIO: sudo systemctl stop kit, then check again",
            {"state": state},
        )
    return CheckItem(name, Level.OK, f"{unit} is {state}", "", {"state": state})


# --- the project's own hardware tests -----------------------------------------------------

PI_TESTS_TIMEOUT_S = 600.0


def probe_pi_tests(
    runner: Runner,
    project_root: Path | None,
    python: str,
    *,
    timeout_s: float = PI_TESTS_TIMEOUT_S,
) -> CheckItem:
    """Run the tests marked ``pi`` in ``project_root/tests`` with ``python -m pytest``."""
    name = "pi tests"
    tests = project_root / "tests" if project_root else None
    if tests is None or not tests.is_dir():
        return CheckItem(name, Level.SKIP, "no tests directory beside the installed kit")
    argv = [python, "-m", "pytest", "-m", "pi", "-q", "-p", "no:cacheprovider", str(tests)]
    try:
        done = runner(argv, timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        return CheckItem(name, Level.FAIL, f"did not finish within {timeout_s:g} s")
    if "No module named pytest" in done.stderr:
        return CheckItem(name, Level.SKIP, "pytest is not installed", "pip install pytest")
    summary = _last_line(done.stdout) or _last_line(done.stderr) or "no output"
    data = {"exit_code": done.returncode, "summary": summary}
    level, value, hint = _pytest_outcome(done.returncode, summary)
    if level is Level.FAIL:
        hint = f"run it yourself for the details: {' '.join(argv)}"
    return CheckItem(name, level, value, hint, data)


def _pytest_outcome(code: int, summary: str) -> tuple[Level, str, str]:
    if code == 5:
        return Level.SKIP, "no tests are marked pi", ""
    if code != 0:
        return Level.FAIL, summary, ""
    if " passed" not in f" {summary}":
        hint = "every pi test skipped itself (off a Pi, or hardware missing): add -rs to see why"
        return Level.WARN, summary, hint
    return Level.OK, summary, ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
