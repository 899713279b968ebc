"""``kit check`` as a whole: on this (non-Pi) machine for real, and on a faked healthy kit."""

import json
import os
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from kit.check import CheckOptions, CheckReport, CheckSources, main, run_check
from kit.check.take import TakeLog, TakeSettings
from kit.clock import Clock
from kit.config import Config
from kit.daemon.health import Level
from kit.errors import DeviceNotFound
from kit.hardware.factory import Hardware, is_raspberry_pi
from tests.check.fakes import FakeCamera, FakeHttp, FakeMicrophone, FakeRunner, healthy_take
from tests.check.test_network import (
    ACTIVE,
    ACTIVE_DETAILS,
    CONNECTIONS,
    DETAILS,
    IW_DEV,
    IW_INFO,
    IW_REG,
    REG,
)

NAMES = [
    "sandbox",
    "service",
    "camera",
    "microphone",
    "gpio",
    "a/v clap",
    "card speed",
    "fsync",
    "free space",
    "temperature",
    "power",
    "recording",
    "thermal",
    "camera clock",
    "mic drift",
    "hotspot",
    "web port",
    "clock",
    "signing key",
    "pi tests",
]
TAKE_ITEMS = ("recording", "thermal", "camera clock", "mic drift")
OUTSIDE = CheckOptions(sandbox=False, take_s=10.0, fsync_count=20)


def config_for(data_dir: Path) -> Config:
    base = Config()
    return replace(base, storage=replace(base.storage, data_dir=str(data_dir)))


def mini_project(root: Path) -> Path:
    """A project with one passing test marked pi and one failing test that is not."""
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--strict-markers"\nmarkers = ["pi: on a kit"]\n'
    )
    (root / "tests" / "test_kit.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.pi
            def test_on_the_kit():
                pass

            def test_not_for_the_check():
                raise AssertionError("deselected by -m pi")
            """
        )
    )
    return root


def test_the_whole_check_on_this_machine(tmp_path: Path) -> None:
    """Real probes, real runner, real hardware factory: it completes and explains itself."""
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "report.json"
    lines: list[str] = []
    sources = CheckSources(
        project_root=mini_project(tmp_path / "project"),
        write_test_bytes=4 * 1024 * 1024,
        led_blinks=0,
        camera_wait_s=2,
        microphone_wait_s=2,
    )
    options = replace(OUTSIDE, take_s=2.0)
    report = run_check(config_for(data), out, sources=sources, echo=lines.append, options=options)

    assert [item.name for item in report.items] == NAMES
    assert len(lines) == len(NAMES)
    if not is_raspberry_pi():
        for name in ("camera", "gpio", *TAKE_ITEMS):
            item = report.item(name)
            assert item.level in {Level.FAIL, Level.SKIP}, item
            assert item.value
            assert "not a Raspberry Pi" in item.hint
    assert report.item("fsync").level in {Level.OK, Level.WARN}
    assert report.item("a/v clap").value == "not performed"
    assert report.item("sandbox").value == "not used (--no-sandbox)"
    # The microphone goes through PortAudio, which may find a real input even off a Pi
    # (a PulseAudio null sink in CI): any outcome, but always with a reason.
    assert report.item("microphone").value
    assert report.item("card speed").level in {Level.OK, Level.WARN}
    signing = report.item("signing key")
    assert signing.level is Level.OK and signing.data["made"] is True
    pi_tests = report.item("pi tests")
    assert pi_tests.level is Level.OK, pi_tests
    assert "1 passed, 1 deselected" in pi_tests.value

    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(report.as_dict()))
    assert [item["name"] for item in written["items"]] == NAMES
    assert written["ok"] is report.ok
    assert written["settings"] == {
        "field": False,
        "take_s": 2.0,
        "fsync_count": 20,
        "av_clap": False,
        "sandboxed": False,
    }
    assert written["figures"]["fsync_count"] == 20
    assert written["figures"]["av_performed"] is False


class HealthyKit:
    """Fake sources for a kit where everything works."""

    def __init__(self, tmp_path: Path) -> None:
        self.builds = 0
        self.camera = FakeCamera()
        self.microphone = FakeMicrophone(amplitude=3277)
        self.runner = FakeRunner()
        self.runner.answer(("systemctl", "is-active", "kit.service"), "inactive\n", 3)
        self.runner.answer(("vcgencmd", "get_throttled"), "throttled=0x0\n")
        self.runner.answer(("timedatectl", "show", "-p", "NTPSynchronized", "--value"), "yes\n")
        for argv, out in [
            (CONNECTIONS, ACTIVE),
            (DETAILS, ACTIVE_DETAILS),
            (REG, IW_REG),
            (IW_INFO, IW_DEV),
        ]:
            self.runner.answer(argv, out)
        self.http = FakeHttp(status=200)
        self.takes: list[float] = []
        self.zone = tmp_path / "temp"
        self.zone.write_text("51234\n")
        self.model = tmp_path / "model"
        self.model.write_text("Raspberry Pi 4 Model B Rev 1.5\0")

    def build(self, config: Config, clock: Clock) -> Hardware:
        self.builds += 1
        return Hardware(camera=self.camera, microphone=self.microphone, simulated=False)

    def take(self, hardware: Hardware, settings: TakeSettings) -> TakeLog:
        assert hardware.camera is self.camera
        self.takes.append(settings.seconds)
        return healthy_take(settings.seconds)

    def sources(self, factory: MockFactory, **changes: object) -> CheckSources:
        sources = CheckSources(
            build_hardware=self.build,
            runner=self.runner,
            pin_factory=factory,
            led_blinks=0,
            thermal_zone=self.zone,
            timesync_flag=self.zone.parent / "no-flag",
            device_model=self.model,
            project_root=None,
            write_test_bytes=1024 * 1024,
            camera_wait_s=0,
            microphone_wait_s=0,
            take_log=self.take,
            http_get=self.http,
            throttled_file=self.zone.parent / "no-throttled",
            regdom_parameter=self.zone.parent / "no-regdom",
        )
        return replace(sources, **changes)  # type: ignore[arg-type]


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


@pytest.fixture
def fast_card(tmp_path: Path) -> Iterator[Path]:
    """A data directory on a healthy card: tmpfs where there is one. The card speed and
    fsync items time the real filesystem, and this machine's disk alone stalls writes for
    up to 1.8 s at moments (they WARN then: test_the_whole_check_on_this_machine)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="kit-check-") as card:
        yield Path(card)


