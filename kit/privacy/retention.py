"""Retention: visits past their erase-by date are erased, at start-up and daily.

The date is the kit's best idea of today (the phone's clock, or a system
clock that looks set); while it knows none it erases nothing and says so,
rather than trusting a Pi that booted without network time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from kit.clock import NS_PER_S, Clock
from kit.daemon.wallclock import WallClock
from kit.model import Visit
from kit.privacy.consent import due_for_erasure

log = logging.getLogger(__name__)


class Eraser(Protocol):
    """What retention needs of the visit library."""

    def visits(self) -> list[Visit]: ...

    def erase(self, visit_id: str, why: str) -> None: ...


def today(wall: WallClock, clock: Clock) -> date | None:
    """Today's date (UTC) by the kit's best clock, or None while it knows none."""
    unix = wall.unix_ns(clock.now())
    if unix is None:
        return None
    return datetime.fromtimestamp(unix / NS_PER_S, tz=UTC).date()


def due(visits: list[Visit], on: date) -> list[Visit]:
    """The visits to erase on ``on`` (pure): past their erase-by date, not open."""
    return [v for v in visits if not v.is_open and due_for_erasure(v, on)]


@dataclass
class Retention:
    """Erases what is due whenever :meth:`sweep` is called (the daemon: at start, hourly)."""

    library: Eraser
    today: Callable[[], date | None]

    def sweep(self) -> list[str]:
        on = self.today()
        if on is None:
            log.warning("retention: the kit does not know today's date yet; erasing nothing")
            return []
        erased = []
        for visit in due(self.library.visits(), on):
            assert visit.consent is not None
            self.library.erase(visit.id, f"erase-by date {visit.consent.erase_by} reached")
            erased.append(visit.id)
        return erased
