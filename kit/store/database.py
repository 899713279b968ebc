"""SQLite (WAL) metadata: visits, takes and tags.

One connection, serialised by a lock: writes are tiny and the web server's
threads share it. Every write commits before the call returns, so an
acknowledged tag survives a power cut (``synchronous=FULL``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kit.errors import NotFound, StateError, StorageError, StorageFull
from kit.model import UNFINISHED, Tag, Take, TakeState, Visit

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    id TEXT PRIMARY KEY,
    case_ref TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    boot_id TEXT NOT NULL DEFAULT '',
    started_wall TEXT NOT NULL DEFAULT '',
    ended_ns INTEGER,
    ended_wall TEXT NOT NULL DEFAULT ''
);
-- At most one visit is open: the one the kit records into.
CREATE UNIQUE INDEX IF NOT EXISTS one_open_visit ON visits ((ended_ns IS NULL))
    WHERE ended_ns IS NULL;
CREATE TABLE IF NOT EXISTS takes (
    id TEXT PRIMARY KEY,
    visit_id TEXT NOT NULL REFERENCES visits(id),
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    boot_id TEXT NOT NULL DEFAULT '',
    first_frame_ns INTEGER,
    end_ns INTEGER,
    video_frames INTEGER NOT NULL DEFAULT 0,
    dropped_frames INTEGER NOT NULL DEFAULT 0,
    mic_overflows INTEGER NOT NULL DEFAULT 0,
    audio_skew_ppm REAL,
    error TEXT NOT NULL DEFAULT '',
    recovered INTEGER NOT NULL DEFAULT 0,
    UNIQUE (visit_id, seq)
);
CREATE TABLE IF NOT EXISTS tags (
    id TEXT PRIMARY KEY,
    visit_id TEXT NOT NULL REFERENCES visits(id),
    take_id TEXT REFERENCES takes(id),
    at_ns INTEGER NOT NULL,
    label TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    author TEXT NOT NULL DEFAULT '',
    created_ns INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tags_by_take ON tags (take_id, at_ns);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Schema 1 called a visit a "session" and had no lifecycle: every session it
# left is an ended visit, referenced as "Visit <n>" until someone renames it.
_FROM_SCHEMA_1 = """
ALTER TABLE sessions RENAME TO visits;
ALTER TABLE visits RENAME COLUMN created_ns TO started_ns;
ALTER TABLE visits RENAME COLUMN wall_time TO started_wall;
ALTER TABLE visits RENAME COLUMN title TO case_ref;
ALTER TABLE visits ADD COLUMN boot_id TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN ended_ns INTEGER;
ALTER TABLE visits ADD COLUMN ended_wall TEXT NOT NULL DEFAULT '';
UPDATE visits SET ended_ns = started_ns,
    case_ref = CASE WHEN case_ref = '' THEN 'Visit ' || rowid ELSE case_ref END;
ALTER TABLE takes RENAME COLUMN session_id TO visit_id;
ALTER TABLE takes ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tags RENAME COLUMN session_id TO visit_id;
"""

_VISIT_COLUMNS = "id, case_ref, started_ns, boot_id, started_wall, ended_ns, ended_wall"
_TAKE_COLUMNS = (
    "id, visit_id, seq, state, boot_id, first_frame_ns, end_ns, video_frames, "
    "dropped_frames, mic_overflows, audio_skew_ppm, error, recovered"
)
_TAG_COLUMNS = "id, visit_id, take_id, at_ns, label, note, author, created_ns"


@contextmanager
def full_card_is_storage_full() -> Iterator[None]:
    """SQLite's "database or disk is full" as :class:`~kit.errors.StorageFull`: a full
    card is not a bug, and the phone is told so (507), never an internal error."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc):
            raise StorageFull(f"the card is full: {exc}") from exc
        raise


def _take(row: sqlite3.Row) -> Take:
    values = dict(row)
    values["state"] = TakeState(values["state"])
    values["recovered"] = bool(values["recovered"])
    return Take(**values)


