"""Showing a visit to the family: the screen's filtered data, commands fanned out to every
screen as events, the screens' reports, bubbles on stills, and the rules every film route
keeps (paired, CSRF, sealed 409, no consent to review 403). The fake kit cuts real stills
(JPEG preview frames) into an encrypted data directory under tmp_path."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

from kit.clock import FakeClock
from kit.daemon.events import Event, EventKind, PresentAction, Presenting, Refused
from kit.model import Purpose
from kit.testing.fakes import FakeKit, film_bytes, jpeg_frames, placeholder_film
from tests.web.conftest import Phone, pair
from web.pairing import PairingStore
from web.views.present import for_screens, moments

S = 1_000_000_000
# What the family's screen must never receive: distinctive, so a search cannot miss them.
NOTES = ["Mum-waited-QUOKKA-note", "They-laughed-PANGOLIN-note"]
AUTHORS = ["Guider-Ottoline-Brackenbury", "Cotherapist-Zebedee-Finchley"]
CASE_REF = "CASE-WOMBAT-0042"
LABELS = ["Being attentive", "Receiving initiatives", "Better than usual ★"]
SECRETS = [*NOTES, *AUTHORS, CASE_REF]


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[FakeKit]:
    fake = FakeKit(tmp_path / "data", FakeClock(), film=placeholder_film, preview=jpeg_frames(3))
    yield fake
    fake.close()


def record(kit: FakeKit, purposes: frozenset[Purpose] | None = None) -> str:
    """A visit with one 40 s take and three moments (notes and authors to keep off screens)."""
    clock = kit.clock
    assert isinstance(clock, FakeClock)
    kit.open_visit(CASE_REF, *(() if purposes is None else (purposes,)))
    kit.recording.start()
    take = kit.recording.current_take
    assert take is not None and take.first_frame_ns is not None
    tags = [(5.0, 0), (18.0, 1), (31.0, 2)]
    for n, (t, i) in enumerate(tags):
        clock.set(take.first_frame_ns + round(t * S))
        note = NOTES[i] if i < 2 else ""
        kit.recording.add_tag(f"tag{n:08d}", LABELS[i], note, AUTHORS[i % 2], 0)
    clock.set(take.first_frame_ns + 40 * S)
    kit.recording.stop()  # the fake cuts at once
    return take.visit_id


@pytest.fixture
def visit_id(kit: FakeKit) -> str:
    return record(kit)


def body(r: TestResponse) -> dict[str, Any]:
    assert r.json is not None, r.data
    data: dict[str, Any] = r.json
    return data


def fetch(phone: Phone, url: str) -> TestResponse:
    r = phone.client.get(url)
    r.get_data()
    r.close()
    return r


def present_events(kit: FakeKit, after: int) -> list[dict[str, Any]]:
    return [e.data for e in kit.events.since(after) if e.kind is EventKind.PRESENT]


Frame = tuple[int | None, str, dict[str, Any]]


def frames(response: TestResponse) -> Iterator[Frame]:
    """The stream's events as they arrive (heartbeats too; not the ``retry``)."""
    for chunk in response.response:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for block in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "event" in fields:
                ident = int(fields["id"]) if "id" in fields else None
                yield ident, fields["event"], json.loads(fields["data"])


def next_event(got: Iterator[Frame]) -> Frame:
    """The next event that is not a heartbeat."""
    for frame in got:
        if frame[1] != "heartbeat":
            return frame
    raise AssertionError("the stream ended")


def screen_stream(phone: Phone, visit_id: str, after: int) -> TestResponse:
    return phone.client.get(f"/api/present/{visit_id}/events?after={after}", buffered=False)


# ---------- what a screen gets ----------


