"""Stills: one full-resolution JPEG per tag, taken in one forward pass over each take.

The still of a tag is the frame showing at the tag's instant (the last frame
that began at or before it, clamped into its take). H.264 needs the frames
from the keyframe before it to decode it, so each take is opened once and its
stills are taken in the take's order, not the film's: the pass seeks forward
to the keyframe of the next still's one-second GOP (the frames between are
never read), decodes on to the still's frame, and goes on decoding from there
when the next still is in the same GOP. No frame is decoded twice and the take
is read front to back once, however many tags there are and in whatever order
the film shows them. Each still is written as soon as it is decoded, so the
pass holds one frame at a time.

Each carries EXIF: the tag's wall-clock time as ``DateTimeOriginal`` (UTC,
with its offset) when the kit's clock was set, and a caption (moment number,
label, take and time) as ``ImageDescription`` and ``UserComment``. The
contact sheet of them is made in pages (:mod:`kit.cutting.sheet`).

The guider's notes are private: they are in no still or caption.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from PIL import ExifTags, Image

from kit.clock import NS_PER_S
from kit.cutting import CutError
from kit.cutting.render import FilmClip, Source
from kit.model import Tag
from kit.store import layout
from kit.store.files import FileLayer

Progress = Callable[[float], None]

# JPEG quantiser 2 of 31: near the best quality, because stills get printed.
_JPEG_OPTIONS = {"qmin": "2", "qmax": "2"}
# Decoding from a keyframe takes up to a second of frames: two frame threads (niced: a
# recording still comes first), and no more, for memory.
_DECODE_THREADS = 2

# EXIF's UserComment starts with its character code: UCS-2 in the file's byte order.
_UNICODE_COMMENT = b"UNICODE\x00"
_EXIF_HEADER = b"Exif\x00\x00"
_SOI = b"\xff\xd8"
_APP0 = 0xE0
_APP1 = 0xE1


@dataclass(frozen=True)
class Still:
    """The frame at one tag's instant, saved as a JPEG."""

    tag: Tag
    number: int  # the tag's place in the film, from 1
    source: Source
    path: str  # relative to the data directory
    frame_ns: int  # kit-clock instant of the frame shown
    film_ns: int | None  # where that frame is in the rough cut, if it is in it
    width: int
    height: int
    taken: datetime | None = None  # the tag's wall-clock time (UTC), if the kit knew it

    @property
    def take_ns(self) -> int:
        """The frame's position in its take."""
        return self.frame_ns - self.source.first_frame_ns

    @property
    def caption(self) -> str:
        """What the still shows, for its EXIF (the label and times: never the note)."""
        return still_caption(self.number, self.tag.label, self.source.seq, self.take_ns, self.taken)


def still_caption(number: int, label: str, take: int, take_ns: int, taken: datetime | None) -> str:
    """A still's caption: ``Moment 3: Guiding (take 1 at 0:05.0, 2026-11-30 10:15:05 UTC)``."""
    when = f"take {take} at {clock_text(take_ns)}"
    if taken is not None:
        when += f", {taken:%Y-%m-%d %H:%M:%S} UTC"
    return f"Moment {number}: {' '.join(label.split())} ({when})"


def exif_bytes(caption: str, taken: datetime | None) -> bytes:
    """The EXIF block (``Exif\\0\\0`` and a little-endian TIFF) for a still."""
    exif = Image.Exif()
    exif.endian = "<"
    # ASCII by the letter of EXIF 2.3; UTF-8 in practice (exiftool, Windows, macOS read it so).
    exif[ExifTags.Base.ImageDescription] = caption.encode("utf-8")
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.UserComment] = _UNICODE_COMMENT + caption.encode("utf-16-le")
    if taken is not None:
        details[ExifTags.Base.DateTimeOriginal] = f"{taken:%Y:%m:%d %H:%M:%S}"
        details[ExifTags.Base.OffsetTimeOriginal] = "+00:00"
    data = exif.tobytes()
    return data if data.startswith(_EXIF_HEADER) else _EXIF_HEADER + data


