"""``kit bench load``: eight phones through a take; and, with ``--soak-hours``, for hours.

Eight simulated phones (``--phones``) pair with the 6-digit code, each keeps the
page's live event stream open and reads it all the time, and each tags every 2-5 s
(at random) while a take records for ``--minutes`` (10). Printed: taps sent and
acknowledged, taps lost (acknowledged, but not stored in the visit's take), the tap
-> durable ack time p50/p95/p99/max (target p99 <= 50 ms), frames dropped (the
take's ``dropped_frames``), the event streams (refused with a 503, and tags a phone's
stream never delivered), and the daemon's resident memory at the start and the end.
Target: 0 lost, p99 <= 50 ms, 0 frames dropped.

Beside the phones, a probe (:mod:`kit.bench.floor`) times a bare 4 KiB overwrite and
fdatasync on the data directory's filesystem every 0.1 s through the take: the
storage's own floor, which no durable ack can beat. It is printed with the acks, and
when the floor alone misses the target the report says so: that run cannot show the
kit's acks within it. (The data directory is the started kit's, or ``--floor-dir``
with ``--url``.)

``--soak-hours H`` records for H hours in takes of ``--take-minutes`` (10) back to
back, the phones tagging throughout, and samples the daemon's RSS every minute:
printed, its slope in MB/min (least squares) and whether the fitted change over the
run is within 5 % of where it started (flat); the same again after the warm-up, which
is what the exit code judges. The warm-up is the first take, or longer if the kit's
event log (``kit.compose.EVENT_LOG_CAPACITY`` events, about 5 MB full) has not yet
filled by then: until the phones see an event id past its capacity, the daemon's
memory grows by design.

A soak's takes are all in one visit unless ``--visit-per-take``: then each take is in a
visit of its own, checked and ended after it, as a guider's visits follow one another.
In one visit the tags pile up (8 phones make about 8,000 an hour, a guider at most a
few hundred a visit), and each rough cut reads them all: the daemon's memory then
follows the visit's size, which a soak of visits of a guider's size does not.

By default it starts ``kit run --simulate`` with a temporary data directory;
``--url``/``--code``/``--pid`` point it at a kit already running. :func:`run` is what
the tests call, for a minute or so.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.bench import figures as figures_json
from kit.bench import target
from kit.bench.floor import BLOCK, PERIOD_S, FloorProbe
from kit.bench.tagging import NS_PER_MS, TARGET_P99_MS, Phone, percentile
from kit.compose import EVENT_LOG_CAPACITY
from kit.testing.privacy import consent_json

RETRY_S = 5.0  # what a refused stream's Retry-After says; the page waits as long
LOG_FULL_ID = EVENT_LOG_CAPACITY  # ids count from 1 at start: this one fills the log
FLAT_WITHIN = 0.05


@dataclass
class Result:
    """What one run measured (times in ms, memory in kB)."""

    phones: int
    seconds: float = 0.0
    sent: int = 0
    acked: dict[str, str] = field(default_factory=dict)  # tag id -> the take it is in
    ack_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    takes: list[dict[str, Any]] = field(default_factory=list)
    refused_streams: int = 0
    phones_never_live: int = 0
    missing_from_streams: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)  # (minutes, kB)
    # Each minute's (minutes, its parts: anonymous and file kB, threads), to tell heap from
    # mapped files and leaked threads.
    parts: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    warmup_min: float = 0.0  # a soak's first take: its memory is judged apart
    log_full_min: float | None = None  # when the kit's event log first held its capacity
    # Acks over the target: (s into the run, ms, the kit's own part in ms from its
    # Server-Timing, nan without one), to tell a slow kit from a stall outside it.
    slow: list[tuple[float, float, float]] = field(default_factory=list)
    app_ms: list[float] = field(default_factory=list)  # every ack's Server-Timing app part
    floor_ms: list[float] = field(default_factory=list)  # the storage's bare durable write
    visits: int = 0
    checked_takes: set[str] = field(default_factory=set)
    began: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def dropped_frames(self) -> int:
        return sum(int(t.get("dropped_frames") or 0) for t in self.takes)

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and not self.lost
            and self.dropped_frames == 0
            and percentile(self.ack_ms, 99) <= TARGET_P99_MS
        )


class Stream(threading.Thread):
    """A phone's live event stream, read all the time; reopened after a refusal or a drop
    (as the page does), from the last event it saw."""

    def __init__(self, phone: Phone, after: int, stop: threading.Event) -> None:
        super().__init__(name=f"events-{phone.name}", daemon=True)
        self.phone = phone
        self.last = after
        self.stop = stop
        self.seen: set[str] = set()
        self.refused = 0
        self.live_once = False
        self._conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                self._listen()  # returns (or raises) when dropped: open it again
            self.stop.wait(0.5)

    def _listen(self) -> None:
        conn = http.client.HTTPConnection(self.phone.host, self.phone.port, timeout=60)
        self._conn = conn
        try:
            headers = {"Cookie": self.phone.cookie, "Last-Event-ID": str(self.last)}
            conn.request("GET", "/api/events", headers=headers)
            response = conn.getresponse()
            if response.status != 200:
                response.read()
                self.refused += 1
                self.stop.wait(RETRY_S)
                return
            self.live_once = True
            kind = ""
            while not self.stop.is_set():
                line = response.readline()
                if not line:
                    return
                text = line.decode().rstrip("\n")
                if text.startswith("id: "):
                    self.last = int(text[4:])
                elif text.startswith("event: "):
                    kind = text[7:]
                elif text.startswith("data: ") and kind == "tag":
                    data = json.loads(text[6:])
                    if data.get("action", "added") == "added":
                        self.seen.add(data.get("tag", data)["id"])
        finally:
            conn.close()

    def close(self) -> None:
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)


def rss_kb(pid: int | None) -> int:
    """The daemon's resident memory (VmRSS), kB; 0 without a pid."""
    if pid is None:
        return 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


