"""The hand-off over HTTP: what the sheet shows, a copy to a (simulated) USB stick, and the
bundle downloaded by a paired client, whole or resumed in pieces (Range, If-Range), each
piece the same bytes, the whole verifying; refused to anyone not paired."""

from __future__ import annotations

import http.client
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from kit.audit.chain import AuditKind
from kit.handoff.bundle import MANIFEST
from kit.handoff.usb import STICK_INFO
from kit.handoff.verify import verify_bundle
from kit.store import layout
from kit.testing.fakes import FakeKit, jpeg_frames, mp4_film
from kit.testing.handoff import record_sealed_visit
from kit.testing.launch import kit_run_simulated
from kit.testing.phone import HttpPhone
from tests.web.conftest import Phone, pair
from web.pairing import PairingStore


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[FakeKit]:
    """A fake kit with one sealed visit (a take with a real little film cut from it)."""
    fake = FakeKit(tmp_path / "data", film=mp4_film, preview=jpeg_frames(2))
    visit = fake.open_visit("F-0042")
    fake.record(3.0, [(1.0, "Guiding")])
    assert fake.seal(visit.id).access.value == "sealed"
    yield fake
    fake.close()


@pytest.fixture
def visit_id(kit: FakeKit) -> str:
    [visit] = kit.handoff.ready()
    return visit.id


@pytest.fixture
def stick(tmp_path: Path) -> Path:
    folder = tmp_path / "usb-sticks" / "VIGSTICK"  # FakeKit's sticks: <data>/../usb-sticks/*
    folder.mkdir(parents=True)
    (folder / STICK_INFO).write_text(json.dumps({"label": "VIG stick", "fstype": "vfat"}))
    return folder


def _url(visit_id: str) -> str:
    return f"/api/visits/{visit_id}/bundle.tar"


def _downloads(kit: FakeKit) -> list[dict[str, Any]]:
    lines = (kit.store.root / layout.AUDIT).read_text("utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    return [
        e["details"]
        for e in entries
        if e["kind"] == AuditKind.EXPORTED.value and e["details"]["to"] == "download"
    ]


def test_the_sheet_lists_ready_visits_sticks_and_the_kits_fingerprint(
    phone: Phone, kit: FakeKit, visit_id: str, stick: Path
) -> None:
    kit.open_visit("F-0043")  # open: not ready to leave
    r = phone.get("/api/handoff")
    assert r.status_code == 200, r.json
    body = r.json
    assert body is not None
    assert isinstance(body["event_id"], int)
    [ready] = body["ready"]
    assert (ready["id"], ready["number"], ready["access"]) == (visit_id, 1, "sealed")
    assert ready["download_url"] == _url(visit_id)
    assert ready["case_ref"] == ""  # sealed: the kit cannot read it
    assert ready["takes"] == 1 and ready["bytes"] > 10_000
    assert body["sticks"] == [
        {
            "id": "VIGSTICK",
            "label": "VIG stick",
            "fstype": "vfat",
            "kind": "FAT32",
            "size": body["sticks"][0]["size"],
            "free": body["sticks"][0]["free"],
            "usable": True,
            "problem": "",
            "max_file_bytes": 4 * 2**30 - 1,
        }
    ]
    assert body["job"] is None and body["sticks_error"] == ""
    assert body["kit"] == {
        "fingerprint": kit.handoff.signer.fingerprint,
        "public_key": kit.handoff.signer.public,
    }


def test_a_copy_to_a_stick(phone: Phone, kit: FakeKit, visit_id: str, stick: Path) -> None:
    r = phone.post(f"/api/visits/{visit_id}/export", json={"to": "usb", "stick": "VIGSTICK"})
    assert r.status_code == 202, r.json
    assert r.json is not None
    job = r.json["job"]
    assert (job["phase"], job["stick"], job["running"]) == ("hashing", "VIGSTICK", True)
    finished = kit.exports.wait(30)
    assert finished is not None and finished.phase == "done", finished
    state = phone.get("/api/handoff").json
    assert state is not None
    assert state["job"]["phase"] == "done" and state["job"]["safe_to_remove"] is True
    assert state["sticks"] == []  # ejected
    assert verify_bundle(stick / finished.bundle).ok
    # The progress went out as events, the kind the page listens for.
    events = [e for e in kit.events.since(0) if e.kind == "export"]
    assert events[0].data["phase"] == "hashing" and events[-1].data["phase"] == "done"
    page = phone.get("/visits").get_data(as_text=True)
    assert "export" in page.split('name="kit-event-kinds" content="')[1].split('"')[0].split()


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"to": "download"}, 400, "to download the visit, GET /api/visits/"),
        ({"to": "cloud", "stick": "VIGSTICK"}, 400, "'to' must be \"usb\""),
        ({"to": "usb"}, 400, "'stick' is required"),
        ({"to": "usb", "stick": "VIGSTICK", "eject": False}, 400, "unknown field(s): eject"),
        ({"to": "usb", "stick": "NOSTICK"}, 404, "that USB stick is not plugged in"),
    ],
)
def test_a_copy_that_cannot_start(
    phone: Phone,
    visit_id: str,
    stick: Path,
    body: dict[str, Any],
    status: int,
    error: str,
) -> None:
    r = phone.post(f"/api/visits/{visit_id}/export", json=body)
    assert r.status_code == status, r.json
    assert r.json is not None and r.json["error"].startswith(error), r.json


