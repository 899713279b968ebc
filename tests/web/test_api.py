"""The JSON API: state, record/stop, tags (with delay stamping and retries), labels, phones."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from kit.bench.load import server_timing
from kit.clock import FakeClock
from kit.daemon.api import State, Status
from kit.daemon.events import PhonesChanged
from kit.testing.fakes import VIG_LABELS, FakeKit
from kit.testing.privacy import consent_json, erase_by
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
    assert body["status"]["finalising_take_ids"] == []  # no film being made
    assert body["labels"] == VIG_LABELS
    assert body["tags"] == []
    assert body["take"] == {"id": None, "started_ns": None}
    assert body["phone"]["name"] == "Sam"


def test_start_tag_stop(phone: Phone, kit: FakeKit) -> None:
    kit.open_visit("C-1041")
    r = phone.post("/api/start")
    assert r.status_code == 202
    assert (r.json or {})["status"]["state"] == "recording"
    assert kit.recording.calls == [("start", "phone")]
    assert phone.post("/api/tags", json=tag_body()).status_code == 201
    state = phone.get("/api/state").json or {}
    assert state["take"]["id"] == state["status"]["take_id"] is not None
    assert state["visit"]["case_ref"] == "C-1041" and state["visit"]["takes"] == 1
    assert state["visit"]["consent"] == consent_json()
    assert state["visit"]["access"] == "readable"
    assert state["take"]["started_ns"] == state["status"]["started_ns"]
    assert [t["label"] for t in state["tags"]] == ["Guiding"]
    assert phone.post("/api/stop").status_code == 202
    state = phone.get("/api/state").json or {}
    assert state["status"]["state"] == "idle"
    assert [t["id"] for t in state["tags"]] == ["tap0000000001"]  # the last take's tags


def test_a_tags_answer_says_how_long_the_kit_took(phone: Phone, kit: FakeKit) -> None:
    """``Server-Timing``: the app's part and the commit's, so a slow ack can be told apart
    from a wait outside the kit (the load bench reads it)."""
    kit.open_visit()
    phone.post("/api/start")
    r = phone.post("/api/tags", json=tag_body())
    assert r.status_code == 201
    app = server_timing(r.headers["Server-Timing"], "app")
    commit = server_timing(r.headers["Server-Timing"], "commit")
    assert 0 <= commit <= app < 10_000
    retried = phone.post("/api/tags", json=tag_body())
    assert retried.status_code == 200 and "Server-Timing" in retried.headers
    assert "Server-Timing" not in phone.get("/api/state").headers  # only where it helps


def test_the_status_says_what_is_recording_and_which_films_are_being_made() -> None:
    """Recording a take while the last take's film is made: ``state`` says the first,
    ``finalising_take_ids`` the second (kit/daemon/api.py)."""
    status = Status(
        state=State.RECORDING,
        visit_id="v1",
        take_id="take2",
        started_ns=5 * 10**9,
        now_ns=7 * 10**9,
        minutes_left=90.0,
        low_storage=False,
        level_dbfs=-20.0,
        finalising=("take1",),
    ).as_json()
    assert (status["state"], status["take_id"], status["elapsed_s"]) == ("recording", "take2", 2.0)
    assert status["finalising_take_ids"] == ["take1"]
    assert json.loads(json.dumps(status)) == status


def test_start_and_stop_are_requests_the_kit_takes_in_turn(phone: Phone, kit: FakeKit) -> None:
    # As the real kit: a stop when idle and a second start are queued (202) and ignored.
    kit.open_visit()
    r = phone.post("/api/stop")
    assert r.status_code == 202
    assert (r.json or {})["status"]["state"] == "idle"
    assert phone.post("/api/start").status_code == 202
    assert phone.post("/api/start").status_code == 202
    visit = kit.visits.open_visit()
    assert visit is not None and len(kit.visits.takes(visit.id)) == 1


def test_a_start_on_a_full_card_is_refused_with_the_reason(phone: Phone, kit: FakeKit) -> None:
    kit.open_visit()
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
    kit.open_visit()
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
    kit.open_visit()
    phone.post("/api/start")
    first = phone.post("/api/tags", json=tag_body(delay_ms=10))
    again = phone.post("/api/tags", json=tag_body(delay_ms=900))
    assert (first.status_code, again.status_code) == (201, 200)
    assert (again.json or {})["new"] is False
    assert (again.json or {})["tag"] == (first.json or {})["tag"]
    assert len(kit.visits.tags(_visit_id(kit))) == 1


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
def test_bad_tags_are_400(phone: Phone, kit: FakeKit, body: dict[str, Any]) -> None:
    kit.open_visit()
    phone.post("/api/start")
    r = phone.post("/api/tags", json=body)
    assert r.status_code == 400
    assert isinstance((r.json or {}).get("error"), str)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_delays_are_400(phone: Phone, kit: FakeKit, value: str) -> None:
    kit.open_visit()
    phone.post("/api/start")
    raw = f'{{"id": "tap0000000001", "label": "Guiding", "delay_ms": {value}}}'
    r = phone.post("/api/tags", data=raw, content_type="application/json")
    assert r.status_code == 400


def test_edit_delete_and_restore_a_tag(phone: Phone, kit: FakeKit) -> None:
    kit.open_visit()
    phone.post("/api/start")
    phone.post("/api/tags", json=tag_body())
    r = phone.patch("/api/tags/tap0000000001", json={"note": "looked up", "label": "Guiding"})
    assert r.status_code == 200
    assert (r.json or {})["tag"]["note"] == "looked up"
    assert phone.delete("/api/tags/tap0000000001").json == {"deleted": "tap0000000001"}
    assert kit.visits.tags(_visit_id(kit)) == []
    assert phone.delete("/api/tags/tap0000000001").status_code == 404
    assert phone.patch("/api/tags/tap0000000001", json={"note": "x"}).status_code == 404
    assert phone.post("/api/tags/tap0000000001/restore").status_code == 200
    assert [t.note for t in kit.visits.tags(_visit_id(kit))] == ["looked up"]
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
def test_bad_tag_edits_are_400(phone: Phone, kit: FakeKit, path: str, body: dict[str, Any]) -> None:
    kit.open_visit()
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
    kit.open_visit()
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


def _visit_id(kit: FakeKit) -> str:
    """The open visit's id."""
    visit = kit.visits.open_visit()
    assert visit is not None
    return visit.id


