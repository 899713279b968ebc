"""Review: the visits API, moving tags, re-cuts and the cut's files (/media/), with the
fake kit cutting into a real data directory under tmp_path."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kit.clock import FakeClock
from kit.errors import NotFound
from kit.model import Purpose
from kit.testing.fakes import FakeKit, film_bytes, placeholder_film
from kit.testing.privacy import consent_json
from tests.web.conftest import Phone
from web.pairing import PairingStore

S = 1_000_000_000
SECRET = b"do-not-serve-this"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The fake kit's data directory, with things beside the cut that must never be served."""
    root = tmp_path / "data"
    other = root / "visits" / "s0000009" / "cut"
    other.mkdir(parents=True)
    (other / "rough-cut.mp4").write_bytes(SECRET)  # another visit's film
    return root


@pytest.fixture
def kit(clock: FakeClock, data: Path) -> Iterator[FakeKit]:
    fake = FakeKit(data, clock, film=placeholder_film)
    yield fake
    fake.close()


def record(kit: FakeKit, tags: list[tuple[float, str]], seconds: float) -> str:
    """One take of ``seconds`` tagged at (seconds into the take, label); the visit id.

    Tags are named tag00000000, tag00000001, ... in time order. The take goes into the
    open visit, or a new one with every purpose consented to ("Visit 1").
    """
    clock = kit.clock
    assert isinstance(clock, FakeClock)
    if kit.visits.open_visit() is None:
        kit.open_visit(f"Visit {len(kit.visits.visits()) + 1}")
    kit.recording.start()
    take = kit.recording.current_take
    assert take is not None and take.first_frame_ns is not None
    for n, (t, label) in enumerate(sorted(tags)):
        clock.set(take.first_frame_ns + round(t * S))
        kit.recording.add_tag(f"tag{n:08d}", label, "", "Sam", 0)
    clock.set(take.first_frame_ns + round(seconds * S))
    kit.recording.stop()
    return take.visit_id


@pytest.fixture
def visit_id(kit: FakeKit, data: Path) -> str:
    visit = record(kit, [(5.0, "Guiding"), (20.0, "Being attentive")], 30.0)
    # A take's own file beside the cut: never served.
    take = data / "visits" / visit / "takes" / kit.visits.takes(visit)[0].id
    take.mkdir(parents=True)
    (take / "take.mp4").write_bytes(SECRET)
    return visit


def body(r: Any) -> dict[str, Any]:
    assert r.json is not None, r.data
    data: dict[str, Any] = r.json
    return data


def fetch(phone: Phone, url: str, **kw: Any) -> Any:
    """GET a file, read it and release it (the app streams files from disk)."""
    r = phone.client.open(url, **kw)
    r.get_data()
    r.close()
    return r


def kinds(kit: FakeKit, after: int = 0) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, e.data) for e in kit.events.since(after, timeout_s=0)]


# ---------- GET /api/visits, GET /api/visits/<id> ----------


def test_no_visits_yet(phone: Phone) -> None:
    assert body(phone.get("/api/visits")) == {"visits": []}


