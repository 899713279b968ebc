"""What the request handlers share: the controller, the pairing store, the hook, live streams."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from flask import current_app, g

from kit.audit.chain import Auditor
from kit.daemon.api import Recording, VisitLibrary
from web.pairing import PairingStore, Phone

COOKIE = "kit_phone"  # the phone's session token (HttpOnly, SameSite=Strict)
CSRF_HEADER = "X-CSRF-Token"  # the phone's CSRF token, on every state-changing request
PAIRING_HEADER = "X-Kit-Pairing"  # "1" on the pairing request (forces a CORS preflight)

PhoneTimeHook = Callable[[float], None]
"""Called with the phone's wall time (Unix seconds, UTC) when it pairs or loads the page."""


class Stream:
    """One open server-sent-event stream; ``cancelled`` ends it within a second."""

    def __init__(self, phone_id: str) -> None:
        self.phone_id = phone_id
        self.cancelled = threading.Event()


@dataclass
class Streams:
    """Open event streams, capped per phone and in total.

    Every stream holds one of the WSGI server's threads, so a phone that
    reloads its page must not pile up streams: the oldest of a phone's streams
    is ended when it opens one more than ``per_phone``.
    """

    per_phone: int
    total: int
    _open: dict[str, deque[Stream]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, phone_id: str) -> Stream | None:
        """A new stream for ``phone_id``, or None when the kit has no room for one.

        When the kit is full, a phone with more than one stream (a second tab, a
        page not yet closed) gives up its oldest, so every phone keeps one.
        """
        with self._lock:
            mine = self._open.setdefault(phone_id, deque())
            while len(mine) >= self.per_phone:
                mine.popleft().cancelled.set()
            if sum(len(q) for q in self._open.values()) >= self.total:
                busiest = max(self._open.values(), key=len)
                # A phone with a spare stream gives one up; else this phone its own.
                victim = busiest if len(busiest) >= 2 else mine
                if not victim:
                    return None  # one stream for each of `total` phones: no room
                victim.popleft().cancelled.set()
            stream = Stream(phone_id)
            mine.append(stream)
            return stream

    def close(self, stream: Stream) -> None:
        with self._lock:
            mine = self._open.get(stream.phone_id)
            if mine is not None and stream in mine:
                mine.remove(stream)

    def count(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._open.values())


@dataclass
class WebContext:
    """The app's collaborators, kept in ``app.extensions["kit"]``."""

    recording: Recording
    visits: VisitLibrary
    pairing: PairingStore
    audit: Auditor
    on_phone_time: PhoneTimeHook | None
    streams: Streams
    closing: threading.Event = field(default_factory=threading.Event)


def ctx() -> WebContext:
    """The current app's :class:`WebContext`."""
    return cast(WebContext, current_app.extensions["kit"])


def phone() -> Phone:
    """The paired phone making this request (set by the app's pairing gate)."""
    return cast(Phone, g.phone)