# ---------- privacy: recording needs a visit with the family's consent ----------


def test_record_with_no_visit_is_refused_and_opens_none(phone: Phone, kit: FakeKit) -> None:
    after = kit.events.last_id
    r = phone.post("/api/start")
    assert r.status_code == 202  # queued, as the real kit; the refusal follows
    status = (r.json or {})["status"]
    reason = "no visit is open: start one on the phone, with the family's consent"
    assert (status["state"], status["error"]) == ("idle", reason)
    assert [(e.kind, e.data) for e in kit.events.since(after)][:1] == [
        ("refused", {"reason": reason})
    ]
    assert kit.visits.visits() == []
    assert (phone.get("/api/state").json or {})["visit"] is None


def test_the_consent_form(phone: Phone, kit: FakeKit) -> None:
    body = phone.get("/api/consent").json or {}
    assert body["roles"] == ["parent", "carer", "guardian", "young person", "other"]
    assert body["purposes"] == ["review", "supervision", "training"]
    assert body["ready"] is True
    assert body["max_days"] == 3660
    # The phone told the kit the time when it paired: it knows today, and suggests a date.
    assert body["today"] == erase_by(0)
    assert body["erase_by"] == erase_by(60)


def test_the_consent_form_before_the_kit_knows_the_date(tmp_path: Path) -> None:
    kit = FakeKit(tmp_path / "data")
    pairing = PairingStore(tmp_path / "pairing.db")
    phone = pair(kit.app(pairing, {"TESTING": True}, on_phone_time=lambda _: None), pairing)
    body = phone.get("/api/consent").json or {}
    assert (body["today"], body["erase_by"]) == ("", "")  # the page leaves the date to the guider
    # Any well-formed date is taken then (nothing to compare it with).
    r = phone.post("/api/visits", json={"case_ref": "F-0042", "consent": consent_json()})
    assert r.status_code == 201, r.json
    pairing.close()
    kit.close()


