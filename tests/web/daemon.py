"""The real daemon (``kit run --simulate``) as a subprocess on a free port with a temp data dir."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kit.bench.launch import RunningKit, kit_run_simulated


class Daemon(RunningKit):
    """A running ``kit run --simulate``, plus a read-only look at its stored tags."""

    def stored_tags(self) -> list[dict[str, Any]]:
        """The live (not deleted) tags in the daemon's database, read-only."""
        uri = f"file:{self.data / 'kit.db'}?mode=ro"
        with sqlite3.connect(uri, uri=True) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM tags WHERE deleted = 0 ORDER BY at_ns").fetchall()
        return [dict(r) for r in rows]


@contextmanager
def kit_run(data: Path, *extra: str, timeout_s: float = 60.0) -> Iterator[Daemon]:
    """Start the daemon and wait until it serves; SIGTERM (and wait) afterwards."""
    with kit_run_simulated(data, *extra, timeout_s=timeout_s) as kit:
        yield Daemon(kit.url, kit.code, kit.data, kit.log)
