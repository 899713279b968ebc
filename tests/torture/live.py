"""The hostile requests of tests/torture/hostile.py against a real ``kit run --simulate``,
over raw sockets: a kit with a sealed visit and an open one with a take, tags and a
rough cut; a paired phone, a revoked one, and an admin phone no request names, which
puts back what the requests undo."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from kit.store import layout
from kit.testing.launch import RunningKit
from kit.testing.phone import HttpPhone
from tests.torture.helpers import film_tag_ids, is_recording, start_take, tag, wait_for
from tests.torture.hostile import Hostile, Known
from tests.torture.rawhttp import Raw, exchange, wire
from tests.torture.target import Answer, Creds


@dataclass
class LiveTarget:
    """A running kit made ready for the hostile requests."""

    kit: RunningKit
    admin: HttpPhone
    good: HttpPhone
    gone: HttpPhone
    good_id: str
    gone_id: str
    creds: Creds
    known: Known

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.kit.url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port

    def send(self, request: Hostile, *, timeout_s: float = 15.0) -> Answer:
        data = wire(request, f"127.0.0.1:{self.address[1]}", self.creds.for_request(request))
        raw: Raw = exchange(self.address, data, timeout_s=timeout_s)
        return Answer(raw.status, raw.body, raw.headers.get("content-type", ""))

    def tend(self) -> None:
        """The paired phone paired, the revoked one revoked, a visit open."""
        phones = {p["id"]: p for p in self.admin.get("/api/phones")["phones"]}
        if phones[self.good_id]["revoked"]:
            assert self.admin.call("POST", f"/api/phones/{self.good_id}/restore")[0] == 200
        if not phones[self.gone_id]["revoked"]:
            assert self.admin.call("DELETE", f"/api/phones/{self.gone_id}")[0] == 200
        if self.admin.get("/api/state")["visit"] is None:
            self.admin.start_visit("F-again")

    def stop_recording(self) -> None:
        if is_recording(self.admin):
            self.admin.call("POST", "/api/stop")
            wait_for(lambda: not is_recording(self.admin), 30, "the take to stop")


def _phone_id(phone: HttpPhone) -> str:
    got: str = phone.get("/api/state")["phone"]["id"]
    return got


def _record(phone: HttpPhone, seconds: float, tags: int) -> None:
    start_take(phone)
    for n in range(tags):
        time.sleep(seconds / (tags + 1))
        status, body = tag(phone, f"live-{time.monotonic_ns()}-{n}")
        assert status == 201, body
    time.sleep(seconds / (tags + 1))
    assert phone.call("POST", "/api/stop")[0] == 202
    wait_for(lambda: not is_recording(phone), 30, "the take to stop")


def make_live_target(kit: RunningKit) -> LiveTarget:
    """Pair three phones (revoke one), record a sealed visit and an open one with a film."""
    admin = HttpPhone(kit.url, kit.code, name="Admin")
    good = HttpPhone(kit.url, kit.code, name="Sam")
    gone = HttpPhone(kit.url, kit.code, name="Gone")
    good_id, gone_id = _phone_id(good), _phone_id(gone)
    assert admin.call("DELETE", f"/api/phones/{gone_id}")[0] == 200

    sealed = admin.start_visit("F-sealed")["id"]
    _record(admin, 2.5, 2)
    ended: list[tuple[int, object]] = []

    def end() -> bool:  # refused (409) while the take's film is still being made
        ended.append(admin.call("POST", f"/api/visits/{sealed}/end"))
        return ended[-1][0] == 200

    wait_for(end, 60, f"the visit to end: {ended[-1:]}")

    def is_sealed() -> bool:
        # A request that overlaps the sealing may be refused as sealed (409) halfway.
        status, body = admin.call("GET", f"/api/visits/{sealed}")
        return status == 409 or body["visit"]["access"] == "sealed"

    wait_for(is_sealed, 90, "the first visit to be sealed")
    visit = admin.start_visit("F-open")["id"]
    _record(admin, 4.0, 3)
    wait_for(lambda: film_tag_ids(admin, visit) is not None, 90, "the open visit's film")
    seen = admin.get(f"/api/visits/{visit}")
    cut = kit.data / layout.cut_dir(visit)
    names = sorted(str(p.relative_to(cut)) for p in cut.rglob("*") if p.is_file())
    known = Known(
        visits=[visit, sealed],
        takes=[t["id"] for t in seen["takes"]],
        tags=[t["id"] for t in seen["tags"]],
        phones=[good_id, gone_id],
        moments=[m["moment_id"] for m in seen["moments"]],
        names=[*names, "rough-cut.mp4", "chapters.vtt"],
        code=admin.get("/api/pairing")["code"],
        key="x" * 22,
        labels=seen["labels"],
    )
    cookie = good.cookie.partition("=")[2]
    creds = Creds(cookie, good.csrf, gone.cookie.partition("=")[2], gone.csrf)
    return LiveTarget(kit, admin, good, gone, good_id, gone_id, creds, known)
