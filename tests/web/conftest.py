"""Fixtures: a fake kit (kit.testing.fakes), a pairing store on a temp dir, the app, and
paired test clients."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from kit.testing.fakes import FakeKit
from web.pairing import PairingStore


class FakeSeconds:
    """A monotonic seconds clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Phone:
    """A test client that has paired, and sends its CSRF token on state-changing requests."""

    def __init__(self, client: FlaskClient, csrf: str, phone_id: str) -> None:
        self.client = client
        self.csrf = csrf
        self.id = phone_id

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get(path, **kw)

    def send(self, method: str, path: str, **kw: Any) -> TestResponse:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kw)

    def post(self, path: str, **kw: Any) -> TestResponse:
        return self.send("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> TestResponse:
        return self.send("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> TestResponse:
        return self.send("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.send("DELETE", path, **kw)


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[FakeKit]:
    fake = FakeKit(
        tmp_path / "data",
        preview=[b"\xff\xd8fake-jpeg-1\xff\xd9", b"\xff\xd8fake-jpeg-2\xff\xd9"],
    )
    yield fake
    fake.close()


@pytest.fixture
def seconds() -> FakeSeconds:
    return FakeSeconds()


@pytest.fixture
def pairing(tmp_path: Path, seconds: FakeSeconds) -> Iterator[PairingStore]:
    store = PairingStore(tmp_path / "pairing.db", clock=seconds)
    yield store
    store.close()


@pytest.fixture
def phone_times() -> list[float]:
    return []


@pytest.fixture
def app(kit: FakeKit, pairing: PairingStore, phone_times: list[float]) -> Flask:
    def phone_time(unix_s: float) -> None:
        phone_times.append(unix_s)
        kit.wall.set_from_phone(unix_s)  # as the daemon: the kit learns the date from phones

    return kit.app(pairing, {"TESTING": True, "KIT_HEARTBEAT_S": 0.05}, on_phone_time=phone_time)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def pair(app: Flask, pairing: PairingStore, name: str = "Sam") -> Phone:
    """A new test client paired with the kit through the API, as a page would."""
    client = app.test_client()
    r = client.post(
        "/api/pair",
        json={"code": pairing.code, "name": name, "phone_time_ms": round(time.time() * 1000)},
        headers={"X-Kit-Pairing": "1"},
    )
    assert r.status_code == 201, r.json
    body = r.json
    assert body is not None
    return Phone(client, body["phone"]["csrf"], body["phone"]["id"])


@pytest.fixture
def phone(app: Flask, pairing: PairingStore) -> Phone:
    return pair(app, pairing)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, driven by Playwright (skipped where it is missing)."""
    from tests.web.browser import chromium, need_chromium

    need_chromium()
    with chromium() as b:
        yield b