def with_exif(jpeg: bytes, caption: str, taken: datetime | None) -> bytes:
    """``jpeg`` with its EXIF replaced by a still's (after the JFIF header, if any)."""
    if not jpeg.startswith(_SOI):
        raise CutError("not a JPEG")
    segments: list[bytes] = []
    at = len(_SOI)
    # Keep APP0 (JFIF); drop any earlier Exif; stop at the first other segment.
    while at + 4 <= len(jpeg) and jpeg[at] == 0xFF and jpeg[at + 1] in (_APP0, _APP1):
        length = int.from_bytes(jpeg[at + 2 : at + 4], "big")
        segment = jpeg[at : at + 2 + length]
        if jpeg[at + 1] == _APP0 or not segment[4:].startswith(_EXIF_HEADER):
            segments.append(segment)
        at += 2 + length
    block = exif_bytes(caption, taken)
    if len(block) + 2 > 0xFFFF:
        raise CutError("a still's caption is too long for its EXIF")
    app1 = bytes([0xFF, _APP1]) + (len(block) + 2).to_bytes(2, "big") + block
    jfif = [s for s in segments if s[1] == _APP0]
    others = [s for s in segments if s[1] != _APP0]
    return _SOI + b"".join([*jfif, app1, *others]) + jpeg[at:]


class JpegEncoder:
    """Video frames as JPEG bytes (full range 4:2:0), one encoder for them all.

    One encoder, not one per still: each encoder allocates its own output buffer (~5 MB
    for 720p), and glibc, having given back the first such buffer freed, keeps the next
    ones on its heap, where they fragment it: measured, a pass of 200 stills grew the
    process by ~0.5 MB a still with an encoder each, and stayed flat with one.
    """

    def __init__(self) -> None:
        self._encoder: Any = None
        self._reformatter: Any = None  # one for every still: each new one starts threads
        self._count = 0

    def encode(self, frame: Any) -> bytes:
        import av

        encoder = self._encoder
        if encoder is None or (encoder.width, encoder.height) != (frame.width, frame.height):
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height = frame.width, frame.height
            encoder.pix_fmt = "yuvj420p"
            encoder.time_base = Fraction(1, 30)
            encoder.options = dict(_JPEG_OPTIONS)
            self._encoder = encoder
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        picture = self._reformatter.reformat(frame, format="yuvj420p")
        picture.pts, picture.time_base = self._count, encoder.time_base
        self._count += 1
        # Every JPEG stands alone: the encoder hands each frame's back at once.
        return b"".join(bytes(p) for p in encoder.encode(picture))


def encode_jpeg(frame: Any) -> bytes:
    """A video frame as JPEG bytes (full range 4:2:0)."""
    return JpegEncoder().encode(frame)


