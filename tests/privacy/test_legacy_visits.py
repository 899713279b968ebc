"""Visits recorded before consent and encryption (schema 2) stay readable, marked plain, and
cannot take new footage: recording needs a consented, encrypted visit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kit.compose import Cutting
from kit.errors import NotAllowed
from kit.model import Access
from kit.testing.kits import real_kit
from kit.testing.privacy import consent

_SCHEMA_2 = """
CREATE TABLE visits (id TEXT PRIMARY KEY, case_ref TEXT NOT NULL, started_ns INTEGER NOT NULL,
    boot_id TEXT NOT NULL DEFAULT '', started_wall TEXT NOT NULL DEFAULT '',
    ended_ns INTEGER, ended_wall TEXT NOT NULL DEFAULT '');
CREATE UNIQUE INDEX one_open_visit ON visits ((ended_ns IS NULL)) WHERE ended_ns IS NULL;
CREATE TABLE takes (id TEXT PRIMARY KEY, visit_id TEXT NOT NULL REFERENCES visits(id),
    seq INTEGER NOT NULL, state TEXT NOT NULL, boot_id TEXT NOT NULL DEFAULT '',
    first_frame_ns INTEGER, end_ns INTEGER, video_frames INTEGER NOT NULL DEFAULT 0,
    dropped_frames INTEGER NOT NULL DEFAULT 0, mic_overflows INTEGER NOT NULL DEFAULT 0,
    audio_skew_ppm REAL, error TEXT NOT NULL DEFAULT '', recovered INTEGER NOT NULL DEFAULT 0,
    UNIQUE (visit_id, seq));
CREATE TABLE tags (id TEXT PRIMARY KEY, visit_id TEXT NOT NULL REFERENCES visits(id),
    take_id TEXT REFERENCES takes(id), at_ns INTEGER NOT NULL, label TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '', author TEXT NOT NULL DEFAULT '', created_ns INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO visits VALUES ('0123456789ab', 'Family B', 10, 'b', '', NULL, '');
INSERT INTO takes (id, visit_id, seq, state, first_frame_ns, end_ns)
    VALUES ('t1', '0123456789ab', 1, 'ready', 100, 400);
INSERT INTO tags (id, visit_id, take_id, at_ns, label, note, created_ns)
    VALUES ('g1', '0123456789ab', 't1', 200, 'Guiding', 'smiles', 200);
PRAGMA user_version = 2;
"""


def test_a_schema_2_visit_stays_plain_and_cannot_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "kit.db")
    db.executescript(_SCHEMA_2)
    db.close()
    take = data / "visits" / "0123456789ab" / "takes" / "t1"
    take.mkdir(parents=True)
    (take / "take.mp4").write_bytes(b"a film from before")
    kit = real_kit(data, cutting=Cutting.NONE)
    try:
        kit.recover()
        visit = kit.library.visit("0123456789ab")
        assert (visit.access, visit.case_ref, visit.consent) == (Access.PLAIN, "Family B", None)
        assert visit.is_open and kit.lost_keys == []
        [tag] = kit.library.tags(visit.id)
        assert (tag.label, tag.note) == ("Guiding", "smiles")
        with kit.store.files.read("visits/0123456789ab/takes/t1/take.mp4") as f:
            assert f.read() == b"a film from before"  # read as it was written: plain
        with pytest.raises(NotAllowed, match="no consent record"):
            kit.library.may_record(visit)
        ended = kit.library.end_visit(visit.id)
        assert kit.library.seal_ended() == []  # nothing to seal: it was never encrypted
        assert ended.access == Access.PLAIN
        assert kit.library.start_visit("F-1", consent()).access == Access.READABLE
    finally:
        kit.close()
