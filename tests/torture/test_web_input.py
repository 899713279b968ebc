"""Issue #14, hostile input to the phone page through Flask's test client (the fake kit
over the real library, database and pairing store): defects 8 (lone surrogates, digits
that are not ASCII, a long Host header), 9 (HEAD on the event stream, the stream cap)
and 2c (a full card is a 507, never a 500)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from kit.testing.fakes import FakeKit
from tests.web.conftest import Phone, pair
from web.pairing import PairingStore

SURROGATE = "Guiding \ud800"


def _json_error(r: TestResponse) -> str:
    body = r.get_json(silent=True)
    assert isinstance(body, dict) and isinstance(body.get("error"), str), (r.status_code, r.data)
    return str(body["error"])


# -- 8: a lone UTF-16 surrogate, digits that are not ASCII, a long Host header ----------


def test_d8_lone_surrogate_label_does_not_break_home(phone: Phone, kit: FakeKit) -> None:
    before = kit.visits.labels()
    r = phone.put("/api/labels", json={"labels": ["Fine", SURROGATE]})
    assert r.status_code == 400, r.status_code
    _json_error(r)
    assert kit.visits.labels() == before
    assert phone.get("/").status_code == 200  # every phone's home page still renders
    assert phone.get("/settings").status_code == 200
    assert phone.get("/api/state").status_code == 200


def test_d8_lone_surrogate_case_ref_is_400_and_pages_keep_working(
    phone: Phone, kit: FakeKit
) -> None:
    visit = kit.open_visit("F-0001")
    r = phone.patch(f"/api/visits/{visit.id}", json={"case_ref": "F-\udfff"})
    assert r.status_code == 400, r.status_code
    _json_error(r)
    for page in ("/", "/visits", f"/visits/{visit.id}", "/api/visits", "/api/state"):
        assert phone.get(page).status_code == 200, page


def test_d8_lone_surrogate_phone_name_is_400_on_rename(phone: Phone) -> None:
    r = phone.patch(f"/api/phones/{phone.id}", json={"name": "Sam \ud83d"})
    assert r.status_code == 400, r.status_code
    _json_error(r)
    listed = phone.get("/api/phones")
    assert listed.status_code == 200
    assert [p["name"] for p in (listed.json or {})["phones"]] == ["Sam"]
    assert phone.get("/").status_code == 200


def test_d8_lone_surrogate_phone_name_is_400_on_pairing(
    app: Flask, pairing: PairingStore, phone: Phone
) -> None:
    r = app.test_client().post(
        "/api/pair",
        json={"code": pairing.code, "name": "Jo \ud800"},
        headers={"X-Kit-Pairing": "1"},
    )
    assert r.status_code == 400, r.status_code
    _json_error(r)
    assert len(pairing.phones()) == 1  # nobody was paired under that name
    assert phone.get("/api/phones").status_code == 200


@pytest.mark.parametrize("value", ["²", "³", "¹2", "١٢", "𝟙"])
def test_d8_superscript_digit_after_on_preview_is_400(phone: Phone, value: str) -> None:
    r = phone.get("/api/preview.jpg", query_string={"after": value})
    assert r.status_code == 400, r.status_code
    _json_error(r)


@pytest.mark.parametrize("value", ["²", "³", "1²"])
def test_d8_superscript_digit_last_event_id_is_400(phone: Phone, value: str) -> None:
    # A header carries bytes: as a phone would send "²" (UTF-8), and as latin-1.
    for header in (value.encode().decode("latin-1"), value):
        r = phone.get("/api/events", headers={"Last-Event-ID": header})
        assert r.status_code == 400, (header, r.status_code)
        _json_error(r)
    r = phone.get("/api/events", query_string={"after": value})
    assert r.status_code == 400, r.status_code


@pytest.mark.parametrize(
    "host",
    ["a" * 64, "a" * 64 + ".example", "kit." + "b" * 70 + ":8080", "x" * 300, "h" * 255],
)
@pytest.mark.parametrize("path", ["/", "/pair", "/pair?k=abc", "/api/state", "/generate_204"])
def test_d8_long_host_header_is_not_an_unauthenticated_500(
    client: FlaskClient, host: str, path: str
) -> None:
    r = client.get(path, headers={"Host": host})
    assert r.status_code < 500, (host, path, r.status_code)


# -- 9: HEAD on the event stream holds nothing; the stream cap is per phone -------------


def test_d9_head_on_events_holds_no_stream_slot(phone: Phone, app: Flask) -> None:
    streams = app.extensions["kit"].streams
    for _ in range(20):
        r = phone.client.head("/api/events")
        assert r.status_code == 200
        r.close()
    assert streams.count() == 0
    opened = phone.client.get("/api/events", buffered=False)
    assert opened.status_code == 200  # a real stream still opens
    opened.close()
    assert streams.count() == 0


def test_d9_three_phones_with_two_tabs_do_not_lock_out_a_fourth(
    kit: FakeKit, pairing: PairingStore
) -> None:
    app = kit.app(pairing, {"TESTING": True, "KIT_MAX_STREAMS": 6, "KIT_STREAMS_PER_PHONE": 2})
    phones = [pair(app, pairing, name) for name in ("A", "B", "C", "D")]
    held = [p.client.get("/api/events", buffered=False) for p in phones[:3] for _ in range(2)]
    try:
        assert all(r.status_code == 200 for r in held)
        fourth = phones[3].client.get("/api/events", buffered=False)
        assert fourth.status_code == 200, fourth.get_json(silent=True)
        fourth.close()
    finally:
        for r in held:
            r.close()


# -- 2c: a full card is a 507 with a JSON error, never a 500 ----------------------------


def _no_room(conn: sqlite3.Connection, *, table: str = "", row: str = "") -> None:
    """No page more for the database, and the free room in its pages filled: the next
    write that needs a page gets SQLITE_FULL, as on a card with no space left. With
    ``table``, the room left in that table's own pages is filled too (rows ``row``
    fills in with a key and a value)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    conn.execute("CREATE TABLE IF NOT EXISTS torture_filler (x BLOB)")
    n = 0
    for size in (4000, 1000, 200, 40, 8):
        while True:
            n += 1
            try:
                conn.execute("INSERT INTO torture_filler VALUES (zeroblob(?))", (size,))
                if table:
                    conn.execute(f"INSERT INTO {table} VALUES {row}", (f"fill{n}", "x" * size))
            except sqlite3.OperationalError:
                break


