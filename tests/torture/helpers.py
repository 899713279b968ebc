"""What the torture tests share: the ``kit`` command as a child process, a phone's
requests with a timeout of the test's choosing, the live event log read back, and a
card filled to the last byte."""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kit.testing.phone import HttpPhone

KIT = [sys.executable, "-m", "kit"]
SMALL = ("--width", "320", "--height", "240")
NOBODY = 65534


def run_kit(
    *argv: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 60.0,
    as_user: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """``kit ARGV`` in a child process (not under systemd).

    ``as_user`` drops root first. The venv's interpreter and maybe the checkout itself
    (a clone in ``mktemp -d``, mode 0700) are shut to that user, so the child runs the
    system's Python 3 on a copy of the ``kit`` package it may read (enough for ``kit
    config``).
    """
    repo = Path(__file__).resolve().parents[2]
    environ = {**os.environ, **(env or {})}
    environ.pop("NOTIFY_SOCKET", None)
    environ.pop("WATCHDOG_USEC", None)
    if as_user is None:
        return _run([*KIT, *argv], environ, timeout_s, cwd=repo)
    uid = as_user

    def drop() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    with tempfile.TemporaryDirectory(prefix="kit-as-user-") as readable:
        os.chmod(readable, 0o755)
        shutil.copytree(
            repo / "kit", Path(readable) / "kit", ignore=shutil.ignore_patterns("__pycache__")
        )
        environ.update(PYTHONPATH=readable, PYTHONDONTWRITEBYTECODE="1")
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        return _run([python, "-m", "kit", *argv], environ, timeout_s, cwd=Path("/"), as_user=drop)


def _run(
    argv: list[str],
    environ: dict[str, str],
    timeout_s: float,
    *,
    cwd: Path,
    as_user: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=environ,
        preexec_fn=as_user,
        cwd=cwd,
    )


def one_line_error(done: subprocess.CompletedProcess[str], codes: tuple[int, ...]) -> str:
    """Why ``done`` is not a clean refusal (exit in ``codes``, a ``kit: error:`` or argparse
    ``error:`` line, no traceback), or "" when it is."""
    if "Traceback" in done.stderr:
        return f"a traceback on stderr: ...{done.stderr[-600:]}"
    if done.returncode not in codes:
        return f"exit {done.returncode}, not {codes}: {done.stderr[-600:]}"
    if "error:" not in done.stderr:
        return f"no error line on stderr: {done.stderr[-600:]}"
    return ""


def call(
    phone: HttpPhone, method: str, path: str, body: Any = None, *, timeout_s: float = 10.0
) -> tuple[int, Any]:
    """``phone``'s request (cookie and CSRF token) with a timeout of the caller's choosing."""
    conn = http.client.HTTPConnection(phone.host, timeout=timeout_s)
    try:
        headers = {
            "Cookie": phone.cookie,
            "X-CSRF-Token": phone.csrf,
            "Content-Type": "application/json",
        }
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        r = conn.getresponse()
        raw = r.read()
        try:
            got = json.loads(raw) if raw else None
        except ValueError:
            got = raw.decode(errors="replace")
        return r.status, got
    finally:
        conn.close()


def state(phone: HttpPhone) -> dict[str, Any]:
    got: dict[str, Any] = phone.get("/api/state")
    return got


def is_recording(phone: HttpPhone) -> bool:
    return bool(state(phone)["status"]["state"] == "recording")


def wait_for(what: Callable[[], bool], timeout_s: float, why: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {why}"
        time.sleep(0.1)


def start_take(phone: HttpPhone) -> dict[str, Any]:
    """Start a take in the open visit; the status once it records."""
    status, body = phone.call("POST", "/api/start")
    assert status == 202, body
    wait_for(lambda: is_recording(phone), 20, "the take to start recording")
    got: dict[str, Any] = state(phone)["status"]
    return got


def tag(
    phone: HttpPhone, tag_id: str, *, delay_ms: float = 0, label: str = "Guiding"
) -> tuple[int, Any]:
    return call(phone, "POST", "/api/tags", {"id": tag_id, "label": label, "delay_ms": delay_ms})


def events_between(
    phone: HttpPhone, after: int, until: int, *, timeout_s: float = 15.0
) -> list[dict[str, Any]]:
    """The events of the kit's log with ids ``after`` < id <= ``until``, read from its
    stream: ``{"id", "kind", "data"}`` each, oldest first."""
    deadline = time.monotonic() + timeout_s
    conn = http.client.HTTPConnection(phone.host, timeout=timeout_s)
    found: list[dict[str, Any]] = []
    try:
        conn.request("GET", f"/api/events?after={after}", headers={"Cookie": phone.cookie})
        r = conn.getresponse()
        assert r.status == 200, r.status
        block: dict[str, str] = {}
        while time.monotonic() < deadline:
            line = r.readline().decode().rstrip("\n")
            if line:
                key, _, value = line.partition(": ")
                block[key] = value
                continue
            if "event" in block and "data" in block and "id" in block:
                event = {
                    "id": int(block["id"]),
                    "kind": block["event"],
                    "data": json.loads(block["data"]),
                }
                assert event["kind"] != "resync", "the kit's log no longer holds those events"
                if event["id"] > until:
                    return found
                found.append(event)
                if event["id"] == until:
                    return found
            block = {}
        raise AssertionError(f"events up to {until} did not arrive within {timeout_s} s")
    finally:
        conn.close()


def film_tag_ids(phone: HttpPhone, visit_id: str) -> set[str] | None:
    """The tags the visit's film holds, if it has an up-to-date film (else None)."""
    cut = phone.get(f"/api/visits/{visit_id}")["cut"]
    if not cut or not cut.get("up_to_date") or not cut.get("film_url"):
        return None
    return {t for clip in cut["clips"] for t in clip["tag_ids"]}


def fill(card: Path, name: str = "filler.bin") -> Path:
    """Fill the filesystem of ``card`` to its last byte with one file; that file."""
    filler = card / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            block = bytes(size)
            while True:
                try:
                    if os.write(fd, block) < size:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    return filler
