"""The kit's records: sessions, takes and tags (plain frozen data)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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


UNFINISHED = (TakeState.RECORDING, TakeState.FINALISING)


@dataclass(frozen=True)
class Session:
    """One visit to a family: consent, takes, tags and outputs."""

    id: str
    created_ns: int
    wall_time: str  # a label for humans only ("" when the kit's clock was unset)
    title: str


@dataclass(frozen=True)
class Take:
    """One press-to-press recording."""

    id: str
    session_id: str
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

    @property
    def duration_ns(self) -> int:
        if self.first_frame_ns is None or self.end_ns is None:
            return 0
        return self.end_ns - self.first_frame_ns


@dataclass(frozen=True)
class Tag:
    """A moment a guider marked: an instant on the kit clock, a label, a note."""

    id: str
    session_id: str
    take_id: str | None
    at_ns: int
    label: str
    note: str
    author: str
    created_ns: int
