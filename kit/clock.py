"""The kit's one clock: integer nanoseconds of ``time.monotonic_ns``.

Frames (libcamera's SensorTimestamp is CLOCK_MONOTONIC), audio (PortAudio
times mapped onto it), button presses and phone taps are all instants on this
clock. Wall-clock time is only a label for humans.
"""

from __future__ import annotations

import threading
import time
from typing import NewType, Protocol

Instant = NewType("Instant", int)
"""Nanoseconds on the kit clock (``time.monotonic_ns``)."""

Duration = NewType("Duration", int)
"""A span of nanoseconds."""

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


def seconds(value: float) -> Duration:
    """A duration of ``value`` seconds, in nanoseconds (rounded)."""
    return Duration(round(value * NS_PER_S))


class Clock(Protocol):
    """Where the kit reads time and waits for it."""

    def now(self) -> Instant:
        """The current instant."""
        ...

    def sleep_until(self, instant: int) -> None:
        """Block until ``instant`` has been reached."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic_ns`` and ``time.sleep``."""

    def now(self) -> Instant:
        return Instant(time.monotonic_ns())

    def sleep_until(self, instant: int) -> None:
        remaining = instant - time.monotonic_ns()
        if remaining > 0:
            time.sleep(remaining / NS_PER_S)


class FakeClock:
    """A clock that only moves when a test advances it.

    Threads blocked in :meth:`sleep_until` wake as soon as the test advances
    time past their instant, so simulated hardware runs deterministically.
    :meth:`settle` waits until the threads an advance woke are asleep again,
    so a test can step time frame by frame with the simulated camera and
    microphone keeping up.
    """

    def __init__(self, start: int = 1_000 * NS_PER_S) -> None:
        self._now = start
        self._cond = threading.Condition()
        # Threads, not their idents: a thread that ends once woken may hand its ident on to
        # a new thread that never sleeps here, which settle() would then wait for in vain.
        self._sleeping: dict[threading.Thread, int] = {}  # thread -> the instant it waits for
        self._woken: set[threading.Thread] = set()  # woken by the last advance, not asleep yet

    def now(self) -> Instant:
        with self._cond:
            return Instant(self._now)

    def sleep_until(self, instant: int) -> None:
        me = threading.current_thread()
        with self._cond:
            self._woken.discard(me)
            self._cond.notify_all()
            # A real-time bound keeps a forgotten advance from hanging a test forever.
            deadline = time.monotonic() + 30
            self._sleeping[me] = instant
            try:
                while self._now < instant:
                    if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                        raise TimeoutError(f"FakeClock never reached {instant} (now {self._now})")
            finally:
                del self._sleeping[me]

    def advance(self, duration: int) -> Instant:
        """Move time forward by ``duration`` ns and wake sleepers; return the new instant."""
        if duration < 0:
            raise ValueError("time does not run backwards")
        with self._cond:
            self._now += duration
            self._wake()
            return Instant(self._now)

    def set(self, instant: int) -> None:
        """Jump to ``instant`` (not before the current instant)."""
        with self._cond:
            if instant < self._now:
                raise ValueError("time does not run backwards")
            self._now = instant
            self._wake()

    def _wake(self) -> None:
        self._woken |= {t for t, at in self._sleeping.items() if at <= self._now}
        self._cond.notify_all()

    def settle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every thread the last advance woke sleeps again (or has ended).

        True if they all did within ``timeout_s`` (real seconds).
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                self._woken = {t for t in self._woken if t.is_alive()}
                if not self._woken:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=min(0.05, left))
