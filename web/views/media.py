"""The rough cut's files for the review page: the film, its stills, the chapters; and the
finished takes, whole, for the review's whole-take view.

Served inline, never as a download: typical VIG consent terms allow no copies
without written consent. ``Content-Disposition: inline``, ``no-store`` and the
page's ``controlsList="nodownload"`` keep the browser from offering to save
them; none of this stops a determined person with a paired phone (see
web/API.md), it only keeps the easy path from making a copy.

Range requests are answered (206) so the phone's ``<video>`` can seek; the
film is decrypted as it is read, only the asked-for range (kit/crypto).
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, request
from werkzeug.wsgi import wrap_file

from kit.audit.chain import AuditKind
from kit.daemon.api import MediaFile
from kit.errors import NotFound
from kit.store import layout
from kit.visits.moments import moments_of
from web.context import ctx, phone
from web.http import ID_PATTERN

bp = Blueprint("media", __name__)

# What the review page shows, by extension; anything else in the cut directory
# (the OTIO, EDL and CSV exports) is not served to phones.
MIMETYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".vtt": "text/vtt"}
# One or two plain path segments ("rough-cut.mp4", "stills/01-ab12.jpg"): no dot
# first (no "..", no hidden files), no backslash, no empty segment.
_NAME = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _from_the_start(range_header: str | None) -> bool:
    return range_header is None or range_header.replace(" ", "").startswith("bytes=0-")


def media_url(visit_id: str, rel: str | None) -> str | None:
    """The URL of a cut output named by its data-directory path (as the manifest names it)."""
    name = layout.in_cut_dir(visit_id, rel) if rel else None
    if name is None:
        return None
    return f"/media/{visit_id}/{name}" if servable(name) else None


def servable(name: str) -> bool:
    """Whether ``name`` looks like a cut output the page may show (no path tricks)."""
    dot = name.rfind(".")
    return bool(_NAME.fullmatch(name)) and dot > 0 and name[dot:] in MIMETYPES


@bp.get("/media/<visit_id>/takes/<take_id>.mp4")
def take_file(visit_id: str, take_id: str) -> Response:
    """A finished take's whole film (the review's whole-take view), inline, with Range
    support; as the rough cut: readable visits only, with the family's consent to review."""
    if not ID_PATTERN.fullmatch(visit_id) or not ID_PATTERN.fullmatch(take_id):
        raise NotFound(f"no take {take_id!r}")
    opened = moments_of(ctx().visits).take_file(visit_id, take_id)
    if _from_the_start(request.headers.get("Range")):
        details = {"visit_id": visit_id, "take_id": take_id, "phone_id": phone().id}
        ctx().audit.record(AuditKind.FILM_VIEWED, details)
    return _inline(opened, "video/mp4")


@bp.get("/media/<visit_id>/<path:name>")
def cut_file(visit_id: str, name: str) -> Response:
    """One file of the visit's cut directory, inline, with Range support."""
    if not ID_PATTERN.fullmatch(visit_id) or not servable(name):
        raise NotFound(f"no cut file {name!r}")
    opened = ctx().visits.cut_file(visit_id, name)
    if name == layout.FILM and _from_the_start(request.headers.get("Range")):
        # A player asks for the start once per viewing (then ranges further on).
        ctx().audit.record(AuditKind.FILM_VIEWED, {"visit_id": visit_id, "phone_id": phone().id})
    return _inline(opened, MIMETYPES[name[name.rfind(".") :]])


def _inline(opened: MediaFile, mimetype: str) -> Response:
    """``opened`` as an inline answer that no cache keeps, with Range and If-None-Match."""
    response = Response(
        wrap_file(request.environ, opened.file),
        mimetype=mimetype,
        direct_passthrough=True,
    )
    response.content_length = opened.size  # a range (206) sets its own
    response.set_etag(opened.etag)
    response.last_modified = opened.modified  # type: ignore[assignment]
    # Range -> 206, If-None-Match -> 304; the file is closed when the response is.
    try:
        response.make_conditional(request, accept_ranges=True, complete_length=opened.size)
    except BaseException:  # e.g. 416: no response will close the file
        opened.file.close()
        raise
    response.headers["Content-Disposition"] = "inline"
    # Not kept in the browser's cache: no copy of the film is left on the phone.
    response.headers["Cache-Control"] = "no-store, private"
    return response
