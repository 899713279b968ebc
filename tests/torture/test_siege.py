"""Issue #14, must-shows 6 (the siege) and 7 (load), as samples of ``kit bench siege`` and
``kit bench load`` against ``kit run --simulate``: a stranger's 200 idle and trickling
connections while a phone tags every 100 ms; more connections than select() can watch;
eight phones tagging for a minute and more. The benchmarks carry the long runs and the
50 ms target; these assert nothing is lost or refused, and a sane p99."""

from __future__ import annotations

import http.client
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.bench import load, siege
from kit.bench.tagging import Phone, percentile
from kit.daemon.run import WEB_CONNECTION_LIMIT
from kit.testing.launch import KitProcess, RunningKit, stored
from tests.torture.helpers import SMALL
from web.server import PER_ADDRESS

pytestmark = pytest.mark.slow

STRANGER = "127.0.0.2"  # the loopback answers all of 127/8: the phones come from 127.0.0.1
SANE_P99_MS = 500.0  # a timing bound for a shared CI machine; the target is the bench's


@pytest.fixture(scope="module")
def besieged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningKit]:
    """The daemon, started with an open-files limit of 1,024 (a distribution's default),
    which kit/daemon/run.py must raise itself."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 1024 if soft == resource.RLIM_INFINITY else min(1024, soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        process = KitProcess(tmp_path_factory.mktemp("siege") / "data", *SMALL)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with process:
        yield process.wait_ready()


def _limits(kit: RunningKit) -> tuple[int, int]:
    for line in Path(f"/proc/{kit.process.proc.pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), (1 << 62 if hard == "unlimited" else int(hard))
    raise AssertionError("no open-files limit in /proc")


def test_the_daemon_raises_its_open_files_limit_for_the_web_servers_connections(
    besieged: RunningKit,
) -> None:
    soft, hard = _limits(besieged)
    assert soft >= min(hard, WEB_CONNECTION_LIMIT + 1024), (soft, hard)


def test_a_phone_tags_quickly_while_a_stranger_holds_200_connections(
    besieged: RunningKit,
) -> None:
    result = siege.run(
        besieged.url,
        besieged.code,
        connections=200,
        taps=100,
        interval_s=0.1,
        trickle_s=2.0,
        pid=besieged.process.proc.pid,
    )
    print(siege.report(result, besieged.url, 2.0))
    assert not result.baseline.errors and not result.siege_phase.errors
    assert len(result.siege_phase.ack_ms) == 100
    assert result.siege.opened == 200 and result.siege.refused == 0
    assert result.siege.held_by_kit >= 200  # accepted, not left in the listen backlog
    assert result.siege.sources >= 200 / PER_ADDRESS  # spread so the cap refuses none
    assert result.siege.fresh_ms is not None, "a phone's new connection got no answer"
    p99 = percentile(result.siege_phase.ack_ms, 99)
    assert p99 < SANE_P99_MS, f"tap ack p99 under siege {p99:.0f} ms"
    assert "Traceback" not in besieged.process.text


def test_more_connections_than_select_can_watch_do_not_stop_the_kit(
    besieged: RunningKit,
) -> None:
    """1,100 idle connections: the daemon's descriptors pass 1,024, which select() cannot
    watch (waitress polls with poll(): asyncore_use_poll=True); a phone still tags."""
    count = 1100
    siege.allow_sockets(count)
    pid = besieged.process.proc.pid
    phone = Phone(besieged.url, "past-1024")
    phone.pair(besieged.code)
    held: list[socket.socket] = []
    try:
        address = ("127.0.0.1", int(besieged.url.rsplit(":", 1)[1]))
        held = list(siege.stranger_connections(address, count))
        deadline = time.monotonic() + 20
        while sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir()) < count:
            assert time.monotonic() < deadline, "the kit did not accept the connections"
            time.sleep(0.2)
        began = time.monotonic()
        status, body, _ = phone.request("GET", "/api/state")
        assert status == 200, body
        assert time.monotonic() - began < 5.0
    finally:
        for s in held:
            s.close()
        phone.close()
    assert "Traceback" not in besieged.process.text


def test_eight_phones_tag_for_a_minute_and_nothing_is_lost(tmp_path: Path) -> None:
    """``kit bench load`` for 75 s: every acknowledged tap in its take, no frame dropped."""
    with KitProcess(tmp_path / "data", *SMALL) as process:
        kit = process.wait_ready()
        result = load.run(
            kit.url, kit.code, phones=8, seconds=75, pid=process.proc.pid, floor_dir=tmp_path
        )
        print(load.report(result, kit.url))
        assert len(result.floor_ms) >= 75 * 5  # the storage's floor, timed beside the take
        assert not result.errors, result.errors[:10]
        assert result.sent >= 8 * 75 // 5
        assert not result.lost, result.lost[:10]
        assert result.dropped_frames == 0, result.takes
        assert all(t["state"] == "ready" for t in result.takes), result.takes
        # A sanity bound, not the target (the bench's): above the worst stall the storage
        # itself had in the same run, as no durable ack can beat the disk it waits on.
        p99, stall = percentile(result.ack_ms, 99), max(result.floor_ms)
        assert p99 < SANE_P99_MS + stall, f"tap ack p99 {p99:.0f} ms, the disk's worst {stall:.0f}"
        assert "Traceback" not in process.text


def test_a_soak_of_visits_checks_and_ends_each_visit(tmp_path: Path) -> None:
    """``kit bench load --soak-hours … --visit-per-take``, in 45 s: three takes, each in a
    visit of its own, each visit's tags checked before it ended, nothing lost."""
    with KitProcess(tmp_path / "data", *SMALL) as process:
        kit = process.wait_ready()
        result = load.run(
            kit.url, kit.code, phones=3, seconds=45, take_seconds=15, visit_per_take=True
        )
        print(load.report(result, kit.url))
        assert not result.errors and not result.lost, (result.errors[:5], result.lost[:5])
        assert result.visits == 3 and len(result.takes) == 3, result.takes
        assert len({t["visit_id"] for t in result.takes}) == 3
        assert all(t["state"] == "ready" for t in result.takes), result.takes
        assert set(result.acked.values()) == {t["id"] for t in result.takes}  # all tagged
        ended = stored(kit.data, "SELECT id FROM visits WHERE ended_ns IS NOT NULL")
        assert len(ended) == 2, ended  # the first two ended; the last is left open
        assert "Traceback" not in process.text


