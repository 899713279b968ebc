"""The free-space guard: table-driven checks of the arithmetic and the thresholds."""

from dataclasses import replace
from pathlib import Path

import pytest

from kit.config import Config
from kit.daemon.storage import RecordingRates, StorageGuard, StorageState, free_bytes
from kit.errors import ConfigError

NS_PER_MIN = 60 * 1_000_000_000
MB = 1_000_000

# Round numbers so the expectations can be worked out by hand: 1 MB/s raw, 0.5 MB/s MP4.
RATES = RecordingRates(raw_bytes_per_s=1 * MB, mp4_bytes_per_s=MB // 2)
PEAK_PER_MIN = 90 * MB  # (1 + 0.5) MB/s * 60 s


def guard() -> StorageGuard:
    return StorageGuard(RATES, min_start_minutes=10, stop_at_minutes=1)


def test_rates_of_the_default_config_follow_the_documented_estimate() -> None:
    rates = RecordingRates.for_recording(
        video_bitrate=4_000_000,
        fps=30,
        audio_rate=48_000,
        audio_channels=1,
        audio_blocksize=480,
        aac_bitrate=128_000,
        video_headroom=1.0,
    )
    # raw: 500 kB/s of H.264 + 96 kB/s of PCM + 20-byte heads for 30 frames and 100 blocks.
    assert rates.raw_bytes_per_s == 500_000 + 30 * 20 + 96_000 + 100 * 20
    # MP4: the same H.264 + 16 kB/s of AAC + 16 index bytes per video and AAC frame.
    assert rates.mp4_bytes_per_s == pytest.approx(500_000 + 16_000 + (30 + 48_000 / 1024) * 16)
    assert rates.peak_bytes_per_s == rates.raw_bytes_per_s + rates.mp4_bytes_per_s


@pytest.mark.parametrize(
    ("channels", "bitrate", "more_than_default"),
    [(2, 4_000_000, True), (1, 8_000_000, True), (1, 2_000_000, False)],
)
def test_rates_grow_with_channels_and_bitrate(
    channels: int, bitrate: int, more_than_default: bool
) -> None:
    base = Config()
    config = replace(
        base,
        audio=replace(base.audio, channels=channels),
        camera=replace(base.camera, bitrate=bitrate),
    )
    default = RecordingRates.from_config(base).peak_bytes_per_s
    assert (RecordingRates.from_config(config).peak_bytes_per_s > default) is more_than_default


@pytest.mark.parametrize(
    ("free", "recorded_min", "minutes"),
    [
        (0, 0, 0.0),
        (90 * MB, 0, 1.0),
        (900 * MB, 0, 10.0),
        # 10 min in, the mux will need 10 * 30 MB = 300 MB of the 900 MB.
        (900 * MB, 10, 600 / 90),
        # The mux no longer fits at all: nothing is recordable (never negative).
        (100 * MB, 10, 0.0),
    ],
)
def test_minutes_left(free: int, recorded_min: int, minutes: float) -> None:
    assert guard().minutes_left(free, recorded_min * NS_PER_MIN) == pytest.approx(minutes)


@pytest.mark.parametrize(
    ("free", "may_start"),
    [
        (10 * PEAK_PER_MIN - 1, False),
        (10 * PEAK_PER_MIN, True),
        (100 * PEAK_PER_MIN, True),
        (0, False),
    ],
)
def test_may_start_at_the_floor(free: int, may_start: bool) -> None:
    assert guard().may_start(free) is may_start


@pytest.mark.parametrize(
    ("free", "recorded_min", "must_stop"),
    [
        (PEAK_PER_MIN + 1, 0, False),
        (PEAK_PER_MIN, 0, True),
        (0, 0, True),
        # 30 min in: the mux needs 900 MB, so 990 MB free leaves exactly 1 minute.
        (990 * MB, 30, True),
        (990 * MB + 1, 30, False),
        # The same free space with a short take running is plenty.
        (990 * MB, 1, False),
    ],
)
def test_must_stop_leaves_room_for_the_mux(free: int, recorded_min: int, must_stop: bool) -> None:
    assert guard().must_stop(free, recorded_min * NS_PER_MIN) is must_stop


@pytest.mark.parametrize(
    ("free", "low"),
    [(20 * PEAK_PER_MIN - 1, True), (20 * PEAK_PER_MIN, False), (5 * PEAK_PER_MIN, True)],
)
def test_low_below_twice_the_start_floor(free: int, low: bool) -> None:
    assert guard().low(free) is low


def test_assess_gathers_the_verdicts() -> None:
    state = guard().assess(15 * PEAK_PER_MIN)
    assert state == StorageState(
        free_bytes=15 * PEAK_PER_MIN, minutes_left=15.0, may_start=True, must_stop=False, low=True
    )


def test_from_config_uses_the_storage_section() -> None:
    base = Config()
    config = replace(
        base,
        storage=replace(base.storage, min_free_minutes_to_start=30, stop_at_free_minutes=2),
    )
    g = StorageGuard.from_config(config)
    assert (g.min_start_minutes, g.stop_at_minutes, g.low_minutes) == (30, 2, 60)
    assert g.rates == RecordingRates.from_config(config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_start_minutes": 1, "stop_at_minutes": 2}, "at least"),
        ({"stop_at_minutes": -1}, "negative"),
    ],
)
def test_inconsistent_thresholds_are_config_errors(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StorageGuard(RATES, **kwargs)


def test_rates_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        StorageGuard(RecordingRates(raw_bytes_per_s=0, mp4_bytes_per_s=1))


def test_free_bytes_reads_the_filesystem(tmp_path: Path) -> None:
    free = free_bytes(tmp_path)
    assert isinstance(free, int)
    assert free > 0
