"""Server-sent events: Last-Event-ID, resync, heartbeats, and streams that end when they should."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from kit.compose import EVENT_LOG_CAPACITY
from kit.daemon.events import PhonesChanged, Refused
from kit.testing.fakes import FakeKit
from tests.web.conftest import Phone, pair
from web.app import shutdown
from web.pairing import PairingStore

Frame = tuple[int | None, str, dict[str, Any]]


def frames(response: TestResponse) -> Iterator[Frame]:
    """Parse the stream as it arrives (each chunk the app yields is whole frames)."""
    for chunk in response.response:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for block in text.split("\n\n"):
            if not block.strip():
                continue
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            if "retry" in fields:
                yield None, "retry", {"ms": int(fields["retry"])}
                continue
            ident = int(fields["id"]) if "id" in fields else None
            yield ident, fields["event"], json.loads(fields["data"])


def stream(phone: Phone, **headers: str) -> TestResponse:
    query = headers.pop("query", "")
    return phone.client.get(f"/api/events{query}", headers=headers, buffered=False)


def test_events_after_the_phones_last_id(phone: Phone, kit: FakeKit) -> None:
    for n in range(5):
        kit.events.publish(Refused(str(n)))
    r = stream(phone, query="?after=3")
    assert r.status_code == 200
    assert r.mimetype == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-store"
    got = frames(r)
    assert next(got) == (None, "retry", {"ms": 2000})
    assert next(got) == (4, "refused", {"reason": "3"})
    assert next(got) == (5, "refused", {"reason": "4"})
    kit.events.publish(Refused("recording"))
    assert next(got) == (6, "refused", {"reason": "recording"})
    r.close()


def test_last_event_id_wins_over_the_query(phone: Phone, kit: FakeKit) -> None:
    for n in range(5):
        kit.events.publish(Refused(str(n)))
    r = stream(phone, query="?after=1", **{"Last-Event-ID": "4"})
    got = frames(r)
    next(got)
    assert next(got) == (5, "refused", {"reason": "4"})
    r.close()


def test_a_quiet_stream_sends_heartbeats_without_ids(phone: Phone, kit: FakeKit) -> None:
    kit.events.publish(PhonesChanged())
    r = stream(phone, query="?after=1")
    got = frames(r)
    next(got)
    assert next(got) == (None, "heartbeat", {"event_id": 1})
    r.close()


def test_a_phone_too_far_behind_is_told_to_resync(phone: Phone, kit: FakeKit) -> None:
    for n in range(EVENT_LOG_CAPACITY + 5):  # more than the log keeps
        kit.events.publish(Refused(str(n)))
    r = stream(phone, query="?after=2")
    got = frames(r)
    next(got)
    assert next(got) == (EVENT_LOG_CAPACITY + 5, "resync", {})
    r.close()


def test_ids_from_before_a_restart_resync(phone: Phone, kit: FakeKit) -> None:
    kit.events.publish(PhonesChanged())
    r = stream(phone, **{"Last-Event-ID": "900"})
    got = frames(r)
    next(got)
    assert next(got) == (1, "resync", {})
    kit.events.publish(Refused(str(1)))
    assert next(got) == (2, "refused", {"reason": "1"})
    r.close()


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "9" * 19])
def test_a_bad_last_event_id_is_400(phone: Phone, value: str) -> None:
    r = phone.get("/api/events", headers={"Last-Event-ID": value})
    assert r.status_code == 400
    assert "error" in (r.json or {})
    assert phone.get(f"/api/events?after={value}").status_code == 400


def test_a_revoked_phones_stream_ends(app: Flask, pairing: PairingStore) -> None:
    a, b = pair(app, pairing, "A"), pair(app, pairing, "B")
    r = stream(a)
    got = frames(r)
    next(got)
    b.delete(f"/api/phones/{a.id}")
    # The revocation is itself an event, and then the stream is over.
    assert [kind for _, kind, _ in got] in (["phones"], [])


def test_a_phone_keeps_at_most_two_streams(phone: Phone, app: Flask) -> None:
    streams = app.extensions["kit"].streams
    first, second = stream(phone), stream(phone)
    assert streams.count() == 2
    third = stream(phone)
    assert streams.count() == 2
    assert list(frames(first)) == [(None, "retry", {"ms": 2000})]  # ended at once
    for r in (second, third):
        r.close()
    assert streams.count() == 0


def test_the_kit_refuses_streams_beyond_its_limit(kit: FakeKit, pairing: PairingStore) -> None:
    app = kit.app(pairing, {"TESTING": True, "KIT_MAX_STREAMS": 2})
    phones = [pair(app, pairing, name) for name in "ABC"]
    open_ = [stream(phones[0]), stream(phones[1])]
    r = stream(phones[2])
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    assert r.json == {"error": "too many live connections"}
    for s in open_:
        s.close()
    ok = stream(phones[2])
    assert ok.status_code == 200
    ok.close()


def test_shutdown_ends_the_streams(phone: Phone, app: Flask) -> None:
    r = stream(phone)
    got = frames(r)
    next(got)
    shutdown(app)
    assert [kind for _, kind, _ in got] in (["heartbeat"], [])


def test_a_phone_with_two_tabs_makes_room_for_another_phone(
    kit: FakeKit, pairing: PairingStore
) -> None:
    app = kit.app(pairing, {"TESTING": True, "KIT_MAX_STREAMS": 4})
    a, b, c = (pair(app, pairing, name) for name in "ABC")
    open_ = [stream(a), stream(a), stream(b), stream(b)]  # two phones, two tabs each: full
    r = stream(c)
    assert r.status_code == 200  # the third phone is not locked out
    streams = app.extensions["kit"].streams
    assert streams.count() == 4
    assert list(frames(open_[0])) == [(None, "retry", {"ms": 2000})]  # A's oldest tab ended
    for s in [*open_, r]:
        s.close()


def test_head_holds_no_stream(phone: Phone, app: Flask) -> None:
    for _ in range(10):
        r = phone.client.head("/api/events")
        assert r.status_code == 200
        assert r.mimetype == "text/event-stream"
    assert app.extensions["kit"].streams.count() == 0
