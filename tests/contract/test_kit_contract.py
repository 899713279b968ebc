"""One contract for the phone page's two collaborators, run over the fake and the real kit.

What the web tests assume of :class:`kit.daemon.api.Recording` and
:class:`kit.daemon.api.VisitLibrary` is asserted here of both: a reply the
fake gives and the real kit never gives fails here first.
"""

from __future__ import annotations

import pytest

from kit.daemon.api import State
from kit.daemon.events import MIC_BACK, MIC_LOST, MIC_MISSING
from kit.errors import NotFound, Sealed, StateError
from kit.model import DEFAULT_LABELS, Access, TakeState, VisitState
from kit.testing.privacy import consent
from tests.contract.conftest import Driver

S = 1_000_000_000
NO_VISIT = "no visit is open: start one on the phone, with the family's consent"


def _record(d: Driver, seconds: float, tags: list[tuple[float, str, str]] | None = None) -> str:
    """Start, tag at (seconds in, id, label), stop; the take's id."""
    d.recording.start()
    d.settle()
    status = d.recording.status()
    assert status.state == State.RECORDING, status
    take_id = status.take_id
    assert take_id is not None
    at = 0.0
    for when, tag_id, label in tags or []:
        d.advance(when - at)
        at = when
        d.recording.add_tag(tag_id, label, "", "Sam", 0)
    d.advance(seconds - at)
    _stop(d)
    return take_id


def _start(d: Driver, then_s: float) -> None:
    """Start a take and let ``then_s`` seconds of it pass."""
    d.recording.start()
    d.settle()
    d.advance(then_s)


def _stop(d: Driver) -> None:
    d.recording.stop()
    d.settle()


def _open_visit(d: Driver) -> str:
    visit = d.visits.open_visit()
    assert visit is not None
    return visit.id


def _start_visit(d: Driver, case_ref: str = "C-1041") -> str:
    """Open a visit with the family's consent (every purpose), as the phone does."""
    return d.visits.start_visit(case_ref, consent()).id


def _refusals(d: Driver) -> list[str]:
    return [str(e.data["reason"]) for e in d.events.since(0) if e.kind == "refused"]


def test_a_take_needs_a_visit_with_consent(driver: Driver) -> None:
    d = driver
    assert d.visits.open_visit() is None
    assert d.recording.status().state == State.IDLE
    d.recording.start()  # no visit open: refused, and no visit is opened for it
    d.settle()
    status = d.recording.status()
    assert status.state == State.IDLE and status.error == NO_VISIT and status.take_id is None
    assert _refusals(d) == [NO_VISIT]
    assert d.visits.open_visit() is None and d.visits.visits() == []


def test_a_first_take_records_into_the_open_visit(driver: Driver) -> None:
    d = driver
    visit_id = _start_visit(d)
    take_id = _record(d, 2.0)
    visit = d.visits.open_visit()
    assert visit is not None and visit.id == visit_id and visit.case_ref == "C-1041"
    assert visit.state == VisitState.OPEN and visit.consent == consent()
    assert visit.access == Access.READABLE
    takes = d.visits.takes(visit.id)
    assert [(t.id, t.seq, t.state) for t in takes] == [(take_id, 1, TakeState.READY)]
    assert takes[0].duration_ns >= 2 * S - S // 30
    status = d.recording.status()
    assert status.state == State.IDLE and status.visit_id == visit.id
    assert status.error == ""
    # Nothing tagged: the cut is made, and is up to date, with no film.
    cut = d.visits.cut(visit.id)
    assert cut is not None and cut["up_to_date"] and cut["film"] is None and cut["clips"] == []
    kinds = [e.kind for e in d.events.since(0)]
    assert "visit" in kinds and "take" in kinds and "status" in kinds
    assert "refused" not in kinds


