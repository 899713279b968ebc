"""The image's root filesystem built for real, in a fresh Debian bookworm chroot.

The kit's pi-gen stage runs into a debootstrapped bookworm root (see
imageroot.py: this machine's architecture, without the packages only the
Raspberry Pi archive has), and then, inside it: the kit runs, its units are
installed, enabled and pass ``systemd-analyze verify`` against the real
system around them, the hotspot's parts are in place and parse, the whole
suite is collected for ``kit check`` with exactly the image's packages, pip
installed only what image-build/constraints.txt pins (numpy stays Debian's),
the journal is kept on the card and capped, the kit records a take with
those packages, and the first boot makes the secrets and the label.

Marked ``image`` (``-m 'not image'`` deselects it); about three minutes, one
more on a machine that has not cached debootstrap's root yet.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.image_build.imageroot import (
    ROOT,
    STAGE,
    ImageRoot,
    mounts_under,
    require_tools,
)
from tests.image_build.test_python_packages import CONSTRAINTS, canonical, pins
from tests.systemd.test_units import parse_unit

pytestmark = pytest.mark.image

VENV_PYTHON = "/opt/kit/.venv/bin/python"
SITE_PACKAGES = "/opt/kit/.venv/lib/python3.11/site-packages"
DATA_DIR = "/var/lib/kit"
# Each unit the image installs and enables, and the unit that wants it.
UNITS = {
    "kit.service": "multi-user.target",
    "kit-first-boot.service": "multi-user.target",
    "kit-hotspot-setup.service": "NetworkManager.service",
    "kit-port80.service": "multi-user.target",
}
TIMINGS = ROOT / "test-artifacts" / "image_build" / "timings.txt"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageRoot]:
    """The kit's stage built into a fresh bookworm root; deleted afterwards (set
    KIT_TEST_KEEP_IMAGE_ROOT=1 to keep it), never with anything still mounted in it."""
    require_tools()
    base = tmp_path_factory.mktemp("image-root")
    root = ImageRoot(base / "rootfs")
    started = time.monotonic()
    try:
        root.bootstrap()
        root.timings["debootstrap (or its cache)"] = time.monotonic() - started
        mark = time.monotonic()
        root.trust_host()
        root.like_raspberry_pi_os_lite()
        root.timings["apt sources, apt-get update"] = time.monotonic() - mark
        root.run_stage(
            STAGE,
            # GIT_OPTIONAL_LOCKS=0: the step's git commands leave this repository's index alone.
            host_env={"KIT_IMAGE_FROM_WORKTREE": "1", "GIT_OPTIONAL_LOCKS": "0"},
            chroot_env={"KIT_IMAGE_SKIP_RPI_PACKAGES": "1"},
        )
        root.timings["whole build"] = time.monotonic() - started
        TIMINGS.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS.write_text("".join(f"{s:7.1f} s  {step}\n" for step, s in root.timings.items()))
        yield root
    finally:
        left = mounts_under(root.path)
        for point in reversed(left):
            subprocess.run(["umount", "--lazy", point], check=False)
        if not mounts_under(root.path) and not os.environ.get("KIT_TEST_KEEP_IMAGE_ROOT"):
            # --one-file-system: even a mount nobody saw would not be followed.
            subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False)
        assert not left, f"left mounted under {root.path}: {left}"


def test_the_build_left_nothing_mounted(image: ImageRoot) -> None:
    assert mounts_under(image.path) == []


def test_the_kit_runs_in_the_image(image: ImageRoot) -> None:
    done = image.run(["kit", "--version"], user="kit", cwd="/tmp")
    assert re.fullmatch(r"kit \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout
    build = image.file("/opt/kit/BUILD").read_text()
    assert re.search(r"^commit=[0-9a-f]{40}$", build, re.M)
    assert "source=worktree" in build
    # The rpi packages were left out, as asked, and said so.
    assert image.run(["dpkg-query", "-W", "python3-picamera2"], check=False).returncode != 0


def test_the_units_are_installed_enabled_and_verify(image: ImageRoot) -> None:
    paths = []
    for unit, wanted_by in UNITS.items():
        path = f"/etc/systemd/system/{unit}"
        assert image.file(path).is_file(), path
        paths.append(path)
        state = image.run(["systemctl", "is-enabled", unit], check=False).stdout.strip()
        assert state == "enabled", f"{unit}: {state}"
        assert image.file(f"/etc/systemd/system/{wanted_by}.wants/{unit}").is_symlink()
    # Inside the image every ExecStart= program and every unit named exists for real
    # (NetworkManager.service, systemd-udev-settle.service, ...): no stand-ins.
    done = image.run(["systemd-analyze", "verify", "--man=no", *paths], check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    # Debian's nftables.service would "flush ruleset" (NetworkManager's and the kit's).
    state = image.run(["systemctl", "is-enabled", "nftables.service"], check=False).stdout
    assert state.strip() == "disabled"


def test_the_hotspot_is_set_up_in_the_image(image: ImageRoot) -> None:
    image.run(["/usr/local/sbin/kit-hotspot-setup"], env={"KIT_NM_RELOAD": "0"})
    wifi = image.file("/boot/firmware/kit-wifi.txt").read_text()
    ssid = re.search(r"^SSID=(VIG-Kit-[0-9A-F]{4})$", wifi, re.M)
    assert ssid, wifi
    profile = image.file("/etc/NetworkManager/system-connections/kit-hotspot.nmconnection")
    assert profile.stat().st_mode & 0o777 == 0o600
    assert parse_unit(profile.read_text())["wifi"]["ssid"] == [ssid[1]]

    # NetworkManager's dnsmasq reads the folder with --conf-dir: the image's dnsmasq
    # accepts what is there.
    done = image.run(
        ["dnsmasq", "--test", "--conf-dir=/etc/NetworkManager/dnsmasq-shared.d"],
    )
    assert "syntax check OK" in done.stdout + done.stderr
    # The port-80 rule, checked by the image's nft in a network namespace of its own.
    image.run(["nft", "--check", "--file", "/etc/kit/port80.nft"], net=True)


def test_kit_check_collects_the_suite_with_exactly_the_images_packages(image: ImageRoot) -> None:
    """What ``kit check`` runs (kit/daemon/health.py: probe_pi_tests), as the kit's user
    from /tmp as the image's README says, with --collect-only: no module fails to import."""
    argv = [VENV_PYTHON, "-m", "pytest", "-m", "pi", "-q", "-p", "no:cacheprovider"]
    done = image.run(
        [*argv, "--collect-only", "/opt/kit/tests"], user="kit", cwd="/tmp", check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert not re.search(r"\berrors?\b", output.splitlines()[-1]), output[-6000:]
    collected = re.search(r"(\d+)/(\d+) tests? collected", output)
    assert collected, output[-2000:]
    assert int(collected[1]) > 0, "no test is marked pi"


def test_pip_installed_only_the_pinned_versions(image: ImageRoot) -> None:
    done = image.run([VENV_PYTHON, "-m", "pip", "list", "--format=json", "--path", SITE_PACKAGES])
    installed = {canonical(d["name"]): d["version"] for d in json.loads(done.stdout)}
    installed.pop("vig-kit")
    pinned = pins(CONSTRAINTS.read_text())
    assert {n: v for n, v in installed.items() if pinned.get(n) != v} == {}
    assert "numpy" not in installed, "pip put a numpy of its own in front of Debian's"


def test_numpy_is_debians_and_the_pin_is_bookworms(image: ImageRoot) -> None:
    done = image.run([VENV_PYTHON, "-c", "import numpy; print(numpy.__version__, numpy.__file__)"])
    version, where = done.stdout.split()
    assert where.startswith("/usr/lib/python3/dist-packages/numpy/")
    debian = image.run(["dpkg-query", "-W", "-f", "${Version}", "python3-numpy"]).stdout
    upstream = re.fullmatch(r"(?:\d+:)?([0-9.]+)-.*", debian)
    assert upstream, debian
    assert version == upstream[1] == pins(CONSTRAINTS.read_text())["numpy"]


# journald with a console log at debug level prints the limits it applies to each journal.
_LIMITS = re.compile(r"max_use=(\S+) max_size=(\S+)")
_JOURNAL = """
export SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug
/lib/systemd/systemd-journald 2>/tmp/journald.log &
pid=$!
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
journalctl --flush
echo "kit journal test" | systemd-cat -t kit-journal-test
kill "$pid"; wait "$pid" || true
cat /tmp/journald.log >&2
journalctl --directory=/var/log/journal -t kit-journal-test -o cat
"""


def test_the_journal_is_kept_on_the_card_and_capped(image: ImageRoot) -> None:
    """The image's own journald, started in the root: it reads pi-gen's Storage=volatile
    and the kit's drop-in, writes to /var/log/journal, and holds it to 64M in 8M files."""
    journal = image.file("/var/log/journal")
    try:
        done = image.run(["/bin/bash", "-c", _JOURNAL], timeout=60)
        assert done.stdout == "kit journal test\n", done.stderr[-3000:]
        assert not re.search(r"(?i)unknown|failed to parse", done.stderr), done.stderr
        # The first line is the runtime journal in /run (before the flush), the last the
        # persistent one in /var/log/journal.
        assert _LIMITS.findall(done.stderr)[-1] == ("64.0M", "8.0M"), done.stderr[-3000:]
        assert list(journal.glob("*/system.journal"))
    finally:
        shutil.rmtree(journal, ignore_errors=True)


def test_the_kit_records_a_take_with_the_images_packages(image: ImageRoot) -> None:
    """numpy 1.24 (Debian's), PyAV, cryptography and the rest at their pinned versions:
    one simulated take, encrypted, from the CLI."""
    key = image.run(["kit", "keys", "new", "--out", "/tmp/org.key"], cwd="/tmp")
    recipient = re.search(r"age1[0-9a-z]+", key.stdout + image.file("/tmp/org.key").read_text())
    assert recipient, key.stdout
    done = image.run(
        [
            "kit",
            "record",
            "--simulate",
            "--seconds",
            "2",
            "--data",
            "/tmp/kit-data",
            "--recipient",
            recipient[0],
            "--case-ref",
            "C-1",
            "--consent-by",
            "parent",
            "--purpose",
            "review",
        ],
        cwd="/tmp",
        env={"KIT_PRIVACY_KEY_DIR": "/run/kit-keys"},
        timeout=300,
    )
    film = image.file(done.stdout.strip().splitlines()[-1])
    assert film.is_file() and film.stat().st_size > 10_000, done.stdout + done.stderr[-2000:]


def _first_boot_unit() -> dict[str, list[str]]:
    return parse_unit((ROOT / "systemd" / "kit-first-boot.service").read_text())["Service"]


def test_first_boot_makes_the_secrets_and_the_label(image: ImageRoot) -> None:
    """The unit's commands as its user, with its StateDirectory made as systemd makes it."""
    service = _first_boot_unit()
    user = service["User"][0]
    image.run(["/usr/local/sbin/kit-hotspot-setup"], env={"KIT_NM_RELOAD": "0"})
    image.run(["install", "-d", "-o", user, "-g", user, "-m", "0750", DATA_DIR])
    exec_start = service["ExecStart"][0].split()
    probe = image.run([exec_start[0], "first-boot", "--help"], user=user, cwd="/", check=False)
    if probe.returncode != 0 and "invalid choice: 'first-boot'" in probe.stderr:
        pytest.skip(
            "`kit first-boot` does not exist yet (kit/cli.py has no first-boot command); "
            "the unit that runs it, kit-first-boot.service, is installed and enabled"
        )
    assert probe.returncode == 0, probe.stdout + probe.stderr

    image.run(exec_start, user=user, cwd="/", timeout=300)
    for post in service.get("ExecStartPost", []):
        image.run(post.split(), user=user, cwd="/")

    data = image.file(DATA_DIR)
    for name, mode in (("signing.key", 0o600), ("pairing.db", 0o600)):
        path = data / name
        assert path.is_file(), name
        assert path.stat().st_mode & 0o077 == 0, f"{name}: mode {path.stat().st_mode:o}"
        assert path.stat().st_mode & 0o777 == mode
    secret = image.run(
        [
            VENV_PYTHON,
            "-c",
            "import sqlite3; c = sqlite3.connect('/var/lib/kit/pairing.db');"
            " print(len(c.execute('SELECT secret FROM kit_secret').fetchone()[0]))",
        ],
        user=user,
        cwd="/",
    )
    assert int(secret.stdout) >= 16
    assert (data / "label.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (data / "label.pdf").read_bytes().startswith(b"%PDF-")
    owner = {p.name: p.stat().st_uid for p in data.iterdir()}
    assert len(set(owner.values())) == 1, owner  # all the kit user's

    marker = service["ExecStartPost"][0].split()[-1]
    assert image.file(marker).is_file()
    condition = parse_unit((ROOT / "systemd" / "kit-first-boot.service").read_text())
    assert condition["Unit"]["ConditionPathExists"] == [f"!{marker}"]

    # A second run keeps the secrets as they are.
    key = (data / "signing.key").read_bytes()
    image.run(exec_start, user=user, cwd="/", timeout=300)
    assert (data / "signing.key").read_bytes() == key
