"""The review's moments over HTTP, with real films: trim, reorder, drop, a tag after the fact,
the whole take; each edit makes the film again, read back from a decrypted copy.

The fake kit here records real takes (simulated frames: frame ``n`` carries its number,
a white frame and a beep every second) and cuts them with the real cutter, so what the
page's API does is measured from the film itself: which frame it starts on, which frame
is where, and the sound on its pictures within 5 ms.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from kit.clock import FakeClock
from kit.hardware.sim.analysis import FilmReport, analyse_film
from kit.model import Purpose
from kit.store import layout
from kit.testing.fakes import FakeKit
from kit.testing.kits import plain_copy
from tests.web.conftest import Phone

S = 1_000_000_000
FPS = 30
SYNC_S = 0.005


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[FakeKit]:
    fake = FakeKit(tmp_path / "data", FakeClock(), real_cut=True)
    yield fake
    fake.close()


@pytest.fixture
def visit(kit: FakeKit) -> tuple[str, str]:
    """A 20 s take tagged at 5 s and 14 s: the moments [0, 8] and [8, 17]; (visit, take)."""
    kit.open_visit("F-0042")
    take = kit.record(20.0, [(5.0, "Guiding"), (14.0, "Being attentive")])
    return take.visit_id, take.id


def body(r: Any) -> dict[str, Any]:
    assert r.json is not None, r.data
    data: dict[str, Any] = r.json
    return data


def review(phone: Phone, visit_id: str) -> dict[str, Any]:
    r = phone.get(f"/api/visits/{visit_id}")
    assert r.status_code == 200
    return body(r)


def film(kit: FakeKit, visit_id: str, tmp_path: Path) -> tuple[FilmReport, Path]:
    """The visit's film as it is now, decrypted, and what it holds."""
    copy = plain_copy(kit.store.files, layout.in_cut(visit_id, layout.FILM), tmp_path / "plain")
    return analyse_film(copy), copy


def shown_at(report: FilmReport, t: float) -> int | None:
    """The number of the frame the film shows at ``t`` seconds."""
    before = [f for f in report.frames if f.time_s <= t + 1e-6]
    assert before, t
    code = before[-1].code
    return code.number if code is not None else None


def moment_ids(got: dict[str, Any]) -> list[str]:
    return [m["moment_id"] for m in got["moments"]]


def test_the_review_lists_the_moments(phone: Phone, visit: tuple[str, str]) -> None:
    visit_id, take_id = visit
    got = review(phone, visit_id)
    first, second = got["moments"]
    assert set(first) == {
        "moment_id",
        "number",
        "take_id",
        "take",
        "take_start_s",
        "take_end_s",
        "default_start_s",
        "default_end_s",
        "trimmed",
        "dropped",
        "tag_ids",
        "labels",
        "film_start_s",
        "film_end_s",
    }
    assert (first["number"], first["take_id"], first["take"]) == (1, take_id, 1)
    assert (first["take_start_s"], first["take_end_s"]) == (0.0, 8.0)
    assert (second["take_start_s"], second["take_end_s"]) == (8.0, 17.0)
    assert (second["default_start_s"], second["default_end_s"]) == (8.0, 17.0)
    assert [m["labels"] for m in got["moments"]] == [["Guiding"], ["Being attentive"]]
    assert [m["tag_ids"] for m in got["moments"]] == [[t["id"]] for t in got["tags"]]
    assert moment_ids(got) == [t["id"] for t in got["tags"]]
    assert not first["trimmed"] and not first["dropped"]
    # Where the film shows them: back to back (they touch in the take: no lead-in).
    assert [(m["film_start_s"], m["film_end_s"]) for m in got["moments"]] == [
        (0.0, 8.0),
        (8.0, 17.0),
    ]
    assert [c["moment_id"] for c in got["cut"]["clips"]] == moment_ids(got)


