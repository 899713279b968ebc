"""Review: the list of visits (sessions) and, per visit, its rough cut with its moments.

Pages ``/review`` and ``/review/<session_id>``; JSON ``/api/sessions``,
``/api/sessions/<id>`` and ``POST /api/sessions/<id>/recut`` (see web/API.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from flask import Blueprint, abort, current_app, render_template

from kit.daemon.api import Controller
from kit.errors import NotFound, StorageError
from kit.model import Session, Tag, Take
from web.context import ctx, phone
from web.http import ID_PATTERN
from web.views.api import status_json, tag_json
from web.views.media import media_url

bp = Blueprint("review", __name__)


def _session(c: Controller, session_id: str) -> tuple[int, Session]:
    """The session and its number (1 = the first visit), or NotFound."""
    if ID_PATTERN.fullmatch(session_id):
        for n, s in enumerate(c.sessions(), start=1):
            if s.id == session_id:
                return n, s
    raise NotFound(f"no session {session_id!r}")


def _session_json(n: int, s: Session) -> dict[str, Any]:
    return {**dataclasses.asdict(s), "number": n}


def _take_json(t: Take) -> dict[str, Any]:
    return {
        "id": t.id,
        "seq": t.seq,
        "state": t.state.value,
        "first_frame_ns": t.first_frame_ns,
        "end_ns": t.end_ns,
        "duration_s": round(t.duration_ns / 1e9, 3),
        "error": t.error,
    }


def _review_tag_json(tag: Tag, takes: dict[str, Take]) -> dict[str, Any]:
    """A tag plus ``take_s``: how far into its take it is (None if the take has no frames)."""
    take = takes.get(tag.take_id) if tag.take_id else None
    start = take.first_frame_ns if take else None
    return {**tag_json(tag), "take_s": None if start is None else (tag.at_ns - start) / 1e9}


def _read_cut(c: Controller, session_id: str) -> tuple[dict[str, Any] | None, str]:
    """The cut manifest (or None) and, if it could not be read, why."""
    try:
        return c.cut(session_id), ""
    except StorageError as exc:  # a damaged manifest: say so, keep the page working
        current_app.logger.warning("the cut of %s cannot be read: %s", session_id, exc)
        return None, str(exc)


def _cut_json(c: Controller, session_id: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with the URLs the page loads its film, stills and chapters from.

    Every URL carries ``?v=`` (the film's modification time, else a hash of the
    manifest), so a re-cut's files are fetched afresh, never taken from a cache.
    """
    version = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]
    film_url = media_url(session_id, manifest.get("film"))
    if film_url is not None:
        try:
            name = film_url.removeprefix(f"/media/{session_id}/")
            stat = c.cut_file(session_id, name).stat()
            version = f"{stat.st_mtime_ns:x}-{stat.st_size:x}"
        except (NotFound, OSError):
            film_url = None  # named but gone (e.g. being replaced): the page waits for the cut

    def url(rel: Any) -> str | None:
        found = media_url(session_id, rel if isinstance(rel, str) else None)
        return None if found is None else f"{found}?v={version}"

    exports = manifest.get("exports") or {}
    return {
        **manifest,
        "film_url": None if film_url is None else f"{film_url}?v={version}",
        "stills": [{**s, "url": url(s.get("path"))} for s in manifest.get("stills", [])],
        "contact_sheet_url": url(manifest.get("contact_sheet")),
        "chapters_url": url(exports.get("vtt")),
        "version": version,
    }


def _summary(c: Controller, n: int, s: Session) -> dict[str, Any]:
    takes = c.takes(s.id)
    manifest, error = _read_cut(c, s.id)
    cut = (
        {
            "duration_s": manifest.get("duration_s", 0.0),
            "clips": len(manifest.get("clips", [])),
            "stills": len(manifest.get("stills", [])),
        }
        if manifest
        else None
    )
    return {
        **_session_json(n, s),
        "takes": [_take_json(t) for t in takes],
        "tags": len(c.tags(s.id)),
        "cut": cut,
        "cut_error": error,
    }


@bp.get("/api/sessions")
def sessions() -> dict[str, Any]:
    """Every session, newest first, with its takes, its tag count and its cut (if any)."""
    c = ctx().controller
    listed = [_summary(c, n, s) for n, s in enumerate(c.sessions(), start=1)]
    return {"sessions": listed[::-1]}


@bp.get("/api/sessions/<session_id>")
def session(session_id: str) -> dict[str, Any]:
    """Everything the review page shows for one session."""
    c = ctx().controller
    # Read the event id first: any change after this snapshot arrives as an event.
    event_id = c.events.last_id
    n, s = _session(c, session_id)
    takes = c.takes(s.id)
    by_id = {t.id: t for t in takes}
    manifest, error = _read_cut(c, s.id)
    return {
        "event_id": event_id,
        "session": _session_json(n, s),
        "takes": [_take_json(t) for t in takes],
        "tags": [_review_tag_json(t, by_id) for t in c.tags(s.id)],
        "cut": None if manifest is None else _cut_json(c, s.id, manifest),
        "cut_error": error,
        "labels": c.labels(),
        "status": status_json(c.status()),
    }


@bp.post("/api/sessions/<session_id>/recut")
def recut(session_id: str) -> tuple[dict[str, Any], int]:
    """Make the session's rough cut again (queued; progress and the result arrive as events)."""
    c = ctx().controller
    _, s = _session(c, session_id)
    c.recut(s.id)
    return {"session_id": s.id, "status": status_json(c.status())}, 202


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


@bp.get("/review")
def review_list() -> str:
    return _page("sessions.html")


@bp.get("/review/<session_id>")
def review(session_id: str) -> str:
    try:
        n, s = _session(ctx().controller, session_id)
    except NotFound:
        abort(404)
    return _page("review.html", session=s, number=n)
