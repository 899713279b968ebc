"""The JSON API: state, record/stop, tags (with delay stamping and retries), labels, phones."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from kit.clock import FakeClock
from kit.daemon.events import PhonesChanged
from kit.testing.fakes import VIG_LABELS, FakeKit
from tests.web.conftest import Phone, pair
from web.pairing import PairingStore

MS = 1_000_000


def tag_body(**over: Any) -> dict[str, Any]:
    return {"id": "tap0000000001", "label": "Guiding", "delay_ms": 20, **over}


def test_state_when_idle(phone: Phone, kit: FakeKit) -> None:
    kit.events.publish(PhonesChanged())
    body = phone.get("/api/state").json
    assert body is not None
    assert body["event_id"] == 1
    assert body["status"]["state"] == "idle"
    assert body["labels"] == VIG_LABELS
    assert body["tags"] == []
    assert body["take"] == {"id": None, "started_ns": None}
    assert body["phone"]["name"] == "Sam"


def test_start_tag_stop(phone: Phone, kit: FakeKit) -> None:
    r = phone.post("/api/start")
    assert r.status_code == 202
    assert (r.json or {})["status"]["state"] == "recording"
    assert kit.recording.calls == [("start", "phone")]
    assert phone.post("/api/tags", json=tag_body()).status_code == 201
    state = phone.get("/api/state").json or {}
    assert state["take"]["id"] == state["status"]["take_id"] is not None
    assert state["visit"]["case_ref"] == "Visit 1" and state["visit"]["takes"] == 1
    assert state["take"]["started_ns"] == state["status"]["started_ns"]
    assert [t["label"] for t in state["tags"]] == ["Guiding"]
    assert phone.post("/api/stop").status_code == 202
    state = phone.get("/api/state").json or {}
    assert state["status"]["state"] == "idle"
    assert [t["id"] for t in state["tags"]] == ["tap0000000001"]  # the last take's tags


def test_start_and_stop_are_requests_the_kit_takes_in_turn(phone: Phone, kit: FakeKit) -> None:
    # As the real kit: a stop when idle and a second start are queued (202) and ignored.
    r = phone.post("/api/stop")
    assert r.status_code == 202
    assert (r.json or {})["status"]["state"] == "idle"
    assert phone.post("/api/start").status_code == 202
    assert phone.post("/api/start").status_code == 202
    visit = kit.visits.open_visit()
    assert visit is not None and len(kit.visits.takes(visit.id)) == 1


def test_a_start_on_a_full_card_is_refused_with_the_reason(phone: Phone, kit: FakeKit) -> None:
    kit.recording.storage_full = True
    after = kit.events.last_id
    r = phone.post("/api/start")
    assert r.status_code == 202  # queued; the refusal arrives as it does from the real kit
    status = (r.json or {})["status"]
    assert status["state"] == "idle" and "not enough space" in status["error"]
    assert [e.kind for e in kit.events.since(after)][:1] == ["refused"]


def test_a_tag_is_stamped_at_receive_time_minus_the_delay(tmp_path: Path) -> None:
    clock = FakeClock()
    kit = FakeKit(tmp_path / "data", clock)
    pairing = PairingStore(tmp_path / "pairing.db")
    phone = pair(kit.app(pairing, {"TESTING": True}), pairing)
    phone.post("/api/start")
    clock.advance(5_000 * MS)
    r = phone.post("/api/tags", json=tag_body(delay_ms=1234.5678, note="  a note \n"))
    assert r.status_code == 201
    body = r.json or {}
    assert body["new"] is True
    tag = body["tag"]
    assert tag["at_ns"] == clock.now() - 1_234_567_800
    assert tag["created_ns"] == clock.now()
    assert tag["note"] == "a note"
    assert tag["author"] == "Sam"


def test_a_retried_tap_is_stored_once(phone: Phone, kit: FakeKit) -> None:
    phone.post("/api/start")
    first = phone.post("/api/tags", json=tag_body(delay_ms=10))
    again = phone.post("/api/tags", json=tag_body(delay_ms=900))
    assert (first.status_code, again.status_code) == (201, 200)
    assert (again.json or {})["new"] is False
    assert (again.json or {})["tag"] == (first.json or {})["tag"]
    assert len(kit.visits.tags(_visit(kit))) == 1


def test_tagging_while_idle_is_409(phone: Phone) -> None:
    r = phone.post("/api/tags", json=tag_body())
    assert r.status_code == 409
    assert r.json == {"error": "tags can only be added while recording"}


@pytest.mark.parametrize(
    "body",
    [
        tag_body(delay_ms=-1),
        tag_body(delay_ms=600_001),
        tag_body(delay_ms=1e300),
        tag_body(delay_ms="5"),
        tag_body(delay_ms=True),
        tag_body(delay_ms=None),
        {"id": "tap0000000001", "label": "Guiding"},
        tag_body(id="short"),
        tag_body(id="has space in it"),
        tag_body(id="x" * 65),
        tag_body(id=12345678),
        tag_body(label=""),
        tag_body(label="   "),
        tag_body(label="x" * 81),
        tag_body(label=["Guiding"]),
        tag_body(label="bell\x07"),
        tag_body(note="x" * 501),
        tag_body(note=7),
        tag_body(when=3),
    ],
)
def test_bad_tags_are_400(phone: Phone, body: dict[str, Any]) -> None:
    phone.post("/api/start")
    r = phone.post("/api/tags", json=body)
    assert r.status_code == 400
    assert isinstance((r.json or {}).get("error"), str)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_delays_are_400(phone: Phone, value: str) -> None:
    phone.post("/api/start")
    raw = f'{{"id": "tap0000000001", "label": "Guiding", "delay_ms": {value}}}'
    r = phone.post("/api/tags", data=raw, content_type="application/json")
    assert r.status_code == 400


def test_edit_delete_and_restore_a_tag(phone: Phone, kit: FakeKit) -> None:
    phone.post("/api/start")
    phone.post("/api/tags", json=tag_body())
    r = phone.patch("/api/tags/tap0000000001", json={"note": "looked up", "label": "Guiding"})
    assert r.status_code == 200
    assert (r.json or {})["tag"]["note"] == "looked up"
    assert phone.delete("/api/tags/tap0000000001").json == {"deleted": "tap0000000001"}
    assert kit.visits.tags(_visit(kit)) == []
    assert phone.delete("/api/tags/tap0000000001").status_code == 404
    assert phone.patch("/api/tags/tap0000000001", json={"note": "x"}).status_code == 404
    assert phone.post("/api/tags/tap0000000001/restore").status_code == 200
    assert [t.note for t in kit.visits.tags(_visit(kit))] == ["looked up"]
    assert phone.post("/api/tags/tap0000000001/restore").status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/tags/tap0000000001", {}),
        ("/api/tags/tap0000000001", {"at_ns": 5}),
        ("/api/tags/tap0000000001", {"label": ""}),
        ("/api/tags/bad!id!here", {"note": "x"}),
    ],
)
def test_bad_tag_edits_are_400(phone: Phone, path: str, body: dict[str, Any]) -> None:
    phone.post("/api/start")
    phone.post("/api/tags", json=tag_body())
    assert phone.patch(path, json=body).status_code == 400


def test_unknown_tags_are_404(phone: Phone) -> None:
    assert phone.delete("/api/tags/nosuchtag00").status_code == 404
    assert phone.post("/api/tags/nosuchtag00/restore").status_code == 404
    assert phone.delete("/api/tags/../../etc").status_code in (400, 404)


def test_labels(phone: Phone, kit: FakeKit) -> None:
    assert phone.get("/api/labels").json == {"labels": VIG_LABELS}
    r = phone.put("/api/labels", json={"labels": ["  Being   attentive ", "Guiding ★"]})
    assert r.status_code == 200
    assert r.json == {"labels": ["Being attentive", "Guiding ★"]}
    assert kit.visits.labels() == ["Being attentive", "Guiding ★"]
    event = kit.events.since(0)[-1]
    assert (event.kind, event.data) == ("labels", {"labels": ["Being attentive", "Guiding ★"]})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"labels": []},
        {"labels": "Guiding"},
        {"labels": [f"L{i}" for i in range(13)]},
        {"labels": ["Guiding", "guiding"]},
        {"labels": ["Guiding", ""]},
        {"labels": ["Guiding", None]},
        {"labels": ["x" * 41]},
        {"labels": ["ok"], "more": 1},
    ],
)
def test_bad_labels_are_400(phone: Phone, kit: FakeKit, body: Any) -> None:
    r = phone.put("/api/labels", json=body)
    assert r.status_code == 400
    assert kit.visits.labels() == VIG_LABELS


def test_phones_list_rename_revoke_restore(app: Flask, pairing: PairingStore, kit: FakeKit) -> None:
    a, b = pair(app, pairing, "A"), pair(app, pairing, "B")
    phones = (a.get("/api/phones").json or {})["phones"]
    assert [(p["name"], p["me"], p["revoked"]) for p in phones] == [
        ("A", True, False),
        ("B", False, False),
    ]
    assert all("csrf" not in p and "token" not in p for p in phones)
    r = a.patch(f"/api/phones/{b.id}", json={"name": "Co-worker"})
    assert (r.json or {})["phone"]["name"] == "Co-worker"
    assert a.patch(f"/api/phones/{b.id}", json={"name": " "}).status_code == 400
    assert a.delete(f"/api/phones/{b.id}").status_code == 200
    assert b.get("/api/state").status_code == 401
    assert a.post(f"/api/phones/{b.id}/restore").status_code == 200
    assert b.get("/api/state").status_code == 200
    assert a.delete("/api/phones/ffffffff").status_code == 404
    assert "phones" in [e.kind for e in kit.events.since(0)]


def test_unpairing_this_phone_clears_its_cookie(phone: Phone) -> None:
    r = phone.delete(f"/api/phones/{phone.id}")
    assert r.status_code == 200
    assert "kit_phone=;" in r.headers["Set-Cookie"]
    assert phone.get("/api/state").status_code == 401


def test_pairing_info_for_another_phone(phone: Phone, pairing: PairingStore) -> None:
    body = phone.get("/api/pairing").json or {}
    assert body == {
        "code": pairing.code,
        "link": f"http://localhost/pair?k={pairing.key}",
        "locked_for_s": 0,
    }


def test_preview(phone: Phone, kit: FakeKit) -> None:
    r = phone.get("/api/preview.jpg")
    assert r.status_code == 200
    assert r.mimetype == "image/jpeg"
    assert r.data.startswith(b"\xff\xd8")
    seq = r.headers["X-Frame-Seq"]
    assert r.headers["X-Level-Dbfs"] == "-24.0"
    assert r.headers["X-State"] == "idle"
    assert r.headers["Cache-Control"] == "no-store"
    again = phone.get(f"/api/preview.jpg?after={seq}")
    assert again.status_code in (200, 204)  # 204 unless the fake moved to a new frame
    if again.status_code == 204:
        assert again.data == b""
    assert phone.get("/api/preview.jpg?after=-1").status_code == 400
    assert phone.get("/api/preview.jpg?after=x").status_code == 400
    kit.recording.preview = []
    r = phone.get("/api/preview.jpg")
    assert r.status_code == 204
    assert r.headers["X-Level-Dbfs"] == "-24.0"


def test_pages_carry_the_csrf_token_and_labels(phone: Phone) -> None:
    home = phone.get("/")
    assert home.status_code == 200
    assert f'<meta name="csrf-token" content="{phone.csrf}">'.encode() in home.data
    assert 'data-label="Better than usual ★"'.encode() in home.data
    assert b'<script src="/static/home.js?v=' in home.data
    settings = phone.get("/settings")
    assert settings.status_code == 200
    assert b'id="label-list"' in settings.data


def test_values_the_kit_refuses_are_400(phone: Phone, kit: FakeKit) -> None:
    # Well-formed requests whose values the library's rules refuse.
    phone.post("/api/start")
    phone.post("/api/tags", json=tag_body())
    r = phone.patch("/api/tags/tap0000000001", json={"at_ns": 1})
    assert r.status_code == 400
    assert r.json == {"error": "a tag cannot be moved outside its take"}
    r = phone.put("/api/labels", json={"labels": ["Guiding", "guiding"]})
    assert r.status_code == 400
    assert r.json == {"error": "labels must differ from each other"}


def test_settings_offers_the_configured_default_labels(kit: FakeKit, pairing: PairingStore) -> None:
    app = kit.app(pairing, {"KIT_DEFAULT_LABELS": ['Say "hi"', "B ★"]})
    page = pair(app, pairing).get("/settings").get_data(as_text=True)
    found = re.search(r'data-default-labels="([^"]*)"', page)
    assert found is not None
    assert json.loads(html.unescape(found.group(1))) == ['Say "hi"', "B ★"]


def _visit(kit: FakeKit) -> str:
    """The open visit's id."""
    visit = kit.visits.open_visit()
    assert visit is not None
    return visit.id