def test_start_a_visit_with_consent_then_record(phone: Phone, kit: FakeKit) -> None:
    sent = {
        "given_by": " Young Person ",
        "purposes": ["review", "training"],
        "erase_by": erase_by(),
    }
    r = phone.post("/api/visits", json={"case_ref": "F-0042", "consent": sent})
    assert r.status_code == 201, r.json
    visit = (r.json or {})["visit"]
    assert visit["case_ref"] == "F-0042" and visit["access"] == "readable"
    assert visit["consent"] == {
        "given_by": "young person",
        "purposes": ["review", "training"],
        "erase_by": erase_by(),
    }
    assert phone.post("/api/start").status_code == 202
    state = phone.get("/api/state").json or {}
    assert state["status"]["state"] == "recording" and state["status"]["error"] == ""
    assert state["visit"]["consent"]["given_by"] == "young person"


def _visit(case_ref: Any = "F-0042", **consent: Any) -> dict[str, Any]:
    return {"case_ref": case_ref, "consent": {**consent_json(), **consent}}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"case_ref": "F-0042"}, "a visit needs the family's consent"),
        ({"case_ref": "F-0042", "consent": None}, "a visit needs the family's consent"),
        ({"case_ref": "F-0042", "consent": "yes"}, "a visit needs the family's consent"),
        ({"case_ref": "F-0042", "consent": {}}, "'purposes' must be a list of purposes"),
        ({"consent": consent_json()}, "'case_ref' is required"),
        (_visit(""), "'case_ref' cannot be empty"),
        (_visit("x" * 61), "'case_ref' is longer than 60 characters"),
        (_visit(given_by="aunt Sally"), "who gave consent: one of parent, carer, guardian"),
        (_visit(given_by=""), "'given_by' cannot be empty"),
        (_visit(given_by=7), "'given_by' must be a string"),
        (_visit(purposes=[]), "the family must agree to at least one purpose (e.g. review)"),
        (_visit(purposes=["review", "marketing"]), "unknown purpose 'marketing'"),
        (_visit(purposes="review"), "'purposes' must be a list of purposes"),
        (_visit(purposes=[1]), "'purposes' must be a list of purposes"),
        (_visit(erase_by="29/01/2027"), "the erase-by date must be a date like 2027-01-31"),
        (_visit(erase_by="2027-02-30"), "the erase-by date must be a date like 2027-01-31"),
        (lambda: _visit(erase_by=erase_by(0)), "the erase-by date must be after today"),
        (lambda: _visit(erase_by=erase_by(-3)), "the erase-by date must be after today"),
        (
            lambda: _visit(erase_by=erase_by(3661)),
            "the erase-by date can be at most 3660 days from today",
        ),
        (_visit(erase_by=""), "'erase_by' cannot be empty"),
        (_visit(name="Sally"), "unknown field(s): name"),
        ({**_visit(), "extra": 1}, "unknown field(s): extra"),
    ],
)
def test_a_visit_without_good_consent_is_400(
    phone: Phone, kit: FakeKit, body: dict[str, Any] | Callable[[], dict[str, Any]], error: str
) -> None:
    # Dates relative to today are made when the test runs, not when it is collected:
    # a run that crosses midnight would otherwise post yesterday's "3661 days from today".
    r = phone.post("/api/visits", json=body() if callable(body) else body)
    assert r.status_code == 400, r.json
    assert error in (r.json or {})["error"]
    assert kit.visits.visits() == []