def test_the_presentation_data_is_only_moments_and_urls(
    phone: Phone, kit: FakeKit, visit_id: str
) -> None:
    r = phone.get(f"/api/present/{visit_id}")
    assert r.status_code == 200
    got = body(r)
    assert set(got) == {"moments", "film_url", "duration_s", "fps"}
    cut = kit.visits.cut(visit_id)
    assert cut is not None
    assert got["duration_s"] == pytest.approx(cut["duration_s"])
    assert got["fps"] == 30.0
    assert [set(m) for m in got["moments"]] == [
        {"number", "film_start_s", "film_end_s", "still_url"}
    ] * 3
    assert [m["number"] for m in got["moments"]] == [1, 2, 3]
    for moment, clip in zip(got["moments"], cut["clips"], strict=True):
        assert moment["film_start_s"] == pytest.approx(clip["film_start_s"])
        assert moment["film_end_s"] == pytest.approx(clip["film_end_s"])
    assert got["film_url"].startswith(f"/media/{visit_id}/rough-cut.mp4?v=")
    assert fetch(phone, got["film_url"]).data == film_bytes()
    for n, moment in enumerate(got["moments"]):
        assert moment["still_url"].startswith(f"/media/{visit_id}/stills/{n + 1:02d}-tag")
        still = fetch(phone, moment["still_url"])
        assert still.status_code == 200 and still.mimetype == "image/jpeg"
    # Nothing of the guider's: no notes, authors, case reference, labels, title.
    text = r.get_data(as_text=True)
    for secret in [*SECRETS, *LABELS, "Guider", "label", "note", "author", "case_ref"]:
        assert secret not in text


def test_the_pages_carry_nothing_of_the_guider(phone: Phone, visit_id: str) -> None:
    for url in [f"/present/{visit_id}", f"/present/{visit_id}/remote", "/present"]:
        r = phone.get(url)
        assert r.status_code == 200, url
        page = r.get_data(as_text=True)
        for secret in [*SECRETS, *LABELS, "Sam"]:  # Sam: the phone's own name
            assert secret not in page, (url, secret)
    screen = phone.get(f"/present/{visit_id}").get_data(as_text=True)
    assert 'data-access="show"' in screen
    assert "controlslist=" in screen and "nodownload" in screen
    assert "download=" not in screen and "<a " not in screen  # no way off the screen


