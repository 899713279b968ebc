"""kit bench load's memory verdict: a slope by least squares, flat within 5 %, judged
after the soak's first take (the warm-up)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kit.bench.load import Result, after_warmup, is_flat, report, slope_mb_per_min


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
    assert "after the first take (10 min, warm-up)" in text
    assert text.rstrip().splitlines()[-1].endswith("flat within 5%")
