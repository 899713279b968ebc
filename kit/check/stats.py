"""Percentiles for the check's figures: pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kit.clock import NS_PER_MS

QUANTILES = (50, 95, 99)


def spread_ms(values_ns: Sequence[int] | Sequence[float], prefix: str) -> dict[str, float]:
    """``{prefix}_p50_ms``, ``_p95_ms``, ``_p99_ms`` and ``_max_ms`` of nanosecond values.

    Empty input gives an empty dict: a figure that was not measured is absent,
    never a made-up zero.
    """
    if len(values_ns) == 0:
        return {}
    values = np.asarray(values_ns, dtype=np.float64) / NS_PER_MS
    out = {
        f"{prefix}_p{q}_ms": round(float(v), 3)
        for q, v in zip(QUANTILES, np.percentile(values, QUANTILES), strict=True)
    }
    out[f"{prefix}_max_ms"] = round(float(values.max()), 3)
    return out
