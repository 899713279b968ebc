"""Export jobs end to end: a sealed visit copied to a (simulated, then udisks-faked) USB
stick in its own niced thread, its progress as events in order, verified, ejected, in the
audit trail; and every way it can go wrong said clearly, with nothing half-written left
looking like a bundle."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kit.audit.chain import AuditKind
from kit.audit.log import AuditLog
from kit.clock import MonotonicClock
from kit.compose import SIM_USB_DIR, Cutting, compose, usb_sticks
from kit.daemon.events import Event, EventKind, EventLog, ExportPhase, ExportProgress, Payload
from kit.daemon.wallclock import WallClock
from kit.errors import NotFound
from kit.handoff.bundle import NotBundleable
from kit.handoff.jobs import ExportBusy, Exports
from kit.handoff.service import HandOff
from kit.handoff.signing import Signer
from kit.handoff.usb import (
    EJECTED_MARK,
    STICK_INFO,
    FolderSticks,
    Stick,
    StickError,
    StickGone,
    Sticks,
    StickUnusable,
    UdisksSticks,
)
from kit.handoff.verify import verify_bundle
from kit.hardware.factory import simulated_hardware
from kit.store import layout
from kit.store.store import Store
from kit.testing.handoff import record_sealed_visit
from kit.testing.kits import real_kit, small_config
from kit.testing.privacy import consent
from tests.handoff.test_usb import FakeUdisks, usb_disk
from tests.tmpfs import small_tmpfs

PHASES = ["hashing", "writing", "verifying", "ejecting", "done"]


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("kit") / "data"
    return data, record_sealed_visit(data, seconds=3)


class Rig:
    """The hand-off of the sealed visit: its store, events, audit log, and a USB folder."""

    def __init__(self, data: Path, visit_id: str, usb: Path) -> None:
        self.data = data
        self.visit_id = visit_id
        self.usb = usb
        self.store = Store(data)
        clock = MonotonicClock()
        self.audit = AuditLog(self.store.files, clock, WallClock(clock))
        self.events = EventLog(capacity=5000)
        self.handoff = HandOff(
            self.store.db, data, Signer.load_or_create(data / layout.SIGNING_KEY)
        )
        self.jobs: list[Exports] = []
        self._before = len(self._exported())  # the data directory is shared by the module

    def stick(self, name: str = "VIGSTICK", fstype: str = "exfat") -> Path:
        folder = self.usb / name
        folder.mkdir(parents=True)
        (folder / STICK_INFO).write_text(json.dumps({"fstype": fstype}))
        return folder

    def exports(self, sticks: Sticks | None = None, **options: Any) -> Exports:
        exports = Exports(
            self.handoff, sticks or FolderSticks(self.usb), self.events, self.audit, **options
        )
        self.jobs.append(exports)
        return exports

    def progress(self) -> list[dict[str, Any]]:
        return [e.data for e in self.events.since(0) if e.kind == EventKind.EXPORT]

    def _exported(self) -> list[dict[str, Any]]:
        lines = (self.data / layout.AUDIT).read_text("utf-8").splitlines()
        entries = [json.loads(line) for line in lines]
        return [e for e in entries if e["kind"] == AuditKind.EXPORTED.value]

    def audited(self) -> list[dict[str, Any]]:
        """The export entries this test made."""
        return self._exported()[self._before :]

    def close(self) -> None:
        for exports in self.jobs:
            exports.close()
        self.store.close()


@pytest.fixture
def rig(sealed: tuple[Path, str], tmp_path: Path) -> Iterator[Rig]:
    r = Rig(*sealed, tmp_path / "usb")
    try:
        yield r
    finally:
        r.close()


def _finished(exports: Exports) -> ExportProgress:
    job = exports.wait(60)
    assert job is not None and not job.running, job
    return job


def test_a_visit_is_copied_verified_ejected_and_audited(rig: Rig) -> None:
    folder = rig.stick()
    exports = rig.exports()
    started = exports.start(rig.visit_id, "VIGSTICK")
    assert (started.phase, started.stick_label, started.to) == ("hashing", "VIGSTICK", "usb")
    job = _finished(exports)
    assert job.phase == ExportPhase.DONE and job.safe_to_remove and job.error == ""
    assert job.overall == 1.0 and job.bytes > 0 and job.bundle.startswith("vig-visit-")

    events = rig.progress()
    phases = [e["phase"] for e in events]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == PHASES
    overall = [e["overall"] for e in events]
    assert overall == sorted(overall)  # one bar that only moves forward
    assert all(e["job_id"] == started.job_id and e["visit_id"] == rig.visit_id for e in events)
    assert events[-1]["safe_to_remove"] is True and events[-1]["running"] is False
    assert not any(e["safe_to_remove"] for e in events[:-1])

    # On the stick: the bundle, verified, nothing half-written; the stick ejected.
    bundle = folder / job.bundle
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]
    assert (folder / EJECTED_MARK).exists()
    assert exports.sticks() == []

    [entry] = rig.audited()
    assert entry["details"] == {
        "visit_id": rig.visit_id,
        "to": "usb",
        "bytes": job.bytes,
        "files": len(rig.handoff.bundle(rig.visit_id).entries),
        "fstype": "exfat",
        "ok": True,
    }
    assert "VIGSTICK" not in (rig.data / layout.AUDIT).read_text("utf-8")


class Watching:
    """Sticks that note the thread and its nice value where the export mounts a stick."""

    def __init__(self, inner: Sticks) -> None:
        self.inner = inner
        self.mounted_in: list[tuple[str, int]] = []

    def list(self) -> list[Stick]:
        return self.inner.list()

    def mount(self, stick_id: str) -> Path:
        tid = threading.get_native_id()
        nice = os.getpriority(os.PRIO_PROCESS, tid)
        self.mounted_in.append((threading.current_thread().name, nice))
        return self.inner.mount(stick_id)

    def eject(self, stick_id: str) -> bool:
        return self.inner.eject(stick_id)


def test_the_copy_runs_in_its_own_niced_thread(rig: Rig) -> None:
    rig.stick()
    sticks = Watching(FolderSticks(rig.usb))
    exports = rig.exports(sticks)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    exports.start(rig.visit_id, "VIGSTICK")
    _finished(exports)
    [(name, nice)] = sticks.mounted_in
    assert name.startswith("export-") and name != threading.current_thread().name
    assert nice >= 10
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # that thread only


def test_progress_events_are_few_on_a_slow_clock(rig: Rig) -> None:
    """The event log keeps 5000 events: a big copy must not flood it (at most 4 a second)."""
    rig.stick()
    exports = rig.exports(clock=lambda: 0.0)  # time stands still: only phases are news
    exports.start(rig.visit_id, "VIGSTICK")
    _finished(exports)
    events = rig.progress()
    assert len(events) <= 2 * len(PHASES) + 1, [(e["phase"], e["fraction"]) for e in events]


def test_a_fat32_stick_gets_big_files_in_parts(rig: Rig) -> None:
    folder = rig.stick("OLDSTICK", "vfat")
    exports = rig.exports(FolderSticks(rig.usb, max_file_bytes=64 * 1024))
    exports.start(rig.visit_id, "OLDSTICK")
    job = _finished(exports)
    assert job.phase == ExportPhase.DONE, job.error
    parts = sorted(p.name for p in (folder / job.bundle).rglob("*.001"))
    assert parts and "take.mp4.001" in parts
    assert verify_bundle(folder / job.bundle).ok


def test_what_cannot_start_is_refused_at_once(rig: Rig, tmp_path: Path) -> None:
    rig.stick()
    rig.stick("Backup", "ntfs")
    exports = rig.exports()
    with pytest.raises(StickGone, match="not plugged in"):
        exports.start(rig.visit_id, "NOSTICK")
    with pytest.raises(StickUnusable, match="NTFS"):
        exports.start(rig.visit_id, "Backup")
    with pytest.raises(NotFound):
        exports.start("000000000000", "VIGSTICK")
    assert exports.current() is None and rig.progress() == []


def test_an_open_visit_cannot_be_copied(tmp_path: Path) -> None:
    kit = real_kit(tmp_path / "data", cutting=Cutting.NONE)
    try:
        visit = kit.library.start_visit("F-1", consent())
        (kit.store.root / SIM_USB_DIR / "STICK").mkdir(parents=True)
        with pytest.raises(NotBundleable, match="still open"):
            kit.exports.start(visit.id, "STICK")
    finally:
        kit.close()


class Gated:
    """Sticks whose mount waits until the test opens the gate."""

    def __init__(self, inner: Sticks) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.fail_eject: Exception | None = None

    def list(self) -> list[Stick]:
        return self.inner.list()

    def mount(self, stick_id: str) -> Path:
        self.entered.set()
        assert self.gate.wait(30)
        return self.inner.mount(stick_id)

    def eject(self, stick_id: str) -> bool:
        if self.fail_eject is not None:
            raise self.fail_eject
        return self.inner.eject(stick_id)


def test_one_copy_at_a_time_and_a_shutdown_stops_it_cleanly(rig: Rig) -> None:
    folder = rig.stick()
    sticks = Gated(FolderSticks(rig.usb))
    exports = rig.exports(sticks)
    exports.start(rig.visit_id, "VIGSTICK")
    assert sticks.entered.wait(30)
    with pytest.raises(ExportBusy, match="another copy"):
        exports.start(rig.visit_id, "VIGSTICK")
    exports.close(timeout_s=0)  # the kit shuts down mid-copy
    sticks.gate.set()
    job = _finished(exports)
    assert job.phase == ExportPhase.FAILED and "shutting down" in job.error
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".stick")] in (
        [],
        [EJECTED_MARK],
    )
    with pytest.raises(ExportBusy, match="shutting down"):
        exports.start(rig.visit_id, "VIGSTICK")


def test_a_stick_that_cannot_be_ejected_is_not_called_safe(rig: Rig) -> None:
    folder = rig.stick()
    sticks = Gated(FolderSticks(rig.usb))
    sticks.gate.set()
    sticks.fail_eject = StickError("the kit could not unmount VIGSTICK: target is busy")
    exports = rig.exports(sticks)
    exports.start(rig.visit_id, "VIGSTICK")
    job = _finished(exports)
    assert job.phase == ExportPhase.FAILED and not job.safe_to_remove
    assert "on the stick and checked" in job.error and "target is busy" in job.error
    assert "Don't pull it out yet" in job.error
    assert verify_bundle(folder / job.bundle).ok
    assert [e["details"]["ok"] for e in rig.audited()] == [True]


class PullOut(EventLog):
    """An event log that pulls the stick out when the copy has begun writing: its folder
    goes (a file in its place, so that nothing can be written there any more)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(capacity=5000)
        self.folder = folder

    def publish(self, payload: Payload) -> Event:
        event = super().publish(payload)
        data = event.data
        writing = event.kind == EventKind.EXPORT and data["phase"] == "writing"
        if writing and data["fraction"] and self.folder.is_dir():
            subprocess.run(["rm", "-rf", str(self.folder)], check=True)
            self.folder.write_text("not a stick any more")
        return event


