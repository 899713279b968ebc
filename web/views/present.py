"""Showing a visit's film to the family: a screen, and the guider's phone as its remote.

The **screen** (``/present/<visit_id>``) shows the film full screen, the number of the
moment showing and, on demand, its still (with the guider's speech or thought bubble, if
there is one): nothing else. It runs on a TV's or a laptop's browser paired with the kit,
on the Pi's own HDMI output in a kiosk browser, or on the phone itself. The **remote**
(``/present/<visit_id>/remote``) sends commands (play, pause, slow, a moment, a frame
step, the still); the kit publishes each as a ``present`` event and every screen of the
visit follows it; each screen reports where its film is the same way, so the remote
shows it. ``/present`` waits for a remote to open a visit (or offers the visits to show).

What a screen receives is filtered here, never the manifest or the visit as they are:
``GET /api/present/<id>`` gives moment numbers, film times and URLs; its event stream
(``/api/present/<id>/events``) carries only ``present`` events and the ids of cut and
visit events of its visit, not the kit's whole event log (tags with their notes and
authors, case references, phones' names). No labels either: see web/API.md.

Routes: ``GET /present``, ``GET /present/<id>``, ``GET /present/<id>/remote``,
``GET /api/present``, ``GET /api/present/<id>``, ``GET /api/present/<id>/events``,
``POST /api/present/<id>/command``, ``POST /api/present/<id>/state``,
``GET /api/present/<id>/bubbles``, ``PUT``/``DELETE /api/present/<id>/stills/<n>/bubble``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask.blueprints import BlueprintSetupState

from kit.cutting.bubbles import Bubble, BubbleKind, Side, StillBubbles
from kit.daemon.api import CutManifest, VisitLibrary
from kit.daemon.events import Event, EventKind, PresentAction, Presenting, VisitAction
from kit.errors import CorruptMedia, NotFound, Sealed, StorageError
from kit.model import Purpose, Visit
from kit.privacy.consent import require
from kit.store import layout
from kit.store.files import FileLayer
from web.context import ctx, phone
from web.http import ID_PATTERN, ApiError, json_body, number, only_keys, sequence_number, text
from web.views.events import event_stream
from web.views.media import media_url

log = logging.getLogger("kit.web")
bp = Blueprint("present", __name__)

EXTENSION = "kit.present"  # app.extensions key of the visit on show (OnShow)
RATES = (1.0, 0.5, 0.25)  # what the remote offers: normal, half and quarter speed
MAX_STEP_FRAMES = 300  # a frame step of up to 10 s at 30 fps
MAX_FILM_S = 24 * 3600.0  # a screen's reported time beyond this is nonsense

# A remote's commands and what each carries besides ``action`` (required ones first).
_COMMANDS: dict[PresentAction, tuple[set[str], set[str]]] = {
    PresentAction.OPEN: (set(), set()),
    PresentAction.CLOSE: (set(), set()),
    PresentAction.PLAY: (set(), {"rate"}),
    PresentAction.PAUSE: (set(), set()),
    PresentAction.RATE: ({"rate"}, set()),
    PresentAction.MOMENT: ({"moment"}, set()),
    PresentAction.NEXT: (set(), set()),
    PresentAction.PREVIOUS: (set(), set()),
    PresentAction.STEP: ({"frames"}, set()),
    PresentAction.STILL: ({"still"}, set()),
}
# Visit events a screen hears of (ids and the action only): its film is gone or going.
_VISIT_ACTIONS = {VisitAction.ENDED.value, VisitAction.SEALED.value, VisitAction.ERASED.value}


@dataclass
class OnShow:
    """The visit a remote last opened for the screens (in memory: gone at a restart)."""

    visit_id: str | None = None
    opened: int = 0  # the event id of that ``open``: a waiting screen follows a newer one
    lock: threading.Lock = field(default_factory=threading.Lock)


@bp.record_once
def _set_up(state: BlueprintSetupState) -> None:
    state.app.extensions[EXTENSION] = OnShow()


def _on_show() -> OnShow:
    on_show: OnShow = current_app.extensions[EXTENSION]
    return on_show


# ---------- what a screen may see ----------


def _visit(visit_id: str) -> Visit:
    if not ID_PATTERN.fullmatch(visit_id):
        raise NotFound(f"no visit {visit_id!r}")
    return ctx().visits.visit(visit_id)


def _showable(visit_id: str) -> Visit:
    """The visit, if its film may be shown: 404 unknown, 409 sealed, 403 without consent."""
    visit = _visit(visit_id)
    if not visit.readable:
        raise Sealed("this visit is sealed: its film can no longer be shown on the kit")
    require(visit, Purpose.REVIEW, "Showing the film to the family")
    return visit


def _files() -> FileLayer | None:
    """The kit's file layer, where bubbles are kept (the library's; None if it has none)."""
    files = getattr(ctx().visits, "files", None)
    return files if isinstance(files, FileLayer) else None


def _manifest(library: VisitLibrary, visit_id: str) -> CutManifest | None:
    try:
        return library.cut(visit_id)
    except (StorageError, CorruptMedia) as exc:  # damaged: no film, rather than no page
        log.warning("the cut of %s cannot be read for showing: %s", visit_id, exc)
        return None


def _versioned(library: VisitLibrary, visit_id: str, rel: str | None) -> str | None:
    """The URL of a cut file with ``?v=`` (a version that changes when it is remade), or
    None when it is not there (e.g. being replaced by a re-cut)."""
    url = media_url(visit_id, rel) if rel else None
    name = layout.in_cut_dir(visit_id, rel) if rel else None
    if url is None or name is None:
        return None
    try:
        opened = library.cut_file(visit_id, name)
    except (NotFound, OSError, CorruptMedia):
        return None
    opened.file.close()
    return f"{url}?v={opened.etag}"


@dataclass(frozen=True)
class Moment:
    """One moment of the film as a screen may know it, and (for the kit) its still."""

    number: int
    film_start_s: float
    film_end_s: float
    tag_id: str | None  # whose still the moment shows (its first tag's)
    still: str | None  # that still's path (data directory)


def moments(manifest: CutManifest | None) -> list[Moment]:
    """The film's moments (its clips), each with the still of its first tag (pure)."""
    if not manifest:
        return []
    stills = sorted(
        (s for s in manifest.get("stills") or [] if isinstance(s, dict)),
        key=lambda s: int(s.get("number") or 0),
    )
    found = []
    for clip in manifest.get("clips") or []:
        tags = set(clip.get("tag_ids") or [])
        still = next((s for s in stills if s.get("tag_id") in tags), None)
        found.append(
            Moment(
                number=int(clip["number"]),
                film_start_s=float(clip["film_start_s"]),
                film_end_s=float(clip["film_end_s"]),
                tag_id=None if still is None else str(still["tag_id"]),
                still=None if still is None else str(still["path"]),
            )
        )
    return found


