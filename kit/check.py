"""``kit check``: the hardware self-test a person runs on a real kit.

It checks, in order: whether the kit service holds the devices, the camera,
the microphone, the button and LED, the card's write speed, free space,
temperature, power (under-voltage, throttling), the clock, the kit's signing
key (its fingerprint, which the organisation checks bundles against; made
here if the kit has none yet), and finally the project's tests marked ``pi``.
It prints one line per item (OK, WARN, FAIL or SKIP, the value, a hint) and
can write the whole report as JSON.

The probes live in :mod:`kit.daemon.health`; this module wires them to the
real system through :class:`CheckSources`, which tests replace with fake
files and a fake runner. Each probe runs guarded: whatever goes wrong becomes
a FAIL line, never a crash, so a kit with no camera still gets its report.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kit
from kit.clock import Clock, MonotonicClock
from kit.config import Config
from kit.daemon import health
from kit.daemon.health import CheckItem, Level, Runner
from kit.daemon.storage import StorageGuard, free_bytes
from kit.handoff.signing import BadKitKey, Signer
from kit.hardware.camera import Camera
from kit.hardware.factory import DEVICE_MODEL, Hardware, is_raspberry_pi
from kit.hardware.microphone import Microphone
from kit.store import layout

log = logging.getLogger(__name__)


def _pi_hardware(config: Config, clock: Clock) -> Hardware:
    # Imported here: the factory's Pi adapters pull in picamera2 and sounddevice.
    from kit.hardware.factory import pi_hardware

    return pi_hardware(config, clock)


def default_project_root() -> Path | None:
    """The source tree the running kit was installed from (editable install), if any."""
    root = Path(kit.__file__).resolve().parent.parent
    return root if (root / "tests").is_dir() else None


@dataclass(frozen=True)
class CheckSources:
    """Everything ``kit check`` reads or runs: the real system unless a test says otherwise."""

    build_hardware: Callable[[Config, Clock], Hardware] = _pi_hardware
    runner: Runner = health.run_command
    pin_factory: Any = None  # gpiozero's default: the real pins
    led_blinks: int = 3
    thermal_zone: Path = health.THERMAL_ZONE
    timesync_flag: Path = health.TIMESYNC_FLAG
    device_model: Path = DEVICE_MODEL
    project_root: Path | None = field(default_factory=default_project_root)
    python: str = sys.executable
    write_test_bytes: int = 64 * health.MIB
    camera_wait_s: float = 5.0
    microphone_wait_s: float = 3.0


@dataclass(frozen=True)
class CheckReport:
    """The outcome of ``kit check``."""

    items: tuple[CheckItem, ...]
    host: str
    checked_at: str  # wall clock, a label only: the Pi has no RTC
    kit_version: str

    @property
    def ok(self) -> bool:
        """No item failed (warnings and skips are fine)."""
        return all(item.level is not Level.FAIL for item in self.items)

    def item(self, name: str) -> CheckItem:
        """The item called ``name`` (KeyError if there is none)."""
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        return {str(level): sum(i.level is level for i in self.items) for level in Level}

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "host": self.host,
            "checked_at": self.checked_at,
            "kit_version": self.kit_version,
            "counts": self.counts(),
            "items": [item.as_dict() for item in self.items],
        }

    def format_text(self) -> str:
        """The readable report: one line per item, then a summary."""
        lines = [format_item(item) for item in self.items]
        lines.append(summary_line(self))
        return "\n".join(lines)


def format_item(item: CheckItem) -> str:
    """``LEVEL name  value  -> hint`` on one line."""
    line = f"{item.level:<4}  {item.name:<12}  {item.value}"
    return f"{line}  -> {item.hint}" if item.hint else line


def summary_line(report: CheckReport) -> str:
    counts = report.counts()
    parts = ", ".join(f"{n} {level}" for level, n in counts.items() if n)
    return f"kit check: {'passed' if report.ok else 'FAILED'} ({parts})"


def run_check(
    config: Config,
    out_json: Path | None = None,
    *,
    sources: CheckSources | None = None,
    echo: Callable[[str], None] | None = None,
) -> CheckReport:
    """Run every probe; write the report to ``out_json`` if given; return it.

    ``echo`` receives each item's line as soon as it is known (the whole check
    takes several seconds on a kit, mostly the camera and the pi tests).
    """
    src = sources or CheckSources()
    data_dir = Path(config.storage.data_dir)
    guard = StorageGuard.from_config(config)
    hardware = _LazyHardware(lambda: src.build_hardware(config, MonotonicClock()))
    on_pi = is_raspberry_pi(src.device_model)

    probes: list[tuple[str, Callable[[], CheckItem]]] = [
        ("service", lambda: health.probe_service(src.runner)),
        (
            "camera",
            lambda: health.probe_camera(hardware.camera, wait_s=src.camera_wait_s),
        ),
        (
            "microphone",
            lambda: health.probe_microphone(hardware.microphone, wait_s=src.microphone_wait_s),
        ),
        (
            "gpio",
            lambda: health.probe_gpio(
                config.gpio.button_pin,
                config.gpio.led_pin,
                pin_factory=src.pin_factory,
                blinks=src.led_blinks,
            ),
        ),
        (
            "card speed",
            lambda: health.probe_write_speed(data_dir, guard, size_bytes=src.write_test_bytes),
        ),
        ("free space", lambda: health.probe_free_space(guard, free_bytes(_existing(data_dir)))),
        ("temperature", lambda: health.probe_temperature(src.thermal_zone)),
        ("power", lambda: health.probe_throttling(src.runner)),
        ("clock", lambda: health.probe_clock(src.runner, src.timesync_flag)),
        ("signing key", lambda: probe_signing_key(data_dir)),
        ("pi tests", lambda: health.probe_pi_tests(src.runner, src.project_root, src.python)),
    ]
    items = []
    for name, probe in probes:
        item = _guarded(name, probe)
        if not on_pi and item.level is Level.FAIL and name in {"camera", "microphone", "gpio"}:
            item = CheckItem(
                item.name, item.level, item.value, "this machine is not a Raspberry Pi", item.data
            )
        items.append(item)
        if echo is not None:
            echo(format_item(item))
    report = CheckReport(
        items=tuple(items),
        host=socket.gethostname(),
        checked_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        kit_version=kit.__version__,
    )
    if out_json is not None:
        out_json.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def main(config: Config, out_json: Path | None = None, sources: CheckSources | None = None) -> int:
    """``kit check``: print the report line by line, write JSON; 0 if nothing failed.

    ``out_json`` ``-`` puts the JSON on stdout and the lines on stderr."""
    to_stdout = out_json is not None and str(out_json) == "-"

    def echo(line: str) -> None:
        print(line, file=sys.stderr if to_stdout else sys.stdout)

    report = run_check(config, None if to_stdout else out_json, sources=sources, echo=echo)
    echo(summary_line(report))
    if to_stdout:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    elif out_json is not None:
        echo(f"report written to {out_json}")
    return 0 if report.ok else 1


def probe_signing_key(data_dir: Path) -> CheckItem:
    """The kit's signing key (kit/handoff/signing.py) and its fingerprint; made now if the
    kit has none yet (owned like the data directory, readable by its owner only)."""
    name = "signing key"
    if not data_dir.is_dir():
        return CheckItem(
            name,
            Level.WARN,
            f"no data directory {data_dir} yet",
            "the kit service makes it, and its signing key, on first start",
        )
    path = data_dir / layout.SIGNING_KEY
    made = not path.exists()
    try:
        signer = Signer.load_or_create(path)
    except BadKitKey as exc:
        hint = (
            "move it away and run kit check again; the new key has a new fingerprint: "
            "tell your organisation"
        )
        return CheckItem(name, Level.FAIL, str(exc), hint)
    except OSError as exc:
        hint = "run as root or as the kit user: sudo kit check"
        return CheckItem(name, Level.FAIL, f"cannot make {path}: {exc.strerror}", hint)
    if made and os.geteuid() == 0:
        # Made by root for a kit that runs as its own user: give it to the data's owner.
        owner = data_dir.stat()
        with contextlib.suppress(OSError):
            os.chown(path, owner.st_uid, owner.st_gid)
    data = {"fingerprint": signer.fingerprint, "public_key": signer.public, "made": made}
    value = f"fingerprint {signer.fingerprint}" + (" (made now)" if made else "")
    hint = "give this fingerprint to your organisation: it checks bundles against it"
    return CheckItem(name, Level.OK, value, hint if made else "", data)


def _guarded(name: str, probe: Callable[[], CheckItem]) -> CheckItem:
    try:
        return probe()
    # A boundary: a self-test reports every failure as a line, whatever raised it.
    except Exception as exc:
        log.exception("check %s failed", name)
        return CheckItem(name, Level.FAIL, f"{type(exc).__name__}: {exc}", health.BUSY_HINT)


class _LazyHardware:
    """Builds the Pi hardware once, on first use; a failure to build is kept and re-raised."""

    def __init__(self, build: Callable[[], Hardware]) -> None:
        self._build = build
        self._hardware: Hardware | None = None
        self._error: Exception | None = None

    def _get(self) -> Hardware:
        if self._error is not None:
            raise self._error
        if self._hardware is None:
            try:
                self._hardware = self._build()
            except Exception as exc:
                self._error = exc
                raise
        return self._hardware

    def camera(self) -> Camera:
        return self._get().camera

    def microphone(self) -> Microphone:
        return self._get().microphone


def _existing(path: Path) -> Path:
    # Free space of the filesystem the data directory will live on, before it exists.
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path
