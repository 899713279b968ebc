"""The JSON API behind the page (see web/API.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from kit.daemon.api import Controller, Status
from kit.daemon.library import MAX_LABEL_LEN, MAX_LABELS, MAX_NOTE_LEN, MAX_PAD_LABEL_LEN
from kit.errors import NotFound
from kit.model import Tag, Take
from web.context import COOKIE, ctx, phone
from web.http import ApiError, ident, json_body, number, only_keys, text
from web.pairing import Phone
from web.views.pairing import note_phone_time

bp = Blueprint("api", __name__, url_prefix="/api")

LABEL_MAX = MAX_PAD_LABEL_LEN
TAG_LABEL_MAX = MAX_LABEL_LEN
LABELS_MAX = MAX_LABELS
NOTE_MAX = MAX_NOTE_LEN
NUDGE_MAX_MS = 60_000  # the review page nudges by 0.2 s and 1 s; a minute is plenty


def tag_json(tag: Tag) -> dict[str, Any]:
    """A tag as the API and the ``tag`` event carry it."""
    return dataclasses.asdict(tag)


def status_json(status: Status) -> dict[str, Any]:
    """``Status.as_dict()`` plus the take's start and the kit clock, for the page's timers."""
    return {**status.as_dict(), "started_ns": status.started_ns, "now_ns": status.now_ns}


def _current_take(c: Controller, status: Status) -> tuple[str | None, int | None]:
    """The take whose tags the page lists: the one recording, else the session's last."""
    if status.session_id is None:
        return None, None
    if status.take_id is not None and status.started_ns is not None:
        return status.take_id, status.started_ns
    takes = c.takes(status.session_id)
    if status.take_id is not None:
        takes = [t for t in takes if t.id == status.take_id]
    if not takes:
        return status.take_id, status.started_ns
    return takes[-1].id, takes[-1].first_frame_ns


def _phone_json(p: Phone, me: Phone) -> dict[str, Any]:
    seen = ctx().pairing.seen_ago_s(p.id)
    return {
        **p.public(),
        "me": p.id == me.id,
        "seen_ago_s": None if seen is None else round(seen),
    }


@contextmanager
def refused_values() -> Iterator[None]:
    """A value the controller refuses (``ValueError``) is the phone's mistake: a 400."""
    try:
        yield
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc


def _publish_phones() -> None:
    ctx().controller.events.publish("phones", {})


@bp.get("/state")
def state() -> dict[str, Any]:
    c = ctx().controller
    # Read the event id first: any change after this snapshot arrives as an event.
    event_id = c.events.last_id
    status = c.status()
    take_id, started_ns = _current_take(c, status)
    tags = (
        [tag_json(t) for t in c.tags(status.session_id) if t.take_id == take_id]
        if status.session_id and take_id
        else []
    )
    return {
        "event_id": event_id,
        "status": status_json(status),
        "take": {"id": take_id, "started_ns": started_ns},
        "labels": c.labels(),
        "tags": tags,
        "phone": phone().public(),
    }


@bp.post("/start")
def start() -> tuple[dict[str, Any], int]:
    ctx().controller.start("phone")
    return {"status": status_json(ctx().controller.status())}, 202


@bp.post("/stop")
def stop() -> tuple[dict[str, Any], int]:
    ctx().controller.stop("phone")
    return {"status": status_json(ctx().controller.status())}, 202


@bp.post("/tags")
def add_tag() -> tuple[dict[str, Any], int]:
    body = json_body()
    only_keys(body, {"id", "label", "note", "delay_ms"})
    tag_id = ident(body.get("id"), "'id'")
    label = text(body, "label", max_len=TAG_LABEL_MAX)
    note = text(body, "note", max_len=NOTE_MAX, required=False, single_line=False)
    max_ms = float(current_app.config["KIT_MAX_TAG_DELAY_S"]) * 1000
    delay_ms = number(body, "delay_ms", low=0, high=max_ms)
    with refused_values():
        tag, new = ctx().controller.add_tag(
            tag_id, label, note, phone().name, round(delay_ms * 1e6)
        )
    return {"tag": tag_json(tag), "new": new}, 201 if new else 200


def _find_tag(c: Controller, tag_id: str) -> tuple[Tag, Take | None]:
    """A live tag and its take (newest sessions first), or NotFound."""
    for session in reversed(c.sessions()):
        for tag in c.tags(session.id):
            if tag.id == tag_id:
                takes = [t for t in c.takes(session.id) if t.id == tag.take_id]
                return tag, takes[0] if takes else None
    raise NotFound(f"no tag {tag_id!r}")


def _moved_at_ns(c: Controller, tag_id: str, body: dict[str, Any]) -> int:
    """Where ``at_ns`` or ``nudge_ms`` puts the tag; it must stay inside its take.

    An absolute ``at_ns`` outside the take is refused; a nudge past either end
    stops at the end (a guider nudging a tag at 0:01 back by 1 s means "the start").
    """
    tag, take = _find_tag(c, tag_id)
    if take is None or take.first_frame_ns is None:
        raise ApiError(409, "this tag's take has no pictures to move it within")
    low = take.first_frame_ns
    high = take.end_ns if take.end_ns is not None else c.now_ns()
    if "at_ns" in body:
        at = body["at_ns"]
        if isinstance(at, bool) or not isinstance(at, int):
            raise ApiError(400, "'at_ns' must be an integer (kit-clock nanoseconds)")
        if not low <= at <= high:
            raise ApiError(400, "'at_ns' must be inside the tag's take", low=low, high=high)
        return at
    nudge_ms = number(body, "nudge_ms", low=-NUDGE_MAX_MS, high=NUDGE_MAX_MS)
    return min(high, max(low, tag.at_ns + round(nudge_ms * 1e6)))


