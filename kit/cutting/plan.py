"""The cut planner: which stretches of which takes make the rough cut (pure, no I/O).

VIG reviews *micro-moments*: a few seconds of attuned response, watched slowly
and paused. Each tag asks for a window from ``lead`` before its instant to
``lag`` after it (the Sportscode lead/lag model: a guider taps *after*
noticing a moment), clamped to its take. A tag makes a **moment** of its own,
at most ``max_moment`` long (per label), so the film is a row of short
moments, never one long merged clip:

- tags within ``merge_within`` of a moment's first tag share that moment (a
  guider tapping twice, or two labels for one instant);
- a window longer than the limit keeps its lag (the response right after the
  tap) and loses the start of its lead;
- where neighbouring moments' windows overlap, they are split between their
  tags (at the midpoint, as far as both windows reach): adjacent moments, each
  tag inside its own.

Every moment has a stable ``moment_id``, the id of its first tag, so a
guider's edits to it (trims, order, dropping: :mod:`kit.cutting.moments`)
survive planning again after other tags change. The result is in time order:
takes in the order given, moments by start within a take. Takes are kept
apart even when their instants would interleave, because instants from
different boots of the kit are not comparable (the clock is ``CLOCK_MONOTONIC``).

All instants and durations are integer nanoseconds on the kit clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

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
    """Lead and lag for every tag and the longest a moment may be, with optional overrides
    per label; and how close tags must be to share a moment.

    Labels match case-insensitively, ignoring surrounding spaces, because
    organisations edit their label lists and guiders re-label after the fact.
    """

    default: Window = Window(seconds(8.0), seconds(3.0))
    per_label: tuple[tuple[str, Window], ...] = ()
    max_moment_ns: int = seconds(10.0)
    merge_within_ns: int = seconds(1.5)
    per_label_max: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.merge_within_ns < 0:
            raise ConfigError("tags cannot merge within a negative time")
        for limit in (self.max_moment_ns, *(ns for _, ns in self.per_label_max)):
            if limit <= 0:
                raise ConfigError("a moment's longest length must be positive")
            if limit < self.merge_within_ns:
                raise ConfigError(
                    "a moment's longest length cannot be shorter than the time within which "
                    "tags share a moment"
                )

    @classmethod
    def from_config(
        cls, cut: CutConfig, per_label: Mapping[str, tuple[float, float]] | None = None
    ) -> CutRules:
        """Rules from ``config.cut`` (with its ``label_windows`` and ``label_max_moment_s``);
        ``per_label`` maps a label to (lead_s, lag_s) and wins over the config's."""
        windows = {label: (lead, lag) for label, lead, lag in cut.label_windows}
        windows.update(per_label or {})
        return cls(
            default=Window(seconds(cut.lead_s), seconds(cut.lag_s)),
            per_label=tuple(
                (label, Window(seconds(lead), seconds(lag)))
                for label, (lead, lag) in windows.items()
            ),
            max_moment_ns=seconds(cut.max_moment_s),
            merge_within_ns=seconds(cut.merge_within_s),
            per_label_max=tuple((label, seconds(s)) for label, s in cut.label_max_moment_s),
        )

    def window(self, label: str) -> Window:
        """The window a tag with ``label`` asks for."""
        key = _label_key(label)
        for name, window in self.per_label:
            if _label_key(name) == key:
                return window
        return self.default

    def limit(self, label: str) -> int:
        """The longest moment a tag with ``label`` may have."""
        key = _label_key(label)
        for name, limit in self.per_label_max:
            if _label_key(name) == key:
                return limit
        return self.max_moment_ns

    def moment_limit(self, tags: Iterable[Tag]) -> int:
        """The longest a moment holding ``tags`` may be: the largest of their labels' limits."""
        return max((self.limit(t.label) for t in tags), default=self.max_moment_ns)


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
    """One stretch of one take in the rough cut, with the tags that asked for it.

    A planned clip is a moment: ``moment_id`` is the id of its first tag ("" for a clip
    made otherwise, e.g. rebuilt from an older cut's manifest).
    """

    take_id: str
    start_ns: int
    end_ns: int
    tags: tuple[Tag, ...]
    moment_id: str = ""

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
    """Plan the moments of ``takes`` (in recording order) for ``tags``."""
    wanted: dict[str, list[Tag]] = {span.take_id: [] for span in takes}
    skipped: list[Tag] = []
    for tag in sorted(tags, key=lambda t: (t.at_ns, t.id)):
        window = rules.window(tag.label)
        span = _home(tag, window, takes)
        if span is None:
            skipped.append(tag)
            continue
        if tag.at_ns - window.lead_ns > span.end_ns or tag.at_ns + window.lag_ns < span.start_ns:
            # Tagged well after its take ended (or before it began): nothing to show.
            skipped.append(tag)
            continue
        wanted[span.take_id].append(tag)
    clips: list[Clip] = []
    for span in takes:
        clips.extend(_moments(span, wanted[span.take_id], rules))
    return CutPlan(clips=tuple(clips), skipped=tuple(skipped))


def _clamp(value: int, low: int, high: int) -> int:
    return min(high, max(low, value))


@dataclass
class _Group:
    """Tags that share a moment, and the stretch of their take the moment covers."""

    tags: list[Tag]
    first: int  # the first tag's instant, inside the take
    last: int  # the last tag's instant, inside the take
    start: int = 0
    end: int = 0


def _moments(span: TakeSpan, tags: list[Tag], rules: CutRules) -> list[Clip]:
    """The moments of one take: ``tags`` (in time order) grouped, windowed, capped, split."""
    groups: list[_Group] = []
    for tag in tags:
        at = _clamp(tag.at_ns, span.start_ns, span.end_ns)
        if groups and at - groups[-1].first <= rules.merge_within_ns:
            groups[-1].tags.append(tag)
            groups[-1].last = at
        else:
            groups.append(_Group([tag], at, at))
    for group in groups:
        group.start, group.end = own_window(span, group.tags, rules)
    for before, after in pairwise(groups):
        if before.end > after.start:
            # Overlapping windows: split between the neighbouring tags, at their midpoint
            # as far as both windows reach, so each keeps its own tag and they touch.
            split = _clamp((before.last + after.first) // 2, after.start, before.end)
            before.end = after.start = split
    return [
        Clip(span.take_id, g.start, g.end, tuple(g.tags), moment_id=g.tags[0].id) for g in groups
    ]


def own_window(span: TakeSpan, tags: Sequence[Tag], rules: CutRules) -> tuple[int, int]:
    """The stretch of ``span`` a moment holding ``tags`` (in time order, at most
    ``merge_within`` apart) asks for, before any neighbour takes its share: every tag's
    window together, clamped to the take, at most the moment's limit long. Over the
    limit, the lag after the tags is kept and the lead before them shortened (a guider
    taps just after the moment: the start of a long lead matters least).
    """
    first = _clamp(tags[0].at_ns, span.start_ns, span.end_ns)
    low = max(span.start_ns, min(t.at_ns - rules.window(t.label).lead_ns for t in tags))
    high = min(span.end_ns, max(t.at_ns + rules.window(t.label).lag_ns for t in tags))
    limit = rules.moment_limit(tags)
    end = min(high, first + limit)
    return max(low, end - limit), end
