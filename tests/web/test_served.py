"""The app behind waitress (the production server), over real HTTP: what the test client
cannot show (chunked bodies, streaming through the server)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.testing.fakes import FakeKit
from kit.testing.launch import served
from web.pairing import PairingStore


@pytest.fixture
def served_kit(tmp_path: Path) -> Iterator[tuple[str, FakeKit, dict[str, str]]]:
    kit = FakeKit(tmp_path / "data")
    pairing = PairingStore(tmp_path / "pairing.db")
    with served(kit.app(pairing, {"KIT_HEARTBEAT_S": 0.2})) as url:
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
        yield url.removeprefix("http://"), kit, {"Cookie": cookie, "X-CSRF-Token": csrf}
    pairing.close()
    kit.close()


def test_a_chunked_body_over_the_limit_is_413(
    served_kit: tuple[str, FakeKit, dict[str, str]],
) -> None:
    host, _, headers = served_kit
    conn = http.client.HTTPConnection(host, timeout=5)
    conn.request(
        "POST", "/api/tags", (b"x" * 1000 for _ in range(40)), headers, encode_chunked=True
    )
    r = conn.getresponse()
    assert r.status == 413
    assert json.loads(r.read()) == {"error": "the request body is larger than 32768 bytes"}
    conn.close()


def test_events_stream_through_waitress(
    served_kit: tuple[str, FakeKit, dict[str, str]],
) -> None:
    host, kit, headers = served_kit
    conn = http.client.HTTPConnection(host, timeout=5)
    conn.request("GET", "/api/events", headers=headers)
    r = conn.getresponse()
    assert r.status == 200
    assert r.readline() == b"retry: 2000\n"
    assert r.readline() == b"\n"
    kit.recording.start()  # opens a visit, then records
    assert r.readline() == b"id: 1\n"
    assert r.readline() == b"event: visit\n"
    assert json.loads(r.readline().removeprefix(b"data: "))["action"] == "started"
    assert r.readline() == b"\n"
    assert r.readline() == b"id: 2\n"
    assert r.readline() == b"event: status\n"
    assert json.loads(r.readline().removeprefix(b"data: "))["state"] == "recording"
    assert r.readline() == b"\n"
    assert r.readline() == b"event: heartbeat\n"  # nothing else happened
    conn.close()


def test_a_range_of_the_film_through_waitress(tmp_path: Path) -> None:
    """What a <video> asks for when it seeks: a byte range, answered 206 by the server."""
    from kit.testing.fakes import film_bytes, placeholder_film

    kit = FakeKit(tmp_path / "data", film=placeholder_film)
    pairing = PairingStore(tmp_path / "pairing.db")
    kit.recording.start()
    kit.recording.add_tag("tag00000001", "Guiding", "", "Sam", 0)
    kit.recording.stop()
    visit = kit.visits.visits()[0].id
    with served(kit.app(pairing, {"KIT_HEARTBEAT_S": 0.2})) as url:
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
                f"/media/{visit}/rough-cut.mp4",
                headers={"Cookie": cookie, "Range": "bytes=1000-2999"},
            )
            r = conn.getresponse()
            assert r.status == 206
            assert r.getheader("Content-Range") == "bytes 1000-2999/65536"
            assert r.getheader("Content-Disposition") == "inline"
            assert r.read() == film_bytes()[1000:3000]
        conn.close()
    pairing.close()
    kit.close()
