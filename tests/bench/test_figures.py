"""A bench's --json is strict JSON: a figure not measured is null, never NaN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kit.bench import figures
from kit.bench.tagging import percentile


def _refuse(constant: str) -> float:
    raise ValueError(f"not JSON: {constant}")


def test_figures_not_measured_are_written_as_null(tmp_path: Path) -> None:
    path = tmp_path / "load.json"
    figures.write(
        path,
        {
            "ack_ms": {50: 6.2, 99: percentile([], 99)},  # nothing measured: nan
            "slow_acks": [(10.0, 80.0, math.nan)],
            "peak": math.inf,
            "lost": [],
            "ok": False,
            "takes": [{"id": "t1", "dropped_frames": 0}],
        },
    )
    text = path.read_text(encoding="utf-8")
    read = json.loads(text, parse_constant=_refuse)  # as strict as jq or JSON.parse
    assert read == {
        "ack_ms": {"50": 6.2, "99": None},
        "slow_acks": [[10.0, 80.0, None]],
        "peak": None,
        "lost": [],
        "ok": False,
        "takes": [{"id": "t1", "dropped_frames": 0}],
    }
    assert text.endswith("}\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, 1.5), (-math.inf, None), (0, 0), ("nan", "nan"), (None, None), (True, True)],
)
def test_only_non_finite_floats_change(value: object, expected: object) -> None:
    assert figures.strict(value) == expected
