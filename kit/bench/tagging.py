"""``kit bench tagging``: phones tag and listen while a take records; how fast is a tap durable?

Four simulated phones (threads, each with its own keep-alive HTTP connection,
paired with the 6-digit code like a real phone) tag at random moments while a
take records. Each also keeps the page's server-sent-event stream open and
polls the preview a few times a second, as the page does. Printed:

* tap -> durable ack: from just before the phone sends the tap until it has
  read the kit's answer. The kit answers only after the tag is committed to
  SQLite (``synchronous=FULL``), so this is the time to a tag that survives a
  power cut. Target: p99 <= 50 ms.
* tap -> seen by every other phone: until each other phone's event stream
  delivered the tag (the "two phones, one truth" promise).
* stamp error: the stored instant minus the tap instant, both on
  CLOCK_MONOTONIC (the kit's clock, shared by every process on the machine).

By default it starts ``kit run --simulate`` on a free port with a temporary
data directory (the real daemon, real SQLite, real simulated camera and
microphone). ``--url``/``--code`` point it at a kit already running.
:func:`serve_and_run` runs it against any :class:`kit.daemon.api.Controller`
served in-process (the tests use a fake one).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import random
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kit.bench import figures as figures_json
from kit.bench import target
from kit.testing.launch import served
from kit.testing.privacy import consent_json

NS_PER_MS = 1_000_000
TARGET_P99_MS = 50.0


@dataclass
class Result:
    """What one run measured (all times in ms)."""

    phones: int
    taps: int
    seconds: float
    ack_ms: list[float] = field(default_factory=list)
    fanout_ms: list[float] = field(default_factory=list)
    stamp_error_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    missing_from_streams: int = 0
    preview_frames: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and self.missing_from_streams == 0
            and len(self.ack_ms) == self.phones * self.taps
            and percentile(self.ack_ms, 99) <= TARGET_P99_MS
        )


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (nan for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


class Phone:
    """One phone: a paired HTTP client with its cookie and CSRF token."""

    def __init__(self, base_url: str, name: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.name = name
        self.cookie = ""
        self.csrf = ""
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
        all_headers = {"Cookie": self.cookie, "X-CSRF-Token": self.csrf, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=all_headers)
            response = self.conn.getresponse()
        except (OSError, http.client.HTTPException):
            # A dropped keep-alive connection: reconnect once, as a browser would.
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            self.conn.request(method, path, body=data, headers=all_headers)
            response = self.conn.getresponse()
        raw = response.read()
        try:
            parsed = (
                json.loads(raw)
                if raw and response.getheader("Content-Type", "").startswith("application/json")
                else {}
            )
        except ValueError:
            parsed = {}
        return response.status, parsed, response

    def pair(self, code: str) -> None:
        status, body, response = self.request(
            "POST", "/api/pair", {"code": code, "name": self.name}, {"X-Kit-Pairing": "1"}
        )
        if status != 201:
            raise RuntimeError(f"{self.name} could not pair: {status} {body}")
        self.cookie = (response.getheader("Set-Cookie") or "").split(";", 1)[0]
        self.csrf = body["phone"]["csrf"]

    def close(self) -> None:
        self.conn.close()


class Listener(threading.Thread):
    """A phone's event stream: notes when each tag arrived (perf_counter_ns)."""

    def __init__(self, phone: Phone, after: int) -> None:
        super().__init__(name=f"sse-{phone.name}", daemon=True)
        self.phone = phone
        self.after = after
        self.seen: dict[str, int] = {}
        self.opened = threading.Event()
        self.conn = http.client.HTTPConnection(phone.host, phone.port, timeout=60)
        self.error = ""

    def run(self) -> None:
        try:
            self.conn.request(
                "GET", f"/api/events?after={self.after}", headers={"Cookie": self.phone.cookie}
            )
            response = self.conn.getresponse()
            if response.status != 200:
                self.error = f"event stream refused: {response.status}"
                return
            self.opened.set()
            kind = ""
            while True:
                line = response.readline()
                if not line:
                    return
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    kind = text[7:]
                elif text.startswith("data: ") and kind == "tag":
                    data = json.loads(text[6:])
                    if data.get("action", "added") == "added":
                        tag = data.get("tag", data)
                        self.seen.setdefault(tag["id"], time.perf_counter_ns())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if not self.error:
                self.error = f"event stream failed: {exc}"
        finally:
            self.opened.set()

    def close(self) -> None:
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the other side
                sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


