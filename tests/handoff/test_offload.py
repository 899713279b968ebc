"""``kit offload`` through a real rclone: to a local folder, to ``rclone serve webdav`` (keeps no
hash: checked by download) and to ``rclone serve sftp`` (keeps MD5: checked against this
computer's files), all on loopback. Bundles are made here (random files, a manifest with their
hashes, a dummy signature), not by kit/handoff/bundle.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from kit.errors import CorruptMedia, NotFound
from kit.handoff.bundle import MANIFEST, SIGNATURE
from kit.handoff.offload import (
    Entry,
    OffloadReport,
    RemoteFile,
    format_report,
    main_offload,
    offload,
    plan,
)
from kit.handoff.rclone import EXIT_TEMPORARY, OffloadError, display_remote, join_remote

MB = 1_000_000


# bundles


def make_bundle(
    parent: Path, visit: str, sizes: Sequence[int], *, seed: int = 0, split: int = 0
) -> Path:
    """A bundle folder: random files, their manifest and a dummy signature. ``split`` > 0
    keeps the first file as numbered parts of that size (as a FAT32 stick does)."""
    root = parent / f"vig-visit-20261130-{visit}"
    rng = random.Random(seed)
    files = []
    for i, size in enumerate(sizes):
        rel = f"takes/t{i}/take.mp4" if i else "key.age"
        data = rng.randbytes(size)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if split and i == 0:
            for n, at in enumerate(range(0, size, split), start=1):
                path.with_name(f"{path.name}.{n:03d}").write_bytes(data[at : at + split])
        else:
            path.write_bytes(data)
        files.append({"path": rel, "size": size, "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"format": "vig-kit-bundle/1", "visit_id": visit, "files": files, "other": 1}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))
    (root / SIGNATURE).write_bytes(rng.randbytes(64))
    return root


def expected_files(bundle: Path) -> dict[str, str]:
    """Path -> SHA-256 of everything the remote bundle must hold, read from the manifest."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    files = {f["path"]: f["sha256"] for f in manifest["files"]}
    for name in (MANIFEST, SIGNATURE):
        files[name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    return files


def held(folder: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file in ``folder``, read straight from the disk."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def flip_a_byte(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, io.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


# remotes


@dataclass
class Remote:
    """Where rclone sends (``remote``) and the folder that ends up holding it (``folder``)."""

    kind: str
    remote: str
    folder: Path
    config: Path

    def bundle_folder(self, bundle: Path) -> Path:
        return self.folder / bundle.name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, "rclone serve exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def obscure(password: str) -> str:
    """``password`` as rclone.conf and connection strings hold it."""
    return subprocess.run(
        ["rclone", "obscure", password], capture_output=True, text=True, check=True
    ).stdout.strip()


@contextmanager
def serve(kind: str, tmp: Path) -> Iterator[Remote]:
    served = tmp / f"served-{kind}"
    served.mkdir()
    config = tmp / "rclone.conf"
    config.touch()
    if kind == "local":
        yield Remote(kind, str(served / "org"), served / "org", config)
        return
    port = free_port()
    argv = ["rclone", "serve", kind, str(served), "--addr", f"127.0.0.1:{port}"]
    # Tests change the served folder behind the server's back: no cached listings.
    argv += ["--config", str(config), "--dir-cache-time", "0s"]
    if kind == "webdav":
        remote = f":webdav,url='http://127.0.0.1:{port}':org"
    else:
        key = tmp / "host_key"
        key.write_bytes(
            Ed25519PrivateKey.generate().private_bytes(
                Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()
            )
        )
        argv += ["--user", "kit", "--pass", "s3cret-pw", "--key", str(key)]
        remote = f":sftp,host=127.0.0.1,port={port},user=kit,pass={obscure('s3cret-pw')}:org"
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield Remote(kind, remote, served / "org", config)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(params=["local", "webdav", "sftp"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Remote]:
    with serve(request.param, tmp_path) as r:
        yield r


@pytest.fixture
def webdav(tmp_path: Path) -> Iterator[Remote]:
    with serve("webdav", tmp_path) as r:
        yield r


def rclone_listing(r: Remote, bundle: Path) -> list[str]:
    """Every file rclone sees in the remote bundle (recursively), with repeats if any."""
    out = subprocess.run(
        [
            "rclone",
            "lsjson",
            "-R",
            "--files-only",
            "--config",
            str(r.config),
            join_remote(r.remote, bundle.name),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(item["Path"] for item in json.loads(out))


def assert_complete(r: Remote, bundle: Path) -> None:
    """Every file once, with the manifest's hash, nothing else; the manifest written last
    (by ctime: local and SFTP remotes keep the files' own modification times)."""
    folder = r.bundle_folder(bundle)
    want = expected_files(bundle)
    assert held(folder) == want
    assert rclone_listing(r, bundle) == sorted(want)
    payload = [folder / p for p in want if p not in (MANIFEST, SIGNATURE)]
    last_payload = max(p.stat().st_ctime_ns for p in payload)
    assert (folder / SIGNATURE).stat().st_ctime_ns >= last_payload
    assert (folder / MANIFEST).stat().st_ctime_ns >= (folder / SIGNATURE).stat().st_ctime_ns


# the test: interrupted midway, run again


KILLED_RUN = """
import sys
from pathlib import Path
from kit.handoff.offload import offload
offload(Path(sys.argv[1]), sys.argv[2], config=Path(sys.argv[3]), rclone_args=sys.argv[4:])
"""


@pytest.mark.slow
def test_an_offload_killed_midway_resumes_to_every_file_once_verified(
    tmp_path: Path, webdav: Remote
) -> None:
    bundle = make_bundle(tmp_path, "v1", [200, 32 * MB, 32 * MB, 32 * MB])
    payload = sum(p.stat().st_size for p in bundle.rglob("*") if p.name != MANIFEST)
    argv = [sys.executable, "-c", KILLED_RUN, str(bundle), webdav.remote, str(webdav.config)]
    # The kit and its rclone in a session of their own, throttled so the kill lands midway.
    kit = subprocess.Popen(
        [*argv, "--bwlimit", "24M:off"], start_new_session=True, stderr=subprocess.PIPE
    )
    there = webdav.bundle_folder(bundle)
    deadline = time.monotonic() + 20
    try:
        while sum(p.stat().st_size for p in there.rglob("*") if p.is_file()) < payload // 4:
            assert kit.poll() is None, kit.stderr.read() if kit.stderr else ""
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
    finally:
        os.killpg(kit.pid, signal.SIGKILL)  # a power cut: the kit and rclone at once
        kit.wait()
        if kit.stderr:
            kit.stderr.close()

    # Cut off: torn files under their final names (rclone 1.60), and no manifest.
    assert not (there / MANIFEST).exists()
    assert sum(p.stat().st_size for p in there.rglob("*") if p.is_file()) < payload

    seen: list[float] = []
    report = offload(bundle, webdav.remote, config=webdav.config, progress=seen.append)
    assert_complete(webdav, bundle)
    assert report.bundles[0].sent_files >= 3  # the torn takes, then the signature and manifest
    assert report.bundles[0].resent == ()  # torn files are short: sent again as missing
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


def rclone_children() -> list[int]:
    """The rclone processes this test process started and has not reaped."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        comm, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :]
        if comm == "rclone" and int(rest.split()[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_ctrl_c_stops_rclone_too_and_the_next_run_finishes(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "v1b", [100, 8 * MB, 8 * MB])

    def interrupt_midway(fraction: float) -> None:
        if fraction > 0.2:
            raise KeyboardInterrupt

    def interrupted_offload(r: Remote) -> None:
        with pytest.raises(KeyboardInterrupt):
            offload(
                bundle,
                r.remote,
                config=r.config,
                rclone_args=["--bwlimit", "8M"],
                progress=interrupt_midway,
            )
        assert rclone_children() == []  # not left uploading behind the kit's back

    with serve("local", tmp_path) as r:
        there = r.bundle_folder(bundle)
        interrupted_offload(r)
        assert sum(p.stat().st_size for p in there.rglob("*")) < 16 * MB  # nor waited for
        assert not (there / MANIFEST).exists()
        offload(bundle, r.remote, config=r.config)
        assert_complete(r, bundle)

        # A repair cut off midway: the bundle must not look complete meanwhile.
        flip_a_byte(there / "takes/t1/take.mp4")
        interrupted_offload(r)
        assert not (there / MANIFEST).exists()
        offload(bundle, r.remote, config=r.config)  # the cut-off take is short: sent whole
        assert_complete(r, bundle)


# idempotent, checked, resumable


def test_a_second_offload_sends_nothing(tmp_path: Path, remote: Remote) -> None:
    bundle = make_bundle(tmp_path, "v2", [100, 3 * MB, 2 * MB])
    first = offload(bundle, remote.remote, config=remote.config)
    assert first.sent_files == 5
    assert first.sent_bytes >= 5 * MB
    assert_complete(remote, bundle)
    stamps = {p: p.stat().st_mtime_ns for p in remote.bundle_folder(bundle).rglob("*")}

    again = offload(bundle, remote.remote, config=remote.config)
    assert (again.sent_files, again.sent_bytes) == (0, 0)
    assert {p: p.stat().st_mtime_ns for p in remote.bundle_folder(bundle).rglob("*")} == stamps
    assert "already there, nothing sent" in format_report(again)
    # The price of a remote that keeps no hash: the bundle comes back down to be checked.
    downloaded = again.bundles[0].downloaded_bytes
    assert downloaded >= 5 * MB if remote.kind == "webdav" else downloaded == 0


def test_a_changed_remote_file_is_found_and_sent_again(tmp_path: Path, remote: Remote) -> None:
    bundle = make_bundle(tmp_path, "v3", [100, 2 * MB, MB])
    offload(bundle, remote.remote, config=remote.config)
    flip_a_byte(remote.bundle_folder(bundle) / "takes/t1/take.mp4")  # same size, other bytes

    report = offload(bundle, remote.remote, config=remote.config)
    assert report.bundles[0].resent == ("takes/t1/take.mp4",)
    assert "sent again (the remote copy was different): takes/t1/take.mp4" in format_report(report)
    assert_complete(remote, bundle)


def test_a_changed_or_missing_signature_is_put_back_before_the_manifest(
    tmp_path: Path, webdav: Remote
) -> None:
    bundle = make_bundle(tmp_path, "v4", [100, MB])
    offload(bundle, webdav.remote, config=webdav.config)
    flip_a_byte(webdav.bundle_folder(bundle) / SIGNATURE)
    report = offload(bundle, webdav.remote, config=webdav.config)
    assert report.sent_files == 2  # the signature, then the manifest again
    assert_complete(webdav, bundle)
    (webdav.bundle_folder(bundle) / SIGNATURE).unlink()
    assert offload(bundle, webdav.remote, config=webdav.config).sent_files == 2
    assert_complete(webdav, bundle)


def test_leftover_partials_are_removed_and_strangers_left(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "v5", [100, MB])
    with serve("local", tmp_path) as r:
        there = r.bundle_folder(bundle)
        (there / "takes/t1").mkdir(parents=True)
        (there / "takes/t1/take.mp4.a1b2c3d4.partial").write_bytes(b"half a take")
        (there / "takes/t1/take.mp4").write_bytes(b"torn")
        (there / "notes.txt").write_text("someone else's")
        report = offload(bundle, r.remote, config=r.config)
        assert report.bundles[0].removed_partials == ("takes/t1/take.mp4.a1b2c3d4.partial",)
        assert report.bundles[0].extra == ("notes.txt",)
        (there / "notes.txt").unlink()
        assert_complete(r, bundle)


def test_a_folder_of_bundles_and_a_stick_s_split_file(tmp_path: Path, webdav: Remote) -> None:
    stick = tmp_path / "stick"
    one = make_bundle(stick, "v6", [100, MB])
    two = make_bundle(stick, "v7", [3 * MB + 5, 200], seed=1, split=MB)  # key.age.001...004
    make_bundle(stick / ".being-written", "v8", [100])  # hidden: not a bundle yet
    (stick / ".vig-visit-20261130-v9.partial").mkdir()
    (stick / ".vig-visit-20261130-v9.partial" / MANIFEST).write_text("{}")
    seen: list[float] = []

    report = offload(stick, webdav.remote, config=webdav.config, progress=seen.append)
    assert [b.name for b in report.bundles] == [one.name, two.name]
    assert_complete(webdav, one)
    assert_complete(webdav, two)  # key.age whole on the remote, as the manifest names it
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 3
    assert offload(stick, webdav.remote, config=webdav.config).sent_files == 0


@pytest.mark.slow
def test_progress_follows_a_long_transfer(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "v10", [100, 8 * MB, 8 * MB])
    seen: list[float] = []
    with serve("local", tmp_path) as r:
        offload(
            bundle, r.remote, config=r.config, rclone_args=["--bwlimit", "8M"], progress=seen.append
        )
    middle = [f for f in seen if 0.1 < f < 0.9]
    assert len(middle) >= 2, seen
    assert seen == sorted(seen) and seen[-1] == 1.0


# clear errors


def test_without_rclone_it_says_to_install_it(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "v12", [100])
    with pytest.raises(OffloadError, match=r"rclone is not installed.*install it") as caught:
        offload(bundle, str(tmp_path / "out"), rclone=str(tmp_path / "no-rclone"))
    assert caught.value.exit_code == 1


def test_an_unreachable_remote_is_a_temporary_error_with_no_password_shown(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "v13", [100])
    config = tmp_path / "rclone.conf"
    config.touch()
    secret = obscure("s3cret-pw")
    remote = f":webdav,url='http://127.0.0.1:{free_port()}',user=kit,pass={secret}:org"
    quick = ["--low-level-retries", "1", "--retries", "1"]
    with pytest.raises(OffloadError, match=re.escape("cannot reach :webdav{…}:org")) as caught:
        offload(bundle, remote, config=config, rclone_args=quick)
    assert caught.value.retryable
    assert secret not in str(caught.value)
    out, err = io.StringIO(), io.StringIO()
    status = main_offload(
        str(bundle), remote, config=str(config), rclone_args=quick, out=out, err=err
    )
    assert status == EXIT_TEMPORARY == 75
    assert "kit: error: cannot reach" in err.getvalue()
    assert secret not in err.getvalue()


def test_a_remote_not_in_rclone_conf_is_named(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "v14", [100])
    config = tmp_path / "rclone.conf"
    config.touch()
    with pytest.raises(OffloadError, match=r"no rclone remote called 'orgdrive'.*rclone config"):
        offload(bundle, "orgdrive:visits", config=config)


def test_bad_sources_are_refused_before_rclone_runs(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such folder"):
        offload(tmp_path / "nothing", "x:", rclone="/nonexistent")
    with pytest.raises(NotFound, match="no bundle in"):
        offload(tmp_path, "x:", rclone="/nonexistent")
    bundle = make_bundle(tmp_path, "v15", [100, 1000])
    (bundle / "takes/t1/take.mp4").write_bytes(b"short")
    with pytest.raises(CorruptMedia, match=r"take\.mp4 is 5 bytes, the manifest says 1000"):
        offload(bundle, "x:", rclone="/nonexistent")
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"][0]["path"] = "../../etc/passwd"
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorruptMedia, match="must not"):
        offload(bundle, "x:", rclone="/nonexistent")


def test_the_command_prints_a_report_as_json(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "v16", [100, MB])
    with serve("local", tmp_path) as r:
        out, err = io.StringIO(), io.StringIO()
        status = main_offload(
            str(bundle), r.remote, json_out=True, config=str(r.config), out=out, err=err
        )
    assert status == 0
    report = json.loads(out.getvalue())
    assert report["sent_files"] == 4
    assert report["bundles"][0]["name"] == bundle.name
    assert report["checked_by"].startswith("SHA-256 kept by the remote")
    assert err.getvalue().splitlines()[-1] == "offload: 100%"


# the sans-I/O parts


def test_plan_sorts_each_file_by_what_the_remote_holds() -> None:
    a, b, c, d, e = (Entry(n, 10, n * 64) for n in "abcde")
    remote = {
        "b": RemoteFile("b", 4),  # torn
        "c": RemoteFile("c", 10, "c" * 64),
        "d": RemoteFile("d", 10, "0" * 64),
        "e": RemoteFile("e", 10),  # no hash kept
    }
    sorted_ = plan([a, b, c, d, e], remote, {x.path: x.sha256 for x in (a, b, c, d, e)})
    assert (sorted_.missing, sorted_.good, sorted_.different, sorted_.unknown) == (
        (a, b),
        (c,),
        (d,),
        (e,),
    )
    assert plan([c], remote, None).unknown == (c,)


def test_remote_names_hide_connection_parameters() -> None:
    secret = ":sftp,host=h,user=u,pass='a:b,c':visits"
    assert display_remote(secret) == ":sftp{…}:visits"
    assert display_remote("org,drive_id=x:visits/2026") == "org{…}:visits/2026"
    assert display_remote("org:visits") == "org:visits"
    assert display_remote("/mnt/share") == "/mnt/share"
    assert join_remote("org:", "b") == "org:b"
    assert join_remote("org:visits/", "b") == "org:visits/b"
    assert OffloadReport("org:", "x").as_json()["sent_files"] == 0
