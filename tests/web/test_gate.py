"""The gate: every route but pairing and static files needs a paired phone and, to change
anything, that phone's CSRF token. The route table here must match the app's."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.web.conftest import Phone, pair
from web.pairing import PairingStore

TAG = "tag00000001"
PHONE = "ph000001"
VISIT = "visit0001"

# (method, path, paired) for every route; a new route must be added here.
ROUTES = [
    ("GET", "/", True),
    ("GET", "/settings", True),
    ("GET", "/api/state", True),
    ("POST", "/api/start", True),
    ("POST", "/api/stop", True),
    ("POST", "/api/discard", True),
    ("POST", "/api/tags", True),
    ("PATCH", f"/api/tags/{TAG}", True),
    ("DELETE", f"/api/tags/{TAG}", True),
    ("POST", f"/api/tags/{TAG}/restore", True),
    ("GET", "/api/labels", True),
    ("PUT", "/api/labels", True),
    ("GET", "/api/phones", True),
    ("PATCH", f"/api/phones/{PHONE}", True),
    ("DELETE", f"/api/phones/{PHONE}", True),
    ("POST", f"/api/phones/{PHONE}/restore", True),
    ("GET", "/api/pairing", True),
    ("POST", "/api/clock", True),
    ("GET", "/api/preview.jpg", True),
    ("GET", "/api/events", True),
    ("GET", "/visits", True),
    ("GET", f"/visits/{VISIT}", True),
    ("GET", "/api/visits", True),
    ("POST", "/api/visits", True),
    ("GET", "/api/consent", True),
    ("GET", f"/api/visits/{VISIT}", True),
    ("PATCH", f"/api/visits/{VISIT}", True),
    ("POST", f"/api/visits/{VISIT}/end", True),
    ("POST", f"/api/visits/{VISIT}/recut", True),
    ("PATCH", f"/api/visits/{VISIT}/moments/m0001", True),
    ("PUT", f"/api/visits/{VISIT}/moments/order", True),
    ("POST", f"/api/visits/{VISIT}/tags", True),
    ("GET", f"/media/{VISIT}/takes/take0001.mp4", True),
    ("GET", f"/media/{VISIT}/rough-cut.mp4", True),
    ("GET", "/api/handoff", True),
    ("POST", f"/api/visits/{VISIT}/export", True),
    ("GET", f"/api/visits/{VISIT}/bundle.tar", True),
    ("GET", "/present", True),
    ("GET", f"/present/{VISIT}", True),
    ("GET", f"/present/{VISIT}/remote", True),
    ("GET", "/api/present", True),
    ("GET", f"/api/present/{VISIT}", True),
    ("GET", f"/api/present/{VISIT}/events", True),
    ("POST", f"/api/present/{VISIT}/command", True),
    ("POST", f"/api/present/{VISIT}/state", True),
    ("GET", f"/api/present/{VISIT}/bubbles", True),
    ("PUT", f"/api/present/{VISIT}/stills/<number>/bubble", True),  # the rule's own name
    ("DELETE", f"/api/present/{VISIT}/stills/<number>/bubble", True),
    ("GET", "/api/label.png", True),
    ("GET", "/api/label.pdf", True),
    ("GET", "/pair", False),
    ("POST", "/api/pair", False),
    ("GET", "/static/kit.css", False),
    # Phones' connectivity checks (web/views/connectivity.py): open to all, any Host.
    ("GET", "/generate_204", False),
    ("GET", "/gen_204", False),
    ("GET", "/hotspot-detect.html", False),
    ("GET", "/library/test/success.html", False),
    ("GET", "/connecttest.txt", False),
    ("GET", "/ncsi.txt", False),
]
UNSAFE = [(m, p) for m, p, paired in ROUTES if paired and m not in ("GET", "HEAD")]


def _rule_key(path: str) -> str:
    return (
        path.replace(TAG, "<tag_id>")
        .replace(PHONE, "<phone_id>")
        .replace(VISIT, "<visit_id>")
        .replace("/static/kit.css", "/static/<path:filename>")
        .replace("/rough-cut.mp4", "/<path:name>")
        .replace("/m0001", "/<moment_id>")
        .replace("/take0001.mp4", "/<take_id>.mp4")
    )


def test_the_route_table_is_complete(app: Flask) -> None:
    served = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    listed = {(m, _rule_key(p)) for m, p, _ in ROUTES}
    assert served == listed


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, paired in ROUTES if paired])
def test_unpaired_requests_are_refused(client: FlaskClient, method: str, path: str) -> None:
    r = client.open(path, method=method, json={})
    if path.startswith(("/api/", "/media/")):
        assert r.status_code == 401
        assert r.json == {"error": "this phone is not paired with the kit"}
    else:
        assert r.status_code == 302
        assert r.headers["Location"] == "/pair"


@pytest.mark.parametrize(("method", "path"), UNSAFE)
@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_state_changes_need_the_phones_csrf_token(
    phone: Phone, method: str, path: str, token: str | None
) -> None:
    headers = {} if token is None else {"X-CSRF-Token": token}
    r = phone.client.open(path, method=method, json={}, headers=headers)
    assert r.status_code == 403
    assert r.json == {"error": "missing or wrong X-CSRF-Token header"}


def test_another_phones_csrf_token_is_wrong(app: Flask, pairing: PairingStore) -> None:
    a, b = pair(app, pairing, "A"), pair(app, pairing, "B")
    r = a.client.post("/api/start", headers={"X-CSRF-Token": b.csrf})
    assert r.status_code == 403
    assert a.post("/api/start").status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_requests_are_refused_even_with_the_token(
    phone: Phone, headers: dict[str, str]
) -> None:
    r = phone.post("/api/start", headers=headers)
    assert r.status_code == 403
    assert r.json == {"error": "cross-site request refused"}


def test_same_origin_headers_pass(phone: Phone) -> None:
    r = phone.post(
        "/api/start", headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    )
    assert r.status_code == 202


def test_a_revoked_phone_is_refused(app: Flask, pairing: PairingStore) -> None:
    a, b = pair(app, pairing, "A"), pair(app, pairing, "B")
    assert b.delete(f"/api/phones/{a.id}").status_code == 200
    assert a.get("/api/state").status_code == 401
    assert a.get("/").status_code == 302
    assert b.post(f"/api/phones/{a.id}/restore").status_code == 200
    assert a.get("/api/state").status_code == 200


def test_a_made_up_cookie_is_refused(client: FlaskClient) -> None:
    client.set_cookie("kit_phone", "made-up")
    assert client.get("/api/state").status_code == 401


def test_unknown_paths(client: FlaskClient, phone: Phone) -> None:
    assert client.get("/api/nothing").status_code == 401  # unpaired: nothing to learn
    r = phone.get("/api/nothing")
    assert r.status_code == 404
    assert "error" in (r.json or {})
    assert phone.get("/nothing").status_code == 404
    r = phone.send("PUT", "/api/state")
    assert r.status_code == 405
    assert "error" in (r.json or {})


def test_security_headers(phone: Phone) -> None:
    r = phone.get("/")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"
    assert b"http://" not in r.data.replace(b"http://localhost", b"")  # nothing external
