"""Each health probe against fake files, fake devices and a fake command runner."""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from kit.config import Config
from kit.daemon import health
from kit.daemon.health import CheckItem, Level
from kit.daemon.storage import RecordingRates, StorageGuard
from kit.errors import DeviceNotFound, HardwareError
from kit.hardware.camera import Camera
from kit.hardware.microphone import Microphone
from tests.check.fakes import FakeCamera, FakeMicrophone, FakeRunner

# --- camera -------------------------------------------------------------------------------


def test_camera_ok_records_a_second_and_closes() -> None:
    camera = FakeCamera(frames=30)
    item = health.probe_camera(lambda: camera, wait_s=0)
    assert item.level is Level.OK, item
    assert "30 frames, 30.0 fps" in item.value
    assert item.data["fps_measured"] == pytest.approx(30, abs=0.01)
    assert camera.calls == ["open", "start", "stop", "close"]


@pytest.mark.parametrize(
    ("camera", "level", "words"),
    [
        (FakeCamera(frames=0), Level.FAIL, "no frames"),
        (FakeCamera(first_keyframe=False), Level.FAIL, "not a keyframe"),
        (FakeCamera(frames=10), Level.WARN, "expected 30 fps"),
        (FakeCamera(period_ns=50_000_000), Level.WARN, "20.0 fps"),
        (FakeCamera(preview=False), Level.WARN, "no preview"),
        (FakeCamera(dropped=3), Level.WARN, "3 dropped"),
        (FakeCamera(fail_open=True), Level.FAIL, "camera is busy"),
    ],
)
def test_camera_problems(camera: FakeCamera, level: Level, words: str) -> None:
    item = health.probe_camera(lambda: camera, wait_s=0)
    assert item.level is level, item
    assert words in item.value
    # Whatever went wrong after opening, the camera is closed again.
    assert camera.calls[-1] == "close" or camera.calls == ["open"]


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (ModuleNotFoundError("No module named 'picamera2'"), "libraries are missing"),
        (DeviceNotFound("no camera module connected"), "systemctl stop kit"),
    ],
)
def test_camera_that_cannot_be_built_fails_with_its_message(error: Exception, hint: str) -> None:
    def build() -> Camera:
        raise error

    item = health.probe_camera(build)
    assert item.level is Level.FAIL
    assert str(error) in item.value
    assert hint in item.hint


# --- microphone ---------------------------------------------------------------------------


def test_microphone_reports_its_level() -> None:
    mic = FakeMicrophone(amplitude=3277)  # a tenth of full scale: -20 dBFS
    item = health.probe_microphone(lambda: mic, wait_s=0)
    assert item.level is Level.OK, item
    assert item.data["level_dbfs"] == pytest.approx(-20.0, abs=0.01)
    assert "-20.0 dBFS" in item.value
    assert mic.calls == ["start", "stop"]


@pytest.mark.parametrize(
    ("mic", "level", "words"),
    [
        (FakeMicrophone(blocks=0), Level.FAIL, "no samples"),
        (FakeMicrophone(amplitude=0), Level.WARN, "digital silence"),
        (FakeMicrophone(amplitude=32767), Level.WARN, "clipping"),
        (FakeMicrophone(overflows=2), Level.WARN, "2 overflows"),
    ],
)
def test_microphone_problems(mic: FakeMicrophone, level: Level, words: str) -> None:
    item = health.probe_microphone(lambda: mic, wait_s=0)
    assert item.level is level, item
    assert words in item.value


def test_microphone_that_cannot_be_built() -> None:
    def build() -> Microphone:
        raise HardwareError("no USB microphone found")

    item = health.probe_microphone(build)
    assert item.level is Level.FAIL
    assert "no USB microphone found" in item.value


# --- button and LED -----------------------------------------------------------------------


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.close()


def test_gpio_with_gpiozeros_mock_factory(mock_factory: MockFactory) -> None:
    item = health.probe_gpio(17, 27, pin_factory=mock_factory, blinks=0)
    assert item.level is Level.OK, item
    assert "button GPIO17, LED GPIO27" in item.value
    assert item.data == {"button_pin": 17, "led_pin": 27, "pressed": False, "led_switched": True}
    # The probe releases the pins again.
    assert mock_factory.pin(27).state in (0, False)


