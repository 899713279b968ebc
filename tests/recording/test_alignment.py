"""The pure A/V alignment: fitting a mic's clock and resampling onto the kit's."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.recording.alignment import (
    BlockTime,
    fit_timeline,
    interpolate,
    source_positions,
    source_window,
)

RATE = 48_000


def _blocks(
    seconds: float,
    skew_ppm: float,
    jitter_ns: int,
    start_ns: int = 10**12,
    seed: int = 0,
    block: int = 480,
) -> list[BlockTime]:
    rng = np.random.default_rng(seed)
    period = 1e9 / (RATE * (1 + skew_ppm * 1e-6))
    n = int(seconds * RATE / block)
    return [
        BlockTime(round(start_ns + i * block * period + rng.uniform(-jitter_ns, jitter_ns)), block)
        for i in range(n)
    ]


@pytest.mark.parametrize("skew", [-300.0, 0.0, 120.0, 300.0])
def test_fit_recovers_skew_and_offset(skew: float) -> None:
    timeline = fit_timeline(_blocks(60, skew, 1_000_000), RATE)
    assert len(timeline.segments) == 1
    assert timeline.skew_ppm == pytest.approx(skew, abs=3)
    # The first sample's instant within 0.1 ms despite +-1 ms stamp jitter.
    assert timeline.segments[0].start_ns == pytest.approx(10**12, abs=100_000)
    # ...and the end, where an uncorrected 300 ppm would be 18 ms out.
    true_end = 10**12 + len(_blocks(60, skew, 0)) * 480 * 1e9 / (RATE * (1 + skew * 1e-6))
    assert timeline.end_ns == pytest.approx(true_end, abs=300_000)


def test_overflow_and_jumps_start_new_segments() -> None:
    blocks = _blocks(10, 100, 500_000)
    # Lose 50 blocks (0.5 s) in the middle, flagged; then a silent 30 ms jump, unflagged.
    lost = blocks[:300] + [
        BlockTime(b.t_ns, b.frames, overflow=(i == 0)) for i, b in enumerate(blocks[350:600])
    ]
    lost += [BlockTime(b.t_ns + 30_000_000, b.frames) for b in blocks[600:]]
    timeline = fit_timeline(lost, RATE)
    assert len(timeline.segments) == 3
    assert timeline.skew_ppm == pytest.approx(100, abs=15)
    second = timeline.segments[1]
    assert second.first_sample == 300 * 480
    assert second.start_ns == pytest.approx(blocks[350].t_ns, abs=600_000)
    assert timeline.segments[2].start_ns == pytest.approx(blocks[600].t_ns + 30e6, abs=600_000)


def test_short_or_absurd_recordings_use_the_nominal_rate() -> None:
    short = fit_timeline(_blocks(0.5, 300, 1_000_000), RATE)
    assert short.period_ns == pytest.approx(1e9 / RATE)
    absurd = fit_timeline(_blocks(10, 50_000, 0), RATE)
    assert absurd.period_ns == pytest.approx(1e9 / RATE)
    assert fit_timeline([], RATE).segments == ()


def test_positions_map_output_instants_to_input_samples() -> None:
    timeline = fit_timeline(_blocks(10, 0, 0, start_ns=1_000_000_000), RATE)
    # Output starts 0.5 s after the first input sample: output k is input 24000 + k.
    pos = source_positions(timeline, 1_500_000_000, RATE, 0, 10)
    assert pos == pytest.approx(24_000 + np.arange(10), abs=1e-6)
    # Before the mic started there is nothing: NaN (silence).
    early = source_positions(timeline, 900_000_000, RATE, 0, 10)
    assert np.isnan(early).all()


def test_interpolate_is_exact_on_integer_positions_and_smooth_between() -> None:
    src = np.sin(np.arange(100) / 5.0).astype(np.float32)[:, None]
    exact = interpolate(src, 1000, np.arange(1010, 1020, dtype=np.float64))
    assert exact[:, 0] == pytest.approx(src[10:20, 0], abs=1e-6)
    half = interpolate(src, 1000, np.array([1010.5, np.nan]))
    assert half[0, 0] == pytest.approx(np.sin(10.5 / 5.0), abs=2e-3)
    assert half[1, 0] == 0.0
    assert source_window(np.array([5.2, 7.9])) == (4, 10)
    assert source_window(np.array([np.nan])) is None


@settings(max_examples=60, deadline=None)
@given(
    skew=st.floats(-1000, 1000),
    jitter=st.integers(0, 2_000_000),
    shift=st.integers(-(10**12), 10**12),
    seconds=st.floats(3, 30),
)
def test_fit_is_shift_invariant_and_accurate(
    skew: float, jitter: int, shift: int, seconds: float
) -> None:
    base = _blocks(seconds, skew, jitter, seed=1)
    moved = [BlockTime(b.t_ns + shift, b.frames) for b in base]
    a, b = fit_timeline(base, RATE), fit_timeline(moved, RATE)
    assert a.period_ns == pytest.approx(b.period_ns, rel=1e-9)
    assert b.segments[0].start_ns - a.segments[0].start_ns == pytest.approx(shift, abs=1_000)
    # Wherever the take ends, the fitted line is within 1 ms of the truth.
    truth_end = 10**12 + sum(x.frames for x in base) * 1e9 / (RATE * (1 + skew * 1e-6))
    assert a.end_ns == pytest.approx(truth_end, abs=1_000_000)
