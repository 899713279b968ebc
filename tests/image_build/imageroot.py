"""The image's root filesystem, built for real in a Debian bookworm chroot.

pi-gen itself needs loop devices, ARM emulation and an hour, so the tests build
the next best thing: a fresh Debian bookworm root made by ``debootstrap`` (for
this machine's architecture) standing in for pi-gen's stages 0-2, then the
kit's stage run into it the way pi-gen's ``run_sub_stage`` runs a stage (each
``NN-packages-nr`` through apt, each ``NN-run.sh`` on the host with
``ROOTFS_DIR`` set, each ``NN-run-chroot.sh`` fed to bash inside the root).

Two options of the stage make that possible, both named for what they do:
``KIT_IMAGE_SKIP_RPI_PACKAGES=1`` leaves out the packages only the Raspberry
Pi archive has (picamera2, lgpio), and ``KIT_IMAGE_FROM_WORKTREE=1`` puts the
working tree into /opt/kit instead of the last commit, so the tests build what
is being tested.

Every command inside the root runs through ``in-chroot`` (next to this file):
a private mount namespace whose mounts end with the command, so a failed or
killed test leaves nothing mounted and deleting the root cannot reach the
host's /dev or /sys. :func:`mounts_under` checks that all the same.

debootstrap's result is cached (``KIT_TEST_CACHE``, else ``~/.cache/vig-kit-tests``)
for a week, as a tar of the root: the first run on a machine takes about a
minute longer.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "image-build" / "stage-kit"
IN_CHROOT = Path(__file__).resolve().parent / "in-chroot"

SUITE = "bookworm"
MIRROR = os.environ.get("KIT_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What pi-gen's stages 0-2 give the kit's stage and a minimal Debian lacks: an init
# system to enable units with, certificates for pip, and Python.
DEBOOTSTRAP_INCLUDE = ("systemd", "systemd-sysv", "ca-certificates", "python3", "python3-venv")
CACHE_MAX_AGE_S = 7 * 24 * 3600
# pi-gen's stage0 sources.list, with only Debian's main component.
SOURCES = "".join(
    f"deb {url} {suite} main\n"
    for url, suite in (
        (MIRROR, SUITE),
        ("http://deb.debian.org/debian-security/", f"{SUITE}-security"),
        (MIRROR, f"{SUITE}-updates"),
    )
)
# The environment of every command inside the root: a clean one, as sudo gives pi-gen,
# plus the host's proxy settings. PIP_CERT: pip's own certificate bundle is Mozilla's;
# the system's (to which the host's local CAs are added, see :meth:`ImageRoot.trust_host`)
# holds the same and any CA a proxy on the way to PyPI signs with.
CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
}
_PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip for lack of ``reason`` on a developer's machine; fail in CI, which must build it."""
    if in_ci():
        pytest.fail(f"CI must build the image's root, but {reason}")
    pytest.skip(reason)


