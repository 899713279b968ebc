"""The data directory: the database and the media files, opened together."""

from __future__ import annotations

import secrets
from pathlib import Path

from kit.errors import StorageError
from kit.model import Session
from kit.store import layout
from kit.store.database import Database
from kit.store.files import FileLayer


def new_id() -> str:
    """A short random id (the clock is no label: the Pi has no RTC)."""
    return secrets.token_hex(6)


class Store:
    """Sessions, takes and tags below one data directory."""

    def __init__(self, root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the data directory {root}: {exc}") from exc
        self.files = FileLayer(root)
        self.db = Database(self.files.path(layout.DATABASE))

    @property
    def root(self) -> Path:
        return self.files.root

    def new_session(self, created_ns: int, wall_time: str = "", title: str = "") -> Session:
        session = Session(id=new_id(), created_ns=created_ns, wall_time=wall_time, title=title)
        self.db.add_session(session)
        self.files.makedirs(layout.session_dir(session.id))
        return session

    def close(self) -> None:
        self.db.close()
