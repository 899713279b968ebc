"""``kit bench cut``: cut a long 1080p30 take with 10 tags and print what it cost.

The take is built quickly rather than recorded: a few one-second GOPs of
simulated 1080p frames (moving bar, frame code, sensor-like noise, a white
frame each second) are encoded once with libx264 at about 10 Mbit/s, with a
keyframe every second and no B-frames like the Pi's encoder, then repeated
with new timestamps for the whole length, beside AAC audio with a beep each
second, into an MP4 just like a finalised take.

Figures, all from one run on the same file:

- the cut: ``cut_visit`` wall time (child process start, film, stills,
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
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from kit.clock import NS_PER_S
from kit.cutting.plan import CutRules, TakeSpan, plan_cut
from kit.cutting.render import Source, render_film
from kit.cutting.visit import CutResult, cut_visit
from kit.store import layout
from kit.store.store import Store
from kit.testing.longtake import TakeShape, build_take

FFMPEG = "/usr/bin/ffmpeg"
T = TypeVar("T")


@dataclass(frozen=True)
class BenchOptions(TakeShape):
    """The take to cut (see :class:`kit.testing.longtake.TakeShape`) and how to measure it."""

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
        visit_id, take_id = build_take(store, options)
        build_s = time.perf_counter() - started
        take = store.db.take(take_id)
        mp4 = store.files.path(layout.take_mp4(layout.take_dir(visit_id, take_id)))
        rules = CutRules()
        plan = plan_cut([TakeSpan.of(take)], store.db.tags_for_visit(visit_id), rules)
        source = Source(
            take.id,
            take.seq,
            layout.take_mp4(layout.take_dir(visit_id, take_id)),
            take.first_frame_ns or 0,
        )
        film_only = f"{visit_id}-film-only.mp4"
        cuts: list[tuple[float, CutResult]] = []
        film_walls: list[float] = []
        copies: list[float] = []
        ranges: list[tuple[int, int]] = []
        for _ in range(max(1, options.repeat)):
            # Each run writes new files, as the first would: no old file to unlink on the way.
            for rel in (layout.in_cut(visit_id, layout.FILM), film_only):
                if store.files.exists(rel):
                    store.files.remove(rel)
            (root / "copy.bin").unlink(missing_ok=True)
            cuts.append(_timed(partial(cut_visit, store, visit_id, rules)))
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
