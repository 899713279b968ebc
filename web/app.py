"""The phone page's Flask app: ``create_app(recording, visits, pairing, config)``.

One blueprint per area (pairing, pages, api, events, visits, media, handoff, present,
connectivity, label). Every route except pairing, phones' connectivity checks and static
files needs a paired phone (a session cookie); every
state-changing request also needs that phone's CSRF token in the
``X-CSRF-Token`` header. Errors on ``/api/`` are JSON ``{"error": ...}``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, jsonify, redirect, request, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from kit.audit.chain import Auditor, NoAudit
from kit.daemon.api import Recording, VisitLibrary
from kit.daemon.events import EventKind
from kit.errors import KitError, NotAllowed, NotFound, StateError, StorageFull
from kit.handoff.jobs import Exports
from kit.model import DEFAULT_LABELS
from web.context import COOKIE, CSRF_HEADER, PhoneTimeHook, Streams, WebContext, ctx
from web.http import ApiError
from web.pairing import PairingClosed, PairingLocked, PairingStore, WrongSecret

log = logging.getLogger("kit.web")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

DEFAULTS: dict[str, Any] = {
    # Tag bodies are ~200 bytes and a full label list ~1 KiB; 32 KiB leaves room.
    "MAX_CONTENT_LENGTH": 32 * 1024,
    "SEND_FILE_MAX_AGE_DEFAULT": 3600,  # static URLs carry a content hash (?v=)
    "KIT_HEARTBEAT_S": 15.0,  # a silent stream is found dead within this
    "KIT_MAX_TAG_DELAY_S": 600.0,  # a tap older than this is refused as absurd
    "KIT_UNDO_S": 10.0,  # how long the page offers to undo a tag
    "KIT_PREVIEW_FPS": 4.0,  # preview frames a second each phone asks for
    "KIT_STREAMS_PER_PHONE": 2,
    # Each event stream holds one of the WSGI server's threads for as long as it is
    # open: keep this at most the server's threads minus 2 (waitress threads=8 -> 6).
    "KIT_MAX_STREAMS": 6,
    # What the settings page offers as "VIG defaults" (the daemon's defaults, ideally).
    "KIT_DEFAULT_LABELS": list(DEFAULT_LABELS),
    "KIT_COOKIE_MAX_AGE_S": 400 * 24 * 3600,  # browsers cap cookies at 400 days
}

_STATIC = Path(__file__).parent / "static"
_CSP = (
    "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(
    recording: Recording,
    visits: VisitLibrary,
    pairing: PairingStore,
    config: dict[str, Any] | None = None,
    *,
    on_phone_time: PhoneTimeHook | None = None,
    audit: Auditor | None = None,
    exports: Exports | None = None,
) -> Flask:
    """The phone page for the kit's ``recording`` state machine and ``visits`` library,
    admitting the phones ``pairing`` knows.

    ``config`` overrides Flask settings and the ``KIT_*`` ones in
    :data:`DEFAULTS`. ``on_phone_time(unix_s)`` is called with the phone's
    wall-clock time (UTC seconds) when a phone pairs and whenever a paired
    page loads, so a kit without a real-time clock can set its clock; it is
    called on the request thread, so it must be quick, and it may ignore the
    value (e.g. when the kit's clock is already set). ``audit`` receives
    pairings, revocations and views of a film (kit.audit). ``exports`` takes sealed
    visits off the kit (kit/handoff: USB sticks, downloads); without it the hand-off's
    routes answer 503.
    """
    from web.views import api, connectivity, events, handoff, label, media, pages, present
    from web.views import pairing as pairing_views
    from web.views import visits as visit_views

    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    app.extensions["kit"] = WebContext(
        recording=recording,
        visits=visits,
        pairing=pairing,
        audit=audit or NoAudit(),
        on_phone_time=on_phone_time,
        streams=Streams(
            per_phone=int(app.config["KIT_STREAMS_PER_PHONE"]),
            total=int(app.config["KIT_MAX_STREAMS"]),
        ),
    )
    app.extensions[handoff.EXTENSION] = exports
    versions = _static_versions()

    @app.context_processor
    def _asset_url() -> dict[str, Any]:
        def asset(name: str) -> str:
            return url_for("static", filename=name, v=versions.get(name, "0"))

        return {"asset": asset, "event_kinds": " ".join(kind.value for kind in EventKind)}

    app.register_blueprint(pairing_views.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(visit_views.bp)
    app.register_blueprint(media.bp)
    app.register_blueprint(handoff.bp)
    app.register_blueprint(present.bp)
    app.register_blueprint(connectivity.bp)  # phones' connectivity checks: open, any Host
    app.register_blueprint(label.bp)
    app.before_request(_note_start)  # first: the tag's Server-Timing counts the gate too
    app.before_request(_require_paired_phone)
    app.after_request(_security_headers)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(KitError, _kit_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.wsgi_app = _HostGuard(app.wsgi_app)  # type: ignore[method-assign]
    return app


# A Host header Flask can route with: a name of DNS labels (or an IPv4 or bracketed IPv6
# address) and an optional port. Anything else (e.g. a 64-character label) made Flask fail
# to bind its URL adapter, a 500 for an unpaired stranger.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)


class _HostGuard:
    """Answers a request whose Host header is not a host name with a plain 400."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        host = environ.get("HTTP_HOST", "")
        if host and (len(host) > 260 or not _HOST.fullmatch(host)):
            body = b'{"error": "the Host header is not a host name"}'
            start_response(
                "400 Bad Request",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self._app(environ, start_response)


def shutdown(app: Flask) -> None:
    """End the app's event streams (within a second) before the server stops."""
    context: WebContext = app.extensions["kit"]
    context.closing.set()


def _static_versions() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:10]
        for p in _STATIC.iterdir()
        if p.is_file()
    }


