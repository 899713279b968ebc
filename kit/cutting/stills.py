"""Stills: one full-resolution JPEG per tag, and a contact sheet of them for the shared review.

The still of a tag is the frame showing at the tag's instant (the last frame
that began at or before it), decoded from the nearest keyframe before it. Each
carries EXIF: the tag's wall-clock time as ``DateTimeOriginal`` (UTC, with its
offset) when the kit's clock was set, and a caption (moment number, label, take
and time) as ``ImageDescription`` and ``UserComment``. The contact sheet puts
every still on one image with its number, label and times, lettered with
DejaVu Sans through Pillow (see :mod:`kit.cutting.font`).

The guider's notes are private: they are in no still, caption or sheet.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from PIL import ExifTags, Image, ImageDraw

from kit.clock import NS_PER_S
from kit.cutting import CutError
from kit.cutting.font import face
from kit.cutting.render import FilmClip, Source
from kit.model import Tag
from kit.store import layout
from kit.store.files import FileLayer

Progress = Callable[[float], None]

# JPEG quantiser 2 of 31: near the best quality, because stills get printed.
_JPEG_OPTIONS = {"qmin": "2", "qmax": "2"}
# The sheet is for looking at on a screen: Pillow's quality 90 is plenty.
_SHEET_QUALITY = 90
_SHEET_COLUMNS = 3
_THUMB_W = 480
_PAD = 16
CAPTION_SIZE = 16  # pixels: two lines of it under each still
TITLE_SIZE = 22
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
DIM = (170, 170, 170)

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


def encode_jpeg(frame: Any) -> bytes:
    """A video frame as JPEG bytes (full range 4:2:0)."""
    import av

    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = frame.width, frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = dict(_JPEG_OPTIONS)
    picture = frame.reformat(format="yuvj420p")
    picture.pts = 0
    return b"".join(bytes(p) for p in [*encoder.encode(picture), *encoder.encode(None)])


def _frame_at(container: Any, source: Source, instant: int) -> tuple[Any, int]:
    """The decoded frame showing at ``instant`` (clamped into the take) and its own instant."""
    video = container.streams.video[0]
    entries = video.index_entries
    if len(entries) == 0:
        raise CutError(f"take {source.take_id} has no indexed video frames")
    tb = video.time_base
    ts = round(Fraction(instant - source.first_frame_ns, NS_PER_S) / tb)
    index = entries.search_timestamp(ts, backward=True, any_frame=True)
    target = int(entries[min(max(index, 0), len(entries) - 1)].timestamp)
    container.seek(target, stream=video, backward=True)
    for frame in container.decode(video):
        if frame.pts is not None and frame.pts >= target:
            return frame, source.first_frame_ns + round(Fraction(frame.pts) * tb * NS_PER_S)
    raise CutError(f"take {source.take_id} has no decodable frame at {ts * tb:.3f} s")


def wall_time(take_started: datetime | None, offset_ns: int) -> datetime | None:
    """The wall-clock time ``offset_ns`` into a take that started at ``take_started``."""
    if take_started is None:
        return None
    return take_started + timedelta(microseconds=offset_ns // 1000)


def grab_stills(
    files: FileLayer,
    film_clips: Sequence[FilmClip],
    out_dir: str,
    *,
    walls: Mapping[str, datetime] | None = None,
    progress: Progress | None = None,
) -> list[Still]:
    """One JPEG per tag of ``film_clips``, named ``NN-<tag id>.jpg`` in film order.

    ``walls`` maps a take id to the wall-clock time (UTC) of its first frame, where
    the kit knew it: the stills' EXIF dates come from it.
    """
    import av

    report = progress or (lambda _: None)
    known = walls or {}
    wanted = [(clip, tag) for clip in film_clips for tag in clip.clip.tags]
    files.makedirs(out_dir)
    stills: list[Still] = []
    containers: dict[str, Any] = {}
    handles: list[Any] = []
    try:
        for number, (clip, tag) in enumerate(wanted, start=1):
            source = clip.source
            if source.take_id not in containers:
                handle = files.read(source.path)
                handles.append(handle)
                container = av.open(handle)
                # Decoding from the keyframe may take up to a second of frames: use two
                # cores (niced: a recording still comes first), and no more, for memory.
                codec = container.streams.video[0].codec_context
                codec.thread_type = "FRAME"
                codec.thread_count = 2
                containers[source.take_id] = container
            frame, frame_ns = _frame_at(containers[source.take_id], source, tag.at_ns)
            inside = clip.start_ns <= frame_ns < clip.end_ns
            still = Still(
                tag=tag,
                number=number,
                source=source,
                path=layout.still(out_dir, number, tag.id),
                frame_ns=frame_ns,
                film_ns=clip.film_ns(frame_ns) if inside else None,
                width=frame.width,
                height=frame.height,
                taken=wall_time(known.get(source.take_id), tag.at_ns - source.first_frame_ns),
            )
            with files.replace(still.path) as f:
                f.write(with_exif(encode_jpeg(frame), still.caption, still.taken))
            stills.append(still)
            report(number / len(wanted))
    finally:
        for container in containers.values():
            container.close()
        for handle in handles:
            handle.close()
    return stills


def clock_text(ns: int) -> str:
    """``ns`` as m:ss.s (or h:mm:ss.s) for captions."""
    tenths = max(0, ns) * 10 // NS_PER_S
    seconds, tenth = divmod(tenths, 10)
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{sec:02d}.{tenth}"
    return f"{minutes}:{sec:02d}.{tenth}"


@dataclass(frozen=True)
class SheetLayout:
    """Where everything goes on a contact sheet (pixels, top left origin)."""

    count: int
    columns: int
    thumb_w: int
    thumb_h: int
    header_h: int
    width: int
    height: int

    @property
    def cell_w(self) -> int:
        return self.thumb_w + _PAD

    @property
    def cell_h(self) -> int:
        return self.thumb_h + _PAD // 2 + 2 * face(CAPTION_SIZE).line_height + _PAD

    def thumb_xy(self, index: int) -> tuple[int, int]:
        """The top left of the ``index``-th still (from 0)."""
        return (
            _PAD + (index % self.columns) * self.cell_w,
            self.header_h + (index // self.columns) * self.cell_h,
        )

    def caption_xy(self, index: int, line: int) -> tuple[int, int]:
        """The top left of caption line ``line`` (0: number and label, 1: times)."""
        x, y = self.thumb_xy(index)
        return x, y + self.thumb_h + _PAD // 2 + line * face(CAPTION_SIZE).line_height

    @property
    def title_xy(self) -> tuple[int, int]:
        return _PAD, _PAD // 2


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def sheet_layout(count: int, still_w: int, still_h: int, *, titled: bool) -> SheetLayout:
    """The layout of a sheet of ``count`` stills of ``still_w`` x ``still_h``."""
    columns = min(_SHEET_COLUMNS, count)
    rows = math.ceil(count / columns)
    thumb_w = _even(min(_THUMB_W, still_w))
    thumb_h = _even(thumb_w * still_h / still_w)
    header_h = face(TITLE_SIZE, bold=True).line_height + _PAD if titled else _PAD
    probe = SheetLayout(count, columns, thumb_w, thumb_h, header_h, 0, 0)
    return SheetLayout(
        count,
        columns,
        thumb_w,
        thumb_h,
        header_h,
        _even(columns * probe.cell_w + _PAD),
        _even(header_h + rows * probe.cell_h + _PAD),
    )


def still_times(still: Still) -> str:
    """A still's second caption line: where it is in its take and in the film."""
    times = f"take {still.source.seq} at {clock_text(still.take_ns)}"
    if still.film_ns is not None:
        times += f", film {clock_text(still.film_ns)}"
    return times


