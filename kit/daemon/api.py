"""What the phone page (and any other front end) may ask of the running kit.

The web layer talks only to this Protocol, so its tests run against a fake
controller and the daemon can change behind it. Every method is safe to call
from any thread. Errors: :class:`kit.errors.StateError` when the current state
does not allow the action, :class:`kit.errors.NotFound` for unknown ids,
:class:`kit.errors.StorageFull` when there is no room to record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kit.daemon.events import EventLog
from kit.model import Session, Tag, Take


@dataclass(frozen=True)
class Status:
    """A snapshot of the kit for the phone (also published as a "state" event)."""

    state: str  # idle | recording | finalising | cutting | error
    session_id: str | None
    take_id: str | None
    started_ns: int | None  # first frame of the current take, kit clock
    now_ns: int  # the kit clock when this snapshot was taken
    minutes_left: float  # recording minutes the free space allows
    low_storage: bool
    level_dbfs: float  # microphone peak level, for the live meter
    error: str = ""
    cut_progress: float | None = None  # 0..1 while a rough cut is being made
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        elapsed = (self.now_ns - self.started_ns) / 1e9 if self.started_ns else 0.0
        return {
            "state": self.state,
            "session_id": self.session_id,
            "take_id": self.take_id,
            "started_ns": self.started_ns,
            "now_ns": self.now_ns,
            "elapsed_s": round(max(0.0, elapsed), 3),
            "minutes_left": round(self.minutes_left, 1),
            "low_storage": self.low_storage,
            "level_dbfs": round(self.level_dbfs, 1),
            "error": self.error,
            "cut_progress": self.cut_progress,
            **self.extra,
        }


class Controller(Protocol):
    """The running kit, as a front end sees it."""

    @property
    def events(self) -> EventLog: ...

    def status(self) -> Status: ...

    def start(self, source: str = "phone") -> None:
        """Ask for a take to start (returns once the request is queued)."""
        ...

    def stop(self, source: str = "phone") -> None:
        """Ask for the current take to stop (returns once the request is queued)."""
        ...

    def now_ns(self) -> int:
        """The kit clock."""
        ...

    def add_tag(
        self, tag_id: str, label: str, note: str, author: str, delay_ns: int
    ) -> tuple[Tag, bool]:
        """Tag the current take at ``now - delay_ns``; committed before it returns.

        Returns the tag and whether it is new (False: a retry of ``tag_id``).
        Raises StateError when nothing is recording.
        """
        ...

    def tag(self, tag_id: str) -> Tag:
        """One tag (NotFound if unknown or deleted)."""
        ...

    def update_tag(self, tag_id: str, **values: Any) -> Tag:
        """Relabel (``label``), re-note (``note``) or move (``at_ns``) a tag.

        ValueError for a bad label or note, or an ``at_ns`` outside the tag's take.
        """
        ...

    def delete_tag(self, tag_id: str) -> None: ...

    def restore_tag(self, tag_id: str) -> None: ...

    def sessions(self) -> list[Session]: ...

    def takes(self, session_id: str) -> list[Take]: ...

    def tags(self, session_id: str) -> list[Tag]: ...

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        """The newest preview frame ``(sequence, JPEG)`` from the camera."""
        ...

    def labels(self) -> list[str]:
        """The tag labels the pad shows, in order."""
        ...

    def set_labels(self, labels: list[str]) -> None: ...

    def cut(self, session_id: str) -> dict[str, Any] | None:
        """The session's last rough cut, as ``cut/cut.json`` describes it, or None.

        Keys: ``film`` (path), ``duration_s``, ``fps``, ``clips`` (``number``,
        ``film_start_s``, ``film_end_s``, ``labels``, ``notes``, ``tag_ids``,
        ``tags_film_s``), ``stills`` (``tag_id``, ``label``, ``note``, ``path``,
        ``film_s``), ``contact_sheet``, ``exports`` (``otio``, ``edl``, ``csv``,
        ``vtt``). Paths are relative to the data directory; serve them with
        :meth:`cut_file` using the part after ``sessions/<id>/cut/``.
        """
        ...

    def cut_file(self, session_id: str, name: str) -> Path:
        """The file ``name`` (e.g. ``rough-cut.mp4``, ``stills/01-x.jpg``) of the session's
        cut directory; NotFound for anything else (no path escapes)."""
        ...

    def recut(self, session_id: str) -> None:
        """Make the session's rough cut again (queued; progress arrives as status events)."""
        ...
