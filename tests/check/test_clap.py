"""The clap-and-flash A/V offset: the detectors on synthetic signals, the whole path on the sim."""

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from kit.check import clap
from kit.clock import NS_PER_MS, NS_PER_S, FakeClock
from kit.config import Config
from kit.daemon.health import Level
from kit.hardware.factory import simulated_hardware
from tests.check.pump import ClockPump

FPS = 30
RATE = 48_000
FRAME_NS = NS_PER_S // FPS
T0 = 3_000 * NS_PER_S


def scene(frames: int, flash_at_ns: int, *, seed: int = 5) -> npt.NDArray[np.float64]:
    """Cell grids of a dim room with some noise and a hand moving; a phone screen in the
    upper-left cells lights up white at ``flash_at_ns``. A rolling shutter reads the rows
    top to bottom over a frame, so the frame whose exposure the flash starts in shows it
    in the rows read after that instant: its lower part."""
    rng = np.random.default_rng(seed)
    rows, cols = clap.GRID
    grids = 50 + rng.normal(0, 2, (frames, rows, cols))
    for n in range(frames):
        grids[n, 4, n % cols] += 25  # a hand passing: a moderate, moving change
        start = T0 + n * FRAME_NS
        for r in range(2):  # the screen fills the top two rows of cells, left half
            row_read_at = start + (r + 0.5) * FRAME_NS / rows
            if row_read_at >= flash_at_ns:
                grids[n, r, : cols // 2] = 235
    return grids


def stamps(frames: int) -> list[int]:
    return [T0 + n * FRAME_NS for n in range(frames)]


def click(seconds: float, at_s: float | None, *, seed: int = 6) -> npt.NDArray[np.float64]:
    """Room noise (-50 dBFS) with a clap: a 5 ms burst of noise at -3 dBFS, ringing down."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0, 0.003, round(seconds * RATE))
    if at_s is None:
        return out
    k = round(at_s * RATE)
    n = round(0.030 * RATE)
    out[k : k + n] += rng.normal(0, 0.35, n) * np.exp(-np.arange(n) / (0.005 * RATE))
    return np.clip(out, -1, 1)


def on_kit_clock(first_ns: int) -> Callable[[int], float]:
    return lambda i: first_ns + i * NS_PER_S / RATE


@pytest.mark.parametrize("flash_into_frame_ms", [2.0, 17.0, 31.0])
@pytest.mark.parametrize("offset_ms", [40.0, -20.0, 0.0])
def test_a_synthetic_flash_and_click_are_found_within_a_frame(
    offset_ms: float, flash_into_frame_ms: float
) -> None:
    frames = 90
    flash = T0 + 40 * FRAME_NS + round(flash_into_frame_ms * NS_PER_MS)
    audio_start = T0 - 200 * NS_PER_MS  # the mic starts before the camera
    sound_at_s = (flash + offset_ms * NS_PER_MS - audio_start) / NS_PER_S
    result = clap.find_clap(
        stamps(frames),
        scene(frames, flash),
        click(3.5, sound_at_s),
        on_kit_clock(audio_start),
        fps=FPS,
        rate=RATE,
    )
    assert isinstance(result, clap.ClapResult), result
    # The flash is placed at the start of the first frame that shows it: before the flash if
    # the rows it lit were read late in that frame, after it if they were read before it.
    assert result.offset_ms == pytest.approx(offset_ms, abs=FRAME_NS / NS_PER_MS)
    assert result.rise > 150
    item = clap.clap_item(result)
    assert item.level is Level.OK
    assert item.data["av_offset_ms"] == pytest.approx(result.offset_ms, abs=0.05)
    assert item.data["av_resolution_ms"] == 33.3


def test_the_sound_nearest_the_flash_is_its_clap() -> None:
    frames = 90
    flash = T0 + 45 * FRAME_NS  # 1.5 s in
    audio_start = T0 + 200 * NS_PER_MS
    clap_s = (flash + 40 * NS_PER_MS - audio_start) / NS_PER_S
    audio = click(3.5, 0.3) + click(3.5, clap_s, seed=8)  # a cough a second early, then the clap
    result = clap.find_clap(
        stamps(frames), scene(frames, flash), audio, on_kit_clock(audio_start), fps=FPS, rate=RATE
    )
    assert isinstance(result, clap.ClapResult), result
    assert result.offset_ms == pytest.approx(40, abs=1)


@pytest.mark.parametrize(
    ("grids", "audio", "words"),
    [
        (scene(60, T0 + 10 * NS_PER_S), click(2.5, 1.0), "no flash seen"),  # no flash in view
        (scene(60, T0 + 20 * FRAME_NS), click(2.5, None), "no loud sound"),
        (scene(60, T0 + 20 * FRAME_NS), click(2.5, 2.0), "no sound within 0.5 s"),
    ],
)
def test_what_could_not_be_found_is_said(
    grids: npt.NDArray[np.float64], audio: npt.NDArray[np.float64], words: str
) -> None:
    result = clap.find_clap(stamps(60), grids, audio, on_kit_clock(T0), fps=FPS, rate=RATE)
    assert isinstance(result, str)
    assert words in result
    item = clap.clap_item(result)
    assert (item.level, item.data) == (Level.WARN, {"av_performed": True})
    assert "--av-clap" in item.hint


def test_an_offset_viewers_notice_is_a_warning() -> None:
    late = clap.ClapResult(T0, T0 + 180 * NS_PER_MS, FRAME_NS, 180.0, -3.0)
    item = clap.clap_item(late)
    assert item.level is Level.WARN
    assert item.value.startswith("sound 180 ms after the picture")
    assert "BT.1359" in item.hint
    early = clap.clap_item(clap.ClapResult(T0, T0 - 60 * NS_PER_MS, FRAME_NS, 180.0, -3.0))
    assert early.level is Level.WARN and "before the picture" in early.value
    assert (
        clap.clap_item(clap.ClapResult(T0, T0 + 80 * NS_PER_MS, FRAME_NS, 180.0, -3.0)).level
        is Level.OK
    )


def test_not_requested_is_not_performed() -> None:
    item = clap.not_performed()
    assert (item.level, item.value, item.data) == (
        Level.SKIP,
        "not performed",
        {"av_performed": False},
    )
    assert "kit check --av-clap" in item.hint


def test_luma_grid_averages_cells() -> None:
    luma = np.zeros((61, 82), dtype=np.uint8)  # not a multiple of the grid: the edge is cut
    luma[:10, :10] = 240
    grid = clap.luma_grid(luma, (6, 8))
    assert grid.shape == (6, 8)
    assert grid[0, 0] == 240.0 and grid[1:, :].max() == 0.0 and grid[0, 1:].max() == 0.0


def test_the_whole_clap_path_on_the_simulated_kit() -> None:
    """The simulated camera's white frame and the mic's beep start at the same true instant
    (the sync-pulse contract), so a correct capture, decode and placement find 0 ms, within
    a frame, whatever the mic's skew and start latency."""
    base = Config()
    config = replace(
        base,
        camera=replace(base.camera, width=320, height=180, preview_width=160, preview_height=90),
        sim=replace(base.sim, mic_skew_ppm=300.0, mic_latency_ms=150.0),
    )
    told: list[str] = []
    with ClockPump(FakeClock(), FRAME_NS) as pump:
        hardware = pump.hardware(simulated_hardware(config, pump.clock))
        captured = clap.capture(
            hardware.camera,
            hardware.microphone,
            pump.clock,
            3.0,
            tell=told.append,
            wait_until=pump.wait_until,
        )
    assert len(told) == 1 and "clap ONCE now" in told[0]
    assert len(captured.packets) >= 85
    result = clap.analyse(captured)
    assert isinstance(result, clap.ClapResult), result
    # The white frame is stamped at the beep's true instant: only the mic's fit scatters.
    assert result.offset_ms == pytest.approx(0.0, abs=2.0)
    item = clap.clap_item(result)
    assert item.level is Level.OK
    assert item.data["av_performed"] is True


def test_a_capture_without_frames_or_sound() -> None:
    empty = clap.ClapCapture((), (), FPS, RATE)
    assert clap.analyse(empty) == "the camera delivered no frames"
