import sqlite3
from pathlib import Path

import pytest

from kit.errors import NotFound, StorageError
from kit.model import Tag, TakeState
from kit.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def _tag(store: Store, visit: str, take: str | None, tag_id: str, at: int) -> Tag:
    return Tag(tag_id, visit, take, at, "Guiding", "", "phone-1", at)


def test_visits_takes_and_tags(store: Store) -> None:
    s = store.new_visit(5, "Family A", started_wall="2026-11-25T10:00:00Z")
    assert store.db.visit(s.id) == s
    t1 = store.db.add_take(s.id, "t1", "boot")
    t2 = store.db.add_take(s.id, "t2", "boot")
    assert (t1.seq, t2.seq, t1.state) == (1, 2, TakeState.RECORDING)
    assert [t.id for t in store.db.unfinished_takes()] == ["t1", "t2"]
    store.db.update_take("t1", state=TakeState.READY, first_frame_ns=100, end_ns=400)
    assert store.db.take("t1").duration_ns == 300
    assert [t.id for t in store.db.unfinished_takes()] == ["t2"]
    assert store.db.add_tag(_tag(store, s.id, "t1", "a", 200))
    # A retried send with the same id is not stored twice.
    assert not store.db.add_tag(_tag(store, s.id, "t1", "a", 250))
    assert [t.at_ns for t in store.db.tags_for_take("t1")] == [200]
    store.db.update_tag("a", label="Receiving initiatives", at_ns=210)
    assert store.db.tag("a").label == "Receiving initiatives"
    store.db.delete_tag("a")
    assert store.db.tags_for_visit(s.id) == []
    store.db.restore_tag("a")
    assert store.db.tag("a").at_ns == 210


def test_errors(store: Store) -> None:
    with pytest.raises(NotFound):
        store.db.visit("nope")
    with pytest.raises(NotFound):
        store.db.update_take("nope", state=TakeState.READY)
    with pytest.raises(ValueError, match="cannot update"):
        store.db.update_take("nope", visit_id="x")
    with pytest.raises(sqlite3.IntegrityError):
        store.db.add_take("no-such-visit", "t", "b")


def test_metadata_is_durable_across_reopen(tmp_path: Path) -> None:
    a = Store(tmp_path)
    s = a.new_visit(1)
    a.db.add_take(s.id, "t", "b")
    a.close()
    b = Store(tmp_path)
    assert b.db.take("t").visit_id == s.id
    assert b.db.visits()[0].id == s.id


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x", "", "visits/../../x"])
def test_no_path_escapes_the_data_directory(store: Store, bad: str) -> None:
    with pytest.raises(StorageError, match="inside the data directory"):
        store.files.path(bad)


def test_symlink_out_of_the_data_directory_is_refused(store: Store, tmp_path: Path) -> None:
    (store.root / "link").symlink_to(tmp_path)
    with pytest.raises(StorageError):
        store.files.path("link/x")


def test_replace_is_atomic(store: Store) -> None:
    with store.files.replace("a.bin") as f:
        f.write(b"one")
    with pytest.raises(RuntimeError), store.files.replace("a.bin") as f:
        f.write(b"half")
        raise RuntimeError("crash mid-write")
    with store.files.read("a.bin") as f:
        assert f.read() == b"one"
    assert not (store.root / ".a.bin.partial").exists()


_SCHEMA_1 = """
CREATE TABLE sessions (id TEXT PRIMARY KEY, created_ns INTEGER NOT NULL,
    wall_time TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '');
CREATE TABLE takes (id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL, state TEXT NOT NULL, boot_id TEXT NOT NULL DEFAULT '',
    first_frame_ns INTEGER, end_ns INTEGER, video_frames INTEGER NOT NULL DEFAULT 0,
    dropped_frames INTEGER NOT NULL DEFAULT 0, mic_overflows INTEGER NOT NULL DEFAULT 0,
    audio_skew_ppm REAL, error TEXT NOT NULL DEFAULT '', UNIQUE (session_id, seq));
CREATE TABLE tags (id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id),
    take_id TEXT REFERENCES takes(id), at_ns INTEGER NOT NULL, label TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '', author TEXT NOT NULL DEFAULT '', created_ns INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX tags_by_take ON tags (take_id, at_ns);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO sessions VALUES ('s1', 10, '2026-11-20T09:00:00Z', ''), ('s2', 20, '', 'Family B');
INSERT INTO takes (id, session_id, seq, state, first_frame_ns, end_ns)
    VALUES ('t1', 's1', 1, 'ready', 100, 400);
INSERT INTO tags (id, session_id, take_id, at_ns, label, created_ns)
    VALUES ('g1', 's1', 't1', 200, 'Guiding', 200);
PRAGMA user_version = 1;
"""


