"""The moments of a visit as the guider edited them, and the film they make (pure, no I/O).

The planner (:mod:`kit.cutting.plan`) proposes moments. On review the guider
trims a moment's start and end, puts the moments in another order, and drops
some from the family's film (a dropped moment keeps its tags: only the film
leaves it out). Those edits are stored per visit, each under the id of the
moment it was made to (its first tag's id, see :class:`kit.model.MomentEdit`),
and applied here to a fresh plan every time: an edit follows the moment that
holds its tag, so adding, moving or deleting other tags never loses it, and
an edit whose tag is gone is simply ignored.

The family's film holds the moments that are not dropped, in the order the
guider gave; a moment planned after that (a new tag) takes its place after
the moment before it in time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kit.cutting.inputs import cut_inputs
from kit.cutting.plan import Clip, CutPlan, CutRules, TakeSpan, plan_cut
from kit.model import MomentEdit, Tag, Take, TakeState


@dataclass(frozen=True)
class Moment:
    """One planned moment, with the guider's edit applied."""

    planned: Clip  # as the planner made it: its default stretch, its tags, its id
    start_ns: int  # where it starts now (trimmed, else as planned)
    end_ns: int
    dropped: bool  # left out of the family's film
    number: int | None  # its place in the film (1, 2, ...); None when dropped
    edit: MomentEdit | None = None  # the edit applied to it, if any

    @property
    def moment_id(self) -> str:
        return self.planned.moment_id

    @property
    def take_id(self) -> str:
        return self.planned.take_id

    @property
    def tags(self) -> tuple[Tag, ...]:
        return self.planned.tags

    @property
    def default_start_ns(self) -> int:
        return self.planned.start_ns

    @property
    def default_end_ns(self) -> int:
        return self.planned.end_ns

    @property
    def clip(self) -> Clip:
        """The stretch of its take the film shows for it."""
        return Clip(self.take_id, self.start_ns, self.end_ns, self.tags, self.moment_id)


@dataclass(frozen=True)
class FilmPlan:
    """Every planned moment (in time order) and the family's film made of them."""

    moments: tuple[Moment, ...]
    skipped: tuple[Tag, ...] = ()  # tags no take could hold

    @property
    def film(self) -> tuple[Moment, ...]:
        """The moments of the film, in its order."""
        kept = [m for m in self.moments if m.number is not None]
        return tuple(sorted(kept, key=lambda m: m.number or 0))

    @property
    def plan(self) -> CutPlan:
        """The film as the renderer takes it: its clips in film order."""
        return CutPlan(clips=tuple(m.clip for m in self.film), skipped=self.skipped)

    def moment(self, moment_id: str) -> Moment | None:
        return next((m for m in self.moments if m.moment_id == moment_id), None)


def finished_spans(takes: Iterable[Take]) -> list[TakeSpan]:
    """The spans of the takes that are finished films (ready, with frames), in order."""
    return [
        TakeSpan.of(t)
        for t in takes
        if t.state == TakeState.READY and t.first_frame_ns is not None and t.end_ns is not None
    ]


def plan_film(
    spans: Sequence[TakeSpan], tags: Iterable[Tag], edits: Iterable[MomentEdit], rules: CutRules
) -> FilmPlan:
    """Plan the moments of ``spans`` for ``tags`` and apply the guider's ``edits``."""
    return apply_edits(plan_cut(spans, tags, rules), edits, spans)


def edit_of(clip: Clip, edits: Mapping[str, MomentEdit]) -> MomentEdit | None:
    """The edit that applies to a planned moment: the one made under its id, else the one
    made under another of its tags (it was that tag's moment when it was edited)."""
    found = edits.get(clip.moment_id)
    if found is not None:
        return found
    return next((edits[t.id] for t in clip.tags if t.id in edits), None)


def apply_edits(plan: CutPlan, edits: Iterable[MomentEdit], spans: Iterable[TakeSpan]) -> FilmPlan:
    """The moments of ``plan`` (in time order) with ``edits`` applied, numbered in the
    film's order. A trim that no longer fits its take (shortened by a discard) is
    clamped to it, and ignored if nothing of it is left."""
    by_id = {e.moment_id: e for e in edits}
    takes = {s.take_id: s for s in spans}
    planned = []
    for clip in plan.clips:
        edit = edit_of(clip, by_id)
        start, end = _trimmed(clip, edit, takes.get(clip.take_id))
        planned.append((clip, edit, start, end))
    order = film_order(
        [(clip.moment_id, edit) for clip, edit, _, _ in planned if not (edit and edit.dropped)]
    )
    numbers = {moment_id: n for n, moment_id in enumerate(order, start=1)}
    moments = tuple(
        Moment(clip, start, end, bool(edit and edit.dropped), numbers.get(clip.moment_id), edit)
        for clip, edit, start, end in planned
    )
    return FilmPlan(moments, plan.skipped)


def _trimmed(clip: Clip, edit: MomentEdit | None, span: TakeSpan | None) -> tuple[int, int]:
    if edit is None:
        return clip.start_ns, clip.end_ns
    start = clip.start_ns if edit.start_ns is None else edit.start_ns
    end = clip.end_ns if edit.end_ns is None else edit.end_ns
    if span is not None:
        start = min(span.end_ns, max(span.start_ns, start))
        end = min(span.end_ns, max(span.start_ns, end))
    if end <= start:
        return clip.start_ns, clip.end_ns
    return start, end


def film_order(kept: Sequence[tuple[str, MomentEdit | None]]) -> list[str]:
    """The film's order of the moments ``kept`` (given in time order, with their edits):
    those the guider placed, in their places; each other one right after the moment
    before it in time (at the start if none is)."""
    placed = sorted(
        (
            (e.position, i)
            for i, (_, e) in enumerate(kept)
            if e is not None and e.position is not None
        )
    )
    order = [kept[i][0] for _, i in placed]
    for i, (moment_id, edit) in enumerate(kept):
        if edit is not None and edit.position is not None:
            continue
        before = next((kept[j][0] for j in range(i - 1, -1, -1) if kept[j][0] in order), None)
        order.insert(0 if before is None else order.index(before) + 1, moment_id)
    return order


def fingerprint(
    title: str,
    takes: Iterable[Take],
    tags: Iterable[Tag],
    rules: CutRules,
    edits: Iterable[MomentEdit],
) -> str:
    """A short fingerprint of everything the cut of one visit depends on: what
    :func:`kit.cutting.inputs.cut_inputs` covers, the moments' rules and the guider's
    edits. Any edit makes the cut out of date."""
    base = cut_inputs(title, takes, tags, rules)
    limits: list[object] = [rules.max_moment_ns, rules.merge_within_ns]
    limits += [(label, ns) for label, ns in rules.per_label_max]
    edited = sorted((e.moment_id, e.start_ns, e.end_ns, e.dropped, e.position) for e in edits)
    text = json.dumps([base, limits, edited], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
