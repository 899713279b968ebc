"""A bench's ``--json``: its figures as strict JSON, which every reader accepts.

A figure that was not measured (a percentile of nothing is ``nan``) is written as
``null``, not as ``NaN``, which Python writes by default but JSON has no word for
(``jq``, JavaScript's ``JSON.parse`` and most other readers refuse the whole file).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def strict(value: Any) -> Any:
    """``value`` with every non-finite float (nan, inf) inside it made ``None``; tuples
    become lists, as JSON has only those."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict(item) for item in value]
    return value


def write(path: Path, figures: dict[str, Any]) -> None:
    """Write ``figures`` to ``path`` as indented, strict JSON."""
    path.write_text(json.dumps(strict(figures), indent=2, allow_nan=False) + "\n", encoding="utf-8")
