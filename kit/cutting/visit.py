"""Cut a visit: plan, render, stills, contact sheet and exports, in one call.

This is what the daemon (after a take) and ``kit cut`` call. Planning and
the exports are cheap and run here; the film, the stills and the contact
sheet decode and encode media, so they are made (:mod:`kit.cutting.media`) in
a low-priority child process (:mod:`kit.cutting.child`) unless
``in_child=False`` (tests, benchmarks).

Outputs, below the visit's directory::

    cut/rough-cut.mp4      the film: the tagged moments, a chapter each
    cut/stills/NN-<tag>.jpg one full-resolution still per tag, in film order, with EXIF
                           (the tag's wall-clock time, a caption: label and times)
    cut/contact-sheet-NN.jpg the contact sheet, in pages of up to 18 stills: each still
                           with its label and times (never the note)
    cut/rough-cut.otio     OpenTimelineIO timeline of the takes, a marker per tag
    cut/rough-cut.edl      the same as a CMX 3600 EDL
    cut/tags.csv           every tag of the visit
    cut/chapters.vtt       WebVTT chapters of the film
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kit.cutting import CutError
from kit.cutting.child import run_in_child
from kit.cutting.exports import ExportPaths, TakeInfo, take_infos, write_exports
from kit.cutting.inputs import cut_title
from kit.cutting.manifest import write_manifest
from kit.cutting.media import CutJob, CutMedia, make_media
from kit.cutting.moments import FilmPlan, fingerprint, plan_film
from kit.cutting.plan import CutPlan, CutRules, TakeSpan
from kit.cutting.render import Film, Source
from kit.cutting.sheet import is_page_name
from kit.cutting.stills import PassStats, Still
from kit.model import Take, TakeState
from kit.store import layout
from kit.store.files import FileLayer
from kit.store.store import Store

log = logging.getLogger(__name__)

Progress = Callable[[float], None]


@dataclass(frozen=True)
class CutResult:
    """A finished cut: the plan and everything made from it (paths relative to the data dir)."""

    visit_id: str
    inputs: str  # the fingerprint of what it was made from (kit.cutting.inputs)
    plan: CutPlan
    film: Film | None  # None when there was nothing to cut
    stills: tuple[Still, ...]
    contact_sheet: str | None  # its first page (the only one, up to 18 stills)
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
    contact_sheets: tuple[str, ...] = ()  # every page of the contact sheet, in order
    stills_pass: PassStats = field(default_factory=PassStats)  # what taking the stills took


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


def _remove_stale(
    files: FileLayer,
    directory: str,
    keep: Sequence[str],
    only: Callable[[str], bool] = lambda _name: True,
) -> None:
    """Delete files in ``directory`` (those whose name passes ``only``) a previous cut
    made that this one did not."""
    full = files.path(directory)
    if not full.is_dir():
        return
    kept = {files.path(rel) for rel in keep}
    for entry in sorted(full.iterdir()):
        stale = entry.is_file() and not entry.name.startswith(".") and entry not in kept
        if stale and only(entry.name):
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
    # A cut with fewer pages than the last (or the single sheet of a cut made before pages).
    _remove_stale(files, layout.cut_dir(visit_id), media.contact_sheets, is_page_name)
    exports_s = time.perf_counter() - started - media_s
    made = media.wall_s
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
        contact_sheet=media.contact_sheets[0],
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
        contact_sheets=media.contact_sheets,
        stills_pass=media.stills_pass,
    )
    write_manifest(files, result)  # last: whoever finds it finds everything it names
    report(1.0)
    return result
