"""The wall clock trusts the Pi's system time only once NTP has synchronised it.

(Here, beside the hardware, because the trouble is a hardware one: a Pi has
no real-time clock, and fake-hwclock restores the time it last shut down.)
"""

from __future__ import annotations

import ctypes
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kit.clock import NS_PER_S, FakeClock
from kit.daemon import wallclock
from kit.daemon.wallclock import (
    RECHECK_NS,
    Source,
    WallClock,
    clock_synchronised,
    kernel_synchronised,
    timesync_marker,
)

# What fake-hwclock restores: the time the kit last shut down, a plausible date.
STALE_NS = round(datetime(2026, 3, 2, 18, 0, tzinfo=UTC).timestamp() * NS_PER_S)


class Answers:
    """A trust source whose answer the test sets, counting the calls."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.answer


def test_an_unsynchronised_system_clock_labels_nothing_until_a_phone_tells_the_time() -> None:
    clock = FakeClock()
    wall = WallClock(clock, system_time_ns=lambda: STALE_NS, system_trusted=Answers(False))
    assert wall.unix_ns(clock.now()) is None
    assert wall.label(clock.now()) == ""
    wall.set_from_phone(datetime(2026, 11, 25, 14, 3, tzinfo=UTC).timestamp())
    assert wall.label(clock.now()) == "2026-11-25T14:03:00Z"


def test_a_synchronised_system_clock_labels_instants() -> None:
    clock = FakeClock()
    wall = WallClock(clock, system_time_ns=lambda: STALE_NS, system_trusted=Answers(True))
    assert wall.label(clock.now() - 60 * NS_PER_S) == "2026-03-02T17:59:00Z"


def test_a_synchronised_clock_that_reads_1970_is_still_not_believed() -> None:
    clock = FakeClock()
    wall = WallClock(clock, system_time_ns=lambda: 0, system_trusted=Answers(True))
    assert wall.unix_ns(clock.now()) is None


def test_the_phone_wins_over_a_synchronised_system_clock() -> None:
    clock = FakeClock()
    trusted = Answers(True)
    wall = WallClock(clock, system_time_ns=lambda: STALE_NS, system_trusted=trusted)
    wall.set_from_phone(datetime(2026, 11, 25, tzinfo=UTC).timestamp())
    assert wall.label(clock.now()) == "2026-11-25T00:00:00Z"
    assert trusted.calls == 0


def test_sync_is_asked_again_after_a_while_and_once_trusted_stays_trusted() -> None:
    clock = FakeClock()
    synced = Answers(False)
    wall = WallClock(clock, system_time_ns=lambda: STALE_NS, system_trusted=synced)
    assert wall.unix_ns(clock.now()) is None
    assert wall.unix_ns(clock.now()) is None
    assert synced.calls == 1  # not asked on every label
    clock.advance(RECHECK_NS)
    synced.answer = True  # NTP got through
    assert wall.unix_ns(clock.now()) is not None
    synced.answer = False
    clock.advance(10 * RECHECK_NS)
    assert wall.unix_ns(clock.now()) is not None
    assert synced.calls == 2


@pytest.mark.parametrize(
    ("answers", "synchronised"),
    [
        ((True, None, None), True),  # timesyncd's marker file
        ((None, True, None), True),  # adjtimex: STA_UNSYNC clear
        ((None, False, True), False),  # the kernel says unsynchronised: no need to ask further
        ((None, None, True), True),  # adjtimex refused (ProtectClock): timedated says yes
        ((None, None, False), False),
        ((None, None, None), False),  # nobody can tell: not trusted
    ],
)
def test_the_first_source_that_can_tell_decides(
    answers: tuple[bool | None, ...], synchronised: bool
) -> None:
    asked: list[int] = []

    def source(i: int, answer: bool | None) -> Source:
        def ask() -> bool | None:
            asked.append(i)
            return answer

        return ask

    sources = tuple(source(i, a) for i, a in enumerate(answers))
    assert clock_synchronised(sources) is synchronised
    decided = next((i for i, a in enumerate(answers) if a is not None), len(answers) - 1)
    assert asked == list(range(decided + 1))


def test_the_timesyncd_marker(tmp_path: Path) -> None:
    marker = tmp_path / "synchronized"
    assert timesync_marker(marker) is None  # absent: maybe another NTP client, ask on
    marker.touch()
    assert timesync_marker(marker) is True


def test_adjtimex_is_read_without_changing_anything() -> None:
    # modes = 0 reads; whatever this machine's state, the answer is a bool or "cannot tell".
    assert kernel_synchronised() in (True, False, None)
    assert ctypes.sizeof(wallclock._Timex) >= 208  # the kernel writes the whole struct timex


@pytest.mark.parametrize(
    ("on_pi", "synchronised", "trusted"),
    [
        (True, False, False),  # fake-hwclock's stale time
        (True, True, True),
        # A laptop or CI machine keeps time with its real-time clock, as before
        # (`kit record --simulate` takes the date from it).
        (False, False, True),
    ],
)
def test_only_a_pi_waits_for_synchronisation(
    on_pi: bool, synchronised: bool, trusted: bool
) -> None:
    assert wallclock.system_clock_trusted(on_pi, lambda: synchronised) is trusted
