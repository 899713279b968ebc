"""The kit's records: visits, takes and tags (plain frozen data), each with one JSON form.

``as_json()`` is the one way a record leaves the kit (the API, the live
events, the exports' metadata): the phone and every other reader see the
same fields under the same names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DEFAULT_LABELS = (
    # The principles of attuned interaction, in the order guiders learn them...
    "Being attentive",
    "Encouraging initiatives",
    "Receiving initiatives",
    "Developing attuned interactions",
    "Guiding",
    "Deepening discussion",
    # ...and a plain tag, because guiders tag first and classify later.
    "Better than usual ★",
)
"""The tag pad's labels until an organisation edits them."""


class TakeState(StrEnum):
    """Where a take is in its life."""

    RECORDING = "recording"  # raw streams are being written (or were, before a crash)
    FINALISING = "finalising"  # the MP4 is being muxed
    READY = "ready"  # the MP4 is complete and durable
    EMPTY = "empty"  # stopped before the first frame; nothing to keep
    FAILED = "failed"  # the raw streams could not be made into an MP4 (kept on disk)
    DISCARDED = "discarded"  # the family asked for all of it to be destroyed


UNFINISHED = (TakeState.RECORDING, TakeState.FINALISING)


class Purpose(StrEnum):
    """What the family agreed the footage may be used for."""

    REVIEW = "review"  # the shared review with the family
    SUPERVISION = "supervision"  # the guider's supervisor watches it
    TRAINING = "training"  # used to train other guiders


class ConsentBy(StrEnum):
    """Who gave consent: a role, never a name."""

    PARENT = "parent"
    CARER = "carer"
    GUARDIAN = "guardian"
    YOUNG_PERSON = "young person"
    OTHER = "other"


@dataclass(frozen=True)
class Consent:
    """The family's consent, which a visit needs before it can record."""

    given_by: ConsentBy
    purposes: frozenset[Purpose]
    erase_by: str  # an ISO date (YYYY-MM-DD): the visit is erased on that day

    def allows(self, purpose: Purpose) -> bool:
        return purpose in self.purposes

    def as_json(self) -> dict[str, Any]:
        return {
            "given_by": self.given_by.value,
            "purposes": sorted(p.value for p in self.purposes),
            "erase_by": self.erase_by,
        }


class Access(StrEnum):
    """Whether the kit can read a visit's footage, notes and case reference."""

    READABLE = "readable"  # open (or ended and not yet sealed): the kit holds its key
    SEALED = "sealed"  # ended and sealed: only the organisation's key opens it
    KEY_LOST = "key_lost"  # the kit lost its key (power cut, reboot): only the organisation's
    PLAIN = "plain"  # recorded before encryption at rest (schema 2): never encrypted


class VisitState(StrEnum):
    """A visit records only while it is open; the guider ends it when they leave."""

    OPEN = "open"
    ENDED = "ended"


@dataclass(frozen=True)
class Visit:
    """One visit to a family: its case reference, its takes, tags and outputs.

    Instants are on the kit clock of the boot that stamped them (``boot_id``):
    after a reboot they are only labels, which is what ``started_wall`` and
    ``ended_wall`` (the wall clock, "" when the kit's clock was unset) are for.
    """

    id: str
    case_ref: str  # the organisation's reference for the family ("" when it is sealed)
    started_ns: int
    boot_id: str
    started_wall: str
    ended_ns: int | None = None
    ended_wall: str = ""
    consent: Consent | None = None
    access: Access = Access.READABLE

    @property
    def readable(self) -> bool:
        """Whether the kit can read its footage and texts."""
        return self.access in (Access.READABLE, Access.PLAIN)

    @property
    def state(self) -> VisitState:
        return VisitState.OPEN if self.ended_ns is None else VisitState.ENDED

    @property
    def is_open(self) -> bool:
        return self.ended_ns is None

    def as_json(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {
            **fields,
            "consent": self.consent.as_json() if self.consent else None,
            "access": self.access.value,
            "state": self.state.value,
        }


@dataclass(frozen=True)
class Take:
    """One press-to-press recording."""

    id: str
    visit_id: str
    seq: int
    state: TakeState
    boot_id: str
    first_frame_ns: int | None
    end_ns: int | None
    video_frames: int
    dropped_frames: int
    mic_overflows: int
    audio_skew_ppm: float | None
    error: str
    recovered: bool = False  # finalised after a crash or power cut, from its raw streams
    keep_until_ns: int | None = None  # a discard destroyed everything from this instant on

    @property
    def duration_ns(self) -> int:
        if self.first_frame_ns is None or self.end_ns is None:
            return 0
        return self.end_ns - self.first_frame_ns

    def as_json(self) -> dict[str, Any]:
        # Everything but the kit's own bookkeeping (boot, mic overflows, skew), plus the length.
        fields = dataclasses.asdict(self)
        for private in ("boot_id", "mic_overflows", "audio_skew_ppm", "keep_until_ns"):
            del fields[private]
        return {**fields, "state": self.state.value, "duration_s": round(self.duration_ns / 1e9, 3)}


@dataclass(frozen=True)
class Tag:
    """A moment a guider marked: an instant on the kit clock, a label, a note."""

    id: str
    visit_id: str
    take_id: str | None
    at_ns: int
    label: str
    note: str
    author: str
    created_ns: int

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MomentEdit:
    """What the guider changed about one moment of a visit's film (kit/cutting/moments.py).

    A moment is named by its first tag's id (``moment_id``); an edit stays with the moment
    holding that tag when the visit is planned again, and is ignored while no moment
    does (its tag deleted). Instants are on the kit clock, like the tags'.
    """

    visit_id: str
    moment_id: str
    start_ns: int | None = None  # the trimmed start (None: as planned)
    end_ns: int | None = None  # the trimmed end (None: as planned)
    dropped: bool = False  # left out of the family's film (its tags are kept)
    position: int | None = None  # its place in the film's order (None: in time order)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
