"""``kit bench siege``: does a stranger holding connections open slow a phone's taps?

A paired phone tags every 100 ms during a take, first alone (the baseline), then
while a stranger on the kit's Wi-Fi holds ``--connections`` (500) connections open
from raw sockets: half of them idle (connected, nothing sent), half trickling an
unfinished header, one byte every few seconds (slowloris), spread over enough source
addresses that the kit's cap per address (web.server) does not refuse them; a trickling
connection the kit closes (its headers took too long) is opened again. Printed for both: the
tap -> durable ack time, p50/p95/p99/max (target under siege: p99 <= 50 ms), and
what became of the siege: connections the kit held, the idle ones it closed after
its ``channel_timeout`` (30 s), the trickling ones still open, and the daemon's
open files against its limit (kit/daemon/run.py raises it for 2,000 connections;
waitress polls with ``poll()``, so more than 1,024 of them work).

By default it starts ``kit run --simulate`` on a free port with a temporary data
directory; ``--url``/``--code`` (and ``--pid`` for the daemon's limits) point it at a
kit already running. :func:`run` is what the tests call, with fewer connections.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import resource
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from kit.bench import figures as figures_json
from kit.bench import target
from kit.bench.tagging import NS_PER_MS, TARGET_P99_MS, Phone, percentile, start_take
from web.server import HEADER_DEADLINE_S, PER_ADDRESS


@dataclass
class Phase:
    """One run of taps: their ack times (ms) and what went wrong."""

    name: str
    ack_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    taps: int = 0

    def line(self) -> str:
        values = self.ack_ms
        return (
            f"{self.name:<44} p50 {percentile(values, 50):7.2f}  p95 {percentile(values, 95):7.2f}"
            f"  p99 {percentile(values, 99):7.2f}  max {max(values, default=float('nan')):7.2f} ms"
            f"  ({len(values)}/{self.taps} acked)"
        )


@dataclass
class Siege:
    """What became of the stranger's connections."""

    wanted: int
    opened: int = 0
    refused: int = 0
    idle_closed: int = 0
    trickling_closed: int = 0  # by the kit (a header too slow), each opened again
    reopened: int = 0
    sources: int = 0  # addresses the connections came from (0: this machine's default)
    held_by_kit: int = 0  # the daemon's open sockets while the siege was on
    seconds: float = 0.0
    fresh_ms: float | None = None  # a new connection's GET /api/state under siege


@dataclass
class Result:
    baseline: Phase
    siege_phase: Phase
    siege: Siege
    limits: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.baseline.errors
            and not self.siege_phase.errors
            and len(self.siege_phase.ack_ms) == self.siege_phase.taps
            and self.siege.opened == self.siege.wanted
            and self.siege.fresh_ms is not None
            and percentile(self.siege_phase.ack_ms, 99) <= TARGET_P99_MS
        )


def tap(phone: Phone, phase: Phase, taps: int, interval_s: float, prefix: str) -> None:
    """``taps`` taps, one every ``interval_s`` (on a fixed schedule: a slow ack does not
    delay the next tap), each timed from send to the answer read."""
    began = time.monotonic()
    for n in range(taps):
        pause = began + n * interval_s - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        phase.taps += 1
        tag_id = f"{prefix}-{n:05d}-{time.monotonic_ns() % 10**9:09d}"
        body = {"id": tag_id, "label": "Guiding", "delay_ms": 0}
        t0 = time.perf_counter_ns()
        try:
            status, answer, _ = phone.request("POST", "/api/tags", body)
        except (OSError, http.client.HTTPException) as exc:
            phase.errors.append(f"tap {n}: {exc!r}")
            continue
        took = (time.perf_counter_ns() - t0) / NS_PER_MS
        if status != 201:
            phase.errors.append(f"tap {n}: {status} {answer}")
            continue
        phase.ack_ms.append(took)


