"""The storage floor beside a bench: a bare 4 KiB overwrite + fdatasync, timed; and how
the load bench reports its acks against it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kit.bench.floor import BLOCK, FILE_BYTES, FloorProbe
from kit.bench.load import Result, floor_lines, main, report


def test_the_probe_times_durable_overwrites_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []
    real_pwrite, real_fdatasync = os.pwrite, os.fdatasync

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        calls.append(("pwrite", offset))
        return real_pwrite(fd, data, offset)

    def fdatasync(fd: int) -> None:
        calls.append(("fdatasync", fd))
        real_fdatasync(fd)

    probe = FloorProbe(tmp_path, period_s=0.01)
    (made,) = list(tmp_path.iterdir())
    assert made.stat().st_size == FILE_BYTES  # written whole before the first timing
    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    probe.start()
    time.sleep(0.3)
    ms = probe.finish()
    assert len(ms) >= 5 and all(m > 0 for m in ms)
    writes = [offset for kind, offset in calls if kind == "pwrite"]
    assert len(writes) == len(ms) and [kind for kind, _ in calls[:2]] == ["pwrite", "fdatasync"]
    assert writes[:3] == [0, BLOCK, 2 * BLOCK]  # overwrites inside the file, 4 KiB each
    assert all(offset + BLOCK <= FILE_BYTES for offset in writes)
    assert list(tmp_path.iterdir()) == []
    assert probe.error is None


def test_an_unwritable_directory_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        FloorProbe(tmp_path / "no-such-directory")


def test_a_failing_write_is_kept_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_args: object) -> int:
        raise OSError(28, "No space left on device")

    probe = FloorProbe(tmp_path, period_s=0.01)
    monkeypatch.setattr(os, "pwrite", full)
    probe.start()
    probe.join(timeout=5)
    assert probe.finish() == [] and probe.error is not None and probe.error.errno == 28


def test_a_floor_over_the_target_is_named_with_the_ratio() -> None:
    slow_disk = [1.0] * 97 + [80.0, 120.0, 300.0]
    lines = floor_lines(slow_disk, ack_p99=240.0)
    assert "p99  120.00" in lines[0] and "over 50 ms: 3 of 100" in lines[0]
    assert "ack p99 / floor p99 = 2.0x" in lines[0]
    assert "the storage alone misses the target (its own p99 120.0 ms > 50 ms)" in lines[1]
    fast_disk = [1.0] * 99 + [9.0]
    assert len(floor_lines(fast_disk, ack_p99=12.0)) == 1  # nothing to excuse
    assert floor_lines([], ack_p99=12.0) == []  # not measured: not printed


def test_the_report_carries_the_floor_under_the_acks() -> None:
    result = Result(phones=1, seconds=60.0, ack_ms=[5.0, 7.0], app_ms=[3.0, 4.0])
    result.rss = [(0.0, 100_000), (1.0, 100_000)]
    result.floor_ms = [0.5, 0.7]
    lines = report(result, "a kit").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("storage floor"))
    assert lines[at - 1].startswith("  the kit's part")


def test_floor_dir_is_only_for_a_running_kit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--floor-dir", "/tmp"])
    assert exited.value.code == 2
    assert "--floor-dir is for a running kit (--url)" in capsys.readouterr().err