def test_starts_and_stops_are_requests(driver: Driver) -> None:
    d = driver
    _start_visit(d)
    d.recording.stop()  # nothing recording: nothing happens
    d.settle()
    assert d.recording.status().state == State.IDLE
    d.recording.start()
    d.recording.start()  # a second start while recording is ignored
    d.settle()
    assert d.recording.status().state == State.RECORDING
    d.advance(1.0)
    _stop(d)
    assert len(d.visits.takes(_open_visit(d))) == 1


def test_tags_are_stamped_at_the_tap_and_stored_once(driver: Driver) -> None:
    d = driver
    _start_visit(d)
    with pytest.raises(StateError):
        d.recording.add_tag("tag0000001", "Guiding", "", "Sam", 0)
    _start(d, 1.5)
    now = d.recording.now_ns()
    tag, new = d.recording.add_tag("tag0000001", "Guiding", "a note", "Sam", 200_000_000)
    assert new and tag.at_ns == now - 200_000_000 and tag.note == "a note"
    again, new = d.recording.add_tag("tag0000001", "Guiding", "a note", "Sam", 0)
    assert not new and again == tag
    with pytest.raises(ValueError, match="label"):
        d.recording.add_tag("tag0000002", " ", "", "Sam", 0)
    with pytest.raises(ValueError, match="note"):
        d.recording.add_tag("tag0000003", "Guiding", "x" * 501, "Sam", 0)
    assert [t.id for t in d.visits.tags(tag.visit_id)] == ["tag0000001"]
    assert d.visits.tag("tag0000001") == tag
    d.advance(1.0)
    _stop(d)


def test_a_tag_of_the_take_recording_moves_up_to_now(driver: Driver) -> None:
    d = driver
    _start_visit(d)
    _start(d, 1.0)
    d.recording.add_tag("tag0000001", "Guiding", "", "Sam", 0)
    d.advance(0.5)
    moved = d.visits.update_tag("tag0000001", nudge_ns=5 * S)
    assert moved.at_ns == d.recording.now_ns()
    _stop(d)


def test_tag_edits_and_moves_stay_inside_the_take(driver: Driver) -> None:
    d = driver
    _start_visit(d)
    take_id = _record(d, 3.0, [(1.0, "tag0000001", "Guiding")])
    visit_id = _open_visit(d)
    take = next(t for t in d.visits.takes(visit_id) if t.id == take_id)
    assert take.first_frame_ns is not None and take.end_ns is not None
    tag = d.visits.update_tag("tag0000001", label="Receiving initiatives", note="he looked up")
    assert (tag.label, tag.note) == ("Receiving initiatives", "he looked up")
    assert d.visits.update_tag("tag0000001", nudge_ns=-60 * S).at_ns == take.first_frame_ns
    assert d.visits.update_tag("tag0000001", nudge_ns=60 * S).at_ns == take.end_ns
    inside = take.first_frame_ns + S
    assert d.visits.update_tag("tag0000001", at_ns=inside).at_ns == inside
    with pytest.raises(ValueError, match="outside its take"):
        d.visits.update_tag("tag0000001", at_ns=take.end_ns + 1)
    with pytest.raises(ValueError):
        d.visits.update_tag("tag0000001")
    d.visits.delete_tag("tag0000001")
    assert d.visits.tags(visit_id) == []
    with pytest.raises(NotFound):
        d.visits.tag("tag0000001")
    with pytest.raises(NotFound):
        d.visits.update_tag("tag0000001", label="Guiding")
    d.visits.restore_tag("tag0000001")
    assert [t.label for t in d.visits.tags(visit_id)] == ["Receiving initiatives"]
    with pytest.raises(NotFound):
        d.visits.restore_tag("tag0000001")  # not deleted
    d.settle()


def test_labels(driver: Driver) -> None:
    d = driver
    assert d.visits.labels() == list(DEFAULT_LABELS)
    assert d.visits.set_labels(["Attentive", " Guiding "]) == ["Attentive", "Guiding"]
    assert d.visits.labels() == ["Attentive", "Guiding"]
    for bad in ([], ["a", "A"], [""], ["x" * 41], [str(i) for i in range(13)]):
        with pytest.raises(ValueError):
            d.visits.set_labels(bad)
    assert [e.data for e in d.events.since(0) if e.kind == "labels"] == [
        {"labels": ["Attentive", "Guiding"]}
    ]


