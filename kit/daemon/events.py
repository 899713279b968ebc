"""Live updates: typed event kinds and payloads, and the log the phones listen to.

Every state change, visit, take, tag and cut is appended with a rising id.
A listener that reconnects asks for everything after the last id it saw; if
that has already scrolled out of the buffer it gets a ``resync`` event and
should fetch the whole state again.

Each payload is a frozen dataclass with its :class:`EventKind` and one JSON
form (``as_json``); the page takes the list of kinds from :class:`EventKind`
(rendered into every page), so the two ends cannot disagree on a name.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol, cast

from kit.model import Tag, Take, Visit


class EventKind(StrEnum):
    """What an event is about."""

    STATUS = "status"  # the state machine's snapshot (kit.daemon.api.Status)
    VISIT = "visit"  # a visit started, was renamed or ended
    TAKE = "take"  # a take's film was made (ready, empty or failed), or it was discarded
    TAG = "tag"  # a tag was added, edited, deleted or restored
    CUT = "cut"  # a rough cut finished (or failed)
    LABELS = "labels"  # the tag pad's labels changed
    REFUSED = "refused"  # a start was refused (e.g. no room on the card)
    DEVICE = "device"  # the camera or the microphone was lost, came back, or is missing
    PHONES = "phones"  # a phone paired, was renamed or revoked
    EXPORT = "export"  # a copy of a visit to a USB stick: its progress, then its outcome
    PRESENT = "present"  # a visit's film shown to the family: a remote's command, a screen's state
    RESYNC = "resync"  # from the stream: events were missed; fetch the state again
    HEARTBEAT = "heartbeat"  # from the stream: nothing happened, the link is alive


class Payload(Protocol):
    """An event's data: a kind and one JSON form."""

    KIND: ClassVar[EventKind]

    def as_json(self) -> dict[str, Any]: ...


class _Fields:
    """A payload whose JSON form is just its fields."""

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(cast(Any, self))


class TagAction(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    DELETED = "deleted"
    RESTORED = "restored"


@dataclass(frozen=True)
class TagChanged:
    KIND: ClassVar[EventKind] = EventKind.TAG
    action: TagAction
    tag: Tag

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action.value, "tag_id": self.tag.id, "tag": self.tag.as_json()}


class VisitAction(StrEnum):
    STARTED = "started"
    UPDATED = "updated"
    ENDED = "ended"
    SEALED = "sealed"  # the kit no longer holds its key (ended, or lost to a power cut)
    ERASED = "erased"  # past its erase-by date: gone


@dataclass(frozen=True)
class VisitChanged:
    KIND: ClassVar[EventKind] = EventKind.VISIT
    action: VisitAction
    visit: Visit

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "visit_id": self.visit.id,
            "visit": self.visit.as_json(),
        }


@dataclass(frozen=True)
class TakeEnded:
    KIND: ClassVar[EventKind] = EventKind.TAKE
    take: Take

    def as_json(self) -> dict[str, Any]:
        return {
            "take_id": self.take.id,
            "visit_id": self.take.visit_id,
            "state": self.take.state.value,
            "take": self.take.as_json(),
        }


@dataclass(frozen=True)
class CutFinished(_Fields):
    KIND: ClassVar[EventKind] = EventKind.CUT
    visit_id: str
    error: str = ""


@dataclass(frozen=True)
class LabelsChanged:
    KIND: ClassVar[EventKind] = EventKind.LABELS
    labels: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"labels": list(self.labels)}


@dataclass(frozen=True)
class Refused(_Fields):
    KIND: ClassVar[EventKind] = EventKind.REFUSED
    reason: str


class Device(StrEnum):
    CAMERA = "camera"
    MICROPHONE = "microphone"


# What the phone says about the devices (the status's error while it lasts, and a
# ``device`` event). Sound is worth less than picture: a take goes on without it.
MIC_LOST = "Microphone lost: recording picture only"
MIC_MISSING = "No microphone: recording picture only"
MIC_BACK = "Microphone back: recording sound again"
MIC_ABSENT = "No microphone: a take would record picture only"
CAMERA_STOPPED = "The camera stopped: the take was stopped and kept up to then"
NO_CAMERA = "No camera: cannot record"


class DeviceState(StrEnum):
    """What happened to a device (:class:`DeviceChanged`)."""

    LOST = "lost"  # the microphone stopped during a take: the take goes on, picture only
    BACK = "back"  # the microphone works again: the take has sound from here on
    FAILED = "failed"  # the camera stopped during a take: the take was stopped and kept
    MISSING = "missing"  # not there at a start (the camera: refused; the microphone: picture only)


