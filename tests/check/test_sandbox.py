"""``kit check`` inside the service's sandbox: the systemd-run command built from the real unit,
when it cannot be used and why, and what ``kit check`` does with the sandboxed run's report."""

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from kit.check import CheckOptions, CheckSources, main, options_from_args, sandbox
from kit.cli import build_parser
from kit.config import Config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "kit.service"


def test_the_unit_is_parsed_in_order_with_continuations() -> None:
    text = (
        "[Unit]\nA=1\n\n[Service]\n# a comment\nB=x \\\n  y\n"
        "DeviceAllow=\nDeviceAllow=char-alsa rw\n"
    )
    assert sandbox.parse_unit(text) == [
        ("Unit", "A", "1"),
        ("Service", "B", "x y"),
        ("Service", "DeviceAllow", ""),
        ("Service", "DeviceAllow", "char-alsa rw"),
    ]


def properties() -> list[str]:
    return sandbox.sandbox_properties(sandbox.service_settings([UNIT.read_text()]))


def test_the_real_units_sandbox_is_passed_to_systemd_run() -> None:
    argv = sandbox.systemd_run_argv(
        properties(), ["/opt/kit/.venv/bin/python", "-m", "kit", "check"], unit_name="kit-check-1"
    )
    assert argv[:7] == [
        "systemd-run",
        "--wait",
        "--pipe",
        "--collect",
        "--quiet",
        "--unit=kit-check-1",
        "--description=kit check inside kit.service's sandbox",
    ]
    assert argv[-5:] == ["--", "/opt/kit/.venv/bin/python", "-m", "kit", "check"]
    props = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-p"]
    for expected in [
        "User=kit",
        "Group=kit",
        "SupplementaryGroups=gpio video audio",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/kit",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
        "DeviceAllow=char-media rw",
        "DeviceAllow=char-dma_heap rw",
        "DeviceAllow=char-gpiochip rw",
        "DeviceAllow=char-alsa rw",
        "StateDirectory=kit",
        "UMask=0027",
    ]:
        assert expected in props, expected
    # Every [Service] line of the unit is there, except the daemon's life cycle.
    keys = {p.partition("=")[0] for p in props}
    service = {key for key, _ in sandbox.service_settings([UNIT.read_text()])}
    assert keys == service - sandbox.LIFECYCLE
    assert not keys & {"ExecStart", "Type", "WatchdogSec", "Restart", "NotifyAccess"}


def test_the_check_gets_a_runtime_directory_of_its_own() -> None:
    props = properties()
    # Sharing /run/kit would delete the running service's keys when the check ends.
    assert "RuntimeDirectory=kit-check" in props
    assert "WorkingDirectory=/run/kit-check" in props
    assert "Environment=LG_WD=/run/kit-check" in props
    assert not any(p.startswith("RuntimeDirectoryPreserve=") for p in props)
    assert sandbox.sandbox_properties([("Environment", "A=/run/kitten B=/run/kit/x")]) == [
        "Environment=A=/run/kitten B=/run/kit-check/x"
    ]


def test_drop_ins_follow_the_unit_so_a_reset_still_resets(tmp_path: Path) -> None:
    drop_ins = tmp_path / "kit.service.d"
    drop_ins.mkdir()
    (drop_ins / "10-camera.conf").write_text("[Service]\nDeviceAllow=char-vchiq rw\n")
    (drop_ins / "20-user.conf").write_text("[Service]\nUser=kit2\n")
    host = fake_host(tmp_path, drop_in_dirs=(drop_ins,))
    found = sandbox.plan(host)
    assert isinstance(found, sandbox.Plan), found
    assert found.properties[-2:] == ["DeviceAllow=char-vchiq rw", "User=kit2"]
    assert found.user == "kit2"


def fake_host(tmp_path: Path, **changes: object) -> sandbox.SandboxHost:
    running = tmp_path / "run-systemd-system"
    running.mkdir(exist_ok=True)
    host = sandbox.SandboxHost(
        unit_files=(tmp_path / "not-installed.service", UNIT),
        drop_in_dirs=(),
        systemd_running=running,
        which=lambda name: f"/usr/bin/{name}",
        euid=lambda: 0,
        user_exists=lambda name: True,
        environ={"KIT_CAMERA_FPS": "25", "HOME": "/root"},
    )
    return replace(host, **changes)  # type: ignore[arg-type]


