"""The app behind waitress (the production server), over real HTTP: what the test client
cannot show (chunked bodies, streaming through the server)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kit.testing.fakes import FakeKit
from kit.testing.launch import served
from kit.testing.phone import HttpPhone
from web.pairing import PairingStore


@dataclass
class Served:
    """The fake kit behind waitress, and a paired phone's headers."""

    kit: FakeKit
    phone: HttpPhone
    connections: list[http.client.HTTPConnection] = field(default_factory=list)

    def send(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        """Send with the phone's cookie and CSRF token; the open response."""
        conn = http.client.HTTPConnection(self.phone.host, timeout=5)
        self.connections.append(conn)
        headers = {"Cookie": self.phone.cookie, "X-CSRF-Token": self.phone.csrf}
        conn.request(method, path, body, headers, **kw)
        return conn.getresponse()


@pytest.fixture
def served_kit(tmp_path: Path) -> Iterator[Served]:
    kit = FakeKit(tmp_path / "data")
    pairing = PairingStore(tmp_path / "pairing.db")
    with served(kit.app(pairing, {"KIT_HEARTBEAT_S": 0.2})) as url:
        made = Served(kit, HttpPhone(url, pairing.code))
        yield made
        for conn in made.connections:
            conn.close()
    pairing.close()
    kit.close()


def test_a_chunked_body_over_the_limit_is_413(served_kit: Served) -> None:
    big = (b"x" * 1000 for _ in range(40))
    r = served_kit.send("POST", "/api/tags", big, encode_chunked=True)
    assert r.status == 413
    assert json.loads(r.read()) == {"error": "the request body is larger than 32768 bytes"}
    r.close()


def test_events_stream_through_waitress(served_kit: Served) -> None:
    kit = served_kit.kit
    r = served_kit.send("GET", "/api/events")
    assert r.status == 200
    assert r.readline() == b"retry: 2000\n"
    assert r.readline() == b"\n"
    kit.open_visit()  # the guider starts a visit, with the family's consent
    kit.recording.start()  # then records
    assert r.readline() == b"id: 1\n"
    assert r.readline() == b"event: visit\n"
    assert json.loads(r.readline().removeprefix(b"data: "))["action"] == "started"
    assert r.readline() == b"\n"
    assert r.readline() == b"id: 2\n"
    assert r.readline() == b"event: status\n"
    assert json.loads(r.readline().removeprefix(b"data: "))["state"] == "recording"
    assert r.readline() == b"\n"
    assert r.readline() == b"event: heartbeat\n"  # nothing else happened
    r.close()


def test_a_range_of_the_film_through_waitress(tmp_path: Path) -> None:
    """What a <video> asks for when it seeks: a byte range, answered 206 by the server."""
    from kit.testing.fakes import film_bytes, placeholder_film

    kit = FakeKit(tmp_path / "data", film=placeholder_film)
    pairing = PairingStore(tmp_path / "pairing.db")
    kit.open_visit()
    kit.recording.start()
    kit.recording.add_tag("tag00000001", "Guiding", "", "Sam", 0)
    kit.recording.stop()
    visit = kit.visits.visits()[0].id
    with served(kit.app(pairing, {"KIT_HEARTBEAT_S": 0.2})) as url:
        phone = HttpPhone(url, pairing.code)
        cookie = phone.cookie
        conn = http.client.HTTPConnection(phone.host, timeout=5)
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
