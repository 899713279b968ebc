"""``cut/cut.json``: what the last rough cut of a visit holds, for the review page.

Written last, atomically, after the film, stills and exports, so a reader
that finds it finds everything it names. Times are seconds in the film.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kit.clock import NS_PER_S
from kit.errors import StorageError
from kit.store import layout
from kit.store.files import FileLayer

if TYPE_CHECKING:
    from kit.cutting.visit import CutResult


def manifest(result: CutResult) -> dict[str, Any]:
    """The JSON-ready description of a finished cut (pure)."""
    film = result.film
    clips = []
    if film is not None:
        for n, fc in enumerate(film.clips, start=1):
            clips.append(
                {
                    "number": n,
                    "take_id": fc.clip.take_id,
                    "film_start_s": fc.film_start_ns / NS_PER_S,
                    "film_end_s": fc.film_end_ns / NS_PER_S,
                    "labels": list(fc.clip.labels),
                    "notes": [t.note for t in fc.clip.tags if t.note],
                    "tag_ids": [t.id for t in fc.clip.tags],
                    # where each tag's moment is, in the film
                    "tags_film_s": [
                        (fc.film_start_ns + t.at_ns - fc.start_ns) / NS_PER_S for t in fc.clip.tags
                    ],
                }
            )
    exports = result.exports
    return {
        "visit_id": result.visit_id,
        "inputs": result.inputs,
        "consent": result.consent,
        "film": film.path if film else None,
        "duration_s": film.duration_ns / NS_PER_S if film else 0.0,
        "fps": float(film.fps) if film else None,
        "clips": clips,
        "stills": [
            {
                "tag_id": s.tag.id,
                "number": s.number,
                "label": s.tag.label,
                "note": s.tag.note,
                "path": s.path,
                "film_s": s.film_ns / NS_PER_S if s.film_ns is not None else None,
            }
            for s in result.stills
        ],
        "contact_sheet": result.contact_sheet,
        "exports": (
            {"otio": exports.otio, "edl": exports.edl, "csv": exports.csv, "vtt": exports.vtt}
            if exports
            else {}
        ),
    }


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