def test_a_healthy_kit_passes(fast_card: Path, factory: MockFactory) -> None:
    kit = HealthyKit(fast_card)
    report = run_check(config_for(fast_card), sources=kit.sources(factory), options=OUTSIDE)
    levels = {item.name: item.level for item in report.items}
    skipped = {"sandbox", "a/v clap", "pi tests"}
    assert levels == dict.fromkeys(NAMES, Level.OK) | dict.fromkeys(skipped, Level.SKIP)
    assert report.ok
    assert kit.builds == 1
    assert kit.takes == [10.0]  # one take serves all four of its items
    text = report.format_text().splitlines()
    assert text[2].startswith("OK    camera        30 frames")
    assert text[-1] == "kit check: passed (17 OK, 3 SKIP)"


def test_hardware_that_cannot_be_built_fails_camera_and_microphone(
    tmp_path: Path, factory: MockFactory
) -> None:
    kit = HealthyKit(tmp_path)
    calls = []

    def broken(config: Config, clock: Clock) -> Hardware:
        calls.append(1)
        raise DeviceNotFound("no camera module connected")

    report = run_check(
        config_for(tmp_path),
        sources=kit.sources(factory, build_hardware=broken),
        options=OUTSIDE,
    )
    for name in ("camera", "microphone"):
        item = report.item(name)
        assert item.level is Level.FAIL
        assert "no camera module connected" in item.value
    for name in TAKE_ITEMS:
        item = report.item(name)
        assert item.level is Level.FAIL
        assert item.value == "no take: no camera module connected"
    assert calls == [1]
    assert not report.ok
    assert report.item("gpio").level is Level.OK
    assert report.item("a/v clap").level is Level.SKIP  # not asked for: nothing built for it