@dataclass(frozen=True)
class DeviceChanged:
    """A capture device's trouble, as the phone says it (``message``, one line). The status's
    ``error`` carries it too while it lasts, for a phone that was not listening."""

    KIND: ClassVar[EventKind] = EventKind.DEVICE
    device: Device
    state: DeviceState
    message: str
    take_id: str | None = None  # the take it happened in, if any

    def as_json(self) -> dict[str, Any]:
        return {
            "device": self.device.value,
            "state": self.state.value,
            "message": self.message,
            "take_id": self.take_id,
        }


@dataclass(frozen=True)
class PhonesChanged(_Fields):
    KIND: ClassVar[EventKind] = EventKind.PHONES


class ExportPhase(StrEnum):
    """Where a copy of a visit to a USB stick is (kit/handoff/jobs.py)."""

    HASHING = "hashing"  # reading the visit once to sign its manifest (skipped if kept)
    WRITING = "writing"  # onto the stick, each file synced
    VERIFYING = "verifying"  # read back from the stick against the manifest
    EJECTING = "ejecting"  # flushed, unmounted, powered off
    DONE = "done"  # on the stick, verified, ejected: it can be pulled out
    FAILED = "failed"  # ``error`` says why; nothing half-written looks complete


@dataclass(frozen=True)
class ExportProgress:
    """One export job as it stands (also the job in ``GET /api/handoff``)."""

    KIND: ClassVar[EventKind] = EventKind.EXPORT
    job_id: str
    visit_id: str
    to: str  # "usb"
    stick: str  # the stick's id (kit/handoff/usb.py)
    stick_label: str
    phase: ExportPhase
    fraction: float = 0.0  # of this phase, 0..1
    overall: float = 0.0  # of the whole job, 0..1 (for one progress bar)
    bytes: int = 0  # the bundle's size, once known
    bytes_done: int = 0  # through this phase
    bundle: str = ""  # the bundle's folder name on the stick
    error: str = ""  # why it failed, for the phone
    safe_to_remove: bool = False  # the stick is ejected (or was never touched): pull it out

    @property
    def running(self) -> bool:
        return self.phase not in (ExportPhase.DONE, ExportPhase.FAILED)

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(phase=self.phase.value, running=self.running)
        return data


class PresentAction(StrEnum):
    """What a ``present`` event says (web/views/present.py): a remote's command, which every
    screen showing the visit follows, or a report."""

    OPEN = "open"  # show this visit: screens waiting (or showing another) come to it
    CLOSE = "close"  # stop showing it: the screens let go of the film
    PLAY = "play"  # at ``rate`` if given; a moment plays to its end and stops there
    PAUSE = "pause"  # on the frame showing
    RATE = "rate"  # play at ``rate`` (1, 0.5, 0.25) from now on
    MOMENT = "moment"  # to the start of moment ``moment``
    NEXT = "next"  # to the start of the moment after the one showing
    PREVIOUS = "previous"  # to the start of the moment before it
    STEP = "step"  # paused, ``frames`` frames on (negative: back)
    STILL = "still"  # show (``still`` true) or hide the still of the moment showing
    STATE = "state"  # a screen's report: ``time_s``, ``playing``, ``rate``, ``moment``, ``still``
    STILLS = "stills"  # the still of ``moment`` changed (a bubble put on or taken off)


@dataclass(frozen=True)
class Presenting:
    """One thing about a visit being shown to the family. ``device`` is the paired phone (or
    screen) that sent it: an id, never a name (screens receive these). Fields that do not
    apply to ``action`` are None and left out of the JSON form."""

    KIND: ClassVar[EventKind] = EventKind.PRESENT
    visit_id: str
    action: PresentAction
    device: str
    moment: int | None = None
    rate: float | None = None
    frames: int | None = None
    still: bool | None = None
    time_s: float | None = None
    playing: bool | None = None

    def as_json(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        data["action"] = self.action.value
        return data


@dataclass(frozen=True)
class Resync(_Fields):
    KIND: ClassVar[EventKind] = EventKind.RESYNC


@dataclass(frozen=True)
class Event:
    """One thing that happened: its id, its kind and its payload's JSON form."""

    id: int
    kind: EventKind
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

    def publish(self, payload: Payload) -> Event:
        data = payload.as_json()
        with self._cond:
            event = Event(self._next, payload.KIND, data)
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
                return [Event(self._next - 1, EventKind.RESYNC, {})]
            return [e for e in self._events if e.id > last_id]