def test_the_list_of_visits(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    first = body(phone.get("/api/visits"))["visits"][0]
    assert first["tags"] == 2
    assert [(t["seq"], t["state"], t["duration_s"]) for t in first["take_list"]] == [
        (1, "ready", 30)
    ]
    assert first["takes"] == 1
    assert (first["case_ref"], first["state"], first["access"]) == ("Visit 1", "open", "readable")
    assert first["consent"] == consent_json()
    assert first["cut"] == {"duration_s": 18.0, "clips": 2, "stills": 2, "up_to_date": True}
    assert first["cut_error"] == ""
    kit.visits.end_visit(visit_id)  # its cut is made: it is sealed
    later = kit.open_visit("C-2042").id
    listed = body(phone.get("/api/visits"))["visits"]
    assert [s["id"] for s in listed] == [later, visit_id]  # newest first
    assert [s["number"] for s in listed] == [2, 1]
    sealed = listed[1]
    assert (sealed["case_ref"], sealed["state"], sealed["access"]) == ("", "ended", "sealed")
    assert sealed["consent"] == consent_json()  # kept in the clear: it says when to erase
    assert (sealed["takes"], sealed["tags"]) == (1, 2)  # counted, not read
    assert sealed["cut"] is None  # the kit can no longer read it
    assert (listed[0]["case_ref"], listed[0]["state"], listed[0]["takes"]) == ("C-2042", "open", 0)
    assert listed[0]["cut"] is None


def test_one_visit_for_the_review_page(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    got = body(phone.get(f"/api/visits/{visit_id}"))
    assert got["event_id"] == kit.events.last_id
    assert got["visit"]["id"] == visit_id
    assert got["visit"]["number"] == 1
    assert got["labels"] == kit.visits.labels()
    assert got["status"]["state"] == "idle"
    assert [(t["label"], t["take_s"]) for t in got["tags"]] == [
        ("Guiding", 5.0),
        ("Being attentive", 20.0),
    ]
    cut = got["cut"]
    # The planner's moments: 8 s before each tag (clamped to the take) and 3 s after, at
    # most 10 s (the lag kept, the lead shortened).
    assert [(c["film_start_s"], c["film_end_s"]) for c in cut["clips"]] == [
        (0.0, 8.0),
        (8.0, 18.0),
    ]
    assert [c["labels"] for c in cut["clips"]] == [["Guiding"], ["Being attentive"]]
    assert [c["tags_film_s"] for c in cut["clips"]] == [[5.0], [15.0]]
    assert [
        (m["moment_id"], m["number"], m["take_start_s"], m["take_end_s"]) for m in got["moments"]
    ] == [("tag00000000", 1, 0.0, 8.0), ("tag00000001", 2, 13.0, 23.0)]
    assert [m["film_start_s"] for m in got["moments"]] == [0.0, 8.0]
    version = cut["version"]
    assert cut["film_url"] == f"/media/{visit_id}/rough-cut.mp4?v={version}"
    assert [s["url"] for s in cut["stills"]] == [
        f"/media/{visit_id}/stills/01-tag00000000.jpg?v={version}",
        f"/media/{visit_id}/stills/02-tag00000001.jpg?v={version}",
    ]
    assert cut["contact_sheet_url"] == f"/media/{visit_id}/contact-sheet.jpg?v={version}"
    assert cut["chapters_url"] == f"/media/{visit_id}/chapters.vtt?v={version}"
    for url in [cut["film_url"], cut["contact_sheet_url"], cut["chapters_url"]]:
        r = fetch(phone, url)
        assert r.status_code == 200, url
        r.close()


def test_a_recut_changes_the_version(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    before = body(phone.get(f"/api/visits/{visit_id}"))["cut"]["version"]
    assert phone.post(f"/api/visits/{visit_id}/recut").status_code == 202
    assert body(phone.get(f"/api/visits/{visit_id}"))["cut"]["version"] != before


@pytest.mark.parametrize("bad", ["s0000404", "short", "a" * 65, "s000000%21", "..", "%2e%2e"])
def test_an_unknown_visit_is_404(phone: Phone, visit_id: str, bad: str) -> None:
    r = phone.get(f"/api/visits/{bad}")
    assert r.status_code == 404
    assert "error" in body(r)
    assert phone.post(f"/api/visits/{bad}/recut").status_code in (404, 405)


def test_a_visit_without_a_cut(tmp_path: Path, pairing: PairingStore) -> None:
    kit = FakeKit(tmp_path / "nocut")  # no film maker: it never cuts
    from tests.web.conftest import pair

    phone = pair(kit.app(pairing, {"TESTING": True}), pairing)
    kit.open_visit()
    kit.recording.start()
    kit.recording.stop()
    sid = kit.visits.visits()[0].id
    got = body(phone.get(f"/api/visits/{sid}"))
    assert got["cut"] is None
    assert got["cut_error"] == ""
    assert body(phone.get("/api/visits"))["visits"][0]["cut"] is None
    assert fetch(phone, f"/media/{sid}/rough-cut.mp4").status_code == 404


@pytest.mark.parametrize("damage", [b"{not json", b"KITENC01" + bytes(24) + b"x" * 100])
def test_a_damaged_manifest_is_reported_not_a_500(
    phone: Phone, data: Path, visit_id: str, damage: bytes
) -> None:
    (data / "visits" / visit_id / "cut" / "cut.json").write_bytes(damage)
    got = body(phone.get(f"/api/visits/{visit_id}"))
    assert got["cut"] is None
    assert "damaged" in got["cut_error"]
    assert "damaged" in body(phone.get("/api/visits"))["visits"][0]["cut_error"]


def test_a_cut_without_clips(phone: Phone, kit: FakeKit) -> None:
    sid = record(kit, [], 10.0)
    cut = body(phone.get(f"/api/visits/{sid}"))["cut"]
    assert cut["clips"] == []
    assert cut["film_url"] is None
    assert cut["duration_s"] == 0.0


# ---------- POST /api/visits/<id>/recut ----------


def test_recut(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    after = kit.events.last_id
    r = phone.post(f"/api/visits/{visit_id}/recut")
    assert r.status_code == 202
    assert body(r)["visit_id"] == visit_id
    events = kinds(kit, after)
    assert [k for k, _ in events] == ["status", "cut", "status"]
    assert (events[0][1]["state"], events[0][1]["cut_progress"]) == ("cutting", 0.0)
    assert events[1][1] == {"visit_id": visit_id, "error": ""}
    assert (events[2][1]["state"], events[2][1]["cut_progress"]) == ("idle", None)


def test_a_failed_recut_arrives_as_a_cut_event(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    kit.recording.cut_error = "the take's file is damaged"
    after = kit.events.last_id
    assert phone.post(f"/api/visits/{visit_id}/recut").status_code == 202
    assert ("cut", {"visit_id": visit_id, "error": "the take's file is damaged"}) in kinds(
        kit, after
    )


def test_recut_refuses_a_body_it_does_not_need_gracefully(phone: Phone, visit_id: str) -> None:
    r = phone.post(f"/api/visits/{visit_id}/recut", data=b"x" * 40_000)
    assert r.status_code == 413


# ---------- PATCH /api/tags/<id>: moving a tag ----------


def at_ns(phone: Phone, visit_id: str, tag_id: str) -> int:
    tags = body(phone.get(f"/api/visits/{visit_id}"))["tags"]
    return int(next(t["at_ns"] for t in tags if t["id"] == tag_id))


def test_nudge_a_tag(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    before = at_ns(phone, visit_id, "tag00000001")
    after = kit.events.last_id
    r = phone.patch("/api/tags/tag00000001", json={"nudge_ms": -1200})
    assert r.status_code == 200
    assert body(r)["tag"]["at_ns"] == before - 1_200_000_000
    assert at_ns(phone, visit_id, "tag00000001") == before - 1_200_000_000
    events = kinds(kit, after)
    assert [k for k, _ in events] == ["tag", "status", "cut", "status"]  # edited, then re-cut
    cut = body(phone.get(f"/api/visits/{visit_id}"))["cut"]
    assert cut["clips"][1]["tags_film_s"] == [pytest.approx(15.0)]  # the clip moved with it
    assert cut["clips"][1]["film_end_s"] == pytest.approx(18.0)


def test_a_nudge_stops_at_the_ends_of_the_take(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    take = kit.visits.takes(visit_id)[0]
    assert take.first_frame_ns is not None and take.end_ns is not None
    r = phone.patch("/api/tags/tag00000000", json={"nudge_ms": -60_000})
    assert body(r)["tag"]["at_ns"] == take.first_frame_ns
    r = phone.patch("/api/tags/tag00000000", json={"nudge_ms": 60_000})
    assert body(r)["tag"]["at_ns"] == take.end_ns


def test_move_a_tag_to_an_instant(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    take = kit.visits.takes(visit_id)[0]
    assert take.first_frame_ns is not None and take.end_ns is not None
    target = take.first_frame_ns + 12 * S
    r = phone.patch("/api/tags/tag00000000", json={"at_ns": target})
    assert body(r)["tag"]["at_ns"] == target
    r = phone.patch("/api/tags/tag00000000", json={"at_ns": take.end_ns + 1})
    assert r.status_code == 400
    assert body(r) == {"error": "a tag cannot be moved outside its take"}


def test_relabel_renote_and_nudge_in_one_edit(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    after = kit.events.last_id
    r = phone.patch(
        "/api/tags/tag00000000",
        json={"label": "Deepening discussion", "note": "he looks up", "nudge_ms": 200},
    )
    assert r.status_code == 200
    tag = body(r)["tag"]
    assert (tag["label"], tag["note"]) == ("Deepening discussion", "he looks up")
    assert [k for k, _ in kinds(kit, after)].count("cut") == 1  # one edit, one re-cut
    cut = body(phone.get(f"/api/visits/{visit_id}"))["cut"]
    assert cut["clips"][0]["labels"] == ["Deepening discussion"]
    assert cut["clips"][0]["notes"] == ["he looks up"]


def test_a_tag_of_the_take_being_recorded_moves_up_to_now(
    phone: Phone, kit: FakeKit, clock: FakeClock
) -> None:
    kit.open_visit()
    kit.recording.start()
    clock.advance(10 * S)
    kit.recording.add_tag("live0001", "Guiding", "", "Sam", 0)
    clock.advance(2 * S)
    r = phone.patch("/api/tags/live0001", json={"nudge_ms": 5000})
    assert body(r)["tag"]["at_ns"] == clock.now()
    assert not any(k == "cut" for k, _ in kinds(kit))  # no cut while recording


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        ({"at_ns": 1.5e18}, "'at_ns' must be an integer (kit-clock nanoseconds)"),
        ({"at_ns": True}, "'at_ns' must be an integer (kit-clock nanoseconds)"),
        ({"at_ns": "12"}, "'at_ns' must be an integer (kit-clock nanoseconds)"),
        ({"at_ns": None}, "'at_ns' must be an integer (kit-clock nanoseconds)"),
        ({"at_ns": 10**30}, "a tag cannot be moved outside its take"),
        ({"at_ns": -1}, "a tag cannot be moved outside its take"),
        ({"nudge_ms": "200"}, "'nudge_ms' must be a number"),
        ({"nudge_ms": False}, "'nudge_ms' must be a number"),
        ({"nudge_ms": [200]}, "'nudge_ms' must be a number"),
        ({"nudge_ms": 60_001}, "'nudge_ms' must be between -60000 and 60000"),
        ({"nudge_ms": 1, "at_ns": 1}, "send 'at_ns' or 'nudge_ms', not both"),
        ({"move": 1}, "unknown field(s): move"),
        ({}, "send 'label', 'note', 'at_ns' and/or 'nudge_ms'"),
    ],
)
def test_bad_moves_are_400(phone: Phone, visit_id: str, sent: dict[str, Any], error: str) -> None:
    before = at_ns(phone, visit_id, "tag00000000")
    r = phone.patch("/api/tags/tag00000000", json=sent)
    assert r.status_code == 400
    assert body(r)["error"] == error
    assert at_ns(phone, visit_id, "tag00000000") == before


@pytest.mark.parametrize("raw", [b'{"nudge_ms": NaN}', b'{"nudge_ms": Infinity}', b"[1]", b"{"])
def test_malformed_move_bodies_are_400(phone: Phone, visit_id: str, raw: bytes) -> None:
    r = phone.patch("/api/tags/tag00000000", data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "error" in body(r)


def test_moving_an_unknown_or_deleted_tag_is_404(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    assert phone.patch("/api/tags/nosuchtag1", json={"nudge_ms": 200}).status_code == 404
    assert phone.delete("/api/tags/tag00000000").status_code == 200
    r = phone.patch("/api/tags/tag00000000", json={"nudge_ms": 200})
    assert r.status_code == 404
    assert body(r) == {"error": "no tag 'tag00000000'"}


# ---------- the visit's lifecycle: POST /api/visits, PATCH, POST .../end ----------


def test_start_rename_and_end_a_visit(phone: Phone, kit: FakeKit) -> None:
    r = phone.post("/api/visits", json={"case_ref": "  C-1041  family ", "consent": consent_json()})
    assert r.status_code == 201
    visit = body(r)["visit"]
    assert (visit["case_ref"], visit["state"], visit["takes"]) == ("C-1041 family", "open", 0)
    assert (visit["access"], visit["consent"]) == ("readable", consent_json())
    assert visit["elapsed_s"] == 0.0
    again = {"case_ref": "C-1", "consent": consent_json()}
    assert phone.post("/api/visits", json=again).status_code == 409  # one open visit at a time
    state = body(phone.get("/api/state"))
    assert state["visit"]["id"] == visit["id"] and state["status"]["visit_id"] == visit["id"]
    r = phone.patch(f"/api/visits/{visit['id']}", json={"case_ref": "C-1042"})
    assert body(r)["visit"]["case_ref"] == "C-1042"
    kit.recording.start()
    r = phone.post(f"/api/visits/{visit['id']}/end")
    assert r.status_code == 409  # recording
    assert "stop it" in body(r)["error"]
    kit.recording.stop()
    r = phone.post(f"/api/visits/{visit['id']}/end")
    assert r.status_code == 200
    ended = body(r)["visit"]
    assert (ended["state"], ended["takes"], ended["elapsed_s"]) == ("ended", 1, None)
    assert phone.post(f"/api/visits/{visit['id']}/end").status_code == 409
    assert body(phone.get("/api/state"))["visit"] is None
    # Sealed once its cut is made (none here: nothing was tagged): the kit forgot its key.
    sealed = body(phone.get(f"/api/visits/{visit['id']}"))["visit"]
    assert (sealed["access"], sealed["case_ref"]) == ("sealed", "")
    # The next take opens no visit: it needs the family's consent, on the phone.
    kit.recording.start()
    state = body(phone.get("/api/state"))
    assert state["visit"] is None and state["status"]["state"] == "idle"
    assert state["status"]["error"].startswith("no visit is open")
    actions = [d["action"] for k, d in kinds(kit) if k == "visit"]
    assert actions == ["started", "updated", "ended", "sealed"]


@pytest.mark.parametrize(
    "sent", [{"case_ref": ""}, {"case_ref": "x" * 61}, {"case_ref": 7}, {"name": "C-1"}]
)
def test_bad_case_references_are_400(phone: Phone, sent: dict[str, Any]) -> None:
    visit = body(
        phone.post("/api/visits", json={"case_ref": "Visit 1", "consent": consent_json()})
    )["visit"]
    assert visit["case_ref"] == "Visit 1"
    r = phone.patch(f"/api/visits/{visit['id']}", json=sent)
    assert r.status_code == 400
    assert "error" in body(r)


def test_delete_and_restore_recut(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    assert phone.delete("/api/tags/tag00000000").status_code == 200
    cut = body(phone.get(f"/api/visits/{visit_id}"))["cut"]
    assert [c["tag_ids"] for c in cut["clips"]] == [["tag00000001"]]
    assert len(cut["stills"]) == 1
    assert phone.post("/api/tags/tag00000000/restore").status_code == 200
    cut = body(phone.get(f"/api/visits/{visit_id}"))["cut"]
    assert [c["tag_ids"] for c in cut["clips"]] == [["tag00000000"], ["tag00000001"]]


# ---------- GET /media/<visit>/<name> ----------


def test_the_film_is_served_inline_and_not_kept(phone: Phone, visit_id: str) -> None:
    r = fetch(phone, f"/media/{visit_id}/rough-cut.mp4")
    assert r.status_code == 200
    assert r.mimetype == "video/mp4"
    assert r.headers["Content-Disposition"] == "inline"
    assert r.headers["Cache-Control"] == "no-store, private"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Length"] == str(len(film_bytes()))
    assert r.data == film_bytes()
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=100-199", 100, 199), ("bytes=65000-", 65000, 65535), ("bytes=-10", 65526, 65535)],
)
def test_a_range_is_206_with_those_bytes(
    phone: Phone, visit_id: str, header: str, start: int, end: int
) -> None:
    r = fetch(phone, f"/media/{visit_id}/rough-cut.mp4", headers={"Range": header})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/65536"
    assert r.headers["Content-Length"] == str(end - start + 1)
    assert r.data == film_bytes()[start : end + 1]
    assert r.headers["Content-Disposition"] == "inline"


def test_an_unsatisfiable_range_is_416(phone: Phone, visit_id: str) -> None:
    r = fetch(phone, f"/media/{visit_id}/rough-cut.mp4", headers={"Range": "bytes=70000-"})
    assert r.status_code == 416
    assert "error" in body(r)


def test_a_malformed_range_is_416(phone: Phone, visit_id: str) -> None:
    # Werkzeug refuses a Range it cannot parse (RFC 9110 would allow ignoring it): a 4xx.
    r = fetch(phone, f"/media/{visit_id}/rough-cut.mp4", headers={"Range": "bytes=zz"})
    assert r.status_code == 416
    assert "error" in body(r)


def test_head_and_if_none_match(phone: Phone, visit_id: str) -> None:
    url = f"/media/{visit_id}/rough-cut.mp4"
    r = fetch(phone, url, method="HEAD")
    assert r.status_code == 200
    assert r.data == b""
    assert r.headers["Content-Length"] == "65536"
    r = fetch(phone, url, headers={"If-None-Match": r.headers["ETag"]})
    assert r.status_code == 304


def test_stills_and_chapters(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    r = fetch(phone, f"/media/{visit_id}/stills/01-tag00000000.jpg")
    assert (r.status_code, r.mimetype) == (200, "image/jpeg")
    r = fetch(phone, f"/media/{visit_id}/chapters.vtt")
    assert (r.status_code, r.mimetype) == (200, "text/vtt")
    assert r.data.startswith(b"WEBVTT")
    assert b"Being attentive" in r.data


@pytest.mark.parametrize("name", ["cut.json", "tags.csv", "rough-cut.otio", "notes.txt"])
def test_only_what_the_page_shows_is_served(
    phone: Phone, data: Path, visit_id: str, name: str
) -> None:
    (data / "visits" / visit_id / "cut" / name).write_text("x")
    r = fetch(phone, f"/media/{visit_id}/{name}")
    assert r.status_code == 404
    assert "error" in body(r)


def test_media_needs_a_paired_phone(client: FlaskClient, visit_id: str) -> None:
    r = client.get(f"/media/{visit_id}/rough-cut.mp4")
    assert r.status_code == 401
    assert body(r) == {"error": "this phone is not paired with the kit"}
    r = client.get(f"/media/{visit_id}/rough-cut.mp4", headers={"Range": "bytes=0-9"})
    assert r.status_code == 401


ESCAPES = [
    "/media/{s}/../../kit.db",
    "/media/{s}/..%2f..%2fkit.db",
    "/media/{s}/%2e%2e/%2e%2e/kit.db",
    "/media/{s}/%2e%2e%2f%2e%2e%2fkit.db",
    "/media/{s}/..%252f..%252fkit.db",
    "/media/{s}/stills/../../takes/{t}/take.mp4",
    "/media/{s}/stills/%2e%2e/%2e%2e/takes/{t}/take.mp4",
    "/media/{s}/../../s0000009/cut/rough-cut.mp4",
    "/media/{s}/%2e%2e/%2e%2e/s0000009/cut/rough-cut.mp4",
    "/media/{s}//etc/passwd",
    "/media/{s}/%2fetc%2fpasswd",
    "/media/{s}/%2Fetc/passwd",
    "/media/{s}/..\\..\\kit.db",
    "/media/{s}/..%5c..%5ckit.db",
    "/media/{s}/rough-cut.mp4%00.jpg",
    "/media/{s}/.hidden.mp4",
    "/media/{s}/takes/{t}/take.mp4",
    "/media/{s}/....//....//kit.db",
    "/media/{s}/stills/./../../../kit.db",
    "/media/../pairing.db",
    "/media/%2e%2e/pairing.db",
    "/media/s0000009/rough-cut.mp4",  # a visit the kit does not know
    "/media/%2e%2e%2fs0000009/rough-cut.mp4",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_no_path_escapes(
    phone: Phone, kit: FakeKit, data: Path, visit_id: str, template: str
) -> None:
    (data / "visits" / visit_id / "cut" / ".hidden.mp4").write_bytes(SECRET)
    take_id = kit.visits.takes(visit_id)[0].id
    r = fetch(phone, template.format(s=visit_id, t=take_id))
    assert r.status_code in (400, 404, 308), (template, r.status_code)
    assert SECRET not in r.data
    assert b"SQLite format" not in r.data
    assert b"root:" not in r.data


def test_a_symlink_out_of_the_cut_is_not_followed(phone: Phone, data: Path, visit_id: str) -> None:
    link = data / "visits" / visit_id / "cut" / "escape.mp4"
    link.symlink_to(data / "kit.db")
    r = fetch(phone, f"/media/{visit_id}/escape.mp4")
    assert r.status_code == 404
    assert SECRET not in r.data


def test_the_fakes_cut_file_keeps_the_no_escape_rule(
    kit: FakeKit, data: Path, visit_id: str
) -> None:
    opened = kit.visits.cut_file(visit_id, "rough-cut.mp4")
    with opened.file:
        assert opened.file.read() == film_bytes()
    assert opened.size == len(film_bytes())
    for name in ["../cut.json", "/etc/passwd", str(data / "kit.db"), "", ".", "stills", "a\\b"]:
        with pytest.raises(NotFound):
            kit.visits.cut_file(visit_id, name)
    with pytest.raises(NotFound):
        kit.visits.cut_file("s0000009", "rough-cut.mp4")  # not a visit of this kit


# ---------- pages ----------


def test_the_review_page(phone: Phone, visit_id: str) -> None:
    r = phone.get(f"/visits/{visit_id}")
    assert r.status_code == 200
    page = r.data.decode()
    assert f'data-visit="{visit_id}"' in page
    assert 'controlsList="nodownload' in page
    assert not re.search(r"<[^>]*\sdownload[\s=>]", page)  # no download attribute or link
    assert "review.js" in page
    assert 'name="csrf-token"' in page


def test_the_visits_page(phone: Phone) -> None:
    r = phone.get("/visits")
    assert r.status_code == 200
    assert b"visits.js" in r.data


@pytest.mark.parametrize("bad", ["s0000404", "x", "%2e%2e"])
def test_an_unknown_review_page_is_404(phone: Phone, visit_id: str, bad: str) -> None:
    assert phone.get(f"/visits/{bad}").status_code == 404


def test_review_pages_need_a_paired_phone(client: FlaskClient, visit_id: str) -> None:
    for path in ["/visits", f"/visits/{visit_id}"]:
        r = client.get(path)
        assert (r.status_code, r.headers["Location"]) == (302, "/pair")


def test_home_links_to_the_review(app: Flask, phone: Phone, visit_id: str) -> None:
    page = phone.get("/").data.decode()
    assert 'id="review-link"' in page
    assert 'href="/visits"' in page
    state = body(phone.get("/api/state"))
    assert state["status"]["visit_id"] == visit_id


def test_the_manifest_is_passed_through(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    from kit.store import layout

    with kit.store.files.read(layout.in_cut(visit_id, layout.MANIFEST)) as f:  # encrypted
        manifest = json.loads(f.read())
    cut = body(phone.get(f"/api/visits/{visit_id}"))["cut"]
    for key in ("film", "duration_s", "fps", "clips", "contact_sheet", "exports"):
        assert cut[key] == manifest[key]


def test_pairing_revoking_and_watching_the_film_are_audited(
    app: Flask, phone: Phone, pairing: PairingStore, kit: FakeKit, data: Path, visit_id: str
) -> None:
    from kit.audit.log import verify_file
    from kit.store.files import FileLayer
    from tests.web.conftest import pair

    fetch(phone, f"/media/{visit_id}/rough-cut.mp4")  # a viewing starts at the start
    fetch(phone, f"/media/{visit_id}/rough-cut.mp4", headers={"Range": "bytes=1000-1999"})
    fetch(phone, f"/media/{visit_id}/stills/01-tag00000000.jpg")  # a still is no viewing
    other = pair(app, pairing, "Alex")
    assert phone.delete(f"/api/phones/{other.id}").status_code == 200
    assert verify_file(FileLayer(data)).intact
    entries = [json.loads(x) for x in (data / "audit.log").read_text().splitlines()]
    kinds = [(e["kind"], e["details"].get("phone_id")) for e in entries]
    assert ("film.viewed", phone.id) in kinds
    assert [k for k, _ in kinds].count("film.viewed") == 1
    assert ("phone.paired", other.id) in kinds and ("phone.revoked", other.id) in kinds


# ---------- privacy: the film is encrypted on the card, sealed after the visit ----------


def test_the_film_on_the_card_is_encrypted(phone: Phone, data: Path, visit_id: str) -> None:
    on_card = (data / "visits" / visit_id / "cut" / "rough-cut.mp4").read_bytes()
    assert on_card.startswith(b"KITENC01")  # kit/crypto/FORMAT.md
    assert film_bytes()[:4096] not in on_card
    assert fetch(phone, f"/media/{visit_id}/rough-cut.mp4").data == film_bytes()


def big_film(path: Path, duration_s: float, fps: int) -> None:
    """Not a playable film: 200 000 bytes, three encrypted chunks and a bit."""
    path.write_bytes(bytes((n * 7 + n // 256) % 256 for n in range(200_000)))


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 0), (65535, 65536), (65000, 131100), (131071, 196608), (199_990, 199_999), (1, 199_998)],
)
def test_a_range_across_encrypted_chunks(
    tmp_path: Path, pairing: PairingStore, start: int, end: int
) -> None:
    """The film is decrypted as it is read, only the chunks a range covers (65 536 bytes)."""
    from tests.web.conftest import pair

    kit = FakeKit(tmp_path / "big", FakeClock(), film=big_film)
    phone = pair(kit.app(pairing, {"TESTING": True}), pairing)
    sid = record(kit, [(5.0, "Guiding")], 10.0)
    plain = tmp_path / "plain"
    big_film(plain, 0, 0)
    r = fetch(phone, f"/media/{sid}/rough-cut.mp4", headers={"Range": f"bytes={start}-{end}"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/200000"
    assert r.data == plain.read_bytes()[start : end + 1]
    kit.close()


def test_an_ended_visit_is_sealed_and_its_film_is_not_served(
    phone: Phone, kit: FakeKit, visit_id: str
) -> None:
    cut = body(phone.get(f"/api/visits/{visit_id}"))["cut"]
    urls = [cut["film_url"], cut["stills"][0]["url"], cut["chapters_url"]]
    assert phone.post(f"/api/visits/{visit_id}/end").status_code == 200
    got = body(phone.get(f"/api/visits/{visit_id}"))
    assert got["visit"]["access"] == "sealed"
    assert got["visit"]["case_ref"] == ""
    assert got["cut"] is None
    assert [t["label"] for t in got["tags"]] == ["", ""]  # sealed: only counted
    for url in urls:
        r = fetch(phone, url)
        assert r.status_code == 409, url
        assert "sealed" in body(r)["error"]
    assert phone.get(f"/visits/{visit_id}").status_code == 200  # the page says it is sealed
    page = phone.get(f"/visits/{visit_id}").data.decode()
    assert 'data-access="sealed"' in page
    assert 'id="review-title">Visit 1<' in page


def test_without_consent_to_review_no_film_is_shown(phone: Phone, kit: FakeKit) -> None:
    kit.open_visit("F-0042", frozenset({Purpose.SUPERVISION, Purpose.TRAINING}))
    sid = record(kit, [(5.0, "Guiding")], 10.0)
    got = body(phone.get(f"/api/visits/{sid}"))
    cut = got["cut"]
    assert len(cut["clips"]) == 1  # the cut is made (for supervision), but not shown
    assert cut["film_url"] is None
    assert [s["url"] for s in cut["stills"]] == [None]
    assert (cut["contact_sheet_url"], cut["chapters_url"]) == (None, None)
    for name in ["rough-cut.mp4", "stills/01-tag00000000.jpg", "chapters.vtt"]:
        r = fetch(phone, f"/media/{sid}/{name}")
        assert r.status_code == 403, name
        assert "consent for review" in body(r)["error"]
    page = phone.get(f"/visits/{sid}").data.decode()
    assert 'data-review="no"' in page