def test_a_trimmed_moment_starts_on_its_frame_in_sync(
    phone: Phone, kit: FakeKit, visit: tuple[str, str], tmp_path: Path
) -> None:
    visit_id, _ = visit
    first, second = moment_ids(review(phone, visit_id))
    before = kit.events.last_id
    # Both start mid-GOP (keyframes each whole second): the first on frame 75 (2.5 s), which
    # is the film's first; the second on frame 285 (9.5 s), after its lead-in from 9 s.
    r = phone.patch(f"/api/visits/{visit_id}/moments/{first}", json={"start_s": 2.5, "end_s": 6.0})
    assert r.status_code == 200, r.json
    moments = body(r)["moments"]
    assert (moments[0]["take_start_s"], moments[0]["take_end_s"]) == (2.5, 6.0)
    assert (moments[0]["default_start_s"], moments[0]["default_end_s"]) == (0.0, 8.0)
    assert moments[0]["trimmed"]
    r = phone.patch(f"/api/visits/{visit_id}/moments/{second}", json={"start_s": 9.5})
    assert r.status_code == 200, r.json
    cuts = [e.data for e in kit.events.since(before, timeout_s=0) if e.kind == "cut"]
    assert cuts == [{"visit_id": visit_id, "error": ""}] * 2  # each edit made the film again
    got = review(phone, visit_id)
    assert got["cut"]["up_to_date"]
    one, two = got["moments"]
    assert (one["film_start_s"], one["film_end_s"]) == (0.0, 3.5)
    assert two["film_start_s"] == pytest.approx(4.0)  # after 0.5 s of its lead-in
    assert two["film_end_s"] == pytest.approx(11.5)
    report, copy = film(kit, visit_id, tmp_path)
    # The film begins on the trimmed frame (the frames from its keyframe are not shown)...
    assert report.frames[0].time_s == 0.0
    assert report.numbers[:3] == [75, 76, 77]
    # ... the first moment ends before the frame at 6.0 s, the second's lead-in follows,
    # and the second moment begins on its own trimmed frame.
    assert report.numbers == [*range(75, 180), *range(270, 510)]
    assert shown_at(report, two["film_start_s"]) == 285
    assert shown_at(report, two["film_start_s"] - 1 / FPS) == 284
    assert report.video_duration_s == pytest.approx(11.5, abs=1e-3)
    # In sync: every white frame's beep within 5 ms (3, 4, 5 s; then 9..16 s).
    assert len(report.offsets_s) == 3 + 8 and not report.unmatched_white_s
    assert report.max_abs_offset_s <= SYNC_S, report.offsets_s
    # ffprobe agrees: it presents the same frames, and the same length.
    if shutil.which("ffprobe"):
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v",
                "-show_entries",
                "stream=nb_read_frames:format=duration",
                "-of",
                "json",
                str(copy),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        probed = json.loads(probe.stdout)
        assert int(probed["streams"][0]["nb_read_frames"]) == len(report.frames)
        assert float(probed["format"]["duration"]) == pytest.approx(11.5, abs=0.01)
    # The page's film is that film.
    served = phone.get(got["cut"]["film_url"])
    assert served.status_code == 200 and served.data == copy.read_bytes()
    served.close()
    # Set back: the planner's moment, the film from the take's start again.
    r = phone.patch(
        f"/api/visits/{visit_id}/moments/{first}", json={"start_s": None, "end_s": None}
    )
    assert (body(r)["moments"][0]["take_start_s"], body(r)["moments"][0]["trimmed"]) == (
        0.0,
        False,
    )
    report, _ = film(kit, visit_id, tmp_path / "again")
    assert report.numbers[0] == 0


def test_reorder_and_drop(
    phone: Phone, kit: FakeKit, visit: tuple[str, str], tmp_path: Path
) -> None:
    visit_id, _ = visit
    first, second = moment_ids(review(phone, visit_id))
    r = phone.put(f"/api/visits/{visit_id}/moments/order", json={"order": [second, first]})
    assert r.status_code == 200, r.json
    assert [(m["moment_id"], m["number"]) for m in body(r)["moments"]] == [
        (first, 2),
        (second, 1),
    ]
    got = review(phone, visit_id)
    assert [c["moment_id"] for c in got["cut"]["clips"]] == [second, first]
    report, _ = film(kit, visit_id, tmp_path)
    # The second moment (8 s on, a keyframe) first; then the first, from the take's start.
    assert report.numbers == [*range(240, 510), *range(0, 240)]
    assert report.max_abs_offset_s <= SYNC_S, report.offsets_s
    # Dropped: out of the film, its tag kept; the order then names the film's moments.
    r = phone.patch(f"/api/visits/{visit_id}/moments/{second}", json={"dropped": True})
    assert r.status_code == 200
    got = review(phone, visit_id)
    assert [(m["number"], m["dropped"]) for m in got["moments"]] == [(1, False), (None, True)]
    assert got["moments"][1]["film_start_s"] is None
    assert [c["moment_id"] for c in got["cut"]["clips"]] == [first]
    assert len(got["tags"]) == 2
    r = phone.put(f"/api/visits/{visit_id}/moments/order", json={"order": [second, first]})
    assert r.status_code == 400
    assert "each moment of the film once" in body(r)["error"]
    assert (
        phone.patch(f"/api/visits/{visit_id}/moments/{second}", json={"dropped": False}).status_code
        == 200
    )
    got = review(phone, visit_id)
    assert [(m["moment_id"], m["number"]) for m in got["moments"]] == [(first, 2), (second, 1)]