def test_the_visit_lifecycle(driver: Driver) -> None:
    d = driver
    visit = d.visits.start_visit("  C-1041 ", consent())
    assert visit.case_ref == "C-1041" and d.visits.open_visit() == visit
    with pytest.raises(StateError):
        d.visits.start_visit("C-1042", consent())  # one open visit at a time
    with pytest.raises(ValueError):
        d.visits.start_visit("", consent())  # a case reference is needed
    with pytest.raises(ValueError):
        d.visits.rename_visit(visit.id, "x" * 61)
    assert d.visits.rename_visit(visit.id, "C-1043").case_ref == "C-1043"
    d.recording.start()
    d.settle()
    assert d.recording.status().visit_id == visit.id
    with pytest.raises(StateError, match="stop it"):
        d.visits.end_visit(visit.id)
    d.advance(1.0)
    _stop(d)
    ended = d.visits.end_visit(visit.id)
    assert ended.state == VisitState.ENDED and d.visits.open_visit() is None
    d.settle()
    # Its final cut made, the ended visit is sealed: only the organisation's key opens it.
    sealed = d.visits.visit(visit.id)
    assert sealed.access == Access.SEALED and sealed.case_ref == ""
    assert d.visits.cut(visit.id) is None
    with pytest.raises(Sealed):
        d.visits.cut_file(visit.id, "rough-cut.mp4")
    with pytest.raises(StateError):
        d.visits.end_visit(visit.id)
    assert d.recording.status().visit_id is None
    d.recording.start()  # the visit has ended: no take until the next visit is started
    d.settle()
    assert d.recording.status().state == State.IDLE and _refusals(d) == [NO_VISIT]
    assert d.visits.open_visit() is None
    second = d.visits.start_visit("C-1044", consent())
    _record(d, 1.0)
    assert d.visits.open_visit() == second and second.id != visit.id
    assert [v.id for v in d.visits.visits()] == [visit.id, second.id]
    with pytest.raises(NotFound):
        d.visits.visit("nosuchvisit1")
    with pytest.raises(NotFound):
        d.visits.takes("nosuchvisit1")
    actions = [e.data["action"] for e in d.events.since(0) if e.kind == "visit"]
    assert actions == ["started", "updated", "ended", "sealed", "started"]


def test_a_take_with_tags_is_cut_and_an_edit_recuts(driver: Driver) -> None:
    d = driver
    _start_visit(d)
    _record(d, 6.0, [(2.0, "tag0000001", "Guiding"), (5.0, "tag0000002", "Being attentive")])
    visit_id = _open_visit(d)
    cut = d.visits.cut(visit_id)
    assert cut is not None and cut["up_to_date"] is True
    # 3 s apart: two moments (not one merged clip), split between the tags.
    assert [c["tag_ids"] for c in cut["clips"]] == [["tag0000001"], ["tag0000002"]]
    assert [c["labels"] for c in cut["clips"]] == [["Guiding"], ["Being attentive"]]
    assert [c["moment_id"] for c in cut["clips"]] == ["tag0000001", "tag0000002"]
    film = d.visits.cut_file(visit_id, "rough-cut.mp4")
    with film.file:
        plain = film.file.read()
    assert film.size == len(plain) > 0  # decrypted as it is read
    stored = (d.data / "visits" / visit_id / "cut" / "rough-cut.mp4").read_bytes()
    assert plain not in stored  # encrypted at rest
    for bad in ("../../kit.db", "/etc/passwd", "nothing.mp4", ".cut.json.partial", "stills"):
        with pytest.raises(NotFound):
            d.visits.cut_file(visit_id, bad)
    d.visits.update_tag("tag0000002", label="Guiding")
    d.settle()
    cut = d.visits.cut(visit_id)
    assert cut is not None and cut["up_to_date"] is True
    assert cut["clips"][1]["labels"] == ["Guiding"]
    cuts = [e.data for e in d.events.since(0) if e.kind == "cut"]
    assert cuts[-1] == {"visit_id": visit_id, "error": ""} and len(cuts) == 2
    d.visits.recut(visit_id)
    d.settle()
    assert len([e for e in d.events.since(0) if e.kind == "cut"]) == 3