class Previews:
    """Each phone polls the preview like the page does, on a connection of its own."""

    def __init__(self, clients: list[Phone], fps: float) -> None:
        self.viewers = [Phone(f"http://{c.host}:{c.port}", c.name) for c in clients]
        for viewer, client in zip(self.viewers, clients, strict=True):
            viewer.cookie, viewer.csrf = client.cookie, client.csrf
        self.fps = fps
        self._frames = [0] * len(self.viewers)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(i, v), name=f"preview-{v.name}", daemon=True)
            for i, v in enumerate(self.viewers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def frames(self) -> int:
        return sum(self._frames)

    def _poll(self, index: int, viewer: Phone) -> None:
        seq = ""
        while not self._stop.wait(1 / self.fps):
            path = "/api/preview.jpg" + (f"?after={seq}" if seq else "")
            try:
                status, _, response = viewer.request("GET", path)
            except (OSError, http.client.HTTPException):
                continue
            if status == 200:
                seq = response.getheader("X-Frame-Seq") or ""
                self._frames[index] += 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for viewer in self.viewers:
            viewer.close()


def start_take(boss: Phone, case_ref: str = "Bench", timeout_s: float = 10.0) -> None:
    """Start a take from ``boss`` (a paired phone) and wait until it records. A take
    records only into a visit with the family's consent: open one (or use the open one)."""
    status, body, _ = boss.request(
        "POST", "/api/visits", {"case_ref": case_ref, "consent": consent_json()}
    )
    if status not in (201, 409):
        raise RuntimeError(f"could not start a visit: {status} {body}")
    status, body, _ = boss.request("POST", "/api/start")
    if status != 202:
        raise RuntimeError(f"could not start a take: {status} {body}")
    deadline = time.monotonic() + timeout_s
    while True:
        _, state, _ = boss.request("GET", "/api/state")
        if state["status"]["state"] == "recording":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the take did not start: {state['status']}")
        time.sleep(0.05)


def _tap(client: Phone, pauses: list[float], result: Result, taps_at: dict[str, int]) -> None:
    """One phone's taps; ``taps_at`` gets each acknowledged tag's tap time (perf_counter_ns)."""
    for n, pause in enumerate(pauses):
        time.sleep(pause)
        tag_id = f"{client.name}-{n:05d}-{time.monotonic_ns() % 10**9:09d}"
        tapped_mono = time.monotonic_ns()
        t0 = time.perf_counter_ns()
        body = {
            "id": tag_id,
            "label": "Better than usual ★",
            "delay_ms": (time.perf_counter_ns() - t0) / NS_PER_MS,
        }
        try:
            status, answer, _ = client.request("POST", "/api/tags", body)
        except (OSError, http.client.HTTPException) as exc:
            result.errors.append(f"{client.name}: {exc}")
            continue
        t1 = time.perf_counter_ns()
        if status != 201:
            result.errors.append(f"{client.name}: {status} {answer}")
            continue
        result.ack_ms.append((t1 - t0) / NS_PER_MS)
        result.stamp_error_ms.append((answer["tag"]["at_ns"] - tapped_mono) / NS_PER_MS)
        taps_at[tag_id] = t0


def _fanout(listeners: list[Listener], taps_at: list[dict[str, int]], result: Result) -> None:
    """When each tag reached each of the other phones' streams; then close the streams."""
    for tapper, mine in zip(listeners, taps_at, strict=True):
        for tag_id, t0 in mine.items():
            for listener in listeners:
                if listener is tapper:
                    continue
                arrived = listener.seen.get(tag_id)
                if arrived is None:
                    result.missing_from_streams += 1
                else:
                    result.fanout_ms.append((arrived - t0) / NS_PER_MS)
    for listener in listeners:
        listener.close()
        if listener.error:
            result.errors.append(f"{listener.phone.name}: {listener.error}")


def run(
    base_url: str,
    code: str,
    *,
    phones: int = 4,
    taps: int = 50,
    interval_s: float = 0.5,
    preview_fps: float = 4.0,
    seed: int = 1,
) -> Result:
    """Pair ``phones`` phones with the kit at ``base_url``, record a take, tag, stop."""
    rng = random.Random(seed)  # noqa: S311 - jitter between taps, not security
    clients = [Phone(base_url, f"bench-{i + 1}") for i in range(phones)]
    for client in clients:
        client.pair(code)
    _, state, _ = clients[0].request("GET", "/api/state")
    listeners = [Listener(c, state["event_id"]) for c in clients]
    for listener in listeners:
        listener.start()
    for listener in listeners:
        listener.opened.wait(10)
    previews = Previews(clients, preview_fps)
    result = Result(phones=phones, taps=taps, seconds=0.0)
    start_take(clients[0])

    # list.append is atomic, so the tappers share the result without a lock.
    taps_at: list[dict[str, int]] = [{} for _ in clients]
    threads = [
        threading.Thread(
            target=_tap,
            args=(c, [rng.uniform(0.2, 1.8) * interval_s for _ in range(taps)], result, mine),
            name=f"tap-{c.name}",
            daemon=True,
        )
        for c, mine in zip(clients, taps_at, strict=True)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    time.sleep(1.0)  # let the last events reach every stream
    clients[0].request("POST", "/api/stop")
    previews.stop()
    result.preview_frames = previews.frames

    _fanout(listeners, taps_at, result)
    for client in clients:
        client.close()
    return result


def serve_and_run(
    recording: Any, visits: Any, pairing: Any, threads: int = 8, **options: Any
) -> Result:
    """Serve ``create_app(recording, visits, pairing)`` with waitress in-process, then :func:`run`.

    ``threads`` defaults to what ``kit run`` gives waitress.
    """
    from web.app import create_app

    with served(create_app(recording, visits, pairing), threads=threads) as url:
        return run(url, pairing.label_code, **options)  # the kit just started: pairing is open


def report(result: Result, where: str) -> str:
    """The figures as the bench prints them."""

    def line(name: str, values: list[float]) -> str:
        return (
            f"{name:<36} p50 {percentile(values, 50):7.2f}  p95 {percentile(values, 95):7.2f}"
            f"  p99 {percentile(values, 99):7.2f}  max {max(values, default=float('nan')):7.2f} ms"
        )

    total = result.phones * result.taps
    p99 = percentile(result.ack_ms, 99)
    verdict = "OK" if p99 <= TARGET_P99_MS else "TOO SLOW"
    return "\n".join(
        [
            f"tagging bench against {where}",
            f"{result.phones} phones x {result.taps} taps in {result.seconds:.1f} s "
            f"({total / max(result.seconds, 1e-9):.1f} taps/s), each phone also on the event "
            f"stream and polling the preview ({result.preview_frames} frames fetched)",
            line("tap -> durable ack", result.ack_ms)
            + f"   (target p99 <= {TARGET_P99_MS:.0f} ms: {verdict})",
            line("tap -> seen by every other phone", result.fanout_ms),
            line("stamp error (stored - tap)", result.stamp_error_ms),
            f"acknowledged {len(result.ack_ms)}/{total}; missing from other phones' streams: "
            f"{result.missing_from_streams}; errors: {len(result.errors)}",
            *(f"  {e}" for e in result.errors[:10]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench tagging", description=__doc__)
    target.add_arguments(parser, pid=None, small=False)
    parser.add_argument("--phones", type=int, default=4, help="simulated phones (4)")
    parser.add_argument("--taps", type=int, default=50, help="taps per phone (50)")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="mean seconds between a phone's taps (0.5)"
    )
    parser.add_argument("--preview-fps", type=float, default=4.0, help="preview polls/s (4)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.phones < 1 or args.taps < 1 or args.interval <= 0 or args.preview_fps <= 0:
        parser.error("--phones, --taps, --interval and --preview-fps must be positive")
    target.check_arguments(parser, args)
    options = {
        "phones": args.phones,
        "taps": args.taps,
        "interval_s": args.interval,
        "preview_fps": args.preview_fps,
    }
    with target.target(args, "tagging") as kit:
        result = run(kit.url, kit.code, **options)
    print(report(result, kit.where))
    if args.json:
        figures = {
            name: {p: percentile(values, p) for p in (50, 95, 99)}
            for name, values in (
                ("ack_ms", result.ack_ms),
                ("fanout_ms", result.fanout_ms),
                ("stamp_error_ms", result.stamp_error_ms),
            )
        }
        figures_json.write(args.json, {**figures, "errors": result.errors, "ok": result.ok})
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
