"""``kit bench record``: record a long simulated 720p30 take and print what it cost.

While recording: frames dropped (target 0); the recorder's own CPU per
recorded second, which is the writer thread (the simulated camera's rendering
and x264 encoding and the simulated mic are "hardware" and are reported
apart; target <= 0.05 core), as a ratio of a plain loop that writes the same
bytes in the same-sized pieces with an fsync a second; the video bitrate the
camera produced, against ``camera.bitrate``; peak RSS (target <= 200 MB).

After the stop, as the daemon does it: ``TakeService.stop_recording()`` (the
hardware stops, the raw streams are durable), then ``TakeService.finish()``
(the take is READY, its take.mp4 durable), each timed and the total (target
<= 1 s); the bytes the kit's process read and wrote meanwhile, against the
film's size (target: writes <= 5 % of it); and, measured in the same run, the
``ffmpeg`` command muxing the same streams (exported beforehand as .h264 and
.wav) with the kit's output options: the kit must be >= 5x faster.

Bytes are ``/proc/self/io``'s ``rchar``/``wchar``: every byte the process
passed to read() and write() (SQLite and logs included), whether or not the
page cache absorbed it, so they say what the kit did and do not depend on the
filesystem (a tmpfs counts too) or on what the cache held. ``read_bytes`` and
``write_bytes`` (what reached the block device) are printed beside them, but
they mislead here: a take just recorded is still in the page cache, so
reading it back costs no ``read_bytes``; writes are counted when a page is
first dirtied, so a chunk rewritten before writeback counts once; and they
are 0 on a tmpfs.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kit.bench.rawmux import Exported, export_streams, ffmpeg_argv, ffmpeg_mux_s, index_first
from kit.clock import NS_PER_S, MonotonicClock
from kit.compose import Cutting, Kit, compose
from kit.config import Config, SimConfig
from kit.errors import HardwareError
from kit.hardware.factory import simulated_hardware
from kit.model import Take
from kit.recording.recorder import RecordingStats
from kit.store import layout
from kit.store.files import FileLayer
from kit.testing.privacy import consent, with_privacy

log = logging.getLogger(__name__)

STOP_TO_FILM_TARGET_S = 1.0
FFMPEG_RATIO_TARGET = 5.0
WRITTEN_AFTER_STOP_TARGET = 0.05  # of the film's size
_IO_KEYS = ("rchar", "wchar", "read_bytes", "write_bytes")


def _thread_cpu_s(name: str) -> float:
    """CPU seconds used so far by the live thread called ``name`` (0 if none)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0


def _proc_io() -> dict[str, int]:
    """This process's I/O counters (empty where the kernel keeps none)."""
    try:
        text = Path("/proc/self/io").read_text(encoding="ascii")
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): int(value) for key, value in pairs}


def _baseline_write_cpu_s(directory: Path, total_bytes: int, piece: int, per_s: int) -> float:
    """CPU of writing ``total_bytes`` in ``piece``-sized writes, fsync every ``per_s`` pieces."""
    start = time.thread_time()
    chunk = os.urandom(piece)
    with (directory / "baseline.bin").open("wb") as f:
        written = 0
        count = 0
        while written < total_bytes:
            f.write(chunk)
            written += piece
            count += 1
            if count % per_s == 0:
                f.flush()
                os.fsync(f.fileno())
        f.flush()
        os.fsync(f.fileno())
    (directory / "baseline.bin").unlink()
    return time.thread_time() - start


def _filesystem(path: Path) -> str:
    """The type and device of the filesystem ``path`` is on (from /proc/self/mounts)."""
    best, found = "", "unknown"
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return found
    resolved = str(path.resolve())
    for line in mounts:
        device, point, kind = line.split()[:3]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, found = point, f"{kind} ({device})"
    return found


@dataclass(frozen=True)
class _Stop:
    """What the stop cost: wall seconds of each step, and the I/O counters' deltas."""

    stop_recording_s: float
    finish_s: float
    io: dict[str, int]

    @property
    def total_s(self) -> float:
        return self.stop_recording_s + self.finish_s


@dataclass(frozen=True)
class _Take:
    take: Take
    stats: RecordingStats
    stop: _Stop
    camera_cpu_s: float
    mic_cpu_s: float
    film_bytes: int  # on disk (encrypted)
    faststart: bool  # the film has its index first
    exported: Exported | None  # the raw streams, for the baseline (None if not kept)


