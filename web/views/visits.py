"""Visits: the list, one visit's review page, and their JSON (see web/API.md).

Pages ``/visits`` and ``/visits/<visit_id>``; JSON ``GET/POST /api/visits``,
``GET/PATCH /api/visits/<id>``, ``POST /api/visits/<id>/end``,
``POST /api/visits/<id>/recut``; the film's moments: ``PATCH
/api/visits/<id>/moments/<moment_id>`` (trim, drop), ``PUT
/api/visits/<id>/moments/order``; and ``POST /api/visits/<id>/tags`` (a tag
placed after the fact in a finished take).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, abort, current_app, render_template

from kit.clock import NS_PER_S
from kit.daemon.api import CutManifest, Status, VisitLibrary
from kit.errors import CorruptMedia, NotAllowed, NotFound, Sealed, StorageError
from kit.model import Consent, Purpose, Tag, Take, Visit
from kit.store import layout
from kit.visits.moments import MomentChange, Moments, MomentView, moments_of
from kit.visits.rules import MAX_CASE_REF_LEN, MAX_LABEL_LEN, MAX_NOTE_LEN
from web.context import ctx, phone
from web.http import ID_PATTERN, ApiError, ident, json_body, only_keys, text
from web.views.media import media_url

bp = Blueprint("visits", __name__)


def visit_json(visit: Visit, status: Status, takes: list[Take] | None = None) -> dict[str, Any]:
    """A visit, with its number of takes and, while it is open, how long it has been going.

    ``elapsed_s`` is None for an ended visit and once the kit has rebooted
    since the visit started (its clock began again): the phone then shows the
    start time instead.
    """
    listed = ctx().visits.takes(visit.id) if takes is None else takes
    elapsed = None
    if visit.is_open and visit.boot_id == status.boot_id and status.now_ns >= visit.started_ns:
        elapsed = round((status.now_ns - visit.started_ns) / 1e9, 1)
    return {**visit.as_json(), "takes": len(listed), "elapsed_s": elapsed}


def _visit(library: VisitLibrary, visit_id: str) -> Visit:
    if not ID_PATTERN.fullmatch(visit_id):
        raise NotFound(f"no visit {visit_id!r}")
    return library.visit(visit_id)


def _review_tag_json(tag: Tag, takes: dict[str, Take]) -> dict[str, Any]:
    """A tag plus ``take_s``: how far into its take it is (None if the take has no frames)."""
    take = takes.get(tag.take_id) if tag.take_id else None
    start = take.first_frame_ns if take else None
    return {**tag.as_json(), "take_s": None if start is None else (tag.at_ns - start) / 1e9}


def _read_cut(library: VisitLibrary, visit_id: str) -> tuple[CutManifest | None, str]:
    """The cut manifest (or None) and, if it could not be read, why."""
    try:
        return library.cut(visit_id), ""
    except StorageError as exc:  # a damaged manifest: say so, keep the page working
        current_app.logger.warning("the cut of %s cannot be read: %s", visit_id, exc)
        return None, str(exc)
    except CorruptMedia as exc:  # the same, when its encryption does not check out
        current_app.logger.warning("the cut of %s cannot be read: %s", visit_id, exc)
        return None, f"the cut manifest of {visit_id} is damaged: {exc}"


def may_review(visit: Visit) -> bool:
    """Whether the family agreed to the shared review: the film (and its stills) on a phone."""
    return visit.consent is not None and visit.consent.allows(Purpose.REVIEW)


def _cut_json(library: VisitLibrary, visit: Visit, manifest: CutManifest) -> dict[str, Any]:
    """The manifest with the URLs the page loads its film, stills and chapters from.

    Every URL carries ``?v=`` (the film's modification time, else a hash of the
    manifest), so a re-cut's files are fetched afresh, never taken from a cache.
    """
    visit_id = visit.id
    version = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]
    shown = may_review(visit)
    film_url = media_url(visit_id, manifest.get("film")) if shown else None
    if film_url is not None:
        try:
            name = layout.in_cut_dir(visit_id, manifest["film"]) or ""
            opened = library.cut_file(visit_id, name)
            opened.file.close()
            version = opened.etag
        except (NotFound, OSError):
            film_url = None  # named but gone (e.g. being replaced): the page waits for the cut
        except CorruptMedia as exc:  # damaged: no film, rather than no page
            current_app.logger.warning("the film of %s cannot be read: %s", visit_id, exc)
            film_url = None
        except NotAllowed:
            # The family did not agree to a review: nothing of the film on the phone (its
            # stills, contact sheet and chapters are refused as the film is).
            film_url, shown = None, False

    def url(rel: Any) -> str | None:
        found = media_url(visit_id, rel if isinstance(rel, str) else None)
        return None if found is None or not shown else f"{found}?v={version}"

    exports = manifest.get("exports") or {}
    return {
        **manifest,
        "film_url": None if film_url is None else f"{film_url}?v={version}",
        "stills": [{**s, "url": url(s.get("path"))} for s in manifest.get("stills", [])],
        "contact_sheet_url": url(manifest.get("contact_sheet")),
        "chapters_url": url(exports.get("vtt")),
        "version": version,
    }


def _summary(library: VisitLibrary, n: int, visit: Visit, status: Status) -> dict[str, Any]:
    takes = library.takes(visit.id)
    manifest, error = _read_cut(library, visit.id)
    cut = (
        {
            "duration_s": manifest.get("duration_s", 0.0),
            "clips": len(manifest.get("clips", [])),
            "stills": len(manifest.get("stills", [])),
            "up_to_date": bool(manifest.get("up_to_date")),
        }
        if manifest
        else None
    )
    return {
        **visit_json(visit, status, takes),
        "number": n,
        "take_list": [t.as_json() for t in takes],
        "tags": len(library.tags(visit.id)),
        "cut": cut,
        "cut_error": error,
    }


def _case_ref(body: dict[str, Any], *, required: bool) -> str:
    return text(body, "case_ref", max_len=MAX_CASE_REF_LEN, required=required)


@bp.get("/api/visits")
def visits() -> dict[str, Any]:
    """Every visit, newest first, with its takes, its tag count and its cut (if any)."""
    c = ctx()
    status = c.recording.status()
    listed = [_summary(c.visits, n, v, status) for n, v in enumerate(c.visits.visits(), start=1)]
    return {"visits": listed[::-1]}


@bp.get("/api/consent")
def consent_form() -> dict[str, Any]:
    """What the consent form offers (roles, purposes, the suggested erase-by date)."""
    return ctx().visits.consent_form()


def _consent(body: dict[str, Any]) -> Consent:
    """The consent the form sent; a 400 saying what is wrong with it."""
    raw = body.get("consent")
    if not isinstance(raw, dict):
        raise ApiError(
            400,
            "a visit needs the family's consent: 'consent' with 'given_by', 'purposes' "
            "and 'erase_by'",
        )
    only_keys(raw, {"given_by", "purposes", "erase_by"})
    purposes = raw.get("purposes")
    if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
        raise ApiError(400, "'purposes' must be a list of purposes (e.g. [\"review\"])")
    given_by = text(raw, "given_by", max_len=40, required=True)
    erase_by = text(raw, "erase_by", max_len=10, required=True)
    try:
        return ctx().visits.check_consent(given_by, purposes[:10], erase_by)
    except ValueError as exc:  # the kit's rules: a 400 with its reason, never a 500
        raise ApiError(400, str(exc)) from None


@bp.post("/api/visits")
def start_visit() -> tuple[dict[str, Any], int]:
    """Open a visit with the family's consent (409 if one is open)."""
    body = json_body()
    only_keys(body, {"case_ref", "consent"})
    c = ctx()
    case_ref = _case_ref(body, required=True)
    visit = c.visits.start_visit(case_ref, _consent(body))
    return {"visit": visit_json(visit, c.recording.status())}, 201


