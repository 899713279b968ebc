"""End to end: `kit run --simulate` under a fake systemd (NOTIFY_SOCKET), button by SIGUSR1."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.hardware.sim.analysis import analyse_film
from kit.testing.launch import KitProcess, stored_takes
from kit.testing.systemd import FakeSystemd, notified


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


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
    for take_id, visit_id, _ in takes:
        mp4 = data / "visits" / visit_id / "takes" / take_id / "take.mp4"
        report = analyse_film(mp4)
        assert len(report.frames) >= 45  # ~2 s or more of 30 fps
        assert report.numbers == list(range(len(report.frames)))
        assert report.unmatched_white_s == []
        assert report.max_abs_offset_s <= 0.005