def test_an_open_or_unknown_visit_does_not_leave(phone: Phone, kit: FakeKit, stick: Path) -> None:
    open_visit = kit.open_visit("F-0043")
    r = phone.post(f"/api/visits/{open_visit.id}/export", json={"to": "usb", "stick": "VIGSTICK"})
    assert r.status_code == 409 and r.json is not None
    assert "still open" in r.json["error"]
    assert phone.get(_url(open_visit.id)).status_code == 409
    assert phone.get(_url("0123456789ab")).status_code == 404
    assert phone.get(_url("..%2F..")).status_code == 404


def test_only_a_paired_client_downloads(
    app: Flask, client: Any, pairing: PairingStore, visit_id: str
) -> None:
    r = client.get(_url(visit_id))
    assert r.status_code == 401 and r.json == {"error": "this phone is not paired with the kit"}
    assert client.get("/api/handoff").status_code == 401
    laptop = pair(app, pairing, name="Office laptop")
    assert laptop.get(_url(visit_id)).status_code == 200
    refused = laptop.client.post(
        f"/api/visits/{visit_id}/export", json={"to": "usb", "stick": "VIGSTICK"}
    )
    assert refused.status_code == 403  # no CSRF token
    pairing.revoke(laptop.id)
    assert laptop.get(_url(visit_id)).status_code == 401


def test_the_whole_download_verifies(
    phone: Phone, kit: FakeKit, visit_id: str, tmp_path: Path
) -> None:
    r = phone.get(_url(visit_id))
    assert r.status_code == 200
    bundle = kit.handoff.bundle(visit_id)
    manifest = next(e for e in bundle.entries if e.path == MANIFEST)
    name = f"{bundle.name}.tar"
    assert r.headers["Content-Type"] == "application/x-tar"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["ETag"] == f'"{manifest.sha256}"'
    assert int(r.headers["Content-Length"]) == len(r.data) > bundle.size
    assert "no-store" in r.headers["Cache-Control"]
    saved = tmp_path / name
    saved.write_bytes(r.data)
    report = verify_bundle(saved)
    assert report.ok, report.problems
    assert report.fingerprint == kit.handoff.signer.fingerprint
    [entry] = _downloads(kit)
    assert entry == {
        "visit_id": visit_id,
        "to": "download",
        "bytes": len(r.data),
        "from_byte": 0,
        "phone_id": phone.id,
    }