def stranger_addresses(host: str, connections: int) -> list[str] | None:
    """Source addresses for a stranger's ``connections`` to ``host``, each within the kit's
    cap per address (web.server.PER_ADDRESS): a stranger with many devices. Only for a
    kit on this machine (all of 127/8 is the loopback); None (the default route) else."""
    if not host.startswith("127."):
        return None
    each = PER_ADDRESS - 4  # the kit may still hold a closed connection for a moment
    return [f"127.0.{n // 250}.{2 + n % 250}" for n in range(-(-connections // each))]


def stranger_connections(
    address: tuple[str, int], count: int, timeout_s: float = 10.0
) -> Iterator[socket.socket]:
    """``count`` connections to ``address``, opened one at a time as they are taken, from
    the addresses :func:`stranger_addresses` gives (the default route elsewhere)."""
    sources = stranger_addresses(address[0], count)
    for n in range(count):
        bind = None if sources is None else (sources[n % len(sources)], 0)
        yield socket.create_connection(address, timeout=timeout_s, source_address=bind)


class Stranger:
    """``count`` connections to ``address``: one in ``trickling_every`` trickling an
    unfinished header, a byte every ``trickle_s`` (spread over that period), the others
    idle (by default: half and half). A trickling connection the kit closes is opened
    again (as slowloris does). ``sources``: the addresses they come from, in turn."""

    HEADER = b"GET / HTTP/1.1\r\nHost: 10.42.0.1\r\nX-Slow: "

    def __init__(
        self,
        address: tuple[str, int],
        count: int,
        trickle_s: float,
        trickling_every: int = 2,
        sources: Sequence[str] | None = None,
    ) -> None:
        self.address = address
        self.siege = Siege(wanted=count)
        self.trickle_s = trickle_s
        self.sources = list(sources or [])
        self.idle: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="stranger", daemon=True)
        for n in range(count):
            s = self._connect(n)
            if s is None:
                self.siege.refused += 1
                continue
            if n % trickling_every == trickling_every - 1:
                self._send(s, self.HEADER)
                self.trickling.append(s)
            else:
                self.idle.append(s)
        self.siege.opened = len(self.idle) + len(self.trickling)
        self._began = time.monotonic()
        self._thread.start()

    def _connect(self, n: int) -> socket.socket | None:
        source = (self.sources[n % len(self.sources)], 0) if self.sources else None
        try:
            s = socket.create_connection(self.address, timeout=10, source_address=source)
        except OSError:
            return None
        s.setblocking(False)
        return s

    @staticmethod
    def _send(s: socket.socket, data: bytes) -> bool:
        try:
            s.send(data)
        except OSError:
            return False
        return True

    def _trickle(self) -> None:
        while not self._stop.is_set():
            gap = self.trickle_s / max(1, len(self.trickling))
            for i, s in enumerate(list(self.trickling)):
                if self._stop.wait(gap):
                    return
                if self._send(s, b"a") and not self._closed(s):
                    continue
                # The kit closed it (its header took too long): open another.
                self.siege.trickling_closed += 1
                with contextlib.suppress(OSError):
                    s.close()
                again = self._connect(i)
                if again is not None and self._send(again, self.HEADER):
                    self.trickling[i] = again
                    self.siege.reopened += 1

    @staticmethod
    def _closed(s: socket.socket) -> bool:
        """Whether the kit closed ``s`` (a read at its end, or a reset)."""
        try:
            return s.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def finish(self) -> Siege:
        self._stop.set()
        self._thread.join(timeout=self.trickle_s + 5)
        self.siege.seconds = time.monotonic() - self._began
        self.siege.idle_closed = sum(self._closed(s) for s in self.idle)
        self.siege.trickling_closed += sum(self._closed(s) for s in self.trickling)
        for s in [*self.idle, *self.trickling]:
            with contextlib.suppress(OSError):
                s.close()
        return self.siege


def fresh_connection(phone: Phone, timeout_s: float = 10.0) -> float | None:
    """How long a phone's new connection waits for its state (ms), or None if it got no
    answer within ``timeout_s`` (the kit at its connection limit accepts none)."""
    conn = http.client.HTTPConnection(phone.host, phone.port, timeout=timeout_s)
    t0 = time.perf_counter_ns()
    try:
        conn.request("GET", "/api/state", headers={"Cookie": phone.cookie})
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return (time.perf_counter_ns() - t0) / NS_PER_MS if response.status == 200 else None


def open_files(pid: int | None) -> int:
    if pid is None:
        return 0
    with contextlib.suppress(OSError):
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return 0


def daemon_limits(pid: int | None) -> str:
    """The daemon's open-files limit as /proc says (soft/hard), or "" without a pid."""
    if pid is None:
        return ""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"soft {soft}, hard {hard}"
    return ""


def allow_sockets(count: int) -> None:
    """Raise this process's own open-files limit for ``count`` sockets (as far as it may)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        ceiling = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def run(
    base_url: str,
    code: str,
    *,
    connections: int = 500,
    taps: int = 450,
    interval_s: float = 0.1,
    trickle_s: float = 5.0,
    pid: int | None = None,
) -> Result:
    """Pair a phone, record, tap alone, then tap under siege; stop the take."""
    allow_sockets(connections)
    parts = urlsplit(base_url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    phone = Phone(base_url, "siege-phone")
    phone.pair(code)
    start_take(phone, "Siege", timeout_s=20.0)
    time.sleep(2.0)  # past the take's first moments (camera, encoder, files opening)
    baseline = Phase("baseline: a tap every %g ms" % (interval_s * 1000))
    tap(phone, baseline, taps, interval_s, "base")
    sources = stranger_addresses(address[0], connections)
    stranger = Stranger(address, connections, trickle_s, sources=sources)
    time.sleep(1.0)  # let the kit accept them all
    held = open_files(pid)
    fresh_ms = fresh_connection(phone)
    phase = Phase(f"under siege: {connections} connections")
    tap(phone, phase, taps, interval_s, "siege")
    siege = stranger.finish()
    siege.held_by_kit = held
    siege.sources = len(sources or ())
    siege.fresh_ms = fresh_ms
    phone.request("POST", "/api/stop")
    phone.close()
    return Result(baseline, phase, siege, daemon_limits(pid))


def report(result: Result, where: str, trickle_s: float) -> str:
    siege = result.siege
    p99 = percentile(result.siege_phase.ack_ms, 99)
    verdict = "OK" if p99 <= TARGET_P99_MS else "TOO SLOW"
    idle, trickling = (siege.opened + 1) // 2, siege.opened // 2
    lines = [
        f"siege bench against {where}",
        result.baseline.line(),
        result.siege_phase.line() + f"   (target p99 <= {TARGET_P99_MS:.0f} ms: {verdict})",
        f"the stranger: {siege.opened}/{siege.wanted} connections opened ({siege.refused} "
        f"refused) from {siege.sources or 'its one'} address(es), at most {PER_ADDRESS} each: "
        f"{idle} idle, {trickling} trickling a header byte every {trickle_s:g} s",
        f"after {siege.seconds:.0f} s: the kit had closed {siege.idle_closed}/{idle} idle ones "
        f"(channel_timeout 30 s) and trickling ones {siege.trickling_closed} times (headers "
        f"not done in {HEADER_DEADLINE_S:g} s; the stranger opened {siege.reopened} again)",
    ]
    fresh = "no answer in 10 s" if siege.fresh_ms is None else f"{siege.fresh_ms:.1f} ms"
    lines.append(f"a phone's new connection under siege: its state in {fresh}")
    if siege.held_by_kit:
        lines.append(
            f"daemon's open files under siege: {siege.held_by_kit} "
            f"(open-files limit: {result.limits or 'unknown'})"
        )
    errors = [*result.baseline.errors, *result.siege_phase.errors]
    lines.append(f"errors: {len(errors)}")
    lines += [f"  {e}" for e in errors[:10]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench siege", description=__doc__)
    target.add_arguments(parser, pid="its limits", small=True)
    parser.add_argument("--connections", type=int, default=500, help="the stranger's (500)")
    parser.add_argument("--taps", type=int, default=450, help="taps in each phase (450)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between taps (0.1)")
    parser.add_argument("--trickle", type=float, default=5.0, help="seconds between bytes (5)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if min(args.connections, args.taps) < 1 or min(args.interval, args.trickle) <= 0:
        parser.error("--connections, --taps, --interval and --trickle must be positive")
    target.check_arguments(parser, args)
    options = {
        "connections": args.connections,
        "taps": args.taps,
        "interval_s": args.interval,
        "trickle_s": args.trickle,
    }
    with target.target(args, "siege") as kit:
        result = run(kit.url, kit.code, pid=kit.pid, **options)
    print(report(result, kit.where, args.trickle))
    if args.json:
        figures = {
            phase.name: {p: percentile(phase.ack_ms, p) for p in (50, 95, 99, 100)}
            for phase in (result.baseline, result.siege_phase)
        }
        figures_json.write(args.json, {**figures, "ok": result.ok})
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