def _bubbles(visit_id: str) -> StillBubbles | None:
    files = _files()
    return None if files is None else StillBubbles(files, visit_id)


def _still_url(library: VisitLibrary, visit_id: str, moment: Moment) -> str | None:
    """The still a screen shows for ``moment``: the bubbled copy if it has a bubble."""
    if moment.still is None:
        return None
    bubbles = _bubbles(visit_id)
    if bubbles is not None and moment.tag_id is not None:
        try:
            copy = bubbles.copy_for(moment.tag_id, moment.still)
        except (StorageError, CorruptMedia, OSError, ValueError) as exc:
            log.warning("the bubble of %s cannot be drawn: %s", moment.tag_id, exc)
            copy = None
        if copy is not None:
            return _versioned(library, visit_id, copy) or _versioned(
                library, visit_id, moment.still
            )
    return _versioned(library, visit_id, moment.still)


def _prune(visit_id: str, listed: list[Moment]) -> None:
    """Forget the bubbles of moments the film no longer has (a tag deleted or discarded)."""
    bubbles = _bubbles(visit_id)
    if bubbles is None:
        return
    try:
        gone = bubbles.prune(m.tag_id for m in listed if m.tag_id)
    except (StorageError, CorruptMedia, OSError) as exc:
        log.warning("the bubbles of %s cannot be read: %s", visit_id, exc)
        return
    if gone:
        log.info("dropped %d bubble(s) of moments no longer in the film of %s", len(gone), visit_id)


