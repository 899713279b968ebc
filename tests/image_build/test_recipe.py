"""The image recipe: shellcheck-clean, shaped the way pi-gen reads a stage, and working parts.

pi-gen itself needs root, loop devices and ARM emulation, so it is not run
here; instead each script is linted, the stage's layout is checked against
pi-gen's rules (numbered sub-stages, executable ``NN-run.sh``), the host-side
install steps run into a fake root filesystem, build-image.sh refuses pi-gen
checkouts that do not build Bookworm for arm64, and the first-boot hotspot
script runs on temporary files. test_image_root.py builds the stage for real
in a Debian chroot.
"""

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.systemd.test_units import parse_unit, systemd_verify

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "image-build"
STAGE = RECIPE / "stage-kit"
HOTSPOT = STAGE / "02-hotspot" / "files" / "kit-hotspot-setup"
HOTSPOT_UNIT = STAGE / "02-hotspot" / "files" / "kit-hotspot-setup.service"
PORT80_UNIT = STAGE / "02-hotspot" / "files" / "kit-port80.service"
PORT80_RULES = STAGE / "02-hotspot" / "files" / "kit-port80.nft"
KIT_DNS = STAGE / "02-hotspot" / "files" / "kit-dns.conf"
JOURNAL_DROP_IN = STAGE / "04-journal" / "files" / "90-kit-journal.conf"
USB_RULE = STAGE / "03-usb" / "files" / "50-kit-usb-sticks.rules"
SOURCED = {RECIPE / "config", STAGE / "EXPORT_IMAGE"}  # bash fragments pi-gen sources
# Shell outside image-build/: the quick start, CI, and the tests' chroot runner.
OTHER_SCRIPTS = [ROOT / "quickstart", ROOT / ".ci" / "run", ROOT / "tests/image_build/in-chroot"]
# Git commands the scripts run must not rewrite the index as a side effect (several people
# work in this tree); git then refreshes nothing it would need a lock for.
NO_GIT_LOCKS = {"GIT_OPTIONAL_LOCKS": "0"}


def shell_scripts() -> list[Path]:
    """Every file in image-build/ that is shell: by suffix, by shebang, or sourced by pi-gen."""
    found = set(SOURCED)
    for path in RECIPE.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".sh":
            found.add(path)
            continue
        with path.open("rb") as f:
            first = f.readline()
        if re.match(rb"#!\s*/(usr/)?bin/(env )?(ba)?sh\b", first):
            found.add(path)
    return sorted(found)


def rel(path: Path) -> str:
    return str(path.relative_to(RECIPE))


def rel_root(path: Path) -> str:
    return str(path.relative_to(ROOT))


def is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IXUSR)


def test_the_scripts_are_found() -> None:
    names = {rel(p) for p in shell_scripts()}
    assert {
        "config",
        "build-image.sh",
        "stage-kit/prerun.sh",
        "stage-kit/EXPORT_IMAGE",
        "stage-kit/00-install-packages/01-run-chroot.sh",
        "stage-kit/01-kit/00-run.sh",
        "stage-kit/01-kit/01-run-chroot.sh",
        "stage-kit/02-hotspot/00-run.sh",
        "stage-kit/02-hotspot/01-run-chroot.sh",
        "stage-kit/02-hotspot/files/kit-hotspot-setup",
        "stage-kit/03-usb/00-run.sh",
        "stage-kit/04-journal/00-run.sh",
    } <= names


