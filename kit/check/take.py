"""One measured take: the camera and microphone record as in the field, and the check watches.

:func:`measure_take` records a take exactly as the kit does (the same
:class:`~kit.recording.recorder.TakeRecorder`, which also makes the film as it
records; encrypted with a throwaway key, fsync'd on the configured interval)
into a temporary folder in the data directory, which it removes afterwards.
Between the devices and the recorder it notes when each frame and audio
block arrives; meanwhile it samples the temperature and throttling and
measures the CPU time of this process and of the whole board. The result, a
:class:`TakeLog`, is plain data that :mod:`kit.check.timing` and the functions
here turn into report items.

The clock is injected and so is the wait (``wait_until``): on a kit the real
clock and a sleep; in tests a fake clock that a pump advances as fast as the
simulated hardware keeps up (tests/check/pump.py), so a 10 s take of the
simulated kit runs in a second or two.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.check.board import NOW_BITS, BoardSample, BoardSources, read_cpu_busy, sample_board
from kit.check.timing import FrameArrival, frame_gaps
from kit.clock import NS_PER_MS, NS_PER_S, Clock
from kit.crypto.keys import new_data_key
from kit.daemon.health import HOT_C, WARM_C, CheckItem, Level, decode_throttled
from kit.hardware.camera import Camera, VideoFormat, VideoPacket, VideoSink
from kit.hardware.factory import Hardware
from kit.hardware.microphone import AudioBlock, AudioFormat, AudioSink, Microphone
from kit.recording.alignment import BlockTime
from kit.recording.livefilm import FilmDropped
from kit.recording.recorder import RecordingStats, TakeRecorder
from kit.store import layout
from kit.store.files import FileLayer

log = logging.getLogger(__name__)

RECORDING = "recording"
THERMAL = "thermal"

BUSY_BOARD_PERCENT = 80.0
"""Warn when the whole board is busier than this while recording: a rough cut (a child at
nice +10) and the phone page run beside the next take, and need the rest."""

MIN_FRAMES_FRACTION = 0.95
"""A take with fewer frames than this share of seconds x fps lost frames somewhere."""

_CHECK_VISIT = "kit-check"
TAKE_PREFIX = ".kit-check-take-"


def remove_leftovers(directory: Path) -> None:
    """Remove takes an earlier check left behind (a power cut during its take)."""
    for old in directory.glob(TAKE_PREFIX + "*"):
        log.warning("removing %s, left by an interrupted kit check", old)
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class TakeSettings:
    """How long to record and how often to look at the board."""

    seconds: float
    sample_every_s: float = 5.0
    fsync_interval_s: float = 1.0


@dataclass(frozen=True)
class TakeLog:
    """What one measured take saw (plain data: the analyses are pure functions of it)."""

    seconds: float  # as requested
    wall_ns: int  # from the first device start to the last stop, on the kit clock
    video: VideoFormat
    audio: AudioFormat
    frames: tuple[FrameArrival, ...]
    blocks: tuple[BlockTime, ...]
    dropped_frames: int  # as the camera counted them
    mic_overflows: int
    video_bytes: int
    cpu_ns: int  # this process's CPU time during the take (every thread)
    writer_cpu_ns: int  # the recorder's writer thread alone
    board_busy: float | None  # share of all cores' time not idle, 0..1
    cores: int
    samples: tuple[BoardSample, ...]
    error: str = ""
    stop_ns: int = 0  # from Stop until the take's film was complete
    live_film: str | None = None  # "" made while recording; else why not; None: not tried


class _TappedCamera:
    """The camera, with each packet's arrival noted before the recorder gets it."""

    def __init__(self, camera: Camera, clock: Clock, seen: list[FrameArrival]) -> None:
        self._camera = camera
        self._clock = clock
        self._seen = seen

    @property
    def format(self) -> VideoFormat:
        return self._camera.format

    @property
    def dropped_frames(self) -> int:
        return self._camera.dropped_frames

    def open(self) -> None:
        self._camera.open()

    def close(self) -> None:
        self._camera.close()

    def start_recording(self, sink: VideoSink) -> None:
        def tap(packet: VideoPacket) -> None:
            self._seen.append(FrameArrival(packet.pts_ns, self._clock.now()))
            sink(packet)

        self._camera.start_recording(tap)

    def stop_recording(self) -> None:
        self._camera.stop_recording()

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        return self._camera.preview_jpeg()


class _TappedMicrophone:
    """The microphone, with each block's stamp and length noted before the recorder gets it."""

    def __init__(self, microphone: Microphone, seen: list[BlockTime]) -> None:
        self._mic = microphone
        self._seen = seen

    @property
    def format(self) -> AudioFormat:
        return self._mic.format

    @property
    def overflows(self) -> int:
        return self._mic.overflows

    @property
    def level_dbfs(self) -> float:
        return self._mic.level_dbfs

    def start(self, sink: AudioSink) -> None:
        def tap(block: AudioBlock) -> None:
            self._seen.append(BlockTime(block.t_ns, block.frames, block.overflow))
            sink(block)

        self._mic.start(tap)

    def stop(self) -> None:
        self._mic.stop()