def test_the_list_of_visits_to_show(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    got = body(phone.get("/api/present"))
    assert got["showing"] is None
    day = kit.visits.visit(visit_id).started_wall[:10]  # the phone told the kit the date
    assert got["visits"] == [{"visit_id": visit_id, "number": 1, "day": day, "moments": 3}]
    assert CASE_REF not in json.dumps(got)
    assert body(phone.get("/api/present?visits=0")) == {"showing": None}  # what screens poll


def test_moments_take_the_still_of_their_first_tag() -> None:
    manifest = {
        "clips": [
            {"number": 1, "film_start_s": 0, "film_end_s": 9.5, "tag_ids": ["a", "b"]},
            {"number": 2, "film_start_s": 9.5, "film_end_s": 20, "tag_ids": ["c"]},
        ],
        "stills": [
            {"tag_id": "b", "number": 2, "path": "visits/v/cut/stills/02-b.jpg"},
            {"tag_id": "a", "number": 1, "path": "visits/v/cut/stills/01-a.jpg"},
        ],
    }
    got = moments(manifest)
    assert [(m.number, m.tag_id, m.still) for m in got] == [
        (1, "a", "visits/v/cut/stills/01-a.jpg"),
        (2, None, None),
    ]
    assert moments(None) == [] and moments({"clips": []}) == []


def test_a_visit_without_a_film_yet(phone: Phone, kit: FakeKit) -> None:
    visit = kit.open_visit(CASE_REF)
    got = body(phone.get(f"/api/present/{visit.id}"))
    assert got == {"moments": [], "film_url": None, "duration_s": 0.0, "fps": None}
    r = phone.post(f"/api/present/{visit.id}/command", json={"action": "moment", "moment": 1})
    assert r.status_code == 409


# ---------- commands reach every screen ----------


def test_commands_fan_out_to_every_screen_of_the_visit(
    app: Flask, pairing: PairingStore, kit: FakeKit, phone: Phone, visit_id: str
) -> None:
    tv, laptop = pair(app, pairing, "TV"), pair(app, pairing, "Laptop")
    after = kit.events.last_id
    streams = [screen_stream(tv, visit_id, after), screen_stream(laptop, visit_id, after)]
    got = [frames(s) for s in streams]
    commands: list[dict[str, Any]] = [
        {"action": "play", "rate": 0.5},
        {"action": "pause"},
        {"action": "moment", "moment": 2},
        {"action": "next"},
        {"action": "step", "frames": -1},
        {"action": "still", "still": True},
    ]
    for command in commands:
        r = phone.post(f"/api/present/{visit_id}/command", json=command)
        assert r.status_code == 202, r.json
        sent = body(r)["event_id"]
        for each in got:
            ident, kind, data = next_event(each)
            assert (ident, kind) == (sent, "present")
            assert data == {**command, "visit_id": visit_id, "device": phone.id}
    for s in streams:
        s.close()


def test_a_screen_hears_nothing_else_of_the_kit(
    app: Flask, pairing: PairingStore, kit: FakeKit, phone: Phone, visit_id: str
) -> None:
    tv = pair(app, pairing, "TV")
    after = kit.events.last_id
    got = frames(screen_stream(tv, visit_id, after))
    everything = frames(phone.client.get(f"/api/events?after={after}", buffered=False))
    # The guider edits a note, renames the visit, a start is refused, another visit plays.
    tag = kit.visits.tags(visit_id)[0]
    assert phone.patch(f"/api/tags/{tag.id}", json={"note": NOTES[1]}).status_code == 200
    assert phone.patch(f"/api/visits/{visit_id}", json={"case_ref": CASE_REF}).status_code == 200
    kit.events.publish(Refused(f"no room ({NOTES[0]})"))
    kit.events.publish(Presenting("othervisit01", PresentAction.PLAY, phone.id))
    r = phone.post(f"/api/present/{visit_id}/command", json={"action": "pause"})
    last = body(r)["event_id"]
    heard: list[Frame] = []
    while not heard or heard[-1][0] != last:
        heard.append(next_event(got))
    kinds = [(kind, data.get("action")) for _, kind, data in heard]
    # The edit made the kit cut again: the screen hears that a new film is ready, no more.
    assert kinds == [("cut", None), ("present", "pause")]
    assert heard[0][2] == {"visit_id": visit_id, "ok": True}
    for secret in SECRETS:
        assert secret not in json.dumps(heard)
    # The guider's own stream carries them all (that is why screens have their own).
    seen: list[Frame] = []
    while not seen or seen[-1][0] != last:
        seen.append(next_event(everything))
    assert NOTES[1] in json.dumps(seen) and AUTHORS[0] in json.dumps(seen)


def test_the_screens_filter() -> None:
    v = "visit0001"
    tag = Event(5, EventKind.TAG, {"action": "updated", "tag": {"note": "x", "author": "y"}})
    assert for_screens(tag, v) is None
    renamed = Event(6, EventKind.VISIT, {"action": "updated", "visit_id": v, "visit": {}})
    assert for_screens(renamed, v) is None
    sealed = Event(7, EventKind.VISIT, {"action": "sealed", "visit_id": v, "visit": {"x": 1}})
    assert for_screens(sealed, v) == Event(7, EventKind.VISIT, {"visit_id": v, "action": "sealed"})
    cut = Event(8, EventKind.CUT, {"visit_id": v, "error": "it broke"})
    assert for_screens(cut, v) == Event(8, EventKind.CUT, {"visit_id": v, "ok": False})
    assert for_screens(Event(9, EventKind.CUT, {"visit_id": "other", "error": ""}), v) is None
    play = Presenting("other", PresentAction.PLAY, "ph1").as_json()
    assert for_screens(Event(10, EventKind.PRESENT, play), v) is None
    opened = Presenting("other", PresentAction.OPEN, "ph1").as_json()
    assert for_screens(Event(11, EventKind.PRESENT, opened), v) is not None  # go there
    assert for_screens(Event(12, EventKind.STATUS, {"state": "idle"}), v) is None
    assert for_screens(Event(13, EventKind.RESYNC, {}), v) == Event(13, EventKind.RESYNC, {})


def test_the_screens_stream_resumes_and_beats(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    first = phone.post(f"/api/present/{visit_id}/command", json={"action": "play"})
    phone.post(f"/api/present/{visit_id}/command", json={"action": "pause"})
    r = phone.client.get(
        f"/api/present/{visit_id}/events",
        headers={"Last-Event-ID": str(body(first)["event_id"])},
        buffered=False,
    )
    assert r.mimetype == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-store"
    got = frames(r)
    assert next(got)[2]["action"] == "pause"
    ident, kind, data = next(got)  # quiet: a heartbeat, with the id it has looked up to
    assert (ident, kind, data) == (kit.events.last_id, "heartbeat", {"event_id": ident})
    r.close()
    assert phone.get(f"/api/present/{visit_id}/events?after=x").status_code == 400


def test_a_screen_reports_where_its_film_is(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    after = kit.events.last_id
    report = {"time_s": 12.3456, "playing": False, "rate": 0.25, "moment": 2, "still": False}
    r = phone.post(f"/api/present/{visit_id}/state", json=report)
    assert r.status_code == 202
    assert present_events(kit, after) == [
        {**report, "action": "state", "visit_id": visit_id, "device": phone.id}
    ]


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        ({"playing": True, "rate": 1, "moment": 1, "still": False}, "'time_s' is required"),
        ({"time_s": -1, "playing": True, "rate": 1, "moment": 1, "still": False}, "'time_s'"),
        ({"time_s": 1, "playing": 1, "rate": 1, "moment": 1, "still": False}, "'playing'"),
        ({"time_s": 1, "playing": True, "rate": 0.3, "moment": 1, "still": False}, "'rate'"),
        ({"time_s": 1, "playing": True, "rate": 1, "moment": True, "still": False}, "'moment'"),
        ({"time_s": 1, "playing": True, "rate": 1, "moment": 1, "still": 0}, "'still'"),
        ({"time_s": 1, "playing": True, "rate": 1, "moment": 1, "still": 0, "x": 1}, "unknown"),
    ],
)
def test_bad_reports_are_400(phone: Phone, visit_id: str, sent: dict[str, Any], error: str) -> None:
    r = phone.post(f"/api/present/{visit_id}/state", json=sent)
    assert r.status_code == 400
    assert error in body(r)["error"]


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        ({}, "'action' must be one of"),
        ({"action": "state"}, "'action' must be one of"),
        ({"action": "stills"}, "'action' must be one of"),
        ({"action": "dance"}, "'action' must be one of"),
        ({"action": "rate"}, "'rate' is required"),
        ({"action": "rate", "rate": 2}, "'rate'"),
        ({"action": "play", "rate": 0.3}, "'rate' must be 1, 0.5 or 0.25"),
        ({"action": "moment", "moment": 0}, "'moment'"),
        ({"action": "moment", "moment": 4}, "from 1 to 3"),
        ({"action": "moment", "moment": "2"}, "'moment'"),
        ({"action": "step", "frames": 0}, "'frames' cannot be 0"),
        ({"action": "step", "frames": 1.5}, "'frames'"),
        ({"action": "step", "frames": 301}, "'frames'"),
        ({"action": "still", "still": "yes"}, "'still' must be true or false"),
        ({"action": "pause", "rate": 1}, "unknown field(s): rate"),
        ({"action": "next", "moment": 1}, "unknown field(s): moment"),
    ],
)
def test_bad_commands_are_400(
    phone: Phone, visit_id: str, sent: dict[str, Any], error: str
) -> None:
    r = phone.post(f"/api/present/{visit_id}/command", json=sent)
    assert r.status_code == 400
    assert error in body(r)["error"]


