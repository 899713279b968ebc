"""End to end: `kit run --simulate` under a fake systemd (NOTIFY_SOCKET), button by SIGUSR1."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.hardware.sim.analysis import analyse_film
from kit.store import layout
from kit.testing.kits import org_store, plain_copy, start_visit
from kit.testing.launch import KitProcess, stored_takes
from kit.testing.phone import HttpPhone
from kit.testing.systemd import FakeSystemd, notified


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


def _wait_for_status_saying(systemd: FakeSystemd, text: str, timeout: float, after: float) -> str:
    """The first STATUS= message (at or after ``after``) that says ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        systemd.pump()
        for at, line in systemd.messages:
            if at >= after and line.startswith("STATUS=") and text in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no STATUS saying {text!r} in {timeout} s: {systemd.messages[-10:]}")


@pytest.mark.slow
def test_ready_watchdog_button_and_sigterm_mid_take(tmp_path: Path, systemd: FakeSystemd) -> None:
    data = tmp_path / "data"
    config = tmp_path / "empty.toml"
    config.write_text("")
    env = {**notified(systemd, config), "WATCHDOG_USEC": "1500000"}
    kit = KitProcess(data, "--width", "640", "--height", "360", env=env)
    try:
        ready = systemd.wait_for("READY=1", timeout=60)
        # The watchdog keeps arriving: at least every half of WatchdogSec (1.5 s).
        systemd.wait_for("WATCHDOG=1", timeout=3, after=ready)
        time.sleep(2.0)
        systemd.pump()
        assert systemd.count("WATCHDOG=1", after=ready) >= 3

        # No visit open: the button records nothing, and the status says why.
        pressed = time.monotonic()
        kit.signal(signal.SIGUSR1)
        status = _wait_for_status_saying(systemd, "no visit is open", timeout=10, after=pressed)
        assert status.startswith("STATUS=idle") and "the family's consent" in status
        assert stored_takes(data) == []

        running = kit.wait_ready()
        visit = start_visit(HttpPhone(running.url, running.code), "F-0042")
        pressed = time.monotonic()
        kit.signal(signal.SIGUSR1)  # press: start
        systemd.wait_for("STATUS=recording", timeout=10, after=pressed)
        time.sleep(2.5)
        pressed = time.monotonic()
        kit.signal(signal.SIGUSR1)  # press: stop
        systemd.wait_for("STATUS=idle", timeout=30, after=pressed)
        assert [t[2] for t in stored_takes(data)] == ["ready"]

        pressed = time.monotonic()
        kit.signal(signal.SIGUSR1)  # press: start a second take
        systemd.wait_for("STATUS=recording", timeout=10, after=pressed)
        time.sleep(2.0)
        code = kit.stop()  # SIGTERM, mid-take
    finally:
        if kit.proc.poll() is None:
            kit.kill()
    assert code == 0, kit.text[-3000:]
    systemd.pump()
    assert any(m.startswith("STOPPING=1") for _, m in systemd.messages)

    takes = stored_takes(data)
    assert [t[2] for t in takes] == ["ready", "ready"]
    assert {t[1] for t in takes} == {visit["id"]}
    store = org_store(data)  # the takes are encrypted at rest: measured from plain copies
    try:
        for take_id, visit_id, _ in takes:
            rel = layout.take_mp4(layout.take_dir(visit_id, take_id))
            assert b"ftyp" not in store.files.path(rel).read_bytes()[:64]
            report = analyse_film(plain_copy(store.files, rel, tmp_path / "plain" / take_id))
            assert len(report.frames) >= 45  # ~2 s or more of 30 fps
            assert report.numbers == list(range(len(report.frames)))
            assert report.unmatched_white_s == []
            assert report.max_abs_offset_s <= 0.005
    finally:
        store.close()