def measure_take(
    hardware: Hardware,
    clock: Clock,
    settings: TakeSettings,
    *,
    directory: Path | None,
    board: BoardSources,
    wait_until: Callable[[int], None] | None = None,
    cpu_time: Callable[[], int] = lambda: 0,
    cores: int | None = None,
) -> TakeLog:
    """Record ``settings.seconds`` as the kit does, watching timing, load and heat.

    ``directory`` is where the take is written (a temporary folder inside it,
    removed afterwards); None uses the system's temporary directory.
    """
    wait = wait_until or clock.sleep_until
    remove_leftovers(directory or Path(tempfile.gettempdir()))
    frames: list[FrameArrival] = []
    blocks: list[BlockTime] = []
    camera = _TappedCamera(hardware.camera, clock, frames)
    mic = _TappedMicrophone(hardware.microphone, blocks)
    root = Path(tempfile.mkdtemp(prefix=TAKE_PREFIX, dir=directory))
    try:
        key = new_data_key()
        files = FileLayer(root, keys=lambda _visit: key)
        # A visit folder with a (dummy) wrapped key: the take is encrypted as a real one is.
        files.makedirs(layout.visit_dir(_CHECK_VISIT))
        files.path(layout.wrapped_key(_CHECK_VISIT)).write_bytes(b"kit check: no real key\n")
        recorder = TakeRecorder(
            camera,
            mic,
            files,
            clock,
            fsync_interval_ns=round(settings.fsync_interval_s * NS_PER_S),
        )
        camera.open()
        try:
            got = _record(recorder, clock, wait, settings, board, cpu_time)
        finally:
            camera.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    stats = got.stats
    return TakeLog(
        seconds=settings.seconds,
        wall_ns=got.wall_ns,
        video=hardware.camera.format,
        audio=hardware.microphone.format,
        frames=tuple(frames),  # the devices' threads have stopped: the lists are final
        blocks=tuple(blocks),
        dropped_frames=stats.dropped_frames,
        mic_overflows=stats.mic_overflows,
        video_bytes=stats.video_bytes,
        cpu_ns=got.cpu_ns,
        writer_cpu_ns=stats.writer_cpu_ns,
        board_busy=got.busy,
        cores=cores or os.cpu_count() or 1,
        samples=tuple(got.samples),
        error=stats.error,
        stop_ns=got.stop_ns,
        live_film=got.live_film,
    )


@dataclass(frozen=True)
class _Recorded:
    samples: list[BoardSample]
    stats: RecordingStats
    cpu_ns: int
    wall_ns: int
    busy: float | None
    stop_ns: int
    live_film: str | None


def _record(
    recorder: TakeRecorder,
    clock: Clock,
    wait: Callable[[int], None],
    settings: TakeSettings,
    board: BoardSources,
    cpu_time: Callable[[], int],
) -> _Recorded:
    samples = [sample_board(board, clock.now())]
    stat0, cpu0, t0 = read_cpu_busy(board.proc_stat), cpu_time(), clock.now()
    recorder.start(layout.take_dir(_CHECK_VISIT, "take"))
    try:
        end = t0 + round(settings.seconds * NS_PER_S)
        step = max(1, round(settings.sample_every_s * NS_PER_S))
        next_sample = t0 + step
        while clock.now() < end:
            wait(min(next_sample, end))
            if clock.now() >= next_sample:
                samples.append(sample_board(board, clock.now()))
                next_sample += step
    finally:
        # The figures cover the recording up to Stop; what Stop costs is stop_ns.
        stopping, cpu1, stat1 = clock.now(), cpu_time(), read_cpu_busy(board.proc_stat)
        stats = recorder.stop()
    cpu_ns, wall_ns = cpu1 - cpu0, stopping - t0
    live_film = _finish_film(stats)
    stop_ns = clock.now() - stopping
    samples.append(sample_board(board, clock.now()))
    busy = None
    if stat0 is not None and stat1 is not None and stat1[1] > stat0[1]:
        busy = (stat1[0] - stat0[0]) / (stat1[1] - stat0[1])
    return _Recorded(samples, stats, cpu_ns, wall_ns, busy, stop_ns, live_film)


def _finish_film(stats: RecordingStats) -> str | None:
    """Wait for the film the recorder made while recording: "" if complete, else why not.

    None when the recorder makes no film while recording. Waiting matters twice:
    the guider waits for it after Stop, and its folder is deleted right after.
    """
    if stats.film is None:
        return None
    try:
        stats.film.wait()
    except FilmDropped as exc:
        return str(exc) or "dropped"
    return ""


