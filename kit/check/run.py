"""``kit check``: the hardware self-test a person runs on a real kit, and the field-trial figures.

It checks, in order: whether it runs inside the service's sandbox, whether
the kit service holds the devices, the camera, the microphone, the button and
LED, (on request) the A/V offset with a clap, the card's write speed and fsync
latency, free space, temperature, power, then one take recorded as the kit
records one (frames, dropped frames, CPU load, heat and throttling over it,
the camera's timestamps against the kit clock, the microphone's drift), the
hotspot and the phone page's port, the clock, the kit's signing key, and
finally the project's tests marked ``pi``. It prints one line per item (OK,
WARN, FAIL or SKIP, the value, a hint) and can write the whole report as JSON,
with every measured figure under ``figures``.

The probes live in :mod:`kit.daemon.health` and the modules beside this one;
this module wires them to the real system through :class:`CheckSources`,
which tests replace with fake files, a fake runner, fake or simulated
hardware and a fake clock. Each probe runs guarded: whatever goes wrong
becomes a FAIL line, never a crash, so a kit with no camera still gets its
report.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import kit
from kit.check import clap, sandbox
from kit.check.board import PROC_STAT, THROTTLED_FILE, BoardSources, sysfs_first
from kit.check.fsync import probe_fsync
from kit.check.network import HttpGet, http_get, probe_hotspot, probe_web_port
from kit.check.options import CheckOptions
from kit.check.report import CheckReport, format_item, summary_line
from kit.check.take import TakeLog, TakeSettings, measure_take, recording_item, thermal_item
from kit.check.timing import camera_clock, camera_rate_ppm, mic_drift
from kit.clock import Clock, MonotonicClock
from kit.config import Config
from kit.daemon import health
from kit.daemon.health import CheckItem, Level, Runner
from kit.daemon.storage import StorageGuard, free_bytes
from kit.errors import KitError
from kit.handoff.signing import BadKitKey, Signer
from kit.hardware.camera import Camera
from kit.hardware.factory import DEVICE_MODEL, Hardware, is_raspberry_pi
from kit.hardware.microphone import Microphone
from kit.store import layout

log = logging.getLogger(__name__)

HARDWARE_ITEMS = frozenset(
    {
        "camera",
        "microphone",
        "gpio",
        "a/v clap",
        "recording",
        "thermal",
        "camera clock",
        "mic drift",
    }
)
"""Items that need the kit's own hardware: off a Pi their failure says so."""


def _pi_hardware(config: Config, clock: Clock) -> Hardware:
    # Imported here: the factory's Pi adapters pull in picamera2 and sounddevice.
    from kit.hardware.factory import pi_hardware

    return pi_hardware(config, clock)


def default_project_root() -> Path | None:
    """The source tree the running kit was installed from (editable install), if any."""
    root = Path(kit.__file__).resolve().parent.parent
    return root if (root / "tests").is_dir() else None


def _default_sandbox_host() -> sandbox.SandboxHost:
    root = default_project_root()
    units: tuple[Path, ...] = (sandbox.INSTALLED_UNIT,)
    if root is not None:
        units += (root / "systemd" / sandbox.UNIT,)
    return sandbox.SandboxHost(unit_files=units)


@dataclass(frozen=True)
class CheckSources:
    """Everything ``kit check`` reads or runs: the real system unless a test says otherwise."""

    build_hardware: Callable[[Config, Clock], Hardware] = _pi_hardware
    runner: Runner = health.run_command
    pin_factory: Any = None  # gpiozero's default: the real pins
    led_blinks: int = 3
    thermal_zone: Path = health.THERMAL_ZONE
    throttled_file: Path = THROTTLED_FILE
    proc_stat: Path = PROC_STAT
    timesync_flag: Path = health.TIMESYNC_FLAG
    device_model: Path = DEVICE_MODEL
    project_root: Path | None = field(default_factory=default_project_root)
    python: str = sys.executable
    write_test_bytes: int = 64 * health.MIB
    camera_wait_s: float = 5.0
    microphone_wait_s: float = 3.0
    clock: Clock = field(default_factory=MonotonicClock)
    wait_until: Callable[[int], None] | None = None  # None: the clock's own sleep
    cpu_time: Callable[[], int] = time.process_time_ns
    take_log: Callable[[Hardware, TakeSettings], TakeLog] | None = None  # None: record one
    http_get: HttpGet = http_get
    sandbox_host: sandbox.SandboxHost = field(default_factory=_default_sandbox_host)
    launch: sandbox.Launch = sandbox.launch
    regdom_parameter: Path = Path("/sys/module/cfg80211/parameters/ieee80211_regdom")

    @property
    def board(self) -> BoardSources:
        return BoardSources(self.thermal_zone, self.throttled_file, self.proc_stat, self.runner)