def test_a_tag_added_from_the_whole_take_is_in_the_remade_film(
    phone: Phone, kit: FakeKit, visit: tuple[str, str], tmp_path: Path
) -> None:
    visit_id, take_id = visit
    sent = {"id": "after-0001", "take_id": take_id, "take_s": 18.5, "label": "Guiding"}
    r = phone.post(f"/api/visits/{visit_id}/tags", json={**sent, "note": "she waited"})
    assert r.status_code == 201, r.json
    tag = body(r)["tag"]
    assert (tag["id"], tag["take_id"], tag["take_s"], tag["label"], tag["note"]) == (
        "after-0001",
        take_id,
        18.5,
        "Guiding",
        "she waited",
    )
    assert tag["author"] == "Sam" and body(r)["new"] is True
    again = phone.post(f"/api/visits/{visit_id}/tags", json=sent)
    assert again.status_code == 200 and body(again) == {"tag": tag, "new": False}
    got = review(phone, visit_id)
    assert moment_ids(got)[-1] == "after-0001"
    assert [t["id"] for t in got["tags"]][-1] == "after-0001"
    clip = got["cut"]["clips"][-1]
    assert clip["tag_ids"] == ["after-0001"] and got["cut"]["up_to_date"]
    # The remade film shows the frame at 18.5 s (frame 555) where the cut says the tag is.
    report, _ = film(kit, visit_id, tmp_path)
    assert shown_at(report, clip["tags_film_s"][0]) == 555
    assert report.max_abs_offset_s <= SYNC_S, report.offsets_s
    # Its still is that frame, and it is in the still list for the page.
    assert "after-0001" in [s["tag_id"] for s in got["cut"]["stills"]]


def test_the_whole_take_is_served_with_ranges(
    phone: Phone, client: FlaskClient, kit: FakeKit, visit: tuple[str, str]
) -> None:
    visit_id, take_id = visit
    url = f"/media/{visit_id}/takes/{take_id}.mp4"
    with kit.store.files.read(layout.take_mp4(layout.take_dir(visit_id, take_id))) as f:
        plain = f.read()
    r = phone.get(url)
    assert (r.status_code, r.mimetype) == (200, "video/mp4")
    assert r.data == plain and r.headers["Content-Length"] == str(len(plain))
    assert r.headers["Content-Disposition"] == "inline"
    assert r.headers["Cache-Control"] == "no-store, private"
    r.close()
    r = phone.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.data == plain[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(plain)}"
    r.close()
    assert phone.get(f"/media/{visit_id}/takes/nosuchtake01.mp4").status_code == 404
    assert phone.get(f"/media/{visit_id}/takes/..%2fkit.mp4").status_code == 404
    assert client.get(url).status_code == 401  # not paired
    entries = [json.loads(x) for x in (kit.store.root / "audit.log").read_text().splitlines()]
    viewed = [e["details"] for e in entries if e["kind"] == "film.viewed"]
    assert viewed == [{"visit_id": visit_id, "take_id": take_id, "phone_id": phone.id}]


def test_the_whole_take_needs_consent_and_a_readable_visit(phone: Phone, kit: FakeKit) -> None:
    kit.open_visit("F-0043", frozenset({Purpose.SUPERVISION}))
    take = kit.record(3.0, [(1.0, "Guiding")])
    r = phone.get(f"/media/{take.visit_id}/takes/{take.id}.mp4")
    assert r.status_code == 403 and "consent" in body(r)["error"]
    assert phone.post(f"/api/visits/{take.visit_id}/end").status_code == 200
    r = phone.get(f"/media/{take.visit_id}/takes/{take.id}.mp4")
    assert r.status_code == 409 and "sealed" in body(r)["error"]


