"""The camera's timestamps and the mic's clock, judged from a take's frames and blocks (pure)."""

import numpy as np
import pytest

from kit.check.stats import spread_ms
from kit.check.timing import FrameArrival, camera_clock, camera_rate_ppm, frame_gaps, mic_drift
from kit.clock import NS_PER_MS, NS_PER_S
from kit.daemon.health import Level
from kit.recording.alignment import BlockTime

PERIOD = NS_PER_S // 30
T0 = 5_000 * NS_PER_S


def frames(offsets_ms: list[float], *, period: int = PERIOD) -> list[FrameArrival]:
    return [
        FrameArrival(T0 + n * period, T0 + n * period + round(ms * NS_PER_MS))
        for n, ms in enumerate(offsets_ms)
    ]


def test_spread_of_nanoseconds_in_ms() -> None:
    values = [n * NS_PER_MS for n in range(1, 101)]  # 1 .. 100 ms
    spread = spread_ms(values, "x")
    assert spread == {
        "x_p50_ms": pytest.approx(50.5),
        "x_p95_ms": pytest.approx(95.05),
        "x_p99_ms": pytest.approx(99.01),
        "x_max_ms": 100.0,
    }
    assert spread_ms([], "x") == {}  # not measured: absent, never zero


def test_offset_and_jitter_percentiles() -> None:
    # 40 ms after capture, one frame in ten 3 ms later than that.
    item = camera_clock(frames([43.0 if n % 10 == 0 else 40.0 for n in range(300)]), 30)
    assert item.level is Level.OK, item
    assert item.data["camera_frames"] == 300
    assert item.data["camera_offset_p50_ms"] == pytest.approx(40.0)
    assert item.data["camera_offset_min_ms"] == pytest.approx(40.0)
    assert item.data["camera_offset_max_ms"] == pytest.approx(43.0)
    assert item.data["camera_jitter_p50_ms"] == pytest.approx(0.0)
    assert item.data["camera_jitter_p99_ms"] == pytest.approx(3.0)
    assert item.value.startswith("offset p50 40.0 ms, jitter p99 3.0 ms over 300 frames")


@pytest.mark.parametrize(
    ("offset_ms", "level", "words"),
    [
        (-2.0, Level.FAIL, "arrive before their capture"),  # stamps on another clock, ahead
        (7_200_000.0, Level.FAIL, "on another clock"),  # e.g. CLOCK_BOOTTIME after a suspend
        (250.0, Level.WARN, "arrive late"),  # more than six frames behind
    ],
)
def test_camera_clock_problems(offset_ms: float, level: Level, words: str) -> None:
    item = camera_clock(frames([offset_ms] * 90), 30)
    assert item.level is level, item
    assert words in item.value


def test_no_frames() -> None:
    assert camera_clock([], 30).level is Level.FAIL


def test_frame_gaps_count_the_missing_frames() -> None:
    pts = [T0 + n * PERIOD for n in (0, 1, 2, 5, 6, 8)]
    assert frame_gaps(pts, 30) == 3  # 3 and 4 missing, then 7
    assert frame_gaps(pts[:3], 30) == 0


@pytest.mark.parametrize("ppm", [0.0, 100.0, -250.0])
def test_camera_rate_in_ppm(ppm: float) -> None:
    # A sensor whose frame clock runs ppm fast gives shorter periods on the kit clock.
    period = PERIOD / (1 + ppm * 1e-6)
    pts = [T0 + round(n * period) for n in range(300) if n != 100]  # one frame lost
    assert camera_rate_ppm(pts, 30) == pytest.approx(ppm, abs=0.5)
    assert camera_rate_ppm(pts[:30], 30) is None  # one second: too short to fit


def blocks(
    seconds: float, ppm: float, *, jitter_ms: float = 1.0, rate: int = 48_000, seed: int = 3
) -> list[BlockTime]:
    """A mic ``ppm`` fast: each 480-sample block lasts 10 ms / (1 + ppm) of kit time."""
    rng = np.random.default_rng(seed)
    period = NS_PER_S / rate / (1 + ppm * 1e-6)
    count = round(seconds * rate / 480)
    jitter = rng.uniform(-jitter_ms, jitter_ms, count) * NS_PER_MS
    return [BlockTime(T0 + round(k * 480 * period + jitter[k]), 480) for k in range(count)]


def test_mic_drift_is_fitted_as_the_alignment_fits_it() -> None:
    item = mic_drift(blocks(60, 300.0), 48_000, camera_ppm=20.0)
    assert item.level is Level.OK, item
    assert item.data["mic_skew_ppm"] == pytest.approx(300, abs=3)
    assert item.data["mic_drift_ms_per_min"] == pytest.approx(18.0, abs=0.2)
    assert item.data["mic_vs_camera_ppm"] == pytest.approx(280, abs=3)
    assert item.data["mic_segments"] == 1
    assert item.data["mic_span_s"] == pytest.approx(60, abs=0.05)
    assert item.data["mic_stamp_jitter_max_ms"] <= 1.1  # the +-1 ms put in
    assert "+300" in item.value or "+299" in item.value or "+301" in item.value


def test_mic_drift_needs_two_seconds() -> None:
    item = mic_drift(blocks(1.5, 0.0), 48_000)
    assert item.level is Level.SKIP
    assert "too short" in item.value
    assert mic_drift([], 48_000).level is Level.FAIL


def test_scattered_stamps_and_lost_audio_are_reported() -> None:
    scattered = mic_drift(blocks(20, 0.0, jitter_ms=12.0), 48_000)
    assert scattered.level is Level.WARN
    assert "scatter" in scattered.value
    gappy = blocks(20, 0.0)
    lost = gappy[:500] + [
        BlockTime(b.t_ns, b.frames, overflow=(i == 0)) for i, b in enumerate(gappy[520:])
    ]
    item = mic_drift(lost, 48_000)
    assert item.level is Level.WARN
    assert "1 gaps in the audio" in item.value
    assert item.data["mic_segments"] == 2


def test_a_crystal_far_off_is_flagged() -> None:
    item = mic_drift(blocks(20, 1500.0), 48_000)
    assert item.level is Level.WARN
    assert item.data["mic_skew_ppm"] == pytest.approx(1500, abs=10)