def test_a_stick_pulled_out_mid_write(rig: Rig) -> None:
    folder = rig.stick()
    rig.events = PullOut(folder)
    tick = iter(range(1_000_000))
    exports = rig.exports(clock=lambda: float(next(tick)))  # every step is news
    exports.start(rig.visit_id, "VIGSTICK")
    job = _finished(exports)
    assert job.phase == ExportPhase.FAILED
    assert job.error.startswith("The stick was pulled out before the copy finished")
    assert job.safe_to_remove  # it is out already
    assert not folder.is_dir()
    assert [e["details"]["ok"] for e in rig.audited()] == [False]


@pytest.fixture
def tiny_usb(tmp_path: Path) -> Iterator[Path]:
    """A folder of sticks holding one real 256 KiB filesystem (tmpfs, as root)."""
    with small_tmpfs(tmp_path / "usb" / "TINY", "256k") as stick:
        yield stick


def test_a_full_stick_says_so_and_leaves_nothing(rig: Rig, tiny_usb: Path) -> None:
    exports = rig.exports()
    exports.start(rig.visit_id, "TINY")
    job = _finished(exports)
    assert job.phase == ExportPhase.FAILED
    assert job.error.startswith("The stick is too full: this visit needs ")
    assert "GB and it has 0.00 GB free" in job.error and "Nothing was left on it" in job.error
    assert job.safe_to_remove  # ejected after all, so it can be pulled out
    assert [p.name for p in tiny_usb.iterdir()] == [EJECTED_MARK]
    assert [e["details"]["ok"] for e in rig.audited()] == [False]