@bp.get("/api/visits/<visit_id>")
def visit(visit_id: str) -> dict[str, Any]:
    """Everything the review page shows for one visit."""
    c = ctx()
    # Read the event id first: any change after this snapshot arrives as an event.
    event_id = c.recording.events.last_id
    v = _visit(c.visits, visit_id)
    number = [x.id for x in c.visits.visits()].index(v.id) + 1
    takes = c.visits.takes(v.id)
    by_id = {t.id: t for t in takes}
    manifest, error = _read_cut(c.visits, v.id)
    status = c.recording.status()
    return {
        "event_id": event_id,
        "visit": {**visit_json(v, status, takes), "number": number},
        "takes": [t.as_json() for t in takes],
        "tags": [_review_tag_json(t, by_id) for t in c.visits.tags(v.id)],
        "moments": _moments_json(_moments().moments(v.id)),
        "cut": None if manifest is None else _cut_json(c.visits, v, manifest),
        "cut_error": error,
        "labels": c.visits.labels(),
        "status": status.as_json(),
    }


def _moments() -> Moments:
    return moments_of(ctx().visits)


def _moments_json(moments: list[MomentView]) -> list[dict[str, Any]]:
    return [m.as_json() for m in moments]


# Past the end of any take; and seconds beyond it may not even have nanoseconds a float
# can hold (round(1e300 * NS_PER_S) raises OverflowError: it was a 500).
_LONGEST_TAKE_S = 7 * 24 * 3600.0