def test_a_schema_1_kit_is_migrated_to_visits(tmp_path: Path) -> None:
    """A kit that called visits "sessions": every session becomes an ended visit, in place."""
    db = sqlite3.connect(tmp_path / "kit.db")
    db.executescript(_SCHEMA_1)
    db.close()
    old = tmp_path / "sessions" / "s1" / "takes" / "t1"
    old.mkdir(parents=True)
    (old / "take.mp4").write_bytes(b"film")
    store = Store(tmp_path)
    visits = store.db.visits()
    assert [(v.id, v.case_ref, v.state.value) for v in visits] == [
        ("s1", "Visit 1", "ended"),
        ("s2", "Family B", "ended"),
    ]
    assert visits[0].started_wall == "2026-11-20T09:00:00Z" and visits[0].started_ns == 10
    assert store.db.open_visit() is None
    take = store.db.take("t1")
    assert (take.visit_id, take.recovered, take.duration_ns) == ("s1", False, 300)
    assert [t.id for t in store.db.tags_for_visit("s1")] == ["g1"]
    assert (tmp_path / "visits" / "s1" / "takes" / "t1" / "take.mp4").read_bytes() == b"film"
    assert not (tmp_path / "sessions").exists()
    store.close()
    again = Store(tmp_path)  # opening twice migrates once
    assert len(again.db.visits()) == 2
    again.close()


def test_one_open_visit_and_no_takes_in_an_ended_one(store: Store) -> None:
    from kit.errors import StateError

    first = store.new_visit(1, "C-1")
    with pytest.raises(StateError, match="another visit is open"):
        store.new_visit(2, "C-2")
    store.db.add_take(first.id, "t1", "b")
    with pytest.raises(StateError, match="recording"):
        store.db.end_visit(first.id, 5, "")
    store.db.update_take("t1", state=TakeState.READY)
    assert store.db.end_visit(first.id, 5, "").ended_ns == 5
    with pytest.raises(StateError, match="ended"):
        store.db.add_take(first.id, "t2", "b")
    assert store.new_visit(6, "C-2").is_open


def test_one_process_at_a_time_holds_a_data_directory(tmp_path: Path) -> None:
    first = Store(tmp_path)
    with pytest.raises(StorageError, match=r"in use by another kit process \(pid \d+\)"):
        Store(tmp_path)
    first.close()
    Store(tmp_path).close()  # free again once closed


# Schema 3 as a kit before moment edits left it (kit/store/database.py at schema 3).
_SCHEMA_3 = """
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
PRAGMA user_version = 3;
"""


def test_a_schema_3_kit_gains_moment_edits_and_keeps_its_rows(tmp_path: Path) -> None:
    from kit.model import MomentEdit

    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "kit.db")
    db.executescript(_SCHEMA_3)
    db.execute(
        "INSERT INTO visits (id, case_ref, started_ns, ended_ns) VALUES ('v1', 'F-1', 5, NULL)"
    )
    db.execute(
        "INSERT INTO takes (id, visit_id, seq, state, first_frame_ns, end_ns) "
        "VALUES ('t1', 'v1', 1, 'ready', 100, 900)"
    )
    db.execute(
        "INSERT INTO tags (id, visit_id, take_id, at_ns, label, created_ns) "
        "VALUES ('tag00001', 'v1', 't1', 400, 'Guiding', 400)"
    )
    db.commit()
    db.close()
    store = Store(data)
    try:
        assert store.db.visit("v1").case_ref == "F-1"
        assert [t.id for t in store.db.tags_for_visit("v1")] == ["tag00001"]
        assert store.db.moment_edits("v1") == []
        edit = MomentEdit("v1", "tag00001", start_ns=200, end_ns=700, dropped=True, position=0)
        store.db.put_moment_edits("v1", [edit])
        assert store.db.moment_edits("v1") == [edit]
        # A bundle's index carries them; an erased visit leaves none behind.
        assert store.db.visit_rows("v1")["moment_edits"][0]["moment_id"] == "tag00001"
        version = store.db._conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == 4
    finally:
        store.close()
    again = Store(data)  # opening a schema-4 kit changes nothing
    try:
        assert again.db.moment_edits("v1") == [edit]
        again.db.put_moment_edits("v1", [], remove=["tag00001"])
        assert again.db.moment_edits("v1") == []
        again.db.put_moment_edits("v1", [edit])
        again.db.erase_visit("v1")
        rows = again.db._conn.execute("SELECT COUNT(*) FROM moment_edits").fetchone()[0]
        assert rows == 0
        with pytest.raises(NotFound):
            again.db.put_moment_edits("v1", [edit])
    finally:
        again.close()
