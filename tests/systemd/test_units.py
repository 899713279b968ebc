"""The systemd units: ``systemd-analyze verify`` accepts them, and the key settings are there.

``verify`` insists that ExecStart's program exists, and /opt/kit only exists
on a kit. So each unit is verified as a copy in a temporary directory whose
Exec lines run an existing program with the same arguments; the shipped file
is checked separately to keep its real ExecStart.
"""

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "systemd"
UNIT_SUFFIXES = {".service", ".socket", ".timer", ".path", ".target", ".mount"}
UNITS = sorted(p for p in UNIT_DIR.iterdir() if p.suffix in UNIT_SUFFIXES)
KIT = UNIT_DIR / "kit.service"

_EXEC = re.compile(r"^(Exec[A-Za-z]+=)([-@:+!]*)(\S+)(.*)$")

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections of ``key: [values]`` (keys may repeat, as DeviceAllow= does)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], defaultdict(list))
            continue
        assert section is not None, f"setting outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a KEY=VALUE line: {line!r}"
        section[key.strip()].append(value.strip())
    return unit


def verifiable_copy(unit: Path, directory: Path) -> Path:
    """``unit`` with every Exec program replaced by an existing one (same arguments)."""
    stand_in = shutil.which("true")
    assert stand_in
    lines = []
    for line in unit.read_text().splitlines():
        match = _EXEC.match(line)
        if match and not Path(match.group(3)).exists():
            lines.append(f"{match.group(1)}{match.group(2)}{stand_in}{match.group(4)}")
        else:
            lines.append(line)
    copy = directory / unit.name
    copy.write_text("\n".join(lines) + "\n")
    return copy


def test_there_are_units() -> None:
    assert KIT in UNITS


def systemd_verify(unit: Path, tmp_path: Path) -> tuple[int, str]:
    """``systemd-analyze verify`` of a verifiable copy of ``unit``: (exit code, output).

    verify exits 0 on mere warnings (an unknown key, say): any output is a finding.
    """
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (./quickstart test installs systemd)")
    copy = verifiable_copy(unit, tmp_path)
    done = subprocess.run(
        [analyze, "verify", "--man=no", "--generators=no", str(copy)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    assert systemd_verify(unit, tmp_path) == (0, "")


def test_the_verified_copy_differs_only_in_the_program(tmp_path: Path) -> None:
    copy = parse_unit(verifiable_copy(KIT, tmp_path).read_text())
    shipped = parse_unit(KIT.read_text())
    assert copy["Service"]["ExecStart"] == [f"{shutil.which('true')} run"]
    del copy["Service"]["ExecStart"], shipped["Service"]["ExecStart"]
    assert copy == shipped


EXPECTED = {
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecStart": "/opt/kit/.venv/bin/kit run",
    "WatchdogSec": "30",
    "Restart": "on-failure",
    "RestartSec": "2",
    "TimeoutStopSec": "60",
    # Recovery of takes a power cut left runs before READY=1.
    "TimeoutStartSec": "10min",
    "User": "kit",
    "Group": "kit",
    "SupplementaryGroups": "gpio video audio",
    "StateDirectory": "kit",
    "ConfigurationDirectory": "kit",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/lib/kit",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
    # sounddevice's cffi callback needs write+execute memory (see the unit's comment).
    "MemoryDenyWriteExecute": "no",
    "DevicePolicy": "closed",
    # lgpio makes FIFOs in its working directory: it must be writable.
    "WorkingDirectory": "/run/kit",
    "RuntimeDirectory": "kit",
}


@pytest.mark.parametrize(("key", "value"), sorted(EXPECTED.items()))
def test_kit_service_setting(key: str, value: str) -> None:
    service = parse_unit(KIT.read_text())["Service"]
    assert service.get(key) == [value]


def test_kit_service_devices_cover_camera_gpio_and_sound() -> None:
    allowed = parse_unit(KIT.read_text())["Service"]["DeviceAllow"]
    assert sorted(allowed) == sorted(
        f"char-{name} rw" for name in ("video4linux", "media", "dma_heap", "gpiochip", "alsa")
    )


def test_kit_service_is_enabled_for_boot_and_never_gives_up() -> None:
    unit = parse_unit(KIT.read_text())
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]


def test_the_data_and_config_paths_match_the_defaults() -> None:
    from kit.config import DEFAULT_CONFIG_FILE, StorageConfig

    service = parse_unit(KIT.read_text())["Service"]
    state, config = service["StateDirectory"][0], service["ConfigurationDirectory"][0]
    assert Path("/var/lib", state) == Path(StorageConfig().data_dir)
    assert Path("/etc", config) == DEFAULT_CONFIG_FILE.parent


# --- start-up order and restarts -------------------------------------------------------------


def test_kit_service_starts_after_udev_has_loaded_the_boots_drivers() -> None:
    """DeviceAllow=char-video4linux etc. are resolved from /proc/devices when the unit
    starts: it must start after udev has worked through the boot's devices (and loaded
    the camera's and ALSA's modules), or the camera answers EPERM."""
    unit = parse_unit(KIT.read_text())["Unit"]
    assert "systemd-udev-settle.service" in unit["Wants"]
    assert "systemd-udev-settle.service" in unit["After"]
    text = KIT.read_text()
    assert "DeviceAllow" in text.split("[Service]")[0]  # the reason is written down


def test_kit_service_restarts_on_every_failure_exit() -> None:
    """The daemon exits non-zero when the camera answers EPERM; every such exit restarts."""
    service = parse_unit(KIT.read_text())["Service"]
    assert service["Restart"] == ["on-failure"]
    for key in ("RestartPreventExitStatus", "SuccessExitStatus"):
        assert key not in service, f"{key} would keep some failures from restarting the kit"
    assert parse_unit(KIT.read_text())["Unit"]["StartLimitIntervalSec"] == ["0"]


# --- the first boot --------------------------------------------------------------------------

FIRST_BOOT = UNIT_DIR / "kit-first-boot.service"


def test_first_boot_runs_once_as_the_kit_user_between_the_hotspot_and_the_kit() -> None:
    unit = parse_unit(FIRST_BOOT.read_text())
    service = unit["Service"]
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == ["/opt/kit/.venv/bin/kit first-boot"]
    assert (service["User"], service["Group"]) == (["kit"], ["kit"])
    kit = parse_unit(KIT.read_text())["Service"]
    assert service["StateDirectory"] == kit["StateDirectory"]
    assert service["StateDirectoryMode"] == kit["StateDirectoryMode"]
    # After the hotspot's kit-wifi.txt exists, before the daemon starts.
    assert "kit-hotspot-setup.service" in " ".join(unit["Unit"]["After"]).split()
    assert unit["Unit"]["Wants"] == ["kit-hotspot-setup.service"]
    assert unit["Unit"]["Before"] == ["kit.service"]
    # Once: the marker, written only after the command succeeded, stops later boots.
    marker = "/var/lib/kit/.first-boot-done"
    assert unit["Unit"]["ConditionPathExists"] == [f"!{marker}"]
    assert service["ExecStartPost"] == [f"/usr/bin/touch {marker}"]
    assert Path(marker).parent == Path("/var/lib", kit["StateDirectory"][0])
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_first_boot_has_no_network_and_no_privileges() -> None:
    service = parse_unit(FIRST_BOOT.read_text())["Service"]
    for key, value in {
        "PrivateNetwork": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "ProtectSystem": "strict",
        "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_UNIX",
    }.items():
        assert service[key] == [value], key