def test_open_and_close_say_which_visit_is_on_show(phone: Phone, visit_id: str) -> None:
    r = phone.post(f"/api/present/{visit_id}/command", json={"action": "open"})
    opened = body(r)["event_id"]
    assert body(phone.get("/api/present"))["showing"] == {"visit_id": visit_id, "opened": opened}
    phone.post(f"/api/present/{visit_id}/command", json={"action": "close"})
    assert body(phone.get("/api/present"))["showing"] is None


# ---------- the rules of the film: paired, CSRF, sealed, consent ----------


def test_unpaired_devices_get_nothing(client: FlaskClient, visit_id: str) -> None:
    for path in [f"/api/present/{visit_id}", f"/api/present/{visit_id}/events", "/api/present"]:
        assert client.get(path).status_code == 401
    for path in [f"/present/{visit_id}", f"/present/{visit_id}/remote", "/present"]:
        r = client.get(path)
        assert (r.status_code, r.headers["Location"]) == (302, "/pair")


def test_state_changes_need_the_csrf_token_and_the_same_site(phone: Phone, visit_id: str) -> None:
    for path, sent in [
        (f"/api/present/{visit_id}/command", {"action": "play"}),
        (f"/api/present/{visit_id}/state", {}),
    ]:
        assert phone.client.post(path, json=sent).status_code == 403
        r = phone.post(path, json=sent, headers={"Sec-Fetch-Site": "cross-site"})
        assert body(r)["error"] == "cross-site request refused"
    r = phone.client.put(f"/api/present/{visit_id}/stills/1/bubble", json={"text": "Hi"})
    assert r.status_code == 403
    assert phone.client.delete(f"/api/present/{visit_id}/stills/1/bubble").status_code == 403


