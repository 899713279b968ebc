"""Exports beside the film: OpenTimelineIO, CMX 3600 EDL, a CSV of tags, WebVTT chapters.

Each exporter is a pure function from the rendered film (and the visit's
tags) to text, so they are cheap to test; :func:`write_exports` stores them.

- The OTIO timeline and the EDL describe the rough cut as an edit of the
  takes' MP4s (paths relative to the cut folder), with a marker per tag, so
  an editor can open the cut in an NLE and refine it from the originals.
- The CSV lists every tag of the visit, also those the film could not hold.
- The WebVTT chapters follow the rough cut's own timeline, for a ``<track>``.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kit.clock import NS_PER_S
from kit.cutting.render import Film, FilmClip
from kit.model import Tag
from kit.store import layout
from kit.store.files import FileLayer

# The EDL's record timecode starts at one hour, as editors expect.
EDL_RECORD_START_S = 3600
MARKER_COLOR = "YELLOW"


@dataclass(frozen=True)
class ExportPaths:
    """Where :func:`write_exports` put each export (relative to the data directory)."""

    otio: str
    edl: str
    csv: str
    vtt: str


def _frames(ns: int, fps: Fraction) -> int:
    """``ns`` as a whole number of frames at ``fps`` (nearest)."""
    return round(Fraction(ns, NS_PER_S) * fps)


def _rational_time(frames: int, fps: Fraction) -> dict[str, Any]:
    return {"OTIO_SCHEMA": "RationalTime.1", "rate": float(fps), "value": float(frames)}


def _time_range(start: int, duration: int, fps: Fraction) -> dict[str, Any]:
    return {
        "OTIO_SCHEMA": "TimeRange.1",
        "duration": _rational_time(duration, fps),
        "start_time": _rational_time(start, fps),
    }


def _media_url(clip: FilmClip, cut_dir: str) -> str:
    return posixpath.relpath(clip.source.path, cut_dir)


def _otio_clip(
    clip: FilmClip, fps: Fraction, cut_dir: str, take_frames: dict[str, int], with_markers: bool
) -> dict[str, Any]:
    start = _frames(clip.take_start_ns, fps)
    duration = _frames(clip.film_end_ns, fps) - _frames(clip.film_start_ns, fps)
    markers = []
    if with_markers:
        for tag in clip.clip.tags:
            markers.append(
                {
                    "OTIO_SCHEMA": "Marker.2",
                    "metadata": {"kit": {"tag_id": tag.id, "author": tag.author}},
                    "name": tag.label,
                    "color": MARKER_COLOR,
                    "marked_range": _time_range(
                        _frames(tag.at_ns - clip.source.first_frame_ns, fps), 0, fps
                    ),
                    "comment": tag.note,
                }
            )
    return {
        "OTIO_SCHEMA": "Clip.2",
        "metadata": {"kit": {"take_id": clip.source.take_id, "take": clip.source.seq}},
        "name": clip.clip.title,
        "source_range": _time_range(start, duration, fps),
        "effects": [],
        "markers": markers,
        "enabled": True,
        "color": None,
        "media_references": {
            "DEFAULT_MEDIA": {
                "OTIO_SCHEMA": "ExternalReference.1",
                "metadata": {},
                "name": posixpath.basename(clip.source.path),
                "available_range": _time_range(0, take_frames[clip.source.take_id], fps),
                "available_image_bounds": None,
                "target_url": _media_url(clip, cut_dir),
            }
        },
        "active_media_reference_key": "DEFAULT_MEDIA",
    }


def _otio_track(name: str, kind: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "OTIO_SCHEMA": "Track.1",
        "metadata": {},
        "name": name,
        "source_range": None,
        "effects": [],
        "markers": [],
        "enabled": True,
        "color": None,
        "children": children,
        "kind": kind,
    }


def otio_timeline(
    film: Film,
    cut_dir: str,
    *,
    title: str = "Rough cut",
    take_durations_ns: dict[str, int],
    consent: dict[str, Any] | None = None,
) -> str:
    """The rough cut as an OpenTimelineIO timeline (JSON), a marker per tag.

    ``take_durations_ns`` gives each take's length, for the media's available range.
    """
    fps = film.fps
    take_frames = {k: _frames(v, fps) for k, v in take_durations_ns.items()}
    video = [_otio_clip(c, fps, cut_dir, take_frames, True) for c in film.clips]
    audio = [_otio_clip(c, fps, cut_dir, take_frames, False) for c in film.clips]
    timeline = {
        "OTIO_SCHEMA": "Timeline.1",
        "metadata": {"kit": {"film": posixpath.relpath(film.path, cut_dir), "consent": consent}},
        "name": title,
        "global_start_time": _rational_time(0, fps),
        "tracks": {
            "OTIO_SCHEMA": "Stack.1",
            "metadata": {},
            "name": "tracks",
            "source_range": None,
            "effects": [],
            "markers": [],
            "enabled": True,
            "color": None,
            "children": [_otio_track("V1", "Video", video), _otio_track("A1", "Audio", audio)],
        },
    }
    return json.dumps(timeline, indent=2, ensure_ascii=False) + "\n"


def timecode(frames: int, fps: int) -> str:
    """Non-drop-frame SMPTE timecode HH:MM:SS:FF."""
    seconds, ff = divmod(frames, fps)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


def _edl_text(text: str) -> str:
    """EDL comments are one line of plain ASCII in most readers."""
    from kit.cutting.font import fold

    return " ".join(fold(text).replace("★", "*").split())


def consent_line(consent: dict[str, Any] | None) -> str:
    """The family's consent in one line: who, what for, until when (for the exports)."""
    if not consent:
        return "no consent record"
    purposes = ", ".join(consent["purposes"])
    return f"given by {consent['given_by']} for {purposes}; erase by {consent['erase_by']}"


