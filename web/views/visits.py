"""Visits: the list, one visit's review page, and their JSON (see web/API.md).

Pages ``/visits`` and ``/visits/<visit_id>``; JSON ``GET/POST /api/visits``,
``GET/PATCH /api/visits/<id>``, ``POST /api/visits/<id>/end`` and
``POST /api/visits/<id>/recut``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, abort, current_app, render_template

from kit.daemon.api import CutManifest, Status, VisitLibrary
from kit.errors import CorruptMedia, NotAllowed, NotFound, StorageError
from kit.model import Consent, Purpose, Tag, Take, Visit
from kit.store import layout
from kit.visits.rules import MAX_CASE_REF_LEN
from web.context import ctx, phone
from web.http import ID_PATTERN, ApiError, json_body, only_keys, text
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
        "cut": None if manifest is None else _cut_json(c.visits, v, manifest),
        "cut_error": error,
        "labels": c.visits.labels(),
        "status": status.as_json(),
    }


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
