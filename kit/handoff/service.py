"""The kit's side of the hand-off: bundles of sealed visits, as folders or as a tar stream.

Making a bundle reads every file of the visit once (to hash it); the kit
keeps the bundles it made, so a download that resumes, or an export after
a download, does not read the card again. A kept bundle is dropped when a
file of the visit changes or disappears (retention erased it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from kit.errors import NotFound
from kit.handoff.bundle import Bundle, NotBundleable, Progress, check_bundleable, make_bundle
from kit.handoff.signing import Signer
from kit.handoff.tarview import TarView
from kit.handoff.verify import Report
from kit.handoff.write import Progress as WriteProgress
from kit.handoff.write import write_bundle
from kit.model import Visit
from kit.store.database import Database

log = logging.getLogger(__name__)

_KEEP = 8  # bundles kept (a manifest of a few hundred files each: small)


def _no_progress(_done: int, _total: int) -> None:
    pass


def _stamp(bundle: Bundle) -> tuple[tuple[str, int, int], ...]:
    """What the card's files look like now (sizes and change times), to see a change."""
    out = []
    for entry in bundle.entries:
        if entry.source is None:
            continue
        try:
            st = entry.source.stat()
        except OSError:
            return ()
        out.append((entry.path, st.st_size, st.st_mtime_ns))
    return tuple(out)


class HandOff:
    """Bundles of the sealed visits on this kit."""

    def __init__(self, db: Database, data_dir: Path, signer: Signer) -> None:
        self.db = db
        self.data_dir = data_dir
        self.signer = signer
        self._kept: dict[str, tuple[Bundle, tuple[tuple[str, int, int], ...]]] = {}
        self._lock = threading.Lock()

    def bundle(self, visit_id: str, progress: Progress = _no_progress) -> Bundle:
        """The visit's bundle (made now, reading every file, unless it is kept)."""
        with self._lock:
            kept = self._kept.get(visit_id)
        if kept is not None:
            bundle, stamp = kept
            if stamp and stamp == _stamp(bundle):
                return bundle
        bundle = make_bundle(self.db, self.data_dir, visit_id, self.signer, progress=progress)
        with self._lock:
            self._kept[visit_id] = (bundle, _stamp(bundle))
            while len(self._kept) > _KEEP:
                self._kept.pop(next(iter(self._kept)))
        return bundle

    def tar(self, visit_id: str) -> TarView:
        return TarView(self.bundle(visit_id))

    def export(
        self,
        visit_id: str,
        dest: Path,
        *,
        max_file_bytes: int | None = None,
        progress: WriteProgress | None = None,
    ) -> tuple[Path, Report]:
        """Write the visit's bundle into ``dest``, synced and verified from there."""
        if not dest.is_dir():
            raise NotFound(f"{dest} is not a folder")
        report: Callable[[str, float], None] = progress or (lambda _p, _f: None)
        bundle = self.bundle(visit_id, lambda d, t: report("hashing", d / max(1, t)))
        return write_bundle(bundle, dest, max_file_bytes=max_file_bytes, progress=report)

    def forget(self, visit_id: str) -> None:
        with self._lock:
            self._kept.pop(visit_id, None)

    def ready(self) -> list[Visit]:
        """The visits that can leave the kit now (ended and sealed, encrypted)."""
        ready = []
        for visit in self.db.visits():
            try:
                check_bundleable(visit)
            except NotBundleable:
                continue
            ready.append(visit)
        return ready
