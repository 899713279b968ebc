"""SQLite (WAL) metadata: sessions, takes and tags.

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

from kit.errors import NotFound, StorageError
from kit.model import UNFINISHED, Session, Tag, Take, TakeState

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_ns INTEGER NOT NULL,
    wall_time TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS takes (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
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
    UNIQUE (session_id, seq)
);
CREATE TABLE IF NOT EXISTS tags (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
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

_TAKE_COLUMNS = (
    "id, session_id, seq, state, boot_id, first_frame_ns, end_ns, video_frames, "
    "dropped_frames, mic_overflows, audio_skew_ppm, error"
)
_TAG_COLUMNS = "id, session_id, take_id, at_ns, label, note, author, created_ns"


def _take(row: sqlite3.Row) -> Take:
    values = dict(row)
    values["state"] = TakeState(values["state"])
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
            self._conn.executescript(_SCHEMA)
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{path} was written by a newer kit (schema {version} > {SCHEMA_VERSION})"
                )
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open the database {path}: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, args))

    # sessions

    def add_session(self, session: Session) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO sessions (id, created_ns, wall_time, title) VALUES (?, ?, ?, ?)",
                (session.id, session.created_ns, session.wall_time, session.title),
            )

    def session(self, session_id: str) -> Session:
        rows = self._query(
            "SELECT id, created_ns, wall_time, title FROM sessions WHERE id = ?", (session_id,)
        )
        if not rows:
            raise NotFound(f"no session {session_id!r}")
        return Session(**dict(rows[0]))

    def sessions(self) -> list[Session]:
        rows = self._query("SELECT id, created_ns, wall_time, title FROM sessions ORDER BY rowid")
        return [Session(**dict(r)) for r in rows]

    # takes

    def add_take(self, session_id: str, take_id: str, boot_id: str) -> Take:
        """Register a new take (state recording) as the session's next in sequence."""
        with self._tx() as c:
            seq = c.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM takes WHERE session_id = ?", (session_id,)
            ).fetchone()[0]
            c.execute(
                "INSERT INTO takes (id, session_id, seq, state, boot_id) VALUES (?, ?, ?, ?, ?)",
                (take_id, session_id, seq, TakeState.RECORDING.value, boot_id),
            )
        return self.take(take_id)

    def take(self, take_id: str) -> Take:
        rows = self._query(f"SELECT {_TAKE_COLUMNS} FROM takes WHERE id = ?", (take_id,))
        if not rows:
            raise NotFound(f"no take {take_id!r}")
        return _take(rows[0])

    def takes(self, session_id: str) -> list[Take]:
        rows = self._query(
            f"SELECT {_TAKE_COLUMNS} FROM takes WHERE session_id = ? ORDER BY seq", (session_id,)
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
                    tag.session_id,
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

    def tags_for_session(self, session_id: str) -> list[Tag]:
        rows = self._query(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE session_id = ? AND deleted = 0 ORDER BY at_ns",
            (session_id,),
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