def _take_seconds(body: dict[str, Any], name: str) -> float | None:
    """A time in a take (seconds, a finite number >= 0), or None (back to the planner's)."""
    value = body[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, f"{name!r} must be a number of seconds into the take, or null")
    if value < 0 or value > _LONGEST_TAKE_S:
        raise ApiError(400, "a moment cannot start or end outside its take")
    return float(value)


def _take_start_ns(visit_id: str, take_id: str) -> int:
    """The instant of the take's first frame (404 for a take not of this visit)."""
    take = next((t for t in ctx().visits.takes(visit_id) if t.id == take_id), None)
    if take is None:
        raise NotFound(f"no take {take_id!r} in visit {visit_id}")
    if take.first_frame_ns is None:
        raise ApiError(409, "this take has no pictures yet")
    return take.first_frame_ns


@bp.patch("/api/visits/<visit_id>/moments/<moment_id>")
def edit_moment(visit_id: str, moment_id: str) -> dict[str, Any]:
    """Trim a moment (``start_s``, ``end_s``: seconds into its take; null puts the planner's
    back) or drop it from the film (``dropped``); the film is made again."""
    body = json_body()
    only_keys(body, {"start_s", "end_s", "dropped"})
    if not body:
        raise ApiError(400, "send 'start_s', 'end_s' and/or 'dropped'")
    v = _visit(ctx().visits, visit_id)
    ident(moment_id, "a moment id")
    if not v.readable:
        raise Sealed("this visit is sealed: only the organisation's key opens it now")
    library = _moments()
    moment = next((m for m in library.moments(v.id) if m.moment_id == moment_id), None)
    if moment is None:
        raise NotFound(f"no moment {moment_id!r} in visit {v.id}")
    change: MomentChange = {}
    for name, key in (("start_s", "start_ns"), ("end_s", "end_ns")):
        if name in body:
            seconds = _take_seconds(body, name)
            at = None
            if seconds is not None:
                at = _take_start_ns(v.id, moment.take_id) + round(seconds * NS_PER_S)
            change[key] = at  # type: ignore[literal-required]
    if "dropped" in body:
        if not isinstance(body["dropped"], bool):
            raise ApiError(400, "'dropped' must be true or false")
        change["dropped"] = body["dropped"]
    with refused_values():
        return {"moments": _moments_json(library.edit_moment(v.id, moment_id, **change))}


