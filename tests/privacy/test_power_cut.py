"""A power cut mid-visit: every write that was not fsync'd is lost, and so is the key the kit
held in RAM. The organisation's key still opens all but at most the last second."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kit.clock import NS_PER_S
from kit.compose import Cutting
from kit.crypto.decrypt import decrypt
from kit.errors import StateError
from kit.hardware.sim.analysis import analyse_film
from kit.model import Access, TakeState, VisitState
from kit.store import layout
from kit.testing.kits import real_kit
from kit.testing.privacy import consent, org_key


class Durability:
    """Watches every fsync: how long each file was when it was last made durable, and which
    names each directory held when its entries were last made durable."""

    def __init__(self, fsync: Callable[[int], None]) -> None:
        self._fsync = fsync
        self.lengths: dict[int, int] = {}  # inode -> length (a rename keeps the inode)
        self.entries: dict[str, set[str]] = {}

    def __call__(self, fd: int) -> None:
        self._fsync(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.isdir(path):
            self.entries[path] = set(os.listdir(path))
        else:
            stat = os.fstat(fd)
            self.lengths[stat.st_ino] = stat.st_size

    def durable_copy(self, data: Path, to: Path) -> None:
        """``data`` as a power cut now would leave it: unsynced bytes and names dropped."""
        for path in sorted(data.rglob("*")):
            rel = path.relative_to(data)
            if path.is_dir():
                (to / rel).mkdir(parents=True, exist_ok=True)
                continue
            if path.name.startswith(layout.DATABASE):
                shutil.copyfile(path, to / rel)  # SQLite syncs itself (synchronous=FULL)
                continue
            named = path.name in self.entries.get(str(path.parent), set())
            length = self.lengths.get(path.stat().st_ino)
            if not named or length is None:
                continue  # never durable: a power cut leaves no trace of it
            (to / rel).parent.mkdir(parents=True, exist_ok=True)
            with path.open("rb") as src, (to / rel).open("wb") as dst:
                dst.write(src.read(length))


@pytest.fixture
def durability(monkeypatch: pytest.MonkeyPatch) -> Iterator[Durability]:
    watch = Durability(os.fsync)
    monkeypatch.setattr(os, "fsync", watch)
    yield watch


def test_a_power_cut_loses_at_most_the_last_second(tmp_path: Path, durability: Durability) -> None:
    data, after = tmp_path / "data", tmp_path / "after-the-cut"
    kit = real_kit(data, cutting=Cutting.NONE)
    try:
        visit = kit.library.start_visit("F-0042", consent())
        kit.hardware.camera.open()
        take = kit.takes.start(visit.id)
        first = kit.recorder.wait_for_first_frame(timeout_s=10)
        assert first is not None
        time.sleep(4.3)
        recorded_ns = (kit.recorder.last_frame_ns or first) - first
        durability.durable_copy(data, after)  # the power goes here
        kit.takes.stop()
    finally:
        kit.hardware.camera.close()
        kit.close()

    # The kit starts again: its RAM (and the key in it) is gone.
    restarted = real_kit(after, cutting=Cutting.NONE)
    try:
        restarted.recover()
        assert [v.id for v in restarted.lost_keys] == [visit.id]
        lost = restarted.library.visit(visit.id)
        assert lost.access == Access.KEY_LOST and lost.state == VisitState.ENDED
        assert lost.case_ref == ""  # the kit can no longer read even the case reference
        assert restarted.store.db.take(take.id).state == TakeState.RECORDING  # not its to finish
        with pytest.raises(StateError):
            restarted.library.may_record(lost)
    finally:
        restarted.close()

    out = tmp_path / "out"
    [decrypted] = decrypt(after, [org_key().secret], out)
    assert decrypted.finished_takes == [take.id] and decrypted.damaged == []
    film = out / layout.take_mp4(layout.take_dir(visit.id, take.id))
    report = analyse_film(film)
    frames = len(report.frames)
    recorded_frames = recorded_ns * 30 // NS_PER_S + 1
    assert report.numbers == list(range(frames)), "the kept frames are whole and in order"
    print(f"power cut after {recorded_frames} frames: {frames} decrypted")
    assert frames >= recorded_frames - 30, f"{frames} of {recorded_frames} frames survived"
    assert report.max_abs_offset_s <= 0.005
