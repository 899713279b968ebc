"""`kit bench record` runs end to end on a short take, so the benchmark cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_record_prints_its_figures(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kit", "bench", "record", "--seconds", "4", "--data", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert re.search(r"take: 4\.0 s recorded, 120 frames, state ready", out), out
    assert re.search(r"frames dropped: \d+ \(target 0\)", out), out
    core = re.search(r"= ([\d.]+) core per recorded second", out)
    assert core is not None and 0 < float(core.group(1)) < 1, out
    rss = re.search(r"peak RSS: (\d+) MB", out)
    assert rss is not None and int(rss.group(1)) > 0, out
    skew = re.search(r"mic skew measured ([+-][\d.]+) ppm", out)
    # Set to +150 ppm; 4 s of +-1 ms stamp jitter pins it to within ~25 ppm (1 sigma).
    assert skew is not None and abs(float(skew.group(1)) - 150) < 100, out
