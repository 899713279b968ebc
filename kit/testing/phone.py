"""A phone that speaks the kit's API over real HTTP (no browser): pairs with the code, sends
requests with its cookie and CSRF token, and waits for events on the live stream."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from kit.testing.privacy import consent_json


class HttpPhone:
    """A paired phone at ``url`` (e.g. the daemon's), named ``name``."""

    def __init__(self, url: str, code: str, name: str = "Test rig") -> None:
        self.host = urlsplit(url).netloc
        status, body, headers = self._send(
            "POST",
            "/api/pair",
            {"code": code, "name": name},
            {"X-Kit-Pairing": "1"},
        )
        assert status == 201, body
        self.csrf = body["phone"]["csrf"]
        self.cookie = headers.get("set-cookie", "").split(";")[0]

    def _send(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        conn = http.client.HTTPConnection(self.host, timeout=10)
        try:
            data = None if body is None else json.dumps(body)
            sent = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, data, sent)
            r = conn.getresponse()
            raw = r.read()
            got = {k.lower(): v for k, v in r.getheaders()}
            return r.status, json.loads(raw) if raw else None, got
        finally:
            conn.close()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Cookie": self.cookie, "X-CSRF-Token": self.csrf}
        status, got, _ = self._send(method, path, body, headers)
        return status, got

    def get(self, path: str) -> Any:
        status, got = self.call("GET", path)
        assert status == 200, (path, status, got)
        return got

    def start_visit(self, case_ref: str = "F-0001", consent: dict[str, Any] | None = None) -> Any:
        """Start a visit with the family's consent (every purpose, erased in 60 days, unless
        told), as the page's start-visit sheet does; the visit as the kit answers it."""
        body = {"case_ref": case_ref, "consent": consent or consent_json()}
        status, got = self.call("POST", "/api/visits", body)
        assert status == 201, (status, got)
        return got["visit"]

    def wait_until(self, what: Callable[[], bool], timeout_s: float, why: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not what():
            assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {why}"
            time.sleep(0.1)

    def wait_for_event(
        self, kind: str, after: int, match: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any]:
        """The first ``kind`` event after event id ``after`` whose data ``match`` accepts."""
        deadline = time.monotonic() + timeout_s
        conn = http.client.HTTPConnection(self.host, timeout=timeout_s)
        try:
            conn.request("GET", f"/api/events?after={after}", headers={"Cookie": self.cookie})
            r = conn.getresponse()
            assert r.status == 200
            event = ""
            while time.monotonic() < deadline:
                line = r.readline().decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == kind:
                    data: dict[str, Any] = json.loads(line.removeprefix("data: "))
                    if match(data):
                        return data
            raise AssertionError(f"no {kind} event within {timeout_s} s")
        finally:
            conn.close()
