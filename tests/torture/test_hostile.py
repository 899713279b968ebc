"""Issue #14, must-show 6: hostile input over every route and every auth state.

In-process (Flask's test client on a fake kit over the real library), the number of
requests ``KIT_HOSTILE_REQUESTS`` says (default 10,000, about 1.5 minutes; 2000 for a
quicker run): each route of tests/web/test_gate.py's ROUTES in each auth state of
tests/torture/hostile.py, plainly; then every body field of every route at every edge
(tests/torture/hostile.py's ``edge_sweep``); then the rest drawn by Hypothesis, each
request wrong in one to three ways. Every answer must be below 500, carry no traceback
and no byte of a file outside what the app serves; the log must hold no ERROR with a
traceback; a file outside the data directory is never even opened; and a paired phone
still gets its state afterwards.

Live (``kit run --simulate`` over real sockets, marked slow): a sample of the same
generated requests, then malformed HTTP (bad request lines, huge headers, chunked and
lying bodies, slowloris), with the same checks and the daemon's stderr free of
tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kit.bench.siege import stranger_connections
from kit.testing.launch import KitProcess
from tests.torture.edges import TRAVERSALS
from tests.torture.helpers import SMALL, call
from tests.torture.hostile import (
    AUTH_STATES,
    FUZZ_AUTH,
    Fuzz,
    Hostile,
    Route,
    edge_sweep,
    every_combination,
    plain,
    routes,
)
from tests.torture.live import LiveTarget, make_live_target
from tests.torture.rawhttp import MALFORMED, exchange, fits
from tests.torture.target import (
    NEVER_SERVED,
    TRACEBACK,
    Tally,
    Target,
    make_target,
    send_in_process,
)

REQUESTS = int(os.environ.get("KIT_HOSTILE_REQUESTS", "10000"))
FUZZ = settings(
    max_examples=REQUESTS,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # failures are collected, not raised: nothing to shrink
    suppress_health_check=list(HealthCheck),
)


# -- files opened while the app answers ----------------------------------------------------

_watched: set[str] = set()
_opened: list[str] = []
_watch_lock = threading.Lock()
_hooked: list[bool] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _watched or not args:
        return
    name = args[0]
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if isinstance(name, str) and os.path.abspath(name) in _watched:
        with _watch_lock:
            _opened.append(name)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    made = make_target(tmp_path)
    try:
        yield made
    finally:
        made.close()


def _watching(paths: list[Path]) -> None:
    """Note every open() of ``paths`` (and the system's password files) from now on."""
    if not _hooked:
        sys.addaudithook(_audit)  # never removed: it does nothing while nothing is watched
        _hooked.append(True)
    _watched.clear()
    _opened.clear()
    _watched.update(os.path.abspath(p) for p in paths)
    _watched.add("/etc/passwd")
    _watched.add("/etc/shadow")


def _tracebacks_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.exc_info
    ]


def _paired_phone_still_served(target: Target) -> None:
    target.tend()  # the fuzz may have revoked the phone with its own token: that is allowed
    r = target.client.get("/api/state", headers=target.creds.headers("paired"))
    assert r.status_code == 200, r.data[:300]
    assert r.get_json()["phone"]["id"] == target.good_id
    r.close()