def _keep_raw(files: FileLayer, visit_id: str, take_dir: str) -> tuple[str, str] | None:
    """Hard links to the take's raw streams, in its visit's directory (so the file layer
    reads them with the visit's key): the finaliser removes the streams once the film
    is made, and the links keep them for the export, at no cost to what is measured.
    None where the filesystem has no hard links."""
    kept: list[str] = []
    for rel, name in ((layout.raw_video(take_dir), "video"), (layout.raw_audio(take_dir), "audio")):
        link = layout.entry(layout.visit_dir(visit_id), f"bench-raw-{name}{Path(rel).suffix}")
        try:
            os.link(files.path(rel), files.path(link))
        except OSError as exc:
            log.warning("cannot keep the raw streams for the ffmpeg baseline: %s", exc)
            for done in kept:
                files.remove(done)
            return None
        kept.append(link)
    return kept[0], kept[1]


def _record(kit: Kit, seconds: float, out: Path) -> _Take:
    """One take of ``seconds``, stopped and finished as the daemon does it, timed; then
    (untimed) its raw streams exported to ``out`` for the baseline."""
    camera = kit.hardware.camera
    visit = kit.library.start_visit("Bench", consent())
    camera.open()  # and open it stays until the film is made: the preview runs, as in `kit run`
    try:
        take = kit.takes.start(visit.id)
        take_dir = layout.take_dir(visit.id, take.id)
        raw = _keep_raw(kit.store.files, visit.id, take_dir)
        first = kit.recorder.wait_for_first_frame(timeout_s=10)
        if first is None:
            kit.takes.stop()
            raise HardwareError("the camera delivered no frame within 10 s")
        # The take ends half a frame before `seconds`, so the frame at exactly `seconds` is
        # not taken, also when a busy machine stops it late.
        end = first + round(seconds * NS_PER_S) - camera.format.frame_ns // 2
        kit.recorder.end_at(end)
        kit.clock.sleep_until(end)
        # Thread CPU clocks vanish with their threads: read them before the stop.
        camera_cpu, mic_cpu = _thread_cpu_s("sim-camera"), _thread_cpu_s("sim-microphone")
        before = _proc_io()
        t0 = time.perf_counter()
        stopped = kit.takes.stop_recording()
        t1 = time.perf_counter()
        finished = kit.takes.finish(stopped)
        t2 = time.perf_counter()
        after = _proc_io()
    finally:
        camera.close()
    files = kit.store.files
    film = layout.take_mp4(take_dir)
    film_bytes, faststart = 0, False
    if files.exists(film):
        film_bytes = files.path(film).stat().st_size
        with files.read(film) as f:
            faststart = index_first(f)
    exported = None
    if raw is not None:
        exported = export_streams(files, *raw, out)
        for link in raw:
            files.remove(link)
    kit.library.take_ended(finished.take)
    kit.library.end_visit(visit.id)
    io = {key: after[key] - before[key] for key in _IO_KEYS if key in before and key in after}
    return _Take(
        take=finished.take,
        stats=stopped.stats,
        stop=_Stop(t1 - t0, t2 - t1, io),
        camera_cpu_s=camera_cpu,
        mic_cpu_s=mic_cpu,
        film_bytes=film_bytes,
        faststart=faststart,
        exported=exported,
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench record", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0, help="take length (600)")
    parser.add_argument("--data", type=Path, help="data directory (default: a temp dir)")
    parser.add_argument("--bitrate", type=int, help="camera.bitrate (default: the config's)")
    args = parser.parse_args(argv)

    config = Config(sim=SimConfig(mic_skew_ppm=150.0))
    if args.bitrate:
        config = replace(config, camera=replace(config.camera, bitrate=args.bitrate))
    clock = MonotonicClock()
    hardware = simulated_hardware(config, clock)
    ffmpeg = shutil.which("ffmpeg")
    with tempfile.TemporaryDirectory(prefix="kit-bench-") as tmp:
        root = args.data or Path(tmp)
        config = replace(config, storage=replace(config.storage, data_dir=str(root)))
        # Encrypted at rest, as every visit is: the writer's CPU includes it.
        config = with_privacy(config, root)
        kit = compose(config, hardware, clock, boot_id="bench", cutting=Cutting.NONE)
        try:
            rec = _record(kit, args.seconds, Path(root) / "bench-ffmpeg")
            stats = rec.stats
            recorded_s = rec.take.duration_ns / NS_PER_S
            raw_bytes = stats.video_bytes + stats.audio_frames * 2
            pieces_per_s = round(
                (stats.video_frames + stats.audio_frames / 480) / max(recorded_s, 1)
            )
            pieces = stats.video_frames + stats.audio_frames // 480
            baseline_s = _baseline_write_cpu_s(
                Path(root), raw_bytes, max(1, raw_bytes // max(1, pieces)), max(1, pieces_per_s)
            )
            ffmpeg_s = None
            if ffmpeg is not None and rec.exported is not None:
                out = rec.exported.video.with_name("ffmpeg.mp4")
                command = ffmpeg_argv(
                    rec.exported,
                    out,
                    aac_bitrate=config.audio.aac_bitrate,
                    faststart=rec.faststart,
                    ffmpeg=ffmpeg,
                )
                ffmpeg_s = ffmpeg_mux_s(command, out)
            where = _filesystem(Path(root))
        finally:
            kit.close()
    _report(rec, config, ffmpeg_s, baseline_s, where)
    return 0


def _report(
    rec: _Take, config: Config, ffmpeg_s: float | None, baseline_s: float, where: str
) -> None:
    take, stats, stop = rec.take, rec.stats, rec.stop
    film_bytes, faststart, exported = rec.film_bytes, rec.faststart, rec.exported
    recorded_s = take.duration_ns / NS_PER_S
    writer_s = stats.writer_cpu_ns / NS_PER_S
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fps = config.camera.fps
    print(f"take: {recorded_s:.1f} s recorded, {take.video_frames} frames, state {take.state}")
    print(f"data directory on {where}")
    print(
        f"frames dropped: {stats.dropped_frames} (target 0), gaps in the MP4: "
        f"{round(recorded_s * fps) - take.video_frames}"
    )
    print(
        f"recorder CPU (writer thread, encrypting): {writer_s:.2f} s = "
        f"{writer_s / recorded_s:.4f} core per recorded second (target <= 0.05)"
    )
    print(
        f"baseline (same bytes, same pieces, plain file, fsync 1/s): {baseline_s:.2f} s CPU; "
        f"recorder / baseline = {writer_s / max(baseline_s, 1e-9):.2f}x"
    )
    frames = max(1, take.video_frames)
    print(
        f"simulated camera (render + x264 + preview): {rec.camera_cpu_s / recorded_s:.3f} core "
        f"= {rec.camera_cpu_s / frames * 1e3:.2f} ms per frame, simulated mic: "
        f"{rec.mic_cpu_s / recorded_s:.4f} core (hardware, excluded)"
    )
    produced = stats.video_bytes * 8 / recorded_s
    configured = config.camera.bitrate
    print(
        f"video bitrate: {produced / 1e6:.2f} Mbit/s produced, camera.bitrate "
        f"{configured / 1e6:.2f} Mbit/s ({(produced / configured - 1) * 100:+.1f} %)"
    )
    print(
        f"stop to film: stop_recording {stop.stop_recording_s:.3f} s + finish "
        f"{stop.finish_s:.3f} s = {stop.total_s:.3f} s "
        f"(target <= {STOP_TO_FILM_TARGET_S:g} s: "
        f"{_verdict(stop.total_s <= STOP_TO_FILM_TARGET_S)})"
    )
    io = stop.io
    if io:
        print(
            f"after stop, the kit's process read {_mb(io['rchar'])} and wrote "
            f"{_mb(io['wchar'])} (rchar/wchar: every read() and write()); block device: "
            f"read_bytes {_mb(io.get('read_bytes', 0))}, write_bytes "
            f"{_mb(io.get('write_bytes', 0))}"
        )
    else:
        print("after stop: no /proc/self/io here, bytes not measured")
    share = io.get("wchar", 0) / film_bytes if film_bytes else float("inf")
    index = "index first" if faststart else "index last"
    film_rate = film_bytes * 8 / max(recorded_s, 1e-9) / 1e6
    print(
        f"film: take.mp4 {_mb(film_bytes)} on disk ({index}), {film_rate:.2f} Mbit/s; "
        f"written after stop {share * 100:.1f} % of it (target <= "
        f"{WRITTEN_AFTER_STOP_TARGET * 100:g} %: {_verdict(share <= WRITTEN_AFTER_STOP_TARGET)})"
    )
    if exported is None:
        print("ffmpeg mux: not measured (the raw streams could not be kept: no hard links)")
    elif ffmpeg_s is None:
        print("ffmpeg mux: not measured (no ffmpeg on PATH: apt install ffmpeg)")
    else:
        ratio = ffmpeg_s / max(stop.total_s, 1e-9)
        options = (
            "+faststart, as the kit's film" if faststart else "no faststart, as the kit's film"
        )
        print(
            f"ffmpeg mux (-c:v copy -c:a aac -b:a {config.audio.aac_bitrate}, {options}; "
            f"{exported.video_frames} frames, {exported.audio_frames} samples, plain files, "
            f"fsync'd): {ffmpeg_s:.3f} s; ffmpeg / kit stop-to-film = {ratio:.2f}x "
            f"(target >= {FFMPEG_RATIO_TARGET:g}x: {_verdict(ratio >= FFMPEG_RATIO_TARGET)})"
        )
    print(
        f"fsyncs: {stats.syncs}; mic skew measured {take.audio_skew_ppm or 0:+.1f} ppm (set +150)"
    )
    print(f"peak RSS: {rss_mb:.0f} MB (target <= 200)")
