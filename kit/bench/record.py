"""``kit bench record``: record a long simulated 720p30 take and print what it cost.

Figures: frames dropped (target 0); the recorder's own CPU per recorded
second, which is the writer thread (the simulated camera's rendering and
x264 encoding and the simulated mic are "hardware" and are reported apart;
target <= 0.05 core); the finalise (mux) time; peak RSS (target <= 200 MB).
The baseline, measured in the same run, is a plain loop that writes the
same bytes in the same-sized pieces with an fsync a second: the recorder's
CPU is printed as a ratio of it.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from kit.clock import NS_PER_S, MonotonicClock
from kit.compose import Cutting, compose
from kit.config import Config, SimConfig
from kit.hardware.factory import simulated_hardware
from kit.recording.headless import record_take
from kit.testing.privacy import consent, with_privacy


def _thread_cpu_s(name: str) -> float:
    """CPU seconds used so far by the live thread called ``name`` (0 if none)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench record", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0, help="take length (600)")
    parser.add_argument("--data", type=Path, help="data directory (default: a temp dir)")
    args = parser.parse_args(argv)

    config = Config(sim=SimConfig(mic_skew_ppm=150.0))
    clock = MonotonicClock()
    hardware = simulated_hardware(config, clock)
    with tempfile.TemporaryDirectory(prefix="kit-bench-") as tmp:
        root = args.data or Path(tmp)
        config = replace(config, storage=replace(config.storage, data_dir=str(root)))
        # Encrypted at rest, as every visit is: the writer's CPU includes it.
        config = with_privacy(config, root)
        kit = compose(config, hardware, clock, boot_id="bench", cutting=Cutting.NONE)
        samples: dict[str, float] = {}
        done = threading.Event()

        def sample_cpu() -> None:
            # Thread CPU clocks vanish with their threads: read them just before the stop.
            end = time.monotonic() + args.seconds - 1.0
            while not done.wait(0.5):
                if time.monotonic() >= end and not samples:
                    samples["camera"] = _thread_cpu_s("sim-camera")
                    samples["mic"] = _thread_cpu_s("sim-microphone")

        sampler = threading.Thread(target=sample_cpu, daemon=True)
        sampler.start()
        wall = time.monotonic()
        result = record_take(kit, seconds=args.seconds, case_ref="Bench", consent=consent())
        done.set()
        total_wall = time.monotonic() - wall
        stats = result.stats
        take = result.take
        assert stats is not None
        recorded_s = take.duration_ns / NS_PER_S
        writer_s = stats.writer_cpu_ns / NS_PER_S
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        mp4_mb = Path(result.mp4).stat().st_size / 1e6 if result.mp4 else 0.0
        raw_bytes = stats.video_bytes + stats.audio_frames * 2
        pieces_per_s = round((stats.video_frames + stats.audio_frames / 480) / max(recorded_s, 1))
        pieces = stats.video_frames + stats.audio_frames // 480
        baseline_s = _baseline_write_cpu_s(
            Path(root), raw_bytes, max(1, raw_bytes // max(1, pieces)), max(1, pieces_per_s)
        )
        kit.close()

    print(f"take: {recorded_s:.1f} s recorded, {take.video_frames} frames, state {take.state}")
    print(
        f"frames dropped: {stats.dropped_frames} (target 0), gaps in the MP4: "
        f"{round(recorded_s * 30) - take.video_frames}"
    )
    print(
        f"recorder CPU (writer thread, encrypting): {writer_s:.2f} s = "
        f"{writer_s / recorded_s:.4f} core per recorded second (target <= 0.05)"
    )
    print(
        f"baseline (same bytes, same pieces, plain file, fsync 1/s): {baseline_s:.2f} s CPU; "
        f"recorder / baseline = {writer_s / max(baseline_s, 1e-9):.2f}x"
    )
    print(
        f"simulated camera (render + x264): {samples.get('camera', 0.0) / recorded_s:.3f} core, "
        f"simulated mic: {samples.get('mic', 0.0) / recorded_s:.4f} core (hardware, excluded)"
    )
    print(
        f"finalise (mux to MP4) + rest: {total_wall - args.seconds:.1f} s wall for "
        f"{recorded_s:.0f} s of take; MP4 {mp4_mb:.1f} MB; raw streams {raw_bytes / 1e6:.1f} MB"
    )
    print(
        f"fsyncs: {stats.syncs}; mic skew measured {take.audio_skew_ppm or 0:+.1f} ppm (set +150)"
    )
    print(f"peak RSS: {rss_mb:.0f} MB (target <= 200)")
    return 0