def run_check(
    config: Config,
    out_json: Path | None = None,
    *,
    sources: CheckSources | None = None,
    echo: Callable[[str], None] | None = None,
    options: CheckOptions | None = None,
    tell: Callable[[str], None] | None = None,
    sandbox_reason: str = "",
) -> CheckReport:
    """Run every probe; write the report to ``out_json`` if given; return it.

    ``echo`` receives each item's line as soon as it is known; ``tell`` what the
    person should know or do meanwhile (a take is starting; clap now).
    ``sandbox_reason`` says why the check runs outside the service's sandbox.
    """
    src = sources or CheckSources()
    opts = options or CheckOptions()
    say = tell or log.info
    data_dir = Path(config.storage.data_dir)
    guard = StorageGuard.from_config(config)
    hardware = _LazyHardware(lambda: src.build_hardware(config, src.clock))
    on_pi = is_raspberry_pi(src.device_model)
    take = _Once(lambda: _take(src, opts, config, hardware.get(), data_dir, say))

    def drift(t: TakeLog) -> CheckItem:
        camera_ppm = camera_rate_ppm([f.pts_ns for f in t.frames], t.video.fps)
        return mic_drift(t.blocks, t.audio.rate, camera_ppm)

    def from_take(name: str, judge: Callable[[TakeLog], CheckItem]) -> Callable[[], CheckItem]:
        def probe() -> CheckItem:
            try:
                measured = take()
            except (ImportError, KitError) as exc:
                # The devices are missing or busy: the camera and microphone lines say more.
                return CheckItem(name, Level.FAIL, f"no take: {exc}", health.BUSY_HINT)
            return judge(measured)

        return probe

    probes: list[tuple[str, Callable[[], CheckItem]]] = [
        ("sandbox", lambda: _sandbox_item(opts, sandbox_reason, on_pi)),
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
        ("a/v clap", lambda: _clap(src, opts, hardware.get, say)),
        (
            "card speed",
            lambda: health.probe_write_speed(data_dir, guard, size_bytes=src.write_test_bytes),
        ),
        (
            "fsync",
            lambda: probe_fsync(
                data_dir, count=opts.fsync_pieces, interval_s=config.storage.fsync_interval_s
            ),
        ),
        ("free space", lambda: health.probe_free_space(guard, free_bytes(_existing(data_dir)))),
        ("temperature", lambda: health.probe_temperature(src.thermal_zone)),
        ("power", lambda: health.probe_throttling(sysfs_first(src.runner, src.throttled_file))),
        ("recording", from_take("recording", recording_item)),
        ("thermal", from_take("thermal", thermal_item)),
        ("camera clock", from_take("camera clock", lambda t: camera_clock(t.frames, t.video.fps))),
        ("mic drift", from_take("mic drift", drift)),
        ("hotspot", lambda: probe_hotspot(src.runner, regdom_parameter=src.regdom_parameter)),
        (
            "web port",
            lambda: probe_web_port(config.web.host, config.web.port, src.runner, get=src.http_get),
        ),
        ("clock", lambda: health.probe_clock(src.runner, src.timesync_flag)),
        ("signing key", lambda: probe_signing_key(data_dir)),
        ("pi tests", lambda: health.probe_pi_tests(src.runner, src.project_root, src.python)),
    ]
    items = []
    for name, probe in probes:
        item = _guarded(name, probe)
        if not on_pi and item.level is Level.FAIL and name in HARDWARE_ITEMS:
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
        settings=opts.settings(),
    )
    if out_json is not None:
        out_json.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def _sandbox_item(opts: CheckOptions, reason: str, on_pi: bool) -> CheckItem:
    if opts.in_sandbox is not None:
        return sandbox.inside_item(opts.in_sandbox)
    return sandbox.outside_item(reason, requested=opts.sandbox, on_pi=on_pi)


def _take(
    src: CheckSources,
    opts: CheckOptions,
    config: Config,
    hardware: Hardware,
    data_dir: Path,
    say: Callable[[str], None],
) -> TakeLog:
    settings = TakeSettings(
        seconds=opts.take_seconds,
        sample_every_s=min(5.0, max(0.5, opts.take_seconds / 10)),
        fsync_interval_s=config.storage.fsync_interval_s,
    )
    if src.take_log is not None:
        return src.take_log(hardware, settings)
    say(
        f"take: recording {settings.seconds:g} s as the kit records (timing, drift, load, heat)"
        + ("" if settings.seconds <= 60 else "; leave the kit alone until it is done")
    )
    return measure_take(
        hardware,
        src.clock,
        settings,
        directory=data_dir if data_dir.is_dir() else None,
        board=src.board,
        wait_until=src.wait_until,
        cpu_time=src.cpu_time,
    )


