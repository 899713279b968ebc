"""`kit bench handoff` runs end to end on a short take, so the benchmark cannot rot (its
figures are printed, not asserted: timing targets belong to the benchmark's own runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kit.bench.cut import BenchOptions
from kit.bench.handoff import report, run_bench


def test_the_benchmark_exports_a_sealed_visit_and_reports_every_figure(tmp_path: Path) -> None:
    result = run_bench(tmp_path, BenchOptions(minutes=0.25, tags=200, bitrate=2_000_000, repeat=1))
    assert result.tags == 200 and result.take_s == 15.0
    assert result.files == 5  # key.age, the take, index.json, the manifest and its signature
    assert result.bundle_bytes > 15 * 2_000_000 / 8 * 0.8
    for figure in ("hash_s", "export_s", "sha256sum_s", "copy_check_s", "tar_s", "verify_s"):
        assert getattr(result, figure) > 0, figure
    text = report(result)
    assert len(text.splitlines()) == 7 and "sha256sum" in text


def test_kit_bench_handoff_on_the_command_line(tmp_path: Path) -> None:
    options = ["--minutes", "0.1", "--repeat", "1", "--tags", "3", "--data", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "kit", "bench", "handoff", *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "export (write, sync, read back, verify)" in done.stdout