def test_hostile_requests_over_every_route_and_auth_state(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    tally = Tally()
    _watching(target.outside_files())
    for route, auth in every_combination():  # each once, plainly, with real ids first
        send(tally, target, plain(target.known, route, auth))
        target.tend()

    for request in edge_sweep(target.known):  # every body field at every edge
        if request.route == "POST /api/tags":
            target.kit.recording.start()  # tags are taken while a take records
        send(tally, target, request)
        target.tend()
    fuzz = [Fuzz(target.known)]

    @settings(FUZZ, max_examples=max(REQUESTS - tally.sent, 100))
    @given(route=st.sampled_from(routes()), auth=st.sampled_from(FUZZ_AUTH), data=st.data())
    def attack(route: Route, auth: str, data: st.DataObject) -> None:
        send(tally, target, fuzz[0].draw(data, route, auth))
        if tally.sent % 50 == 0 and target.tend():
            fuzz[0] = Fuzz(target.known)  # a new open visit: the same draws, its ids

    try:
        attack()
    finally:
        _watched.clear()
    print(tally.summary())
    assert tally.sent >= REQUESTS, tally.summary()
    assert set(tally.routes) == {r.name for r in routes()}
    assert set(tally.auths) == set(AUTH_STATES)
    assert not tally.failures, "\n".join(tally.failures[:40])
    assert not _opened, f"files outside the data directory were opened: {sorted(set(_opened))}"
    assert not _tracebacks_logged(caplog), _tracebacks_logged(caplog)[:10]
    _paired_phone_still_served(target)


def send(tally: Tally, target: Target, request: Hostile) -> None:
    """Send ``request`` in-process and judge the answer; anything raised is a finding."""
    began = time.perf_counter()
    try:
        answer = send_in_process(target, request)
    except Exception as exc:
        tally.sent += 1
        tally.failures.append(f"raised {exc!r} <- {request.brief()}")
        return
    tally.add(request, answer, time.perf_counter() - began)


@pytest.mark.parametrize(
    "prefix", ["/media/{visit}/", "/media/{visit}/stills/", "/media/{visit}/takes/", "/static/"]
)
def test_no_media_or_static_path_reads_outside_what_is_served(
    target: Target, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every traversal of tests/torture/hostile.py on the file routes, for each visit (open,
    sealed) with the paired phone: a 4xx (or a redirect), and no byte of anything else."""
    caplog.set_level(logging.WARNING)
    _watching(target.outside_files())
    failures = []
    try:
        for visit in [*target.known.visits, "..", "%2e%2e"]:
            for name in TRAVERSALS:
                for suffix in ("", ".mp4", ".jpg", "%00.mp4"):
                    path = prefix.format(visit=visit) + name + suffix
                    request = Hostile("GET /media", "GET", path, "", "paired", (), None)
                    answer = send_in_process(target, request)
                    if not 300 <= answer.status < 500:
                        failures.append(f"{path}: {answer.status}")
                    for marker in NEVER_SERVED:
                        if marker in answer.body:
                            failures.append(f"{path}: served {marker!r}")
    finally:
        _watched.clear()
    assert not failures, failures[:20]
    assert not _opened, sorted(set(_opened))
    assert not _tracebacks_logged(caplog)


@pytest.mark.parametrize("origin", ["http://[x", "http://[::1", "http://]", "https://[zz]:80"])
def test_an_origin_that_is_not_a_url_is_a_403_not_a_500(target: Target, origin: str) -> None:
    """Found by the fuzz: ``urlsplit`` raises ValueError ("Invalid IPv6 URL") on an Origin
    with an unclosed bracket, which web/app.py's _same_origin let escape as a 500, before
    the pairing gate (so to strangers too). Such a request is refused as cross-site."""
    for auth in ("paired", "none"):
        request = Hostile(
            "POST /api/start", "POST", "/api/start", "", auth, (("Origin", origin),), None
        )
        answer = send_in_process(target, request)
        assert answer.status == 403, (auth, answer.status, answer.body[:200])
        assert b"cross-site" in answer.body


@pytest.mark.parametrize("seconds", [1e300, 1e308, 1.7976931348623157e308])
def test_seconds_into_a_take_too_big_for_nanoseconds_are_a_400_not_a_500(
    target: Target, seconds: float
) -> None:
    """Found by the edge sweep: a finite number of seconds whose nanoseconds overflow a
    float (``round(1e300 * 1e9)``: OverflowError) escaped web/views/visits.py as a 500,
    in a tag placed after the fact (``take_s``) and a moment's trim (``start_s``,
    ``end_s``). It lies outside any take: the 400 the views give a time past the take."""
    known = target.known
    visit, take, moment = known.visits[0], known.takes[0], known.moments[0]
    bodies = [
        (
            f"/api/visits/{visit}/tags",
            "POST",
            {"id": "late0001", "take_id": take, "label": "Guiding", "take_s": seconds},
        ),
        (f"/api/visits/{visit}/moments/{moment}", "PATCH", {"start_s": seconds}),
        (f"/api/visits/{visit}/moments/{moment}", "PATCH", {"end_s": seconds}),
    ]
    for path, method, body in bodies:
        request = Hostile(
            "edge",
            method,
            path,
            "",
            "paired",
            (("Content-Type", "application/json"),),
            json.dumps(body).encode(),
        )
        answer = send_in_process(target, request)
        assert answer.status == 400, (path, body, answer.status, answer.body[:200])
        assert b"outside" in answer.body or b"inside" in answer.body, answer.body


# -- the same against the real daemon, over raw sockets ---------------------------------------

LIVE_REQUESTS = int(os.environ.get("KIT_HOSTILE_LIVE_REQUESTS", "600"))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTarget]:
    with KitProcess(tmp_path_factory.mktemp("live") / "data", *SMALL) as process:
        yield make_live_target(process.wait_ready())


def _daemon_log_is_clean(live: LiveTarget) -> None:
    text = live.kit.process.text
    assert "Traceback" not in text, text[text.index("Traceback") - 300 :][:3000]
    errors = [line for line in live.kit.log if " ERROR " in line and "kit.web" in line]
    assert not errors, errors[:10]


def _judge_live(tally: Tally, live: LiveTarget, request: Hostile) -> None:
    began = time.perf_counter()
    try:
        answer = live.send(request)
    except OSError as exc:  # a timeout too: every well-formed request gets an answer
        tally.sent += 1
        tally.failures.append(f"no answer ({exc!r}) <- {request.brief()}")
        return
    if answer.status <= 0:
        tally.failures.append(f"the kit closed without an answer <- {request.brief()}")
    tally.add(request, answer, time.perf_counter() - began)


@pytest.mark.slow
def test_hostile_requests_on_the_live_kit(live: LiveTarget) -> None:
    """Each route in each auth state, then ``KIT_HOSTILE_LIVE_REQUESTS`` (600) generated
    requests, on waitress and the daemon's own app: nothing 5xx, no traceback anywhere."""
    tally = Tally()
    for n, (route, auth) in enumerate(every_combination()):
        _judge_live(tally, live, plain(live.known, route, auth))
        if n % 10 == 9:
            live.tend()
    live.tend()
    fuzz = Fuzz(live.known)

    @settings(FUZZ, max_examples=LIVE_REQUESTS)
    @given(route=st.sampled_from(routes()), auth=st.sampled_from(FUZZ_AUTH), data=st.data())
    def attack(route: Route, auth: str, data: st.DataObject) -> None:
        _judge_live(tally, live, fuzz.draw(data, route, auth))
        if tally.sent % 25 == 0:
            live.tend()

    attack()
    live.stop_recording()
    live.tend()
    print(tally.summary())
    assert tally.sent >= LIVE_REQUESTS, tally.summary()
    assert not tally.failures, "\n".join(tally.failures[:40])
    assert call(live.good, "GET", "/api/state")[0] == 200
    _daemon_log_is_clean(live)


@pytest.mark.slow
def test_malformed_http_on_the_live_kit(live: LiveTarget) -> None:
    auth = f"Cookie: kit_phone={live.creds.good_cookie}\r\nX-CSRF-Token: {live.creds.good_csrf}\r\n"
    wrong = []
    for name, (template, expected) in MALFORMED.items():
        data = template.replace(b"{auth}", auth.encode()).replace(
            b"{visit}", live.known.visits[1].encode()
        )
        try:
            answer = exchange(live.address, data, timeout_s=3.0 if expected == "none" else 15.0)
        except TimeoutError:
            if expected != "none":
                wrong.append(f"{name}: no answer")
            continue
        if expected == "none":
            if answer.status:
                wrong.append(f"{name}: answered {answer.status} to a request that never ends")
        elif not fits(expected, answer.status):
            wrong.append(f"{name}: {answer.status}, not {expected}: {answer.body[:200]!r}")
        if TRACEBACK.search(answer.body):
            wrong.append(f"{name}: a traceback in the answer")
    assert not wrong, wrong
    assert call(live.good, "GET", "/api/state")[0] == 200
    _daemon_log_is_clean(live)


@pytest.mark.slow
def test_slowloris_on_the_live_kit_does_not_slow_a_phone(live: LiveTarget) -> None:
    """60 connections send an unfinished header a byte at a time, 60 a body slower than
    its Content-Length promised, while the paired phone asks for its state twice a
    second: each answer within 2 s, and the kit's log stays clean."""
    port = live.address[1]
    slow: list[socket.socket] = []
    try:
        # From addresses of the stranger's own (the kit holds 64 from one, web.server).
        for n, s in enumerate(stranger_connections(live.address, 120, timeout_s=5)):
            if n % 2:
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: " % port)
            else:
                s.sendall(
                    b"POST /api/pair HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Kit-Pairing: 1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{" % port
                )
            slow.append(s)
        worst = 0.0
        for _ in range(12):
            for s in slow:
                s.sendall(b"a")
            began = time.monotonic()
            assert call(live.good, "GET", "/api/state", timeout_s=5)[0] == 200
            worst = max(worst, time.monotonic() - began)
            time.sleep(0.5)
        assert worst < 2.0, f"a phone waited {worst:.2f} s for its state"
    finally:
        for s in slow:
            s.close()
    _daemon_log_is_clean(live)
