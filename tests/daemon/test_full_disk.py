"""The storage guard on a real, small filesystem (a tmpfs the test mounts as root)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.config import load_config
from kit.daemon.storage import StorageGuard
from kit.hardware.sim.analysis import analyse_film
from kit.store import layout
from kit.testing.kits import org_store, plain_copy, start_visit
from kit.testing.launch import KitProcess, stored_takes
from kit.testing.phone import HttpPhone
from kit.testing.systemd import FakeSystemd, notified
from tests.tmpfs import small_tmpfs

MB = 1 << 20
ENV = {
    "KIT_CAMERA_BITRATE": "1000000",
    "KIT_STORAGE_MIN_FREE_MINUTES_TO_START": "1.0",
    "KIT_STORAGE_STOP_AT_FREE_MINUTES": "0.5",
}


@pytest.fixture
def card(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "card", "64m") as mount:
        yield mount


def _set_free(card: Path, filler: Path, guard: StorageGuard, minutes: float) -> None:
    """Resize the filler so the card has ``minutes`` of recording left."""
    filler.unlink(missing_ok=True)
    free = shutil.disk_usage(card).free
    want = int(minutes * 60 * guard.rates.peak_bytes_per_s)
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, free - want))
        f.flush()
        os.fsync(f.fileno())


def _mp4(take: tuple[str, str, str]) -> str:
    return layout.take_mp4(layout.take_dir(take[1], take[0]))


@pytest.mark.slow
def test_guard_refuses_then_stops_cleanly_and_keeps_everything(card: Path, tmp_path: Path) -> None:
    guard = StorageGuard.from_config(load_config(path=None, environ=ENV))
    data, filler = card / "data", card / "filler.bin"
    systemd = FakeSystemd(tmp_path / "notify.sock")
    config = tmp_path / "empty.toml"
    config.write_text("")
    kit = KitProcess(
        data, "--width", "640", "--height", "360", env={**notified(systemd, config), **ENV}
    )

    def press_and_wait(status: str, timeout: float = 15) -> None:
        at = time.monotonic()
        kit.signal(signal.SIGUSR1)
        systemd.wait_for(f"STATUS={status}", timeout=timeout, after=at)

    try:
        systemd.wait_for("READY=1", timeout=60)
        running = kit.wait_ready()
        start_visit(HttpPhone(running.url, running.code))
        # 1. An earlier take, with room to spare.
        press_and_wait("recording")
        time.sleep(2)
        press_and_wait("idle", timeout=30)
        first = stored_takes(data)[0]
        before = hashlib.sha256((data / _mp4(first)).read_bytes()).hexdigest()

        # 2. Below the start floor: no take starts, and the kit says why.
        _set_free(card, filler, guard, minutes=0.8)
        press_and_wait("idle, 1 min of storage left (low); not enough space to record")
        assert len(stored_takes(data)) == 1

        # 3. Just above it: a take starts; the card fills while it records.
        _set_free(card, filler, guard, minutes=1.2)
        press_and_wait("recording")
        started = time.monotonic()
        with filler.open("ab") as f:
            while True:
                systemd.pump()
                if any("nearly full" in m for _, m in systemd.messages):
                    break
                assert time.monotonic() - started < 60, systemd.messages[-5:]
                if shutil.disk_usage(card).free > 0.3 * 60 * guard.rates.peak_bytes_per_s:
                    f.write(b"\0" * MB)
                    f.flush()
                time.sleep(0.1)
        systemd.wait_for("STATUS=error", timeout=30, after=started)

        # 4. Still full: another press is refused, nothing is deleted.
        at = time.monotonic()
        kit.signal(signal.SIGUSR1)
        systemd.wait_for("STATUS=error, 0 min", timeout=10, after=at)  # refused: stays in error
        code = kit.stop()
    finally:
        if kit.proc.poll() is None:
            kit.kill()
        systemd.close()
    out = kit.text
    assert code in (0, 1), out[-3000:]
    takes = stored_takes(data)
    assert [t[2] for t in takes] == ["ready", "ready"], out[-3000:]
    assert hashlib.sha256((data / _mp4(first)).read_bytes()).hexdigest() == before
    filler.unlink()  # room for the database's journal: the organisation reads the take
    store = org_store(data)
    try:
        film = plain_copy(store.files, _mp4(takes[1]), tmp_path / "plain")
    finally:
        store.close()
    report = analyse_film(film)
    assert len(report.frames) >= 30
    assert report.numbers == list(range(len(report.frames)))
    assert report.max_abs_offset_s <= 0.005