@pytest.mark.parametrize("script", shell_scripts() + OTHER_SCRIPTS, ids=rel_root)
def test_shellcheck(script: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (./quickstart test installs it)")
    argv = [shellcheck, "--external-sources", "--severity=style"]
    if script in SOURCED:
        argv.append("--shell=bash")
    done = subprocess.run(
        [*argv, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the stage as pi-gen reads it -----------------------------------------------------------


def test_stage_layout() -> None:
    assert is_executable(STAGE / "prerun.sh")
    assert (STAGE / "EXPORT_IMAGE").is_file()
    substages = sorted(p.name for p in STAGE.iterdir() if p.is_dir())
    assert substages == ["00-install-packages", "01-kit", "02-hotspot", "03-usb", "04-journal"]
    for sub in substages:
        assert re.fullmatch(r"\d\d-[a-z-]+", sub)


def test_run_scripts_are_executable_and_numbered() -> None:
    # pi-gen silently skips an NN-run.sh without its executable bit.
    runs = sorted(STAGE.glob("*/*-run.sh"))
    assert runs
    for script in runs:
        assert re.fullmatch(r"\d\d-run\.sh", script.name), script
        assert is_executable(script), f"{rel(script)} is not executable"
    for script in STAGE.glob("*/*-run-chroot.sh"):
        assert re.fullmatch(r"\d\d-run-chroot\.sh", script.name), script
        assert script.read_text().startswith("#!/bin/bash -e\n"), script


def test_packages() -> None:
    text = (STAGE / "00-install-packages" / "00-packages-nr").read_text()
    packages = set(re.sub(r"#[^\n]*", "", text).split())
    assert packages == {
        "python3-venv",
        "python3-numpy",
        "libportaudio2",
        "alsa-utils",
        "fonts-dejavu-core",
        "network-manager",
        "dnsmasq-base",
        "nftables",
        "udisks2",
        "polkitd",
    }


def _rpi_packages_step(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """00-install-packages/01-run-chroot.sh with apt-get replaced by an echo."""
    script = (STAGE / "00-install-packages" / "01-run-chroot.sh").read_text()
    return subprocess.run(
        ["bash", "-e", "-c", f'apt-get() {{ echo apt-get "$@"; }}\n{script}'],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


def test_the_raspberry_pi_archive_packages_are_installed_without_recommends() -> None:
    done = _rpi_packages_step({})
    assert done.stdout.split() == [
        "apt-get",
        "-o",
        "Acquire::Retries=3",
        "install",
        "--no-install-recommends",
        "-y",
        "python3-picamera2",
        "python3-lgpio",
    ]


def test_kit_image_skip_rpi_packages_leaves_them_out_and_says_so() -> None:
    done = _rpi_packages_step({"KIT_IMAGE_SKIP_RPI_PACKAGES": "1"})
    assert done.stdout == ""
    assert "NOT installing python3-picamera2 python3-lgpio" in done.stderr


def test_config_lists_the_kit_stage_after_raspberry_pi_os_lite() -> None:
    done = subprocess.run(
        ["bash", "-c", 'source "$1" && echo "$STAGE_LIST" && echo "$WPA_COUNTRY"', "-", "config"],
        cwd=RECIPE,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    stage_list, country = done.stdout.splitlines()
    assert stage_list.split() == ["stage0", "stage1", "stage2", str(STAGE)]
    assert re.fullmatch(r"[A-Z]{2}", country)


def test_the_kit_is_installed_into_opt_kit_with_its_units_enabled() -> None:
    chroot = (STAGE / "01-kit" / "01-run-chroot.sh").read_text()
    assert "python3 -m venv --system-site-packages /opt/kit/.venv" in chroot
    assert "useradd --system" in chroot
    assert "systemctl enable kit.service kit-first-boot.service" in chroot
    # Every pip install in the image is held to the constraints, build dependencies too.
    assert "export PIP_CONSTRAINT=/opt/kit/image-build/constraints.txt" in chroot
    assert chroot.index("export PIP_CONSTRAINT") < chroot.index("/opt/kit/.venv/bin/pip install")
    assert "pip install -e '/opt/kit[check]'" in chroot
    for group in ("gpio", "video", "audio"):
        assert group in chroot
    hotspot = (STAGE / "02-hotspot" / "01-run-chroot.sh").read_text()
    assert "systemctl enable kit-hotspot-setup.service kit-port80.service" in hotspot


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", "-c", f"safe.directory={cwd}", "-C", str(cwd), *args],
        env={**os.environ, **NO_GIT_LOCKS},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def _worktree_files() -> set[str]:
    """What git tracks or would track in the working tree, as it is now."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    return {name for name in listed if name and (ROOT / name).exists()}


def _committed_copy(tmp_path: Path) -> Path:
    """A clone of the kit whose HEAD is this working tree, committed (in the clone only), so
    the default step (`git archive HEAD`) is tested on the tree under test."""
    clone = tmp_path / "kit"
    _git("clone", "--quiet", "--local", str(ROOT), str(clone), cwd=tmp_path)
    for child in clone.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    for name in _worktree_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name, follow_symlinks=False)
    _git("add", "-A", cwd=clone)
    _git(
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@invalid",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "the working tree under test",
        cwd=clone,
    )
    return clone


def _kit_host_step(tmp_path: Path, env: dict[str, str]) -> Path:
    """01-kit/00-run.sh into a fake root filesystem; the root."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs the kit's git repository")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc" / "systemd" / "system").mkdir(parents=True)
    subprocess.run(
        ["bash", "-e", "./00-run.sh"],
        cwd=STAGE / "01-kit",
        env={
            **os.environ,
            **NO_GIT_LOCKS,
            **env,
            "ROOTFS_DIR": str(rootfs),
            "STAGE_DIR": str(STAGE),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return rootfs


def test_host_step_puts_the_source_and_units_into_the_root_filesystem(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs the kit's git repository")
    clone = _committed_copy(tmp_path)
    rootfs = _kit_host_step(tmp_path, {"KIT_SRC": str(clone)})
    kit = rootfs / "opt" / "kit"
    assert {str(p.relative_to(kit)) for p in kit.rglob("*") if not p.is_dir()} == {
        *_git("ls-tree", "-r", "--name-only", "HEAD", cwd=clone).splitlines(),
        "BUILD",
    }
    assert (kit / "pyproject.toml").is_file()
    assert (kit / "kit" / "__init__.py").is_file()
    assert not (kit / ".git").exists()
    build = (kit / "BUILD").read_text()
    assert re.match(r"commit=[0-9a-f]{40}\n", build)
    assert "source=commit\n" in build
    for unit in ("kit.service", "kit-first-boot.service"):
        installed = rootfs / "etc" / "systemd" / "system" / unit
        assert installed.read_text() == (kit / "systemd" / unit).read_text()
    installed = rootfs / "etc" / "systemd" / "system" / "kit.service"
    shipped = ROOT / "systemd" / "kit.service"
    assert parse_unit(installed.read_text())["Service"]["ExecStart"] == [
        "/opt/kit/.venv/bin/kit run"
    ]
    assert parse_unit(shipped.read_text())["Install"]["WantedBy"] == ["multi-user.target"]


def test_kit_image_from_worktree_copies_the_working_tree_as_it_is(tmp_path: Path) -> None:
    rootfs = _kit_host_step(tmp_path, {"KIT_IMAGE_FROM_WORKTREE": "1"})
    kit = rootfs / "opt" / "kit"
    expected = _worktree_files()
    copied = {str(p.relative_to(kit)) for p in kit.rglob("*") if p.is_file() or p.is_symlink()} - {
        "BUILD"
    }
    assert copied == expected
    assert "source=worktree\n" in (kit / "BUILD").read_text()
    # As the files are now, not as committed.
    assert (kit / "image-build" / "constraints.txt").read_bytes() == (
        RECIPE / "constraints.txt"
    ).read_bytes()
    assert not (kit / ".venv").exists()


def test_hotspot_unit_verifies_and_runs_before_networkmanager(tmp_path: Path) -> None:
    unit = parse_unit(HOTSPOT_UNIT.read_text())
    assert unit["Unit"]["Before"] == ["NetworkManager.service"]
    assert unit["Service"]["ExecStart"] == ["/usr/local/sbin/kit-hotspot-setup"]
    assert unit["Install"]["WantedBy"] == ["NetworkManager.service"]
    installer = (STAGE / "02-hotspot" / "00-run.sh").read_text()
    assert "/usr/local/sbin/kit-hotspot-setup" in installer
    assert systemd_verify(HOTSPOT_UNIT, tmp_path) == (0, "")


@pytest.mark.parametrize("unit", sorted(RECIPE.rglob("*.service")), ids=rel)
def test_every_unit_the_recipe_installs_verifies(unit: Path, tmp_path: Path) -> None:
    """systemd/'s units (kit.service, kit-first-boot.service) are verified by tests/systemd."""
    assert systemd_verify(unit, tmp_path) == (0, "")


def test_port80_unit_verifies_and_loads_the_kits_rules(tmp_path: Path) -> None:
    unit = parse_unit(PORT80_UNIT.read_text())
    service = unit["Service"]
    assert service["ExecStart"] == ["/usr/sbin/nft -f /etc/kit/port80.nft"]
    assert service["ExecStop"] == ["/usr/sbin/nft delete table ip kit"]
    assert service["CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert systemd_verify(PORT80_UNIT, tmp_path) == (0, "")


def test_the_hotspot_step_installs_its_files_where_they_are_read(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    for folder in ("usr/local/sbin", "etc/systemd/system"):
        (rootfs / folder).mkdir(parents=True)
    subprocess.run(
        ["bash", "-e", "./00-run.sh"],
        cwd=STAGE / "02-hotspot",
        env={**os.environ, "ROOTFS_DIR": str(rootfs)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    installed = {
        "usr/local/sbin/kit-hotspot-setup": (HOTSPOT, 0o755),
        "etc/systemd/system/kit-hotspot-setup.service": (HOTSPOT_UNIT, 0o644),
        # NetworkManager's dnsmasq for shared connections: --conf-dir of this folder.
        "etc/NetworkManager/dnsmasq-shared.d/kit-dns.conf": (KIT_DNS, 0o644),
        "etc/kit/port80.nft": (PORT80_RULES, 0o644),
        "etc/systemd/system/kit-port80.service": (PORT80_UNIT, 0o644),
    }
    for path, (source, mode) in installed.items():
        assert (rootfs / path).read_bytes() == source.read_bytes(), path
        assert stat.S_IMODE((rootfs / path).stat().st_mode) == mode, path


def _dns_settings() -> list[str]:
    return [
        line.strip()
        for line in KIT_DNS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_the_hotspot_dns_answers_every_name_with_the_kit_and_nothing_else() -> None:
    address = re.search(r"^ADDRESS=(\S+)$", HOTSPOT.read_text(), re.M)
    assert address
    assert _dns_settings() == [
        f"address=/#/{address[1]}",  # every name: the kit's address, as the hotspot sets it
        "local=/#/",  # every other question answered here (NODATA), never forwarded
        "no-resolv",
        "local-ttl=0",
    ]


def test_dnsmasq_accepts_the_hotspot_dns_file() -> None:
    dnsmasq = shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
    )
    if dnsmasq is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail("CI must check kit-dns.conf, but dnsmasq is not installed")
        pytest.skip("dnsmasq is not installed (apt install dnsmasq-base)")
    done = subprocess.run(
        [dnsmasq, "--test", "--conf-file=/dev/null", f"--conf-dir={KIT_DNS.parent},*.conf"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax check OK" in done.stdout + done.stderr


def test_the_port80_rule_redirects_the_hotspots_port_80_to_the_web_port() -> None:
    from kit.config import WebConfig

    rules = PORT80_RULES.read_text()
    interface = re.search(r"^IFACE=\$\{KIT_WIFI_IFACE:-(\w+)\}$", HOTSPOT.read_text(), re.M)
    web_port = re.search(r"^WEB_PORT=\$\{KIT_WEB_PORT:-(\d+)\}$", HOTSPOT.read_text(), re.M)
    assert interface and web_port
    assert int(web_port[1]) == WebConfig().port
    assert f'iifname "{interface[1]}" tcp dport 80 redirect to :{web_port[1]}' in rules
    # Replaced as a whole on every load: the idempotent form (make, delete, define).
    assert rules.index("table ip kit\ndelete table ip kit\n") < rules.index("table ip kit {")


# --- the journal ----------------------------------------------------------------------------


def test_the_journal_step_installs_the_drop_in(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    subprocess.run(
        ["bash", "-e", "./00-run.sh"],
        cwd=STAGE / "04-journal",
        env={**os.environ, "ROOTFS_DIR": str(rootfs)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    installed = rootfs / "etc" / "systemd" / "journald.conf.d" / JOURNAL_DROP_IN.name
    assert installed.read_bytes() == JOURNAL_DROP_IN.read_bytes()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o644


_SIZE = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def test_the_journal_is_persistent_and_small() -> None:
    journal = parse_unit(JOURNAL_DROP_IN.read_text())["Journal"]
    assert journal["Storage"] == ["persistent"]
    sizes = {}
    for key in ("SystemMaxUse", "SystemMaxFileSize"):
        match = re.fullmatch(r"(\d+)([KMG])", journal[key][0])
        assert match, journal[key]
        sizes[key] = int(match[1]) * _SIZE[match[2]]
    assert sizes["SystemMaxUse"] <= 128 * _SIZE["M"]
    assert sizes["SystemMaxFileSize"] * 4 <= sizes["SystemMaxUse"]
    # No longer than visits are kept by default.
    from kit.config import PrivacyConfig

    assert journal["MaxRetentionSec"] == [f"{PrivacyConfig().erase_after_days}day"]
    # Later drop-ins win: this one sorts after any a Raspberry Pi OS package might add.
    assert JOURNAL_DROP_IN.name.startswith("90-")


# --- build-image.sh and the pi-gen checkout -----------------------------------------------


def _fake_pi_gen(path: Path, release: str, arch: str) -> Path:
    """A pi-gen checkout as far as build-image.sh looks: build.sh's defaults and stage2."""
    (path / "stage2").mkdir(parents=True)
    build = path / "build.sh"
    build.write_text(
        "#!/bin/bash -e\n"
        "export PI_GEN_RELEASE=${PI_GEN_RELEASE:-Raspberry Pi reference}\n"
        f"export ARCH={arch}\n"
        f"export RELEASE=${{RELEASE:-{release}}} # Don't forget to update stage0/prerun.sh\n"
        'echo "fake pi-gen build $*"\n'
    )
    build.chmod(0o755)
    return path


def _build_image(
    pigen: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RECIPE / "build-image.sh"), str(pigen)],
        env={**os.environ, **NO_GIT_LOCKS, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("release", "arch"),
    [("trixie", "arm64"), ("bookworm", "armhf"), ("trixie", "armhf")],
    ids=["arm64-branch-now-trixie", "bookworm-32-bit", "master"],
)
def test_build_image_refuses_a_pi_gen_that_does_not_build_bookworm_arm64(
    tmp_path: Path, release: str, arch: str
) -> None:
    done = _build_image(_fake_pi_gen(tmp_path / "pi-gen", release, arch))
    assert done.returncode == 1
    assert f"builds {release} for {arch}" in done.stderr
    assert "git clone --branch bookworm-arm64" in done.stderr
    assert not (tmp_path / "pi-gen" / "stage2" / "SKIP_IMAGES").exists()


def test_build_image_takes_pi_gens_bookworm_arm64(tmp_path: Path) -> None:
    pigen = _fake_pi_gen(tmp_path / "pi-gen", "bookworm", "arm64")
    done = _build_image(pigen)
    if os.geteuid() != 0:
        assert done.returncode == 1
        assert "pi-gen must run as root" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"fake pi-gen build -c {RECIPE / 'config'}\n"
    assert (pigen / "stage2" / "SKIP_IMAGES").exists()


def test_build_image_refuses_to_leave_the_camera_out(tmp_path: Path) -> None:
    pigen = _fake_pi_gen(tmp_path / "pi-gen", "bookworm", "arm64")
    done = _build_image(pigen, {"KIT_IMAGE_SKIP_RPI_PACKAGES": "1"})
    assert done.returncode == 1
    assert "KIT_IMAGE_SKIP_RPI_PACKAGES" in done.stderr


# --- USB sticks: the polkit rule that lets the kit's user mount them -------------------------


def test_the_usb_rule_is_installed_where_polkit_reads_it(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    subprocess.run(
        ["bash", "-e", "./00-run.sh"],
        cwd=STAGE / "03-usb",
        env={**os.environ, "ROOTFS_DIR": str(rootfs)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    installed = rootfs / "etc" / "polkit-1" / "rules.d" / "50-kit-usb-sticks.rules"
    assert installed.read_text() == USB_RULE.read_text()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o644


def _node() -> str | None:
    """A JavaScript engine: Playwright's own node (a test dependency), else the system's."""
    try:
        import playwright
    except ImportError:
        return shutil.which("node")
    bundled = Path(playwright.__file__).parent / "driver" / "node"
    return str(bundled) if bundled.is_file() else shutil.which("node")


# The rule run as polkitd runs it: addRule's function called with an action and a subject.
_POLKIT = """
const source = require("fs").readFileSync(process.argv[1], "utf8");
let rule = null;
const polkit = {Result: {YES: "yes", NO: "no", NOT_HANDLED: null},
                addRule: function (f) { rule = f; }};
new Function("polkit", source)(polkit);
const cases = JSON.parse(process.argv[2]);
const answers = cases.map(function (c) {
  const action = {id: c.action, lookup: function (k) { return c.details[k]; }};
  return rule(action, {user: c.user, local: false, active: false});
});
console.log(JSON.stringify(answers));
"""

_USB = {"drive.removable": "true", "drive.removable.bus": "usb", "id.type": "vfat"}
_UD = "org.freedesktop.udisks2."


@pytest.mark.parametrize(
    ("user", "action", "details", "answer"),
    [
        ("kit", _UD + "filesystem-mount-other-seat", _USB, "yes"),
        ("kit", _UD + "filesystem-mount", _USB, "yes"),
        ("kit", _UD + "power-off-drive-other-seat", _USB, "yes"),
        ("kit", _UD + "filesystem-unmount-others", _USB, "yes"),
        ("pi", _UD + "filesystem-mount-other-seat", _USB, None),  # only the kit's user
        ("kit", _UD + "modify-device", _USB, None),  # no formatting, no partitioning
        ("kit", _UD + "filesystem-mount-system", {"id.type": "ext4"}, None),  # the SD card
        ("kit", _UD + "filesystem-mount-other-seat", {**_USB, "drive.removable.bus": "sdio"}, None),
        ("kit", _UD + "filesystem-mount-other-seat", {"drive.removable.bus": "usb"}, None),
    ],
)
def test_the_usb_rule_allows_the_kit_its_usb_sticks_and_nothing_else(
    user: str, action: str, details: dict[str, str], answer: str | None
) -> None:
    node = _node()
    if node is None:
        pytest.skip("no JavaScript engine (Playwright's node or the system's)")
    case = json.dumps([{"user": user, "action": action, "details": details}])
    done = subprocess.run(
        [node, "-e", _POLKIT, str(USB_RULE), case],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == [answer]


def test_the_usb_rule_is_es5_for_debians_polkitd() -> None:
    """Debian's polkitd runs rules in duktape (ECMAScript 5.1): no let/const/arrows."""
    code = re.sub(r"//[^\n]*", "", USB_RULE.read_text())
    assert not re.search(r"\b(let|const|class)\b|=>|`", code)


# --- the first-boot hotspot script ----------------------------------------------------------


class Kit:
    """A fake kit's boot partition, NetworkManager directory and serial number."""

    def __init__(self, root: Path, serial: bytes = b"10000000abcd12ef\0") -> None:
        self.boot = root / "boot"
        self.boot.mkdir(parents=True)
        self.nm = root / "nm"
        self.serial = root / "serial-number"
        self.serial.write_bytes(serial)
        self.machine_id = root / "machine-id"
        self.machine_id.write_text("0123456789abcdef0123456789abcdef\n")

    @property
    def wifi_file(self) -> Path:
        return self.boot / "kit-wifi.txt"

    @property
    def profile(self) -> Path:
        return self.nm / "kit-hotspot.nmconnection"

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ["PATH"],
            "KIT_BOOT_DIR": str(self.boot),
            "KIT_NM_DIR": str(self.nm),
            "KIT_SERIAL_FILE": str(self.serial),
            "KIT_MACHINE_ID_FILE": str(self.machine_id),
            "KIT_NM_RELOAD": "0",
        }
        return subprocess.run(
            [str(HOTSPOT)], env=env, capture_output=True, text=True, timeout=30, check=True
        )

    def settings(self, path: Path) -> dict[str, str]:
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        return {key: value for key, value in pairs if not key.startswith("#")}


def test_first_boot_makes_credentials_and_the_profile(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.run()
    wifi = kit.settings(kit.wifi_file)
    assert wifi["SSID"] == "VIG-Kit-12EF"
    assert re.fullmatch(
        r"[a-hj-km-np-z2-9]{4}-[a-hj-km-np-z2-9]{4}-[a-hj-km-np-z2-9]{4}", wifi["PASSPHRASE"]
    )
    assert wifi["ADDRESS"] == "http://10.42.0.1:8080/"

    assert stat.S_IMODE(kit.profile.stat().st_mode) == 0o600
    profile = parse_unit(kit.profile.read_text())
    assert profile["connection"]["type"] == ["wifi"]
    assert profile["wifi"]["mode"] == ["ap"]
    assert profile["wifi"]["ssid"] == ["VIG-Kit-12EF"]
    security = profile["wifi-security"]
    assert (security["key-mgmt"], security["proto"], security["pmf"]) == (
        ["wpa-psk"],
        ["rsn"],
        ["1"],
    )
    assert security["psk"] == [wifi["PASSPHRASE"]]
    assert profile["ipv4"]["method"] == ["shared"]
    assert profile["ipv4"]["address1"] == ["10.42.0.1/24"]


def test_every_boot_after_keeps_the_same_credentials(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.run()
    wifi, profile = kit.wifi_file.read_text(), kit.profile.read_text()
    again = kit.run()
    assert (kit.wifi_file.read_text(), kit.profile.read_text()) == (wifi, profile)
    assert again.stderr == ""


def test_two_kits_get_different_passphrases(tmp_path: Path) -> None:
    first, second = Kit(tmp_path / "a"), Kit(tmp_path / "b")
    first.run()
    second.run()
    assert kit_passphrase(first) != kit_passphrase(second)


def kit_passphrase(kit: Kit) -> str:
    return kit.settings(kit.wifi_file)["PASSPHRASE"]


def test_edited_credentials_are_applied_keeping_the_profile_id(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.run()
    uuid = parse_unit(kit.profile.read_text())["connection"]["uuid"]
    # Edited on a Windows computer: CRLF line endings.
    kit.wifi_file.write_bytes(b"# mine\r\nSSID=Family Room 2\r\nPASSPHRASE=correct.horse:42\r\n")
    kit.run()
    profile = parse_unit(kit.profile.read_text())
    assert profile["wifi"]["ssid"] == ["Family Room 2"]
    assert profile["wifi-security"]["psk"] == ["correct.horse:42"]
    assert profile["connection"]["uuid"] == uuid
    assert kit.wifi_file.read_bytes().startswith(b"# mine")  # the person's file is left alone


def test_credentials_set_before_the_first_boot_are_used(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.wifi_file.write_text("SSID=Clinic-3\nPASSPHRASE=hello-there-42\n")
    kit.run()
    assert parse_unit(kit.profile.read_text())["wifi"]["ssid"] == ["Clinic-3"]


@pytest.mark.parametrize(
    "text",
    [
        "SSID=Clinic\nPASSPHRASE=short\n",
        "SSID=Clinic\nPASSPHRASE=has\\backslash\n",
        "SSID=\nPASSPHRASE=long-enough-1\n",
        "SSID=" + "x" * 33 + "\nPASSPHRASE=long-enough-1\n",
        "SSID=$(reboot)\nPASSPHRASE=long-enough-1\n",
    ],
)
def test_invalid_edits_keep_the_current_hotspot(tmp_path: Path, text: str) -> None:
    kit = Kit(tmp_path)
    kit.run()
    before = kit.profile.read_text()
    kit.wifi_file.write_text(text)
    done = kit.run()
    assert kit.profile.read_text() == before
    assert "not allowed" in done.stderr
    assert kit.wifi_file.read_text() == text


def test_invalid_file_before_the_first_boot_is_replaced(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.wifi_file.write_text("SSID=Clinic\nPASSPHRASE=short\n")
    kit.run()
    wifi = kit.settings(kit.wifi_file)
    assert wifi["SSID"] == "VIG-Kit-12EF"
    assert "were not valid" in kit.wifi_file.read_text()
    assert parse_unit(kit.profile.read_text())["wifi-security"]["psk"] == [wifi["PASSPHRASE"]]


def test_without_a_serial_number_the_machine_id_names_the_kit(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.serial.unlink()
    kit.run()
    assert kit.settings(kit.wifi_file)["SSID"] == "VIG-Kit-CDEF"
