"""SQLite (WAL) metadata: visits, takes, tags and the guider's edits of moments.

One connection, serialised by a lock: writes are tiny and the web server's
threads share it. Every write commits before the call returns, so an
acknowledged tag survives a power cut (``synchronous=FULL``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kit.crypto.fields import open_text, seal_text
from kit.errors import CorruptMedia, NotFound, Sealed, StateError, StorageError, StorageFull
from kit.model import (
    UNFINISHED,
    Access,
    Consent,
    ConsentBy,
    MomentEdit,
    Purpose,
    Tag,
    Take,
    TakeState,
    Visit,
)

SCHEMA_VERSION = 4

KeyLookup = Callable[[str], bytes | None]
"""A visit's data key, if the kit holds it (:class:`kit.crypto.keyring.Keyring` ``.get``)."""


def _no_keys(_visit_id: str) -> bytes | None:
    return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    id TEXT PRIMARY KEY,
    case_ref TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    boot_id TEXT NOT NULL DEFAULT '',
    started_wall TEXT NOT NULL DEFAULT '',
    ended_ns INTEGER,
    ended_wall TEXT NOT NULL DEFAULT '',
    consent_by TEXT NOT NULL DEFAULT '',
    purposes TEXT NOT NULL DEFAULT '',
    erase_by TEXT NOT NULL DEFAULT '',
    encrypted INTEGER NOT NULL DEFAULT 0,
    sealed TEXT NOT NULL DEFAULT ''
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
    keep_until_ns INTEGER,
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
-- The guider's edits of a visit's moments (kit/cutting/moments.py), each under the id of
-- the moment's first tag when it was made. No text: ids and instants only.
CREATE TABLE IF NOT EXISTS moment_edits (
    visit_id TEXT NOT NULL REFERENCES visits(id),
    moment_id TEXT NOT NULL,
    start_ns INTEGER,
    end_ns INTEGER,
    dropped INTEGER NOT NULL DEFAULT 0,
    position INTEGER,
    PRIMARY KEY (visit_id, moment_id)
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

# Schema 2 had no consent and no encryption: its visits stay readable, marked plain.
_FROM_SCHEMA_2 = """
ALTER TABLE visits ADD COLUMN consent_by TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN purposes TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN erase_by TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visits ADD COLUMN sealed TEXT NOT NULL DEFAULT '';
ALTER TABLE takes ADD COLUMN keep_until_ns INTEGER;
"""

_VISIT_COLUMNS = (
    "id, case_ref, started_ns, boot_id, started_wall, ended_ns, ended_wall, "
    "consent_by, purposes, erase_by, encrypted, sealed"
)
_TAKE_COLUMNS = (
    "id, visit_id, seq, state, boot_id, first_frame_ns, end_ns, video_frames, "
    "dropped_frames, mic_overflows, audio_skew_ppm, error, recovered, keep_until_ns"
)
_TAG_COLUMNS = "id, visit_id, take_id, at_ns, label, note, author, created_ns"
_MOMENT_COLUMNS = "visit_id, moment_id, start_ns, end_ns, dropped, position"


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
    """The kit's metadata in one SQLite file.

    An encrypted visit's case reference and its tags' labels and notes are
    stored sealed under the visit's data key (:mod:`kit.crypto.fields`), which
    ``keys`` looks up; without the key they read as "" and cannot be changed.
    """

    def __init__(self, path: Path, keys: KeyLookup = _no_keys) -> None:
        self._keys = keys
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            # Deleted rows (an erased visit, a discarded tag) are overwritten, not left free.
            self._conn.execute("PRAGMA secure_delete=ON")
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
            version = 2
        if version == 2:
            self._conn.executescript(f"BEGIN; {_FROM_SCHEMA_2} PRAGMA user_version=3; COMMIT;")
        # Schema 3 had no moment edits: the table below is all schema 4 adds.
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

    # texts of encrypted visits

    def _access(self, row: sqlite3.Row) -> Access:
        if not row["encrypted"]:
            return Access.PLAIN
        if row["sealed"]:
            return Access(row["sealed"])
        return Access.READABLE if self._keys(row["id"]) is not None else Access.KEY_LOST

    def _seal(self, c: sqlite3.Connection, visit_id: str, context: str, text: str) -> str:
        """``text`` as it is stored for ``visit_id``: sealed if the visit is encrypted."""
        row = c.execute("SELECT encrypted FROM visits WHERE id = ?", (visit_id,)).fetchone()
        if row is None:
            raise NotFound(f"no visit {visit_id!r}")
        if not row[0]:
            return text
        key = self._keys(visit_id)
        if key is None:
            raise Sealed("this visit is sealed: only the organisation's key opens it now")
        return seal_text(key, context, text)

    def _open(self, visit_id: str, context: str, stored: str) -> str:
        if not stored.startswith("enc1:"):
            return stored
        key = self._keys(visit_id)
        if key is None:
            return ""
        try:
            return open_text(key, context, stored)
        except CorruptMedia:
            return ""

    def _visit(self, row: sqlite3.Row) -> Visit:
        consent = None
        if row["consent_by"]:
            consent = Consent(
                given_by=ConsentBy(row["consent_by"]),
                purposes=frozenset(Purpose(p) for p in row["purposes"].split(",") if p),
                erase_by=row["erase_by"],
            )
        return Visit(
            id=row["id"],
            case_ref=self._open(row["id"], f"visits.case_ref:{row['id']}", row["case_ref"]),
            started_ns=row["started_ns"],
            boot_id=row["boot_id"],
            started_wall=row["started_wall"],
            ended_ns=row["ended_ns"],
            ended_wall=row["ended_wall"],
            consent=consent,
            access=self._access(row),
        )

    def _tag(self, row: sqlite3.Row) -> Tag:
        values = dict(row)
        for text in ("label", "note"):
            values[text] = self._open(row["visit_id"], f"tags.{text}:{row['id']}", row[text])
        return Tag(**values)

    # visits

    def add_visit(self, visit: Visit, *, encrypted: bool = False) -> None:
        """Store a new visit (its case reference sealed if ``encrypted``: the key must be
        held already); StateError if it is open and another visit is open already."""
        consent = visit.consent
        try:
            with self._tx() as c:
                c.execute(
                    f"INSERT INTO visits ({_VISIT_COLUMNS}) "
                    "VALUES (?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, '')",
                    (
                        visit.id,
                        visit.started_ns,
                        visit.boot_id,
                        visit.started_wall,
                        visit.ended_ns,
                        visit.ended_wall,
                        consent.given_by.value if consent else "",
                        ",".join(sorted(p.value for p in consent.purposes)) if consent else "",
                        consent.erase_by if consent else "",
                        int(encrypted),
                    ),
                )
                stored = self._seal(c, visit.id, f"visits.case_ref:{visit.id}", visit.case_ref)
                c.execute("UPDATE visits SET case_ref = ? WHERE id = ?", (stored, visit.id))
        except sqlite3.IntegrityError as exc:
            if visit.is_open and self.open_visit() is not None:
                raise StateError("another visit is open: end it first") from exc
            raise

    def visit(self, visit_id: str) -> Visit:
        rows = self._query(f"SELECT {_VISIT_COLUMNS} FROM visits WHERE id = ?", (visit_id,))
        if not rows:
            raise NotFound(f"no visit {visit_id!r}")
        return self._visit(rows[0])

    def visits(self) -> list[Visit]:
        rows = self._query(f"SELECT {_VISIT_COLUMNS} FROM visits ORDER BY rowid")
        return [self._visit(r) for r in rows]

    def open_visit(self) -> Visit | None:
        """The visit the kit records into, if one is open."""
        rows = self._query(f"SELECT {_VISIT_COLUMNS} FROM visits WHERE ended_ns IS NULL")
        return self._visit(rows[0]) if rows else None

    def rename_visit(self, visit_id: str, case_ref: str) -> Visit:
        with self._tx() as c:
            stored = self._seal(c, visit_id, f"visits.case_ref:{visit_id}", case_ref)
            c.execute("UPDATE visits SET case_ref = ? WHERE id = ?", (stored, visit_id))
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

    def mark_sealed(self, visit_id: str, access: Access, *, ended_ns: int | None = None) -> Visit:
        """Record that the kit no longer holds the visit's key (ending it, if still open)."""
        if access not in (Access.SEALED, Access.KEY_LOST):
            raise ValueError(f"not a sealed access: {access}")
        with self._tx() as c:
            cur = c.execute(
                "UPDATE visits SET sealed = ?, ended_ns = COALESCE(ended_ns, ?) "
                "WHERE id = ? AND encrypted = 1",
                (access.value, ended_ns, visit_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no encrypted visit {visit_id!r}")
        return self.visit(visit_id)

    def erase_visit(self, visit_id: str) -> None:
        """Delete the visit's rows: its moment edits, tags, takes and itself (overwritten:
        secure_delete)."""
        with self._tx() as c:
            c.execute("DELETE FROM moment_edits WHERE visit_id = ?", (visit_id,))
            c.execute("DELETE FROM tags WHERE visit_id = ?", (visit_id,))
            c.execute("DELETE FROM takes WHERE visit_id = ?", (visit_id,))
            cur = c.execute("DELETE FROM visits WHERE id = ?", (visit_id,))
            if cur.rowcount == 0:
                raise NotFound(f"no visit {visit_id!r}")
        # The WAL still holds the old pages: copy the erasure into the database, empty it.
        with self._lock, full_card_is_storage_full():
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # a visit's rows as stored (its texts still sealed), for a bundle's index

    def visit_rows(self, visit_id: str) -> dict[str, list[dict[str, Any]]]:
        """The visit's row, its takes', its tags' (deleted ones left out) and its moment
        edits', exactly as stored: an encrypted visit's texts stay sealed, so the kit needs
        no key for this."""
        visits = self._query("SELECT * FROM visits WHERE id = ?", (visit_id,))
        if not visits:
            raise NotFound(f"no visit {visit_id!r}")
        takes = self._query("SELECT * FROM takes WHERE visit_id = ? ORDER BY seq", (visit_id,))
        tags = self._query(
            "SELECT * FROM tags WHERE visit_id = ? AND deleted = 0 ORDER BY at_ns, id", (visit_id,)
        )
        moments = self._query(
            "SELECT * FROM moment_edits WHERE visit_id = ? ORDER BY moment_id", (visit_id,)
        )
        rows = {
            "visits": [dict(r) for r in visits],
            "takes": [dict(r) for r in takes],
            "tags": [dict(r) for r in tags],
        }
        if moments:  # a visit never edited keeps the index an older kit made
            rows["moment_edits"] = [dict(r) for r in moments]
        return rows

    _ROW_TABLES = ("visits", "takes", "tags", "moment_edits")

    def add_visit_rows(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Insert rows made by :meth:`visit_rows` (by a kit of this schema or older)."""
        known = {
            table: {r[1] for r in self._query(f"PRAGMA table_info({table})")}
            for table in self._ROW_TABLES
        }
        with self._tx() as c:
            for table in self._ROW_TABLES:
                for row in rows.get(table, []):
                    columns = [k for k in row if k in known[table]]
                    marks = ", ".join("?" for _ in columns)
                    c.execute(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                        tuple(row[k] for k in columns),
                    )

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

    def takes_to_trim(self) -> list[Take]:
        """Finalised takes a discard has not been applied to yet (an interrupted discard)."""
        rows = self._query(
            f"SELECT {_TAKE_COLUMNS} FROM takes WHERE state = ? AND keep_until_ns IS NOT NULL "
            "AND end_ns IS NOT NULL AND keep_until_ns < end_ns ORDER BY rowid",
            (TakeState.READY.value,),
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
            "keep_until_ns",
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
            label = self._seal(c, tag.visit_id, f"tags.label:{tag.id}", tag.label)
            note = self._seal(c, tag.visit_id, f"tags.note:{tag.id}", tag.note)
            cur = c.execute(
                f"INSERT OR IGNORE INTO tags ({_TAG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tag.id,
                    tag.visit_id,
                    tag.take_id,
                    tag.at_ns,
                    label,
                    note,
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
        return self._tag(rows[0])

    def tags_for_take(self, take_id: str) -> list[Tag]:
        rows = self._query(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE take_id = ? AND deleted = 0 ORDER BY at_ns",
            (take_id,),
        )
        return [self._tag(r) for r in rows]

    def tags_for_visit(self, visit_id: str) -> list[Tag]:
        rows = self._query(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE visit_id = ? AND deleted = 0 ORDER BY at_ns",
            (visit_id,),
        )
        return [self._tag(r) for r in rows]

    def update_tag(self, tag_id: str, **values: Any) -> Tag:
        """Relabel, re-note or move a tag."""
        unknown = set(values) - {"label", "note", "at_ns"}
        if unknown:
            raise ValueError(f"cannot update tag fields {sorted(unknown)}")
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as c:
            row = c.execute("SELECT visit_id FROM tags WHERE id = ?", (tag_id,)).fetchone()
            if row is None:
                raise NotFound(f"no tag {tag_id!r}")
            for text in ("label", "note"):
                if text in values:
                    values[text] = self._seal(c, row[0], f"tags.{text}:{tag_id}", values[text])
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

    def discard_tags(self, take_id: str, from_ns: int) -> int:
        """Delete (for good, deleted ones too) the take's tags at or after ``from_ns``."""
        with self._tx() as c:
            cur = c.execute("DELETE FROM tags WHERE take_id = ? AND at_ns >= ?", (take_id, from_ns))
            return cur.rowcount

    def restore_tag(self, tag_id: str) -> None:
        with self._tx() as c:
            cur = c.execute("UPDATE tags SET deleted = 0 WHERE id = ? AND deleted = 1", (tag_id,))
            if cur.rowcount == 0:
                raise NotFound(f"no deleted tag {tag_id!r}")

    # moment edits

    def moment_edits(self, visit_id: str) -> list[MomentEdit]:
        """The guider's edits of the visit's moments (in no particular order)."""
        rows = self._query(
            f"SELECT {_MOMENT_COLUMNS} FROM moment_edits WHERE visit_id = ? ORDER BY moment_id",
            (visit_id,),
        )
        return [
            MomentEdit(
                visit_id=r["visit_id"],
                moment_id=r["moment_id"],
                start_ns=r["start_ns"],
                end_ns=r["end_ns"],
                dropped=bool(r["dropped"]),
                position=r["position"],
            )
            for r in rows
        ]

    def put_moment_edits(
        self, visit_id: str, edits: list[MomentEdit], *, remove: list[str] | None = None
    ) -> None:
        """Store ``edits`` (each replacing the row of its moment) and delete the rows of the
        moments ``remove`` names, in one transaction."""
        with self._tx() as c:
            if c.execute("SELECT 1 FROM visits WHERE id = ?", (visit_id,)).fetchone() is None:
                raise NotFound(f"no visit {visit_id!r}")
            for moment_id in remove or []:
                c.execute(
                    "DELETE FROM moment_edits WHERE visit_id = ? AND moment_id = ?",
                    (visit_id, moment_id),
                )
            for edit in edits:
                if edit.visit_id != visit_id:
                    raise ValueError(f"an edit of visit {edit.visit_id} is not of {visit_id}")
                c.execute(
                    f"INSERT OR REPLACE INTO moment_edits ({_MOMENT_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        visit_id,
                        edit.moment_id,
                        edit.start_ns,
                        edit.end_ns,
                        int(edit.dropped),
                        edit.position,
                    ),
                )

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