def wall_time(take_started: datetime | None, offset_ns: int) -> datetime | None:
    """The wall-clock time ``offset_ns`` into a take that started at ``take_started``."""
    if take_started is None:
        return None
    return take_started + timedelta(microseconds=offset_ns // 1000)


@dataclass
class PassStats:
    """What the stills' passes did (for tests and the benchmark)."""

    opens: int = 0  # takes opened (one per take with a still)
    seeks: int = 0  # forward seeks to a keyframe (at most one per GOP with a still)
    decoded: int = 0  # video frames decoded (none twice)


@dataclass(frozen=True)
class _Wanted:
    """A still to take: its tag, and its frame in the take's video time base."""

    number: int
    clip: FilmClip
    tag: Tag
    pts: int  # the frame showing at the tag
    key_pts: int  # the keyframe it is decoded from


def _wanted(
    video: Any, source: Source, items: Sequence[tuple[int, FilmClip, Tag]]
) -> list[_Wanted]:
    """The stills of one take, in the take's order (frame, then film order)."""
    entries = video.index_entries
    count = len(entries)
    if count == 0:
        raise CutError(f"take {source.take_id} has no indexed video frames")
    tb = Fraction(video.time_base)
    found = []
    for number, clip, tag in items:
        ts = round(Fraction(tag.at_ns - source.first_frame_ns, NS_PER_S) / tb)
        index = min(max(entries.search_timestamp(ts, backward=True, any_frame=True), 0), count - 1)
        pts = int(entries[index].timestamp)
        key = max(0, entries.search_timestamp(pts, backward=True))
        found.append(_Wanted(number, clip, tag, pts, int(entries[key].timestamp)))
    return sorted(found, key=lambda w: (w.pts, w.number))


def _frames(container: Any, wanted: Sequence[_Wanted], stats: PassStats) -> Iterator[Any]:
    """The decoded frame of each of ``wanted`` (sorted by frame), in one forward pass."""
    video = container.streams.video[0]
    decoding: Iterator[Any] | None = None
    last: Any = None  # the latest frame decoded
    for w in wanted:
        if decoding is None or last is None or w.key_pts > last.pts:
            # Its GOP lies ahead: skip there (the seek flushes the decoder).
            container.seek(w.key_pts, stream=video, backward=True)
            stats.seeks += 1
            decoding, last = container.decode(video), None
        while last is None or last.pts < w.pts:
            frame = next(decoding, None)
            if frame is None:
                tb = video.time_base
                raise CutError(f"a take has no decodable frame at {w.pts * tb:.3f} s")
            stats.decoded += 1
            if frame.pts is not None:
                last = frame
        yield last  # the frame showing at the tag (or the next, were it undecodable)


def grab_stills(
    files: FileLayer,
    film_clips: Sequence[FilmClip],
    out_dir: str,
    *,
    walls: Mapping[str, datetime] | None = None,
    progress: Progress | None = None,
    stats: PassStats | None = None,
    cancel: threading.Event | None = None,
) -> list[Still]:
    """One JPEG per tag of ``film_clips``, named ``NN-<tag id>.jpg`` in film order.

    ``walls`` maps a take id to the wall-clock time (UTC) of its first frame, where
    the kit knew it: the stills' EXIF dates come from it. Each take is opened once and
    read forward once (see the module's docstring); ``stats`` counts what that took.
    Setting ``cancel`` stops it between two stills (raising :class:`CutError`).
    """
    import av

    report = progress or (lambda _: None)
    counted = stats if stats is not None else PassStats()
    known = walls or {}
    by_take: dict[str, list[tuple[int, FilmClip, Tag]]] = {}
    number = 0
    for clip in film_clips:
        for tag in clip.clip.tags:
            number += 1
            by_take.setdefault(clip.source.take_id, []).append((number, clip, tag))
    total = max(1, number)
    files.makedirs(out_dir)
    stills: list[Still] = []
    jpeg = JpegEncoder()
    for items in by_take.values():
        source = items[0][1].source
        with files.read(source.path) as handle, av.open(handle) as opened:
            counted.opens += 1
            container: Any = opened
            video = container.streams.video[0]
            video.codec_context.thread_type = "FRAME"
            video.codec_context.thread_count = _DECODE_THREADS
            wanted = _wanted(video, source, items)
            tb = Fraction(video.time_base)
            for w, frame in zip(wanted, _frames(container, wanted, counted), strict=True):
                if cancel is not None and cancel.is_set():
                    raise CutError("the stills were cancelled")
                frame_ns = source.first_frame_ns + round(Fraction(frame.pts) * tb * NS_PER_S)
                inside = w.clip.start_ns <= frame_ns < w.clip.end_ns
                still = Still(
                    tag=w.tag,
                    number=w.number,
                    source=source,
                    path=layout.still(out_dir, w.number, w.tag.id),
                    frame_ns=frame_ns,
                    film_ns=w.clip.film_ns(frame_ns) if inside else None,
                    width=frame.width,
                    height=frame.height,
                    taken=wall_time(known.get(source.take_id), w.tag.at_ns - source.first_frame_ns),
                )
                with files.replace(still.path) as f:
                    f.write(with_exif(jpeg.encode(frame), still.caption, still.taken))
                stills.append(still)
                report(len(stills) / total)
    return sorted(stills, key=lambda s: s.number)


def clock_text(ns: int) -> str:
    """``ns`` as m:ss.s (or h:mm:ss.s) for captions."""
    tenths = max(0, ns) * 10 // NS_PER_S
    seconds, tenth = divmod(tenths, 10)
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{sec:02d}.{tenth}"
    return f"{minutes}:{sec:02d}.{tenth}"
