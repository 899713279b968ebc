"""Input no phone should send, and the kit answers with a 4xx (never a 500), keeping its data."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kit.testing.fakes import FakeKit
from tests.web.conftest import Phone

LONE_SURROGATE = "Guiding \ud800"


def test_a_lone_surrogate_in_a_label_is_refused_and_the_page_still_loads(
    phone: Phone, kit: FakeKit
) -> None:
    r = phone.put("/api/labels", json={"labels": ["Fine", LONE_SURROGATE]})
    assert r.status_code == 400
    assert kit.visits.labels()[0] == "Being attentive"  # unchanged
    assert phone.get("/").status_code == 200


def test_a_lone_surrogate_in_a_tag_or_phone_name_is_refused(phone: Phone, kit: FakeKit) -> None:
    phone.post("/api/start")
    r = phone.post("/api/tags", json={"id": "tap00000001", "label": LONE_SURROGATE})
    assert r.status_code == 400
    r = phone.post("/api/tags", json={"id": "tap00000002", "label": "Guiding", "note": "\udfff"})
    assert r.status_code == 400
    r = phone.patch(f"/api/phones/{phone.id}", json={"name": "Sam \ud83d"})
    assert r.status_code == 400
    assert phone.get("/api/phones").status_code == 200


def test_a_lone_surrogate_in_a_pairing_name_is_refused(app: Flask, pairing: object) -> None:
    from web.pairing import PairingStore

    assert isinstance(pairing, PairingStore)
    r = app.test_client().post(
        "/api/pair",
        json={"code": pairing.code, "name": "Jo \ud800"},
        headers={"X-Kit-Pairing": "1"},
    )
    assert r.status_code == 400


@pytest.mark.parametrize("value", ["²", "١٢", "1²", "\u00b3"])
def test_digits_that_are_not_ascii_are_400(phone: Phone, value: str) -> None:
    assert phone.get(f"/api/preview.jpg?after={value}").status_code == 400
    r = phone.get("/api/events", headers={"Last-Event-ID": value.encode().decode("latin-1")})
    assert r.status_code == 400


@pytest.mark.parametrize("path", ["/", "/pair", "/api/state"])
def test_a_long_host_header_is_not_a_500(client: FlaskClient, path: str) -> None:
    r = client.get(path, headers={"Host": "h" * 300 + ".example"})
    assert r.status_code < 500
