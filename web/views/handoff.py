"""Taking sealed visits off the kit: the hand-off sheet's JSON, copies to a USB stick, and
the bundle as one ``.tar`` for a paired laptop or phone (see web/API.md, "Hand-off").

``GET /api/handoff``, ``POST /api/visits/<id>/export`` and
``GET /api/visits/<id>/bundle.tar``. The download answers Range requests
(206, 416, ``If-Range``) from :class:`kit.handoff.tarview.TarView`, which
reads only the asked-for bytes and gives the same bytes for the same visit
after a restart: a browser's download manager resumes a dropped download.
Only paired clients get here (the app's pairing gate); the files are the
sealed visit's, encrypted for the organisation, so the download is for
carrying, not for viewing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request

from kit.audit.chain import AuditKind
from kit.errors import NotFound
from kit.handoff.bundle import MANIFEST, Bundle
from kit.handoff.jobs import Exports
from kit.handoff.tarview import TarView
from kit.model import Visit
from kit.store import layout
from web.context import ctx, phone
from web.http import ID_PATTERN, ApiError, json_body, only_keys, text

bp = Blueprint("handoff", __name__)

EXTENSION = "kit.exports"  # app.extensions key of the kit's Exports (or None)
MAX_STICK_ID = 200


def _exports() -> Exports:
    exports: Exports | None = current_app.extensions.get(EXTENSION)
    if exports is None:
        raise ApiError(503, "this kit cannot hand visits off (no hand-off configured)")
    return exports


def _visit_id(visit_id: str) -> str:
    if not ID_PATTERN.fullmatch(visit_id):
        raise NotFound(f"no visit {visit_id!r}")
    return visit_id


def bundle_url(visit_id: str) -> str:
    return f"/api/visits/{visit_id}/bundle.tar"


def _on_card_bytes(exports: Exports, visit_id: str) -> int:
    """What the visit takes on the card: about the size of its bundle."""
    folder = exports.handoff.data_dir / layout.visit_dir(visit_id)
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:  # erased meanwhile
            continue
    return total


def _ready_json(exports: Exports, visit: Visit, number: int) -> dict[str, Any]:
    return {
        **visit.as_json(),
        "number": number,
        "takes": len(ctx().visits.takes(visit.id)),
        "bytes": _on_card_bytes(exports, visit.id),
        "download_url": bundle_url(visit.id),
    }


@bp.get("/api/handoff")
def handoff() -> dict[str, Any]:
    """What the hand-off sheet shows: the visits that can leave, the sticks, the copy."""
    c = ctx()
    exports = _exports()
    event_id = c.recording.events.last_id  # first: later changes arrive as events
    numbers = {v.id: n for n, v in enumerate(c.visits.visits(), start=1)}
    ready = [_ready_json(exports, v, numbers.get(v.id, 0)) for v in exports.handoff.ready()]
    sticks: list[dict[str, Any]] = []
    sticks_error = ""
    try:
        sticks = [s.as_json() for s in exports.sticks()]
    except OSError as exc:  # lsblk missing or failing: the download still works
        current_app.logger.warning("cannot list the USB sticks: %s", exc)
        sticks_error = str(exc)
    job = exports.current()
    signer = exports.handoff.signer
    return {
        "event_id": event_id,
        "ready": ready[::-1],
        "sticks": sticks,
        "sticks_error": sticks_error,
        "job": None if job is None else job.as_json(),
        "kit": {"fingerprint": signer.fingerprint, "public_key": signer.public},
    }


@bp.post("/api/visits/<visit_id>/export")
def export(visit_id: str) -> tuple[dict[str, Any], int]:
    """Copy the visit to a USB stick (202: progress and the outcome arrive as events)."""
    body = json_body()
    only_keys(body, {"to", "stick"})
    to = body.get("to")
    if to == "download":
        raise ApiError(400, f"to download the visit, GET {bundle_url(visit_id)}")
    if to != "usb":
        raise ApiError(400, "'to' must be \"usb\"")
    stick = text(body, "stick", max_len=MAX_STICK_ID)
    job = _exports().start(_visit_id(visit_id), stick)
    return {"job": job.as_json()}, 202


def _etag(bundle: Bundle) -> str:
    """The manifest's SHA-256: it names every file's hash, so it names the whole tar."""
    return next(e.sha256 for e in bundle.entries if e.path == MANIFEST)


def _span(size: int, etag: str) -> tuple[int, int] | None:
    """The byte range asked for, or None for the whole file; a 416 for one past the end.

    A Range is honoured only with no ``If-Range`` or one naming this bundle's ETag (a
    date or another ETag means the download started on other bytes: send them all).
    Several ranges at once get the whole file (download managers ask for one)."""
    header = request.headers.get("Range")
    if not header:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != f'"{etag}"':
        return None
    unsatisfiable = {"Content-Range": f"bytes */{size}"}
    parsed = request.range
    if parsed is None:
        raise ApiError(416, "the Range header is malformed", headers=unsatisfiable)
    if len(parsed.ranges) != 1:
        return None
    span = parsed.range_for_length(size)
    if span is None:
        raise ApiError(
            416, f"the range is outside the bundle's {size} bytes", headers=unsatisfiable
        )
    return span


@bp.get("/api/visits/<visit_id>/bundle.tar")
def bundle_tar(visit_id: str) -> Response:
    """The sealed visit's bundle as one ``.tar``, streamed, resumable (Range, If-Range)."""
    exports = _exports()
    bundle = exports.handoff.bundle(_visit_id(visit_id))
    view = TarView(bundle)
    etag = _etag(bundle)
    span = _span(view.size, etag)
    start, stop = span if span is not None else (0, view.size)
    audit = ctx().audit
    phone_id = phone().id

    def body() -> Iterator[bytes]:
        sent = 0
        for chunk in view.read(start, stop):
            sent += len(chunk)
            yield chunk
        if stop == view.size and sent == stop - start:
            # The whole file, or the last piece of a resumed one: the bundle left the kit.
            audit.record(
                AuditKind.EXPORTED,
                {
                    "visit_id": bundle.visit_id,
                    "to": "download",
                    "bytes": view.size,
                    "from_byte": start,
                    "phone_id": phone_id,
                },
            )

    response = Response(
        body(),
        status=206 if span is not None else 200,
        mimetype="application/x-tar",
        direct_passthrough=True,
    )
    response.content_length = stop - start
    if span is not None:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{view.size}"
    response.headers["Accept-Ranges"] = "bytes"
    response.set_etag(etag)
    response.headers["Content-Disposition"] = f'attachment; filename="{view.name}"'
    response.headers["Cache-Control"] = "no-store, private"
    return response
