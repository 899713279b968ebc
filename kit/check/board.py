"""The board's state while a take records: temperature, throttling, CPU time.

Each reader takes its source (a file, a command runner) as a parameter, so
tests hand it fake files. ``get_throttled`` is read from the firmware's sysfs
file first: it needs no privileges and no device, so it also works inside the
service's sandbox, where ``vcgencmd`` cannot open ``/dev/vcio``; ``vcgencmd``
is the fallback for kernels without that file.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kit.daemon.health import THERMAL_ZONE, Runner, run_command

THROTTLED_FILE = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
PROC_STAT = Path("/proc/stat")

NOW_BITS = 0xF
"""The get_throttled bits that describe the present (the rest say 'since boot')."""

_VCGENCMD = re.compile(r"throttled=(0x[0-9a-fA-F]+|\d+)")


def read_celsius(path: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature in °C from a thermal zone (millidegrees), None if unreadable."""
    try:
        return int(path.read_text(encoding="ascii").strip()) / 1000
    except (OSError, ValueError):
        return None


def read_throttled(
    path: Path = THROTTLED_FILE, runner: Runner = run_command
) -> tuple[int, str] | None:
    """The ``get_throttled`` value and where it came from (``sysfs`` or ``vcgencmd``).

    The sysfs file holds the value in hex without ``0x`` (``50005``);
    ``vcgencmd get_throttled`` prints ``throttled=0x50005``. None if neither answers.
    """
    try:
        return int(path.read_text(encoding="ascii").strip(), 16), "sysfs"
    except (OSError, ValueError):
        pass
    try:
        done = runner(list(VCGENCMD_THROTTLED), timeout_s=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VCGENCMD.search(done.stdout)
    if done.returncode != 0 or match is None:
        return None
    return int(match.group(1), 0), "vcgencmd"


def read_cpu_busy(path: Path = PROC_STAT) -> tuple[int, int] | None:
    """``(busy, total)`` jiffies of all CPUs from ``/proc/stat``'s first line, None if unreadable.

    Busy is everything but ``idle`` and ``iowait`` (waiting for the card is not work).
    """
    try:
        first = path.read_text(encoding="ascii").splitlines()[0].split()
        ticks = [int(x) for x in first[1:]]
    except (OSError, ValueError, IndexError):
        return None
    if first[0] != "cpu" or len(ticks) < 5:
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user).
    total = sum(ticks[:8])
    return total - ticks[3] - ticks[4], total


VCGENCMD_THROTTLED = ("vcgencmd", "get_throttled")


def sysfs_first(runner: Runner, path: Path = THROTTLED_FILE) -> Runner:
    """``runner``, except that ``vcgencmd get_throttled`` is answered from the sysfs file.

    :func:`kit.daemon.health.probe_throttling` asks vcgencmd, which inside the
    service's sandbox cannot open ``/dev/vcio`` (not in its DeviceAllow=) and
    would report a failure the kit does not have; the firmware's file holds
    the same value. Without the file, vcgencmd is asked as before.
    """

    def run(argv: Sequence[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
        if tuple(argv) == VCGENCMD_THROTTLED:
            try:
                value = int(path.read_text(encoding="ascii").strip(), 16)
            except (OSError, ValueError):
                pass
            else:
                return subprocess.CompletedProcess(list(argv), 0, f"throttled={value:#x}\n", "")
        return runner(argv, timeout_s=timeout_s)

    return run


@dataclass(frozen=True)
class BoardSources:
    """Where the board's state is read from: the real files unless a test says otherwise."""

    thermal_zone: Path = THERMAL_ZONE
    throttled_file: Path = THROTTLED_FILE
    proc_stat: Path = PROC_STAT
    runner: Runner = field(default=run_command)


@dataclass(frozen=True)
class BoardSample:
    """The board at one instant of a take."""

    t_ns: int
    celsius: float | None
    throttled: int | None
    throttled_source: str | None


def sample_board(sources: BoardSources, t_ns: int) -> BoardSample:
    """Read the temperature and the throttling flags now."""
    throttled = read_throttled(sources.throttled_file, sources.runner)
    return BoardSample(
        t_ns,
        read_celsius(sources.thermal_zone),
        None if throttled is None else throttled[0],
        None if throttled is None else throttled[1],
    )