def presentation(visit: Visit) -> dict[str, Any]:
    """What a screen gets: moment numbers and times, the film's and stills' URLs. Nothing
    else of the cut (no labels, notes, authors, tag ids, case reference, title)."""
    library = ctx().visits
    manifest = _manifest(library, visit.id)
    listed = moments(manifest)
    if listed:
        _prune(visit.id, listed)
    film = manifest.get("film") if manifest else None
    fps = manifest.get("fps") if manifest else None
    return {
        "moments": [
            {
                "number": m.number,
                "film_start_s": round(m.film_start_s, 6),
                "film_end_s": round(m.film_end_s, 6),
                "still_url": _still_url(library, visit.id, m),
            }
            for m in listed
        ],
        "film_url": _versioned(library, visit.id, film if isinstance(film, str) else None),
        "duration_s": round(float(manifest.get("duration_s") or 0.0), 6) if manifest else 0.0,
        "fps": float(fps) if isinstance(fps, int | float) and fps > 0 else None,
    }


def _moment(visit: Visit, raw: str) -> Moment:
    if not raw.isascii() or not raw.isdigit():
        raise NotFound(f"no moment {raw!r}")
    n = int(raw)
    found = next((m for m in moments(_manifest(ctx().visits, visit.id)) if m.number == n), None)
    if found is None:
        raise NotFound(f"the film has no moment {n}")
    return found


# ---------- pages ----------


def _page(template: str, **values: Any) -> str:
    return render_template(
        template,
        csrf=phone().csrf,
        heartbeat_s=current_app.config["KIT_HEARTBEAT_S"],
        event_id=ctx().recording.events.last_id,
        **values,
    )


def _page_visit(visit_id: str) -> Visit:
    try:
        return _visit(visit_id)
    except NotFound:
        abort(404)


def _access(visit: Visit) -> str:
    """What a page can do with the visit: ``show``, ``sealed`` or ``no-consent``."""
    if not visit.readable:
        return "sealed"
    if visit.consent is None or not visit.consent.allows(Purpose.REVIEW):
        return "no-consent"
    return "show"


@bp.get("/present")
def waiting_page() -> str:
    """A screen waiting for the guider's phone, and the visits it could show."""
    return _page("present-wait.html")


@bp.get("/present/<visit_id>")
def screen_page(visit_id: str) -> str:
    """The family's screen: the film, the moment's number, its still. Nothing else."""
    visit = _page_visit(visit_id)
    local = request.args.get("local") == "1"
    return _page("present.html", visit_id=visit.id, access=_access(visit), local=local)


@bp.get("/present/<visit_id>/remote")
def remote_page(visit_id: str) -> str:
    """The guider's remote for the visit's screens."""
    visit = _page_visit(visit_id)
    number = [v.id for v in ctx().visits.visits()].index(visit.id) + 1
    return _page(
        "present-remote.html",
        visit_id=visit.id,
        number=number,
        access=_access(visit),
        me=phone().id,
        address=request.host_url.rstrip("/"),
    )


# ---------- JSON ----------


@bp.get("/api/present")
def on_show() -> dict[str, Any]:
    """The visit on show (a waiting screen goes to it) and the visits that can be shown
    (``?visits=0``: not those; a waiting screen polls, and listing reads every cut)."""
    library = ctx().visits
    shown = _on_show()
    with shown.lock:
        showing = {"visit_id": shown.visit_id, "opened": shown.opened} if shown.visit_id else None
    if request.args.get("visits") == "0":
        return {"showing": showing}
    listed = []
    for n, visit in enumerate(library.visits(), start=1):
        if _access(visit) != "show":
            continue
        count = len(moments(_manifest(library, visit.id)))
        if count:
            day = visit.started_wall[:10]
            listed.append({"visit_id": visit.id, "number": n, "day": day, "moments": count})
    return {"showing": showing, "visits": listed[::-1]}