@pytest.mark.parametrize(
    ("sent", "status", "error"),
    [
        ({}, 400, "send 'start_s', 'end_s' and/or 'dropped'"),
        ({"start": 1}, 400, "unknown field(s): start"),
        ({"start_s": "1"}, 400, "'start_s' must be a number of seconds into the take, or null"),
        ({"start_s": True}, 400, "'start_s' must be a number of seconds into the take, or null"),
        ({"start_s": -1}, 400, "a moment cannot start or end outside its take"),
        ({"end_s": 20.5}, 400, "a moment cannot start or end outside its take"),
        ({"start_s": 5, "end_s": 4}, 400, "a moment must end after it starts"),
        ({"start_s": 5, "end_s": 5.2}, 400, "a moment must last at least 0.5 s"),
        ({"start_s": 9.0}, 400, "a moment must end after it starts"),  # its end is 8 s
        ({"dropped": "yes"}, 400, "'dropped' must be true or false"),
    ],
)
def test_bad_moment_edits_are_400(
    phone: Phone, visit: tuple[str, str], sent: dict[str, Any], status: int, error: str
) -> None:
    visit_id, _ = visit
    first = moment_ids(review(phone, visit_id))[0]
    r = phone.patch(f"/api/visits/{visit_id}/moments/{first}", json=sent)
    assert (r.status_code, body(r)["error"]) == (status, error)
    assert not review(phone, visit_id)["moments"][0]["trimmed"]


def test_bad_requests_for_moments_and_tags(
    phone: Phone, client: FlaskClient, visit: tuple[str, str]
) -> None:
    visit_id, take_id = visit
    first, second = moment_ids(review(phone, visit_id))
    base = f"/api/visits/{visit_id}"
    # Unknown visit, moment, take.
    assert (
        phone.patch(f"/api/visits/s0000404/moments/{first}", json={"dropped": True}).status_code
        == 404
    )
    r = phone.patch(f"{base}/moments/nosuchmoment", json={"dropped": True})
    assert r.status_code == 404 and "no moment" in body(r)["error"]
    assert phone.patch(f"{base}/moments/x", json={"dropped": True}).status_code == 400
    r = phone.post(
        f"{base}/tags",
        json={"id": "after-0001", "take_id": "nosuchtake1", "take_s": 1, "label": "G"},
    )
    assert r.status_code == 404
    # Orders that are not the film's moments, once each.
    for order in ([first], [first, first, second], [first, second, "nosuchmoment"], "x", [1, 2]):
        r = phone.put(f"{base}/moments/order", json={"order": order})
        assert r.status_code == 400, order
    assert phone.put(f"{base}/moments/order", json={"sequence": []}).status_code == 400
    # Tags after the fact: inside the take, a label, an id.
    for bad in (
        {"take_s": 20.5},
        {"take_s": -0.1},
        {"take_s": "3"},
        {"take_s": float("nan")},
        {"label": " "},
        {"label": "x" * 61},
        {"id": "x"},
        {"author": "me"},
    ):
        sent = {"id": "after-0002", "take_id": take_id, "take_s": 3.0, "label": "Guiding", **bad}
        r = phone.post(f"{base}/tags", json=sent)
        assert r.status_code == 400, (bad, r.json)
    assert len(review(phone, visit_id)["tags"]) == 2
    # CSRF and pairing, as every route.
    r = phone.client.patch(f"{base}/moments/{first}", json={"dropped": True})
    assert r.status_code == 403
    r = phone.client.put(f"{base}/moments/order", json={"order": [first, second]})
    assert r.status_code == 403
    r = phone.client.post(f"{base}/tags", json={"id": "after-0003"})
    assert r.status_code == 403
    assert client.get(base).status_code == 401


def test_a_sealed_visit_refuses_edits_with_409(phone: Phone, visit: tuple[str, str]) -> None:
    visit_id, take_id = visit
    first, second = moment_ids(review(phone, visit_id))
    assert phone.post(f"/api/visits/{visit_id}/end").status_code == 200
    got = review(phone, visit_id)
    assert got["visit"]["access"] == "sealed" and got["moments"] == []
    r = phone.patch(f"/api/visits/{visit_id}/moments/{first}", json={"dropped": True})
    assert r.status_code == 409 and "sealed" in body(r)["error"]
    r = phone.put(f"/api/visits/{visit_id}/moments/order", json={"order": [first, second]})
    assert r.status_code == 409 and "sealed" in body(r)["error"]
    sent = {"id": "after-0001", "take_id": take_id, "take_s": 3.0, "label": "Guiding"}
    r = phone.post(f"/api/visits/{visit_id}/tags", json=sent)
    assert r.status_code == 409 and "sealed" in body(r)["error"]
