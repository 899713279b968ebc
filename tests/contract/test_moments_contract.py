"""The moments contract (:class:`kit.visits.moments.Moments`), over the fake and the real kit.

A take tagged three times (two tags close enough to share a moment) gives two moments;
then the guider trims one, drops one, reorders them, adds a tag after the fact, and
each edit makes the film again, as a tag edit does.
"""

from __future__ import annotations

import pytest

from kit.errors import NotFound, Sealed, StateError
from kit.model import Access
from kit.visits.moments import MomentView, moments_of
from tests.contract.conftest import Driver
from tests.contract.test_kit_contract import _open_visit, _record, _start_visit

S = 1_000_000_000
FRAME_S = 1 / 30
TAGS = [(3.0, "tag0000001", "Guiding"), (7.0, "tag0000002", "Being attentive")]


def _setup(d: Driver) -> tuple[str, str, int]:
    """A visit with one 12 s take tagged at 3 s, 7 s and (sharing the 7 s moment) 7.5 s."""
    _start_visit(d)
    take_id = _record(d, 12.0, [*TAGS, (7.5, "tag0000003", "Guiding")])
    visit_id = _open_visit(d)
    take = next(t for t in d.visits.takes(visit_id) if t.id == take_id)
    assert take.first_frame_ns is not None
    return visit_id, take_id, take.first_frame_ns


def _spans(moments: list[MomentView]) -> list[tuple[str, int | None, float, float]]:
    return [(m.moment_id, m.number, m.take_start_s, m.take_end_s) for m in moments]


def _near(*spans: tuple[str, int | None, float, float]) -> list[tuple[object, ...]]:
    """Spans as expected, to a few frames: the real kit's taps land within a few frames of
    the seconds asked for (its clock moves a frame at a time)."""
    return [(i, n, pytest.approx(a, abs=0.2), pytest.approx(b, abs=0.2)) for i, n, a, b in spans]


def _clips(d: Driver, visit_id: str) -> list[tuple[str, list[str]]]:
    cut = d.visits.cut(visit_id)
    assert cut is not None and cut["up_to_date"] is True, cut
    return [(c["moment_id"], c["tag_ids"]) for c in cut["clips"]]


def test_moments_are_planned_and_in_the_film(driver: Driver) -> None:
    d = driver
    visit_id, take_id, _ = _setup(d)
    moments = moments_of(d.visits).moments(visit_id)
    # 3 s: [0, 6]; 7 s and 7.5 s: one moment [-1, 10.5] in the take, capped at 10 s, and
    # split from the first at the midpoint between 3 s and 7 s.
    assert _spans(moments) == _near(("tag0000001", 1, 0.0, 5.0), ("tag0000002", 2, 5.0, 10.5))
    assert [m.tag_ids for m in moments] == [("tag0000001",), ("tag0000002", "tag0000003")]
    assert [m.labels for m in moments] == [("Guiding",), ("Being attentive", "Guiding")]
    assert moments[0].take_end_s == moments[1].take_start_s  # adjacent
    assert not any(m.trimmed for m in moments)
    assert all(m.take_id == take_id and m.take == 1 and not m.dropped for m in moments)
    assert _clips(d, visit_id) == [
        ("tag0000001", ["tag0000001"]),
        ("tag0000002", ["tag0000002", "tag0000003"]),
    ]
    film = [(m.film_start_s, m.film_end_s) for m in moments]
    assert film[0][0] == 0.0 and all(s is not None and e is not None for s, e in film)
    assert moments[0].as_json()["film_end_s"] == film[0][1]