@bp.put("/api/visits/<visit_id>/moments/order")
def order_moments(visit_id: str) -> dict[str, Any]:
    """Put the film's moments in this order (every moment not dropped, once)."""
    body = json_body()
    only_keys(body, {"order"})
    order = body.get("order")
    if not isinstance(order, list) or not all(isinstance(m, str) for m in order):
        raise ApiError(400, "'order' must be a list of moment ids")
    v = _visit(ctx().visits, visit_id)
    with refused_values():
        return {"moments": _moments_json(_moments().order_moments(v.id, order))}


@bp.post("/api/visits/<visit_id>/tags")
def add_tag_after(visit_id: str) -> tuple[dict[str, Any], int]:
    """A tag placed after the fact at a frame of a finished take (the whole-take view)."""
    body = json_body()
    only_keys(body, {"id", "take_id", "take_s", "label", "note"})
    tag_id = ident(body.get("id"), "'id'")
    take_id = ident(body.get("take_id"), "'take_id'")
    label = text(body, "label", max_len=MAX_LABEL_LEN)
    note = text(body, "note", max_len=MAX_NOTE_LEN, required=False, single_line=False)
    take_s = body.get("take_s")
    if isinstance(take_s, bool) or not isinstance(take_s, int | float):
        raise ApiError(400, "'take_s' must be a number of seconds into the take")
    if not math.isfinite(take_s) or not 0 <= take_s <= _LONGEST_TAKE_S:
        raise ApiError(400, "a tag must lie inside its take")
    v = _visit(ctx().visits, visit_id)
    at = _take_start_ns(v.id, take_id) + round(take_s * NS_PER_S)
    with refused_values():
        tag, new = _moments().add_tag_at(v.id, take_id, tag_id, at, label, note, phone().name)
    takes = {t.id: t for t in ctx().visits.takes(v.id)}
    return {"tag": _review_tag_json(tag, takes), "new": new}, 201 if new else 200


@contextmanager
def refused_values() -> Iterator[None]:
    """A value the kit refuses (``ValueError``) is the phone's mistake: a 400."""
    try:
        yield
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc


@bp.patch("/api/visits/<visit_id>")
def rename_visit(visit_id: str) -> dict[str, Any]:
    """Change the visit's case reference."""
    body = json_body()
    only_keys(body, {"case_ref"})
    c = ctx()
    v = c.visits.rename_visit(_visit(c.visits, visit_id).id, _case_ref(body, required=True))
    return {"visit": visit_json(v, c.recording.status())}


@bp.post("/api/visits/<visit_id>/end")
def end_visit(visit_id: str) -> dict[str, Any]:
    """End the visit (409 while a take records or if it has ended)."""
    c = ctx()
    v = c.visits.end_visit(_visit(c.visits, visit_id).id)
    return {"visit": visit_json(v, c.recording.status())}


@bp.post("/api/visits/<visit_id>/recut")
def recut(visit_id: str) -> tuple[dict[str, Any], int]:
    """Make the visit's rough cut again (queued; progress and the result arrive as events)."""
    c = ctx()
    v = _visit(c.visits, visit_id)
    c.visits.recut(v.id)
    return {"visit_id": v.id, "status": c.recording.status().as_json()}, 202


def _page(template: str, **values: Any) -> str:
    me = phone()
    return render_template(
        template,
        csrf=me.csrf,
        me=me,
        undo_s=current_app.config["KIT_UNDO_S"],
        heartbeat_s=current_app.config["KIT_HEARTBEAT_S"],
        **values,
    )


@bp.get("/visits")
def visits_page() -> str:
    return _page("visits.html")


@bp.get("/visits/<visit_id>")
def review(visit_id: str) -> str:
    library = ctx().visits
    try:
        v = _visit(library, visit_id)
    except NotFound:
        abort(404)
    number = [x.id for x in library.visits()].index(v.id) + 1
    return _page("review.html", visit=v, number=number)
