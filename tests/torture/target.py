"""The kit the hostile requests of tests/torture/hostile.py attack in-process, and the
judge of its answers.

:func:`make_target` lays out a fake kit (kit.testing.fakes, over the real library, on a
real data directory) with something behind every route: a sealed visit, an open one
with takes, tags, a rough cut with stills, a paired phone and a revoked one, a pairing
store inside the data directory as the daemon keeps it, and a file just outside it
that no request may read. :func:`problems` says what is wrong with an answer.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from kit.clock import FakeClock
from kit.store import layout
from kit.testing.fakes import FakeKit, jpeg_frames, placeholder_film
from kit.visits.moments import moments_of
from tests.torture.hostile import Hostile, Known
from web.pairing import PairingStore

# What must never come back: an outside file, the kit's databases, keys, a traceback.
OUTSIDE_MARKER = b"outside-the-data-dir-7f3a91"
NEVER_SERVED = (
    OUTSIDE_MARKER,
    b"SQLite format 3",
    b"root:x:0:0",
    b"AGE-SECRET-KEY",
    b"-----BEGIN",
)
DECOYS = ("outside.txt", layout.DATABASE, layout.PAIRING_DATABASE, layout.SIGNING_KEY)
TRACEBACK = re.compile(rb"Traceback \(most recent call last\)|File \"/[^\"]+\", line \d+")


@dataclass
class Creds:
    """The cookies and tokens the auth states send."""

    good_cookie: str
    good_csrf: str
    revoked_cookie: str
    revoked_csrf: str

    def headers(self, auth: str, junk: str = "") -> list[tuple[str, str]]:
        """The headers of auth state ``auth`` (with its ``junk``, for those that send some)."""
        good = ("Cookie", f"kit_phone={self.good_cookie}")
        if auth == "none":
            return []
        if auth == "bad_cookie":
            return [("Cookie", f"kit_phone={junk}")]
        if auth == "paired_no_csrf":
            return [good, *([("X-CSRF-Token", junk)] if junk else [])]
        if auth == "revoked":
            revoked = ("Cookie", f"kit_phone={self.revoked_cookie}")
            return [revoked, ("X-CSRF-Token", self.revoked_csrf)]
        paired = [good, ("X-CSRF-Token", self.good_csrf)]
        if auth == "cross_site":
            cross = ("Sec-Fetch-Site", "cross-site") if junk else ("Origin", "http://evil.example")
            return [*paired, cross]
        return paired

    def for_request(self, request: Hostile) -> list[tuple[str, str]]:
        auth, _, junk = request.auth.partition(":")
        return [*self.headers(auth, junk), *request.headers]


@dataclass
class Target:
    """A fake kit with something behind every route; its app and a test client."""

    kit: FakeKit
    pairing: PairingStore
    app: Flask
    client: FlaskClient
    creds: Creds
    known: Known
    good_id: str
    revoked_id: str
    data: Path
    outside: Path
    shape: dict[str, int] = field(default_factory=dict)  # how many ids the open visit has

    def close(self) -> None:
        self.pairing.close()
        self.kit.close()

    def tend(self) -> bool:
        """Put back what the fuzz may have changed that the requests rely on: the paired
        phone paired, the revoked one revoked, and the open visit of :attr:`known` open
        (else a new one like it, whose ids replace the old ones in :attr:`known`, in the
        same places: strategies built on it draw the same way). Whether the ids changed."""
        if not self.pairing.is_paired(self.good_id):
            self.pairing.restore(self.good_id)
        if self.pairing.is_paired(self.revoked_id):
            self.pairing.revoke(self.revoked_id)
        kit, known = self.kit, self.known
        now_open = kit.visits.open_visit()
        if now_open is not None and now_open.id == known.visits[0]:
            return False
        kit.recording.stop()
        if now_open is not None:
            kit.visits.end_visit(now_open.id)
        kit.recording.cut_if_due()
        fresh = _lived_in_visit(kit, self.data)
        for name in ("takes", "tags", "moments", "names"):
            old, new = getattr(known, name), getattr(fresh, name)
            assert len(new) == self.shape[name], (name, old, new)  # the visit is made alike
            old[: len(new)] = new
        known.visits[0] = fresh.visits[0]
        return True

    def outside_files(self) -> list[Path]:
        """Files beside the data directory that no request may even open."""
        return [self.outside.parent / name for name in DECOYS]


def _pair(client: FlaskClient, code: str, name: str) -> tuple[str, str, str]:
    r = client.post("/api/pair", json={"code": code, "name": name}, headers={"X-Kit-Pairing": "1"})
    assert r.status_code == 201, r.data
    cookie = r.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    phone = r.get_json()["phone"]
    r.close()
    return cookie, phone["csrf"], phone["id"]


def _lived_in_visit(kit: FakeKit, data: Path) -> Known:
    """A new open visit with two takes, tags and a rough cut with stills; its ids."""
    visit = kit.open_visit("F-open")
    kit.record(20.0, [(2.0, "Guiding"), (8.0, "Better than usual ★"), (15.0, "Guiding")])
    kit.recording.cut_if_due()
    kit.record(6.0, [(1.0, "Guiding")])
    kit.recording.cut_if_due()
    cut = data / layout.cut_dir(visit.id)
    names = sorted(str(p.relative_to(cut)) for p in cut.rglob("*") if p.is_file())
    return Known(
        visits=[visit.id],
        takes=[t.id for t in kit.visits.takes(visit.id)],
        tags=[t.id for t in kit.visits.tags(visit.id)],
        phones=[],
        moments=[m.moment_id for m in moments_of(kit.visits).moments(visit.id)],
        names=[*names, "rough-cut.mp4", "chapters.vtt"],
        code="",
        key="",
    )


def make_target(tmp: Path) -> Target:
    """The fake kit the in-process fuzz attacks, laid out like a real kit's data dir."""
    data = tmp / "data"
    outside = tmp / DECOYS[0]
    for name in DECOYS:  # where "../x" from the data directory, or its cut, would land
        (tmp / name).write_bytes(OUTSIDE_MARKER)
    kit = FakeKit(data, FakeClock(), preview=jpeg_frames(3), film=placeholder_film)
    sealed = kit.open_visit("F-sealed")
    kit.record(14.0, [(3.0, "Guiding"), (9.0, "Being attentive")])
    kit.seal(sealed.id)
    lived_in = _lived_in_visit(kit, data)
    pairing = PairingStore(data / layout.PAIRING_DATABASE)
    app = kit.app(pairing, {"KIT_DATA_DIR": str(data), "KIT_HEARTBEAT_S": 0.05})
    client = app.test_client(use_cookies=False)
    good_cookie, good_csrf, good_id = _pair(client, pairing.code, "Sam")
    revoked_cookie, revoked_csrf, revoked_id = _pair(client, pairing.code, "Gone")
    pairing.revoke(revoked_id)
    known = Known(
        visits=[*lived_in.visits, sealed.id],
        takes=[*lived_in.takes, *(t.id for t in kit.visits.takes(sealed.id))],
        tags=[*lived_in.tags, *(t.id for t in kit.visits.tags(sealed.id))],
        phones=[good_id, revoked_id],
        moments=lived_in.moments,
        names=lived_in.names,
        code=pairing.code,
        key=pairing.key,
        labels=kit.visits.labels(),
    )
    creds = Creds(good_cookie, good_csrf, revoked_cookie, revoked_csrf)
    shape = {name: len(getattr(lived_in, name)) for name in ("takes", "tags", "moments", "names")}
    return Target(
        kit, pairing, app, client, creds, known, good_id, revoked_id, data, outside, shape
    )