def edl(
    film: Film, cut_dir: str, *, title: str = "Rough cut", consent: dict[str, Any] | None = None
) -> str:
    """The rough cut as a CMX 3600 EDL (video and audio events, a locator per tag)."""
    fps = round(film.fps)
    rate = Fraction(fps)
    lines = [f"TITLE: {_edl_text(title)[:70] or 'Rough cut'}", "FCM: NON-DROP FRAME", ""]
    lines[2:2] = [f"* CONSENT: {_edl_text(consent_line(consent))}"]
    record = EDL_RECORD_START_S * fps
    for number, clip in enumerate(film.clips, start=1):
        src_in = _frames(clip.take_start_ns, rate)
        length = _frames(clip.film_end_ns, rate) - _frames(clip.film_start_ns, rate)
        reel = f"TAKE{clip.source.seq:03d}"[:8]
        times = (
            f"{timecode(src_in, fps)} {timecode(src_in + length, fps)} "
            f"{timecode(record, fps)} {timecode(record + length, fps)}"
        )
        for channel in ("V", "A"):
            lines.append(f"{number:03d}  {reel:<8} {channel:<5} C        {times}")
        lines.append(f"* FROM CLIP NAME: {_media_url(clip, cut_dir)}")
        lines.append(f"* COMMENT: {_edl_text(clip.clip.title)}")
        for tag in clip.clip.tags:
            at = record + _frames(clip.film_ns(tag.at_ns) - clip.film_start_ns, rate)
            at = min(max(at, record), record + max(0, length - 1))
            note = f" - {tag.note}" if tag.note.strip() else ""
            lines.append(
                f"* LOC: {timecode(at, fps)} {MARKER_COLOR:<7} {_edl_text(tag.label + note)}"
            )
        lines.append("")
        record += length
    return "\n".join(lines)


CSV_COLUMNS = (
    "tag_id",
    "label",
    "note",
    "author",
    "take",
    "take_id",
    "take_time_s",
    "in_film",
    "clip",
    "film_time_s",
    "film_timecode",
)


def _cell(text: str) -> str:
    """Free text made safe for spreadsheets: a leading =, +, - or @ would run as a formula."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def tags_csv(film: Film, tags: Sequence[Tag], take_starts_ns: dict[str, tuple[int, int]]) -> str:
    """Every tag of the visit, one row each, with where it is in its take and in the film.

    ``take_starts_ns`` maps a take id to (its number, its first frame's instant).
    """
    placed: dict[str, tuple[int, FilmClip]] = {}
    for number, clip in enumerate(film.clips, start=1):
        for tag in clip.clip.tags:
            placed[tag.id] = (number, clip)
    fps = round(film.fps)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for tag in sorted(tags, key=lambda t: (t.at_ns, t.id)):
        take = take_starts_ns.get(tag.take_id or "")
        take_time = f"{(tag.at_ns - take[1]) / NS_PER_S:.3f}" if take else ""
        row: list[str] = [
            tag.id,
            _cell(tag.label),
            _cell(tag.note),
            _cell(tag.author),
            str(take[0]) if take else "",
            tag.take_id or "",
            take_time,
        ]
        if tag.id in placed:
            number, clip = placed[tag.id]
            film_ns = min(max(clip.film_ns(tag.at_ns), clip.film_start_ns), clip.film_end_ns)
            row += [
                "yes",
                str(number),
                f"{film_ns / NS_PER_S:.3f}",
                timecode(_frames(film_ns, Fraction(fps)), fps),
            ]
        else:
            row += ["no", "", "", ""]
        writer.writerow(row)
    return buffer.getvalue()


def _vtt_time(ns: int) -> str:
    ms = round(ns / 1_000_000)
    seconds, millis = divmod(ms, 1000)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}.{millis:03d}"


def _vtt_text(text: str) -> str:
    return " ".join(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").split())


def webvtt_chapters(film: Film) -> str:
    """A WebVTT chapter track for the rough cut: one cue per clip, titled with its labels."""
    lines = ["WEBVTT", ""]
    for number, clip in enumerate(film.clips, start=1):
        lines.append(str(number))
        lines.append(f"{_vtt_time(clip.film_start_ns)} --> {_vtt_time(clip.film_end_ns)}")
        lines.append(_vtt_text(clip.clip.title) or f"Moment {number}")
        lines.append("")
    return "\n".join(lines)


def write_exports(
    files: FileLayer,
    film: Film,
    tags: Sequence[Tag],
    cut_dir: str,
    *,
    title: str,
    take_info: dict[str, tuple[int, int, int]],
    consent: dict[str, Any] | None = None,
) -> ExportPaths:
    """Write all four exports into ``cut_dir``.

    ``take_info`` maps a take id to (its number, its first frame's instant, its length in ns).
    """
    paths = ExportPaths(
        otio=layout.export(cut_dir, "otio"),
        edl=layout.export(cut_dir, "edl"),
        csv=layout.export(cut_dir, "csv"),
        vtt=layout.export(cut_dir, "vtt"),
    )
    texts = {
        paths.otio: otio_timeline(
            film,
            cut_dir,
            title=title,
            take_durations_ns={k: v[2] for k, v in take_info.items()},
            consent=consent,
        ),
        paths.edl: edl(film, cut_dir, title=title, consent=consent),
        paths.csv: tags_csv(film, tags, {k: (v[0], v[1]) for k, v in take_info.items()}),
        paths.vtt: webvtt_chapters(film),
    }
    for rel, text in texts.items():
        with files.replace(rel) as f:
            f.write(text.encode("utf-8"))
    return paths
