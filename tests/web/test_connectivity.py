"""Phones' connectivity checks get "this network works", unpaired, whatever the Host header
(the kit's DNS sends every name to the kit); the rest of the app stays closed to strangers."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.web.conftest import Phone
from web.views.connectivity import APPLE_SUCCESS

# (path, status, body, content type) as each system expects it.
CHECKS = [
    ("/generate_204", 204, b"", None),  # Android, ChromeOS
    ("/gen_204", 204, b"", None),
    ("/hotspot-detect.html", 200, APPLE_SUCCESS.encode(), "text/html"),  # iOS, macOS
    ("/library/test/success.html", 200, APPLE_SUCCESS.encode(), "text/html"),
    ("/connecttest.txt", 200, b"Microsoft Connect Test", "text/plain"),  # Windows 10, 11
    ("/ncsi.txt", 200, b"Microsoft NCSI", "text/plain"),  # older Windows
]
HOSTS = [
    "connectivitycheck.gstatic.com",  # Android
    "www.google.com",
    "clients3.google.com",
    "captive.apple.com",  # Apple
    "www.apple.com",
    "www.msftconnecttest.com",  # Windows
    "www.msftncsi.com",
    "10.42.0.1",
    "10.42.0.1:8080",
    "localhost",
    # A long name that is still a name: 4 labels of 63 characters (253 with the dots).
    ".".join(["a" * 63] * 3 + ["b" * 61]),
]


def test_apples_answer_is_the_exact_page() -> None:
    assert APPLE_SUCCESS == "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize(("path", "status", "body", "kind"), CHECKS)
def test_every_check_says_the_network_works_for_any_host_unpaired(
    client: FlaskClient, host: str, path: str, status: int, body: bytes, kind: str | None
) -> None:
    r = client.get(path, headers={"Host": host})
    assert r.status_code == status
    assert r.data == body
    if kind is not None:
        assert r.mimetype == kind
    assert "Location" not in r.headers  # no redirect: nothing for a sign-in sheet to open
    assert "Set-Cookie" not in r.headers


@pytest.mark.parametrize(("path", "status", "body", "kind"), CHECKS)
def test_head_and_a_paired_phone_get_the_same(
    client: FlaskClient, phone: Phone, path: str, status: int, body: bytes, kind: str | None
) -> None:
    head = client.head(path, headers={"Host": "captive.apple.com"})
    assert head.status_code == status and head.data == b""
    r = phone.get(path)
    assert (r.status_code, r.data) == (status, body)


@pytest.mark.parametrize(
    "host",
    [
        "a" * 64 + ".example.org",  # a label of 64 characters: not a host name
        "b" * 300,
        "connectivitycheck.gstatic.com" + "x" * 240,
        "bad host",
        "[::1",
    ],
)
@pytest.mark.parametrize("path", ["/generate_204", "/hotspot-detect.html", "/api/state", "/"])
def test_a_host_that_is_no_host_name_is_a_4xx_never_a_5xx(
    client: FlaskClient, host: str, path: str
) -> None:
    r = client.get(path, headers={"Host": host})
    assert 400 <= r.status_code < 500


@pytest.mark.parametrize("host", ["connectivitycheck.gstatic.com", "captive.apple.com"])
def test_the_rest_of_the_app_stays_closed_to_strangers(client: FlaskClient, host: str) -> None:
    assert client.get("/api/state", headers={"Host": host}).status_code == 401
    page = client.get("/", headers={"Host": host})
    assert page.status_code == 302 and page.headers["Location"] == "/pair"
    assert client.get("/generate_204/x", headers={"Host": host}).status_code in (302, 401, 404)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head(client: FlaskClient, method: str) -> None:
    r = client.open("/generate_204", method=method, headers={"Host": "x.example"})
    assert r.status_code in (302, 403, 405)  # the gate's usual answers to a stranger
