"""The JSON API behind the page (see web/API.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from kit.audit.chain import AuditKind
from kit.daemon.api import State, Status, TagEdit
from kit.daemon.events import PhonesChanged
from kit.model import Access
from kit.visits.rules import MAX_LABEL_LEN, MAX_LABELS, MAX_NOTE_LEN, MAX_PAD_LABEL_LEN
from web.context import COOKIE, ctx, phone
from web.http import ApiError, ident, json_body, number, only_keys, sequence_number, text
from web.pairing import Phone
from web.views.pairing import note_phone_time
from web.views.visits import visit_json

bp = Blueprint("api", __name__, url_prefix="/api")

NUDGE_MAX_MS = 60_000  # the review page nudges by 0.2 s and 1 s; a minute is plenty


def _live_take(status: Status) -> dict[str, Any]:
    """The take whose tags the home screen lists: the one recording, else the open visit's last."""
    if status.state == State.RECORDING and status.take_id is not None:
        return {"id": status.take_id, "started_ns": status.started_ns}
    if status.visit_id is None:
        return {"id": None, "started_ns": None}
    takes = ctx().visits.takes(status.visit_id)
    if not takes:
        return {"id": None, "started_ns": None}
    return {"id": takes[-1].id, "started_ns": takes[-1].first_frame_ns}


def _phone_json(p: Phone, me: Phone) -> dict[str, Any]:
    seen = ctx().pairing.seen_ago_s(p.id)
    return {
        **p.public(),
        "me": p.id == me.id,
        "seen_ago_s": None if seen is None else round(seen),
    }


@contextmanager
def refused_values() -> Iterator[None]:
    """A value the kit refuses (``ValueError``) is the phone's mistake: a 400."""
    try:
        yield
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc


def _publish_phones() -> None:
    ctx().recording.events.publish(PhonesChanged())


@bp.get("/state")
def state() -> dict[str, Any]:
    c = ctx()
    # Read the event id first: any change after this snapshot arrives as an event.
    event_id = c.recording.events.last_id
    status = c.recording.status()
    take = _live_take(status)
    tags = (
        [t.as_json() for t in c.visits.tags(status.visit_id) if t.take_id == take["id"]]
        if status.visit_id and take["id"]
        else []
    )
    visit = c.visits.open_visit()
    listed = c.visits.visits()
    newest = listed[-1] if listed else None
    lost = newest if newest is not None and newest.access == Access.KEY_LOST else None
    return {
        "event_id": event_id,
        "status": status.as_json(),
        "visit": None if visit is None else visit_json(visit, status),
        # The newest visit, if the kit lost its key (a power cut): the page says so.
        "key_lost": None if lost is None else visit_json(lost, status),
        "take": take,
        "labels": c.visits.labels(),
        "tags": tags,
        "phone": phone().public(),
    }


@bp.post("/start")
def start() -> tuple[dict[str, Any], int]:
    ctx().recording.start("phone")
    return {"status": ctx().recording.status().as_json()}, 202


@bp.post("/stop")
def stop() -> tuple[dict[str, Any], int]:
    ctx().recording.stop("phone")
    return {"status": ctx().recording.status().as_json()}, 202


@bp.post("/discard")
def discard() -> tuple[dict[str, Any], int]:
    """Stop and destroy the last seconds of the take (``{"whole": true}``: all of it)."""
    body = json_body()
    only_keys(body, {"whole"})
    whole = body.get("whole", False)
    if not isinstance(whole, bool):
        raise ApiError(400, "'whole' must be true or false")
    ctx().recording.discard("phone", whole=whole)
    return {"status": ctx().recording.status().as_json()}, 202