@bp.get("/api/present/<visit_id>")
def present_data(visit_id: str) -> dict[str, Any]:
    """The filtered presentation data of one visit (see :func:`presentation`)."""
    return presentation(_showable(visit_id))


def _rate(body: dict[str, Any]) -> float:
    rate = number(body, "rate", low=0.25, high=1.0)
    if rate not in RATES:
        raise ApiError(400, "'rate' must be 1, 0.5 or 0.25")
    return rate


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name!r} must be true or false")
    return value


def _whole(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{name!r} must be a whole number from {low} to {high}")
    return value


def _action(body: dict[str, Any], allowed: set[PresentAction]) -> PresentAction:
    raw = body.get("action")
    try:
        action = PresentAction(raw) if isinstance(raw, str) else None
    except ValueError:
        action = None
    if action is None or action not in allowed:
        names = ", ".join(sorted(a.value for a in allowed))
        raise ApiError(400, f"'action' must be one of {names}")
    return action


@bp.post("/api/present/<visit_id>/command")
def command(visit_id: str) -> tuple[dict[str, Any], int]:
    """A remote's command: published as a ``present`` event, followed by every screen."""
    visit = _showable(visit_id)
    body = json_body()
    action = _action(body, set(_COMMANDS))
    required, optional = _COMMANDS[action]
    only_keys(body, {"action", *required, *optional})
    missing = sorted(required - set(body))
    if missing:
        raise ApiError(400, f"{missing[0]!r} is required for {action.value!r}")
    fields: dict[str, Any] = {}
    if "rate" in body:
        fields["rate"] = _rate(body)
    if "moment" in body:
        count = len(moments(_manifest(ctx().visits, visit.id)))
        if count == 0:
            raise ApiError(409, "the film of this visit has no moments (yet)")
        fields["moment"] = _whole(body, "moment", 1, count)
    if "frames" in body:
        frames = _whole(body, "frames", -MAX_STEP_FRAMES, MAX_STEP_FRAMES)
        if frames == 0:
            raise ApiError(400, "'frames' cannot be 0")
        fields["frames"] = frames
    if "still" in body:
        fields["still"] = _flag(body, "still")
    event = ctx().recording.events.publish(Presenting(visit.id, action, phone().id, **fields))
    shown = _on_show()
    with shown.lock:
        if action is PresentAction.OPEN:
            shown.visit_id, shown.opened = visit.id, event.id
        elif action is PresentAction.CLOSE and shown.visit_id == visit.id:
            shown.visit_id = None
    return {"event_id": event.id}, 202


@bp.post("/api/present/<visit_id>/state")
def screen_state(visit_id: str) -> tuple[dict[str, Any], int]:
    """A screen's report of where its film is: published for the remotes."""
    visit = _showable(visit_id)
    body = json_body()
    only_keys(body, {"time_s", "playing", "rate", "moment", "still"})
    for name in ("time_s", "playing", "rate", "moment", "still"):
        if name not in body:
            raise ApiError(400, f"{name!r} is required")
    report = Presenting(
        visit.id,
        PresentAction.STATE,
        phone().id,
        time_s=round(number(body, "time_s", low=0, high=MAX_FILM_S), 6),
        playing=_flag(body, "playing"),
        rate=_rate(body),
        moment=_whole(body, "moment", 0, 10_000),  # 0: no moment (no film yet)
        still=_flag(body, "still"),
    )
    event = ctx().recording.events.publish(report)
    return {"event_id": event.id}, 202


@bp.get("/api/present/<visit_id>/bubbles")
def bubbles(visit_id: str) -> dict[str, Any]:
    """The bubbles on the film's stills, by moment (for the remote, which edits them)."""
    visit = _showable(visit_id)
    store = _bubbles(visit.id)
    placed = store.placed() if store is not None else {}
    return {
        "bubbles": [
            {"moment": m.number, **placed[m.tag_id].bubble.as_json()}
            for m in moments(_manifest(ctx().visits, visit.id))
            if m.tag_id in placed
        ]
    }


def _bubble_store(visit: Visit) -> StillBubbles:
    store = _bubbles(visit.id)
    if store is None:
        raise ApiError(503, "this kit cannot keep bubbles (no file layer)")
    return store


def _still_of(visit: Visit, raw: str) -> Moment:
    moment = _moment(visit, raw)
    if moment.still is None or moment.tag_id is None:
        raise NotFound(f"moment {moment.number} has no still")
    return moment


def _stills_changed(visit: Visit, moment: Moment) -> dict[str, Any]:
    ctx().recording.events.publish(
        Presenting(visit.id, PresentAction.STILLS, phone().id, moment=moment.number)
    )
    return {"moment": moment.number, "still_url": _still_url(ctx().visits, visit.id, moment)}


@bp.put("/api/present/<visit_id>/stills/<number>/bubble")
def put_bubble(visit_id: str, number: str) -> dict[str, Any]:
    """Draw a speech or thought bubble on a copy of moment ``number``'s still."""
    visit = _showable(visit_id)
    moment = _still_of(visit, number)
    body = json_body()
    only_keys(body, {"text", "kind", "side"})
    words = text(body, "text", max_len=100)
    kind = body.get("kind", BubbleKind.SPEECH.value)
    side = body.get("side", Side.LEFT.value)
    if kind not in [k.value for k in BubbleKind]:
        raise ApiError(400, "'kind' must be 'speech' or 'thought'")
    if side not in [s.value for s in Side]:
        raise ApiError(400, "'side' must be 'left' or 'right'")
    bubble = Bubble(words, BubbleKind(kind), Side(side))
    assert moment.tag_id is not None and moment.still is not None
    _bubble_store(visit).put(moment.tag_id, moment.still, bubble)
    return {**_stills_changed(visit, moment), "bubble": bubble.as_json()}


@bp.delete("/api/present/<visit_id>/stills/<number>/bubble")
def delete_bubble(visit_id: str, number: str) -> dict[str, Any]:
    """Take the bubble off moment ``number``'s still (the plain still shows again)."""
    visit = _showable(visit_id)
    moment = _still_of(visit, number)
    assert moment.tag_id is not None
    if not _bubble_store(visit).remove(moment.tag_id):
        raise NotFound(f"moment {moment.number}'s still has no bubble")
    return _stills_changed(visit, moment)


# ---------- the screens' own event stream ----------


def for_screens(event: Event, visit_id: str) -> Event | None:
    """``event`` as a screen of ``visit_id`` may receive it, or None (pure).

    ``present`` events of the visit (and any ``open``, which moves screens to another
    visit); a cut of the visit finished (its id and whether it worked); the visit ended,
    sealed or erased (its id and that). Nothing else of the kit's log reaches a screen.
    """
    data = event.data
    if event.kind is EventKind.PRESENT:
        if data.get("visit_id") == visit_id or data.get("action") == PresentAction.OPEN.value:
            return event
    elif event.kind is EventKind.CUT and data.get("visit_id") == visit_id:
        return Event(event.id, event.kind, {"visit_id": visit_id, "ok": not data.get("error")})
    elif event.kind is EventKind.VISIT and data.get("visit_id") == visit_id:
        if data.get("action") in _VISIT_ACTIONS:
            return Event(event.id, event.kind, {"visit_id": visit_id, "action": data["action"]})
    elif event.kind is EventKind.RESYNC:
        return Event(event.id, event.kind, {})
    return None


@bp.get("/api/present/<visit_id>/events")
def screen_events(visit_id: str) -> Response:
    """Server-sent events for the screens and remotes of one visit (see :func:`for_screens`):
    the kit's own stream (web/views/events.py), filtered."""
    visit = _visit(visit_id)
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    last_id = sequence_number(raw, "Last-Event-ID (or 'after', an event id)")
    return event_stream(last_id, lambda event: for_screens(event, visit.id))
