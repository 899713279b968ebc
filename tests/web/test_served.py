"""The app behind waitress (the production server), over real HTTP: what the test client
cannot show (chunked bodies, streaming through the server)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.fakes import FakeController
from tests.web.serving import served
from web.app import create_app
from web.pairing import PairingStore


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[tuple[str, FakeController, dict[str, str]]]:
    controller = FakeController()
    pairing = PairingStore(tmp_path / "pairing.db")
    with served(create_app(controller, pairing, {"KIT_HEARTBEAT_S": 0.2})) as url:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
        conn.request(
            "POST",
            "/api/pair",
            json.dumps({"code": pairing.code}),
            {"X-Kit-Pairing": "1", "Content-Type": "application/json"},
        )
        r = conn.getresponse()
        csrf = json.loads(r.read())["phone"]["csrf"]
        cookie = (r.getheader("Set-Cookie") or "").split(";")[0]
        conn.close()
        yield url.removeprefix("http://"), controller, {"Cookie": cookie, "X-CSRF-Token": csrf}
    pairing.close()


def test_a_chunked_body_over_the_limit_is_413(
    kit: tuple[str, FakeController, dict[str, str]],
) -> None:
    host, _, headers = kit
    conn = http.client.HTTPConnection(host, timeout=5)
    conn.request(
        "POST", "/api/tags", (b"x" * 1000 for _ in range(40)), headers, encode_chunked=True
    )
    r = conn.getresponse()
    assert r.status == 413
    assert json.loads(r.read()) == {"error": "the request body is larger than 32768 bytes"}
    conn.close()


def test_events_stream_through_waitress(kit: tuple[str, FakeController, dict[str, str]]) -> None:
    host, controller, headers = kit
    conn = http.client.HTTPConnection(host, timeout=5)
    conn.request("GET", "/api/events", headers=headers)
    r = conn.getresponse()
    assert r.status == 200
    assert r.readline() == b"retry: 2000\n"
    assert r.readline() == b"\n"
    controller.start()
    assert r.readline() == b"id: 1\n"
    assert r.readline() == b"event: status\n"
    assert json.loads(r.readline().removeprefix(b"data: "))["state"] == "recording"
    assert r.readline() == b"\n"
    assert r.readline() == b"event: heartbeat\n"  # nothing else happened
    conn.close()


def test_a_range_of_the_film_through_waitress(tmp_path: Path) -> None:
    """What a <video> asks for when it seeks: a byte range, answered 206 by the server."""
    from tests.web.fakes import film_bytes

    controller = FakeController(media=tmp_path / "data")
    pairing = PairingStore(tmp_path / "pairing.db")
    controller.start()
    controller.add_tag("tag00000001", "Guiding", "", "Sam", 0)
    controller.stop()
    session = controller.sessions()[0].id
    with served(create_app(controller, pairing, {"KIT_HEARTBEAT_S": 0.2})) as url:
        host = url.removeprefix("http://")
        conn = http.client.HTTPConnection(host, timeout=5)
        conn.request(
            "POST",
            "/api/pair",
            json.dumps({"code": pairing.code}),
            {"X-Kit-Pairing": "1", "Content-Type": "application/json"},
        )
        r = conn.getresponse()
        r.read()
        cookie = (r.getheader("Set-Cookie") or "").split(";")[0]
        for _ in range(2):  # the same connection, twice (keep-alive survives a range)
            conn.request(
                "GET",
                f"/media/{session}/rough-cut.mp4",
                headers={"Cookie": cookie, "Range": "bytes=1000-2999"},
            )
            r = conn.getresponse()
            assert r.status == 206
            assert r.getheader("Content-Range") == "bytes 1000-2999/65536"
            assert r.getheader("Content-Disposition") == "inline"
            assert r.read() == film_bytes()[1000:3000]
        conn.close()
    pairing.close()
