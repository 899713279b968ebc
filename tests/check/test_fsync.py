"""fsync latency on the card: percentiles from a fake timer, thresholds, and a real run."""

from pathlib import Path

import pytest

from kit.check.fsync import probe_fsync
from kit.clock import NS_PER_MS
from kit.daemon.health import Level


class Durations:
    """A timer whose successive start/stop pairs are ``durations_ms`` apart."""

    def __init__(self, durations_ms: list[float]) -> None:
        self._values: list[int] = []
        t = 0
        for ms in durations_ms:
            self._values += [t, t + round(ms * NS_PER_MS)]
            t += 10**9
        self._values.reverse()

    def __call__(self) -> int:
        return self._values.pop()


def test_percentiles_of_each_write_and_fsync(tmp_path: Path) -> None:
    took = [5.0] * 95 + [40.0] * 4 + [180.0]  # mostly 5 ms, a few slow, one stall
    item = probe_fsync(tmp_path, count=100, timer=Durations(took))
    assert item.level is Level.OK, item  # a p99 of 41 ms is under a quarter second
    assert item.data == {
        "fsync_count": 100,
        "fsync_piece_bytes": 64 * 1024,
        "fsync_p50_ms": 5.0,
        "fsync_p95_ms": pytest.approx(6.75),  # linear between the 95th and 96th values
        "fsync_p99_ms": pytest.approx(41.4),
        "fsync_max_ms": 180.0,
    }
    assert item.value == "64 KiB write+fsync: p50 5.0 ms, p99 41.4 ms, max 180.0 ms over 100"
    assert list(tmp_path.iterdir()) == []  # the test file is gone


@pytest.mark.parametrize(
    ("took", "level", "words"),
    [
        ([5.0] * 97 + [300.0] * 3, Level.WARN, "A1/A2"),  # p99 over a quarter of the 1 s interval
        ([5.0] * 99 + [2500.0], Level.FAIL, "stalls"),  # one fsync longer than two intervals
    ],
)
def test_slow_cards(tmp_path: Path, took: list[float], level: Level, words: str) -> None:
    item = probe_fsync(tmp_path, count=100, interval_s=1.0, timer=Durations(took))
    assert item.level is level, item
    assert words in item.hint


def test_a_real_run_and_no_data_directory(tmp_path: Path) -> None:
    item = probe_fsync(tmp_path, count=10)
    assert item.level in {Level.OK, Level.WARN}
    assert 0 < item.data["fsync_p50_ms"] <= item.data["fsync_max_ms"]
    missing = probe_fsync(tmp_path / "none", count=10)
    assert missing.level is Level.FAIL and "no data directory" in missing.value
    assert probe_fsync(tmp_path, count=0).level is Level.SKIP