def test_the_status_and_the_preview(driver: Driver) -> None:
    d = driver
    status = d.recording.status().as_json()
    assert set(status) == {
        "state",
        "visit_id",
        "take_id",
        "started_ns",
        "now_ns",
        "elapsed_s",
        "minutes_left",
        "low_storage",
        "level_dbfs",
        "boot_id",
        "error",
        "cut_progress",
        "cut_visit_id",
        "finalising_take_ids",
    }
    assert status["now_ns"] == d.recording.now_ns()
    assert status["finalising_take_ids"] == []
    _start_visit(d)
    asked_ns = d.recording.now_ns()
    _start(d, 1.0)
    recording = d.recording.status()
    assert recording.started_ns is not None
    # From the take's first frame: at least the second the test let pass, at most all the
    # time since the start was asked (the real driver's clock runs on while it settles,
    # longer on a busy machine).
    assert 1.0 - 0.04 <= recording.elapsed_s <= (recording.now_ns - asked_ns) / 1e9
    assert recording.started_ns >= asked_ns
    frame = d.recording.preview_jpeg()
    assert frame is not None and frame[1].startswith(b"\xff\xd8")
    _stop(d)


def test_a_tap_delayed_past_the_start_lands_on_the_first_frame(driver: Driver) -> None:
    d = driver
    _start_visit(d)
    _start(d, 1.0)
    first = d.recording.status().started_ns
    assert first is not None
    tag, _ = d.recording.add_tag("tag0000001", "Guiding", "", "Sam", 600 * S)
    assert tag.at_ns == first  # not 10 minutes before the take, out of every cut
    _stop(d)


def test_a_tap_made_before_stop_and_sent_after_it_lands_in_its_take(driver: Driver) -> None:
    d = driver
    _start_visit(d)
    take_id = _record(d, 2.0)
    d.advance(0.4)
    take = next(t for t in d.visits.takes(_open_visit(d)) if t.id == take_id)
    assert take.end_ns is not None
    # Tapped 0.3 s before the take ended, sent only now: kept, in the take it was made in.
    delay = d.recording.now_ns() - (take.end_ns - 300_000_000)
    tag, new = d.recording.add_tag("tag0000001", "Guiding", "", "Sam", delay)
    assert new and tag.take_id == take_id and tag.at_ns == take.end_ns - 300_000_000
    # Tapped after the stop: refused.
    with pytest.raises(StateError):
        d.recording.add_tag("tag0000002", "Guiding", "", "Sam", 100_000_000)
    d.settle()


def test_text_utf8_cannot_carry_is_refused(driver: Driver) -> None:
    d = driver
    with pytest.raises(ValueError, match="surrogate"):
        d.visits.set_labels(["Guiding", "Bad \ud800"])
    with pytest.raises(ValueError, match="surrogate"):
        d.visits.start_visit("C-\udfff", consent())
    assert d.visits.open_visit() is None
    _start_visit(d)
    d.recording.start()
    d.settle()
    with pytest.raises(ValueError, match="surrogate"):
        d.recording.add_tag("tag0000001", "Guiding", "\ud83d", "Sam", 0)
    _stop(d)