def test_an_unexpected_error_is_a_line_not_a_crash(
    tmp_path: Path, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    kit = HealthyKit(tmp_path)

    class ExplodingCamera(FakeCamera):
        def open(self) -> None:
            raise RuntimeError("Camera __init__ sequence did not complete")

    kit.camera = ExplodingCamera()
    report = run_check(config_for(tmp_path), sources=kit.sources(factory), options=OUTSIDE)
    camera = report.item("camera")
    assert camera.level is Level.FAIL
    assert camera.value == "RuntimeError: Camera __init__ sequence did not complete"
    assert "check camera failed" in caplog.text
    assert report.item("microphone").level is Level.OK


def test_main_prints_and_returns_the_exit_code(
    tmp_path: Path, factory: MockFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = HealthyKit(tmp_path)
    out = tmp_path / "check.json"
    assert main(config_for(tmp_path), out, kit.sources(factory), OUTSIDE) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("SKIP  sandbox       not used (--no-sandbox)")
    assert printed[1].startswith("OK    service")
    assert printed[-2] == "kit check: passed (17 OK, 3 SKIP)"
    assert printed[-1] == f"report written to {out}"
    assert json.loads(out.read_text())["ok"] is True

    kit.runner.answer(("vcgencmd", "get_throttled"), "throttled=0x50005\n")
    assert main(config_for(tmp_path), None, kit.sources(factory), OUTSIDE) == 1


def test_json_dash_puts_the_report_on_stdout_and_the_lines_on_stderr(
    tmp_path: Path, factory: MockFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = HealthyKit(tmp_path)
    assert main(config_for(tmp_path), Path("-"), kit.sources(factory), OUTSIDE) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout holds the JSON and nothing else
    assert report["ok"] is True
    assert any(item["name"] == "signing key" for item in report["items"])
    figures = report["figures"]
    for key in [
        "fsync_p99_ms",
        "camera_offset_p50_ms",
        "camera_jitter_p99_ms",
        "mic_skew_ppm",
        "mic_vs_camera_ppm",
        "cpu_process_percent",
        "dropped_frames",
        "temperature_max_c",
        "throttled_during_take",
        "hotspot_channel",
        "regulatory_domain",
        "web_answers",
        "av_performed",
    ]:
        assert key in figures, key
    assert figures["camera_offset_p50_ms"] == pytest.approx(40.0)
    assert figures["mic_skew_ppm"] == pytest.approx(0.0, abs=1.0)
    assert figures["hotspot_channel"] == 6 and figures["regulatory_domain"] == "GB"
    assert captured.err.splitlines()[-1].startswith("kit check: passed")
    assert not (tmp_path / "-").exists()


def test_report_counts() -> None:
    report = CheckReport(items=(), host="kit", checked_at="", kit_version="0")
    assert report.ok
    assert report.counts() == {"OK": 0, "WARN": 0, "FAIL": 0, "SKIP": 0}


def test_the_signing_key_is_made_once_and_its_fingerprint_reported(
    tmp_path: Path, factory: MockFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from kit.handoff.signing import Signer
    from kit.store import layout

    kit = HealthyKit(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    assert main(config_for(data), None, kit.sources(factory), OUTSIDE) == 0
    key = data / layout.SIGNING_KEY
    fingerprint = Signer.load_or_create(key).fingerprint
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.stat().st_uid == data.stat().st_uid
    line = next(x for x in capsys.readouterr().out.splitlines() if "signing key" in x)
    assert line.startswith(f"OK    signing key   fingerprint {fingerprint} (made now)")
    assert "give this fingerprint to your organisation" in line
    rerun = run_check(config_for(data), sources=kit.sources(factory), options=OUTSIDE)
    again = rerun.item("signing key")
    assert (again.level, again.value, again.hint) == (Level.OK, f"fingerprint {fingerprint}", "")
    assert again.data["public_key"] == Signer.load_or_create(key).public


def test_a_kit_with_no_data_or_a_damaged_key(tmp_path: Path, factory: MockFactory) -> None:
    from kit.store import layout

    kit = HealthyKit(tmp_path)
    missing = run_check(
        config_for(tmp_path / "none"), sources=kit.sources(factory), options=OUTSIDE
    )
    item = missing.item("signing key")
    assert item.level is Level.WARN and "first start" in item.hint
    (tmp_path / layout.SIGNING_KEY).write_text("not a key")
    rerun = run_check(config_for(tmp_path), sources=kit.sources(factory), options=OUTSIDE)
    damaged = rerun.item("signing key")
    assert damaged.level is Level.FAIL and "damaged" in damaged.value
    assert "new fingerprint" in damaged.hint


def test_the_clap_test_runs_only_when_asked(tmp_path: Path, factory: MockFactory) -> None:
    kit = HealthyKit(tmp_path)
    told: list[str] = []
    report = run_check(
        config_for(tmp_path),
        sources=kit.sources(factory),
        options=replace(OUTSIDE, av_clap=True, clap_s=0.0),
        tell=told.append,
    )
    # The fake camera's packets are not H.264: performed, and it says what it could not find.
    item = report.item("a/v clap")
    assert (item.level, item.data) == (Level.WARN, {"av_performed": True})
    assert item.value == "the camera's video could not be decoded"
    assert any("clap ONCE now" in line for line in told)
    assert report.settings["av_clap"] is True


def test_figures_come_only_from_the_measurements(tmp_path: Path, factory: MockFactory) -> None:
    kit = HealthyKit(tmp_path)
    report = run_check(config_for(tmp_path), sources=kit.sources(factory), options=OUTSIDE)
    figures = report.as_dict()["figures"]
    assert "fingerprint" not in figures  # the signing key is no field-trial figure
    assert "fps_measured" not in figures  # nor the quick camera probe's
    assert figures["take_frames"] == 300
    assert figures["fsync_count"] == 20
