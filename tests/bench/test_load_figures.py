"""kit bench load's memory verdict: a slope by least squares, flat within 5 %, judged
after the warm-up (the soak's first take, or until the kit's event log is full)."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence

import pytest

from kit.bench.load import (
    Result,
    after_warmup,
    is_flat,
    memory_parts,
    report,
    server_timing,
    slope_mb_per_min,
)


def _mb(values: Sequence[float]) -> list[tuple[float, int]]:
    return [(float(t), round(mb * 1024)) for t, mb in enumerate(values)]


def test_the_slope_is_a_least_squares_fit_in_mb_per_minute() -> None:
    assert slope_mb_per_min(_mb([100, 102, 104, 106])) == pytest.approx(2.0)
    assert slope_mb_per_min(_mb([100, 110, 100, 110, 100])) == pytest.approx(0.0)
    assert slope_mb_per_min(_mb([100])) == 0.0


def test_flat_is_a_fitted_change_within_five_percent_of_the_start() -> None:
    assert is_flat(_mb([100] * 30 + [103] * 30))
    assert not is_flat(_mb([100 + 0.5 * t for t in range(60)]))  # +30 MB in an hour


def test_a_warm_up_rise_is_judged_apart() -> None:
    rise_then_hold = [100 + 5 * t for t in range(10)] + [150, 151, 149, 150, 152, 150] * 8
    samples = _mb(rise_then_hold)
    assert not is_flat(samples)
    settled = after_warmup(samples, 10.0)
    assert settled[0][0] == 10.0
    assert is_flat(settled)
    result = Result(phones=8, rss=samples, warmup_min=10.0, seconds=57 * 60)
    text = report(result, "here")
    assert "NOT flat within 5%" in text
    assert "after the warm-up (10 min: the first take)" in text
    assert text.rstrip().splitlines()[-1].endswith("flat within 5%")


def test_the_warm_up_lasts_until_the_event_log_is_full() -> None:
    """A bounded log filling is growth by design: judged once it holds its capacity."""
    fills = [100 + 1.0 * t for t in range(25)] + [125.0] * 40
    result = Result(phones=8, rss=_mb(fills), warmup_min=10.0, seconds=64 * 60)
    assert not is_flat(after_warmup(result.rss, result.warmup_min))
    result.log_full_min, result.warmup_min = 25.0, 25.0
    text = report(result, "here")
    assert "after the warm-up (25 min: until the kit's event log was full)" in text
    assert is_flat(after_warmup(result.rss, result.warmup_min))


def test_the_memory_parts_are_read_from_the_process() -> None:
    """Anonymous and file-backed kB and the thread count, as /proc says them."""
    started = threading.Event()
    done = threading.Event()

    def hold() -> None:
        started.set()
        done.wait(10)

    before = memory_parts(os.getpid())
    thread = threading.Thread(target=hold)
    thread.start()
    started.wait(10)
    during = memory_parts(os.getpid())
    done.set()
    thread.join()
    assert set(before) == {"anon_kb", "file_kb", "threads"}
    assert during["threads"] == before["threads"] + 1
    assert before["anon_kb"] > 1000 and before["file_kb"] > 1000  # a Python process
    assert memory_parts(None) == {}


@pytest.mark.parametrize(
    ("header", "name", "ms"),
    [
        ("app;dur=12.5, commit;dur=3.0", "app", 12.5),
        ("app;dur=12.5, commit;dur=3.0", "commit", 3.0),
        ('db;desc="the database";dur=7', "db", 7.0),
        ("app;dur=12.5", "commit", math.nan),
        ("app;dur=x", "app", math.nan),
        ("", "app", math.nan),
    ],
)
def test_server_timing_is_read_by_metric(header: str, name: str, ms: float) -> None:
    got = server_timing(header, name)
    assert got == ms or (math.isnan(got) and math.isnan(ms))


def test_slow_acks_are_reported_with_the_kits_part() -> None:
    result = Result(phones=1, seconds=60.0)
    result.ack_ms = [5.0, 80.0, 900.0]
    result.app_ms = [4.0, 70.0, 6.0]
    result.slow = [(10.0, 80.0, 70.0), (20.0, 900.0, 6.0), (30.0, 60.0, math.nan)]
    result.rss = [(0.0, 100_000), (1.0, 100_000)]
    text = report(result, "a kit")
    assert "0:10.0 80 ms (kit 70)" in text
    assert "the kit itself took over 50 ms (its Server-Timing): 1;" in text
    assert "without a Server-Timing: 1;" in text  # an older kit's answer is not "outside"
    assert "the kit's part (Server-Timing app) p50    6.00" in text
