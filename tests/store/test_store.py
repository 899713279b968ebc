import sqlite3
from pathlib import Path

import pytest

from kit.errors import NotFound, StorageError
from kit.model import Tag, TakeState
from kit.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def _tag(store: Store, session: str, take: str | None, tag_id: str, at: int) -> Tag:
    return Tag(tag_id, session, take, at, "Guiding", "", "phone-1", at)


def test_sessions_takes_and_tags(store: Store) -> None:
    s = store.new_session(created_ns=5, wall_time="2026-11-25T10:00", title="Family A")
    assert store.db.session(s.id) == s
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
    assert store.db.tags_for_session(s.id) == []
    store.db.restore_tag("a")
    assert store.db.tag("a").at_ns == 210


def test_errors(store: Store) -> None:
    with pytest.raises(NotFound):
        store.db.session("nope")
    with pytest.raises(NotFound):
        store.db.update_take("nope", state=TakeState.READY)
    with pytest.raises(ValueError, match="cannot update"):
        store.db.update_take("nope", session_id="x")
    with pytest.raises(sqlite3.IntegrityError):
        store.db.add_take("no-such-session", "t", "b")


def test_metadata_is_durable_across_reopen(tmp_path: Path) -> None:
    a = Store(tmp_path)
    s = a.new_session(created_ns=1)
    a.db.add_take(s.id, "t", "b")
    a.close()
    b = Store(tmp_path)
    assert b.db.take("t").session_id == s.id
    assert b.db.sessions()[0].id == s.id


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x", "", "sessions/../../x"])
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
