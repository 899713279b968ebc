"""``kit bench cut`` on small samples, so the benchmark's code path cannot rot, and its
memory figure: the cutting child's peak RSS does not grow with the tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.bench.cut import FFMPEG, TARGET_RSS, BenchOptions, kit_options, main, report, run_bench
from kit.config import CameraConfig

MiB = 2**20


def test_the_benchmark_runs_on_a_tiny_take(tmp_path: Path) -> None:
    options = BenchOptions(
        minutes=0.25, width=320, height=240, bitrate=500_000, tag_counts=(3, 1), repeat=2
    )
    result = run_bench(tmp_path, options)
    assert result.take_s == pytest.approx(15.0)
    assert [r.tags for r in result.runs] == [3, 1]
    three, one = result.runs
    # Tags at 2.87, 7.87 and 12.87 s: overlapping windows, so three adjacent moments
    # (no longer one merged clip), the whole take between them.
    assert three.clips == 3 and three.film_s == pytest.approx(15.0)
    assert one.clips == 1 and one.film_s == pytest.approx(10.0)  # a moment is at most 10 s
    for run in result.runs:
        assert run.runs == 2 and run.pages == 1 and run.film_bytes > 0
        assert run.cut_s > 0 and 0 < run.peak_rss_bytes < TARGET_RSS
        assert run.seeks == run.tags and run.decoded >= run.tags
        assert [name for name, _ in run.parts] == [
            "child start and finish",
            "film",
            "stills (beside the film)",
            "contact sheet",
            "exports",
        ]
        if Path(FFMPEG).exists():
            assert run.ffmpeg_s is not None and run.ffmpeg_s > 0
            assert run.ratio is not None and run.ratio > 0
    # The re-encode baseline runs once, for the first count of tags.
    assert one.reencode_s is None
    if Path(FFMPEG).exists():
        assert three.reencode_s is not None and three.reencode_s > 0
    text = report(result)
    assert "whole cut / ffmpeg" in text and "peak RSS at 3/1 tags" in text


def test_the_kits_own_recording_settings_are_the_default() -> None:
    camera = CameraConfig()
    options = kit_options(minutes=1.0)
    assert (options.width, options.height, options.fps, options.bitrate) == (
        camera.width,
        camera.height,
        camera.fps,
        camera.bitrate,
    )


def test_the_cuts_memory_does_not_grow_with_its_tags(tmp_path: Path) -> None:
    """A minute as the kit records it (720p, 4 Mbit/s), cut with 8 and with 200 tags.

    A sheet of 200 stills in one image was ~100 MB of pixels on its own; in pages, the
    200-tag cut needs about what the 8-tag one does (RSS is not noisy like time).
    """
    options = kit_options(
        minutes=1.0, tag_counts=(8, 200), repeat=1, baseline=False, reencode=False
    )
    result = run_bench(tmp_path, options)
    few, many = result.runs
    assert (few.tags, many.tags) == (8, 200)
    assert many.pages == 12 and few.pages == 1
    # The take really is at about the kit's bitrate, not a far smaller file.
    assert result.take_bytes * 8 / result.take_s > 0.8 * CameraConfig().bitrate
    for run in result.runs:
        assert 0 < run.peak_rss_bytes <= TARGET_RSS, run
    assert many.peak_rss_bytes - few.peak_rss_bytes < 30 * MiB, (few, many)


def test_main_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--minutes", "0.1", "--tags", "1", "--width", "160", "--height", "120"]
    assert main([*argv, "--no-reencode", "--no-ffmpeg", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "ffmpeg stream copy + concat: skipped" in out
    assert "medians of 1 runs" in out and "peak RSS at 1 tags" in out
    with pytest.raises(SystemExit):
        main(["--tags", "8,0"])