class Database:
    """The kit's metadata in one SQLite file."""

    def __init__(self, path: Path) -> None:
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._migrate(path)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open the database {path}: {exc}") from exc
        self._lock = threading.Lock()

    def _migrate(self, path: Path) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{path} was written by a newer kit (schema {version} > {SCHEMA_VERSION})"
            )
        if version == 1:
            # One transaction, the version included: a crash leaves schema 1 or 2, not half.
            self._conn.executescript(f"BEGIN; {_FROM_SCHEMA_1} PRAGMA user_version=2; COMMIT;")
        self._conn.executescript(_SCHEMA)
        if version != SCHEMA_VERSION:
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, full_card_is_storage_full():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, args))

    # visits

    def add_visit(self, visit: Visit) -> None:
        """Store a new visit; StateError if it is open and another visit is open already."""
        try:
            with self._tx() as c:
                c.execute(
                    f"INSERT INTO visits ({_VISIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        visit.id,
                        visit.case_ref,
                        visit.started_ns,
                        visit.boot_id,
                        visit.started_wall,
                        visit.ended_ns,
                        visit.ended_wall,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if visit.is_open and self.open_visit() is not None:
                raise StateError("another visit is open: end it first") from exc
            raise

    def visit(self, visit_id: str) -> Visit:
        rows = self._query(f"SELECT {_VISIT_COLUMNS} FROM visits WHERE id = ?", (visit_id,))
        if not rows:
            raise NotFound(f"no visit {visit_id!r}")
        return Visit(**dict(rows[0]))

    def visits(self) -> list[Visit]:
        rows = self._query(f"SELECT {_VISIT_COLUMNS} FROM visits ORDER BY rowid")
        return [Visit(**dict(r)) for r in rows]

    def open_visit(self) -> Visit | None:
        """The visit the kit records into, if one is open."""
        rows = self._query(f"SELECT {_VISIT_COLUMNS} FROM visits WHERE ended_ns IS NULL")
        return Visit(**dict(rows[0])) if rows else None

    def rename_visit(self, visit_id: str, case_ref: str) -> Visit:
        with self._tx() as c:
            cur = c.execute("UPDATE visits SET case_ref = ? WHERE id = ?", (case_ref, visit_id))
            if cur.rowcount == 0:
                raise NotFound(f"no visit {visit_id!r}")
        return self.visit(visit_id)

    def end_visit(self, visit_id: str, ended_ns: int, ended_wall: str) -> Visit:
        """End an open visit; StateError while one of its takes is recording."""
        with self._tx() as c:
            row = c.execute("SELECT ended_ns FROM visits WHERE id = ?", (visit_id,)).fetchone()
            if row is None:
                raise NotFound(f"no visit {visit_id!r}")
            if row[0] is not None:
                raise StateError("this visit has ended already")
            recording = c.execute(
                "SELECT 1 FROM takes WHERE visit_id = ? AND state = ?",
                (visit_id, TakeState.RECORDING.value),
            ).fetchone()
            if recording is not None:
                raise StateError("a take is recording: stop it before ending the visit")
            c.execute(
                "UPDATE visits SET ended_ns = ?, ended_wall = ? WHERE id = ?",
                (ended_ns, ended_wall, visit_id),
            )
        return self.visit(visit_id)

    # takes

    def add_take(self, visit_id: str, take_id: str, boot_id: str) -> Take:
        """Register a new take (state recording) as the visit's next in sequence."""
        with self._tx() as c:
            row = c.execute("SELECT ended_ns FROM visits WHERE id = ?", (visit_id,)).fetchone()
            if row is not None and row[0] is not None:
                raise StateError("this visit has ended: start a new visit to record")
            seq = c.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM takes WHERE visit_id = ?", (visit_id,)
            ).fetchone()[0]
            c.execute(
                "INSERT INTO takes (id, visit_id, seq, state, boot_id) VALUES (?, ?, ?, ?, ?)",
                (take_id, visit_id, seq, TakeState.RECORDING.value, boot_id),
            )
        return self.take(take_id)

    def take(self, take_id: str) -> Take:
        rows = self._query(f"SELECT {_TAKE_COLUMNS} FROM takes WHERE id = ?", (take_id,))
        if not rows:
            raise NotFound(f"no take {take_id!r}")
        return _take(rows[0])

    def takes(self, visit_id: str) -> list[Take]:
        rows = self._query(
            f"SELECT {_TAKE_COLUMNS} FROM takes WHERE visit_id = ? ORDER BY seq", (visit_id,)
        )
        return [_take(r) for r in rows]

    def unfinished_takes(self) -> list[Take]:
        marks = ", ".join("?" for _ in UNFINISHED)
        rows = self._query(
            f"SELECT {_TAKE_COLUMNS} FROM takes WHERE state IN ({marks}) ORDER BY rowid",
            tuple(s.value for s in UNFINISHED),
        )
        return [_take(r) for r in rows]

    _UPDATABLE = frozenset(
        {
            "state",
            "first_frame_ns",
            "end_ns",
            "video_frames",
            "dropped_frames",
            "mic_overflows",
            "audio_skew_ppm",
            "error",
            "recovered",
        }
    )

    def update_take(self, take_id: str, **values: Any) -> Take:
        """Set some of a take's fields."""
        unknown = set(values) - self._UPDATABLE
        if unknown:
            raise ValueError(f"cannot update take fields {sorted(unknown)}")
        if "state" in values:
            values["state"] = TakeState(values["state"]).value
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as c:
            cur = c.execute(
                f"UPDATE takes SET {assignments} WHERE id = ?",
                (*values.values(), take_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no take {take_id!r}")
        return self.take(take_id)

    # tags

    def add_tag(self, tag: Tag) -> bool:
        """Store ``tag``; False if a tag with its id exists already (a retried send)."""
        with self._tx() as c:
            cur = c.execute(
                f"INSERT OR IGNORE INTO tags ({_TAG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tag.id,
                    tag.visit_id,
                    tag.take_id,
                    tag.at_ns,
                    tag.label,
                    tag.note,
                    tag.author,
                    tag.created_ns,
                ),
            )
            return cur.rowcount == 1

    def tag(self, tag_id: str) -> Tag:
        rows = self._query(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE id = ? AND deleted = 0", (tag_id,)
        )
        if not rows:
            raise NotFound(f"no tag {tag_id!r}")
        return Tag(**dict(rows[0]))

    def tags_for_take(self, take_id: str) -> list[Tag]:
        rows = self._query(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE take_id = ? AND deleted = 0 ORDER BY at_ns",
            (take_id,),
        )
        return [Tag(**dict(r)) for r in rows]

    def tags_for_visit(self, visit_id: str) -> list[Tag]:
        rows = self._query(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE visit_id = ? AND deleted = 0 ORDER BY at_ns",
            (visit_id,),
        )
        return [Tag(**dict(r)) for r in rows]

    def update_tag(self, tag_id: str, **values: Any) -> Tag:
        """Relabel, re-note or move a tag."""
        unknown = set(values) - {"label", "note", "at_ns"}
        if unknown:
            raise ValueError(f"cannot update tag fields {sorted(unknown)}")
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as c:
            cur = c.execute(
                f"UPDATE tags SET {assignments} WHERE id = ? AND deleted = 0",
                (*values.values(), tag_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no tag {tag_id!r}")
        return self.tag(tag_id)

    def delete_tag(self, tag_id: str) -> None:
        """Mark a tag deleted (kept, so an undo can restore it)."""
        with self._tx() as c:
            cur = c.execute("UPDATE tags SET deleted = 1 WHERE id = ? AND deleted = 0", (tag_id,))
            if cur.rowcount == 0:
                raise NotFound(f"no tag {tag_id!r}")

    def restore_tag(self, tag_id: str) -> None:
        with self._tx() as c:
            cur = c.execute("UPDATE tags SET deleted = 0 WHERE id = ? AND deleted = 1", (tag_id,))
            if cur.rowcount == 0:
                raise NotFound(f"no deleted tag {tag_id!r}")

    # settings (small JSON values the kit's users change, e.g. the tag labels)

    def setting(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )
