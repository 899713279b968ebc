"""A small event log for live updates (server-sent events with ``Last-Event-ID``).

Every state change, tag and progress step is appended with a rising id. A
listener that reconnects asks for everything after the last id it saw; if
that has already scrolled out of the buffer it gets a ``resync`` event and
should fetch the whole state again.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One thing that happened: ``kind`` (e.g. "state", "tag", "progress") and JSON data."""

    id: int
    kind: str
    data: dict[str, Any]


class EventLog:
    """A bounded, thread-safe log of events that listeners can wait on."""

    def __init__(self, capacity: int = 1000) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._next = 1
        self._cond = threading.Condition()

    @property
    def last_id(self) -> int:
        with self._cond:
            return self._next - 1

    def publish(self, kind: str, data: dict[str, Any]) -> Event:
        with self._cond:
            event = Event(self._next, kind, data)
            self._next += 1
            self._events.append(event)
            self._cond.notify_all()
            return event

    def since(self, last_id: int, timeout_s: float = 0.0) -> list[Event]:
        """Events after ``last_id``, waiting up to ``timeout_s`` for one.

        If events after ``last_id`` were already dropped from the buffer, a
        single synthetic ``resync`` event (carrying the newest id) is returned.
        """
        with self._cond:
            if timeout_s > 0 and self._next - 1 <= last_id:
                self._cond.wait_for(lambda: self._next - 1 > last_id, timeout=timeout_s)
            if not self._events or self._next - 1 <= last_id:
                return []
            oldest = self._events[0].id
            if last_id < oldest - 1:
                return [Event(self._next - 1, "resync", {})]
            return [e for e in self._events if e.id > last_id]