# --- what the take says -------------------------------------------------------------------


def recording_item(take: TakeLog) -> CheckItem:
    """Frames, dropped frames, bitrate and CPU load of the take."""
    fps = take.video.fps
    wall_s = take.wall_ns / NS_PER_S
    expected = round(take.seconds * fps)
    gaps = frame_gaps([f.pts_ns for f in take.frames], fps)
    data: dict[str, Any] = {
        "take_s": round(wall_s, 3),
        "take_frames": len(take.frames),
        "take_frames_expected": expected,
        "dropped_frames": take.dropped_frames,
        "frame_gaps": gaps,
        "mic_overflows": take.mic_overflows,
        "video_mbit_per_s": round(take.video_bytes * 8 / 1e6 / wall_s, 2) if wall_s else None,
        "cpu_process_percent": round(100 * take.cpu_ns / take.wall_ns, 1) if wall_s else None,
        "writer_cpu_percent": round(100 * take.writer_cpu_ns / take.wall_ns, 1) if wall_s else None,
        "cpu_system_percent": None if take.board_busy is None else round(100 * take.board_busy, 1),
        "cpu_cores": take.cores,
        "stop_ms": round(take.stop_ns / NS_PER_MS, 1),
        "live_film": None if take.live_film is None else take.live_film == "",
    }
    value = f"{len(take.frames)} frames in {wall_s:.0f} s"
    if data["cpu_process_percent"] is not None:
        value += f", kit process {data['cpu_process_percent']:.0f} % of a core"
    if data["cpu_system_percent"] is not None:
        value += f", board {data['cpu_system_percent']:.0f} % busy"
    if take.error:
        hint = "the card could not keep the take: see card speed, fsync and free space"
        return CheckItem(RECORDING, Level.FAIL, f"{value}, {take.error}", hint, data)
    if not take.frames:
        return CheckItem(RECORDING, Level.FAIL, value, "the camera delivered nothing", data)
    problems = []
    lost = max(take.dropped_frames, gaps)
    if lost:
        problems.append(f"{lost} frames dropped")
    if len(take.frames) < MIN_FRAMES_FRACTION * expected:
        problems.append(f"expected {expected}")
    if take.mic_overflows:
        problems.append(f"{take.mic_overflows} mic overflows")
    if take.live_film:
        problems.append(f"no film made while recording ({take.live_film})")
    busy = data["cpu_system_percent"]
    if busy is not None and busy > BUSY_BOARD_PERCENT:
        problems.append("the board is nearly saturated")
    if problems:
        hint = (
            "the kit does not keep up while recording: stop other services, cool it, "
            "or lower camera.fps"
        )
        return CheckItem(RECORDING, Level.WARN, f"{value}, {', '.join(problems)}", hint, data)
    return CheckItem(RECORDING, Level.OK, value, "", data)


def thermal_item(take: TakeLog) -> CheckItem:
    """Temperature and throttling over the take."""
    temps = [s.celsius for s in take.samples if s.celsius is not None]
    flags = [s for s in take.samples if s.throttled is not None]
    data: dict[str, Any] = {"thermal_samples": len(take.samples)}
    if temps:
        data |= {
            "temperature_start_c": temps[0],
            "temperature_max_c": max(temps),
            "temperature_end_c": temps[-1],
        }
    during: list[str] = []
    if flags:
        start, end = flags[0].throttled or 0, flags[-1].throttled or 0
        now_bits = 0
        for s in flags:
            now_bits |= (s.throttled or 0) & NOW_BITS
        # Sticky bits that were clear at the start appeared during the take.
        during = decode_throttled(now_bits | (end & ~start & ~NOW_BITS))
        data |= {
            "throttled_start": f"{start:#x}",
            "throttled_end": f"{end:#x}",
            "throttled_source": flags[0].throttled_source,
        }
    data["throttled_during_take"] = during
    if not temps and not flags:
        return CheckItem(
            THERMAL, Level.SKIP, "no thermal sensor and no get_throttled here", "", data
        )
    parts = []
    if temps:
        parts.append(f"{temps[0]:.1f} -> {temps[-1]:.1f} °C (max {max(temps):.1f})")
    parts.append("throttled: " + ", ".join(during) if during else "no throttling")
    value = f"over {take.wall_ns / NS_PER_S:.0f} s: " + ", ".join(parts)
    hint = "give the Pi air, a heatsink or a fan case, and the official 5.1 V supply"
    worst = max(temps, default=0.0)
    if any("under-voltage" in w or "throttled" in w for w in during) or worst >= HOT_C:
        return CheckItem(THERMAL, Level.FAIL, value, hint, data)
    if during or worst >= WARM_C:
        return CheckItem(THERMAL, Level.WARN, value, hint, data)
    return CheckItem(THERMAL, Level.OK, value, "", data)
