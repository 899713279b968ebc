"""`kit bench crypto` runs end to end, briefly, so the benchmark cannot rot (no timing targets)."""

from __future__ import annotations

import math
from pathlib import Path

from kit.bench import crypto


def test_bench_crypto_measures_every_figure(tmp_path: Path) -> None:
    results = crypto.run(0.05, recorded_s=2.0, directory=tmp_path)
    for name in (
        "encrypt_mb_s",
        "encrypt_x_10mbit",
        "read_seq_mb_s",
        "read_seq_x_10mbit",
        "read_random_mb_s",
        "read_random_x_10mbit",
        "plain_cpu_s_per_s",
        "encrypted_cpu_s_per_s",
        "extra_cpu_s_per_s",
    ):
        assert math.isfinite(results[name]) and results[name] > 0, (name, results)
    assert results["recorded_s"] == 2.0
    assert list(tmp_path.iterdir()) == []  # scratch files are removed
    text = crypto.report(results)
    assert "MB/s on one core" in text
    assert "encryption adds" in text
    assert len(text.splitlines()) == 4
