"""Issue #14 against the whole product: ``kit run --simulate`` on a free port, a phone
speaking its HTTP API. Defects 1 (one process per data directory), 3 (idle connections),
5 (late taps and the film), 6 (a tap's delay reaching before its take), 7 (the cut after
a recovery), 9 (HEAD and the stream cap on the real server), 10 (re-cut requests) and
12 (moving a tag while recording)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from kit.bench.siege import stranger_connections
from kit.store import layout
from kit.testing.kits import consent_args, privacy_env
from kit.testing.launch import KitProcess, RunningKit, stored_takes
from kit.testing.phone import HttpPhone
from tests.torture.helpers import (
    KIT,
    SMALL,
    call,
    events_between,
    film_tag_ids,
    is_recording,
    one_line_error,
    start_take,
    state,
    tag,
    wait_for,
)

pytestmark = pytest.mark.slow


@dataclass
class Live:
    """A running kit with a paired phone and an open visit."""

    kit: RunningKit
    phone: HttpPhone
    visit_id: str

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.kit.url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with KitProcess(tmp_path / "data", *SMALL) as process:
        kit = process.wait_ready()
        phone = HttpPhone(kit.url, kit.code)
        yield Live(kit, phone, phone.start_visit("F-0014")["id"])


def _new_phone(live: Live, name: str) -> HttpPhone:
    return HttpPhone(live.kit.url, live.kit.code, name=name)


# -- 1: one kit process per data directory ----------------------------------------------


def test_d1_second_kit_run_recover_record_on_a_data_dir_in_use_are_refused(live: Live) -> None:
    phone, data = live.phone, live.kit.data
    take_id = start_take(phone)["take_id"]
    time.sleep(1.5)
    take_dir = data / layout.take_dir(live.visit_id, take_id)
    raw = [data / layout.raw_video(layout.take_dir(live.visit_id, take_id))]
    raw.append(data / layout.raw_audio(layout.take_dir(live.visit_id, take_id)))
    assert all(p.is_file() for p in raw), sorted(take_dir.iterdir())
    env = {**os.environ, **privacy_env(data)}
    env.pop("NOTIFY_SOCKET", None)
    for argv in (
        ["recover", "--data", str(data)],
        ["run", "--simulate", *SMALL, "--data", str(data), "--port", "0"],
        ["record", "--simulate", *SMALL, "--seconds", "1", "--data", str(data), *consent_args()],
        ["cut", live.visit_id, "--data", str(data)],
    ):
        try:
            done = subprocess.run(
                [*KIT, *argv], capture_output=True, text=True, timeout=45, check=False, env=env
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"kit {argv[0]} was not refused: it ran beside the recording kit")
        assert not one_line_error(done, (1,)), (argv[0], one_line_error(done, (1,)))
        assert "kit: error:" in done.stderr, done.stderr[-1000:]
    # Nothing was touched: the take still records, its row and its raw streams are there.
    assert is_recording(phone)
    assert next(t for t in stored_takes(data) if t[0] == take_id)[2] == "recording"
    sizes = [p.stat().st_size for p in raw]
    time.sleep(1.2)
    assert [p.stat().st_size for p in raw] > sizes  # still growing: still recorded into
    assert phone.call("POST", "/api/stop")[0] == 202
    wait_for(
        lambda: (
            phone.get(f"/api/visits/{live.visit_id}")["takes"][0]["state"]
            not in ("recording", "finalising")
        ),
        30,
        "the take's film",
    )
    takes = phone.get(f"/api/visits/{live.visit_id}")["takes"]
    assert [(t["state"], t["recovered"]) for t in takes] == [("ready", False)]
    assert takes[0]["duration_s"] > 3.0  # nothing was finalised from under the recording


# -- 3: idle connections from an unpaired device ----------------------------------------


def test_d3_a_paired_phones_tag_answers_quickly_with_110_idle_connections_open(
    live: Live,
) -> None:
    start_take(live.phone)
    idle: list[socket.socket] = []
    try:
        # From addresses of the stranger's own (the kit holds 64 from one, web.server).
        for n, s in enumerate(stranger_connections(live.address, 110, timeout_s=5)):
            if n % 2:  # half of them trickle a header that never ends
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            idle.append(s)
        time.sleep(1.0)
        for s in idle[1::2]:
            s.sendall(b"a")
        began = time.monotonic()
        status, body = tag(live.phone, "tap-under-siege-1")
        took = time.monotonic() - began
        assert status == 201, body
        assert took < 3.0, f"the tag took {took:.1f} s"
    finally:
        for s in idle:
            s.close()


# -- 5: a tap made before Stop, sent while the take finalises or is cut ----------------


def test_d5_late_tap_joins_the_stopped_take_and_the_film_is_recut_with_it(live: Live) -> None:
    phone = live.phone
    take_id = start_take(phone)["take_id"]
    time.sleep(1.0)
    assert tag(phone, "in-take-tap")[0] == 201
    time.sleep(3.0)
    stop_sent = time.monotonic()
    assert phone.call("POST", "/api/stop")[0] == 202
    wait_for(lambda: not is_recording(phone), 15, "the take to stop")

    def late(tag_id: str) -> tuple[int, Any]:
        # Tapped 1 s before Stop was pressed, sent now (the page's retry after a drop).
        delay_ms = (time.monotonic() - stop_sent + 1.0) * 1000
        return tag(phone, tag_id, delay_ms=delay_ms, label="Being attentive")

    acknowledged = {"in-take-tap"}
    status, body = late("late-while-finalising")
    assert status == 201, body  # not 409: the page would drop the tap
    assert body["tag"]["take_id"] == take_id
    acknowledged.add("late-while-finalising")

    # One sent while the film is being cut, if the cut is slow enough to catch.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if state(phone)["status"]["state"] == "cutting":
            status, body = late("late-while-cutting")
            assert status == 201, body
            assert body["tag"]["take_id"] == take_id
            acknowledged.add("late-while-cutting")
            break
        if film_tag_ids(phone, live.visit_id) is not None:
            break
        time.sleep(0.05)
    wait_for(
        lambda: (
            state(phone)["status"]["state"] == "idle"
            and film_tag_ids(phone, live.visit_id) is not None
        ),
        60,
        "the first film",
    )
    status, body = late("late-after-the-cut")
    assert status == 201, body
    assert body["tag"]["take_id"] == take_id
    acknowledged.add("late-after-the-cut")
    wait_for(
        lambda: film_tag_ids(phone, live.visit_id) == acknowledged,
        60,
        f"a film holding every acknowledged tag {sorted(acknowledged)}",
    )


# -- 6: a tap's delay cannot reach before its take -------------------------------------


def test_d6_delay_ms_600000_never_backdates_a_tag_before_its_take(live: Live) -> None:
    status = start_take(live.phone)
    started_ns = status["started_ns"]
    assert isinstance(started_ns, int)
    code, body = tag(live.phone, "backdated-10-min", delay_ms=600_000)
    assert code in (201, 400), (code, body)
    if code == 201:
        assert body["tag"]["at_ns"] >= started_ns, (body["tag"]["at_ns"], started_ns)
        assert body["tag"]["take_id"] == status["take_id"]
        seen = live.phone.get(f"/api/visits/{live.visit_id}")
        take_s = {t["id"]: t["take_s"] for t in seen["tags"]}["backdated-10-min"]
        assert take_s is None or take_s >= 0
    too_late = tag(live.phone, "backdated-10-min-1ms", delay_ms=600_001)
    assert too_late[0] == 400, too_late


# -- 7: a recovered take gets its film without "Make the film again" ------------------


def test_d7_after_recovery_on_start_the_cut_is_made_by_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = KitProcess(data, *SMALL)
    try:
        kit = first.wait_ready()
        phone = HttpPhone(kit.url, kit.code)
        visit_id = phone.start_visit("F-0007")["id"]
        start_take(phone)
        time.sleep(1.0)
        assert tag(phone, "before-the-crash")[0] == 201
        time.sleep(2.5)  # well inside what reached the card
    finally:
        first.kill()
    with KitProcess(data, *SMALL) as second:
        kit = second.wait_ready()
        phone = HttpPhone(kit.url, kit.code, name="after the crash")
        takes = phone.get(f"/api/visits/{visit_id}")["takes"]
        assert [(t["state"], t["recovered"]) for t in takes] == [("ready", True)]
        # No recut is asked for: the kit makes the film of what it recovered by itself.
        wait_for(
            lambda: film_tag_ids(phone, visit_id) == {"before-the-crash"},
            60,
            "the recovered take's film",
        )


# -- 8: hostile input on the daemon's own server (waitress, not the test client) -------


def _raw(live: Live, request: bytes) -> int:
    """Send ``request`` as it is; the status of the answer."""
    with socket.create_connection(live.address, timeout=10) as s:
        s.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def test_d8_hostile_input_on_the_real_server_is_4xx(live: Live) -> None:
    cookie = live.phone.cookie.encode()
    for host in (b"a" * 64, b"a" * 64 + b".example", b"x" * 400):
        for path in (b"/", b"/pair", b"/api/state"):
            request = (
                b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
            )
            status = _raw(live, request)
            assert 400 <= status < 500, (host[:20], path, status)
    superscript = "²".encode()
    for request in (
        b"GET /api/preview.jpg?after=%C2%B2 HTTP/1.1\r\n",
        b"GET /api/events HTTP/1.1\r\nLast-Event-ID: " + superscript + b"\r\n",
    ):
        status = _raw(
            live,
            request + b"Host: 127.0.0.1\r\nCookie: " + cookie + b"\r\nConnection: close\r\n\r\n",
        )
        assert status == 400, (request, status)
    assert call(live.phone, "GET", "/api/state")[0] == 200


# -- 9: HEAD on the event stream, and the stream cap, on the daemon's own server --------


def _open_stream(phone: HttpPhone) -> tuple[http.client.HTTPConnection, int]:
    conn = http.client.HTTPConnection(phone.host, timeout=10)
    conn.request("GET", "/api/events", headers={"Cookie": phone.cookie})
    r = conn.getresponse()
    if r.status == 200:
        assert r.readline().startswith(b"retry:")
    return conn, r.status


def test_d9_head_holds_nothing_and_three_phones_with_two_tabs_leave_room_for_a_fourth(
    live: Live,
) -> None:
    for _ in range(12):
        conn = http.client.HTTPConnection(live.phone.host, timeout=10)
        conn.request("HEAD", "/api/events", headers={"Cookie": live.phone.cookie})
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        conn.close()
    phones = [live.phone, *(_new_phone(live, f"Phone {n}") for n in (2, 3, 4))]
    held: list[http.client.HTTPConnection] = []
    try:
        for p in phones[:3]:
            for _ in range(2):
                conn, status = _open_stream(p)
                held.append(conn)
                assert status == 200
        conn, status = _open_stream(phones[3])
        held.append(conn)
        assert status == 200, "the fourth phone was refused a live stream"
        assert call(phones[3], "GET", "/api/state", timeout_s=5)[0] == 200
    finally:
        for conn in held:
            conn.close()


# -- 10: re-cut requests coalesce, and the kit says it is cutting ----------------------


def test_d10_a_hundred_recut_requests_coalesce(live: Live) -> None:
    phone = live.phone
    start_take(phone)
    time.sleep(1.0)
    assert tag(phone, "recut-me")[0] == 201
    time.sleep(1.5)
    assert phone.call("POST", "/api/stop")[0] == 202
    wait_for(
        lambda: (
            state(phone)["status"]["state"] == "idle"
            and film_tag_ids(phone, live.visit_id) == {"recut-me"}
        ),
        60,
        "the first film",
    )
    before = state(phone)["event_id"]
    began = time.monotonic()
    for _ in range(100):
        status, body = call(phone, "POST", f"/api/visits/{live.visit_id}/recut")
        assert status == 202, body
    sent_s = time.monotonic() - began
    wait_for(
        lambda: (
            state(phone)["status"]["state"] == "idle"
            and film_tag_ids(phone, live.visit_id) is not None
        ),
        60,
        "the cuts to end",
    )
    time.sleep(2.0)  # a queued cut would start now
    last = state(phone)
    assert last["status"]["state"] == "idle", last["status"]
    events = events_between(phone, before, last["event_id"])
    cuts = [e for e in events if e["kind"] == "cut" and e["data"]["visit_id"] == live.visit_id]
    assert 1 <= len(cuts) <= 2, f"{len(cuts)} cuts for 100 requests sent in {sent_s:.1f} s"
    # While each cut ran, the kit said so: the last status before its end was "cutting".
    for cut in cuts:
        statuses = [e for e in events if e["kind"] == "status" and e["id"] < cut["id"]]
        assert statuses and statuses[-1]["data"]["state"] == "cutting", statuses[-1:]


# -- 12a: moving a tag while recording works as web/API.md says ------------------------


def test_d12_moving_a_tag_while_recording_works_as_documented(live: Live) -> None:
    phone = live.phone
    started_ns = start_take(phone)["started_ns"]
    time.sleep(1.0)
    status, body = tag(phone, "move-me-live")
    assert status == 201, body
    at_ns = body["tag"]["at_ns"]
    status, body = call(phone, "PATCH", "/api/tags/move-me-live", {"nudge_ms": -300})
    assert status == 200, (status, body)
    assert body["tag"]["at_ns"] == at_ns - 300_000_000
    status, body = call(phone, "PATCH", "/api/tags/move-me-live", {"at_ns": started_ns + 10**8})
    assert status == 200, (status, body)
    assert body["tag"]["at_ns"] == started_ns + 10**8
    status, body = call(phone, "PATCH", "/api/tags/move-me-live", {"at_ns": started_ns - 10**9})
    assert status == 400, (status, body)  # outside its take: refused, as documented


def test_d1_kill_leaves_no_lock(tmp_path: Path) -> None:
    """The lock of defect 1 dies with its holder: a kit killed -9 does not lock out the next."""
    data = tmp_path / "data"
    first = KitProcess(data, *SMALL)
    first.wait_ready()
    first.kill()
    assert first.proc.returncode == -signal.SIGKILL
    with KitProcess(data, *SMALL) as second:
        second.wait_ready()