def test_the_audit_trail_records_the_visit_without_personal_data(driver: Driver) -> None:
    import json

    from kit.audit.log import verify_file
    from kit.store.files import FileLayer

    d = driver
    visit = d.visits.start_visit("C-1041 Smith family", consent())
    _record(d, 2.0, [(1.0, "tag0000001", "Guiding")])
    d.visits.update_tag("tag0000001", note="Mum waited for him")
    d.visits.delete_tag("tag0000001")
    d.visits.restore_tag("tag0000001")
    d.visits.end_visit(visit.id)
    d.settle()
    verdict = verify_file(FileLayer(d.data))
    assert verdict.intact
    text = (d.data / "audit.log").read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    expected = [
        "visit.started",
        "recording.started",
        "tag.added",
        "recording.stopped",
        "tag.edited",
        "tag.deleted",
        "tag.restored",
        "visit.ended",
        "visit.sealed",  # its final cut made, the kit forgets its key
    ]
    assert [e["kind"] for e in entries] == expected
    assert entries[3]["details"]["state"] == "ready" and entries[3]["details"]["seconds"] >= 1.9
    assert entries[4]["details"]["changed"] == ["note"]
    for secret in ("Smith", "C-1041", "Guiding", "Mum waited"):
        assert secret not in text  # ids and counts only


def _device_events(d: Driver) -> list[dict[str, object]]:
    return [dict(e.data) for e in d.events.since(0) if e.kind == "device"]


def _gap_s(error: str) -> tuple[float, float | None]:
    """The span a take's ``error`` says has no sound: "no sound from A s to B s: ..."
    (B None: "to the end")."""
    words = error.split(":", maxsplit=1)[0].split()
    assert words[:3] == ["no", "sound", "from"], error
    until = None if words[-2:] == ["the", "end"] else float(words[-2])
    return float(words[3]), until


def test_a_microphone_lost_and_put_back_mid_take(driver: Driver) -> None:
    """The take goes on picture only: a ``device`` event and the status say so at once,
    and again when it is back; the take's ``error`` says where it has no sound."""
    d = driver
    _start_visit(d)
    _start(d, 1.0)
    take_id = d.recording.status().take_id
    d.pull_microphone()
    d.advance(3.0)  # the real kit notices a silence of 2 s while frames come
    status = d.recording.status()
    assert status.state == State.RECORDING and status.error == MIC_LOST
    assert status.level_dbfs == -120.0  # no level shown for sound that is not there
    assert _device_events(d) == [
        {"device": "microphone", "state": "lost", "message": MIC_LOST, "take_id": take_id}
    ]
    d.put_back_microphone()
    d.advance(2.0)  # the real kit tries the microphone again every second
    status = d.recording.status()
    assert status.state == State.RECORDING and status.error == ""
    assert _device_events(d)[1:] == [
        {"device": "microphone", "state": "back", "message": MIC_BACK, "take_id": take_id}
    ]
    d.advance(1.0)
    _stop(d)
    (take,) = d.visits.takes(_open_visit(d))
    assert take.state == TakeState.READY
    assert take.error.endswith(": the microphone was lost (its film is silent there)")
    lost_s, back_s = _gap_s(take.error)
    assert 0.8 <= lost_s <= 1.1, take.error  # its last sound, just before the pull
    assert back_s is not None and 4.0 <= back_s <= 5.1, take.error  # within a retry
    assert d.recording.status().error == ""


def test_a_microphone_lost_until_the_end_and_missing_at_the_next_start(
    driver: Driver,
) -> None:
    d = driver
    _start_visit(d)
    _start(d, 1.0)
    d.pull_microphone()
    d.advance(3.0)
    _stop(d)
    (take,) = d.visits.takes(_open_visit(d))
    assert take.state == TakeState.READY
    lost_s, back_s = _gap_s(take.error)
    assert 0.8 <= lost_s <= 1.1 and back_s is None, take.error
    # Still out at the next start: that take records picture only from its first frame.
    _start(d, 3.0)
    status = d.recording.status()
    assert status.state == State.RECORDING and status.error == MIC_MISSING
    missing = [e for e in _device_events(d) if e["state"] == "missing"]
    assert missing == [
        {
            "device": "microphone",
            "state": "missing",
            "message": MIC_MISSING,
            "take_id": status.take_id,
        }
    ]
    _stop(d)
    second = d.visits.takes(_open_visit(d))[-1]
    assert second.error == "no sound: the microphone did not work in this take (its film is silent)"
