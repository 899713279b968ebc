"""Stills: one full-resolution JPEG per tag, and a contact sheet of them for the shared review.

The still of a tag is the frame showing at the tag's instant (the last frame
that began at or before it), decoded from the nearest keyframe before it.
The contact sheet puts every still on one image with its number, label
and times, drawn with the kit's own small font (see :mod:`kit.cutting.font`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from kit.clock import NS_PER_S
from kit.cutting import CutError, font
from kit.cutting.render import FilmClip, Source
from kit.model import Tag
from kit.store import layout
from kit.store.files import FileLayer

Progress = Callable[[float], None]

# JPEG quantiser 2 of 31: near the best quality, because stills get printed.
_JPEG_OPTIONS = {"qmin": "2", "qmax": "2"}
_SHEET_COLUMNS = 3
_THUMB_W = 480
_PAD = 16
_SCALE = 2
_BACKGROUND = 24
_TEXT = 235
_DIM = 170


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

    @property
    def take_ns(self) -> int:
        """The frame's position in its take."""
        return self.frame_ns - self.source.first_frame_ns


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


def grab_stills(
    files: FileLayer,
    film_clips: Sequence[FilmClip],
    out_dir: str,
    *,
    progress: Progress | None = None,
) -> list[Still]:
    """One JPEG per tag of ``film_clips``, named ``NN-<tag id>.jpg`` in film order."""
    import av

    report = progress or (lambda _: None)
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
            rel = layout.still(out_dir, number, tag.id)
            with files.replace(rel) as f:
                f.write(encode_jpeg(frame))
            inside = clip.start_ns <= frame_ns < clip.end_ns
            stills.append(
                Still(
                    tag=tag,
                    number=number,
                    source=source,
                    path=rel,
                    frame_ns=frame_ns,
                    film_ns=clip.film_ns(frame_ns) if inside else None,
                    width=frame.width,
                    height=frame.height,
                )
            )
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


@dataclass
class _Canvas:
    """A 4:2:0 picture built plane by plane."""

    luma: npt.NDArray[np.uint8]
    cb: npt.NDArray[np.uint8]
    cr: npt.NDArray[np.uint8]

    @classmethod
    def blank(cls, width: int, height: int, luma: int) -> _Canvas:
        return cls(
            np.full((height, width), luma, dtype=np.uint8),
            np.full((height // 2, width // 2), 128, dtype=np.uint8),
            np.full((height // 2, width // 2), 128, dtype=np.uint8),
        )

    def paste(self, frame: Any, x: int, y: int) -> None:
        """Paste a frame with its top left at (x, y) (multiples of 2, sizes of 4)."""
        h, w = frame.height, frame.width
        planes = np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)
        quarter = h // 4
        self.luma[y : y + h, x : x + w] = planes[:h]
        self.cb[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = planes[h : h + quarter].reshape(
            h // 2, w // 2
        )
        self.cr[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = planes[h + quarter :].reshape(
            h // 2, w // 2
        )

    def to_frame(self) -> Any:
        import av

        width = self.luma.shape[1]
        stacked = np.concatenate(
            [self.luma, self.cb.reshape(-1, width), self.cr.reshape(-1, width)]
        )
        return av.VideoFrame.from_ndarray(stacked, format="yuv420p")


def _four(value: float) -> int:
    """``value`` rounded down to a multiple of 4 (4:2:0 planes stack evenly), at least 4."""
    return max(4, int(value) // 4 * 4)


def _fit(text: str, width: int) -> str:
    """``text`` cut to fit ``width`` pixels on one line."""
    room = max(1, width // (font.ADVANCE * _SCALE))
    folded = font.fold(text)
    return folded if len(folded) <= room else folded[: max(1, room - 3)] + "..."


def contact_sheet(
    files: FileLayer, stills: Sequence[Still], out_rel: str, *, title: str = ""
) -> str:
    """Write one JPEG showing every still with its number, label, note and times."""
    import av

    if not stills:
        raise CutError("no stills for a contact sheet")
    columns = min(_SHEET_COLUMNS, len(stills))
    rows = math.ceil(len(stills) / columns)
    aspect = stills[0].height / stills[0].width
    thumb_w = _four(min(_THUMB_W, stills[0].width))
    thumb_h = _four(thumb_w * aspect)
    line = font.LINE * _SCALE
    caption_h = line * 2 + _PAD // 2
    header_h = line * 2 if title else _PAD
    cell_w, cell_h = thumb_w + _PAD, thumb_h + caption_h + _PAD
    width = _four(columns * cell_w + _PAD)
    height = _four(header_h + rows * cell_h + _PAD)
    canvas = _Canvas.blank(width, height, _BACKGROUND)
    if title:
        font.draw(canvas.luma, title, _PAD, _PAD // 2 + line // 4, _SCALE, _TEXT)
    for i, still in enumerate(stills):
        x = _PAD + (i % columns) * cell_w
        y = header_h + (i // columns) * cell_h
        with files.read(still.path) as f:
            container: Any = av.open(f)
            with container:
                # Decode the JPEG at a quarter (or half) size: cheaper, and all a thumbnail needs.
                scale = _lowres(still.width, thumb_w)
                if scale:
                    container.streams.video[0].codec_context.options = {"lowres": str(scale)}
                frame = next(container.decode(video=0))
                thumb = frame.reformat(width=thumb_w, height=thumb_h, format="yuv420p")
        canvas.paste(thumb, x, y)
        _caption(canvas.luma, still, x, y + thumb_h + _PAD // 2, thumb_w)
    picture = canvas.to_frame()
    with files.replace(out_rel) as f:
        f.write(encode_jpeg(picture))
    return out_rel


def _lowres(width: int, thumb_width: int) -> int:
    """The JPEG decoder's ``lowres`` (halvings, at most 3) that stays at least ``thumb_width``."""
    scale = 0
    while scale < 3 and width >> (scale + 1) >= thumb_width:
        scale += 1
    return scale


def _caption(luma: npt.NDArray[np.uint8], still: Still, x: int, y: int, width: int) -> None:
    line = font.LINE * _SCALE
    tag = still.tag
    font.draw(luma, _fit(f"{still.number}. {tag.label}", width), x, y, _SCALE, _TEXT)
    times = f"take {still.source.seq} at {clock_text(still.take_ns)}"
    if still.film_ns is not None:
        times += f", film {clock_text(still.film_ns)}"
    font.draw(luma, _fit(times, width), x, y + line, _SCALE, _DIM)