def test_trim_drop_and_order_make_the_film_again(driver: Driver) -> None:
    d = driver
    visit_id, _, first = _setup(d)
    library = moments_of(d.visits)
    cuts = len([e for e in d.events.since(0) if e.kind == "cut"])
    moments = library.edit_moment(
        visit_id, "tag0000002", start_ns=first + 6 * S, end_ns=first + 9 * S
    )
    d.settle()
    assert _spans(moments)[1] == ("tag0000002", 2, 6.0, 9.0)  # as asked, exactly
    assert moments[1].trimmed and moments[1].default_end_s == pytest.approx(10.5, abs=0.2)
    assert len([e for e in d.events.since(0) if e.kind == "cut"]) == cuts + 1
    cut = d.visits.cut(visit_id)
    assert cut is not None and cut["up_to_date"]
    trimmed = cut["clips"][1]
    assert trimmed["take_start_s"] == pytest.approx(6.0, abs=FRAME_S)
    assert trimmed["film_end_s"] - trimmed["film_start_s"] == pytest.approx(3.0, abs=FRAME_S)
    # Dropped: out of the film, its tag kept.
    moments = library.edit_moment(visit_id, "tag0000001", dropped=True)
    d.settle()
    assert [(m.number, m.dropped) for m in moments] == [(None, True), (1, False)]
    # Film times are the current film's: the one made after the edit has none for it.
    assert library.moments(visit_id)[0].film_start_s is None
    assert _clips(d, visit_id) == [("tag0000002", ["tag0000002", "tag0000003"])]
    assert [t.id for t in d.visits.tags(visit_id)] == ["tag0000001", "tag0000002", "tag0000003"]
    # The order names the film's moments, each once.
    for bad in (["tag0000002", "tag0000001"], [], ["tag0000002", "tag0000002"], ["nosuchtag"]):
        with pytest.raises(ValueError, match="each moment of the film once"):
            library.order_moments(visit_id, bad)
    library.edit_moment(visit_id, "tag0000001", dropped=False)
    moments = library.order_moments(visit_id, ["tag0000002", "tag0000001"])
    d.settle()
    assert [(m.moment_id, m.number) for m in moments] == [("tag0000001", 2), ("tag0000002", 1)]
    assert [c[0] for c in _clips(d, visit_id)] == ["tag0000002", "tag0000001"]
    # A trim set back: where the planner put it.
    moments = library.edit_moment(visit_id, "tag0000002", start_ns=None, end_ns=None)
    d.settle()
    assert _spans(moments) == _near(("tag0000001", 2, 0.0, 5.0), ("tag0000002", 1, 5.0, 10.5))
    assert not moments[1].trimmed


def test_bad_edits_are_refused(driver: Driver) -> None:
    d = driver
    visit_id, _, first = _setup(d)
    library = moments_of(d.visits)
    with pytest.raises(NotFound):
        library.edit_moment(visit_id, "tag0000003", dropped=True)  # not a moment's first tag
    with pytest.raises(NotFound):
        library.edit_moment("nosuchvisit1", "tag0000001", dropped=True)
    for start, end, message in [
        (-1.0, 4.0, "outside its take"),
        (1.0, 12.5, "outside its take"),
        (4.0, 3.0, "end after it starts"),
        (4.0, 4.2, "at least 0.5 s"),
    ]:
        with pytest.raises(ValueError, match=message):
            library.edit_moment(
                visit_id,
                "tag0000001",
                start_ns=first + round(start * S),
                end_ns=first + round(end * S),
            )
    with pytest.raises(ValueError, match="end after it starts"):
        library.edit_moment(visit_id, "tag0000001", start_ns=first + 6 * S)  # its end is ~5 s
    with pytest.raises(ValueError, match="nothing to change"):
        library.edit_moment(visit_id, "tag0000001")
    assert library.moments(visit_id)[0].trimmed is False
    d.settle()


def test_an_edit_follows_its_tag_and_waits_while_it_is_deleted(driver: Driver) -> None:
    d = driver
    visit_id, take_id, _ = _setup(d)
    library = moments_of(d.visits)
    library.edit_moment(visit_id, "tag0000002", dropped=True)
    d.settle()
    assert _clips(d, visit_id) == [("tag0000001", ["tag0000001"])]
    # The tag it was made under deleted: the edit is ignored, not an error; the moment is
    # named by its next tag, and is in the film again.
    d.visits.delete_tag("tag0000002")
    d.settle()
    moments = library.moments(visit_id)
    assert [(m.moment_id, m.dropped) for m in moments] == [
        ("tag0000001", False),
        ("tag0000003", False),
    ]
    assert [c[0] for c in _clips(d, visit_id)] == ["tag0000001", "tag0000003"]
    # Brought back (an undo), the edit applies again.
    d.visits.restore_tag("tag0000002")
    d.settle()
    assert [(m.moment_id, m.dropped) for m in library.moments(visit_id)] == [
        ("tag0000001", False),
        ("tag0000002", True),
    ]
    # A tag just before it joins the moment and names it now: the edit stays with it.
    at = d.visits.tag("tag0000002").at_ns - S // 2
    library.add_tag_at(visit_id, take_id, "late0001", at, "Guiding", "", "Sam")
    d.settle()
    assert [(m.moment_id, m.dropped, m.tag_ids[0]) for m in library.moments(visit_id)] == [
        ("tag0000001", False, "tag0000001"),
        ("late0001", True, "late0001"),
    ]
    assert _clips(d, visit_id) == [("tag0000001", ["tag0000001"])]


