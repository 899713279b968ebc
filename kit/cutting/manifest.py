"""``cut/cut.json``: what the last rough cut of a visit holds, for the review page.

Written last, atomically, after the film, stills and exports, so a reader
that finds it finds everything it names. Times are seconds, in the film or in
a take; paths are relative to the data directory. The phone's review page
reads it, and so does the hand-off's work folder, which makes the exports
again from it (so every key here is kept as it is; new ones are added).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kit.clock import NS_PER_S
from kit.errors import StorageError
from kit.store import layout
from kit.store.files import FileLayer

if TYPE_CHECKING:
    from kit.cutting.visit import CutResult


def _seconds(ns: int) -> float:
    return ns / NS_PER_S


def _wall(when: datetime | None) -> str:
    """A wall-clock time as ISO 8601 UTC to the second ("" when unknown)."""
    return f"{when:%Y-%m-%dT%H:%M:%SZ}" if when is not None else ""


def manifest(result: CutResult) -> dict[str, Any]:
    """The JSON-ready description of a finished cut (pure).

    It holds all it takes to make the cut's exports again where its files are moved
    (kit/handoff/workfolder.py): each clip's stretch of its take and of the film, and its
    tags; each take's number, length and wall-clock start; and every planned moment with
    the guider's edits (``moments``: also those left out of the film). Times are seconds:
    in the film (``film_*``) or from the start of a take (``take_*``).
    """
    film = result.film
    clips = []
    if film is not None:
        for n, fc in enumerate(film.clips, start=1):
            clips.append(
                {
                    "number": n,
                    "take_id": fc.clip.take_id,
                    "take": fc.source.seq,
                    "film_start_s": _seconds(fc.film_start_ns),
                    "film_end_s": _seconds(fc.film_end_ns),
                    # the stretch of the take the film holds (from a keyframe)
                    "take_start_s": _seconds(fc.take_start_ns),
                    "take_end_s": _seconds(fc.take_end_ns),
                    "title": fc.clip.title,
                    # the moment it shows (the id of its first tag), and the take the film
                    # shows just before it (from a keyframe: the decoder needs it)
                    "moment_id": fc.clip.moment_id,
                    "lead_in_s": _seconds(fc.lead_in_ns),
                    "labels": list(fc.clip.labels),
                    "notes": [t.note for t in fc.clip.tags if t.note],
                    "tag_ids": [t.id for t in fc.clip.tags],
                    # where each tag's moment is, in the film
                    "tags_film_s": [
                        (fc.film_start_ns + t.at_ns - fc.start_ns) / NS_PER_S for t in fc.clip.tags
                    ],
                    "tags": [
                        {
                            "id": t.id,
                            "label": t.label,
                            "note": t.note,
                            "author": t.author,
                            "take_s": _seconds(t.at_ns - fc.source.first_frame_ns),
                        }
                        for t in fc.clip.tags
                    ],
                }
            )
    exports = result.exports
    return {
        "visit_id": result.visit_id,
        "inputs": result.inputs,
        "consent": result.consent,
        "title": result.title,
        "case_ref": result.case_ref,
        "started_wall": result.started_wall,
        "film": film.path if film else None,
        "duration_s": film.duration_ns / NS_PER_S if film else 0.0,
        "fps": float(film.fps) if film else None,
        "fps_fraction": f"{film.fps.numerator}/{film.fps.denominator}" if film else None,
        "width": film.width if film else None,
        "height": film.height if film else None,
        "takes": [
            {
                "take_id": take_id,
                "number": info.number,
                "duration_s": _seconds(info.duration_ns),
                "started_wall": _wall(info.started),
            }
            for take_id, info in sorted(result.takes.items(), key=lambda kv: kv[1].number)
        ],
        "clips": clips,
        "moments": _moments(result),
        "stills": [
            {
                "tag_id": s.tag.id,
                "number": s.number,
                "label": s.tag.label,
                "note": s.tag.note,
                "path": s.path,
                "film_s": s.film_ns / NS_PER_S if s.film_ns is not None else None,
                "take": s.source.seq,
                "take_s": _seconds(s.take_ns),
                "wall": _wall(s.taken),
                "caption": s.caption,
            }
            for s in result.stills
        ],
        # the first page (the whole sheet up to 18 stills); every page is in contact_sheets
        "contact_sheet": result.contact_sheet,
        "contact_sheets": list(result.contact_sheets),
        "exports": (
            {"otio": exports.otio, "edl": exports.edl, "csv": exports.csv, "vtt": exports.vtt}
            if exports
            else {}
        ),
    }


def _moments(result: CutResult) -> list[dict[str, Any]]:
    """Every planned moment (left out of the film or not), as the guider edited it."""
    if result.moments is None:
        return []
    found = []
    for m in result.moments.moments:
        base = result.firsts.get(m.take_id, 0)
        found.append(
            {
                "moment_id": m.moment_id,
                "number": m.number,
                "take_id": m.take_id,
                "take_start_s": _seconds(m.start_ns - base),
                "take_end_s": _seconds(m.end_ns - base),
                "default_start_s": _seconds(m.default_start_ns - base),
                "default_end_s": _seconds(m.default_end_ns - base),
                "dropped": m.dropped,
                "tag_ids": [t.id for t in m.tags],
            }
        )
    return found


def write_manifest(files: FileLayer, result: CutResult) -> None:
    files.makedirs(layout.cut_dir(result.visit_id))  # a visit with nothing to cut has none yet
    with files.replace(layout.in_cut(result.visit_id, layout.MANIFEST)) as f:
        f.write(json.dumps(manifest(result), indent=1).encode())


def read_manifest(files: FileLayer, visit_id: str) -> dict[str, Any] | None:
    """The last cut's manifest, or None if the visit has never been cut."""
    rel = layout.in_cut(visit_id, layout.MANIFEST)
    if not files.exists(rel):
        return None
    with files.read(rel) as f:
        try:
            data: dict[str, Any] = json.loads(f.read())
        except json.JSONDecodeError as exc:
            raise StorageError(f"the cut manifest of {visit_id} is damaged: {exc}") from exc
    return data
