"""End to end: `kit run --simulate` under a fake systemd (NOTIFY_SOCKET), button by SIGUSR1."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.hardware.sim.analysis import analyse_film
from tests.daemon.kit_process import FakeSystemd, start_kit


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


def _takes(data: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(data / "kit.db")
    try:
        return db.execute("SELECT id, session_id, state FROM takes ORDER BY rowid").fetchall()
    finally:
        db.close()


@pytest.mark.slow
def test_ready_watchdog_button_and_sigterm_mid_take(tmp_path: Path, systemd: FakeSystemd) -> None:
    data = tmp_path / "data"
    proc = start_kit(data, systemd, tmp_path, {"WATCHDOG_USEC": "1500000"})
    try:
        ready = systemd.wait_for("READY=1", timeout=60)
        # The watchdog keeps arriving: at least every half of WatchdogSec (1.5 s).
        systemd.wait_for("WATCHDOG=1", timeout=3, after=ready)
        time.sleep(2.0)
        systemd.pump()
        assert systemd.count("WATCHDOG=1", after=ready) >= 3

        pressed = time.monotonic()
        proc.send_signal(signal.SIGUSR1)  # press: start
        systemd.wait_for("STATUS=recording", timeout=10, after=pressed)
        time.sleep(2.5)
        pressed = time.monotonic()
        proc.send_signal(signal.SIGUSR1)  # press: stop
        systemd.wait_for("STATUS=idle", timeout=30, after=pressed)
        assert [t[2] for t in _takes(data)] == ["ready"]

        pressed = time.monotonic()
        proc.send_signal(signal.SIGUSR1)  # press: start a second take
        systemd.wait_for("STATUS=recording", timeout=10, after=pressed)
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)  # mid-take
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-3000:]
    systemd.pump()
    assert any(m.startswith("STOPPING=1") for _, m in systemd.messages)

    takes = _takes(data)
    assert [t[2] for t in takes] == ["ready", "ready"]
    for take_id, session_id, _ in takes:
        mp4 = data / "sessions" / session_id / "takes" / take_id / "take.mp4"
        report = analyse_film(mp4)
        assert len(report.frames) >= 45  # ~2 s or more of 30 fps
        assert report.numbers == list(range(len(report.frames)))
        assert report.unmatched_white_s == []
        assert report.max_abs_offset_s <= 0.005
