"""A visit bundle: made from a sealed visit, written to a stick-like folder (and a real FAT32
filesystem), verified, tampered with, streamed as a tar, decrypted back to films in sync."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.compose import Cutting
from kit.crypto.decrypt import decrypt
from kit.errors import KitError
from kit.handoff import bundle as bundle_module
from kit.handoff.bundle import MANIFEST, SIGNATURE, NotBundleable, open_entry
from kit.handoff.service import HandOff
from kit.handoff.signing import Signer, fingerprint
from kit.handoff.verify import verify_bundle
from kit.handoff.write import write_bundle
from kit.hardware.sim.analysis import analyse_film
from kit.recording.headless import TagAt
from kit.store import layout
from kit.store.database import Database
from kit.store.store import Store
from kit.testing.handoff import record_sealed_visit
from kit.testing.kits import real_kit
from kit.testing.privacy import consent, org_key, org_key_file
from tests.tmpfs import small_tmpfs

KIT = [sys.executable, "-m", "kit"]


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("kit") / "data"
    tags = (TagAt(1.0, "Guiding"), TagAt(2.5, 'Смех, "quoted"'))
    return data, record_sealed_visit(data, seconds=4, tags=tags)


@pytest.fixture
def handoff(sealed: tuple[Path, str]) -> Iterator[tuple[HandOff, str]]:
    data, visit_id = sealed
    store = Store(data)
    try:
        yield HandOff(store.db, data, Signer.load_or_create(data / layout.SIGNING_KEY)), visit_id
    finally:
        store.close()


def _kit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KIT, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def test_export_verify_tamper_and_decrypt_to_a_film_in_sync(
    handoff: tuple[HandOff, str], tmp_path: Path
) -> None:
    service, visit_id = handoff
    stick = tmp_path / "stick"
    stick.mkdir()
    phases: list[tuple[str, float]] = []
    folder, report = service.export(visit_id, stick, progress=lambda p, f: phases.append((p, f)))
    assert report.ok, report.problems
    assert folder.parent == stick and folder.name.startswith("vig-visit-")
    assert [p for p, _ in phases][-1] == "verified"
    assert {"hashing", "writing", "verifying"} <= {p for p, _ in phases}
    assert list(stick.iterdir()) == [folder]
    manifest = json.loads((folder / MANIFEST).read_bytes())
    assert manifest["visit_id"] == visit_id
    assert manifest["consent"]["purposes"] == ["review", "supervision", "training"]
    assert manifest["case_ref"].startswith("enc1:")  # sealed text, not "F-0042"
    listed = {f["path"] for f in manifest["files"]}
    assert {"key.age", "index.json", "cut/rough-cut.mp4", "cut/cut.json"} <= listed
    assert any(p.endswith("/take.mp4") for p in listed)
    for raw in folder.rglob("*"):
        if raw.is_file():
            assert b"F-0042" not in raw.read_bytes() and b"Guiding" not in raw.read_bytes()

    # kit verify, as the organisation runs it: fine, then one flipped byte named.
    ok = _kit("verify", str(folder))
    assert ok.returncode == 0, ok.stderr
    assert "verified" in ok.stdout and manifest["kit"]["fingerprint"] in ok.stdout
    take = next(p for p in folder.rglob("take.mp4"))
    rel = take.relative_to(folder).as_posix()
    _flip_byte(take, take.stat().st_size // 2)
    bad = _kit("verify", str(folder), "--json", "-")
    assert bad.returncode == 3, bad.stderr
    verdict = json.loads(bad.stdout)
    assert verdict["ok"] is False
    assert verdict["problems"] == [
        f"{rel}: its SHA-256 does not match the manifest (changed or damaged)"
    ]
    refused = _kit("decrypt", str(folder), "--key", str(org_key_file(tmp_path)), "--out", "x")
    assert refused.returncode == 1 and rel in refused.stderr
    _flip_byte(take, take.stat().st_size // 2)  # put it back

    out = tmp_path / "out"
    decrypted = _kit(
        "decrypt", str(folder), "--key", str(org_key_file(tmp_path)), "--out", str(out)
    )
    assert decrypted.returncode == 0, decrypted.stderr
    [work] = list(out.iterdir())  # the guider's folder, and nothing else
    assert work.name.endswith(" F-0042")
    [film] = work.glob("* rough cut.mp4")
    assert analyse_film(film).max_abs_offset_s <= 0.005
    [take] = work.glob("* take 01.mp4")
    # Every frame, in order: the 4 s take (120 frames; a few more when the loaded machine
    # handled its real-time stop late: CI once saw 123).
    numbers = analyse_film(take).numbers
    assert numbers == list(range(len(numbers))) and 120 <= len(numbers) <= 135, numbers[-3:]
    record = json.loads((work / "visit.json").read_text("utf-8"))
    assert record["visit"]["case_ref"] == "F-0042"
    assert sorted(t["label"] for t in record["tags"]) == ["Guiding", 'Смех, "quoted"']


def test_a_second_export_of_the_same_visit_writes_nothing(
    handoff: tuple[HandOff, str], tmp_path: Path
) -> None:
    service, visit_id = handoff
    folder, _ = service.export(visit_id, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    phases: list[str] = []
    again, report = service.export(visit_id, tmp_path, progress=lambda p, _f: phases.append(p))
    assert again == folder and report.ok
    assert "writing" not in phases
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before


def test_tampering_with_the_manifest_or_the_folder_is_named(
    handoff: tuple[HandOff, str], tmp_path: Path
) -> None:
    service, visit_id = handoff
    folder, _ = service.export(visit_id, tmp_path)
    manifest = json.loads((folder / MANIFEST).read_bytes())
    trusted = verify_bundle(folder, trusted=[manifest["kit"]["fingerprint"]])
    assert trusted.ok
    stranger = verify_bundle(folder, trusted=["0000 0000 0000 0000"])
    assert stranger.problems == [
        f"{MANIFEST}: signed by kit {manifest['kit']['fingerprint']}, which is not one you trust"
    ]
    (folder / "cut" / "extra.txt").write_text("not from the kit")
    (folder / "key.age").unlink()
    problems = verify_bundle(folder).problems
    assert "key.age: missing" in problems and "cut/extra.txt: not in the manifest" in problems
    manifest["consent"]["purposes"].append("marketing")
    (folder / MANIFEST).write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n")
    forged = verify_bundle(folder)
    assert any(p.startswith(f"{SIGNATURE}: the signature does not match") for p in forged.problems)


def test_the_tar_view_is_a_real_tar_and_any_range_of_it_is_the_same_bytes(
    handoff: tuple[HandOff, str], tmp_path: Path
) -> None:
    service, visit_id = handoff
    view = service.tar(visit_id)
    whole = b"".join(view.read())
    assert len(whole) == view.size and view.size % tarfile.RECORDSIZE == 0
    # The same visit gives the same bytes from a new kit process (a resumed download).
    data = service.data_dir
    db = Database(data / layout.DATABASE)
    try:
        fresh = HandOff(db, data, Signer.load_or_create(data / layout.SIGNING_KEY))
        assert b"".join(fresh.tar(visit_id).read()) == whole
    finally:
        db.close()
    cuts = [0, 1, 511, 512, 513, 70_000, view.size // 2, view.size - 1, view.size]
    pieces = [b"".join(view.read(a, b)) for a, b in itertools.pairwise(cuts)]
    assert b"".join(pieces) == whole
    path = tmp_path / view.name
    path.write_bytes(whole)
    report = verify_bundle(path)
    assert report.ok, report.problems
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert all(n.startswith(view.name.removesuffix(".tar")) for n in names)
    assert names[-2:] == [
        f"{view.name.removesuffix('.tar')}/{MANIFEST}",
        f"{view.name.removesuffix('.tar')}/{SIGNATURE}",
    ]
    # A download cut short is incomplete, and says so.
    short = tmp_path / "short.tar"
    short.write_bytes(whole[: len(whole) // 2])
    assert not verify_bundle(short).ok
    # The downloaded tar decrypts as it is.
    [result] = decrypt(path, [org_key().secret], tmp_path / "out")
    assert result.damaged == []
    assert (tmp_path / "out" / layout.in_cut(visit_id, layout.FILM)).is_file()
    assert not any(p.name.startswith(".bundle-") for p in (tmp_path / "out").iterdir())


def test_big_files_are_split_in_parts_and_read_back_whole(
    handoff: tuple[HandOff, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, visit_id = handoff
    bundle = service.bundle(visit_id)
    biggest = max(bundle.entries, key=lambda e: e.size)
    part = 64 * 1024
    monkeypatch.setattr("kit.handoff.write.PART_BYTES", part)
    folder, report = write_bundle(bundle, tmp_path, max_file_bytes=part)
    assert report.ok, report.problems
    parts = sorted((folder / biggest.path).parent.glob(Path(biggest.path).name + ".*"))
    assert len(parts) == -(-biggest.size // part) > 1
    assert not (folder / biggest.path).exists()
    assert all(p.stat().st_size <= part for p in parts)
    with open_entry(folder, biggest.path) as f:
        assert hashlib.sha256(f.read()).hexdigest() == biggest.sha256
        f.seek(part - 3)
        assert len(f.read(10)) == 10
    [result] = decrypt(folder, [org_key().secret], tmp_path / "out")
    assert result.damaged == []
    assert analyse_film(tmp_path / "out" / layout.in_cut(visit_id, layout.FILM)).frames


def test_an_open_or_unfinished_visit_cannot_leave_the_kit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kit = real_kit(data, cutting=Cutting.NONE)
    try:
        kit.library.start_visit("F-1", consent())
        visit = kit.library.open_visit()
        assert visit is not None
        with pytest.raises(NotBundleable, match="still open"):
            kit.handoff.bundle(visit.id)
        kit.library.end_visit(visit.id)
        with pytest.raises(NotBundleable, match="being finished"):
            kit.handoff.bundle(visit.id)
        assert kit.handoff.ready() == []
        assert kit.handoff.signer.fingerprint == fingerprint(kit.handoff.signer.public)
    finally:
        kit.close()
    # The signing key is the kit's: made once, owner-only, the same after a restart.
    key = data / layout.SIGNING_KEY
    assert key.stat().st_mode & 0o777 == 0o600
    assert Signer.load_or_create(key).public == kit.handoff.signer.public


def _fusefat() -> str | None:
    if os.geteuid() != 0 or not Path("/dev/fuse").exists():
        return None
    return shutil.which("fusefat")


@contextlib.contextmanager
def _fat_mounted(image: Path, mount: Path, options: str) -> Iterator[None]:
    """``image`` mounted at ``mount`` by fusefat in the foreground; unmounted afterwards,
    and fusefat waited for: it writes the filesystem's last sectors (the clean-unmount
    bit) as it exits, after ``fusermount -u`` has returned. Its chatter goes to a file
    (a pipe nobody reads would fill and stall it)."""
    with (image.parent / f"fusefat-{options}.log").open("wb") as chatter:
        fuse = subprocess.Popen(
            [str(_fusefat()), "-f", "-o", options, str(image), str(mount)],
            stdout=chatter,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 10
            while not os.path.ismount(mount):
                assert fuse.poll() is None, f"fusefat exited with {fuse.returncode}"
                assert time.monotonic() < deadline, "fusefat did not mount the image"
                time.sleep(0.05)
            yield
        finally:
            subprocess.run(["fusermount", "-u", str(mount)], check=True)
            fuse.wait(timeout=30)  # its exit status says nothing (255 after a read-only mount)


@pytest.mark.skipif(
    _fusefat() is None or shutil.which("mkfs.vfat") is None,
    reason="needs root, /dev/fuse, fusefat and mkfs.vfat",
)
def test_a_real_fat32_filesystem(handoff: tuple[HandOff, str], tmp_path: Path) -> None:
    service, visit_id = handoff
    image = tmp_path / "stick.img"
    with image.open("wb") as f:
        f.truncate(64 * 2**20)
    subprocess.run(
        ["mkfs.vfat", "-F", "32", "-n", "VIGSTICK", str(image)], check=True, capture_output=True
    )
    mount = tmp_path / "mnt"
    mount.mkdir()
    with _fat_mounted(image, mount, "rw+"):
        folder, report = service.export(
            visit_id, mount, max_file_bytes=bundle_module.FAT32_MAX_FILE
        )
        assert report.ok, report.problems
    # The filesystem is consistent (fsck, read only), and mounted again as a laptop would,
    # the bundle is whole and decrypts.
    fsck = subprocess.run(
        ["fsck.vfat", "-n", str(image)], check=False, capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    with _fat_mounted(image, mount, "ro"):
        again = mount / folder.name
        assert verify_bundle(again).ok
        [result] = decrypt(again, [org_key().secret], tmp_path / "out")
        assert result.damaged == []
    assert analyse_film(tmp_path / "out" / layout.in_cut(visit_id, layout.FILM)).frames


@pytest.fixture
def tiny_stick(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB filesystem (tmpfs, as root), too small for any bundle."""
    with small_tmpfs(tmp_path / "tiny", "256k") as mount:
        yield mount