def contact_sheet(
    files: FileLayer, stills: Sequence[Still], out_rel: str, *, title: str = ""
) -> str:
    """Write one JPEG showing every still with its number, label and times (no notes)."""
    if not stills:
        raise CutError("no stills for a contact sheet")
    plan = sheet_layout(len(stills), stills[0].width, stills[0].height, titled=bool(title))
    sheet = Image.new("RGB", (plan.width, plan.height), BACKGROUND)
    pen = ImageDraw.Draw(sheet)
    caption = face(CAPTION_SIZE)
    if title:
        heading = face(TITLE_SIZE, bold=True)
        heading.draw(pen, plan.title_xy, heading.fit(title, plan.width - 2 * _PAD), TEXT)
    for i, still in enumerate(stills):
        with files.read(still.path) as f:
            picture = Image.open(io.BytesIO(f.read()))
            # Decode the JPEG at a half, quarter or eighth of its size: all a thumbnail needs.
            picture.draft("RGB", (plan.thumb_w, plan.thumb_h))
            thumb = picture.convert("RGB").resize(
                (plan.thumb_w, plan.thumb_h), Image.Resampling.BICUBIC
            )
        sheet.paste(thumb, plan.thumb_xy(i))
        label = caption.fit(f"{still.number}. {still.tag.label}", plan.thumb_w)
        caption.draw(pen, plan.caption_xy(i, 0), label, TEXT)
        caption.draw(pen, plan.caption_xy(i, 1), caption.fit(still_times(still), plan.thumb_w), DIM)
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=_SHEET_QUALITY)
    with files.replace(out_rel) as f:
        f.write(out.getvalue())
    return out_rel