def _clap(
    src: CheckSources,
    opts: CheckOptions,
    get_hardware: Callable[[], Hardware],
    say: Callable[[str], None],
) -> CheckItem:
    if not opts.av_clap:
        return clap.not_performed()
    try:
        hardware = get_hardware()
    except (ImportError, KitError) as exc:
        return CheckItem(clap.AV_CLAP, Level.FAIL, f"no clap test: {exc}", health.BUSY_HINT)
    captured = clap.capture(
        hardware.camera,
        hardware.microphone,
        src.clock,
        opts.clap_s,
        tell=say,
        wait_until=src.wait_until,
    )
    return clap.clap_item(clap.analyse(captured))


def main(
    config: Config,
    out_json: Path | None = None,
    sources: CheckSources | None = None,
    options: CheckOptions | None = None,
) -> int:
    """``kit check``: print the report line by line, write JSON; 0 if nothing failed.

    ``out_json`` ``-`` puts the JSON on stdout and the lines on stderr. Unless
    told not to (or already inside it), it runs the check again inside the
    service's sandbox and passes that run's report on.
    """
    src = sources or CheckSources()
    opts = options or CheckOptions()
    to_stdout = out_json is not None and str(out_json) == "-"

    def tell(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    reason = ""
    if opts.sandbox and opts.in_sandbox is None:
        found = sandbox.plan(src.sandbox_host, unit_file=opts.unit_file)
        if isinstance(found, sandbox.Plan):
            return _main_sandboxed(found, src, opts, out_json, tell)
        reason = found
        tell(f"sandbox: {reason}; checking outside it")

    def echo(line: str) -> None:
        print(line, file=sys.stderr if to_stdout else sys.stdout, flush=True)

    report = run_check(
        config,
        None if to_stdout else out_json,
        sources=src,
        echo=echo,
        options=opts,
        tell=tell,
        sandbox_reason=reason,
    )
    echo(summary_line(report))
    if to_stdout:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    elif out_json is not None:
        echo(f"report written to {out_json}")
    return 0 if report.ok else 1


def _main_sandboxed(
    found: sandbox.Plan,
    src: CheckSources,
    opts: CheckOptions,
    out_json: Path | None,
    tell: Callable[[str], None],
) -> int:
    """Run the check inside the sandbox: its lines stream on stderr, its JSON comes back."""
    argv = found.argv(opts.sandboxed_command(src.python, found.unit_file))
    tell(
        f"sandbox: checking as user {found.user or 'root'} with {found.unit_file}'s settings "
        "(systemd-run; --no-sandbox checks outside it)"
    )
    log.debug("running %s", argv)
    code, stdout = src.launch(argv)
    try:
        report = json.loads(stdout)
    except ValueError:
        report = None
    if not isinstance(report, dict) or "items" not in report:
        tell(
            f"kit check: the sandboxed check did not report (systemd-run exit code {code}); "
            "what went wrong is above. kit check --no-sandbox checks outside the sandbox"
        )
        return 1
    text = json.dumps(report, indent=2) + "\n"
    if out_json is not None and str(out_json) == "-":
        sys.stdout.write(text)
    elif out_json is not None:
        out_json.write_text(text, encoding="utf-8")
        tell(f"report written to {out_json}")
    return code


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


T = TypeVar("T")


class _Once(Generic[T]):
    """Runs ``make`` once, on first use; its result, or its error, is kept for every later use."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._error: Exception | None = None
        self._done = False

    def __call__(self) -> T:
        if self._error is not None:
            raise self._error
        if not self._done:
            try:
                self._value = self._make()
            except Exception as exc:
                self._error = exc
                raise
            self._done = True
        return self._value  # type: ignore[return-value]


class _LazyHardware:
    """Builds the Pi hardware once, on first use; a failure to build is kept and re-raised."""

    def __init__(self, build: Callable[[], Hardware]) -> None:
        self.get = _Once(build)

    def camera(self) -> Camera:
        return self.get().camera

    def microphone(self) -> Microphone:
        return self.get().microphone


def _existing(path: Path) -> Path:
    # Free space of the filesystem the data directory will live on, before it exists.
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path