def _room_again(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count = 1073741823")


def _conn(owner: Any) -> sqlite3.Connection:
    found: sqlite3.Connection = owner._conn  # the store's own connection: its card
    return found


def _full_tag(n: int) -> dict[str, Any]:
    return {"id": f"full{n:08d}", "label": "Guiding", "note": "n" * 400, "delay_ms": 0}


def test_d2c_a_tag_on_a_full_card_is_507_and_a_retry_is_not_409(phone: Phone, kit: FakeKit) -> None:
    kit.open_visit()
    assert phone.post("/api/start").status_code == 202
    conn = _conn(kit.store.db)
    _no_room(conn)
    refused = None
    for n in range(60):  # the last free page takes a few first
        r = phone.post("/api/tags", json=_full_tag(n))
        assert r.status_code in (201, 507), (n, r.status_code, r.data[:300])
        if r.status_code == 507:
            refused = n
            assert "full" in _json_error(r)
            break
    assert refused is not None, "the card never filled"
    retry = phone.post("/api/tags", json=_full_tag(refused))  # the page retries the tap
    assert retry.status_code == 507, (retry.status_code, retry.data[:300])
    _room_again(conn)
    stored = phone.post("/api/tags", json=_full_tag(refused))
    assert stored.status_code == 201, (stored.status_code, stored.data[:300])
    visit_id = kit.recording.status().visit_id or ""
    assert f"full{refused:08d}" in {t.id for t in kit.visits.tags(visit_id)}


def test_d2c_label_edits_on_a_full_card_are_507(phone: Phone, kit: FakeKit) -> None:
    assert phone.put("/api/labels", json={"labels": ["A"]}).status_code == 200
    _no_room(_conn(kit.store.db), table="settings", row="(?, ?)")
    labels = [f"Label {k} " + "x" * 30 for k in range(12)]  # a longer row: a new page
    r = phone.put("/api/labels", json={"labels": labels})
    assert r.status_code == 507, (r.status_code, r.data[:300])
    assert "full" in _json_error(r)
    assert kit.visits.labels() == ["A"]
    assert phone.get("/").status_code == 200


def test_d2c_pairing_on_a_full_card_is_507(app: Flask, pairing: PairingStore) -> None:
    _no_room(_conn(pairing))
    codes = []
    for n in range(40):
        r = app.test_client().post(
            "/api/pair",
            json={"code": pairing.code, "name": f"Phone {n} " + "y" * 30},
            headers={"X-Kit-Pairing": "1"},
        )
        codes.append(r.status_code)
        assert r.status_code in (201, 507), (n, r.status_code, r.data[:300])
        if r.status_code == 507:
            _json_error(r)
            break
    assert 507 in codes, codes


def test_d2c_renaming_a_phone_on_a_full_card_is_507(phone: Phone, pairing: PairingStore) -> None:
    _no_room(_conn(pairing))
    codes = []
    for n in range(40):
        r = phone.patch(f"/api/phones/{phone.id}", json={"name": f"{n} " + "z" * 37})
        codes.append(r.status_code)
        assert r.status_code in (200, 507), (n, r.status_code, r.data[:300])
        if r.status_code == 507:
            _json_error(r)
            break
    # A rename rewrites a row in place and may always fit: then it must simply work.
    assert set(codes) <= {200, 507}, codes