@bp.post("/tags")
def add_tag() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Tag the take at ``now - delay_ms``; answered once the tag is durable. The answer's
    ``Server-Timing`` says how long the kit took: ``app`` from the request's start in the
    app, ``commit`` the tag's commit within it (ms), to tell a slow kit from a slow
    network or phone."""
    began = time.perf_counter()
    body = json_body()
    only_keys(body, {"id", "label", "note", "delay_ms"})
    tag_id = ident(body.get("id"), "'id'")
    label = text(body, "label", max_len=MAX_LABEL_LEN)
    note = text(body, "note", max_len=MAX_NOTE_LEN, required=False, single_line=False)
    max_ms = float(current_app.config["KIT_MAX_TAG_DELAY_S"]) * 1000
    delay_ms = number(body, "delay_ms", low=0, high=max_ms)
    with refused_values():
        tag, new = ctx().recording.add_tag(tag_id, label, note, phone().name, round(delay_ms * 1e6))
    done = time.perf_counter()
    start = g.get("started", began)
    timing = f"app;dur={(done - start) * 1000:.1f}, commit;dur={(done - began) * 1000:.1f}"
    return {"tag": tag.as_json(), "new": new}, 201 if new else 200, {"Server-Timing": timing}


@bp.patch("/tags/<tag_id>")
def update_tag(tag_id: str) -> dict[str, Any]:
    ident(tag_id, "a tag id")
    body = json_body()
    only_keys(body, {"label", "note", "at_ns", "nudge_ms"})
    edit: TagEdit = {}
    if "label" in body:
        edit["label"] = text(body, "label", max_len=MAX_LABEL_LEN)
    if "note" in body:
        edit["note"] = text(body, "note", max_len=MAX_NOTE_LEN, required=False, single_line=False)
    if "at_ns" in body:
        at = body["at_ns"]
        if isinstance(at, bool) or not isinstance(at, int):
            raise ApiError(400, "'at_ns' must be an integer (kit-clock nanoseconds)")
        edit["at_ns"] = at
    if "nudge_ms" in body:
        nudge_ms = number(body, "nudge_ms", low=-NUDGE_MAX_MS, high=NUDGE_MAX_MS)
        edit["nudge_ns"] = round(nudge_ms * 1e6)
    if "at_ns" in edit and "nudge_ns" in edit:
        raise ApiError(400, "send 'at_ns' or 'nudge_ms', not both")
    if not edit:
        raise ApiError(400, "send 'label', 'note', 'at_ns' and/or 'nudge_ms'")
    with refused_values():
        tag = ctx().visits.update_tag(tag_id, **edit)
    return {"tag": tag.as_json()}


@bp.delete("/tags/<tag_id>")
def delete_tag(tag_id: str) -> dict[str, Any]:
    ctx().visits.delete_tag(ident(tag_id, "a tag id"))
    return {"deleted": tag_id}


@bp.post("/tags/<tag_id>/restore")
def restore_tag(tag_id: str) -> dict[str, Any]:
    ctx().visits.restore_tag(ident(tag_id, "a tag id"))
    return {"restored": tag_id}


@bp.get("/labels")
def labels() -> dict[str, Any]:
    return {"labels": ctx().visits.labels()}


@bp.put("/labels")
def set_labels() -> dict[str, Any]:
    body = json_body()
    only_keys(body, {"labels"})
    raw = body.get("labels")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LABELS:
        raise ApiError(400, f"'labels' must be a list of 1 to {MAX_LABELS} labels")
    values = [text({"label": v}, "label", max_len=MAX_PAD_LABEL_LEN) for v in raw]
    with refused_values():
        return {"labels": ctx().visits.set_labels(values)}


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
    ctx().audit.record(AuditKind.PHONE_REVOKED, {"phone_id": revoked.id, "by": me.id})
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
    """What another device needs to pair now: the current code and link (they change
    every 10 minutes and after each use; the label's pair only just after start)."""
    store = ctx().pairing
    return {
        "code": store.code,
        "link": store.link(request.host_url),
        "locked_for_s": round(store.locked_for(request.remote_addr or "")),
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
        after = sequence_number(after_arg, "'after' (a frame sequence number)")
    recording = ctx().recording
    frame = recording.preview_jpeg()
    status = recording.status()
    headers = {
        "X-Level-Dbfs": str(round(status.level_dbfs, 1)),
        "X-State": status.state.value,
        "X-Elapsed-S": str(round(status.elapsed_s, 3)),
    }
    if frame is None or frame[0] == after:
        return Response(status=204, headers=headers)
    seq, jpeg = frame
    return Response(jpeg, mimetype="image/jpeg", headers={**headers, "X-Frame-Seq": str(seq)})
