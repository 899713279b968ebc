"""The data directory: the database and the media files, opened together."""

from __future__ import annotations

import secrets
from pathlib import Path

from kit.errors import StorageError
from kit.model import Visit
from kit.store import layout
from kit.store.database import Database
from kit.store.files import FileLayer, KeyLookup, _no_keys
from kit.store.lock import DataDirLock


def new_id() -> str:
    """A short random id (the clock is no label: the Pi has no RTC)."""
    return secrets.token_hex(6)


class Store:
    """Visits, takes and tags below one data directory, which it holds for itself
    (:class:`kit.store.lock.DataDirLock`) until :meth:`close`."""

    def __init__(self, root: Path, keys: KeyLookup = _no_keys) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the data directory {root}: {exc}") from exc
        self.files = FileLayer(root, keys)
        self._lock = DataDirLock(self.files.path(layout.LOCK))
        try:
            self._move_legacy_visits()
            self.db = Database(self.files.path(layout.DATABASE), keys)
        except BaseException:
            self._lock.release()
            raise

    def _move_legacy_visits(self) -> None:
        """Schema 1 kept visits in ``sessions/``: move them (one rename, fsync'd) first."""
        legacy = self.files.path(layout.LEGACY_VISITS)
        if legacy.is_dir() and not self.files.exists(layout.VISITS):
            legacy.replace(self.files.path(layout.VISITS))
            self.files.sync_dir(self.files.root)

    @property
    def root(self) -> Path:
        return self.files.root

    def new_visit(
        self, started_ns: int, case_ref: str = "Visit", *, boot_id: str = "", started_wall: str = ""
    ) -> Visit:
        """Store an open, plain (unencrypted, unconsented) visit as it is given: for tests
        and tools below the library, which checks, consents and encrypts visits."""
        visit = Visit(
            id=new_id(),
            case_ref=case_ref,
            started_ns=started_ns,
            boot_id=boot_id,
            started_wall=started_wall,
        )
        self.db.add_visit(visit)
        self.files.makedirs(layout.visit_dir(visit.id))
        return self.db.visit(visit.id)

    def close(self) -> None:
        self.db.close()
        self._lock.release()