def test_a_kit_without_an_organisation_key_starts_no_visit(phone: Phone, kit: FakeKit) -> None:
    kit.visits.recipients = ()  # as a kit nobody has given an organisation key yet
    assert (phone.get("/api/consent").json or {})["ready"] is False
    r = phone.post("/api/visits", json=_visit())
    assert r.status_code == 403
    assert "no organisation key" in (r.json or {})["error"]
    assert kit.visits.visits() == []


def test_a_second_open_visit_is_409(phone: Phone, kit: FakeKit) -> None:
    assert phone.post("/api/visits", json=_visit("F-1")).status_code == 201
    r = phone.post("/api/visits", json=_visit("F-2"))
    assert r.status_code == 409
    assert [v.case_ref for v in kit.visits.visits()] == ["F-1"]


def test_discard_while_recording(phone: Phone, kit: FakeKit) -> None:
    kit.open_visit()
    phone.post("/api/start")
    phone.post("/api/tags", json=tag_body())
    r = phone.post("/api/discard", json={"whole": True})
    assert r.status_code == 202
    assert (r.json or {})["status"]["state"] == "idle"
    assert kit.recording.calls == [("start", "phone"), ("discard", "phone"), ("stop", "phone")]
    take = kit.visits.takes(_visit_id(kit))[0]
    assert take.state.value == "discarded"
    assert kit.visits.tags(_visit_id(kit)) == []  # its tags went with it


def test_discard_the_take_that_ended_last(phone: Phone, kit: FakeKit) -> None:
    kit.open_visit()
    phone.post("/api/start")
    phone.post("/api/stop")
    assert phone.post("/api/discard", json={}).status_code == 202  # the last minute, by default
    assert kit.recording.calls[-1] == ("discard", "phone")
    assert [t.state.value for t in kit.visits.takes(_visit_id(kit))] == ["discarded"]


def test_discard_with_no_take_is_refused_as_an_event(phone: Phone, kit: FakeKit) -> None:
    after = kit.events.last_id
    assert phone.post("/api/discard", json={"whole": False}).status_code == 202
    assert [(e.kind, e.data) for e in kit.events.since(after)] == [
        ("refused", {"reason": "there is no take to discard"})
    ]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'{"whole": "yes"}', "'whole' must be true or false"),
        (b'{"whole": 1}', "'whole' must be true or false"),
        (b'{"whole": null}', "'whole' must be true or false"),
        (b'{"all": true}', "unknown field(s): all"),
        (b"[true]", "the body must be a JSON object"),
        (b"", "the body must be a JSON object"),
        (b"{", "the body is not valid JSON"),
    ],
)
def test_bad_discards_are_400(phone: Phone, kit: FakeKit, raw: bytes, error: str) -> None:
    kit.open_visit()
    phone.post("/api/start")
    r = phone.post("/api/discard", data=raw, content_type="application/json")
    assert r.status_code == 400
    assert (r.json or {})["error"] == error
    assert ("discard", "phone") not in kit.recording.calls
    assert (phone.get("/api/state").json or {})["status"]["state"] == "recording"


def test_the_state_says_when_the_kit_lost_a_visits_key(phone: Phone, kit: FakeKit) -> None:
    visit = kit.open_visit("F-0042")
    assert (phone.get("/api/state").json or {})["key_lost"] is None
    kit.keyring.forget(visit.id)  # a power cut: the key was only in RAM
    kit.visits.seal_lost_keys()  # what the kit does when it starts again
    state = phone.get("/api/state").json or {}
    assert state["visit"] is None
    lost = state["key_lost"]
    assert (lost["id"], lost["access"], lost["state"], lost["case_ref"]) == (
        visit.id,
        "key_lost",
        "ended",
        "",
    )
    kit.open_visit("F-0043")  # a new visit: old news
    assert (phone.get("/api/state").json or {})["key_lost"] is None