@dataclass
class Answer:
    """What came back: the status, the body (an event stream's first chunk), its type."""

    status: int
    body: bytes
    content_type: str = ""


def send_in_process(target: Target, request: Hostile) -> Answer:
    """``request`` through Flask's test client (an event stream: its first chunk only)."""
    response = target.client.open(
        request.path,
        method=request.method,
        query_string=request.query,
        headers=target.creds.for_request(request),
        data=request.body,
        buffered=False,
    )
    try:
        kind = response.headers.get("Content-Type", "")
        if kind.startswith("text/event-stream"):
            first = next(iter(response.response), b"")
            body = first if isinstance(first, bytes) else str(first).encode()
        else:
            body = response.get_data()
        return Answer(response.status_code, body, kind)
    finally:
        response.close()


def problems(request: Hostile, answer: Answer) -> list[str]:
    """Why ``answer`` is not an acceptable answer to ``request`` (empty when it is)."""
    found = []
    if answer.status >= 500:
        found.append(f"{answer.status}: {answer.body[:300]!r}")
    if TRACEBACK.search(answer.body):
        found.append(f"a traceback in the body: {answer.body[:300]!r}")
    found.extend(f"served {marker!r}" for marker in NEVER_SERVED if marker in answer.body)
    files = request.path.startswith("/media/") or request.route.endswith("bundle.tar")
    hostile_param = any(_is_hostile(v) for _, v in request.params)
    if files and hostile_param and 200 <= answer.status < 300 and answer.body:
        found.append(f"a file route with a hostile parameter answered {answer.status}")
    return [f"{p} <- {request.brief()}" for p in found]


def _is_hostile(value: str) -> bool:
    return ".." in value or "%" in value or value.startswith("/") or "\\" in value


@dataclass
class Tally:
    """What a run sent and got back."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    auths: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, request: Hostile, answer: Answer, seconds: float = 0.0) -> None:
        self.sent += 1
        self.statuses[answer.status] += 1
        self.routes[request.route] += 1
        self.auths[request.auth.partition(":")[0]] += 1
        self.seconds[request.route] = self.seconds.get(request.route, 0.0) + seconds
        self.failures.extend(problems(request, answer))

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        top = sorted(self.seconds.items(), key=lambda item: -item[1])[:3]
        slowest = ", ".join(f"{r} {s:.1f} s" for r, s in top)
        return (
            f"{self.sent} hostile requests over {len(self.routes)} routes and "
            f"{len(self.auths)} auth states; statuses {statuses}; "
            f"failures {len(self.failures)}; slowest routes: {slowest}"
        )
