"""The messages the daemon's worker handles: posted by the button, the phone,
the recorder, the finaliser, the cutter and the signal handlers; handled in order by
one thread."""

from __future__ import annotations

from dataclasses import dataclass

from kit.recording.takes import Finished


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
    """The take recorder's ``on_error``: a failure that stops the take, everything recorded
    up to then kept (the card is full; the camera stopped: ``CameraStalled``), or a device
    report that does not (``MicrophoneLost``, ``MicrophoneBack``: the take goes on, picture
    only meanwhile). Reports name their take (kit.recording.recorder.DeviceReport)."""

    error: Exception


@dataclass(frozen=True)
class HardwareProblem:
    """A device failed outside a take (e.g. no camera at start-up): show it, stay up (a
    start tries the camera again, and is refused with a clear message while it is missing)."""

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
class Finalised:
    """The background finaliser is done with a stopped take: its film is made
    (``finished``: the take's final row, ready, empty or failed), or finishing raised
    ``error`` (the row is left as it was, for recovery)."""

    take_id: str
    finished: Finished | None
    error: str = ""


@dataclass(frozen=True)
class Shutdown:
    """Stop the take recording (if any), wait for the films being made (within the
    worker's allowance; what is left is recovery's), and end the worker loop."""