def test_a_full_stick_is_a_clear_error_and_leaves_nothing(
    handoff: tuple[HandOff, str], tiny_stick: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kit.errors import StorageFull

    service, visit_id = handoff
    assert service.bundle(visit_id).size > 256 * 1024
    with pytest.raises(StorageFull, match=r"needs .* MB and .* has 0\.\d MB free"):
        service.export(visit_id, tiny_stick)
    assert list(tiny_stick.iterdir()) == []
    # Told there is room (another writer filled it since): the card fills mid-write.
    real = shutil.disk_usage
    monkeypatch.setattr(
        "kit.handoff.write.shutil.disk_usage",
        lambda p: real(p)._replace(total=2**41, free=2**40),
    )
    with pytest.raises(StorageFull, match="is full"):
        service.export(visit_id, tiny_stick)
    assert list(tiny_stick.iterdir()) == []


def test_a_stick_pulled_out_mid_write_fails_and_nothing_lands_where_it_was(
    handoff: tuple[HandOff, str], tmp_path: Path
) -> None:
    from kit.errors import StorageError

    service, visit_id = handoff
    media = tmp_path / "media"
    stick = media / "VIGSTICK"  # the mount point, gone with the stick
    stick.mkdir(parents=True)
    bundle = service.bundle(visit_id)

    def pull(phase: str, fraction: float) -> None:
        if phase == "writing" and fraction > 0.3 and stick.exists():
            shutil.rmtree(stick)

    with pytest.raises(StorageError):
        write_bundle(bundle, stick, progress=pull)
    assert list(media.iterdir()) == []  # no folder made on the card where the stick was


def test_a_signed_manifest_naming_a_path_outside_the_bundle_is_refused(
    handoff: tuple[HandOff, str], tmp_path: Path
) -> None:
    # Even signed by the kit (a stolen kit key): a name with ".." never reaches a file.
    service, visit_id = handoff
    (tmp_path / "stick").mkdir()
    folder, _ = service.export(visit_id, tmp_path / "stick")
    manifest = json.loads((folder / MANIFEST).read_bytes())
    manifest["files"][0]["path"] = "../../escaped.txt"
    data = (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode()
    (folder / MANIFEST).write_bytes(data)
    (folder / SIGNATURE).write_bytes(service.signer.sign(data))
    with pytest.raises(KitError, match="names a file it must not"):
        verify_bundle(folder)
    with pytest.raises(KitError, match="names a file it must not"):
        decrypt(folder, [org_key().secret], tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out").exists()
