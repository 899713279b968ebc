"""Wall-clock labels for humans, on a Pi that has no real-time clock.

Instants stay on the monotonic kit clock; this only turns them into a date
and time for a visit's label. The phone tells the kit its time when it
pairs or loads the page; until then the system clock is trusted only if it
looks set (NTP, or a date after this software was written).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kit.clock import NS_PER_S, Clock

# A system clock before this is a Pi that booted without network time.
_PLAUSIBLE_AFTER_S = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


class WallClock:
    """Maps kit instants to UTC labels, preferring the phone's time once known."""

    def __init__(self, clock: Clock, system_time_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._system_time_ns = system_time_ns
        self._lock = threading.Lock()
        self._offset_ns: int | None = None  # unix ns minus kit ns, from the phone

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
        if system / NS_PER_S < _PLAUSIBLE_AFTER_S:
            return None
        return system - (self._clock.now() - instant)

    def label(self, instant: int) -> str:
        """``2026-11-25T14:03:00Z`` for a kit instant, or "" when the time is unknown."""
        unix = self.unix_ns(instant)
        if unix is None:
            return ""
        return datetime.fromtimestamp(unix / NS_PER_S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