def test_a_tag_added_after_the_fact_joins_the_film(driver: Driver) -> None:
    d = driver
    visit_id, take_id, first = _setup(d)
    library = moments_of(d.visits)
    at = first + round(11.5 * S)
    tag, new = library.add_tag_at(visit_id, take_id, "late0001", at, "Guiding", "later", "Sam")
    assert new and (tag.take_id, tag.at_ns, tag.note, tag.author) == (take_id, at, "later", "Sam")
    again, new = library.add_tag_at(visit_id, take_id, "late0001", at, "Guiding", "", "Sam")
    assert not new and again == tag
    d.settle()
    moments = library.moments(visit_id)
    assert [m.moment_id for m in moments] == ["tag0000001", "tag0000002", "late0001"]
    assert _clips(d, visit_id)[-1] == ("late0001", ["late0001"])
    assert ("added", "late0001") in [
        (e.data["action"], e.data["tag_id"]) for e in d.events.since(0) if e.kind == "tag"
    ]
    with pytest.raises(ValueError, match="inside its take"):
        library.add_tag_at(visit_id, take_id, "late0002", first + 13 * S, "Guiding", "", "Sam")
    with pytest.raises(ValueError, match="label"):
        library.add_tag_at(visit_id, take_id, "late0003", at, " ", "", "Sam")
    with pytest.raises(NotFound):
        library.add_tag_at(visit_id, "nosuchtake01", "late0004", at, "Guiding", "", "Sam")
    d.settle()


def test_a_take_recording_takes_no_tag_after_the_fact(driver: Driver) -> None:
    d = driver
    _start_visit(d)
    d.recording.start()
    d.settle()
    status = d.recording.status()
    assert status.take_id is not None and status.visit_id is not None
    with pytest.raises(StateError, match="finished take"):
        moments_of(d.visits).add_tag_at(
            status.visit_id, status.take_id, "late0001", d.recording.now_ns(), "Guiding", "", "Sam"
        )
    with pytest.raises(StateError):
        moments_of(d.visits).take_file(status.visit_id, status.take_id)
    d.advance(1.0)
    d.recording.stop()
    d.settle()


def test_a_sealed_visit_keeps_its_moments_to_itself(driver: Driver) -> None:
    d = driver
    visit_id, take_id, first = _setup(d)
    library = moments_of(d.visits)
    d.visits.end_visit(visit_id)
    d.settle()
    assert d.visits.visit(visit_id).access == Access.SEALED
    assert library.moments(visit_id) == []
    with pytest.raises(Sealed):
        library.edit_moment(visit_id, "tag0000001", dropped=True)
    with pytest.raises(Sealed):
        library.order_moments(visit_id, [])
    with pytest.raises(Sealed):
        library.add_tag_at(visit_id, take_id, "late0001", first + S, "Guiding", "", "Sam")
    with pytest.raises(Sealed):
        library.take_file(visit_id, take_id)


def test_the_whole_take(driver: Driver) -> None:
    d = driver
    visit_id, take_id, _ = _setup(d)
    library = moments_of(d.visits)
    with pytest.raises(NotFound):
        library.take_file(visit_id, "nosuchtake01")
    if d.name == "fake":
        with pytest.raises(NotFound, match="has no film"):  # the fake's takes are instants
            library.take_file(visit_id, take_id)
        return
    opened = library.take_file(visit_id, take_id)
    with opened.file:
        head = opened.file.read(12)
    assert head[4:8] == b"ftyp" and opened.size > 10_000  # decrypted as it is read
