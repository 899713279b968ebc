"""The messages the daemon's worker handles: posted by the button, the phone,
the recorder, the cutter and the signal handlers; handled in order by one thread."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Press:
    """The hardware button was pressed at ``at_ns``."""

    at_ns: int


@dataclass(frozen=True)
class StartRequest:
    source: str


@dataclass(frozen=True)
class StopRequest:
    source: str


@dataclass(frozen=True)
class DiscardRequest:
    """The family asked to stop and discard: the last seconds of the take, or ``whole``."""

    source: str
    whole: bool = False


@dataclass(frozen=True)
class Sweep:
    """Housekeeping when idle: erase the visits past their erase-by date."""


@dataclass(frozen=True)
class Tick:
    """Periodic: check storage, refresh the status."""


@dataclass(frozen=True)
class RecorderFailed:
    error: Exception


@dataclass(frozen=True)
class HardwareProblem:
    """A device failed outside a take (e.g. no camera at start-up): show it, stay up."""

    message: str


@dataclass(frozen=True)
class CutProgress:
    visit_id: str
    fraction: float


@dataclass(frozen=True)
class CutDue:
    """A visit changed (or a re-cut was asked for): ask the library which cut is due."""


@dataclass(frozen=True)
class CutDone:
    visit_id: str
    error: str = ""


@dataclass(frozen=True)
class Shutdown:
    """Stop (finalising any take) and end the worker loop."""
