"""Cut a visit: plan, render, stills, contact sheet and exports, in one call.

This is what the daemon (after a take) and ``kit cut`` call. Planning and
the exports are cheap and run here; rendering and the stills decode and
encode media, so they run in a low-priority child process (see
:mod:`kit.cutting.child`) unless ``in_child=False`` (tests, benchmarks).

Outputs, below the visit's directory::

    cut/rough-cut.mp4      the film: the tagged moments, a chapter each
    cut/stills/NN-<tag>.jpg one full-resolution still per tag, in film order, with EXIF
                           (the tag's wall-clock time, a caption: label and times)
    cut/contact-sheet.jpg  every still with its label and times (never the note)
    cut/rough-cut.otio     OpenTimelineIO timeline of the takes, a marker per tag
    cut/rough-cut.edl      the same as a CMX 3600 EDL
    cut/tags.csv           every tag of the visit
    cut/chapters.vtt       WebVTT chapters of the film
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kit.cutting import CutError
from kit.cutting.child import run_in_child
from kit.cutting.exports import ExportPaths, TakeInfo, take_infos, write_exports
from kit.cutting.inputs import cut_title
from kit.cutting.manifest import write_manifest
from kit.cutting.moments import FilmPlan, fingerprint, plan_film
from kit.cutting.plan import CutPlan, CutRules, TakeSpan
from kit.cutting.render import Film, Source, render_film
from kit.cutting.stills import Still, contact_sheet, grab_stills
from kit.model import Take, TakeState
from kit.store import layout
from kit.store.files import FileLayer
from kit.store.store import Store

log = logging.getLogger(__name__)

Progress = Callable[[float], None]

# Shares of the progress bar, from `kit bench cut` (60 minutes of 1080p, 10 tags)
# on this project's CI machine: film 0.7-0.9 s, stills 0.3-0.65 s, sheet ~0.1 s.
_FILM_SHARE = 0.65
_STILLS_SHARE = 0.28


@dataclass(frozen=True)
class CutJob:
    """Everything the child needs to make the media (plain, picklable data)."""

    root: str
    visit_id: str
    plan: CutPlan
    sources: tuple[Source, ...]
    title: str
    aac_bitrate: int
    # The visit's data key, for the child (pickled over its pipe, never on disk).
    key: bytes | None = field(default=None, repr=False)
    # Take id -> the wall-clock time (UTC) of its first frame, where known (the stills' EXIF).
    walls: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True)
class CutMedia:
    """What the child made, and how long each part took (seconds, wall)."""

    film: Film
    stills: tuple[Still, ...]
    contact_sheet: str
    timings: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class CutResult:
    """A finished cut: the plan and everything made from it (paths relative to the data dir)."""

    visit_id: str
    inputs: str  # the fingerprint of what it was made from (kit.cutting.inputs)
    plan: CutPlan
    film: Film | None  # None when there was nothing to cut
    stills: tuple[Still, ...]
    contact_sheet: str | None
    exports: ExportPaths | None
    peak_rss_bytes: int  # of the process that made the media (0 if none was made)
    timings: tuple[tuple[str, float], ...] = ()  # (part, wall seconds): film, stills, ...
    consent: dict[str, Any] | None = None  # the family's consent, carried by every export
    title: str = ""  # the film's title (case reference and day)
    case_ref: str = ""
    started_wall: str = ""  # the visit's start by the wall clock ("" when the clock was unset)
    takes: dict[str, TakeInfo] = field(default_factory=dict)  # the takes it was cut from
    moments: FilmPlan | None = None  # every planned moment, as the guider edited them
    firsts: dict[str, int] = field(default_factory=dict)  # take id -> its first frame's instant


def make_media(job: CutJob, *, progress: Progress | None = None) -> CutMedia:
    """Render the film, the stills and the contact sheet (runs in the child)."""
    report = progress or (lambda _: None)
    key = job.key
    files = FileLayer(
        Path(job.root), keys=lambda visit_id: key if visit_id == job.visit_id else None
    )
    started = time.perf_counter()
    film = render_film(
        files,
        job.plan,
        {s.take_id: s for s in job.sources},
        layout.in_cut(job.visit_id, layout.FILM),
        title=job.title,
        aac_bitrate=job.aac_bitrate,
        progress=lambda f: report(_FILM_SHARE * f),
    )
    film_done = time.perf_counter()
    _release_memory()
    stills = grab_stills(
        files,
        film.clips,
        layout.in_cut(job.visit_id, layout.STILLS),
        walls=dict(job.walls),
        progress=lambda f: report(_FILM_SHARE + _STILLS_SHARE * f),
    )
    stills_done = time.perf_counter()
    sheet = contact_sheet(
        files, stills, layout.in_cut(job.visit_id, layout.CONTACT_SHEET), title=job.title
    )
    timings = (
        ("film", film_done - started),
        ("stills", stills_done - film_done),
        ("contact sheet", time.perf_counter() - stills_done),
    )
    return CutMedia(film, tuple(stills), sheet, timings)


def _release_memory() -> None:
    """Hand the film's freed buffers back to the system before the stills decode.

    glibc keeps freed memory in its arenas (the audio thread has one of its own),
    so without this the stills would stack their ~80 MB on the film's ~60 MB
    (measured in-process on a 60-minute 1080p take: peak RSS 139 MB instead of 151 MB).
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim with
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _ready_takes(store: Store, visit_id: str) -> list[Take]:
    takes = []
    for take in store.db.takes(visit_id):
        if take.state != TakeState.READY or take.first_frame_ns is None or take.end_ns is None:
            continue
        if not store.files.exists(layout.take_mp4(layout.take_dir(visit_id, take.id))):
            log.warning("take %s is ready but its MP4 is missing; leaving it out", take.id)
            continue
        takes.append(take)
    return takes


