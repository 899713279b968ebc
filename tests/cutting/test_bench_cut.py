"""``kit bench cut`` on a tiny take, so the benchmark's code path cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.bench.cut import FFMPEG, BenchOptions, main, report, run_bench


def test_the_benchmark_runs_on_a_tiny_take(tmp_path: Path) -> None:
    options = BenchOptions(minutes=0.25, tags=3, width=320, height=240, bitrate=500_000, repeat=2)
    result = run_bench(tmp_path, options)
    # Tags at 2.87, 7.87 and 12.87 s: overlapping windows, so three adjacent moments
    # (no longer one merged clip), the whole take between them.
    assert result.clips == 3
    assert result.film_s == pytest.approx(15.0)
    assert result.take_s == pytest.approx(15.0)
    assert result.film_bytes > 0 and result.clip_bytes > 0
    assert result.copy_s > 0 and result.cut_wall_s > 0 and result.film_wall_s > 0
    assert 0 < result.peak_rss_bytes < 200 * 2**20
    assert result.runs == 2
    assert [name for name, _ in result.cut_parts] == [
        "child start and finish",
        "film",
        "stills",
        "contact sheet",
        "exports",
    ]
    if Path(FFMPEG).exists():
        assert result.reencode_s is not None and result.reencode_s > 0
    text = report(result)
    assert "film / copy" in text and "peak RSS" in text


def test_main_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--minutes",
                "0.1",
                "--tags",
                "1",
                "--width",
                "160",
                "--height",
                "120",
                "--no-reencode",
                "--repeat",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "plain copy" in out and "ffmpeg re-encode: skipped" in out
    assert "medians of 1 runs" in out