def _is_api() -> bool:
    """JSON errors (and 401 rather than a redirect to /pair): the API and the media files."""
    return request.path.startswith(("/api/", "/media/"))


def _note_start() -> None:
    g.started = time.perf_counter()


def _require_paired_phone() -> BaseResponse | None:
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()  # refused before anything reads the body
    endpoint = request.endpoint or ""
    if request.method not in SAFE_METHODS and not _same_origin():
        raise ApiError(403, "cross-site request refused")
    if endpoint == "static" or endpoint.startswith(("pairing.", "connectivity.")):
        return None
    token = request.cookies.get(COOKIE, "")
    phone = ctx().pairing.phone_for_token(token) if token else None
    if phone is None:
        if _is_api():
            raise ApiError(401, "this phone is not paired with the kit")
        return redirect(url_for("pairing.pair_page"))
    g.phone = phone
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), phone.csrf.encode()):
            raise ApiError(403, f"missing or wrong {CSRF_HEADER} header")
    return None


def _same_origin() -> bool:
    """False when the browser says the request comes from another site."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        return urlsplit(origin).netloc == request.host
    except ValueError:  # e.g. "http://[x": no browser sends it; not the kit's own origin
        return False


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # The pairing link carries the key in its query string: never pass it on.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def _api_error(exc: ApiError) -> Response:
    response = _error(exc.status, exc.message, **exc.extra)
    response.headers.update(exc.headers)
    return response


# The kit's errors as HTTP statuses (first match wins); anything else is a 500.
_KIT_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (WrongSecret, 401),
    (PairingClosed, 403),
    (NotAllowed, 403),  # the family's consent does not cover it, or no organisation key
    (StateError, 409),
    (NotFound, 404),
    (StorageFull, 507),  # not bad input: the card is full
    (ValueError, 400),  # e.g. ConfigError, or the kit refusing a value
)


def _kit_error(exc: KitError) -> Response:
    if isinstance(exc, PairingLocked):
        retry = max(1, round(exc.retry_after_s))
        response = _error(429, str(exc), retry_after_s=retry)
        response.headers["Retry-After"] = str(retry)
        return response
    for kind, status in _KIT_STATUS:
        if isinstance(exc, kind):
            return _error(status, str(exc))
    log.error("kit error on %s %s", request.method, request.path, exc_info=exc)
    return _error(500, str(exc))


def _http_error(exc: HTTPException) -> BaseResponse:
    status = exc.code or 500
    if status == 413:
        limit = request.max_content_length
        return _error(413, f"the request body is larger than {limit} bytes")
    if _is_api():
        return _error(status, exc.description or exc.name)
    return exc.get_response()


def _unexpected(exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return _error(500, "internal error (see the kit's log)")