def require_tools() -> None:
    """Root, debootstrap and the namespace tools, or skip (fail in CI)."""
    if os.geteuid() != 0:
        unavailable("building the image's root needs root (debootstrap, chroot, mounts)")
    missing = [t for t in ("debootstrap", "unshare", "chroot", "tar", "git") if not shutil.which(t)]
    if missing:
        unavailable(f"{', '.join(missing)} not installed (./quickstart test installs them)")
    if not (ROOT / ".git").exists():
        unavailable("the image's /opt/kit is copied from the kit's git repository")


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace."""
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def remove_comments(text: str) -> list[str]:
    """The packages of a pi-gen ``NN-packages*`` file (its remove-comments.sed)."""
    return re.sub(r"#[^\n]*", "", text).split()


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: bytes | None = None,
    timeout: float,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv),
        env=dict(env),
        cwd=cwd,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {done.returncode}\n"
            f"--- stdout (last 4000)\n{done.stdout[-4000:]}\n"
            f"--- stderr (last 4000)\n{done.stderr[-4000:]}"
        )
    return done


@dataclass
class ImageRoot:
    """A root filesystem the kit's stage is built into, and commands run inside it."""

    path: Path
    timings: dict[str, float] = field(default_factory=dict)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        proxies = {k: v for k in _PROXY_VARS if (v := os.environ.get(k))}
        return {**CHROOT_ENV, **proxies, **(extra or {})}

    def run(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        net: bool = False,
        timeout: float = 300,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the root (as ``user``, in ``cwd``, in a network namespace of
        its own if ``net``); an AssertionError with its output if it fails and ``check``."""
        inner = list(argv)
        extra = dict(env or {})
        if user is not None:
            # As systemd's User= does: the user's ids and groups, HOME, USER and LOGNAME.
            inner = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *inner]
            extra = {"HOME": self.home(user), "USER": user, "LOGNAME": user, **extra}
        if cwd is not None:
            inner = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd, *inner]
        outer = [str(IN_CHROOT), *(["--net"] if net else []), str(self.path), *inner]
        return _run(outer, env=self.env(extra), stdin=stdin, timeout=timeout, check=check)

    def home(self, user: str) -> str:
        """``user``'s home directory in the root's /etc/passwd."""
        for line in self.file("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return fields[5]
        raise KeyError(user)

    def file(self, path: str) -> Path:
        """``path`` inside the root, as a path on the host."""
        return self.path / path.lstrip("/")

    # --- the stand-in for pi-gen's stages 0-2 -----------------------------------------

    def bootstrap(self) -> None:
        """A minimal Debian bookworm root: from the cache, else debootstrap (then cached)."""
        arch = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
        key = hashlib.sha256(f"{SUITE} {arch} {MIRROR} {DEBOOTSTRAP_INCLUDE}".encode()).hexdigest()
        cache_dir = Path(
            os.environ.get("KIT_TEST_CACHE") or Path.home() / ".cache" / "vig-kit-tests"
        )
        cache_dir.mkdir(parents=True, exist_ok=True)
        tarball = cache_dir / f"debootstrap-{SUITE}-{arch}-{key[:12]}.tar"
        self.path.mkdir(parents=True)
        # Old roots go: Debian's point releases move on.
        for old in cache_dir.glob("debootstrap-*.tar"):
            if time.time() - old.stat().st_mtime >= CACHE_MAX_AGE_S:
                old.unlink(missing_ok=True)
        if tarball.is_file():
            unpacked = _run(
                ["tar", "-x", "-p", "--numeric-owner", "-C", str(self.path), "-f", str(tarball)],
                env=os.environ,
                timeout=300,
                check=False,
            )
            if unpacked.returncode == 0:
                return
            # A damaged cache: start again from debootstrap.
            tarball.unlink()
            shutil.rmtree(self.path)
            self.path.mkdir()
        # In a mount namespace of its own: debootstrap mounts /proc and /sys in the
        # target, and would leave them mounted if it failed.
        _run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--fork",
                "--kill-child",
                "--",
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBOOTSTRAP_INCLUDE)}",
                f"--arch={arch}",
                SUITE,
                str(self.path),
                MIRROR,
            ],
            env={**os.environ, **self.env()},
            timeout=900,
        )
        partial = tarball.with_suffix(".partial")
        _run(
            ["tar", "-c", "--numeric-owner", "-C", str(self.path), "-f", str(partial), "."],
            env=os.environ,
            timeout=300,
        )
        partial.replace(tarball)

    def trust_host(self) -> None:
        """The host's own CAs (Debian: /usr/local/share/ca-certificates) trusted inside too,
        and its resolver: the root reaches Debian's mirror and PyPI the way the host does."""
        shutil.copy2("/etc/resolv.conf", self.file("/etc/resolv.conf"), follow_symlinks=True)
        local = Path("/usr/local/share/ca-certificates")
        if local.is_dir():
            shutil.copytree(local, self.file(str(local)), dirs_exist_ok=True)
        self.run(["update-ca-certificates"], timeout=120)

    def like_raspberry_pi_os_lite(self) -> None:
        """What the kit's stage finds after pi-gen's stages 0-2 and relies on."""
        self.file("/etc/apt/sources.list").write_text(SOURCES)
        self.run(["apt-get", "-o", "Acquire::Retries=3", "update"], timeout=600)
        # pi-gen's stage2 keeps the journal in RAM (stage2/01-sys-tweaks/01-run.sh).
        conf = self.file("/etc/systemd/journald.conf")
        conf.write_text(re.sub(r"(?m)^#?Storage=.*$", "Storage=volatile", conf.read_text()))
        # The boot partition's mount point (stage1), where kit-wifi.txt lives.
        self.file("/boot/firmware").mkdir(parents=True, exist_ok=True)

    # --- pi-gen's run_sub_stage, for the kit's stage ----------------------------------

    def run_stage(
        self, stage: Path, *, host_env: Mapping[str, str], chroot_env: Mapping[str, str]
    ) -> None:
        """Every sub-stage of ``stage`` in order, as pi-gen's build.sh runs them."""
        for sub in sorted(p for p in stage.iterdir() if p.is_dir()):
            if (sub / "SKIP").exists():
                continue
            for n in range(100):
                i = f"{n:02d}"
                for unsupported in (f"{i}-debconf", f"{i}-patches"):
                    assert not (sub / unsupported).exists(), (
                        f"{sub.name}/{unsupported}: no emulation"
                    )
                started = time.monotonic()
                ran = False
                for name, recommends in ((f"{i}-packages-nr", False), (f"{i}-packages", True)):
                    if (sub / name).is_file():
                        packages = remove_comments((sub / name).read_text())
                        if packages:
                            no_rec = [] if recommends else ["--no-install-recommends"]
                            argv = ["apt-get", "-o", "Acquire::Retries=3", "install", *no_rec]
                            self.run([*argv, "-y", *packages], env=chroot_env, timeout=900)
                            ran = True
                script = sub / f"{i}-run.sh"
                if script.is_file() and os.access(script, os.X_OK):
                    env = {
                        **os.environ,
                        **host_env,
                        "ROOTFS_DIR": str(self.path),
                        "STAGE_DIR": str(stage),
                        "SUB_STAGE_DIR": str(sub),
                    }
                    _run([f"./{script.name}"], env=env, cwd=sub, timeout=600)
                    ran = True
                chroot_script = sub / f"{i}-run-chroot.sh"
                if chroot_script.is_file():
                    self.run(
                        ["/bin/bash", "-e"],
                        env=chroot_env,
                        stdin=chroot_script.read_bytes(),
                        timeout=900,
                    )
                    ran = True
                if ran:
                    self.timings[f"{sub.name}/{i}"] = time.monotonic() - started
