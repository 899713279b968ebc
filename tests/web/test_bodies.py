"""Malformed, odd and oversized bodies get a 4xx with a JSON reason, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from tests.web.conftest import Phone

JSON_ROUTES = [
    ("POST", "/api/tags"),
    ("PATCH", "/api/tags/tap0000000001"),
    ("PUT", "/api/labels"),
    ("PATCH", "/api/phones/{me}"),
    ("POST", "/api/clock"),
    ("POST", "/api/pair"),
]
ALL_UNSAFE = [
    *JSON_ROUTES,
    ("POST", "/api/start"),
    ("POST", "/api/stop"),
    ("DELETE", "/api/tags/tap0000000001"),
    ("POST", "/api/tags/tap0000000001/restore"),
    ("POST", "/api/phones/{me}/restore"),
]

GARBAGE = [
    b"",
    b"not json",
    b"{",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"42",
    b"\xff\xfe\x00{",
    b'{"label": "\\ud800"}',  # a lone surrogate
    b"[" * 20_000 + b"]" * 20_000,  # deep enough to blow json's recursion
    b'{"a": ' * 5_000 + b"1" + b"}" * 5_000,
    json.dumps({"labels": [[[[[[]]]]]] * 50}).encode(),
]


def _send(phone: Phone, method: str, path: str, **kw: Any) -> Any:
    headers = {"X-Kit-Pairing": "1", **kw.pop("headers", {})}
    return phone.send(method, path.format(me=phone.id), headers=headers, **kw)


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
@pytest.mark.parametrize("body", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_bodies_are_400(phone: Phone, method: str, path: str, body: bytes) -> None:
    phone.post("/api/start")
    r = _send(phone, method, path, data=body, content_type="application/json")
    assert 400 <= r.status_code < 500, r.data[:200]
    assert isinstance((r.json or {}).get("error"), str)


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_other_content_types_do_not_break_anything(
    phone: Phone, method: str, path: str, content_type: str
) -> None:
    r = _send(phone, method, path, data=b"a=1&b=2", content_type=content_type)
    assert 400 <= r.status_code < 500


@pytest.mark.parametrize(("method", "path"), ALL_UNSAFE)
def test_oversized_bodies_are_413_json(app: Flask, phone: Phone, method: str, path: str) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    r = _send(phone, method, path, data=b"x" * (limit + 1), content_type="application/json")
    assert r.status_code == 413
    assert r.json == {"error": f"the request body is larger than {limit} bytes"}


def test_an_unpaired_oversized_body_is_413_not_read(app: Flask) -> None:
    r = app.test_client().post("/api/tags", data=b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1))
    assert r.status_code == 413


@pytest.mark.parametrize(("method", "path"), ALL_UNSAFE[len(JSON_ROUTES) :])
def test_bodyless_routes_ignore_a_body(phone: Phone, method: str, path: str) -> None:
    r = _send(phone, method, path, data=b"\xff garbage", content_type="application/json")
    assert r.status_code < 500
