"""Wall-clock labels for humans, on a Pi that has no real-time clock.

Instants stay on the monotonic kit clock; this only turns them into a date
and time for a visit's label. The phone tells the kit its time when it
pairs or loads the page; until then the system clock is trusted only if it
can be: on a Raspberry Pi, only once NTP has synchronised it, because
fake-hwclock sets it at boot to the time the Pi last shut down (plausible,
and wrong by however long it was off); elsewhere (a laptop with a real-time
clock, CI) when it reads a date after this software was written.

Whether the clock is synchronised, from the cheapest source that knows:

1. ``/run/systemd/timesync/synchronized``: systemd-timesyncd creates it at
   its first synchronisation after boot (``/run`` is emptied at boot).
2. ``adjtimex()`` read-only: the kernel's ``STA_UNSYNC`` flag, which any NTP
   client clears. The kit's unit has ``ProtectClock=yes``, whose seccomp
   filter refuses even a read (EPERM): then it says nothing.
3. ``timedatectl show -p NTPSynchronized``: systemd-timedated asks the kernel
   on our behalf over D-Bus (chrony, or timesyncd before it wrote its file).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kit.clock import NS_PER_S, Clock

log = logging.getLogger(__name__)

# A system clock before this is a Pi that booted without network time.
_PLAUSIBLE_AFTER_S = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

TIMESYNC_MARKER = Path("/run/systemd/timesync/synchronized")
STA_UNSYNC = 0x0040  # linux/timex.h
# An unsynchronised clock is asked again at most this often (a timedatectl call
# costs a process and a D-Bus round trip); a synchronised one is not asked again.
RECHECK_NS = 60 * NS_PER_S
_TIMEDATECTL_TIMEOUT_S = 5.0

Source = Callable[[], bool | None]
"""One way of telling whether the clock is synchronised: True, False or None (cannot tell)."""


def timesync_marker(path: Path = TIMESYNC_MARKER) -> bool | None:
    """True when systemd-timesyncd has synchronised the clock since boot; None otherwise."""
    return True if path.exists() else None


class _Timex(ctypes.Structure):
    # struct timex (linux/timex.h) up to ``status``, then room for the rest.
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_long * 64),
    )


def kernel_synchronised() -> bool | None:
    """The kernel's view (``STA_UNSYNC``), read with ``adjtimex`` (modes 0: changes nothing)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()  # modes = 0
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:  # EPERM under ProtectClock=yes
        return None
    return not timex.status & STA_UNSYNC


def timedated_synchronised() -> bool | None:
    """systemd-timedated's NTPSynchronized, through ``timedatectl``."""
    try:
        done = subprocess.run(
            ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=_TIMEDATECTL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    answer = done.stdout.strip()
    if done.returncode != 0 or answer not in ("yes", "no"):
        return None
    return answer == "yes"


SOURCES: tuple[Source, ...] = (timesync_marker, kernel_synchronised, timedated_synchronised)


def clock_synchronised(sources: tuple[Source, ...] = SOURCES) -> bool:
    """Whether the system clock is NTP-synchronised: the first source that can tell says."""
    for source in sources:
        answer = source()
        if answer is not None:
            return answer
    return False


def system_clock_trusted(
    on_pi: bool | None = None, synchronised: Callable[[], bool] = clock_synchronised
) -> bool:
    """Whether the system clock may label visits before a phone gives the time (see module doc).

    ``on_pi`` None looks at the device tree.
    """
    if on_pi is None:
        from kit.hardware.factory import is_raspberry_pi

        on_pi = is_raspberry_pi()
    return synchronised() if on_pi else True


class WallClock:
    """Maps kit instants to UTC labels, preferring the phone's time once known."""

    def __init__(
        self,
        clock: Clock,
        system_time_ns: Callable[[], int] = time.time_ns,
        system_trusted: Callable[[], bool] = system_clock_trusted,
    ) -> None:
        self._clock = clock
        self._system_time_ns = system_time_ns
        self._system_trusted = system_trusted
        self._lock = threading.Lock()
        self._offset_ns: int | None = None  # unix ns minus kit ns, from the phone
        self._trusted = False
        self._checked_at: int | None = None  # kit instant of the last untrusting answer

    def set_from_phone(self, unix_s: float) -> None:
        """The phone's UTC time, now (called by the web layer)."""
        offset = round(unix_s * NS_PER_S) - self._clock.now()
        with self._lock:
            self._offset_ns = offset

    def unix_ns(self, instant: int) -> int | None:
        """The UTC time of a kit instant, or None when no trustworthy clock is known."""
        with self._lock:
            offset = self._offset_ns
        if offset is not None:
            return instant + offset
        system = self._system_time_ns()
        if system / NS_PER_S < _PLAUSIBLE_AFTER_S or not self._trust_system():
            return None
        return system - (self._clock.now() - instant)

    def label(self, instant: int) -> str:
        """``2026-11-25T14:03:00Z`` for a kit instant, or "" when the time is unknown."""
        unix = self.unix_ns(instant)
        if unix is None:
            return ""
        return datetime.fromtimestamp(unix / NS_PER_S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _trust_system(self) -> bool:
        """Whether the system clock is trusted; once it is, it stays so."""
        now = self._clock.now()
        with self._lock:
            if self._trusted:
                return True
            if self._checked_at is not None and now - self._checked_at < RECHECK_NS:
                return False
        trusted = self._system_trusted()  # outside the lock: may run timedatectl
        with self._lock:
            self._trusted = self._trusted or trusted
            self._checked_at = None if trusted else now
        if trusted:
            log.info("the system clock is synchronised: visits are labelled with its time")
        return trusted
