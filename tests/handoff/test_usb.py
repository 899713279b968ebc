"""USB sticks: lsblk's answers parsed, and one contract over the simulated sticks (folders)
and the real adapter (lsblk and udisksctl, through a fake runner that answers as they do on
a Pi: util-linux 2.38, udisks2 2.9)."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from kit.handoff.bundle import FAT32_MAX_FILE
from kit.handoff.usb import (
    EJECTED_MARK,
    LSBLK,
    STICK_INFO,
    FolderSticks,
    StickError,
    StickGone,
    Sticks,
    StickUnusable,
    UdisksSticks,
    find,
    parse_lsblk,
    parse_mounted,
)

GB = 1_000_000_000

# A Pi 4 booted from its SD card, as `lsblk --json --bytes -o PATH,RM,...` prints it.
SD_CARD: dict[str, Any] = {
    "path": "/dev/mmcblk0",
    "rm": False,
    "hotplug": False,
    "tran": None,
    "fstype": None,
    "label": None,
    "mountpoint": None,
    "size": 63864569856,
    "fsavail": None,
    "children": [
        {
            "path": "/dev/mmcblk0p1",
            "rm": False,
            "hotplug": False,
            "tran": None,
            "fstype": "vfat",
            "label": "bootfs",
            "mountpoint": "/boot/firmware",
            "size": 536870912,
            "fsavail": 469458944,
        },
        {
            "path": "/dev/mmcblk0p2",
            "rm": False,
            "hotplug": False,
            "tran": None,
            "fstype": "ext4",
            "label": "rootfs",
            "mountpoint": "/",
            "size": 63322456064,
            "fsavail": 52230598656,
        },
    ],
}


def usb_disk(
    dev: str,
    fstype: str | None,
    label: str | None,
    *,
    size: int = 16 * GB,
    partitioned: bool = True,
    mountpoint: str | None = None,
    free: int | None = None,
) -> dict[str, Any]:
    """A USB stick: a disk with one partition (or a filesystem on the whole disk)."""
    disk: dict[str, Any] = {
        "path": f"/dev/{dev}",
        "rm": True,
        "hotplug": True,
        "tran": "usb",
        "fstype": None,
        "label": None,
        "mountpoint": None,
        "size": size,
        "fsavail": None,
    }
    fs = {"fstype": fstype, "label": label, "mountpoint": mountpoint, "fsavail": free}
    if not partitioned:
        return {**disk, **fs}
    part = {**disk, "path": f"/dev/{dev}1", "tran": None, "size": size - 1_048_576, **fs}
    return {**disk, "children": [part]}


def lsblk_json(*disks: dict[str, Any]) -> str:
    return json.dumps({"blockdevices": list(disks)}, indent=3) + "\n"


def test_lsblk_finds_usb_sticks_and_never_the_kits_own_disks() -> None:
    usb_boot = usb_disk("sdd", "ext4", "rootfs", mountpoint="/")  # a Pi booted from USB
    usb_boot["children"].insert(
        0, {**usb_boot["children"][0], "path": "/dev/sdd0", "mountpoint": "/boot/firmware"}
    )
    text = lsblk_json(
        SD_CARD,
        usb_disk("sda", "vfat", "VIGSTICK"),
        usb_disk("sdb", "exfat", None, partitioned=False, size=64 * GB),
        usb_disk("sdc", "ntfs", "Backup", mountpoint="/media/kit/Backup", free=2 * GB),
        usb_boot,
        {**usb_disk("sde", None, None)},  # a blank stick: a partition with no filesystem
    )
    sticks = parse_lsblk(text)
    assert [s.id for s in sticks] == ["/dev/sda1", "/dev/sdb", "/dev/sdc1"]
    fat, exfat, ntfs = sticks
    assert (fat.label, fat.fstype, fat.kind, fat.usable) == ("VIGSTICK", "vfat", "FAT32", True)
    assert fat.max_file_bytes == FAT32_MAX_FILE and fat.free is None
    assert (exfat.label, exfat.kind, exfat.max_file_bytes) == ("USB stick (sdb)", "exFAT", None)
    assert exfat.size == 64 * GB
    assert not ntfs.usable and "NTFS" in ntfs.problem and "exFAT" in ntfs.problem
    assert ntfs.free == 2 * GB
    assert fat.as_json()["max_file_bytes"] == FAT32_MAX_FILE


def test_lsblk_before_util_linux_2_33_and_broken_answers() -> None:
    """Older lsblk prints flags and sizes as strings."""
    old = usb_disk("sda", "exfat", "OLD")
    old.update(rm="1", hotplug="1", size="16000000000")
    old["children"][0].update(rm="1", hotplug="1", size="15998951424")
    [stick] = parse_lsblk(lsblk_json(old))
    assert (stick.id, stick.size) == ("/dev/sda1", 15998951424)
    fixed = usb_disk("sdb", "exfat", "FIXED")
    fixed.update(rm=False, hotplug=False)
    assert parse_lsblk(lsblk_json(fixed)) == []
    with pytest.raises(StickError, match="not JSON"):
        parse_lsblk("lsblk: unknown column: FSAVAIL\n")
    with pytest.raises(StickError):
        parse_lsblk("[]")


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("Mounted /dev/sda1 at /media/kit/VIGSTICK.\n", "/media/kit/VIGSTICK"),  # 2.9
        ("Mounted /dev/sda1 at /media/kit/VIGSTICK\n", "/media/kit/VIGSTICK"),  # 2.10
        ("Mounted /dev/sda1 at /media/kit/MY STICK AT HOME.\n", "/media/kit/MY STICK AT HOME"),
        ("", None),
    ],
)
def test_udisksctl_mount_answers(stdout: str, expected: str | None) -> None:
    found = parse_mounted(stdout)
    assert (None if found is None else str(found)) == expected


_DBUS = "GDBus.Error:org.freedesktop.UDisks2.Error"


class FakeUdisks:
    """``lsblk`` and ``udisksctl`` as a runner: the devices of a Pi with sticks plugged in;
    a mount makes a folder under ``media`` and answers as udisksctl 2.9 does."""

    def __init__(self, media: Path, *disks: dict[str, Any]) -> None:
        self.media = media
        self.disks = [copy.deepcopy(SD_CARD), *(copy.deepcopy(d) for d in disks)]
        self.calls: list[list[str]] = []
        self.refuse: dict[str, tuple[int, str]] = {}  # udisksctl verb -> (code, stderr)

    def plug(self, disk: dict[str, Any]) -> None:
        self.disks.append(copy.deepcopy(disk))

    def pull(self, dev: str) -> None:
        self.disks = [d for d in self.disks if d["path"] != dev]

    def _device(self, path: str) -> dict[str, Any] | None:
        for disk in self.disks:
            devices: list[dict[str, Any]] = [disk, *disk.get("children", [])]
            for device in devices:
                if device["path"] == path:
                    return device
        return None

    def _disk_of(self, path: str) -> dict[str, Any] | None:
        for disk in self.disks:
            if path in [disk["path"], *(c["path"] for c in disk.get("children", []))]:
                return disk
        return None

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float
    ) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        assert timeout_s > 0

        def done(code: int = 0, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
            return subprocess.CompletedProcess(argv, code, out, err)

        if argv == LSBLK:
            return done(out=lsblk_json(*self.disks))
        assert argv[0] == "udisksctl" and argv[2] == "-b" and argv[4] == "--no-user-interaction"
        verb, dev = argv[1], argv[3]
        if verb in self.refuse:
            code, err = self.refuse[verb]
            return done(code, err=err)
        device = self._device(dev)
        if device is None:
            return done(1, err=f"Error looking up object for device {dev}\n")
        if verb == "mount":
            if device["mountpoint"]:
                why = f"Device {dev} is already mounted at `{device['mountpoint']}'."
                return done(1, err=f"Error mounting {dev}: {_DBUS}.AlreadyMounted: {why}\n")
            where = self.media / "kit" / (device["label"] or "disk")
            where.mkdir(parents=True)
            device["mountpoint"] = str(where)
            device["fsavail"] = 15 * GB
            return done(out=f"Mounted {dev} at {where}.\n")
        if verb == "unmount":
            if not device["mountpoint"]:
                why = f"Device `{dev}' is not mounted"
                return done(1, err=f"Error unmounting {dev}: {_DBUS}.NotMounted: {why}\n")
            mounted = Path(device["mountpoint"])
            if not any(mounted.iterdir()):
                mounted.rmdir()  # udisks removes the folder it made (what was written stays)
            device["mountpoint"] = None
            device["fsavail"] = None
            return done(out=f"Unmounted {dev}.\n")
        if verb == "power-off":
            disk = self._disk_of(dev)
            assert disk is not None
            if any(c["mountpoint"] for c in [disk, *disk.get("children", [])]):
                why = f"The drive in use: Device {dev} is mounted (udisks-error-quark, 14)"
                return done(1, err=f"Error powering off drive: {why}\n")
            self.pull(disk["path"])
            return done()
        raise AssertionError(argv)


# --- one contract, two implementations ---------------------------------------------------


class Rig:
    """A stick source with one FAT32 stick ("VIGSTICK") and one NTFS stick plugged in."""

    def __init__(self, sticks: Sticks, pull: Callable[[str], None], fat: str, ntfs: str) -> None:
        self.sticks = sticks
        self.pull = pull
        self.fat = fat
        self.ntfs = ntfs


def folder_rig(tmp_path: Path) -> Rig:
    root = tmp_path / "usb"
    for name, fstype in [("VIGSTICK", "vfat"), ("Backup", "ntfs")]:
        (root / name).mkdir(parents=True)
        (root / name / STICK_INFO).write_text(json.dumps({"fstype": fstype}))

    def pull(stick_id: str) -> None:
        for path in sorted((root / stick_id).rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (root / stick_id).rmdir()

    return Rig(FolderSticks(root), pull, "VIGSTICK", "Backup")


def udisks_rig(tmp_path: Path) -> Rig:
    media = tmp_path / "media"
    fake = FakeUdisks(media, usb_disk("sda", "vfat", "VIGSTICK"), usb_disk("sdb", "ntfs", "Backup"))
    sticks = UdisksSticks(fake, media_roots=(f"{media}/",))

    def pull(stick_id: str) -> None:
        disk = fake._disk_of(stick_id)
        assert disk is not None
        fake.pull(disk["path"])

    return Rig(sticks, pull, "/dev/sda1", "/dev/sdb1")


@pytest.fixture(params=["folders", "udisks"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Rig:
    return folder_rig(tmp_path) if request.param == "folders" else udisks_rig(tmp_path)


def test_the_sticks_plugged_in_are_listed(rig: Rig) -> None:
    sticks = {s.id: s for s in rig.sticks.list()}
    assert set(sticks) == {rig.fat, rig.ntfs}
    fat = sticks[rig.fat]
    assert (fat.label, fat.fstype, fat.usable, fat.max_file_bytes) == (
        "VIGSTICK",
        "vfat",
        True,
        FAT32_MAX_FILE,
    )
    assert not sticks[rig.ntfs].usable
    assert find(rig.sticks, rig.fat) == fat


def test_a_stick_mounts_to_a_writable_folder_and_ejects(rig: Rig) -> None:
    folder = rig.sticks.mount(rig.fat)
    (folder / "hello.txt").write_text("from the kit")
    assert rig.sticks.mount(rig.fat) == folder  # mounted already: the same folder
    assert rig.sticks.eject(rig.fat) is True
    assert rig.fat not in {s.id for s in rig.sticks.list()}  # gone until plugged in again
    with pytest.raises(StickGone, match="not plugged in"):
        rig.sticks.mount(rig.fat)
    with pytest.raises(StickGone):
        rig.sticks.eject(rig.fat)


def test_unknown_unusable_and_pulled_out_sticks(rig: Rig) -> None:
    for bad in ("nope", "/dev/sdz1", "../etc", ""):
        with pytest.raises(StickGone):
            rig.sticks.mount(bad)
        with pytest.raises(StickGone):
            find(rig.sticks, bad)
    with pytest.raises(StickUnusable, match=r"NTFS.*exFAT"):
        rig.sticks.mount(rig.ntfs)
    rig.sticks.mount(rig.fat)
    rig.pull(rig.fat)
    assert rig.fat not in {s.id for s in rig.sticks.list()}
    with pytest.raises(StickGone):
        rig.sticks.eject(rig.fat)


# --- what only the real adapter does -------------------------------------------------------


def test_udisksctl_is_called_with_argv_lists(tmp_path: Path) -> None:
    rig = udisks_rig(tmp_path)
    fake = rig.sticks._run  # type: ignore[attr-defined]
    assert isinstance(fake, FakeUdisks)
    rig.sticks.mount(rig.fat)
    rig.sticks.eject(rig.fat)
    udisks = [c for c in fake.calls if c[0] == "udisksctl"]
    assert udisks == [
        ["udisksctl", "mount", "-b", "/dev/sda1", "--no-user-interaction"],
        ["udisksctl", "unmount", "-b", "/dev/sda1", "--no-user-interaction"],
        ["udisksctl", "power-off", "-b", "/dev/sda", "--no-user-interaction"],
    ]
    assert all(c == LSBLK for c in fake.calls if c[0] != "udisksctl")


def test_a_stick_already_mounted_is_used_where_it_is(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "kit" / "DATA").mkdir(parents=True)
    plugged = usb_disk("sda", "exfat", "DATA", mountpoint=f"{media}/kit/DATA", free=GB)
    fake = FakeUdisks(media, plugged)
    sticks = UdisksSticks(fake, media_roots=(f"{media}/",))
    [stick] = sticks.list()
    assert stick.free == GB
    assert sticks.mount(stick.id) == media / "kit" / "DATA"
    assert not any(c[:2] == ["udisksctl", "mount"] for c in fake.calls)


def test_udisks_refusals_are_clear(tmp_path: Path) -> None:
    rig = udisks_rig(tmp_path)
    fake = rig.sticks._run  # type: ignore[attr-defined]
    fake.refuse["mount"] = (
        1,
        "Error mounting /dev/sda1: GDBus.Error:org.freedesktop.UDisks2.Error."
        "NotAuthorizedCanObtain: Not authorized to perform operation\n",
    )
    with pytest.raises(StickError, match="not allowed to mount USB sticks"):
        rig.sticks.mount(rig.fat)
    del fake.refuse["mount"]
    rig.sticks.mount(rig.fat)
    # Busy: not unmounted, so not safe, and it is not powered off either.
    fake.refuse["unmount"] = (
        1,
        "Error unmounting /dev/sda1: GDBus.Error:org.freedesktop.UDisks2.Error.DeviceBusy: "
        "Error unmounting /dev/sda1: target is busy\n",
    )
    with pytest.raises(StickError, match="could not unmount VIGSTICK: target is busy"):
        rig.sticks.eject(rig.fat)
    assert not any(c[1] == "power-off" for c in fake.calls if c[0] == "udisksctl")
    del fake.refuse["unmount"]
    # A hub that cannot cut the power: unmounted is safe enough.
    fake.refuse["power-off"] = (1, "Error powering off drive: No usb device (g-io-error, 1)\n")
    assert rig.sticks.eject(rig.fat) is False


def test_no_lsblk_is_a_stick_error(tmp_path: Path) -> None:
    def missing(argv: Sequence[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(argv[0])

    with pytest.raises(StickError, match="lsblk is not installed"):
        UdisksSticks(missing).list()


def test_the_real_lsblk_answers_in_the_form_parsed_here() -> None:
    """This machine's own lsblk takes the columns and prints JSON the parser reads (on CI
    there is no stick: what matters is the form, and that the system's disks are left out)."""
    import shutil

    if shutil.which("lsblk") is None:
        pytest.skip("no lsblk here")
    done = subprocess.run(LSBLK, capture_output=True, text=True, timeout=30, check=True)
    for stick in parse_lsblk(done.stdout):
        assert stick.id.startswith("/dev/")


# --- what only the folders do ---------------------------------------------------------------


def test_a_folder_stick_comes_back_when_plugged_in_again(tmp_path: Path) -> None:
    rig = folder_rig(tmp_path)
    assert isinstance(rig.sticks, FolderSticks)
    rig.sticks.eject(rig.fat)
    assert (rig.sticks.root / rig.fat / EJECTED_MARK).exists()
    (rig.sticks.root / rig.fat / EJECTED_MARK).unlink()
    assert rig.fat in {s.id for s in rig.sticks.list()}
    assert FolderSticks(tmp_path / "nowhere").list() == []
    small = FolderSticks(rig.sticks.root, max_file_bytes=1000)
    assert find(small, rig.fat).max_file_bytes == 1000