def test_ranges_are_the_same_bytes_and_a_bad_range_is_416(
    phone: Phone, kit: FakeKit, visit_id: str, tmp_path: Path
) -> None:
    whole = phone.get(_url(visit_id)).data
    size = len(whole)
    cuts = sorted({0, 1, 511, 512, 513, 4097, size // 3, size // 2, size - 1, size})
    pieces = []
    for start, stop in itertools.pairwise(cuts):
        r = phone.get(_url(visit_id), headers={"Range": f"bytes={start}-{stop - 1}"})
        assert r.status_code == 206, (start, stop)
        assert r.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
        assert int(r.headers["Content-Length"]) == stop - start == len(r.data)
        pieces.append(r.data)
    assert b"".join(pieces) == whole
    saved = tmp_path / "pieces.tar"
    saved.write_bytes(b"".join(pieces))
    assert verify_bundle(saved).ok
    tail = phone.get(_url(visit_id), headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.data == whole[-100:]
    open_ended = phone.get(_url(visit_id), headers={"Range": f"bytes={size - 10}-"})
    assert open_ended.status_code == 206 and open_ended.data == whole[-10:]
    for bad in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=abc", "pages=1-2"):
        r = phone.get(_url(visit_id), headers={"Range": bad})
        assert r.status_code == 416, bad
        assert r.headers["Content-Range"] == f"bytes */{size}"
        assert r.json is not None and r.json["error"]
    several = phone.get(_url(visit_id), headers={"Range": "bytes=0-9,20-29"})
    assert several.status_code == 200 and several.data == whole


def test_if_range_resumes_only_the_same_bundle(phone: Phone, kit: FakeKit, visit_id: str) -> None:
    whole = phone.get(_url(visit_id))
    etag = whole.headers["ETag"]
    same = phone.get(_url(visit_id), headers={"Range": "bytes=100-", "If-Range": etag})
    assert same.status_code == 206 and same.data == whole.data[100:]
    for other in ('"0000"', f"W/{etag}", "Wed, 21 Oct 2026 07:28:00 GMT"):
        r = phone.get(_url(visit_id), headers={"Range": "bytes=100-", "If-Range": other})
        assert r.status_code == 200 and r.data == whole.data, other
        assert "Content-Range" not in r.headers


def test_a_resumed_download_verifies_and_is_audited_once(
    phone: Phone, kit: FakeKit, visit_id: str, tmp_path: Path
) -> None:
    head = phone.client.head(_url(visit_id))
    assert head.status_code == 200 and head.data == b""
    size, etag = int(head.headers["Content-Length"]), head.headers["ETag"]
    half = size // 2
    first = phone.get(_url(visit_id), headers={"Range": f"bytes=0-{half - 1}"})
    assert first.status_code == 206 and len(first.data) == half
    assert _downloads(kit) == []  # not all of it yet (and a HEAD is nothing)
    # The Wi-Fi dropped; the browser asks for the rest of the same file.
    rest = phone.get(_url(visit_id), headers={"Range": f"bytes={half}-", "If-Range": etag})
    assert rest.status_code == 206 and len(rest.data) == size - half
    saved = tmp_path / "resumed.tar"
    saved.write_bytes(first.data + rest.data)
    report = verify_bundle(saved)
    assert report.ok, report.problems
    [entry] = _downloads(kit)
    assert (entry["from_byte"], entry["bytes"]) == (half, size)


def test_a_kit_without_a_hand_off(kit: FakeKit, pairing: PairingStore) -> None:
    app = kit.app(pairing, {"TESTING": True}, exports=None)
    phone = pair(app, pairing)
    r = phone.get("/api/handoff")
    assert r.status_code == 503 and r.json is not None
    assert "cannot hand visits off" in r.json["error"]


@pytest.mark.slow
def test_kit_run_hands_a_visit_off(tmp_path: Path) -> None:
    """`kit run --simulate` with simulated sticks in a folder: the sheet's answer, a copy to
    a stick with its events, and a download over real HTTP, each verified."""
    data = tmp_path / "data"
    visit_id = record_sealed_visit(data, seconds=2)
    sticks = tmp_path / "sticks"
    (sticks / "VIGSTICK").mkdir(parents=True)
    with kit_run_simulated(data, env={"KIT_HANDOFF_USB_DIR": str(sticks)}) as kit:
        phone = HttpPhone(kit.url, kit.code)
        state = phone.get("/api/handoff")
        assert [v["id"] for v in state["ready"]] == [visit_id]
        assert [s["id"] for s in state["sticks"]] == ["VIGSTICK"]
        assert f"the kit signs bundles as {state['kit']['fingerprint']}" in "\n".join(kit.log)
        status, answer = phone.call(
            "POST", f"/api/visits/{visit_id}/export", {"to": "usb", "stick": "VIGSTICK"}
        )
        assert status == 202, answer
        done = phone.wait_for_event(
            "export", state["event_id"], lambda job: not job["running"], timeout_s=60
        )
        assert done["phase"] == "done" and done["safe_to_remove"], done
        assert verify_bundle(sticks / "VIGSTICK" / done["bundle"]).ok

        conn = http.client.HTTPConnection(phone.host, timeout=30)
        try:
            conn.request("GET", _url(visit_id), headers={"Cookie": phone.cookie})
            r = conn.getresponse()
            assert r.status == 200
            saved = tmp_path / "download.tar"
            saved.write_bytes(r.read())
        finally:
            conn.close()
        assert verify_bundle(saved).ok
