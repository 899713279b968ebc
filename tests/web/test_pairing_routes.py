"""Pairing over HTTP: the page, the request, the cookie, the lock-out, the phone's time."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from kit.testing.fakes import FakeKit
from tests.web.conftest import FakeSeconds, Phone
from web.pairing import PairingStore

PAIR = {"X-Kit-Pairing": "1"}
IOS_SHEET = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)


def _wrong(pairing: PairingStore) -> str:
    return f"{(int(pairing.code) + 1) % 1_000_000:06d}"


def test_the_pairing_page(client: FlaskClient, pairing: PairingStore) -> None:
    r = client.get("/pair")
    assert r.status_code == 200
    assert b'id="pair-form"' in r.data
    assert b'data-key=""' in r.data
    r = client.get(f"/pair?k={pairing.key}")
    assert f'data-key="{pairing.key}"'.encode() in r.data
    r = client.get("/pair?k=%3Cscript%3E")
    assert b"<script>" not in r.data
    assert b"This pairing link is damaged" in r.data


def test_the_pairing_page_spots_the_captive_portal_sheet(client: FlaskClient) -> None:
    r = client.get("/pair", headers={"User-Agent": IOS_SHEET})
    assert b'data-kind="ios-captive"' in r.data
    assert b"Open this page in Safari" in r.data
    assert b"http://localhost" in r.data  # the address to type
    assert b'id="limited"' not in client.get("/pair").data


def test_a_paired_phone_is_sent_home(phone: Phone) -> None:
    r = phone.get("/pair")
    assert r.status_code == 302
    assert r.headers["Location"] == "/"


def test_pairing_with_the_link_sets_a_strict_httponly_cookie(
    client: FlaskClient, pairing: PairingStore
) -> None:
    r = client.post("/api/pair", json={"key": pairing.key}, headers=PAIR)
    assert r.status_code == 201
    body = r.json
    assert body is not None
    assert set(body["phone"]) == {"id", "name", "paired_at", "revoked", "csrf"}
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("kit_phone=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert client.get("/api/state").status_code == 200


def test_pairing_with_the_code_accepts_spaces(client: FlaskClient, pairing: PairingStore) -> None:
    code = f"{pairing.code[:3]} {pairing.code[3:]}"
    r = client.post("/api/pair", json={"code": code, "name": "Sam"}, headers=PAIR)
    assert r.status_code == 201
    assert (r.json or {})["phone"]["name"] == "Sam"


def test_pairing_needs_the_pairing_header(client: FlaskClient, pairing: PairingStore) -> None:
    r = client.post("/api/pair", json={"code": pairing.code})
    assert r.status_code == 403
    assert "X-Kit-Pairing" in (r.json or {})["error"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"code": "123456", "key": "abc"},
        {"code": 123456},
        {"code": "12345"},
        {"code": "1234567"},
        {"code": "12a456"},
        {"key": ""},
        {"key": "a" * 65},
        {"key": "bad key!"},
        {"key": ["x"]},
        {"code": "123456", "name": 5},
        {"code": "123456", "name": "x" * 41},
        {"code": "123456", "phone_time_ms": "now"},
        {"code": "123456", "phone_time_ms": -1},
        {"code": "123456", "extra": 1},
    ],
)
def test_malformed_pairing_requests_are_400(client: FlaskClient, body: dict[str, Any]) -> None:
    r = client.post("/api/pair", json=body, headers=PAIR)
    assert r.status_code == 400
    assert isinstance((r.json or {}).get("error"), str)


def test_five_wrong_codes_lock_pairing(
    client: FlaskClient, pairing: PairingStore, seconds: FakeSeconds
) -> None:
    for _ in range(5):
        r = client.post("/api/pair", json={"code": _wrong(pairing)}, headers=PAIR)
        assert r.status_code == 401
        assert "set-cookie" not in r.headers
    r = client.post("/api/pair", json={"code": pairing.code}, headers=PAIR)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "300"
    assert (r.json or {})["retry_after_s"] == 300
    assert b'data-locked-for="300"' in client.get("/pair").data
    seconds.advance(301)
    r = client.post("/api/pair", json={"code": pairing.code}, headers=PAIR)
    assert r.status_code == 201


def test_the_phones_time_goes_to_the_hook_only_once_paired(
    client: FlaskClient, pairing: PairingStore, phone_times: list[float]
) -> None:
    when = 1_760_000_000_123
    wrong = {"code": _wrong(pairing), "phone_time_ms": when}
    r = client.post("/api/pair", json=wrong, headers=PAIR)
    assert r.status_code == 401
    assert phone_times == []
    r = client.post("/api/pair", json={"code": pairing.code, "phone_time_ms": when}, headers=PAIR)
    assert r.status_code == 201
    assert phone_times == [pytest.approx(1_760_000_000.123)]
    assert (r.json or {})["phone"]["paired_at"] == "2025-10-09T08:53:20+00:00"


def test_an_implausible_phone_time_is_ignored(
    client: FlaskClient, pairing: PairingStore, phone_times: list[float]
) -> None:
    r = client.post("/api/pair", json={"code": pairing.code, "phone_time_ms": 0}, headers=PAIR)
    assert r.status_code == 201
    assert phone_times == []
    assert (r.json or {})["phone"]["paired_at"] == ""


def test_a_paired_page_reports_the_phones_time(phone: Phone, phone_times: list[float]) -> None:
    phone_times.clear()
    r = phone.post("/api/clock", json={"phone_time_ms": 1_760_000_100_000})
    assert r.status_code == 204
    assert phone_times == [1_760_000_100.0]
    assert phone.post("/api/clock", json={"phone_time_ms": None}).status_code == 400
    assert phone.post("/api/clock", json={}).status_code == 400


def test_a_failing_clock_hook_does_not_fail_pairing(
    kit: FakeKit, pairing: PairingStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: float) -> None:
        raise RuntimeError("no permission to set the clock")

    app = kit.app(pairing, {"TESTING": True}, on_phone_time=broken)
    r = app.test_client().post(
        "/api/pair", json={"code": pairing.code, "phone_time_ms": 1_760_000_000_000}, headers=PAIR
    )
    assert r.status_code == 201
    assert "phone-time hook failed" in caplog.text