def test_the_real_adapter_end_to_end(rig: Rig, tmp_path: Path) -> None:
    media = tmp_path / "media"
    fake = FakeUdisks(media, usb_disk("sda", "vfat", "VIGSTICK"))
    exports = rig.exports(UdisksSticks(fake, media_roots=(f"{media}/",)))
    [stick] = exports.sticks()
    exports.start(rig.visit_id, stick.id)
    job = _finished(exports)
    assert job.phase == ExportPhase.DONE and job.safe_to_remove, job.error
    verbs = [c[1] for c in fake.calls if c[0] == "udisksctl"]
    assert verbs == ["mount", "unmount", "power-off"]
    assert verify_bundle(media / "kit" / "VIGSTICK" / job.bundle).ok
    assert exports.sticks() == []  # powered off: gone from lsblk


def test_the_kit_chooses_its_sticks_from_the_config(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = small_config(data)
    hardware = simulated_hardware(config, MonotonicClock())
    assert isinstance(usb_sticks(config, replace(hardware, simulated=False), data), UdisksSticks)
    simulated = usb_sticks(config, hardware, data)
    assert isinstance(simulated, FolderSticks) and simulated.root == data / SIM_USB_DIR
    chosen = replace(config, handoff=replace(config.handoff, usb_dir=str(tmp_path / "sticks")))
    kit = compose(chosen, hardware, MonotonicClock(), boot_id="test", cutting=Cutting.NONE)
    try:
        source = kit.exports.sticks_source
        assert isinstance(source, FolderSticks) and source.root == tmp_path / "sticks"
    finally:
        kit.close()
