"""Live updates: the kit's event log as server-sent events.

A phone first fetches ``/api/state`` (which carries ``event_id``), then opens
``/api/events?after=<event_id>``. The browser's automatic reconnects send
``Last-Event-ID``, which wins over ``after``. If the phone has missed more
than the log keeps (or the kit restarted and its ids began again), it gets a
``resync`` event and fetches the state again. A ``heartbeat`` event every
``KIT_HEARTBEAT_S`` lets both ends notice a dead connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, current_app, request

from kit.daemon.events import Event, EventKind
from web.context import Stream, ctx, phone
from web.http import ApiError, sequence_number

bp = Blueprint("events", __name__, url_prefix="/api")

RETRY_MS = 2000  # how soon the browser reconnects a dropped stream
_POLL_S = 1.0  # how often a waiting stream checks whether it should end


def _frame(event: Event) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n".encode()


def _last_id() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    return sequence_number(raw, "Last-Event-ID (or 'after', an event id)")


def event_stream(last_id: int, show: Callable[[Event], Event | None] | None = None) -> Response:
    """The kit's event log from ``last_id`` on, as server-sent events to the paired caller.

    ``show`` filters or reduces each event (None: not sent); with a filter, a
    heartbeat carries the id of the last event looked at, so a reconnect does not
    look at the skipped ones again. Without one, a heartbeat has no id and never
    moves the phone's Last-Event-ID.
    """
    if request.method == "HEAD":
        # No body follows a HEAD, so its hang-up would never be seen: hold no stream for it.
        return Response(mimetype="text/event-stream", headers={"Cache-Control": "no-store"})
    context = ctx()
    me = phone()
    stream = context.streams.open(me.id)
    if stream is None:
        raise ApiError(503, "too many live connections", headers={"Retry-After": "5"})
    heartbeat_s = float(current_app.config["KIT_HEARTBEAT_S"])

    def generate(stream: Stream, last_id: int) -> Iterator[bytes]:
        log = context.recording.events
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            if last_id > log.last_id:
                # Ids from before a restart of the kit: everything the phone knows is stale.
                last_id = log.last_id
                yield _frame(Event(last_id, EventKind.RESYNC, {}))
            quiet_since = time.monotonic()
            while not (stream.cancelled.is_set() or context.closing.is_set()):
                if not context.pairing.is_paired(me.id):
                    return  # revoked while listening
                batch = log.since(last_id, timeout_s=min(_POLL_S, heartbeat_s))
                sent = False
                for event in batch:
                    last_id = event.id
                    shown = event if show is None else show(event)
                    if shown is not None:
                        sent = True
                        yield _frame(shown)
                now = time.monotonic()
                if sent:
                    quiet_since = now
                elif now - quiet_since >= heartbeat_s:
                    quiet_since = now
                    beat = f'event: {EventKind.HEARTBEAT}\ndata: {{"event_id":{last_id}}}\n\n'
                    yield (beat if show is None else f"id: {last_id}\n{beat}").encode()
        finally:
            context.streams.close(stream)

    return Response(
        generate(stream, last_id),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@bp.get("/events")
def events() -> Response:
    return event_stream(_last_id())
