"""The cut planner: which stretches of which takes make the rough cut (pure, no I/O).

Each tag asks for a clip from ``lead`` before its instant to ``lag`` after it
(the Sportscode lead/lag model: a guider taps *after* noticing a moment).
Clips are clamped to their take, clips that overlap or touch are merged (the
merged clip carries all their tags), and the result is in time order: takes in
the order given, clips by start within a take. Takes are kept apart even when
their instants would interleave, because instants from different boots of the
kit are not comparable (the clock is ``CLOCK_MONOTONIC``).

All instants and durations are integer nanoseconds on the kit clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kit.clock import seconds
from kit.config import CutConfig
from kit.errors import ConfigError
from kit.model import Tag, Take


@dataclass(frozen=True)
class Window:
    """How much of a take a tag asks for: ``lead`` before its instant, ``lag`` after."""

    lead_ns: int
    lag_ns: int

    def __post_init__(self) -> None:
        if self.lead_ns < 0 or self.lag_ns < 0:
            raise ConfigError("a tag's lead and lag cannot be negative")


@dataclass(frozen=True)
class CutRules:
    """Lead and lag for every tag, with optional overrides per label.

    Labels match case-insensitively, ignoring surrounding spaces, because
    organisations edit their label lists and guiders re-label after the fact.
    """

    default: Window = Window(seconds(8.0), seconds(3.0))
    per_label: tuple[tuple[str, Window], ...] = ()

    @classmethod
    def from_config(
        cls, cut: CutConfig, per_label: Mapping[str, tuple[float, float]] | None = None
    ) -> CutRules:
        """Rules from ``config.cut`` (with its ``label_windows``); ``per_label`` maps a
        label to (lead_s, lag_s) and wins over the config's."""
        windows = {label: (lead, lag) for label, lead, lag in cut.label_windows}
        windows.update(per_label or {})
        return cls(
            default=Window(seconds(cut.lead_s), seconds(cut.lag_s)),
            per_label=tuple(
                (label, Window(seconds(lead), seconds(lag)))
                for label, (lead, lag) in windows.items()
            ),
        )

    def window(self, label: str) -> Window:
        """The window a tag with ``label`` asks for."""
        key = _label_key(label)
        for name, window in self.per_label:
            if _label_key(name) == key:
                return window
        return self.default


def _label_key(label: str) -> str:
    return label.strip().casefold()


@dataclass(frozen=True)
class TakeSpan:
    """The stretch of the kit clock a finished take covers: its first frame to its end."""

    take_id: str
    start_ns: int
    end_ns: int

    @classmethod
    def of(cls, take: Take) -> TakeSpan:
        """The span of a finished take (one with a first frame and an end)."""
        if take.first_frame_ns is None or take.end_ns is None:
            raise ValueError(f"take {take.id} has no first frame or end")
        return cls(take.id, take.first_frame_ns, take.end_ns)


@dataclass(frozen=True)
class Clip:
    """One stretch of one take in the rough cut, with the tags that asked for it."""

    take_id: str
    start_ns: int
    end_ns: int
    tags: tuple[Tag, ...]

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def labels(self) -> tuple[str, ...]:
        """The clip's labels, each once, in the order of their first tag."""
        return tuple(dict.fromkeys(t.label for t in self.tags))

    @property
    def notes(self) -> tuple[str, ...]:
        """The clip's non-empty notes, each once, in tag order."""
        return tuple(dict.fromkeys(t.note.strip() for t in self.tags if t.note.strip()))

    @property
    def title(self) -> str:
        """A human title, the labels only (chapters, exports): the guider's notes are
        private, never in the film the family watches (they go to the exports' markers)."""
        return " + ".join(self.labels)


@dataclass(frozen=True)
class CutPlan:
    """The rough cut as data: clips in time order, and the tags no take could hold."""

    clips: tuple[Clip, ...]
    skipped: tuple[Tag, ...] = ()

    @property
    def duration_ns(self) -> int:
        return sum(c.duration_ns for c in self.clips)

    @property
    def tags(self) -> tuple[Tag, ...]:
        """Every tag that made it into a clip, in film order."""
        return tuple(t for c in self.clips for t in c.tags)


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return min(a1, b1) - max(a0, b0)


def _home(tag: Tag, window: Window, spans: Sequence[TakeSpan]) -> TakeSpan | None:
    """The take a tag belongs to: its own, else the one it was made in, else the one its
    window overlaps most (a tap just after a stop)."""
    for span in spans:
        if span.take_id == tag.take_id:
            return span
    for span in spans:
        if span.start_ns <= tag.at_ns <= span.end_ns:
            return span
    lo, hi = tag.at_ns - window.lead_ns, tag.at_ns + window.lag_ns
    best: TakeSpan | None = None
    best_overlap = 0
    for span in spans:
        overlap = _overlap(lo, hi, span.start_ns, span.end_ns)
        if overlap > best_overlap:
            best, best_overlap = span, overlap
    return best


def plan_cut(takes: Sequence[TakeSpan], tags: Iterable[Tag], rules: CutRules) -> CutPlan:
    """Plan the rough cut of ``takes`` (in recording order) for ``tags``."""
    wanted: dict[str, list[tuple[int, int, Tag]]] = {span.take_id: [] for span in takes}
    skipped: list[Tag] = []
    for tag in sorted(tags, key=lambda t: (t.at_ns, t.id)):
        window = rules.window(tag.label)
        span = _home(tag, window, takes)
        if span is None:
            skipped.append(tag)
            continue
        lo = max(tag.at_ns - window.lead_ns, span.start_ns)
        hi = min(tag.at_ns + window.lag_ns, span.end_ns)
        if lo > hi:
            # Tagged well after its take ended (or before it began): nothing to show.
            skipped.append(tag)
            continue
        wanted[span.take_id].append((lo, hi, tag))
    clips: list[Clip] = []
    for span in takes:
        clips.extend(_merge(span.take_id, wanted[span.take_id]))
    return CutPlan(clips=tuple(clips), skipped=tuple(skipped))


def _merge(take_id: str, pieces: list[tuple[int, int, Tag]]) -> list[Clip]:
    clips: list[Clip] = []
    start = end = 0
    tags: list[Tag] = []
    for lo, hi, tag in sorted(pieces, key=lambda p: (p[0], p[1], p[2].at_ns, p[2].id)):
        if tags and lo <= end:
            end = max(end, hi)
            tags.append(tag)
            continue
        if tags:
            clips.append(_clip(take_id, start, end, tags))
        start, end, tags = lo, hi, [tag]
    if tags:
        clips.append(_clip(take_id, start, end, tags))
    return clips


def _clip(take_id: str, start: int, end: int, tags: list[Tag]) -> Clip:
    return Clip(take_id, start, end, tuple(sorted(tags, key=lambda t: (t.at_ns, t.id))))