def _title(store: Store, visit_id: str) -> str:
    return cut_title(store.db.visit(visit_id))


def _remove_stale(files: FileLayer, directory: str, keep: Sequence[str]) -> None:
    """Delete files in ``directory`` a previous cut made that this one did not."""
    full = files.path(directory)
    if not full.is_dir():
        return
    kept = {files.path(rel) for rel in keep}
    for entry in sorted(full.iterdir()):
        if entry.is_file() and not entry.name.startswith(".") and entry not in kept:
            files.remove(layout.entry(directory, entry.name))


def cut_visit(
    store: Store,
    visit_id: str,
    rules: CutRules,
    progress: Progress | None = None,
    *,
    in_child: bool = True,
    aac_bitrate: int = 128_000,
    cancel: threading.Event | None = None,
) -> CutResult:
    """Make the rough cut of ``visit_id`` from its ready takes, its tags and the guider's
    edits of its moments (trims, order, moments left out).

    Raises :class:`~kit.errors.NotFound` for an unknown visit and
    :class:`~kit.cutting.CutError` when the media cannot be made. A visit
    without tags (or without a ready take, or with every moment left out) has
    nothing to cut: the result has no film, and the outputs of an earlier cut
    are removed.
    """
    report = progress or (lambda _: None)
    title = _title(store, visit_id)
    takes = _ready_takes(store, visit_id)
    tags = store.db.tags_for_visit(visit_id)
    edits = store.db.moment_edits(visit_id)
    inputs = fingerprint(title, store.db.takes(visit_id), tags, rules, edits)
    moments = plan_film([TakeSpan.of(t) for t in takes], tags, edits, rules)
    plan = moments.plan
    firsts = {t.id: t.first_frame_ns or 0 for t in takes}
    for tag in plan.skipped:
        log.info("tag %s is outside every take; it has no clip", tag.id)
    files = store.files
    if not plan.clips:
        _remove_stale(files, layout.cut_dir(visit_id), [])
        _remove_stale(files, layout.in_cut(visit_id, layout.STILLS), [])
        empty = CutResult(
            visit_id, inputs, plan, None, (), None, None, 0, moments=moments, firsts=firsts
        )
        write_manifest(files, empty)  # "nothing to cut" is a result too: it is up to date
        report(1.0)
        return empty
    sources = tuple(
        Source(t.id, t.seq, layout.take_mp4(layout.take_dir(visit_id, t.id)), t.first_frame_ns or 0)
        for t in takes
    )
    key = files.key_for(layout.cut_dir(visit_id))
    visit = store.db.visit(visit_id)
    infos = take_infos(visit, takes)
    walls = tuple((k, v.started) for k, v in infos.items() if v.started is not None)
    job = CutJob(str(files.root), visit_id, plan, sources, title, aac_bitrate, key, walls)
    started = time.perf_counter()
    if in_child:
        run = run_in_child(make_media, job, progress=report, cancel=cancel)
        media, peak = run.value, run.peak_rss_bytes
    else:
        media = make_media(job, progress=report)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    media_s = time.perf_counter() - started
    if not isinstance(media, CutMedia):  # pragma: no cover - a child protocol error
        raise CutError("the cutting process returned something unexpected")
    consent = visit.consent.as_json() if visit.consent else None
    exports = write_exports(
        files,
        media.film,
        tags,
        layout.cut_dir(visit_id),
        title=title,
        takes=infos,
        consent=consent,
        stills={s.tag.id: s.path for s in media.stills},
    )
    _remove_stale(files, layout.in_cut(visit_id, layout.STILLS), [s.path for s in media.stills])
    exports_s = time.perf_counter() - started - media_s
    made = sum(t for _, t in media.timings)
    timings = (
        ("child start and finish", max(0.0, media_s - made)) if in_child else ("", 0.0),
        *media.timings,
        ("exports", exports_s),
    )
    result = CutResult(
        visit_id=visit_id,
        inputs=inputs,
        plan=plan,
        film=media.film,
        stills=media.stills,
        contact_sheet=media.contact_sheet,
        exports=exports,
        peak_rss_bytes=peak,
        timings=tuple(t for t in timings if t[0]),
        consent=consent,
        title=title,
        case_ref=visit.case_ref,
        started_wall=visit.started_wall,
        takes=infos,
        moments=moments,
        firsts=firsts,
    )
    write_manifest(files, result)  # last: whoever finds it finds everything it names
    report(1.0)
    return result
