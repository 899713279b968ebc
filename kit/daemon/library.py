"""The kit's sessions, tags, labels and rough-cut outputs, as the phone reads and edits them.

Every change commits to SQLite before it returns and is published on the
event log, so every phone sees it. Whether a change should make the rough
cut again is the worker's call, not this module's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit.cutting.manifest import read_manifest
from kit.daemon.events import EventLog
from kit.errors import NotFound, StorageError
from kit.model import DEFAULT_LABELS, Session, Tag, Take
from kit.store import layout
from kit.store.database import Database
from kit.store.files import FileLayer

MAX_LABELS = 12
MAX_LABEL_LEN = 60  # a tag's label (a relabel can be longer than a pad button's)
MAX_PAD_LABEL_LEN = 40  # a label on the tag pad: two lines of a half-width button
MAX_NOTE_LEN = 500


def check_text(label: str, note: str) -> None:
    """ValueError unless ``label`` and ``note`` are of a length a tag may have."""
    if not label.strip() or len(label) > MAX_LABEL_LEN:
        raise ValueError(f"a label must be 1 to {MAX_LABEL_LEN} characters")
    if len(note) > MAX_NOTE_LEN:
        raise ValueError(f"a note can be at most {MAX_NOTE_LEN} characters")


def tag_dict(tag: Tag) -> dict[str, Any]:
    """A tag as the events and the API carry it."""
    return {
        "id": tag.id,
        "session_id": tag.session_id,
        "take_id": tag.take_id,
        "at_ns": tag.at_ns,
        "label": tag.label,
        "note": tag.note,
        "author": tag.author,
    }


class Library:
    """Reads and edits of what the kit has recorded."""

    def __init__(self, db: Database, files: FileLayer | None, events: EventLog) -> None:
        self._db = db
        self._files = files
        self._events = events

    # tags

    def store_tag(self, tag: Tag) -> tuple[Tag, bool]:
        """Commit a new tag; a retried id returns the stored one and False."""
        check_text(tag.label, tag.note)
        new = self._db.add_tag(tag)
        stored = tag if new else self._db.tag(tag.id)
        if new:
            self._events.publish("tag", {"action": "added", "tag": tag_dict(stored)})
        return stored, new

    def tag(self, tag_id: str) -> Tag:
        return self._db.tag(tag_id)

    def update_tag(self, tag_id: str, **values: Any) -> Tag:
        if "label" in values or "note" in values:
            check_text(values.get("label", "x"), values.get("note", ""))
        if "at_ns" in values:
            self._check_inside_take(self._db.tag(tag_id), int(values["at_ns"]))
        tag = self._db.update_tag(tag_id, **values)
        self._events.publish("tag", {"action": "updated", "tag": tag_dict(tag)})
        return tag

    def delete_tag(self, tag_id: str) -> Tag:
        tag = self._db.tag(tag_id)
        self._db.delete_tag(tag_id)
        self._events.publish("tag", {"action": "deleted", "tag_id": tag_id})
        return tag

    def restore_tag(self, tag_id: str) -> Tag:
        self._db.restore_tag(tag_id)
        tag = self._db.tag(tag_id)
        self._events.publish("tag", {"action": "restored", "tag": tag_dict(tag)})
        return tag

    def _check_inside_take(self, tag: Tag, at_ns: int) -> None:
        """A moved tag must stay inside its take (a finished take's span is known)."""
        if tag.take_id is None:
            return
        take = self._db.take(tag.take_id)
        if take.first_frame_ns is None or take.end_ns is None:
            return  # still recording: its end is not known yet
        if not take.first_frame_ns <= at_ns <= take.end_ns:
            raise ValueError("a tag cannot be moved outside its take")

    # sessions

    def sessions(self) -> list[Session]:
        return self._db.sessions()

    def takes(self, session_id: str) -> list[Take]:
        self._db.session(session_id)  # NotFound for an unknown id
        return self._db.takes(session_id)

    def tags(self, session_id: str) -> list[Tag]:
        self._db.session(session_id)
        return self._db.tags_for_session(session_id)

    # labels

    def labels(self) -> list[str]:
        labels = self._db.setting("labels")
        return list(labels) if isinstance(labels, list) else list(DEFAULT_LABELS)

    def set_labels(self, labels: list[str]) -> None:
        cleaned = [label.strip() for label in labels]
        if not 1 <= len(cleaned) <= MAX_LABELS:
            raise ValueError(f"between 1 and {MAX_LABELS} labels, please")
        if any(not label or len(label) > MAX_PAD_LABEL_LEN for label in cleaned):
            raise ValueError(f"labels must be 1 to {MAX_PAD_LABEL_LEN} characters")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("labels must differ from each other")
        self._db.set_setting("labels", cleaned)
        self._events.publish("labels", {"labels": cleaned})

    # rough cut outputs

    def cut(self, session_id: str) -> dict[str, Any] | None:
        """The session's last rough cut (film, chapters, stills, exports), or None."""
        self._db.session(session_id)
        if self._files is None:
            return None
        return read_manifest(self._files, session_id)

    def cut_file(self, session_id: str, name: str) -> Path:
        """The path of one of the session's cut outputs, refusing anything else."""
        self._db.session(session_id)
        missing = NotFound(f"no cut file {name!r} in session {session_id}")
        if self._files is None:
            raise missing
        cut_dir = f"{layout.session_dir(session_id)}/cut"
        directory = self._files.path(cut_dir)
        try:
            path = self._files.path(f"{cut_dir}/{name}")
        except StorageError:
            raise missing from None
        if directory not in path.parents or not path.is_file() or path.name.startswith("."):
            raise missing
        return path
