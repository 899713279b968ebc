"""Exports beside the film: OpenTimelineIO, CMX 3600 EDL, a CSV of tags, WebVTT chapters, and
(for the hand-off's work folder) Final Cut Pro 7 XML.

Each exporter is a pure function from the rendered film (and the visit's
tags) to text, so they are cheap to test and can be made again wherever the
media moves (kit/handoff/workfolder.py); :func:`write_exports` stores them.
Labels and notes are kept as typed (UTF-8), in every script.

- The OTIO timeline describes the rough cut as an edit of the takes' MP4s, by
  paths relative to the folder the timeline is in, with a marker per tag (its
  note as the marker's comment). OTIO's ``fcp_xml`` adapter turns it into the
  FCP 7 XML that Premiere Pro and DaVinci Resolve import.
- The EDL is CMX 3600: one event per clip for picture and sound together
  (channel ``B``: V and A1), numbered from 001; ``* FROM CLIP NAME:`` holds
  its labels, ``* FROM CLIP:`` (OpenTimelineIO) and ``* SOURCE FILE:``
  (Avid, pycmx) its take's path, and a ``* LOC:`` per tag at the tag's
  source timecode (where OpenTimelineIO reads and writes them), with its label
  and note. Record timecode starts at 01:00:00:00.
- The CSV lists every tag of the visit, also those the film could not hold
  (UTF-8 with a byte-order mark, so Excel reads it as UTF-8; the columns are
  documented in README.md, "Exports").
- The WebVTT chapters follow the rough cut's own timeline, for a ``<track>``.

The guider's notes go only where the organisation's editors look (OTIO
marker comments, EDL locators, the CSV): never in the chapters.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import posixpath
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from kit.clock import NS_PER_S
from kit.cutting.render import Film, FilmClip
from kit.model import Tag, Take, Visit
from kit.store import layout
from kit.store.files import FileLayer

# The EDL's record timecode starts at one hour, as editors expect.
EDL_RECORD_START_S = 3600
MARKER_COLOR = "YELLOW"


@dataclass(frozen=True)
class TakeInfo:
    """What the exports need of a take besides its film: its number, where it starts on the
    kit clock, its length, and when it started by the wall clock (UTC) if the kit knew."""

    number: int
    first_frame_ns: int
    duration_ns: int
    started: datetime | None = None

    def wall(self, instant: int) -> datetime | None:
        """The wall-clock time of the kit-clock ``instant`` in this take."""
        if self.started is None:
            return None
        return self.started + timedelta(microseconds=(instant - self.first_frame_ns) // 1000)


def wall_start(visit: Visit) -> datetime | None:
    """When ``visit`` started by the wall clock (UTC), if the kit's clock was set."""
    try:
        return datetime.fromisoformat(visit.started_wall) if visit.started_wall else None
    except ValueError:
        return None


def take_infos(visit: Visit, takes: Sequence[Take]) -> dict[str, TakeInfo]:
    """What the exports need of each finished take of ``visit``.

    A take's wall-clock start is known when the visit's start was stamped by the wall
    clock and the take was filmed in the same boot (kit-clock instants of another boot
    cannot be compared with the visit's).
    """
    started = wall_start(visit)
    infos = {}
    for take in takes:
        if take.first_frame_ns is None:
            continue
        wall = None
        if started is not None and take.boot_id == visit.boot_id:
            wall = started + timedelta(
                microseconds=(take.first_frame_ns - visit.started_ns) // 1000
            )
        infos[take.id] = TakeInfo(take.seq, take.first_frame_ns, take.duration_ns, wall)
    return infos


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


def _relative(path: str, cut_dir: str) -> str:
    """``path`` (relative to the data directory) as seen from the folder ``cut_dir``."""
    return posixpath.relpath(path, cut_dir or ".")


def _media_url(clip: FilmClip, cut_dir: str) -> str:
    return _relative(clip.source.path, cut_dir)


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
        "metadata": {"kit": {"film": _relative(film.path, cut_dir), "consent": consent}},
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


