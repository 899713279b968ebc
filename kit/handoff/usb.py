"""USB sticks plugged into the kit: the seam the hand-off writes bundles through.

:class:`Sticks` is the protocol: list the sticks present, mount one (the
folder to write into), eject it (flush, unmount, power off: after that it
can be pulled out). Two implementations, as for the camera and microphone:

- :class:`UdisksSticks`, the real one: ``lsblk`` finds the sticks,
  udisks2's ``udisksctl`` mounts, unmounts and powers them off (the kit's
  service user may do so through a polkit rule the image installs, see
  image-build/). Argv lists, never a shell.
- :class:`FolderSticks`, a simulation that is real software: every
  sub-folder of a directory is a stick; ejecting one leaves a ``.ejected``
  mark in it, and it is gone from the list until the mark is removed (plugged
  in again). ``kit run --simulate`` and the tests use it.

Which sticks are offered: a filesystem on a USB drive, formatted FAT32
(``vfat``) or exFAT. Those are what every computer reads and writes, and
what udisks2 mounts writable for the kit's user. Others (NTFS, ext4, ...)
are listed with the reason they cannot be used: NTFS needs a FUSE driver the
kit does not carry, and an ext4 stick's files would belong to the kit's user
id on the laptop. A USB drive the kit itself runs from (a Pi booted from a
USB disk) is never offered. On FAT32 a file cannot reach 4 GiB: a stick's
``max_file_bytes`` says so, and the bundle writer splits bigger files into
parts (kit/handoff/write.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kit.daemon.health import Runner, run_command
from kit.errors import KitError, NotFound, StateError
from kit.handoff.bundle import FAT32_MAX_FILE

log = logging.getLogger(__name__)

WRITABLE = {"vfat": "FAT32", "exfat": "exFAT"}
"""Filesystems the kit writes bundles to, and how people call them."""

_OTHER_NAMES = {"ntfs": "NTFS", "ext4": "ext4", "ext3": "ext3", "ext2": "ext2", "hfsplus": "HFS+"}
MEDIA_ROOTS = ("/media/", "/run/media/")  # where udisks2 mounts (Debian: /media/<user>/<label>)


class StickError(KitError, OSError):
    """A stick could not be mounted, unmounted or powered off."""


class StickGone(NotFound):
    """No such stick plugged in (never was, pulled out, or ejected)."""


class StickUnusable(StateError):
    """A stick the kit cannot write bundles to (its filesystem)."""


@dataclass(frozen=True)
class Stick:
    """One USB stick (a filesystem on it) as the kit sees it now."""

    id: str  # the device (/dev/sda1) or the simulated stick's folder name
    label: str  # the filesystem's label, or a description
    fstype: str  # as lsblk names it: vfat, exfat, ntfs, ...
    size: int  # bytes
    free: int | None  # bytes, when it is mounted (else unknown)
    problem: str = ""  # why the kit cannot write to it ("" when it can)
    # The biggest file its filesystem holds (FAT32: 4 GiB - 1), None for no limit: bigger
    # files of a bundle are written in parts.
    max_file_bytes: int | None = None

    @property
    def usable(self) -> bool:
        return not self.problem

    @property
    def kind(self) -> str:
        return WRITABLE.get(self.fstype) or _OTHER_NAMES.get(self.fstype, self.fstype or "unknown")

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "fstype": self.fstype,
            "kind": self.kind,
            "size": self.size,
            "free": self.free,
            "usable": self.usable,
            "problem": self.problem,
            "max_file_bytes": self.max_file_bytes,
        }


def max_file_bytes(fstype: str) -> int | None:
    """The biggest file a filesystem holds, as far as the kit cares (FAT32's 4 GiB - 1)."""
    return FAT32_MAX_FILE if fstype == "vfat" else None


def problem_with(fstype: str) -> str:
    """Why a stick with this filesystem cannot be used ("" if it can)."""
    if fstype in WRITABLE:
        return ""
    name = _OTHER_NAMES.get(fstype, fstype or "no filesystem the kit knows")
    return f"formatted as {name}: the kit writes to FAT32 or exFAT sticks (format it as exFAT)"


class Sticks(Protocol):
    """The USB sticks plugged into the kit."""

    def list(self) -> list[Stick]:
        """The sticks present now (usable or not), in a stable order."""
        ...

    def mount(self, stick_id: str) -> Path:
        """The folder to write into (mounting the stick if it is not).

        :class:`StickGone` if it is not plugged in, :class:`StickUnusable`
        for a filesystem the kit does not write, :class:`StickError` if it
        cannot be mounted."""
        ...

    def eject(self, stick_id: str) -> bool:
        """Flush, unmount and power off the stick: after this it can be pulled out.

        True if it was also powered off (some USB hubs cannot; unmounted is
        safe enough). :class:`StickGone` if it was pulled out first,
        :class:`StickError` if it could not be unmounted (then it is NOT
        safe to pull out)."""
        ...


def find(sticks: Sticks, stick_id: str) -> Stick:
    """The stick ``stick_id``, or :class:`StickGone`."""
    for stick in sticks.list():
        if stick.id == stick_id:
            return stick
    raise StickGone("that USB stick is not plugged in (any more): plug it in and choose it again")


# --- the real sticks: lsblk and udisks2 ----------------------------------------------------

LSBLK = [
    "lsblk",
    "--json",
    "--bytes",
    "-o",
    "PATH,RM,HOTPLUG,TRAN,FSTYPE,LABEL,MOUNTPOINT,SIZE,FSAVAIL",
]
_TIMEOUT_S = 60.0  # udisksctl unmount flushes the stick's cache first: seconds on a slow one


def _flag(value: Any) -> bool:
    """lsblk's RM/HOTPLUG: true/false (util-linux >= 2.33) or "1"/"0" (older)."""
    if isinstance(value, str):
        return value.strip() == "1"
    return bool(value)


def _number(value: Any) -> int | None:
    """lsblk's SIZE/FSAVAIL with --bytes: a number, or a string of digits (older), or null."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _system_mount(mountpoint: str | None, media_roots: tuple[str, ...]) -> bool:
    """Mounted somewhere the system uses (/, /boot/firmware, ...), not as a stick."""
    return bool(mountpoint) and not str(mountpoint).startswith(media_roots)


def _walk(devices: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for device in devices:
        yield device
        yield from _walk(device.get("children") or [])


@dataclass(frozen=True)
class _Found:
    stick: Stick
    mountpoint: str | None
    disk: str  # the whole disk it is on (what udisksctl powers off)


def _scan(text: str, media_roots: tuple[str, ...] = MEDIA_ROOTS) -> list[_Found]:
    try:
        tree = json.loads(text)
    except ValueError as exc:
        raise StickError(f"lsblk's answer is not JSON: {exc}") from exc
    if not isinstance(tree, dict):
        raise StickError("lsblk's answer is not a list of block devices")
    found = []
    for disk in tree.get("blockdevices") or []:
        members = list(_walk([disk]))
        if str(disk.get("tran") or "") != "usb":
            continue  # the SD card (mmc), a virtual disk, a loop device ...
        if not (_flag(disk.get("rm")) or _flag(disk.get("hotplug"))):
            continue  # a USB disk the system says is fixed
        if any(_system_mount(m.get("mountpoint"), media_roots) for m in members):
            continue  # the kit runs from this USB disk: never offer it
        for device in members:
            fstype = str(device.get("fstype") or "")
            if not fstype or device.get("children"):
                continue  # the disk that holds partitions, or an empty partition
            path = str(device.get("path") or "")
            if not path.startswith("/dev/"):
                continue
            label = str(device.get("label") or "") or f"USB stick ({path.removeprefix('/dev/')})"
            mounted = device.get("mountpoint")
            stick = Stick(
                id=path,
                label=label,
                fstype=fstype,
                size=_number(device.get("size")) or 0,
                free=_number(device.get("fsavail")) if mounted else None,
                problem=problem_with(fstype),
                max_file_bytes=max_file_bytes(fstype),
            )
            found.append(_Found(stick, str(mounted) if mounted else None, str(disk["path"])))
    return found


def parse_lsblk(text: str, media_roots: tuple[str, ...] = MEDIA_ROOTS) -> list[Stick]:
    """The sticks in ``lsblk --json`` output (see :data:`LSBLK`): filesystems on USB disks
    none of whose filesystems is mounted outside ``media_roots`` (the system's own disk)."""
    return [f.stick for f in _scan(text, media_roots)]


def _why(done: subprocess.CompletedProcess[str]) -> str:
    """udisksctl's error, without the D-Bus wrapping: "Error mounting /dev/sda1: GDBus.Error:
    org.freedesktop.UDisks2.Error.NotAuthorizedCanObtain: Not authorized ..." -> the end."""
    text = (done.stderr or done.stdout or "").strip().splitlines()
    last = text[-1] if text else f"exit status {done.returncode}"
    if "NotAuthorized" in last:
        return "the kit is not allowed to mount USB sticks (its polkit rule is missing)"
    return last.rsplit(": ", 1)[-1].strip() or last


def parse_mounted(stdout: str) -> Path | None:
    """The mount point in ``udisksctl mount``'s answer ("Mounted /dev/sda1 at /media/kit/X."
    in udisks2 2.9; without the full stop in later versions)."""
    for line in stdout.splitlines():
        _, sep, where = line.partition(" at ")
        if line.startswith("Mounted ") and sep and where:
            path = Path(where.rstrip("\n"))
            if not path.is_dir() and where.endswith("."):
                path = Path(where[:-1])
            return path
    return None


class UdisksSticks:
    """USB sticks through ``lsblk`` and udisks2's ``udisksctl`` (the kit's service user
    needs the image's polkit rule). ``runner`` runs an argv list (tests pass a fake);
    ``media_roots`` are where udisks2 mounts sticks (anything mounted elsewhere is the
    system's)."""

    def __init__(
        self, runner: Runner = run_command, *, media_roots: tuple[str, ...] = MEDIA_ROOTS
    ) -> None:
        self._run = runner
        self._media_roots = media_roots

    def _lsblk(self) -> dict[str, _Found]:
        done = self._call(LSBLK, "list the USB sticks")
        return {f.stick.id: f for f in _scan(done.stdout, self._media_roots)}

    def _call(self, argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
        try:
            done = self._run(argv, timeout_s=_TIMEOUT_S)
        except FileNotFoundError as exc:
            raise StickError(f"cannot {what}: {argv[0]} is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise StickError(f"cannot {what}: {argv[0]} did not answer in time") from exc
        if done.returncode != 0 and argv[0] == "lsblk":
            raise StickError(f"cannot {what}: {_why(done)}")
        return done

    def list(self) -> list[Stick]:
        return [found.stick for found in self._lsblk().values()]

    def _get(self, stick_id: str) -> _Found:
        found = self._lsblk().get(stick_id)
        if found is None:
            raise StickGone(
                "that USB stick is not plugged in (any more): plug it in and choose it again"
            )
        return found

    def mount(self, stick_id: str) -> Path:
        found = self._get(stick_id)
        stick, mountpoint = found.stick, found.mountpoint
        if not stick.usable:
            raise StickUnusable(f"{stick.label} is {stick.problem}")
        if mountpoint:
            return Path(mountpoint)
        argv = ["udisksctl", "mount", "-b", stick.id, "--no-user-interaction"]
        done = self._call(argv, f"mount {stick.label}")
        if done.returncode != 0:
            raise StickError(f"the kit could not open the stick {stick.label}: {_why(done)}")
        where = parse_mounted(done.stdout)
        if where is None or not where.is_dir():
            again = self._get(stick_id).mountpoint  # the answer changed shape: ask lsblk
            if not again:
                raise StickError(f"{stick.label} was mounted, but lsblk does not say where")
            where = Path(again)
        log.info("mounted %s (%s) at %s", stick.id, stick.fstype, where)
        return where

    def eject(self, stick_id: str) -> bool:
        found = self._get(stick_id)
        stick, mountpoint, disk = found.stick, found.mountpoint, found.disk
        os.sync()  # unmounting flushes the stick too; this makes sure nothing waits
        if mountpoint:
            argv = ["udisksctl", "unmount", "-b", stick.id, "--no-user-interaction"]
            done = self._call(argv, f"unmount {stick.label}")
            if done.returncode != 0:
                self._still_there(stick_id)
                raise StickError(f"the kit could not unmount {stick.label}: {_why(done)}")
        argv = ["udisksctl", "power-off", "-b", disk, "--no-user-interaction"]
        done = self._call(argv, f"power off {stick.label}")
        if done.returncode != 0:
            # Unmounted and flushed, so it is safe to pull out; some hubs cannot cut power.
            log.warning("%s is unmounted but could not be powered off: %s", disk, _why(done))
            return False
        log.info("ejected %s (%s)", stick.id, disk)
        return True

    def _still_there(self, stick_id: str) -> None:
        with contextlib.suppress(StickError):
            self._get(stick_id)  # StickGone: pulled out while unmounting


# --- simulated sticks: folders --------------------------------------------------------------

EJECTED_MARK = ".ejected"
STICK_INFO = ".stick.json"  # optional, in a stick's folder: {"label", "fstype", "size"}


class FolderSticks:
    """Simulated sticks: each sub-folder of ``root`` is one (see the module's docstring).

    A folder may hold ``.stick.json`` saying its ``label``, ``fstype``
    (default ``exfat``) and ``size``; free space is the folder's filesystem's.
    ``max_file_bytes`` overrides FAT32's limit for the sticks that say
    ``vfat`` (tests use a small one to see big files split into parts).
    """

    def __init__(self, root: Path, *, max_file_bytes: int = FAT32_MAX_FILE) -> None:
        self.root = root
        self._fat_max = max_file_bytes

    def _stick(self, folder: Path) -> Stick:
        info: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads((folder / STICK_INFO).read_text("utf-8"))
            info = loaded if isinstance(loaded, dict) else {}
        fstype = str(info.get("fstype") or "exfat")
        try:
            usage = shutil.disk_usage(folder)
        except OSError:  # pulled out while looking
            usage = None
        size = _number(info.get("size")) or (usage.total if usage else 0)
        return Stick(
            id=folder.name,
            label=str(info.get("label") or folder.name),
            fstype=fstype,
            size=size,
            free=usage.free if usage else None,
            problem=problem_with(fstype),
            max_file_bytes=self._fat_max if fstype == "vfat" else None,
        )

    def list(self) -> list[Stick]:
        try:
            folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        except OSError:
            return []
        return [
            self._stick(f)
            for f in folders
            if not f.name.startswith(".") and not (f / EJECTED_MARK).exists()
        ]

    def _folder(self, stick_id: str) -> Path:
        folder = self.root / stick_id
        if (
            not stick_id
            or stick_id.startswith(".")
            or "/" in stick_id
            or not folder.is_dir()
            or (folder / EJECTED_MARK).exists()
        ):
            raise StickGone(
                "that USB stick is not plugged in (any more): plug it in and choose it again"
            )
        return folder

    def mount(self, stick_id: str) -> Path:
        folder = self._folder(stick_id)
        stick = self._stick(folder)
        if not stick.usable:
            raise StickUnusable(f"{stick.label} is {stick.problem}")
        return folder

    def eject(self, stick_id: str) -> bool:
        folder = self._folder(stick_id)
        try:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            (folder / EJECTED_MARK).touch()
        except FileNotFoundError as exc:
            raise StickGone("the USB stick was pulled out before it was ejected") from exc
        except OSError as exc:
            raise StickError(f"cannot eject {stick_id}: {exc.strerror or exc}") from exc
        return True