def every_route(visit_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/api/present/{visit_id}", None),
        ("POST", f"/api/present/{visit_id}/command", {"action": "play"}),
        (
            "POST",
            f"/api/present/{visit_id}/state",
            {"time_s": 0, "playing": False, "rate": 1, "moment": 1, "still": False},
        ),
        ("GET", f"/api/present/{visit_id}/bubbles", None),
        ("PUT", f"/api/present/{visit_id}/stills/1/bubble", {"text": "Hello"}),
        ("DELETE", f"/api/present/{visit_id}/stills/1/bubble", None),
    ]


def test_a_sealed_visit_is_409(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    urls = body(phone.get(f"/api/present/{visit_id}"))
    kit.seal(visit_id)
    for method, path, sent in every_route(visit_id):
        r = phone.send(method, path, json=sent)
        assert r.status_code == 409, path
        assert "sealed" in body(r)["error"]
    assert fetch(phone, urls["film_url"]).status_code == 409
    for url in ["/present/" + visit_id, f"/present/{visit_id}/remote"]:
        r = phone.get(url)
        assert r.status_code == 200
        assert 'data-access="sealed"' in r.get_data(as_text=True)
    assert body(phone.get("/api/present"))["visits"] == []


def test_without_consent_to_review_nothing_is_shown(phone: Phone, kit: FakeKit) -> None:
    visit_id = record(kit, frozenset({Purpose.SUPERVISION, Purpose.TRAINING}))
    for method, path, sent in every_route(visit_id):
        r = phone.send(method, path, json=sent)
        assert r.status_code == 403, path
        assert "consent for review" in body(r)["error"]
    r = phone.get(f"/present/{visit_id}")
    assert 'data-access="no-consent"' in r.get_data(as_text=True)
    assert body(phone.get("/api/present"))["visits"] == []


@pytest.mark.parametrize("bad", ["nosuchvisit", "..", "a b"])
def test_an_unknown_visit_is_404(phone: Phone, visit_id: str, bad: str) -> None:
    for method, path, sent in every_route(bad):
        assert phone.send(method, path, json=sent).status_code == 404, path
    assert phone.get(f"/present/{bad}").status_code == 404
    assert phone.get(f"/present/{bad}/remote").status_code == 404


# ---------- bubbles on stills ----------


def jpeg(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def test_a_bubble_is_drawn_on_a_copy_of_the_still(
    phone: Phone, kit: FakeKit, visit_id: str, tmp_path: Path
) -> None:
    before = body(phone.get(f"/api/present/{visit_id}"))["moments"][1]["still_url"]
    plain = fetch(phone, before).data
    after = kit.events.last_id
    words = "I like it when you wait for me"
    r = phone.put(
        f"/api/present/{visit_id}/stills/2/bubble", json={"text": words, "kind": "thought"}
    )
    assert r.status_code == 200, r.json
    got = body(r)
    assert got["moment"] == 2
    assert got["bubble"] == {"text": words, "kind": "thought", "side": "left"}
    assert got["still_url"].startswith(f"/media/{visit_id}/stills/02-tag00000001.bubble.jpg?v=")
    # The screens hear that the still changed, and show the copy from now on.
    assert present_events(kit, after) == [
        {"visit_id": visit_id, "action": "stills", "device": phone.id, "moment": 2}
    ]
    shown = body(phone.get(f"/api/present/{visit_id}"))["moments"]
    assert shown[1]["still_url"] == got["still_url"]
    assert shown[0]["still_url"].split("?")[0].endswith("01-tag00000000.jpg")
    copy = fetch(phone, got["still_url"])
    assert copy.status_code == 200 and copy.mimetype == "image/jpeg"
    original, drawn = jpeg(plain), jpeg(copy.data)
    assert drawn.size == original.size
    assert "exif" not in drawn.info  # no caption, no label: it goes to the family
    assert fetch(phone, before).data == plain  # the still itself is untouched
    assert body(phone.get(f"/api/present/{visit_id}/bubbles")) == {
        "bubbles": [{"moment": 2, "text": words, "kind": "thought", "side": "left"}]
    }
    # On the card: the text and the copy are encrypted, as everything of the visit.
    cut = tmp_path / "data" / "visits" / visit_id / "cut"
    record_bytes = (cut / "bubbles.json").read_bytes()
    assert words.encode() not in record_bytes and b"bubbles" not in record_bytes
    assert not (cut / "stills" / "02-tag00000001.bubble.jpg").read_bytes().startswith(b"\xff\xd8")


def test_a_bubble_is_changed_and_taken_off(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    url = f"/api/present/{visit_id}/stills/1/bubble"
    first = body(phone.put(url, json={"text": "Look!", "side": "right"}))["still_url"]
    second = body(phone.put(url, json={"text": "Look at me!", "kind": "speech"}))["still_url"]
    assert first != second  # a new version: no screen keeps the old picture
    assert body(phone.get(f"/api/present/{visit_id}/bubbles"))["bubbles"][0]["text"] == (
        "Look at me!"
    )
    r = phone.delete(url)
    assert r.status_code == 200
    assert body(r)["still_url"].split("?")[0].endswith("/stills/01-tag00000000.jpg")
    assert fetch(phone, second.split("?")[0]).status_code == 404  # the copy is gone
    assert body(phone.get(f"/api/present/{visit_id}/bubbles")) == {"bubbles": []}
    assert phone.delete(url).status_code == 404


@pytest.mark.parametrize(
    ("sent", "status", "error"),
    [
        ({}, 400, "'text' is required"),
        ({"text": "   "}, 400, "'text' cannot be empty"),
        ({"text": "x" * 101}, 400, "longer than 100"),
        ({"text": "Hi", "kind": "shout"}, 400, "'kind'"),
        ({"text": "Hi", "side": "middle"}, 400, "'side'"),
        ({"text": "Hi", "colour": "red"}, 400, "unknown field(s): colour"),
    ],
)
def test_bad_bubbles_are_400(
    phone: Phone, visit_id: str, sent: dict[str, Any], status: int, error: str
) -> None:
    r = phone.put(f"/api/present/{visit_id}/stills/1/bubble", json=sent)
    assert r.status_code == status
    assert error in body(r)["error"]


@pytest.mark.parametrize("number", ["0", "4", "x", "01x", "²"])
def test_a_bubble_on_no_such_moment_is_404(phone: Phone, visit_id: str, number: str) -> None:
    r = phone.put(f"/api/present/{visit_id}/stills/{number}/bubble", json={"text": "Hi"})
    assert r.status_code == 404


def test_bubbles_follow_their_moment_through_a_recut(
    phone: Phone, kit: FakeKit, visit_id: str, tmp_path: Path
) -> None:
    for n, words in [(1, "First"), (2, "Second")]:
        r = phone.put(f"/api/present/{visit_id}/stills/{n}/bubble", json={"text": words})
        assert r.status_code == 200
    # The guider deletes the first moment's tag: the film is made again, the second
    # moment's still is now still 01, and the kit's re-cut removed the old copies.
    assert phone.delete(f"/api/tags/{kit.visits.tags(visit_id)[0].id}").status_code == 200
    stills = tmp_path / "data" / "visits" / visit_id / "cut" / "stills"
    assert sorted(p.name for p in stills.iterdir()) == ["01-tag00000001.jpg", "02-tag00000002.jpg"]
    shown = body(phone.get(f"/api/present/{visit_id}"))["moments"]
    assert len(shown) == 2
    assert shown[0]["still_url"].split("?")[0].endswith("/stills/01-tag00000001.bubble.jpg")
    assert fetch(phone, shown[0]["still_url"]).status_code == 200  # drawn again
    # The deleted moment's words are gone from the card with it.
    assert body(phone.get(f"/api/present/{visit_id}/bubbles")) == {
        "bubbles": [{"moment": 1, "text": "Second", "kind": "speech", "side": "left"}]
    }
    assert "01-tag00000000.bubble.jpg" not in {p.name for p in stills.iterdir()}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b"null",
        b"\xff\xfe\x00{",
        b'{"text": "\\ud800", "action": "\\ud800"}',  # lone surrogates
        b"[" * 10_000 + b"]" * 10_000,  # deep enough to blow json's recursion, under 32 KiB
    ],
)
def test_garbage_bodies_are_400(phone: Phone, visit_id: str, raw: bytes) -> None:
    for method, path in [
        ("POST", f"/api/present/{visit_id}/command"),
        ("POST", f"/api/present/{visit_id}/state"),
        ("PUT", f"/api/present/{visit_id}/stills/1/bubble"),
    ]:
        r = phone.send(method, path, data=raw, content_type="application/json")
        assert r.status_code == 400, (path, r.json)
        assert "error" in body(r)