def fcp_xml(otio_text: str, *, media_dir: Path | None = None) -> str:
    """The OTIO timeline ``otio_text`` as Final Cut Pro 7 XML, through OTIO's ``fcp_xml``
    adapter (Premiere Pro and DaVinci Resolve import it).

    FCP 7 XML names media by URL: with ``media_dir`` (the absolute folder the timeline's
    relative paths start from), each becomes a ``file://`` URL, so an NLE finds the takes
    where they are; moved elsewhere, it asks once and relinks the rest by name.
    """
    import opentimelineio as otio

    timeline = otio.adapters.read_from_string(otio_text, "otio_json")
    if media_dir is not None:
        for clip in timeline.find_clips():
            reference = clip.media_reference
            url = getattr(reference, "target_url", None)
            if url and "://" not in url:
                reference.target_url = (media_dir / url).resolve().as_uri()
    text: str = otio.adapters.write_to_string(timeline, "fcp_xml")
    return text


def timecode(frames: int, fps: int) -> str:
    """Non-drop-frame SMPTE timecode HH:MM:SS:FF."""
    seconds, ff = divmod(frames, fps)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


def one_line(text: str) -> str:
    """``text`` on one line: control characters dropped, runs of white space one space."""
    kept = "".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc")
    return " ".join(kept.split())


def consent_line(consent: dict[str, Any] | None) -> str:
    """The family's consent in one line: who, what for, until when (for the exports)."""
    if not consent:
        return "no consent record"
    purposes = ", ".join(consent["purposes"])
    return f"given by {consent['given_by']} for {purposes}; erase by {consent['erase_by']}"


def _clip_name(clip: FilmClip, number: int) -> str:
    return one_line(clip.clip.title) or f"Moment {number}"


def edl(
    film: Film, cut_dir: str, *, title: str = "Rough cut", consent: dict[str, Any] | None = None
) -> str:
    """The rough cut as a CMX 3600 EDL: an event per clip (picture and sound), a locator per tag."""
    fps = round(film.fps)
    rate = Fraction(fps)
    lines = [f"TITLE: {one_line(title) or 'Rough cut'}", "FCM: NON-DROP FRAME"]
    record = EDL_RECORD_START_S * fps
    for number, clip in enumerate(film.clips, start=1):
        src_in = _frames(clip.take_start_ns, rate)
        length = _frames(clip.film_end_ns, rate) - _frames(clip.film_start_ns, rate)
        reel = f"TAKE{clip.source.seq:03d}"[:8]
        lines.append(
            f"{number:03d}  {reel:<8} {'B':<5} C        "
            f"{timecode(src_in, fps)} {timecode(src_in + length, fps)} "
            f"{timecode(record, fps)} {timecode(record + length, fps)}"
        )
        media = _media_url(clip, cut_dir)
        lines.append(f"* FROM CLIP NAME: {_clip_name(clip, number)}")
        lines.append(f"* FROM CLIP: {media}")
        lines.append(f"* SOURCE FILE: {media}")
        for tag in clip.clip.tags:
            at = _frames(tag.at_ns - clip.source.first_frame_ns, rate)
            at = min(max(at, src_in), src_in + max(0, length - 1))
            text = one_line(tag.label)
            if one_line(tag.note):
                text += f" - {one_line(tag.note)}"
            lines.append(f"* LOC: {timecode(at, fps)} {MARKER_COLOR:<7} {text}")
        if number == 1:  # comments belong to an event: the consent goes with the first
            lines.append(f"* CONSENT: {consent_line(consent)}")
        record += length
    return "\n".join(lines) + "\n"  # no blank lines: strict readers take them for statements


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
    "moment",
    "wall_time_utc",
    "still",
)
"""The CSV's columns, in order (each is described in README.md, "Exports")."""

BOM = "\ufeff"


