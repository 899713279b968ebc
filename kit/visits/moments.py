"""The visit library's moments: the film's moments as the guider reviews and edits them.

On review the guider sees every planned moment of the visit (also those left
out of the film), trims a moment's start and end, puts the moments in another
order, drops some from the family's film and adds a tag after the fact at a
frame of a finished take. Each edit is stored (kit/store/database.py) and makes
the visit's cut out of date, so the kit makes the film again, as after a tag
edit. The rules are pure (:mod:`kit.cutting.moments`, :mod:`kit.visits.rules`);
this module reads and writes them for :class:`kit.visits.library.Library`,
which inherits :class:`MomentLibrary`.

:class:`Moments` is what a front end may ask of it. It extends the
:class:`kit.daemon.api.VisitLibrary` protocol; :func:`moments_of` gives a
library as one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, Unpack, runtime_checkable

from kit.clock import NS_PER_S, Clock
from kit.cutting.manifest import read_manifest
from kit.cutting.moments import FilmPlan, Moment, finished_spans, plan_film
from kit.cutting.plan import CutRules
from kit.daemon.api import MediaFile
from kit.errors import CorruptMedia, NotFound, Sealed, StateError, StorageError
from kit.model import UNFINISHED, MomentEdit, Purpose, Tag, Take, TakeState, Visit
from kit.privacy.consent import require
from kit.store import layout
from kit.store.database import Database
from kit.store.files import FileLayer
from kit.visits import rules


class MomentChange(TypedDict, total=False):
    """What an edit of a moment may change: its start or end (kit-clock instants; None
    puts it back where the planner put it), and whether the film leaves it out."""

    start_ns: int | None
    end_ns: int | None
    dropped: bool


@dataclass(frozen=True)
class MomentView:
    """One moment of a visit as the review page shows it (times in seconds)."""

    moment_id: str  # the id of its first tag: the name its edits are kept under
    number: int | None  # its place in the film (1, 2, ...); None when dropped
    take_id: str
    take: int  # its take's number in the visit
    take_start_s: float  # where it starts and ends in its take, as edited
    take_end_s: float
    default_start_s: float  # where the planner put it
    default_end_s: float
    dropped: bool
    tag_ids: tuple[str, ...]
    labels: tuple[str, ...]
    film_start_s: float | None  # where the current film shows it (None: not in it)
    film_end_s: float | None

    @property
    def trimmed(self) -> bool:
        return (self.take_start_s, self.take_end_s) != (self.default_start_s, self.default_end_s)

    def as_json(self) -> dict[str, Any]:
        return {
            "moment_id": self.moment_id,
            "number": self.number,
            "take_id": self.take_id,
            "take": self.take,
            "take_start_s": self.take_start_s,
            "take_end_s": self.take_end_s,
            "default_start_s": self.default_start_s,
            "default_end_s": self.default_end_s,
            "trimmed": self.trimmed,
            "dropped": self.dropped,
            "tag_ids": list(self.tag_ids),
            "labels": list(self.labels),
            "film_start_s": self.film_start_s,
            "film_end_s": self.film_end_s,
        }


@runtime_checkable
class Moments(Protocol):
    """The moments of a visit, as a front end reads and edits them.

    Errors as :class:`kit.daemon.api.VisitLibrary`'s: NotFound for an unknown visit,
    moment or take; Sealed (a StateError) once the kit no longer holds the visit's key;
    ValueError for a value the kit refuses.
    """

    def moments(self, visit_id: str) -> list[MomentView]:
        """Every planned moment of the visit (dropped ones too), in time order."""
        ...

    def edit_moment(
        self, visit_id: str, moment_id: str, **change: Unpack[MomentChange]
    ) -> list[MomentView]:
        """Trim a moment (inside its take, from 0.5 s to 60 s long), reset a trim (None),
        drop it from the film or bring it back; the visit's moments after the edit."""
        ...

    def order_moments(self, visit_id: str, order: list[str]) -> list[MomentView]:
        """Put the film's moments in ``order`` (each moment not dropped, once)."""
        ...

    def add_tag_at(
        self,
        visit_id: str,
        take_id: str,
        tag_id: str,
        at_ns: int,
        label: str,
        note: str,
        author: str,
    ) -> tuple[Tag, bool]:
        """Tag a finished take at ``at_ns`` (inside it), after the fact; the tag and whether
        it is new (False: a retry of ``tag_id``). StateError if the take is not finished."""
        ...

    def take_file(self, visit_id: str, take_id: str) -> MediaFile:
        """The finished take's film, open for reading (decrypted), for the whole-take view;
        Sealed, or NotAllowed without the family's consent to review, as the cut's files."""
        ...