def test_gpio_pin_clash_fails(mock_factory: MockFactory) -> None:
    item = health.probe_gpio(17, 17, pin_factory=mock_factory, blinks=0)
    assert item.level is Level.FAIL
    assert "already in use" in item.value
    assert "[gpio]" in item.hint


# --- storage ------------------------------------------------------------------------------

GUARD = StorageGuard.from_config(Config())


class StepTimer:
    """A timer that reads ``start`` first, then ``start + elapsed``."""

    def __init__(self, elapsed: float) -> None:
        self._values = [100.0, 100.0 + elapsed]

    def __call__(self) -> float:
        return self._values.pop(0)


@pytest.mark.parametrize(
    ("elapsed", "level"),
    [(0.1, Level.OK), (0.5, Level.WARN), (5.0, Level.FAIL)],
)
def test_write_speed(tmp_path: Path, elapsed: float, level: Level) -> None:
    # 4 MiB in 0.1 s = 42 MB/s; in 0.5 s = 8.4 MB/s (< 10); in 5 s = 0.8 MB/s (too slow).
    item = health.probe_write_speed(
        tmp_path, GUARD, size_bytes=4 * health.MIB, timer=StepTimer(elapsed)
    )
    assert item.level is level, item
    assert item.data["bytes"] == 4 * health.MIB
    assert list(tmp_path.iterdir()) == []  # the test file is gone


def test_write_speed_without_the_data_directory(tmp_path: Path) -> None:
    item = health.probe_write_speed(tmp_path / "missing", GUARD, size_bytes=health.MIB)
    assert item.level is Level.FAIL
    assert "no data directory" in item.value


def test_write_speed_real_timer(tmp_path: Path) -> None:
    item = health.probe_write_speed(tmp_path, GUARD, size_bytes=health.MIB)
    assert item.level in {Level.OK, Level.WARN}
    assert item.data["mb_per_s"] > 0


RATES = RecordingRates(raw_bytes_per_s=1_000_000, mp4_bytes_per_s=500_000)
MB_PER_MIN = 90_000_000


@pytest.mark.parametrize(
    ("minutes", "level"),
    [(5, Level.FAIL), (15, Level.WARN), (25, Level.OK)],
)
def test_free_space(minutes: int, level: Level) -> None:
    guard = StorageGuard(RATES, min_start_minutes=10, stop_at_minutes=1)
    item = health.probe_free_space(guard, minutes * MB_PER_MIN)
    assert item.level is level
    assert item.value.startswith(f"{minutes} min of recording")


# --- the board ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level", "value"),
    [
        ("48312\n", Level.OK, "48.3 °C"),
        ("72000\n", Level.WARN, "72.0 °C"),
        ("85000\n", Level.FAIL, "85.0 °C"),
        ("hot\n", Level.FAIL, "cannot read"),
    ],
)
def test_temperature(tmp_path: Path, text: str, level: Level, value: str) -> None:
    zone = tmp_path / "temp"
    zone.write_text(text)
    item = health.probe_temperature(zone)
    assert (item.level, value in item.value) == (level, True), item


def test_temperature_without_a_sensor(tmp_path: Path) -> None:
    item = health.probe_temperature(tmp_path / "none")
    assert item.level is Level.SKIP


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, []),
        (0x1, ["under-voltage now"]),
        (0x50000, ["under-voltage since boot", "throttled since boot"]),
        (
            0x50005,
            [
                "under-voltage now",
                "throttled now",
                "under-voltage since boot",
                "throttled since boot",
            ],
        ),
        (
            0x8000A,
            [
                "frequency capped now",
                "soft temperature limit now",
                "soft temperature limit since boot",
            ],
        ),
        (0x100000, ["unknown bits 0x100000"]),
    ],
)
def test_decode_throttled(value: int, words: list[str]) -> None:
    assert health.decode_throttled(value) == words


THROTTLED = ("vcgencmd", "get_throttled")


@pytest.mark.parametrize(
    ("stdout", "code", "level"),
    [
        ("throttled=0x0\n", 0, Level.OK),
        ("throttled=0x50000\n", 0, Level.WARN),
        ("throttled=0x50005\n", 0, Level.FAIL),
        ("", 255, Level.WARN),
    ],
)
def test_throttling(stdout: str, code: int, level: Level) -> None:
    runner = FakeRunner()
    runner.answer(THROTTLED, stdout, code, stderr="VCHI initialization failed" if code else "")
    item = health.probe_throttling(runner)
    assert item.level is level, item
    assert runner.calls == [THROTTLED]


