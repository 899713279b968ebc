"""What a front end (the phone page) may ask of the running kit: two roles.

- :class:`Recording` is the recording state machine: start, stop, its status,
  the live preview, the live events, and adding a tag to the take being
  recorded (only it knows which take that is, and when "now" is).
- :class:`VisitLibrary` is everything recorded: visits and their lifecycle,
  takes, tags and their edits, the tag pad's labels, rough cuts and their files.
  Every rule about what a tag may be or where it may move lives there, once.

The web layer talks only to these protocols; its tests run the same contract
over the fakes they use and over the real kit (tests/contract/). Every method
is safe to call from any thread. Errors: :class:`kit.errors.StateError` when
the current state does not allow the action, :class:`kit.errors.NotFound` for
unknown ids, :class:`kit.errors.StorageFull` when there is no room, and
``ValueError`` for a value the kit refuses (a label too long, a move outside
the take).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, BinaryIO, ClassVar, Protocol, TypedDict, Unpack

from kit.daemon.events import EventKind, EventLog
from kit.model import Consent, Tag, Take, Visit


class State(StrEnum):
    """What the kit is doing, in one word (:attr:`Status.state`).

    The hardware is idle, recording or in error; a film being made (a take's,
    finalised in the background, or a visit's rough cut) goes on beside it. The
    one word names the most important of these: ``recording`` while a take
    records (whatever is being made meanwhile), then ``error``, then
    ``finalising`` while a stopped take's film is still being made, then
    ``cutting``, else ``idle``. :attr:`Status.finalising` and
    :attr:`Status.cut_visit_id` say what is being made, whatever the state.
    """

    IDLE = "idle"
    RECORDING = "recording"
    FINALISING = "finalising"
    CUTTING = "cutting"
    ERROR = "error"


@dataclass(frozen=True)
class Status:
    """A snapshot of the kit for the phone (also published as a ``status`` event)."""

    KIND: ClassVar[EventKind] = EventKind.STATUS
    state: State
    visit_id: str | None  # the open visit (None: the next take opens one)
    take_id: str | None  # the take recording, else the last one this run
    started_ns: int | None  # first frame of the take recording, kit clock
    now_ns: int  # the kit clock when this snapshot was taken
    minutes_left: float  # recording minutes the free space allows
    low_storage: bool
    level_dbfs: float  # microphone peak level, for the live meter
    boot_id: str = ""  # the boot whose clock the instants are on (they restart at a reboot)
    error: str = ""
    cut_progress: float | None = None  # 0..1 while a rough cut is being made
    cut_visit_id: str | None = None  # the visit being cut
    # The stopped takes whose films are still being made (oldest first), also while the
    # next take records: a new take may start at once after a stop.
    finalising: tuple[str, ...] = ()

    @property
    def elapsed_s(self) -> float:
        if self.started_ns is None:
            return 0.0
        return max(0.0, (self.now_ns - self.started_ns) / 1e9)

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "visit_id": self.visit_id,
            "take_id": self.take_id,
            "started_ns": self.started_ns,
            "now_ns": self.now_ns,
            "elapsed_s": round(self.elapsed_s, 3),
            "minutes_left": round(self.minutes_left, 1),
            "low_storage": self.low_storage,
            "level_dbfs": round(self.level_dbfs, 1),
            "boot_id": self.boot_id,
            "error": self.error,
            "cut_progress": self.cut_progress,
            "cut_visit_id": self.cut_visit_id,
            "finalising_take_ids": list(self.finalising),
        }


class TagEdit(TypedDict, total=False):
    """What an edit of a tag may change: its label, its note, or where it is (one of
    ``at_ns``, an instant on the kit clock, or ``nudge_ns``, a move by that much)."""

    label: str
    note: str
    at_ns: int
    nudge_ns: int


CutManifest = dict[str, Any]
"""A visit's last rough cut as ``cut/cut.json`` describes it (see kit.cutting.manifest),
plus ``up_to_date``: whether it was made from the visit's takes and tags as they are now."""


class Recording(Protocol):
    """The recording state machine, as a front end sees it."""

    @property
    def events(self) -> EventLog: ...

    def status(self) -> Status: ...

    def now_ns(self) -> int:
        """The kit clock."""
        ...

    def start(self, source: str = "phone") -> None:
        """Ask for a take to start in the open visit (refused if none is open).

        Returns once the request is queued; the outcome arrives as ``status``
        (or ``refused``) events. A take may start while the previous one's film
        is still being made (``status.finalising``).
        """
        ...

    def stop(self, source: str = "phone") -> None:
        """Ask for the take being recorded to stop (returns once the request is queued).

        The recording stops at once; its film is made in the background (the take
        is then in ``status.finalising``) and a ``take`` event says when it is."""
        ...

    def add_tag(
        self, tag_id: str, label: str, note: str, author: str, delay_ns: int
    ) -> tuple[Tag, bool]:
        """Tag the take being recorded at ``now - delay_ns``; committed before it returns.

        Returns the tag and whether it is new (False: a retry of ``tag_id``).
        StateError when nothing is recording (a tap from just before a Stop
        still lands in the take it was made in).
        """
        ...

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        """The newest preview frame ``(sequence, JPEG)`` from the camera."""
        ...

    def discard(self, source: str, *, whole: bool) -> None:
        """The family asked to stop and discard: stop the take recording now (if any) and
        destroy its last ``privacy.discard_s`` seconds, or all of it; without one
        recording, the same for the take that ended last (queued, like start)."""
        ...


@dataclass
class MediaFile:
    """An open media file: plain bytes (decrypted as read), its size and a validator."""

    file: BinaryIO
    size: int
    etag: str  # changes whenever the file is replaced
    modified: float  # unix seconds


class VisitLibrary(Protocol):
    """Everything the kit has recorded, as a front end reads and edits it."""

    def visits(self) -> list[Visit]:
        """Every visit, oldest first."""
        ...

    def visit(self, visit_id: str) -> Visit: ...

    def open_visit(self) -> Visit | None:
        """The visit the next take records into, if one is open."""
        ...

    def start_visit(self, case_ref: str, consent: Consent) -> Visit:
        """Open a visit with the family's consent (see :mod:`kit.privacy.consent`).

        StateError if another visit is open; NotAllowed if the kit has no
        organisation key to encrypt it for.
        """
        ...

    def consent_form(self) -> dict[str, Any]:
        """What a consent form offers: roles, purposes, the suggested erase-by date."""
        ...

    def check_consent(self, given_by: str, purposes: list[str], erase_by: str) -> Consent:
        """A consent record from a form's values; ValueError saying what is wrong."""
        ...

    def rename_visit(self, visit_id: str, case_ref: str) -> Visit: ...

    def end_visit(self, visit_id: str) -> Visit:
        """End an open visit; StateError while it is recording or if it has ended."""
        ...

    def takes(self, visit_id: str) -> list[Take]: ...

    def tags(self, visit_id: str) -> list[Tag]:
        """The visit's live (not deleted) tags, in time order."""
        ...

    def tag(self, tag_id: str) -> Tag:
        """One live tag (NotFound if unknown or deleted)."""
        ...

    def update_tag(self, tag_id: str, **edit: Unpack[TagEdit]) -> Tag:
        """Relabel, re-note, or move a tag (to ``at_ns``, or by ``nudge_ns``).

        A move must stay inside the tag's take: ``at_ns`` outside it is a
        ValueError; a nudge past either end stops at that end. StateError if
        the take has no pictures to move it within.
        """
        ...

    def delete_tag(self, tag_id: str) -> Tag:
        """Delete a tag (kept, so :meth:`restore_tag` can undo it); returns it."""
        ...

    def restore_tag(self, tag_id: str) -> Tag: ...

    def labels(self) -> list[str]:
        """The tag labels the pad shows, in order."""
        ...

    def set_labels(self, labels: list[str]) -> list[str]:
        """Replace the pad's labels (trimmed); returns them as stored."""
        ...

    def cut(self, visit_id: str) -> CutManifest | None:
        """The visit's last rough cut, or None if it was never cut.

        Paths in it are relative to the data directory; serve them with
        :meth:`cut_file`, naming the part after the visit's cut directory.
        """
        ...

    def cut_file(self, visit_id: str, name: str) -> MediaFile:
        """The file ``name`` (e.g. ``rough-cut.mp4``, ``stills/01-x.jpg``) of the visit's
        cut directory, open for reading (decrypted); NotFound for anything else (no path
        escapes), Sealed once the kit no longer holds the visit's key, NotAllowed
        without the family's consent to review."""
        ...

    def recut(self, visit_id: str) -> None:
        """Make the visit's rough cut again (queued; progress arrives as status events)."""
        ...