MEMORY_PARTS = {"RssAnon:": "anon_kb", "RssFile:": "file_kb", "Threads:": "threads"}


def memory_parts(pid: int | None) -> dict[str, int]:
    """The daemon's anonymous and file-backed resident kB and its threads ({} without)."""
    parts: dict[str, int] = {}
    if pid is None:
        return parts
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition("\t")
            key = MEMORY_PARTS.get(name)
            if key is not None:
                parts[key] = int(value.split()[0])
    return parts


def slope_mb_per_min(samples: Sequence[tuple[float, int]]) -> float:
    """Least-squares slope of (minutes, kB) samples, in MB/min (0 for fewer than two)."""
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [kb / 1024 for _, kb in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def _warmup_is(result: Result) -> str:
    if result.log_full_min is not None and result.log_full_min >= result.warmup_min:
        return "until the kit's event log was full"
    return "the first take"


def after_warmup(
    samples: Sequence[tuple[float, int]], warmup_min: float
) -> list[tuple[float, int]]:
    """The samples from ``warmup_min`` on: the first take warms the daemon up (codecs,
    caches, the first cut) and its event log fills, which a soak judges apart from how
    it holds afterwards."""
    return [(t, kb) for t, kb in samples if t >= warmup_min]


def is_flat(samples: Sequence[tuple[float, int]]) -> bool:
    """Whether the fitted RSS change over the run is within FLAT_WITHIN of its start."""
    if len(samples) < 2:
        return True
    start_mb = samples[0][1] / 1024
    change = slope_mb_per_min(samples) * (samples[-1][0] - samples[0][0])
    return abs(change) <= FLAT_WITHIN * start_mb


class Tapper(threading.Thread):
    """A phone tagging every ``low``-``high`` s (at random) while ``recording`` is set."""

    def __init__(
        self,
        phone: Phone,
        result: Result,
        recording: threading.Event,
        stop: threading.Event,
        gaps: tuple[float, float],
        seed: int,
    ) -> None:
        super().__init__(name=f"tap-{phone.name}", daemon=True)
        self.phone, self.result, self.recording, self.stop = phone, result, recording, stop
        self.gaps = gaps
        self.rng = random.Random(seed)  # noqa: S311 - when to tap, not security
        self.busy = threading.Lock()

    def run(self) -> None:
        n = 0
        while not self.stop.wait(self.rng.uniform(*self.gaps)):
            with self.busy:  # held while a tap is under way: a stop waits for it
                if self.recording.is_set():
                    n += 1
                    self._tap(f"{self.phone.name}-{n:06d}")

    def _tap(self, tag_id: str) -> None:
        body = {"id": tag_id, "label": "Guiding", "delay_ms": 0}
        result = self.result
        t0 = time.perf_counter_ns()
        try:
            status, answer, response = self.phone.request("POST", "/api/tags", body)
        except (OSError, http.client.HTTPException) as exc:
            with result.lock:
                result.sent += 1
                result.errors.append(f"{tag_id}: {exc!r}")
            return
        took = (time.perf_counter_ns() - t0) / NS_PER_MS
        with result.lock:
            result.sent += 1
            if status != 201:
                result.errors.append(f"{tag_id}: {status} {answer}")
                return
            app = server_timing(response.getheader("Server-Timing", ""), "app")
            result.ack_ms.append(took)
            if not math.isnan(app):
                result.app_ms.append(app)
            result.acked[tag_id] = answer["tag"]["take_id"]
            if took > TARGET_P99_MS:
                result.slow.append((time.monotonic() - result.began, took, app))


def server_timing(header: str, name: str) -> float:
    """The duration (ms) of metric ``name`` in a ``Server-Timing`` header; nan if absent."""
    for metric in header.split(","):
        parts = [p.strip() for p in metric.split(";")]
        if parts[0] != name:
            continue
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip() == "dur":
                try:
                    return float(value)
                except ValueError:
                    return math.nan
    return math.nan


def _state(phone: Phone) -> dict[str, Any]:
    status, body, _ = phone.request("GET", "/api/state")
    if status != 200:
        raise RuntimeError(f"GET /api/state: {status} {body}")
    return body


def _wait(phone: Phone, what: str, ok: Any, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        state = _state(phone)
        if ok(state["status"]):
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}: {state['status']}")
        time.sleep(0.2)


def _start(phone: Phone) -> None:
    status, body, _ = phone.request("POST", "/api/start")
    if status != 202:
        raise RuntimeError(f"could not start a take: {status} {body}")
    _wait(phone, "the take to record", lambda s: s["state"] == "recording", 30)


def run(
    base_url: str,
    code: str,
    *,
    phones: int = 8,
    seconds: float = 600.0,
    take_seconds: float | None = None,
    gaps: tuple[float, float] = (2.0, 5.0),
    pid: int | None = None,
    seed: int = 1,
    progress: Any = None,
    visit_per_take: bool = False,
    floor_dir: Path | None = None,
) -> Result:
    """Pair ``phones``, open a visit, record for ``seconds`` (in takes of ``take_seconds``
    back to back, or one take) with every phone listening and tagging; then check every
    acknowledged tag is in its take, and read the takes' dropped frames.

    ``visit_per_take``: each take in a visit of its own, as a guider's visits follow one
    another (a take's visit is checked, then ended, and the next one started).
    ``floor_dir``: time the storage's floor there while recording (:mod:`kit.bench.floor`).
    """
    clients = [Phone(base_url, f"load-{i + 1}") for i in range(phones)]
    for client in clients:
        client.pair(code)
    boss = clients[0]
    visit_id = _open_visit(boss)
    result = Result(phones=phones, warmup_min=(take_seconds or 0.0) / 60)
    stop, recording = threading.Event(), threading.Event()
    after = _state(boss)["event_id"]
    streams = [Stream(Phone(base_url, c.name), after, stop) for c in clients]
    for stream, client in zip(streams, clients, strict=True):
        stream.phone.cookie, stream.phone.csrf = client.cookie, client.csrf
        stream.start()
    tappers = [
        Tapper(c, result, recording, stop, gaps, seed * 1000 + i) for i, c in enumerate(clients)
    ]
    began = result.began = time.monotonic()
    result.rss.append((0.0, rss_kb(pid)))
    _start(boss)
    recording.set()
    with _floor(floor_dir, result):
        for tapper in tappers:
            tapper.start()
        visit_id = _record(
            boss,
            visit_id,
            result,
            streams,
            tappers,
            recording,
            seconds,
            take_seconds,
            pid,
            progress,
            visit_per_take,
        )
        recording.clear()
        for tapper in tappers:  # let a tap under way finish
            with tapper.busy:
                pass
    boss.request("POST", "/api/stop")
    result.seconds = time.monotonic() - began
    _wait(boss, "the films to be made", _all_saved, 300)
    time.sleep(1.0)  # the last events reach the streams
    stop.set()
    for stream in streams:
        stream.close()
    for thread in [*streams, *tappers]:
        thread.join(timeout=10)
    result.rss.append((result.seconds / 60, rss_kb(pid)))
    _check_visit(boss, visit_id, result)
    _check_streams(result, streams)
    for client in clients:
        client.close()
    return result


@contextlib.contextmanager
def _floor(directory: Path | None, result: Result) -> Iterator[None]:
    """Time the storage's floor in ``directory`` (if given) meanwhile, into ``result``."""
    if directory is None:
        yield
        return
    probe = FloorProbe(directory)
    probe.start()
    try:
        yield
    finally:
        result.floor_ms = probe.finish()
        if probe.error is not None:
            result.errors.append(f"the storage floor probe failed: {probe.error}")


def _record(
    boss: Phone,
    visit_id: str,
    result: Result,
    streams: Sequence[Stream],
    tappers: list[Tapper],
    recording: threading.Event,
    seconds: float,
    take_seconds: float | None,
    pid: int | None,
    progress: Callable[[Result, float], None] | None,
    visit_per_take: bool,
) -> str:
    """Record for ``seconds`` from ``result.began``, a new take (or visit) every
    ``take_seconds``, sampling every minute; the visit recorded into last."""
    began = result.began
    take_s = take_seconds or seconds
    next_sample = began + 60
    take_ends = time.monotonic() + take_s
    while (now := time.monotonic()) < began + seconds:
        time.sleep(max(0.0, min(next_sample, take_ends, began + seconds) - now))
        now = time.monotonic()
        if now >= next_sample:
            _sample(result, pid, streams, now - began, progress)
            next_sample += 60
        if now >= take_ends and now < began + seconds:
            if visit_per_take:
                visit_id = _next_visit(boss, visit_id, recording, tappers, result)
            else:
                _next_take(boss, recording, tappers)
            take_ends = time.monotonic() + take_s
    return visit_id


def _sample(
    result: Result,
    pid: int | None,
    streams: Sequence[Stream],
    elapsed_s: float,
    progress: Callable[[Result, float], None] | None,
) -> None:
    """A minute's figures: the daemon's RSS, and whether its event log has filled."""
    result.rss.append((elapsed_s / 60, rss_kb(pid)))
    result.parts.append((elapsed_s / 60, memory_parts(pid)))
    if result.log_full_min is None and max(s.last for s in streams) >= LOG_FULL_ID:
        result.log_full_min = elapsed_s / 60
        result.warmup_min = max(result.warmup_min, result.log_full_min)
    if progress is not None:
        progress(result, elapsed_s)


def _all_saved(status: dict[str, Any]) -> bool:
    return status["state"] in ("idle", "cutting") and not status.get("finalising_take_ids")


def _open_visit(boss: Phone) -> str:
    status, body, _ = boss.request(
        "POST", "/api/visits", {"case_ref": "Load", "consent": consent_json()}
    )
    if status != 201:
        raise RuntimeError(f"could not start a visit: {status} {body}")
    return str(body["visit"]["id"])


def _stop(boss: Phone, recording: threading.Event, tappers: list[Tapper]) -> None:
    """The phones stop tapping (a tap under way finishes), then the take stops."""
    recording.clear()
    for tapper in tappers:
        with tapper.busy:
            pass
    boss.request("POST", "/api/stop")


def _next_take(boss: Phone, recording: threading.Event, tappers: list[Tapper]) -> None:
    """Stop the take and start the next at once (the last is finalised meanwhile)."""
    _stop(boss, recording, tappers)
    _wait(boss, "the take to stop", lambda s: s["state"] != "recording", 60)
    _start(boss)
    recording.set()


def _next_visit(
    boss: Phone, visit_id: str, recording: threading.Event, tappers: list[Tapper], result: Result
) -> str:
    """Stop the take, check its visit once its film is made, end the visit, and record
    the next take in a new one; the new visit's id."""
    _stop(boss, recording, tappers)
    _wait(boss, "the take's film", _all_saved, 300)
    _check_visit(boss, visit_id, result)  # before it ends: a sealed visit's tags are unread
    status, body, _ = boss.request("POST", f"/api/visits/{visit_id}/end")
    if status != 200:
        raise RuntimeError(f"could not end visit {visit_id}: {status} {body}")
    visit_id = _open_visit(boss)
    _start(boss)
    recording.set()
    return visit_id


def _check_visit(boss: Phone, visit_id: str, result: Result) -> None:
    """Every tag acknowledged into one of the visit's takes is stored in that take."""
    status, seen, _ = boss.request("GET", f"/api/visits/{visit_id}")
    if status != 200:
        raise RuntimeError(f"GET /api/visits/{visit_id}: {status}")
    stored = {t["id"]: t["take_id"] for t in seen["tags"]}
    takes = {t["id"] for t in seen["takes"]}
    result.checked_takes |= takes
    result.lost += sorted(
        i for i, take in result.acked.items() if take in takes and stored.get(i) != take
    )
    result.takes += seen["takes"]
    result.visits += 1


def _check_streams(result: Result, streams: list[Stream]) -> None:
    """At the end: tags acknowledged into a take no visit held are lost too; what the
    event streams missed."""
    result.lost += sorted(i for i, take in result.acked.items() if take not in result.checked_takes)
    result.refused_streams = sum(s.refused for s in streams)
    result.phones_never_live = sum(not s.live_once for s in streams)
    result.missing_from_streams = sum(
        len(set(result.acked) - s.seen) for s in streams if s.live_once
    )


def report(result: Result, where: str) -> str:
    values = result.ack_ms
    p99 = percentile(values, 99)
    verdict = "OK" if p99 <= TARGET_P99_MS else "TOO SLOW"
    frames = sum(int(t.get("video_frames") or 0) for t in result.takes)
    rss = result.rss
    lines = [
        f"load bench against {where}",
        f"{result.phones} phones on the event stream, each tagging every 2-5 s, for "
        f"{result.seconds / 60:.1f} min in {len(result.takes)} take(s) in {result.visits} "
        "visit(s)",
        f"taps sent {result.sent}, acknowledged {len(result.acked)}, lost {len(result.lost)} "
        f"(acknowledged but not in their take), errors {len(result.errors)}",
        f"tap -> durable ack    p50 {percentile(values, 50):7.2f}"
        f"  p95 {percentile(values, 95):7.2f}  p99 {p99:7.2f}"
        f"  max {max(values, default=float('nan')):7.2f} ms"
        f"   (target p99 <= {TARGET_P99_MS:.0f} ms: {verdict})",
        f"  the kit's part (Server-Timing app) p50 {percentile(result.app_ms, 50):7.2f}"
        f"  p99 {percentile(result.app_ms, 99):7.2f}"
        f"  max {max(result.app_ms, default=float('nan')):7.2f} ms",
        *floor_lines(result.floor_ms, p99),
        f"frames dropped {result.dropped_frames} of {frames}"
        + (
            " (by take: " + ", ".join(str(t.get("dropped_frames")) for t in result.takes) + ")"
            if len(result.takes) > 1
            else ""
        ),
        f"event streams: refused {result.refused_streams} times (503); phones that never got "
        f"one {result.phones_never_live}/{result.phones}; tags a live phone's stream missed "
        f"{result.missing_from_streams}",
    ]
    if rss[0][1]:
        lines.append(f"daemon RSS: start {rss[0][1] / 1024:.1f} MB, end {rss[-1][1] / 1024:.1f} MB")
    if len(rss) > 3:
        slope = slope_mb_per_min(rss)
        flat = "flat" if is_flat(rss) else "NOT flat"
        lines.append(
            f"RSS slope {slope:+.3f} MB/min over {len(rss)} samples: {flat} within "
            f"{FLAT_WITHIN:.0%}"
        )
    settled = after_warmup(rss, result.warmup_min)
    if result.warmup_min and len(settled) > 3:
        slope = slope_mb_per_min(settled)
        flat = "flat" if is_flat(settled) else "NOT flat"
        change = slope * (settled[-1][0] - settled[0][0])
        lines.append(
            f"after the warm-up ({result.warmup_min:.0f} min: {_warmup_is(result)}): RSS "
            f"{settled[0][1] / 1024:.1f} -> {settled[-1][1] / 1024:.1f} MB, slope "
            f"{slope:+.3f} MB/min, fitted change {change:+.1f} MB: {flat} within "
            f"{FLAT_WITHIN:.0%}"
        )
    if result.slow:
        at = ", ".join(
            f"{t // 60:.0f}:{t % 60:04.1f} {ms:.0f} ms (kit {app:.0f})"
            for t, ms, app in result.slow[:12]
        )
        lines.append(f"acks over {TARGET_P99_MS:.0f} ms: {len(result.slow)} (min:s in): {at}")
        in_kit = sum(app > TARGET_P99_MS for _, _, app in result.slow)
        unknown = sum(math.isnan(app) for _, _, app in result.slow)
        lines.append(
            f"  of which the kit itself took over {TARGET_P99_MS:.0f} ms (its Server-Timing): "
            f"{in_kit}; without a Server-Timing: {unknown}; the rest waited outside the app "
            "(the server's queue, the network, the phone)"
        )
    lines += [f"  lost: {i}" for i in result.lost[:10]]
    lines += [f"  {e}" for e in result.errors[:10]]
    return "\n".join(lines)


def floor_lines(floor_ms: Sequence[float], ack_p99: float) -> list[str]:
    """The storage floor's figures, and whether the floor alone misses the target."""
    if not floor_ms:
        return []
    floor_p99 = percentile(floor_ms, 99)
    over = sum(ms > TARGET_P99_MS for ms in floor_ms)
    lines = [
        f"storage floor (a bare {BLOCK // 1024} KiB overwrite + fdatasync beside the kit,"
        f" every {PERIOD_S:g} s)"
        f" p50 {percentile(floor_ms, 50):7.2f}  p99 {floor_p99:7.2f}"
        f"  max {max(floor_ms):7.2f} ms; over {TARGET_P99_MS:.0f} ms: {over} of {len(floor_ms)};"
        f" ack p99 / floor p99 = {ack_p99 / floor_p99 if floor_p99 > 0 else math.nan:.1f}x",
    ]
    if floor_p99 > TARGET_P99_MS:
        lines.append(
            f"  the storage alone misses the target (its own p99 {floor_p99:.1f} ms > "
            f"{TARGET_P99_MS:.0f} ms): this run cannot show the kit's acks within it"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench load", description=__doc__)
    target.add_arguments(parser, pid="its RSS", small=True)
    parser.add_argument("--phones", type=int, default=8, help="simulated phones (8)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the take (10)")
    parser.add_argument("--soak-hours", type=float, help="record this long, takes back to back")
    parser.add_argument("--take-minutes", type=float, default=10.0, help="soak takes (10)")
    parser.add_argument(
        "--visit-per-take",
        action="store_true",
        help="soak: each take in a visit of its own, ended after it (a day of visits)",
    )
    parser.add_argument(
        "--floor-dir",
        type=Path,
        help="with --url: a directory on the kit's data filesystem, to time its floor in",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.phones < 1 or args.minutes <= 0 or args.take_minutes <= 0:
        parser.error("--phones, --minutes and --take-minutes must be positive")
    target.check_arguments(parser, args)
    if args.floor_dir is not None and not args.url:
        parser.error("--floor-dir is for a running kit (--url): a started one's is its own")
    soak = args.soak_hours is not None
    options: dict[str, Any] = {
        "phones": args.phones,
        "seconds": (args.soak_hours * 3600) if soak else args.minutes * 60,
        "take_seconds": args.take_minutes * 60 if soak else None,
        "progress": _progress if soak else None,
        "visit_per_take": soak and args.visit_per_take,
    }
    with target.target(args, "load") as kit:
        result = run(
            kit.url, kit.code, pid=kit.pid, floor_dir=args.floor_dir or kit.data, **options
        )
    print(report(result, kit.where))
    if args.json:
        figures = {
            "sent": result.sent,
            "acked": len(result.acked),
            "lost": result.lost,
            "ack_ms": {p: percentile(result.ack_ms, p) for p in (50, 95, 99, 100)},
            "dropped_frames": result.dropped_frames,
            "takes": result.takes,
            "visits": result.visits,
            "slow_acks": result.slow,
            "app_ms": {str(p): percentile(result.app_ms, p) for p in (50, 95, 99, 100)},
            "floor_ms": {str(p): percentile(result.floor_ms, p) for p in (50, 95, 99, 100)},
            "floor_over_target": sum(ms > TARGET_P99_MS for ms in result.floor_ms),
            "refused_streams": result.refused_streams,
            "rss_kb": result.rss,
            "memory_parts": result.parts,
            "warmup_min": result.warmup_min,
            "event_log_full_min": result.log_full_min,
            "rss_slope_mb_per_min": slope_mb_per_min(result.rss),
            "rss_slope_after_warmup_mb_per_min": slope_mb_per_min(
                after_warmup(result.rss, result.warmup_min)
            ),
            "ok": result.ok,
        }
        figures_json.write(args.json, figures)
    flat = not soak or is_flat(after_warmup(result.rss, result.warmup_min))
    return 0 if result.ok and flat else 1


def _progress(result: Result, elapsed_s: float) -> None:
    rss = result.rss[-1][1] / 1024
    parts = result.parts[-1][1] if result.parts else {}
    detail = (
        f" (anon {parts['anon_kb'] / 1024:.1f}, files {parts['file_kb'] / 1024:.1f}, "
        f"{parts['threads']} threads)"
        if len(parts) == len(MEMORY_PARTS)
        else ""
    )
    print(
        f"  {elapsed_s / 60:6.1f} min: {len(result.acked)} taps acked, {len(result.errors)} "
        f"errors, RSS {rss:.1f} MB{detail}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