def moments_of(library: object) -> Moments:
    """``library`` as :class:`Moments` (TypeError if it cannot edit moments)."""
    if not isinstance(library, Moments):
        raise TypeError(f"{type(library).__name__} does not keep moments")
    return library


class MomentLibrary:
    """The moments part of :class:`kit.visits.library.Library` (see the module's docstring)."""

    db: Database
    files: FileLayer
    clock: Clock
    cut_rules: CutRules

    def add_tag(self, tag: Tag) -> tuple[Tag, bool]:
        raise NotImplementedError  # the library's

    def _changed(self, visit_id: str) -> None:
        raise NotImplementedError  # the library's: the visit's cut is out of date

    def film_plan(self, visit_id: str) -> FilmPlan:
        """The visit's moments as planned now from its finished takes and tags, with the
        guider's edits applied."""
        spans = finished_spans(self.db.takes(visit_id))
        tags = self.db.tags_for_visit(visit_id)
        return plan_film(spans, tags, self.db.moment_edits(visit_id), self.cut_rules)

    def moments(self, visit_id: str) -> list[MomentView]:
        visit = self.db.visit(visit_id)
        if not visit.readable:
            return []  # sealed: its labels (and so its windows) are the organisation's to read
        takes = {t.id: t for t in self.db.takes(visit_id)}
        in_film = self._film_positions(visit_id)
        return [
            _view(m, takes[m.take_id], in_film.get(m.moment_id))
            for m in self.film_plan(visit_id).moments
        ]

    def _film_positions(self, visit_id: str) -> dict[str, tuple[float, float]]:
        """Where the current film shows each moment (by id), as its manifest says."""
        try:
            manifest = read_manifest(self.files, visit_id)
        except (StorageError, CorruptMedia):
            return {}  # a damaged manifest: the moments are still there, the film is not
        clips = manifest.get("clips", []) if manifest else []
        return {
            str(c["moment_id"]): (float(c["film_start_s"]), float(c["film_end_s"]))
            for c in clips
            if c.get("moment_id")
        }

    def _editable(self, visit_id: str) -> Visit:
        visit = self.db.visit(visit_id)
        if not visit.readable:
            raise Sealed("this visit is sealed: only the organisation's key opens it now")
        return visit

    def _moment(self, plan: FilmPlan, visit_id: str, moment_id: str) -> Moment:
        found = plan.moment(moment_id)
        if found is None:
            raise NotFound(f"no moment {moment_id!r} in visit {visit_id}")
        return found

    def edit_moment(
        self, visit_id: str, moment_id: str, **change: Unpack[MomentChange]
    ) -> list[MomentView]:
        if not change:
            raise ValueError("nothing to change: a start, an end or whether it is dropped")
        self._editable(visit_id)
        plan = self.film_plan(visit_id)
        moment = self._moment(plan, visit_id, moment_id)
        was = moment.edit or MomentEdit(visit_id, moment.moment_id)
        start = change.get("start_ns", was.start_ns)
        end = change.get("end_ns", was.end_ns)
        if "start_ns" in change or "end_ns" in change:
            take = self.db.take(moment.take_id)
            assert take.first_frame_ns is not None and take.end_ns is not None  # planned
            rules.check_trim(
                moment.default_start_ns if start is None else start,
                moment.default_end_ns if end is None else end,
                take.first_frame_ns,
                take.end_ns,
            )
        dropped = change.get("dropped", was.dropped)
        edit = MomentEdit(visit_id, moment.moment_id, start, end, dropped, was.position)
        self._store(plan, [moment], {moment.moment_id: edit})
        return self.moments(visit_id)

    def order_moments(self, visit_id: str, order: list[str]) -> list[MomentView]:
        self._editable(visit_id)
        plan = self.film_plan(visit_id)
        kept = [m for m in plan.moments if not m.dropped]
        if len(set(order)) != len(order) or set(order) != {m.moment_id for m in kept}:
            listed = ", ".join(m.moment_id for m in kept) or "none"
            raise ValueError(
                f"the order must name each moment of the film once (the film's moments: {listed})"
            )
        edits = {}
        for position, moment_id in enumerate(order):
            moment = self._moment(plan, visit_id, moment_id)
            was = moment.edit or MomentEdit(visit_id, moment_id)
            edits[moment_id] = MomentEdit(
                visit_id, moment_id, was.start_ns, was.end_ns, was.dropped, position
            )
        self._store(plan, kept, edits)
        return self.moments(visit_id)

    def _store(self, plan: FilmPlan, moments: list[Moment], edits: dict[str, MomentEdit]) -> None:
        """Store the moments' new edits, each under its moment's id now: the rows its other
        tags held (it was their moment when they were edited) go, and an edit that changes
        nothing is no row at all."""
        visit_id = next(iter(edits.values())).visit_id
        stored = {e.moment_id for e in self.db.moment_edits(visit_id)}
        remove = [t.id for m in moments for t in m.tags if t.id != m.moment_id and t.id in stored]
        keep = []
        for moment_id, edit in edits.items():
            if edit == MomentEdit(visit_id, moment_id):
                remove.append(moment_id)
            else:
                keep.append(edit)
        self.db.put_moment_edits(visit_id, keep, remove=remove)
        self._changed(visit_id)

    def add_tag_at(
        self,
        visit_id: str,
        take_id: str,
        tag_id: str,
        at_ns: int,
        label: str,
        note: str,
        author: str,
    ) -> tuple[Tag, bool]:
        self._editable(visit_id)
        take = self._take_of(visit_id, take_id)
        if take.state != TakeState.READY or take.first_frame_ns is None or take.end_ns is None:
            raise StateError("a tag can be placed after the fact only in a finished take")
        rules.check_tag_text(label, note)
        if not take.first_frame_ns <= at_ns <= take.end_ns:
            raise ValueError("a tag must lie inside its take")
        try:
            stored = self.db.tag(tag_id)
        except NotFound:
            stored = None
        if stored is not None:
            if stored.visit_id != visit_id:
                raise StateError(f"the tag id {tag_id!r} is another visit's")
            return stored, False  # a retry
        return self.add_tag(
            Tag(tag_id, visit_id, take_id, at_ns, label, note, author, self.clock.now())
        )

    def _take_of(self, visit_id: str, take_id: str) -> Take:
        take = self.db.take(take_id)
        if take.visit_id != visit_id:
            raise NotFound(f"no take {take_id!r} in visit {visit_id}")
        return take

    def take_file(self, visit_id: str, take_id: str) -> MediaFile:
        visit = self.db.visit(visit_id)
        if not visit.readable:
            raise Sealed("this visit is sealed: only the organisation's key opens it now")
        require(visit, Purpose.REVIEW, "Watching the take")
        take = self._take_of(visit_id, take_id)
        if take.state in UNFINISHED:
            raise StateError("this take is still being recorded")
        missing = NotFound(f"take {take_id!r} has no film")
        rel = layout.take_mp4(layout.take_dir(visit_id, take_id))
        if take.state != TakeState.READY:
            raise missing
        try:
            f = self.files.read(rel)
        except FileNotFoundError:
            raise missing from None
        stat = os.fstat(f.fileno())
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        tag = getattr(f, "salt", None) or f"{stat.st_ino:x}-{stat.st_mtime_ns:x}"
        return MediaFile(file=f, size=size, etag=f"{tag}-{size:x}", modified=stat.st_mtime)


def _seconds(ns: int) -> float:
    return ns / NS_PER_S


def _view(moment: Moment, take: Take, film: tuple[float, float] | None) -> MomentView:
    base = take.first_frame_ns or 0
    return MomentView(
        moment_id=moment.moment_id,
        number=moment.number,
        take_id=moment.take_id,
        take=take.seq,
        take_start_s=_seconds(moment.start_ns - base),
        take_end_s=_seconds(moment.end_ns - base),
        default_start_s=_seconds(moment.default_start_ns - base),
        default_end_s=_seconds(moment.default_end_ns - base),
        dropped=moment.dropped,
        tag_ids=tuple(t.id for t in moment.tags),
        labels=moment.planned.labels,
        film_start_s=None if film is None else film[0],
        film_end_s=None if film is None else film[1],
    )
