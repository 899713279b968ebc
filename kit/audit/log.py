"""The audit log on the card: ``audit.log`` in the data directory, one entry a line.

Every entry is written with one write and an fsync before :meth:`AuditLog.record`
returns, so an entry that was made survives a power cut. A power cut in the
middle of a write can leave a torn last line: on opening, that tail is cut
off and the cut is itself recorded (``log.repaired``), so the chain stays
verifiable. An entry the card has no room for is logged as an error and
skipped: the audit never stops a recording.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from kit.audit.chain import GENESIS, AuditKind, Verdict, line, make_entry, verify
from kit.clock import Clock
from kit.daemon.wallclock import WallClock
from kit.store import layout
from kit.store.files import FileLayer

log = logging.getLogger(__name__)


class AuditLog:
    """Appends chained entries to ``<data dir>/audit.log``."""

    def __init__(self, files: FileLayer, clock: Clock, wall: WallClock) -> None:
        self._files = files
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._seq, self._prev, torn = self._tail()
        if torn:
            self.record(AuditKind.LOG_REPAIRED, {"bytes_cut": torn})

    def _tail(self) -> tuple[int, str, int]:
        """The last entry's number and hash; a torn last line is cut off (its length)."""
        if not self._files.exists(layout.AUDIT):
            return 0, GENESIS, 0
        with self._files.read(layout.AUDIT) as f:
            data = f.read()
        good = data.rfind(b"\n", 0, len(data)) + 1 if not data.endswith(b"\n") else len(data)
        torn = len(data) - good
        if torn:
            log.warning("the audit log ends in a torn line (%d bytes): cutting it off", torn)
            os.truncate(self._files.path(layout.AUDIT), good)
        last = data[:good].rstrip(b"\n").rpartition(b"\n")[2]
        if not last:
            return 0, GENESIS, torn
        try:
            entry = json.loads(last)
            return int(entry["seq"]), str(entry["hash"]), torn
        except (ValueError, KeyError, TypeError):
            # Damaged in the middle, not torn: leave it for `kit audit verify` to name,
            # and chain on from it so nothing here hides the damage.
            log.error("the audit log's last entry is damaged; `kit audit verify` tells more")
            return 0, GENESIS, torn

    def record(self, kind: AuditKind, details: Mapping[str, Any] | None = None) -> None:
        """Append an entry (ids and counts only: no names, notes or labels)."""
        now = self._clock.now()
        with self._lock:
            entry = make_entry(
                self._seq + 1, self._prev, kind, self._wall.label(now), now, details or {}
            )
            try:
                with self._files.append(layout.AUDIT) as f:
                    f.write(line(entry))
                    FileLayer.sync(f)
            except OSError as exc:
                log.error("the audit entry %s could not be written: %s", kind.value, exc)
                return
            self._seq, self._prev = entry["seq"], entry["hash"]


def verify_file(files: FileLayer) -> Verdict:
    """Check the audit log of a data directory (an absent log is an empty, intact one)."""
    if not files.exists(layout.AUDIT):
        return Verdict(0)
    with files.read(layout.AUDIT) as f:
        return verify(f.read().splitlines())