@bp.patch("/tags/<tag_id>")
def update_tag(tag_id: str) -> dict[str, Any]:
    ident(tag_id, "a tag id")
    body = json_body()
    only_keys(body, {"label", "note", "at_ns", "nudge_ms"})
    values: dict[str, Any] = {}
    if "label" in body:
        values["label"] = text(body, "label", max_len=TAG_LABEL_MAX)
    if "note" in body:
        values["note"] = text(body, "note", max_len=NOTE_MAX, required=False, single_line=False)
    if "at_ns" in body and "nudge_ms" in body:
        raise ApiError(400, "send 'at_ns' or 'nudge_ms', not both")
    if "at_ns" in body or "nudge_ms" in body:
        values["at_ns"] = _moved_at_ns(ctx().controller, tag_id, body)
    if not values:
        raise ApiError(400, "send 'label', 'note', 'at_ns' and/or 'nudge_ms'")
    with refused_values():
        return {"tag": tag_json(ctx().controller.update_tag(tag_id, **values))}


@bp.delete("/tags/<tag_id>")
def delete_tag(tag_id: str) -> dict[str, Any]:
    ctx().controller.delete_tag(ident(tag_id, "a tag id"))
    return {"deleted": tag_id}


@bp.post("/tags/<tag_id>/restore")
def restore_tag(tag_id: str) -> dict[str, Any]:
    ctx().controller.restore_tag(ident(tag_id, "a tag id"))
    return {"restored": tag_id}


@bp.get("/labels")
def labels() -> dict[str, Any]:
    return {"labels": ctx().controller.labels()}


@bp.put("/labels")
def set_labels() -> dict[str, Any]:
    body = json_body()
    only_keys(body, {"labels"})
    raw = body.get("labels")
    if not isinstance(raw, list) or not 1 <= len(raw) <= LABELS_MAX:
        raise ApiError(400, f"'labels' must be a list of 1 to {LABELS_MAX} labels")
    values = [text({"label": v}, "label", max_len=LABEL_MAX) for v in raw]
    if len({v.casefold() for v in values}) != len(values):
        raise ApiError(400, "labels must differ from each other")
    with refused_values():
        ctx().controller.set_labels(values)
    return {"labels": ctx().controller.labels()}


@bp.get("/phones")
def phones() -> dict[str, Any]:
    me = phone()
    return {"phones": [_phone_json(p, me) for p in ctx().pairing.phones()]}


@bp.patch("/phones/<phone_id>")
def rename_phone(phone_id: str) -> dict[str, Any]:
    body = json_body()
    only_keys(body, {"name"})
    renamed = ctx().pairing.rename(ident(phone_id, "a phone id"), text(body, "name", max_len=40))
    _publish_phones()
    return {"phone": _phone_json(renamed, phone())}


@bp.delete("/phones/<phone_id>")
def revoke_phone(phone_id: str) -> Response:
    me = phone()
    revoked = ctx().pairing.revoke(ident(phone_id, "a phone id"))
    _publish_phones()
    response = jsonify({"phone": _phone_json(revoked, me)})
    if revoked.id == me.id:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict")
    return response


@bp.post("/phones/<phone_id>/restore")
def restore_phone(phone_id: str) -> dict[str, Any]:
    restored = ctx().pairing.restore(ident(phone_id, "a phone id"))
    _publish_phones()
    return {"phone": _phone_json(restored, phone())}


@bp.get("/pairing")
def pairing_info() -> dict[str, Any]:
    """What another phone needs to pair: the code and the link (both on the kit's label)."""
    store = ctx().pairing
    return {
        "code": store.code,
        "link": store.link(request.host_url),
        "locked_for_s": round(store.locked_for()),
    }


@bp.post("/clock")
def clock() -> tuple[str, int]:
    body = json_body()
    only_keys(body, {"phone_time_ms"})
    note_phone_time(number(body, "phone_time_ms", low=0, high=1e14) / 1000)
    return "", 204


@bp.get("/preview.jpg")
def preview() -> Response:
    """The newest preview frame; the live level and state ride along in headers.

    ``?after=<seq>`` answers 204 when no newer frame exists, so a phone that
    polls fast never downloads the same frame twice.
    """
    after_arg = request.args.get("after")
    after = None
    if after_arg is not None:
        if not after_arg.isdigit() or len(after_arg) > 18:
            raise ApiError(400, "'after' must be a frame sequence number")
        after = int(after_arg)
    c = ctx().controller
    frame = c.preview_jpeg()
    status = c.status().as_dict()
    headers = {
        "X-Level-Dbfs": str(status["level_dbfs"]),
        "X-State": str(status["state"]),
        "X-Elapsed-S": str(status["elapsed_s"]),
    }
    if frame is None or frame[0] == after:
        return Response(status=204, headers=headers)
    seq, jpeg = frame
    return Response(jpeg, mimetype="image/jpeg", headers={**headers, "X-Frame-Seq": str(seq)})