def test_throttling_without_vcgencmd() -> None:
    assert health.probe_throttling(FakeRunner()).level is Level.SKIP


TIMEDATECTL = ("timedatectl", "show", "-p", "NTPSynchronized", "--value")


def test_clock_synchronised_by_the_timesyncd_flag(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    flag.touch()
    runner = FakeRunner()
    item = health.probe_clock(runner, flag)
    assert item.level is Level.OK
    assert runner.calls == []


@pytest.mark.parametrize(
    ("answer", "level", "synchronised"),
    [
        (subprocess.CompletedProcess(list(TIMEDATECTL), 0, "yes\n", ""), Level.OK, True),
        (subprocess.CompletedProcess(list(TIMEDATECTL), 0, "no\n", ""), Level.WARN, False),
        (
            subprocess.CompletedProcess(list(TIMEDATECTL), 1, "", "Failed to connect to bus\n"),
            Level.WARN,
            None,
        ),
        (FileNotFoundError("timedatectl"), Level.WARN, None),
    ],
)
def test_clock_from_timedatectl(
    tmp_path: Path,
    answer: subprocess.CompletedProcess[str] | BaseException,
    level: Level,
    synchronised: bool | None,
) -> None:
    runner = FakeRunner(answers={TIMEDATECTL: answer})
    item = health.probe_clock(runner, tmp_path / "no-flag")
    assert item.level is level
    assert item.data["synchronised"] is synchronised


@pytest.mark.parametrize(
    ("state", "level"),
    [("active", Level.WARN), ("inactive", Level.OK), ("unknown", Level.OK)],
)
def test_service(state: str, level: Level) -> None:
    runner = FakeRunner()
    runner.answer(
        ("systemctl", "is-active", "kit.service"), state + "\n", 0 if state == "active" else 3
    )
    assert health.probe_service(runner).level is level


# --- the pi tests -------------------------------------------------------------------------


def pytest_argv(root: Path) -> tuple[str, ...]:
    return ("py", "-m", "pytest", "-m", "pi", "-q", "-p", "no:cacheprovider", str(root / "tests"))


@pytest.mark.parametrize(
    ("code", "stdout", "stderr", "level"),
    [
        (0, "..\n2 passed, 40 deselected in 1.2s\n", "", Level.OK),
        (0, "ss\n2 skipped, 40 deselected in 1.2s\n", "", Level.WARN),
        (1, "F.\n1 failed, 1 passed in 1.2s\n", "", Level.FAIL),
        (5, "42 deselected in 0.5s\n", "", Level.SKIP),
        (1, "", "/usr/bin/python3: No module named pytest\n", Level.SKIP),
    ],
)
def test_pi_tests(tmp_path: Path, code: int, stdout: str, stderr: str, level: Level) -> None:
    (tmp_path / "tests").mkdir()
    runner = FakeRunner()
    runner.answer(pytest_argv(tmp_path), stdout, code, stderr)
    item = health.probe_pi_tests(runner, tmp_path, "py")
    assert item.level is level, item
    if level is not Level.SKIP:
        assert item.value == stdout.strip().splitlines()[-1]


def test_pi_tests_that_hang(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    runner = FakeRunner(default=subprocess.TimeoutExpired("pytest", 600))
    item = health.probe_pi_tests(runner, tmp_path, "py", timeout_s=600)
    assert item.level is Level.FAIL
    assert "600 s" in item.value


@pytest.mark.parametrize("has_tests", [False, True])
def test_pi_tests_without_a_source_tree(tmp_path: Path, has_tests: bool) -> None:
    runner = FakeRunner()
    item = health.probe_pi_tests(runner, None if has_tests else tmp_path, "py")
    assert item.level is Level.SKIP
    assert runner.calls == []


def test_items_serialise() -> None:
    item = CheckItem("x", Level.WARN, "v", "h", {"n": 1})
    assert item.as_dict() == {
        "name": "x",
        "status": "WARN",
        "value": "v",
        "hint": "h",
        "data": {"n": 1},
    }
