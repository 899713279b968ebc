"""One measured take: against the simulated hardware on a fake clock, and from canned logs."""

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kit.check.board import BoardSample, BoardSources, read_cpu_busy, read_throttled
from kit.check.take import TakeLog, TakeSettings, measure_take, recording_item, thermal_item
from kit.check.timing import camera_clock, camera_rate_ppm, mic_drift
from kit.clock import NS_PER_S, FakeClock
from kit.config import Config
from kit.daemon.health import Level
from kit.hardware.factory import Hardware, simulated_hardware
from tests.check.fakes import FakeRunner, healthy_take
from tests.check.pump import ClockPump

THROTTLED = ("vcgencmd", "get_throttled")


def small_config(skew_ppm: float = 0.0) -> Config:
    base = Config()
    camera = replace(base.camera, width=320, height=180, preview_width=160, preview_height=90)
    return replace(base, camera=camera, sim=replace(base.sim, mic_skew_ppm=skew_ppm))


@pytest.fixture
def pump() -> Iterator[ClockPump]:
    with ClockPump(FakeClock(), NS_PER_S // 30) as running:
        yield running


def board_files(
    tmp_path: Path, *, celsius: str = "48000\n", throttled: str = "0\n"
) -> BoardSources:
    (tmp_path / "temp").write_text(celsius)
    (tmp_path / "get_throttled").write_text(throttled)
    return BoardSources(
        thermal_zone=tmp_path / "temp",
        throttled_file=tmp_path / "get_throttled",
        proc_stat=tmp_path / "no-stat",
        runner=FakeRunner(),
    )


def simulated(pump: ClockPump, skew_ppm: float = 0.0) -> Hardware:
    return pump.hardware(simulated_hardware(small_config(skew_ppm), pump.clock))


def test_a_simulated_take_with_a_mic_300_ppm_fast(tmp_path: Path, pump: ClockPump) -> None:
    data = tmp_path / "data"
    data.mkdir()
    cpu = itertools.count(0, 3 * NS_PER_S)  # 3 s of CPU over the 10 s take
    take = measure_take(
        simulated(pump, skew_ppm=300.0),
        pump.clock,
        TakeSettings(seconds=10.0, sample_every_s=2.0),
        directory=data,
        board=board_files(tmp_path),
        wait_until=pump.wait_until,
        cpu_time=lambda: next(cpu),
        cores=4,
    )
    assert list(data.iterdir()) == []  # the take's folder is gone again

    drift = mic_drift(
        take.blocks, take.audio.rate, camera_rate_ppm([f.pts_ns for f in take.frames], 30)
    )
    assert drift.level is Level.OK, drift
    assert drift.data["mic_skew_ppm"] == pytest.approx(300, abs=15)
    assert drift.data["mic_vs_camera_ppm"] == pytest.approx(
        300, abs=15
    )  # the sim's sensor is exact

    timing = camera_clock(take.frames, take.video.fps)
    assert timing.level is Level.OK, timing
    assert timing.data["camera_rate_error_ppm"] == pytest.approx(0, abs=1)
    assert 0 <= timing.data["camera_offset_min_ms"] <= timing.data["camera_offset_max_ms"] <= 150

    recording = recording_item(take)
    assert recording.level is Level.OK, recording
    assert recording.data["take_frames"] >= 295
    assert recording.data["dropped_frames"] == recording.data["frame_gaps"] == 0
    assert recording.data["cpu_process_percent"] == pytest.approx(30.0)
    assert recording.data["cpu_cores"] == 4
    assert recording.data["cpu_system_percent"] is None  # no /proc/stat given
    assert recording.data["live_film"] is True  # the film was made while recording
    assert recording.data["video_mbit_per_s"] > 0

    heat = thermal_item(take)
    assert heat.level is Level.OK, heat
    assert heat.data["temperature_max_c"] == 48.0
    assert heat.data["thermal_samples"] >= 6  # start, every 2 s, after stop
    assert heat.data["throttled_source"] == "sysfs"


def test_under_voltage_during_a_take_fails_it(tmp_path: Path, pump: ClockPump) -> None:
    take = measure_take(
        simulated(pump),
        pump.clock,
        TakeSettings(seconds=1.0, sample_every_s=0.5),
        directory=None,
        board=board_files(tmp_path, throttled="50005\n"),  # the sysfs file: hex, no 0x
        wait_until=pump.wait_until,
    )
    item = thermal_item(take)
    assert item.level is Level.FAIL, item
    assert item.data["throttled_during_take"] == ["under-voltage now", "throttled now"]
    assert "under-voltage now" in item.value


def samples(*values: tuple[float | None, int | None]) -> tuple[BoardSample, ...]:
    return tuple(
        BoardSample(i * NS_PER_S, c, t, None if t is None else "vcgencmd")
        for i, (c, t) in enumerate(values)
    )


@pytest.mark.parametrize(
    ("board", "level", "during"),
    [
        # Sticky bits from before the take are the power line's business, not the take's.
        (samples((55.0, 0x50000), (60.0, 0x50000)), Level.OK, []),
        (
            samples((55.0, 0), (61.0, 0x1), (62.0, 0x10001)),
            Level.FAIL,
            ["under-voltage now", "under-voltage since boot"],
        ),
        (
            samples((70.0, 0), (79.0, 0x80008), (75.0, 0x80000)),
            Level.WARN,
            ["soft temperature limit now", "soft temperature limit since boot"],
        ),
        (samples((75.0, 0), (81.5, 0)), Level.FAIL, []),  # too hot, not throttled (yet)
        (samples((72.0, None), (73.0, None)), Level.WARN, []),
        (samples((None, None)), Level.SKIP, []),
    ],
)
def test_thermal_over_a_take(
    board: tuple[BoardSample, ...], level: Level, during: list[str]
) -> None:
    take = replace(healthy_take(), samples=board)
    item = thermal_item(take)
    assert item.level is level, item
    assert item.data["throttled_during_take"] == during


def test_a_healthy_take_reads_as_such() -> None:
    take = healthy_take(10.0)
    item = recording_item(take)
    assert item.level is Level.OK, item
    assert item.data == {
        "take_s": 10.0,
        "take_frames": 300,
        "take_frames_expected": 300,
        "dropped_frames": 0,
        "frame_gaps": 0,
        "mic_overflows": 0,
        "video_mbit_per_s": 4.0,
        "cpu_process_percent": 33.3,
        "writer_cpu_percent": 2.0,
        "cpu_system_percent": 25.0,
        "cpu_cores": 4,
        "stop_ms": 150.0,
        "live_film": True,
    }


def without(take: TakeLog, *frames: int) -> TakeLog:
    return replace(take, frames=tuple(f for i, f in enumerate(take.frames) if i not in frames))


@pytest.mark.parametrize(
    ("change", "level", "words"),
    [
        (lambda t: without(t, 100, 101, 102), Level.WARN, "3 frames dropped"),
        (lambda t: replace(t, dropped_frames=5), Level.WARN, "5 frames dropped"),
        (lambda t: replace(t, frames=t.frames[:200]), Level.WARN, "expected 300"),
        (lambda t: replace(t, mic_overflows=2), Level.WARN, "2 mic overflows"),
        (lambda t: replace(t, board_busy=0.93), Level.WARN, "nearly saturated"),
        (
            lambda t: replace(t, live_film="the film fell 3000 items behind"),
            Level.WARN,
            "no film made while recording",
        ),
        (lambda t: replace(t, error="the card is full"), Level.FAIL, "the card is full"),
        (lambda t: replace(t, frames=()), Level.FAIL, "0 frames"),
    ],
)
def test_recording_problems(change: object, level: Level, words: str) -> None:
    assert callable(change)
    item = recording_item(change(healthy_take(10.0)))
    assert item.level is level, item
    assert words in item.value


# --- the board's files ----------------------------------------------------------------------


def test_throttled_from_sysfs_first_then_vcgencmd(tmp_path: Path) -> None:
    sysfs = tmp_path / "get_throttled"
    sysfs.write_text("50005\n")
    runner = FakeRunner()
    assert read_throttled(sysfs, runner) == (0x50005, "sysfs")
    assert runner.calls == []
    runner.answer(THROTTLED, "throttled=0x80008\n")
    assert read_throttled(tmp_path / "none", runner) == (0x80008, "vcgencmd")
    runner.answer(THROTTLED, "", 255, "VCHI initialization failed")  # no /dev/vcio in the sandbox
    assert read_throttled(tmp_path / "none", runner) is None
    assert read_throttled(tmp_path / "none", FakeRunner()) is None  # no vcgencmd at all


def test_cpu_busy_from_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 10 50 800 40 0 0 0 0 0\ncpu0 50 5 25 400 20 0 0 0 0 0\n")
    assert read_cpu_busy(stat) == (160, 1000)
    stat.write_text("intr 1 2 3\n")
    assert read_cpu_busy(stat) is None
    assert read_cpu_busy(tmp_path / "none") is None


def test_the_power_line_reads_the_firmware_file_first(tmp_path: Path) -> None:
    """Inside the sandbox vcgencmd cannot open /dev/vcio; the sysfs file has the same bits."""
    from kit.check.board import sysfs_first
    from kit.daemon.health import probe_throttling

    sysfs = tmp_path / "get_throttled"
    sysfs.write_text("50005\n")
    runner = FakeRunner()
    runner.answer(THROTTLED, "", 255, "VCHI initialization failed")
    item = probe_throttling(sysfs_first(runner, sysfs))
    assert item.level is Level.FAIL
    assert item.data["flags"] == [
        "under-voltage now",
        "throttled now",
        "under-voltage since boot",
        "throttled since boot",
    ]
    assert runner.calls == []
    # No file (an old kernel): vcgencmd is asked, as before.
    assert probe_throttling(sysfs_first(runner, tmp_path / "none")).level is Level.WARN
    assert runner.calls == [THROTTLED]


def test_a_take_an_earlier_check_left_is_removed(tmp_path: Path, pump: ClockPump) -> None:
    left = tmp_path / ".kit-check-take-abc123"
    (left / "visits").mkdir(parents=True)
    (tmp_path / "keep").mkdir()
    measure_take(
        simulated(pump),
        pump.clock,
        TakeSettings(seconds=0.5),
        directory=tmp_path,
        board=board_files(tmp_path / "keep"),
        wait_until=pump.wait_until,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