def test_a_plan_on_a_kit(tmp_path: Path) -> None:
    found = sandbox.plan(fake_host(tmp_path))
    assert isinstance(found, sandbox.Plan), found
    assert found.unit_file == UNIT  # the installed unit first, then the source tree's
    argv = found.argv(["py", "-m", "kit", "check"], unit_name="kit-check-7")
    assert argv[0] == "/usr/bin/systemd-run"
    assert "--setenv=KIT_CAMERA_FPS=25" in argv  # the config the person set
    assert not any("HOME" in a for a in argv)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"which": lambda name: None}, "systemd-run is not installed"),
        ({"systemd_running": Path("/nonexistent")}, "systemd is not running here"),
        ({"euid": lambda: 1000}, "only root can start the check as user kit"),
        ({"user_exists": lambda name: False}, "there is no user 'kit' here"),
        ({"unit_files": (Path("/nonexistent/kit.service"),)}, "no kit.service at /nonexistent"),
    ],
)
def test_why_there_is_no_sandbox(tmp_path: Path, changes: dict[str, object], reason: str) -> None:
    found = sandbox.plan(fake_host(tmp_path, **changes))
    assert isinstance(found, str)
    assert reason in found


def test_the_sandboxed_command_passes_the_options_on() -> None:
    args = build_parser().parse_args(
        ["check", "--field", "--av-clap", "--data", "d", "--json", "out.json", "-v"]
    )
    options = options_from_args(args)
    assert options.take_seconds == 300.0 and options.fsync_pieces == 1000
    command = options.sandboxed_command("/venv/bin/python", UNIT)
    assert command[:7] == [
        "/venv/bin/python",
        "-m",
        "kit",
        "check",
        "--no-sandbox",
        "--in-sandbox",
        str(UNIT),
    ]
    assert command[7:9] == ["--json", "-"]  # the report comes back on stdout, not into a file
    assert "--field" in command and "--av-clap" in command
    assert command[-3:] == ["--data", str(Path("d").resolve()), "-v"]
    again = options_from_args(build_parser().parse_args(["check", *command[4:]]))
    assert again.in_sandbox == str(UNIT) and not again.sandbox
    assert (again.take_seconds, again.fsync_pieces, again.av_clap) == (300.0, 1000, True)
    assert options_from_args(build_parser().parse_args(["check"])).sandbox is True


class FakeLaunch:
    def __init__(self, code: int, stdout: str) -> None:
        self.code, self.stdout = code, stdout
        self.argv: list[str] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int, str]:
        self.argv = list(argv)
        return self.code, self.stdout


REPORT = {"ok": True, "items": [{"name": "sandbox", "status": "OK"}], "figures": {}}


def sandboxed_sources(tmp_path: Path, launch: FakeLaunch) -> CheckSources:
    return CheckSources(sandbox_host=fake_host(tmp_path), launch=launch, python="/venv/bin/python")


def test_main_runs_the_check_in_the_sandbox_and_passes_its_report_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = FakeLaunch(0, json.dumps(REPORT))
    out = tmp_path / "report.json"
    sources = sandboxed_sources(tmp_path, launch)
    assert main(Config(), out, sources, CheckOptions(take_s=5.0)) == 0
    assert json.loads(out.read_text()) == REPORT
    assert launch.argv[0] == "/usr/bin/systemd-run"
    assert "ProtectSystem=strict" in launch.argv
    inner = launch.argv[launch.argv.index("--") + 1 :]
    assert inner[:4] == ["/venv/bin/python", "-m", "kit", "check"]
    assert "--in-sandbox" in inner and "--take-seconds" in inner
    err = capsys.readouterr().err
    assert "sandbox: checking as user kit" in err
    assert f"report written to {out}" in err

    launch.code = 1  # a check that found a failure: its exit code is ours
    assert main(Config(), Path("-"), sources, CheckOptions()) == 1
    assert json.loads(capsys.readouterr().out) == REPORT


def test_a_sandbox_that_does_not_start_is_said_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = FakeLaunch(1, "")  # e.g. "Failed to start transient service unit: ..."
    assert main(Config(), None, sandboxed_sources(tmp_path, launch), CheckOptions()) == 1
    err = capsys.readouterr().err
    assert "the sandboxed check did not report (systemd-run exit code 1)" in err
    assert "kit check --no-sandbox" in err


def test_inside_the_sandbox_the_report_says_so() -> None:
    item = sandbox.inside_item("/etc/systemd/system/kit.service", {"INVOCATION_ID": "abc"})
    assert item.level.value == "OK"
    assert item.data["sandboxed"] is True and item.data["invocation_id"] == "abc"
    outside = sandbox.outside_item("systemd is not running here", requested=True, on_pi=True)
    assert outside.level.value == "WARN" and "permission failures" in outside.hint
    off_pi = sandbox.outside_item("systemd-run is not installed", requested=True, on_pi=False)
    assert off_pi.level.value == "SKIP"
    asked = sandbox.outside_item("", requested=False, on_pi=True)
    assert (asked.level.value, asked.value) == ("SKIP", "not used (--no-sandbox)")
