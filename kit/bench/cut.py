"""``kit bench cut``: the whole rough cut of a take as the kit records it, against ffmpeg.

The take is built quickly rather than recorded (kit/testing/longtake.py): a
few one-second GOPs of simulated frames with sensor-like noise, encoded once
with libx264 at the kit's own recording settings (``kit.config.CameraConfig``:
1280 x 720, 30 fps, 4 Mbit/s, capped by x264's VBV so it really is that
bitrate), a keyframe every second and no B-frames like the Pi's encoder, then
repeated with new timestamps for the whole length, beside AAC audio with a
beep each second, into an MP4 just like a finalised take. The take is built
once; it is then tagged with each count of tags in turn (8, 32 and 200 by
default) and cut.

Figures, for each count of tags, all from one run on the same file:

- the whole cut: ``cut_visit`` wall time, as the daemon runs it (its child
  process: film, stills, contact sheet; then the exports), with its parts;
- baseline: what LosslessCut does with the same clips: Debian's ``ffmpeg``
  stream-copying each clip (``-ss`` before ``-i``, ``-t``, ``-c copy``,
  ``-avoid_negative_ts make_zero``) and joining them with the concat demuxer
  (``-f concat -c copy``), the joined film fsynced like the cut's files, at
  the cutting child's own niceness (10: on a machine busy with other work a
  baseline at 0 would be measured against a cut that yields to it);
  target: the whole cut within 1.5x of it;
- the cutting child's peak RSS; target <= 200 MB whatever the number of tags;
- ``ffmpeg`` re-encoding the same clips (libx264 veryfast, AAC): what a cut
  would cost without stream copy; run once, for the first count of tags only
  (at 200 tags it takes minutes), skipped with ``--no-reencode``.

``--minutes 60 --tags 200`` is the largest visit a guider makes.
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
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from kit.clock import NS_PER_S
from kit.config import CameraConfig
from kit.cutting.child import NICENESS
from kit.cutting.plan import CutRules
from kit.cutting.render import FilmClip
from kit.cutting.visit import CutResult, cut_visit
from kit.model import DEFAULT_LABELS, Tag
from kit.store import layout
from kit.store.store import Store, new_id
from kit.testing.longtake import TakeShape, build_take

FFMPEG = "/usr/bin/ffmpeg"
NICE = "/usr/bin/nice"
TARGET_RATIO = 1.5  # the whole cut against ffmpeg's stream copy and concat
TARGET_RSS = 200_000_000  # bytes: the cutting child's peak, whatever the number of tags
T = TypeVar("T")


@dataclass(frozen=True)
class BenchOptions(TakeShape):
    """The take to cut (see :class:`kit.testing.longtake.TakeShape`) and how to measure it.

    ``tag_counts``: cut the take once tagged with each of these counts (empty: with
    ``tags``). kit.bench.handoff builds its take from one of these too.
    """

    reencode: bool = True
    repeat: int = 3
    tag_counts: tuple[int, ...] = ()
    baseline: bool = True  # measure ffmpeg's stream copy and concat

    @property
    def counts(self) -> tuple[int, ...]:
        return self.tag_counts or (self.tags,)


def kit_options(**changes: Any) -> BenchOptions:
    """Options for a take as the kit records it (kit.config.CameraConfig's defaults)."""
    camera = CameraConfig()
    kit = BenchOptions(
        width=camera.width, height=camera.height, fps=camera.fps, bitrate=camera.bitrate
    )
    return replace(kit, **changes)


@dataclass(frozen=True)
class CutRun:
    """The figures for one count of tags (times: medians of the runs)."""

    tags: int
    clips: int
    film_s: float
    film_bytes: int
    pages: int  # of the contact sheet
    cut_s: float  # the whole cut
    parts: tuple[tuple[str, float], ...]  # of the median run
    ffmpeg_s: float | None  # stream copy per clip + concat
    reencode_s: float | None
    peak_rss_bytes: int  # the most of any run
    seeks: int  # by the stills' pass
    decoded: int  # frames the stills' pass decoded
    runs: int

    @property
    def ratio(self) -> float | None:
        """The whole cut's time over ffmpeg's."""
        return None if self.ffmpeg_s is None else self.cut_s / max(self.ffmpeg_s, 1e-9)


@dataclass(frozen=True)
class BenchResult:
    take_s: float
    take_bytes: int
    width: int
    height: int
    fps: int
    bitrate: int  # what the take was encoded for
    build_s: float
    runs: tuple[CutRun, ...]


def tag_take(store: Store, visit_id: str, take_id: str, count: int) -> None:
    """Replace the visit's tags with ``count`` tags spread evenly over the take."""
    for old in store.db.tags_for_visit(visit_id):
        store.db.delete_tag(old.id)
    take = store.db.take(take_id)
    t0, end = take.first_frame_ns or 0, take.end_ns or 0
    for k in range(count):
        # As kit.testing.longtake places them: mid-way in equal shares, 0.37 s off the second.
        at = min(end - 1, t0 + round((k + 0.5) * (end - t0) / count) + 370_000_000)
        label = DEFAULT_LABELS[k % len(DEFAULT_LABELS)]
        store.db.add_tag(
            Tag(new_id(), visit_id, take_id, at, label, f"bench note {k + 1}", "bench", t0)
        )


def _ffmpeg(argv: Sequence[str]) -> None:
    """Run ``argv`` at the niceness the cut runs at."""
    subprocess.run([NICE, "-n", str(NICENESS), *argv], check=True)


def _seconds(ns: int) -> str:
    return f"{ns / NS_PER_S:.6f}"


_FFMPEG_QUIET = [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-y"]


def _clip_input(takes: Callable[[FilmClip], Path], clip: FilmClip) -> list[str]:
    """ffmpeg's input options for one clip: its take, from its start, for its length."""
    length = _seconds(clip.take_end_ns - clip.take_start_ns)
    return ["-ss", _seconds(clip.take_start_ns), "-i", str(takes(clip)), "-t", length]


def stream_copy(takes: Callable[[FilmClip], Path], clips: Sequence[FilmClip], work: Path) -> Path:
    """LosslessCut's way with the same clips: ffmpeg stream-copies each, then the concat
    demuxer joins them; the joined film is fsynced. Returns the film."""
    parts = []
    for i, clip in enumerate(clips):
        part = work / f"clip-{i:04d}.mp4"
        argv = [
            *_FFMPEG_QUIET,
            *_clip_input(takes, clip),
            "-avoid_negative_ts",
            "make_zero",
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "mp4",
            str(part),
        ]
        _ffmpeg(argv)
        parts.append(part)
    listing = work / "clips.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts), encoding="utf-8")
    film = work / "film.mp4"
    argv = [
        *_FFMPEG_QUIET,
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-map",
        "0",
        "-c",
        "copy",
        "-f",
        "mp4",
        str(film),
    ]
    _ffmpeg(argv)
    with film.open("rb") as f:
        os.fsync(f.fileno())
    return film


def reencode(takes: Callable[[FilmClip], Path], clips: Sequence[FilmClip], work: Path) -> None:
    """ffmpeg re-encoding each clip (libx264 veryfast + AAC), one after another."""
    for i, clip in enumerate(clips):
        argv = [
            *_FFMPEG_QUIET,
            *_clip_input(takes, clip),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-c:a",
            "aac",
            str(work / f"reencode-{i:04d}.mp4"),
        ]
        _ffmpeg(argv)


def _timed(call: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds, value) of ``call()``, started with nothing left to write back."""
    os.sync()
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _measure(
    store: Store, visit_id: str, root: Path, count: int, options: BenchOptions, *, reencoding: bool
) -> CutRun:
    rules = CutRules()
    cut_dir = store.files.path(layout.cut_dir(visit_id))
    work = root / "ffmpeg"

    def take_path(clip: FilmClip) -> Path:
        return store.files.path(clip.source.path)

    cuts: list[tuple[float, CutResult]] = []
    copies: list[float] = []
    ffmpeg = options.baseline and Path(FFMPEG).exists()
    for _ in range(max(1, options.repeat)):
        # Every run starts with no cut, as a visit's first does: nothing old to replace.
        shutil.rmtree(cut_dir, ignore_errors=True)
        cuts.append(_timed(partial(cut_visit, store, visit_id, rules)))
        film = cuts[-1][1].film
        assert film is not None
        if ffmpeg:
            copies.append(_timed(partial(stream_copy, take_path, film.clips, _fresh(work)))[0])
    cut_s, result = sorted(cuts, key=lambda c: c[0])[len(cuts) // 2]
    film = result.film
    assert film is not None
    reencode_s = None
    if reencoding and Path(FFMPEG).exists():
        reencode_s = _timed(partial(reencode, take_path, film.clips, _fresh(work)))[0]
    shutil.rmtree(work, ignore_errors=True)
    return CutRun(
        tags=count,
        clips=len(film.clips),
        film_s=film.duration_ns / NS_PER_S,
        film_bytes=film.size_bytes,
        pages=len(result.contact_sheets),
        cut_s=cut_s,
        parts=result.timings,
        ffmpeg_s=statistics.median(copies) if copies else None,
        reencode_s=reencode_s,
        peak_rss_bytes=max(r.peak_rss_bytes for _, r in cuts),
        seeks=result.stills_pass.seeks,
        decoded=result.stills_pass.decoded,
        runs=len(cuts),
    )


def run_bench(root: Path, options: BenchOptions) -> BenchResult:
    """Build the take in ``root``, then tag it with each count, cut it and measure."""
    store = Store(root / "data")
    try:
        started = time.perf_counter()
        visit_id, take_id = build_take(store, replace(options, tags=0))
        build_s = time.perf_counter() - started
        take = store.db.take(take_id)
        mp4 = store.files.path(layout.take_mp4(layout.take_dir(visit_id, take_id)))
        runs = []
        for i, count in enumerate(options.counts):
            tag_take(store, visit_id, take_id, count)
            reencoding = options.reencode and i == 0
            runs.append(_measure(store, visit_id, root, count, options, reencoding=reencoding))
        return BenchResult(
            take_s=take.duration_ns / NS_PER_S,
            take_bytes=mp4.stat().st_size,
            width=options.width,
            height=options.height,
            fps=options.fps,
            bitrate=options.bitrate,
            build_s=build_s,
            runs=tuple(runs),
        )
    finally:
        store.close()


def _run_lines(r: CutRun) -> list[str]:
    mb = 1e6
    parts = ", ".join(f"{name} {s:.2f}" for name, s in r.parts)
    lines = [
        f"{r.tags} tags: {r.clips} clips, a {r.film_s:.1f} s film of {r.film_bytes / mb:.1f} MB, "
        f"{r.pages} contact sheet page(s); stills: {r.seeks} seeks, {r.decoded} frames decoded",
        f"  whole cut (film, stills, contact sheet, exports): {r.cut_s:.2f} s = {parts}",
    ]
    if r.ffmpeg_s is None or r.ratio is None:
        lines.append("  ffmpeg stream copy + concat: skipped")
    else:
        lines.append(
            f"  ffmpeg stream copy per clip + concat of the same clips: {r.ffmpeg_s:.2f} s; "
            f"whole cut / ffmpeg = {r.ratio:.2f}x (target <= {TARGET_RATIO}x)"
        )
    if r.reencode_s is not None:
        lines.append(
            f"  ffmpeg re-encode (libx264 veryfast + AAC) of the same clips: {r.reencode_s:.1f} s "
            f"= {r.reencode_s / max(r.cut_s, 1e-9):.0f}x the whole cut"
        )
    lines.append(
        f"  cutting child peak RSS: {r.peak_rss_bytes / 2**20:.0f} MiB "
        f"= {r.peak_rss_bytes / 1e6:.0f} MB (target <= {TARGET_RSS / 1e6:.0f} MB)"
    )
    return lines


def report(r: BenchResult) -> str:
    """The figures, one per line."""
    mb = 1e6
    runs = r.runs[0].runs if r.runs else 0
    lines = [
        f"take: {r.take_s / 60:.1f} min of {r.width}x{r.height} at {r.fps} fps, "
        f"{r.take_bytes / mb:.0f} MB = {r.take_bytes * 8 / max(r.take_s, 1e-9) / mb:.1f} Mbit/s "
        f"(encoded for {r.bitrate / mb:.1f}), built in {r.build_s:.1f} s",
        f"times are medians of {runs} runs, each starting from no cut; "
        "the re-encode runs once, for the first count of tags",
    ]
    for run in r.runs:
        lines += _run_lines(run)
    tags = "/".join(str(run.tags) for run in r.runs)
    rss = "/".join(f"{run.peak_rss_bytes / 1e6:.0f}" for run in r.runs)
    lines.append(f"peak RSS at {tags} tags: {rss} MB")
    ratios = [run.ratio for run in r.runs]
    if all(x is not None for x in ratios):
        lines.append(
            f"whole cut / ffmpeg at {tags} tags: " + "/".join(f"{x:.2f}x" for x in ratios if x)
        )
    return "\n".join(lines)


def _counts(text: str) -> tuple[int, ...]:
    counts = tuple(int(part) for part in text.split(","))
    if not counts or any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError("tag counts are whole numbers from 1, e.g. 8,32,200")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    camera = CameraConfig()
    parser = argparse.ArgumentParser(prog="kit bench cut", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="take length (10)")
    parser.add_argument(
        "--tags", type=_counts, default=(8, 32, 200), help="counts of tags to cut with (8,32,200)"
    )
    parser.add_argument("--width", type=int, default=camera.width)
    parser.add_argument("--height", type=int, default=camera.height)
    parser.add_argument(
        "--bitrate", type=int, default=camera.bitrate, help=f"video bit/s ({camera.bitrate})"
    )
    parser.add_argument("--no-reencode", action="store_true", help="skip the re-encode baseline")
    parser.add_argument("--no-ffmpeg", action="store_true", help="skip the stream-copy baseline")
    parser.add_argument("--repeat", type=int, default=3, help="runs to take medians of (3)")
    parser.add_argument("--data", type=Path, help="work directory (default: a temp dir)")
    args = parser.parse_args(argv)
    options = kit_options(
        minutes=args.minutes,
        tag_counts=args.tags,
        width=args.width,
        height=args.height,
        bitrate=args.bitrate,
        reencode=not args.no_reencode,
        baseline=not args.no_ffmpeg,
        repeat=args.repeat,
    )
    with tempfile.TemporaryDirectory(prefix="kit-bench-cut-") as tmp:
        root = args.data or Path(tmp)
        result = run_bench(root, options)
        if args.data is None:
            shutil.rmtree(root, ignore_errors=True)
    print(report(result))
    return 0