def _cell(text: str) -> str:
    """Free text made safe for spreadsheets: a leading =, +, - or @ would run as a formula."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def tags_csv(
    film: Film | None,
    tags: Sequence[Tag],
    takes: Mapping[str, TakeInfo],
    *,
    stills: Mapping[str, str] | None = None,
) -> str:
    """Every tag of the visit, one row each, with where it is in its take and in the film.

    ``takes`` maps a take id to what the CSV needs of it; ``stills`` a tag id to the path
    of its still, relative to the CSV's folder. The text starts with a byte-order mark.
    """
    placed: dict[str, tuple[int, int, FilmClip]] = {}
    moment = 0
    for number, clip in enumerate(film.clips if film else (), start=1):
        for tag in clip.clip.tags:
            moment += 1
            placed[tag.id] = (number, moment, clip)
    fps = round(film.fps) if film else 30
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def order(tag: Tag) -> tuple[int, int, str]:
        take = takes.get(tag.take_id or "")
        return (take.number if take else 1 << 30, tag.at_ns, tag.id)

    for tag in sorted(tags, key=order):
        take = takes.get(tag.take_id or "")
        wall = take.wall(tag.at_ns) if take else None
        row: list[str] = [
            tag.id,
            _cell(tag.label),
            _cell(tag.note),
            _cell(tag.author),
            str(take.number) if take else "",
            tag.take_id or "",
            f"{(tag.at_ns - take.first_frame_ns) / NS_PER_S:.3f}" if take else "",
        ]
        if tag.id in placed:
            number, moment, clip = placed[tag.id]
            film_ns = min(max(clip.film_ns(tag.at_ns), clip.film_start_ns), clip.film_end_ns)
            row += [
                "yes",
                str(number),
                f"{film_ns / NS_PER_S:.3f}",
                timecode(_frames(film_ns, Fraction(fps)), fps),
                str(moment),
            ]
        else:
            row += ["no", "", "", "", ""]
        row += [
            f"{wall:%Y-%m-%d %H:%M:%S}" if wall else "",
            (stills or {}).get(tag.id, ""),
        ]
        writer.writerow(row)
    return BOM + buffer.getvalue()


def _vtt_time(ns: int) -> str:
    ms = round(ns / 1_000_000)
    seconds, millis = divmod(ms, 1000)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}.{millis:03d}"


def _vtt_text(text: str) -> str:
    return one_line(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def webvtt_chapters(film: Film) -> str:
    """A WebVTT chapter track for the rough cut: one cue per clip, titled with its labels."""
    lines = ["WEBVTT", ""]
    for number, clip in enumerate(film.clips, start=1):
        lines.append(str(number))
        lines.append(f"{_vtt_time(clip.film_start_ns)} --> {_vtt_time(clip.film_end_ns)}")
        lines.append(_vtt_text(clip.clip.title) or f"Moment {number}")
        lines.append("")
    return "\n".join(lines)


def export_texts(
    film: Film,
    tags: Sequence[Tag],
    cut_dir: str,
    *,
    title: str,
    takes: Mapping[str, TakeInfo],
    consent: dict[str, Any] | None = None,
    stills: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every export's text by kind (``otio``, ``edl``, ``csv``, ``vtt``), for exports in the
    folder ``cut_dir`` (paths in ``film`` are relative to the same root as ``cut_dir``;
    ``stills`` maps a tag id to its still's path relative to ``cut_dir``)."""
    return {
        "otio": otio_timeline(
            film,
            cut_dir,
            title=title,
            take_durations_ns={k: v.duration_ns for k, v in takes.items()},
            consent=consent,
        ),
        "edl": edl(film, cut_dir, title=title, consent=consent),
        "csv": tags_csv(film, tags, takes, stills=stills),
        "vtt": webvtt_chapters(film),
    }


def write_exports(
    files: FileLayer,
    film: Film,
    tags: Sequence[Tag],
    cut_dir: str,
    *,
    title: str,
    takes: Mapping[str, TakeInfo],
    consent: dict[str, Any] | None = None,
    stills: Mapping[str, str] | None = None,
) -> ExportPaths:
    """Write all four exports into ``cut_dir`` (``stills``: tag id to the still's path,
    relative to the data directory)."""
    paths = ExportPaths(
        otio=layout.export(cut_dir, "otio"),
        edl=layout.export(cut_dir, "edl"),
        csv=layout.export(cut_dir, "csv"),
        vtt=layout.export(cut_dir, "vtt"),
    )
    texts = export_texts(
        film,
        tags,
        cut_dir,
        title=title,
        takes=takes,
        consent=consent,
        stills={k: _relative(v, cut_dir) for k, v in (stills or {}).items()},
    )
    for kind, rel in dataclasses.asdict(paths).items():
        with files.replace(rel) as f:
            f.write(texts[kind].encode("utf-8"))
    return paths
