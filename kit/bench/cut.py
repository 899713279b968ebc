"""``kit bench cut``: cut a long 1080p30 take with 10 tags and print what it cost.

The take is built quickly rather than recorded: a few one-second GOPs of
simulated 1080p frames (moving bar, frame code, sensor-like noise, a white
frame each second) are encoded once with libx264 at about 10 Mbit/s, with a
keyframe every second and no B-frames like the Pi's encoder, then repeated
with new timestamps for the whole length, beside AAC audio with a beep each
second, into an MP4 just like a finalised take.

Figures, all from one run on the same file:

- the cut: ``cut_session`` wall time (child process start, film, stills,
  contact sheet, exports) and, apart, the film alone (``render_film`` in
  this process);
- baseline 1: a plain file copy (read, write, fsync) of the same clip bytes
  (each clip's byte range of the take); target: the film within 1.5x of it;
- baseline 2: Debian's ``ffmpeg`` re-encoding the same clips (libx264
  veryfast, AAC); target: the cut at least 50x faster;
- the cutting child's peak RSS; target <= 200 MB.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from kit.clock import NS_PER_S
from kit.cutting.plan import CutRules, TakeSpan, plan_cut
from kit.cutting.render import Source, render_film
from kit.cutting.session import CutResult, cut_session, film_path
from kit.hardware.sim.framecode import WHITE, FrameCode, draw_code
from kit.model import DEFAULT_LABELS, Tag, TakeState
from kit.store import layout
from kit.store.store import Store, new_id

FFMPEG = "/usr/bin/ffmpeg"
LABELS = DEFAULT_LABELS
_TB = Fraction(1, 90_000)
_RATE = 48_000
_AAC = 1024
_GOPS = 4
# The AAC loop is 16 s: a whole number of AAC frames (750) and of seconds.
_AUDIO_LOOP_S = 16
_T0 = 5_000 * NS_PER_S  # the synthetic take's first frame, on the kit clock

T = TypeVar("T")


@dataclass(frozen=True)
class BenchOptions:
    minutes: float = 60.0
    tags: int = 10
    width: int = 1920
    height: int = 1080
    fps: int = 30
    bitrate: int = 10_000_000
    reencode: bool = True
    repeat: int = 3


@dataclass(frozen=True)
class BenchResult:
    take_s: float
    take_bytes: int
    build_s: float
    clips: int
    film_s: float
    film_bytes: int
    clip_bytes: int
    cut_wall_s: float
    film_wall_s: float
    copy_s: float
    reencode_s: float | None
    peak_rss_bytes: int
    cut_parts: tuple[tuple[str, float], ...] = ()
    runs: int = 1


def _gops(options: BenchOptions) -> list[list[tuple[bytes, bool]]]:
    """``_GOPS`` one-second GOPs of simulated frames, encoded once: (payload, keyframe)."""
    import av

    w, h, fps = options.width, options.height, options.fps
    encoder: Any = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = w, h
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = Fraction(fps, 1)
    encoder.bit_rate = options.bitrate
    rate = str(options.bitrate // 1000)
    encoder.options = {
        "preset": "ultrafast",
        "g": str(fps),
        "keyint_min": str(fps),
        "sc_threshold": "0",
        "bf": "0",
        "x264-params": f"vbv-maxrate={rate}:vbv-bufsize={rate}",
    }
    rng = np.random.default_rng(7)
    yuv = np.full((h * 3 // 2, w), 128, dtype=np.uint8)
    packets: list[tuple[bytes, bool]] = []
    for n in range(_GOPS * fps):
        luma = yuv[:h]
        if n % fps == 0:
            luma.fill(WHITE)
        else:
            # Sensor noise keeps x264 busy at the target bitrate, like a real room does.
            luma[:] = rng.integers(40, 72, size=(h, w), dtype=np.uint8)
            bar = w // 16
            x = n * (w - bar) // (2 * fps) % (w - bar)
            luma[h // 3 :, x : x + bar] = 110
        draw_code(luma, FrameCode(number=n, t_us=n * 1_000_000 // fps))
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = n
        packets += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(frame)]
    packets += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(None)]
    return [packets[g * fps : (g + 1) * fps] for g in range(_GOPS)]


def _audio_loop() -> tuple[Any, bytes, list[bytes]]:
    """A 16 s loop of AAC (a beep each second): its MP4 (the stream's template), priming, loop."""
    import av

    seconds = _AUDIO_LOOP_S + 1
    t = np.arange(seconds * _RATE) / _RATE
    rng = np.random.default_rng(8)
    samples = (0.002 * rng.standard_normal(t.size)).astype(np.float32)
    beep = (t % 1.0) < 0.05
    samples[beep] += (0.49 * np.sin(2 * np.pi * 1000 * t[beep])).astype(np.float32)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream: Any = out.add_stream("aac", rate=_RATE, layout="mono")
        stream.bit_rate = 128_000
        for i in range(0, samples.size, 16 * _AAC):
            frame = av.AudioFrame.from_ndarray(
                samples[None, i : i + 16 * _AAC], format="fltp", layout="mono"
            )
            frame.sample_rate = _RATE
            frame.pts = i
            frame.time_base = Fraction(1, _RATE)
            out.mux(list(stream.encode(frame)))
        out.mux(list(stream.encode(None)))
    buffer.seek(0)
    container: Any = av.open(buffer)
    packets = [
        (p.pts, bytes(p)) for p in container.demux(container.streams.audio[0]) if p.pts is not None
    ]
    priming = next(data for pts, data in packets if pts < 0)
    loop = [data for pts, data in packets if 0 <= pts < _AUDIO_LOOP_S * _RATE]
    return container, priming, loop


def build_take(
    store: Store, options: BenchOptions, *, session_id: str | None = None, t0: int = _T0
) -> tuple[str, str]:
    """A ready take of ``options.minutes`` whose first frame is at ``t0``, with
    ``options.tags`` tags, in ``session_id`` (or a new session); (session, take) ids.

    Frame ``n`` shows the frame code ``n % 120`` (the GOPs repeat every 4 s).
    """
    import av

    gops = _gops(options)
    audio, priming, loop = _audio_loop()
    fps = options.fps
    frames = round(options.minutes * 60 * fps)
    if session_id is None:
        session_id = store.new_session(created_ns=t0).id
    take = store.db.add_take(session_id, new_id(), "bench")
    directory = layout.take_dir(session_id, take.id)
    store.files.makedirs(directory)
    template: Any = av.open(io.BytesIO(gops[0][0][0]), format="h264")
    with store.files.replace(layout.take_mp4(directory)) as f:
        out: Any = av.open(f, "w", format="mp4", options={"movflags": "+faststart"})
        vout = out.add_stream_from_template(template.streams.video[0])
        vout.time_base = _TB
        aout = out.add_stream_from_template(audio.streams.audio[0])
        aout.time_base = Fraction(1, _RATE)
        step = round(_TB.denominator / fps)
        audio_index = -1  # the priming packet first

        def audio_until(n: int) -> None:
            nonlocal audio_index
            # Interleave: the audio packets that start before video frame ``n``.
            while audio_index * _AAC * fps < n * _RATE:
                payload = priming if audio_index < 0 else loop[audio_index % len(loop)]
                _mux(out, aout, payload, audio_index * _AAC, _AAC, Fraction(1, _RATE), True)
                audio_index += 1

        for n in range(frames):
            audio_until(n)
            payload, key = gops[(n // fps) % _GOPS][n % fps]
            _mux(out, vout, payload, n * step, step, _TB, key)
        audio_until(frames)
        out.close()
    template.close()
    audio.close()
    end = t0 + round(Fraction(frames * NS_PER_S, fps))
    store.db.update_take(
        take.id, state=TakeState.READY, first_frame_ns=t0, end_ns=end, video_frames=frames
    )
    for k in range(options.tags):
        at = t0 + round((k + 0.5) * (end - t0) / options.tags) + 370_000_000
        label = LABELS[k % len(LABELS)]
        tag = Tag(
            new_id(),
            session_id,
            take.id,
            min(at, end - 1),
            label,
            f"bench note {k + 1}",
            "bench",
            t0,
        )
        store.db.add_tag(tag)
    return session_id, take.id


def _mux(
    out: Any, stream: Any, payload: bytes, pts: int, duration: int, tb: Fraction, key: bool
) -> None:
    import av

    packet = av.Packet(payload)
    packet.stream = stream
    packet.time_base = tb
    packet.pts = packet.dts = pts
    packet.duration = duration
    packet.is_keyframe = key
    out.mux(packet)


def _clip_byte_ranges(path: Path, film_clips: Sequence[Any]) -> list[tuple[int, int]]:
    """Each clip's byte range in the take: its first packet to the end of its last."""
    import av

    ranges = []
    with av.open(str(path)) as container:
        streams = [container.streams.video[0], container.streams.audio[0]]
        for clip in film_clips:
            lo, hi = None, 0
            for stream in streams:
                entries = stream.index_entries
                tb = stream.time_base
                a = max(
                    0,
                    entries.search_timestamp(
                        round(clip.take_start_ns / NS_PER_S / tb), any_frame=True
                    ),
                )
                b = entries.search_timestamp(
                    round(clip.take_end_ns / NS_PER_S / tb) - 1, any_frame=True
                )
                first, last = entries[a], entries[max(a, b)]
                lo = first.pos if lo is None else min(lo, first.pos)
                hi = max(hi, last.pos + last.size)
            ranges.append((lo or 0, hi))
    return ranges


def plain_copy(source: Path, ranges: Sequence[tuple[int, int]], target: Path) -> float:
    """Seconds to copy ``ranges`` of ``source`` into ``target`` (read, write, fsync)."""
    start = time.perf_counter()
    with source.open("rb") as src, target.open("wb") as dst:
        for lo, hi in ranges:
            src.seek(lo)
            left = hi - lo
            while left > 0:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                left -= len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return time.perf_counter() - start


def reencode(source: Path, film_clips: Sequence[Any], directory: Path) -> float:
    """Seconds for ffmpeg to re-encode each clip (libx264 veryfast + AAC), one after another."""
    start = time.perf_counter()
    for i, clip in enumerate(film_clips):
        argv = [
            FFMPEG,
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-ss",
            f"{clip.take_start_ns / NS_PER_S:.6f}",
            "-i",
            str(source),
            "-t",
            f"{(clip.take_end_ns - clip.take_start_ns) / NS_PER_S:.6f}",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-c:a",
            "aac",
            str(directory / f"reencode-{i}.mp4"),
        ]
        subprocess.run(argv, check=True)
    return time.perf_counter() - start


def _timed(call: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds, value) of ``call()``, started with nothing left to write back."""
    os.sync()
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def run_bench(root: Path, options: BenchOptions) -> BenchResult:
    """Build the take in ``root``, cut it, measure the baselines (medians of ``repeat`` runs)."""
    store = Store(root)
    try:
        started = time.perf_counter()
        session_id, take_id = build_take(store, options)
        build_s = time.perf_counter() - started
        take = store.db.take(take_id)
        mp4 = store.files.path(layout.take_mp4(layout.take_dir(session_id, take_id)))
        rules = CutRules()
        plan = plan_cut([TakeSpan.of(take)], store.db.tags_for_session(session_id), rules)
        source = Source(
            take.id,
            take.seq,
            layout.take_mp4(layout.take_dir(session_id, take_id)),
            take.first_frame_ns or 0,
        )
        film_only = f"{session_id}-film-only.mp4"
        cuts: list[tuple[float, CutResult]] = []
        film_walls: list[float] = []
        copies: list[float] = []
        ranges: list[tuple[int, int]] = []
        for _ in range(max(1, options.repeat)):
            # Each run writes new files, as the first would: no old file to unlink on the way.
            for rel in (film_path(session_id), film_only):
                if store.files.exists(rel):
                    store.files.remove(rel)
            (root / "copy.bin").unlink(missing_ok=True)
            cuts.append(_timed(partial(cut_session, store, session_id, rules)))
            # The film alone, in this process: the like-for-like comparison with a copy.
            film_walls.append(
                _timed(partial(render_film, store.files, plan, {take.id: source}, film_only))[0]
            )
            film = cuts[-1][1].film
            assert film is not None
            ranges = _clip_byte_ranges(mp4, film.clips)
            copies.append(_timed(partial(plain_copy, mp4, ranges, root / "copy.bin"))[0])
        cut_wall, result = sorted(cuts, key=lambda c: c[0])[len(cuts) // 2]
        film = result.film
        assert film is not None
        reencode_s = None
        if options.reencode and Path(FFMPEG).exists():
            reencode_s = reencode(mp4, film.clips, root)
        return BenchResult(
            take_s=take.duration_ns / NS_PER_S,
            take_bytes=mp4.stat().st_size,
            build_s=build_s,
            clips=len(film.clips),
            film_s=film.duration_ns / NS_PER_S,
            film_bytes=film.size_bytes,
            clip_bytes=sum(hi - lo for lo, hi in ranges),
            cut_wall_s=cut_wall,
            film_wall_s=statistics.median(film_walls),
            copy_s=statistics.median(copies),
            reencode_s=reencode_s,
            peak_rss_bytes=max(r.peak_rss_bytes for _, r in cuts),
            cut_parts=result.timings,
            runs=len(cuts),
        )
    finally:
        store.close()


def report(r: BenchResult) -> str:
    """The figures, one per line."""
    mb = 1e6
    lines = [
        f"take: {r.take_s / 60:.1f} min, {r.take_bytes / mb:.0f} MB "
        f"({r.take_bytes * 8 / r.take_s / mb:.1f} Mbit/s), built in {r.build_s:.1f} s",
        f"film: {r.clips} clips, {r.film_s:.1f} s, {r.film_bytes / mb:.1f} MB; "
        f"clip bytes in the take: {r.clip_bytes / mb:.1f} MB",
        f"timings are medians of {r.runs} runs; re-encode runs once",
        f"cut (child start, film, stills, contact sheet, exports): {r.cut_wall_s:.2f} s wall"
        + (" = " + ", ".join(f"{name} {s:.2f}" for name, s in r.cut_parts) if r.cut_parts else ""),
        f"film alone (render_film in-process): {r.film_wall_s:.2f} s wall",
        f"plain copy of the clip bytes (read, write, fsync): {r.copy_s:.2f} s",
        f"film / copy = {r.film_wall_s / max(r.copy_s, 1e-9):.2f}x, "
        f"whole cut / copy = {r.cut_wall_s / max(r.copy_s, 1e-9):.2f}x (target: film <= 1.5x)",
    ]
    if r.reencode_s is None:
        lines.append("ffmpeg re-encode: skipped")
    else:
        lines.append(
            f"ffmpeg re-encode (libx264 veryfast + AAC) of the same clips: {r.reencode_s:.1f} s; "
            f"re-encode / cut = {r.reencode_s / max(r.cut_wall_s, 1e-9):.0f}x, "
            f"re-encode / film = {r.reencode_s / max(r.film_wall_s, 1e-9):.0f}x (target >= 50x)"
        )
    lines.append(f"cutting child peak RSS: {r.peak_rss_bytes / 2**20:.0f} MiB (target <= 200 MB)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench cut", description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="take length (60)")
    parser.add_argument("--tags", type=int, default=10, help="tags spread over the take (10)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--bitrate", type=int, default=10_000_000, help="video bit/s (10M)")
    parser.add_argument("--no-reencode", action="store_true", help="skip the ffmpeg baseline")
    parser.add_argument("--repeat", type=int, default=3, help="runs to take medians of (3)")
    parser.add_argument("--data", type=Path, help="work directory (default: a temp dir)")
    args = parser.parse_args(argv)
    options = BenchOptions(
        minutes=args.minutes,
        tags=args.tags,
        width=args.width,
        height=args.height,
        bitrate=args.bitrate,
        reencode=not args.no_reencode,
        repeat=args.repeat,
    )
    with tempfile.TemporaryDirectory(prefix="kit-bench-cut-") as tmp:
        root = args.data or Path(tmp)
        result = run_bench(root, options)
        if args.data is None:
            shutil.rmtree(root, ignore_errors=True)
    print(report(result))
    return 0
