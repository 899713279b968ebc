"""The low-priority child process: result, progress, niceness, failures, cancelling."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest

from kit.cutting import CutError
from kit.cutting.child import run_in_child
from kit.errors import NotFound

# The functions below run in the spawned child, which imports this module by name.


def _count(n: int, *, progress: Callable[[float], None]) -> tuple[int, int]:
    for i in range(n):
        progress((i + 1) / n)
    return n * 2, os.nice(0)


def _fail_kit(*, progress: Callable[[float], None]) -> None:
    raise NotFound("no visit 'x'")


def _fail_other(*, progress: Callable[[float], None]) -> None:
    raise ValueError("bad frame")


def _die(*, progress: Callable[[float], None]) -> None:
    progress(0.5)
    os._exit(3)


def _hang(*, progress: Callable[[float], None]) -> None:
    progress(0.1)
    threading.Event().wait(60)


def test_result_progress_and_low_priority() -> None:
    seen: list[float] = []
    run = run_in_child(_count, 200, progress=seen.append)
    value, niceness = run.value
    assert value == 400
    assert niceness >= os.nice(0) + 10 or niceness == 19
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert 10 <= len(seen) <= 101  # whole percents, not every call
    assert 0 < run.peak_rss_bytes < 200 * 2**20
    assert run.wall_s > 0


def test_the_peak_is_the_childs_own_not_its_parents() -> None:
    # A large parent (the daemon after a long day, or a test runner) must
    # not show up in the child's figure: Linux keeps ru_maxrss across exec.
    ballast = bytearray(os.urandom(1 << 20) * 256)  # 256 MiB, touched
    try:
        run = run_in_child(_count, 10)
    finally:
        del ballast
    assert 0 < run.peak_rss_bytes < 200 * 2**20


def test_kit_errors_come_back_as_they_are() -> None:
    with pytest.raises(NotFound, match="no visit"):
        run_in_child(_fail_kit)


def test_other_errors_come_back_as_cut_errors() -> None:
    with pytest.raises(CutError, match="ValueError: bad frame") as info:
        run_in_child(_fail_other)
    assert isinstance(info.value.__cause__, ValueError)


def test_a_child_that_dies_is_reported() -> None:
    with pytest.raises(CutError, match="died"):
        run_in_child(_die)


def test_cancel_stops_the_child() -> None:
    cancel = threading.Event()

    def on_progress(_: float) -> None:
        cancel.set()

    with pytest.raises(CutError, match="cancelled"):
        run_in_child(_hang, progress=on_progress, cancel=cancel)