def _open_stream(kit: RunningKit, phone: Phone) -> tuple[http.client.HTTPConnection, int]:
    conn = http.client.HTTPConnection(phone.host, phone.port, timeout=10)
    conn.request("GET", "/api/events", headers={"Cookie": phone.cookie})
    response = conn.getresponse()
    if response.status == 200:
        response.readline()  # "retry: ...": the stream is open
    return conn, response.status


def test_eight_phones_each_get_two_live_event_streams(tmp_path: Path) -> None:
    """Eight phones, each with the page open in two tabs: all sixteen streams are live and
    a request still gets a thread."""
    with KitProcess(tmp_path / "data", *SMALL) as process:
        kit = process.wait_ready()
        phones = []
        for n in range(8):
            phone = Phone(kit.url, f"phone-{n + 1}")
            phone.pair(kit.code)
            phones.append(phone)
        opened = [_open_stream(kit, p) for p in phones + phones]
        try:
            statuses = [status for _, status in opened]
            assert statuses == [200] * 16, statuses
            tapper = phones[0]
            assert tapper.request("GET", "/api/state")[0] == 200  # threads left for requests
        finally:
            for conn, _ in opened:
                conn.close()
            for phone in phones:
                phone.close()


def test_a_phone_connects_while_a_stranger_trickles_more_connections_than_the_limit(
    besieged: RunningKit,
) -> None:
    """2,100 trickling connections from the stranger's one address, more than the kit's
    whole connection limit: the kit holds web.server.PER_ADDRESS of them and refuses the
    rest, so a phone's new connection is answered at once."""
    count = WEB_CONNECTION_LIMIT + 100
    siege.allow_sockets(count)
    phone = Phone(besieged.url, "late-comer")
    phone.pair(besieged.code)
    address = ("127.0.0.1", int(besieged.url.rsplit(":", 1)[1]))
    pid = besieged.process.proc.pid
    before = siege.open_files(pid)
    stranger = siege.Stranger(address, count, trickle_s=2.0, trickling_every=1, sources=[STRANGER])
    try:
        fresh_ms = siege.fresh_connection(phone, timeout_s=10.0)
        held = siege.open_files(pid) - before
    finally:
        stranger.finish()
        phone.close()
    assert held <= PER_ADDRESS + 8, f"the kit held {held} of the stranger's connections"
    assert fresh_ms is not None, "a phone's new connection got no answer in 10 s"
