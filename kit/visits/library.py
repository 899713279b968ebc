"""The visit library: what the kit has recorded, as the phone reads and edits it.

Visits (start, rename, end), takes, tags and their edits, the tag pad's
labels, and the rough cuts with their files. Every change commits to SQLite
before it returns and is published on the event log, so every phone sees it.

It also knows which visits' rough cuts are out of date (see
:mod:`kit.cutting.inputs`): the recording state machine asks
:meth:`Library.cut_due` whenever it is idle and makes the cut it names, so a
cut cancelled by a crash, or a tag added during a cut, is never left out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Unpack

from kit.audit.chain import AuditKind, Auditor, NoAudit
from kit.clock import Clock
from kit.cutting.inputs import cut_inputs, cut_title
from kit.cutting.manifest import read_manifest
from kit.cutting.plan import CutRules
from kit.daemon.api import CutManifest, TagEdit
from kit.daemon.events import (
    EventLog,
    LabelsChanged,
    TagAction,
    TagChanged,
    TakeEnded,
    VisitAction,
    VisitChanged,
)
from kit.daemon.wallclock import WallClock
from kit.errors import NotFound, StateError, StorageError
from kit.model import DEFAULT_LABELS, Tag, Take, TakeState, Visit
from kit.store import layout
from kit.store.database import Database
from kit.store.files import FileLayer
from kit.store.store import new_id
from kit.visits import rules

log = logging.getLogger(__name__)

LiveFirstFrame = Callable[[str], int | None]
"""The first frame of the take ``take_id`` if it is recording now (else None)."""


def _not_recording(_take_id: str) -> int | None:
    return None


def _nothing() -> None:
    return None


@dataclass(eq=False)
class Library:
    """Reads and edits of the kit's visits; implements :class:`kit.daemon.api.VisitLibrary`.

    ``live_first_frame`` tells where the take being recorded began (a tag of
    it may move up to now); ``on_cut_due`` is called whenever a visit's cut
    may have become out of date (the worker then asks :meth:`cut_due`).
    """

    db: Database
    files: FileLayer
    events: EventLog
    clock: Clock
    _: KW_ONLY
    wall: WallClock
    boot_id: str
    cut_rules: CutRules
    live_first_frame: LiveFirstFrame = _not_recording
    on_cut_due: Callable[[], None] = _nothing
    audit: Auditor = field(default_factory=NoAudit)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    # Visits whose cut matches their inputs.
    _up_to_date: set[str] = field(init=False, default_factory=set)
    # Visit -> the inputs its last cut was made from: not cut again from the same inputs
    # (a cut that failed would fail again; one that succeeded yet left the visit out of
    # date, e.g. made by `kit cut` with other rules, must not loop).
    _tried: dict[str, str] = field(init=False, default_factory=dict)
    _forced: set[str] = field(init=False, default_factory=set)  # asked to be cut again

    # visits

    def visits(self) -> list[Visit]:
        return self.db.visits()

    def visit(self, visit_id: str) -> Visit:
        return self.db.visit(visit_id)

    def open_visit(self) -> Visit | None:
        return self.db.open_visit()

    def start_visit(self, case_ref: str = "") -> Visit:
        ref = rules.check_case_ref(case_ref) if case_ref.strip() else self._automatic_ref()
        now = self.clock.now()
        visit = Visit(
            id=new_id(),
            case_ref=ref,
            started_ns=now,
            boot_id=self.boot_id,
            started_wall=self.wall.label(now),
        )
        self.db.add_visit(visit)
        self.files.makedirs(layout.visit_dir(visit.id))
        log.info("visit %s (%s) started", visit.id, visit.case_ref)
        self.audit.record(AuditKind.VISIT_STARTED, {"visit_id": visit.id})
        self.events.publish(VisitChanged(VisitAction.STARTED, visit))
        return visit

    def _automatic_ref(self) -> str:
        """ "Visit 3": a placeholder the guider can replace with the case reference later."""
        return f"Visit {len(self.db.visits()) + 1}"

    def rename_visit(self, visit_id: str, case_ref: str) -> Visit:
        visit = self.db.rename_visit(visit_id, rules.check_case_ref(case_ref))
        self.events.publish(VisitChanged(VisitAction.UPDATED, visit))
        self._changed(visit_id)  # the film's title carries the case reference
        return visit

    def end_visit(self, visit_id: str) -> Visit:
        now = self.clock.now()
        visit = self.db.end_visit(visit_id, now, self.wall.label(now))
        log.info("visit %s (%s) ended", visit.id, visit.case_ref)
        takes = len(self.db.takes(visit_id))
        self.audit.record(AuditKind.VISIT_ENDED, {"visit_id": visit.id, "takes": takes})
        self.events.publish(VisitChanged(VisitAction.ENDED, visit))
        return visit

    def takes(self, visit_id: str) -> list[Take]:
        self.db.visit(visit_id)  # NotFound for an unknown id
        return self.db.takes(visit_id)

    def take_ended(self, take: Take) -> None:
        """A take finished (ready, empty or failed): tell the phones; its visit needs a cut."""
        self.events.publish(TakeEnded(take))
        if take.state == TakeState.READY:
            self._changed(take.visit_id)

    # tags

    def tags(self, visit_id: str) -> list[Tag]:
        self.db.visit(visit_id)
        return self.db.tags_for_visit(visit_id)

    def tag(self, tag_id: str) -> Tag:
        return self.db.tag(tag_id)

    def add_tag(self, tag: Tag) -> tuple[Tag, bool]:
        """Commit a new tag; a retried id returns the stored one and False."""
        rules.check_tag_text(tag.label, tag.note)
        new = self.db.add_tag(tag)
        stored = tag if new else self.db.tag(tag.id)
        if new:
            self._audit_tag(AuditKind.TAG_ADDED, stored)
            self.events.publish(TagChanged(TagAction.ADDED, stored))
            self._changed(stored.visit_id)
        return stored, new

    def update_tag(self, tag_id: str, **edit: Unpack[TagEdit]) -> Tag:
        tag = self.db.tag(tag_id)
        values: dict[str, str | int] = {}
        if "label" in edit or "note" in edit:
            rules.check_tag_text(edit.get("label", tag.label), edit.get("note", ""))
        for text in ("label", "note"):
            if text in edit:
                values[text] = str(edit[text])
        if "at_ns" in edit or "nudge_ns" in edit:
            low, high = self._span(tag)
            to, nudge = edit.get("at_ns"), edit.get("nudge_ns")
            values["at_ns"] = rules.moved_at(tag.at_ns, low, high, to_ns=to, nudge_ns=nudge)
        if not values:
            raise ValueError("nothing to change: a label, a note or a move")
        updated = self.db.update_tag(tag_id, **values)
        self._audit_tag(AuditKind.TAG_EDITED, updated, sorted(values))
        self.events.publish(TagChanged(TagAction.UPDATED, updated))
        self._changed(updated.visit_id)
        return updated

    def _audit_tag(self, kind: AuditKind, tag: Tag, changed: list[str] | None = None) -> None:
        details: dict[str, object] = {"visit_id": tag.visit_id, "tag_id": tag.id}
        if changed is not None:
            details["changed"] = changed  # which fields, not their values
        self.audit.record(kind, details)

    def _span(self, tag: Tag) -> tuple[int, int]:
        """Where a tag may be moved: its take's first frame to its end (now, while recording)."""
        if tag.take_id is None:
            raise StateError("this tag has no take to move it within")
        take = self.db.take(tag.take_id)
        if take.first_frame_ns is not None and take.end_ns is not None:
            return take.first_frame_ns, take.end_ns
        first = self.live_first_frame(take.id)
        if take.state == TakeState.RECORDING and first is not None:
            return first, self.clock.now()
        raise StateError("this tag's take has no pictures to move it within")

    def delete_tag(self, tag_id: str) -> Tag:
        tag = self.db.tag(tag_id)
        self.db.delete_tag(tag_id)
        self._audit_tag(AuditKind.TAG_DELETED, tag)
        self.events.publish(TagChanged(TagAction.DELETED, tag))
        self._changed(tag.visit_id)
        return tag

    def restore_tag(self, tag_id: str) -> Tag:
        self.db.restore_tag(tag_id)
        tag = self.db.tag(tag_id)
        self._audit_tag(AuditKind.TAG_RESTORED, tag)
        self.events.publish(TagChanged(TagAction.RESTORED, tag))
        self._changed(tag.visit_id)
        return tag

    # labels

    def labels(self) -> list[str]:
        labels = self.db.setting("labels")
        return list(labels) if isinstance(labels, list) else list(DEFAULT_LABELS)

    def set_labels(self, labels: list[str]) -> list[str]:
        cleaned = rules.check_labels(labels)
        self.db.set_setting("labels", cleaned)
        self.events.publish(LabelsChanged(tuple(cleaned)))
        return cleaned

    # rough cuts

    def cut(self, visit_id: str) -> CutManifest | None:
        """The visit's last rough cut, with ``up_to_date``; None if it was never cut."""
        visit = self.db.visit(visit_id)
        manifest = read_manifest(self.files, visit_id)
        if manifest is None:
            return None
        return {**manifest, "up_to_date": manifest.get("inputs") == self._inputs(visit)}

    def cut_file(self, visit_id: str, name: str) -> Path:
        """The path of one of the visit's cut outputs, refusing anything else."""
        self.db.visit(visit_id)
        missing = NotFound(f"no cut file {name!r} in visit {visit_id}")
        directory = self.files.path(layout.cut_dir(visit_id))
        try:
            path = self.files.path(layout.entry(layout.cut_dir(visit_id), name))
        except StorageError:
            raise missing from None
        if directory not in path.parents or not path.is_file() or path.name.startswith("."):
            raise missing
        return path

    def recut(self, visit_id: str) -> None:
        self.db.visit(visit_id)  # NotFound for an unknown id
        with self._lock:
            self._forced.add(visit_id)
            self._tried.pop(visit_id, None)
            self._up_to_date.discard(visit_id)
        self.on_cut_due()

    def cut_due(self) -> str | None:
        """A visit whose rough cut is out of date (the open one first), or None.

        A visit is not cut twice from the same inputs (a failed cut would fail
        the same way) until it changes or a re-cut is asked for.
        """
        with self._lock:
            known, tried, forced = set(self._up_to_date), dict(self._tried), set(self._forced)
        visits = self.db.visits()
        visits.sort(key=lambda v: not v.is_open)  # stable: the open visit, then oldest first
        for visit in visits:
            if visit.id in forced:
                return visit.id
            if visit.id in known:
                continue
            inputs = self._inputs(visit)
            try:
                manifest = read_manifest(self.files, visit.id)
            except StorageError as exc:
                log.warning("the cut of %s cannot be read (%s): making it again", visit.id, exc)
                manifest = None
            if manifest is not None and manifest.get("inputs") == inputs:
                with self._lock:
                    self._up_to_date.add(visit.id)
            elif tried.get(visit.id) != inputs and self._worth_cutting(visit, manifest):
                return visit.id
        return None

    def _worth_cutting(self, visit: Visit, manifest: CutManifest | None) -> bool:
        """False for a visit that has nothing to cut and no cut to update."""
        if manifest is not None:
            return True
        return any(t.state == TakeState.READY for t in self.db.takes(visit.id))

    def cut_started(self, visit_id: str) -> None:
        """A cut of ``visit_id`` begins, from the visit as it is now."""
        inputs = self._inputs(self.db.visit(visit_id))
        with self._lock:
            self._forced.discard(visit_id)
            self._tried[visit_id] = inputs  # a change from now on makes it due again

    def cut_finished(self, visit_id: str) -> None:
        """The cut of ``visit_id`` ended (made or failed): look at it afresh."""
        with self._lock:
            self._up_to_date.discard(visit_id)

    def _inputs(self, visit: Visit) -> str:
        return cut_inputs(
            cut_title(visit),
            self.db.takes(visit.id),
            self.db.tags_for_visit(visit.id),
            self.cut_rules,
        )

    def _changed(self, visit_id: str) -> None:
        with self._lock:
            self._up_to_date.discard(visit_id)
            self._tried.pop(visit_id, None)
        self.on_cut_due()
