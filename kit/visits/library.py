"""The visit library: what the kit has recorded, as the phone reads and edits it.

Visits (start, rename, end), takes, tags and their edits, the tag pad's
labels, and the rough cuts with their files. Every change commits to SQLite
before it returns and is published on the event log, so every phone sees it.

The moments of a visit's film, as the guider trims, orders and drops them, are
:class:`kit.visits.moments.MomentLibrary`'s part of it.

It also knows which visits' rough cuts are out of date (see
:func:`kit.cutting.moments.fingerprint`): the recording state machine asks
:meth:`Library.cut_due` whenever it is idle and makes the cut it names, so a
cut cancelled by a crash, or a tag added during a cut, is never left out.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection
from dataclasses import KW_ONLY, dataclass, field
from datetime import date
from typing import Any, Unpack

from kit.audit.chain import AuditKind, Auditor, NoAudit
from kit.clock import NS_PER_S, Clock
from kit.crypto.keyring import Keyring
from kit.crypto.keys import new_data_key, wrap
from kit.cutting.inputs import cut_title
from kit.cutting.manifest import read_manifest
from kit.cutting.moments import fingerprint
from kit.cutting.plan import CutRules
from kit.daemon.api import CutManifest, MediaFile, TagEdit
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
from kit.errors import ConfigError, NotAllowed, NotFound, Sealed, StateError, StorageError
from kit.model import (
    DEFAULT_LABELS,
    Access,
    Consent,
    ConsentBy,
    Purpose,
    Tag,
    Take,
    TakeState,
    Visit,
)
from kit.privacy.consent import check_consent, default_erase_by, require
from kit.privacy.retention import today
from kit.store import layout
from kit.store.database import Database
from kit.store.files import FileLayer
from kit.store.store import new_id
from kit.visits import rules
from kit.visits.moments import MomentLibrary

log = logging.getLogger(__name__)

LiveFirstFrame = Callable[[str], int | None]
"""The first frame of the take ``take_id`` if it is recording now (else None)."""


def _not_recording(_take_id: str) -> int | None:
    return None


def _nothing() -> None:
    return None


@dataclass(eq=False)
class Library(MomentLibrary):
    """Reads and edits of the kit's visits; implements :class:`kit.daemon.api.VisitLibrary`
    and :class:`kit.visits.moments.Moments`.

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
    # Encryption at rest: the keys the kit holds, and the organisation's public keys.
    keyring: Keyring = field(default_factory=Keyring)
    recipients: tuple[str, ...] = ()
    erase_after_days: int = 60
    max_erase_after_days: int = 3660
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

    def start_visit(self, case_ref: str, consent: Consent) -> Visit:
        """Open a visit with the family's consent, encrypted with a data key of its own.

        The key is written to the card only wrapped for the organisation
        (``key.age``, first, durably); the kit keeps its own copy in the keyring.
        """
        if not self.recipients:
            raise NotAllowed(
                "this kit has no organisation key yet, so it cannot keep footage safe: "
                "set privacy.recipients (`kit keys new` makes a key pair)"
            )
        ref = rules.check_case_ref(case_ref)
        now = self.clock.now()
        visit = Visit(
            id=new_id(),
            case_ref=ref,
            started_ns=now,
            boot_id=self.boot_id,
            started_wall=self.wall.label(now),
            consent=consent,
        )
        key = new_data_key()
        try:
            wrapped = wrap(key, self.recipients)
        except ConfigError as exc:
            raise NotAllowed(str(exc)) from None
        self.files.makedirs(layout.visit_dir(visit.id))
        with self.files.replace(layout.wrapped_key(visit.id)) as f:
            f.write(wrapped)
        self.keyring.put(visit.id, key)
        try:
            self.db.add_visit(visit, encrypted=True)
        except BaseException:
            self.keyring.forget(visit.id)
            self.files.remove_tree(layout.visit_dir(visit.id))
            raise
        visit = self.db.visit(visit.id)
        log.info("visit %s started", visit.id)
        self.audit.record(
            AuditKind.VISIT_STARTED,
            {"visit_id": visit.id, "purposes": sorted(p.value for p in consent.purposes)},
        )
        self.events.publish(VisitChanged(VisitAction.STARTED, visit))
        return visit

    def consent_form(self) -> dict[str, Any]:
        """What the phone's consent form offers: roles, purposes, the suggested erase-by date."""
        on = self._today()
        return {
            "roles": [r.value for r in ConsentBy],
            "purposes": [p.value for p in Purpose],
            "erase_by": default_erase_by(on, self.erase_after_days) if on else "",
            "max_days": self.max_erase_after_days,
            "today": on.isoformat() if on else "",
            "ready": bool(self.recipients),
        }

    def check_consent(self, given_by: str, purposes: list[str], erase_by: str) -> Consent:
        """A consent record from the form's (or the CLI's) values; ValueError if wrong."""
        return check_consent(
            given_by,
            purposes,
            erase_by,
            today=self._today(),
            max_days=self.max_erase_after_days,
        )

    def _today(self) -> date | None:
        return today(self.wall, self.clock)

    def may_record(self, visit: Visit) -> None:
        """Refuse (NotAllowed, Sealed) recording into ``visit`` unless it is open, consented
        to and readable by the kit."""
        if not visit.is_open:
            raise StateError("this visit has ended: start a new visit to record")
        if visit.consent is None:
            raise NotAllowed(
                "this visit has no consent record: end it, and start a new visit with "
                "the family's consent"
            )
        if visit.access != Access.READABLE:
            raise Sealed("the kit can no longer open this visit: end it and start a new one")

    # sealing

    def seal_ended(self, waiting: Collection[str] = ()) -> list[Visit]:
        """Seal every ended visit the kit can still read (its cut made): forget its key.
        Not the ``waiting`` ones (their cut waits for room on the card)."""
        sealed = []
        for visit in self.db.visits():
            if visit.is_open or visit.access != Access.READABLE or visit.id in waiting:
                continue
            sealed.append(self._seal(visit.id, Access.SEALED, "ended"))
        return sealed

    def seal_lost_keys(self) -> list[Visit]:
        """At start-up: mark every encrypted visit whose key the kit lost (a power cut, a
        reboot) as such, ending it if it was open. The organisation's key still opens it."""
        lost = []
        for visit in self.db.visits():
            if visit.access == Access.KEY_LOST:
                lost.append(self._seal(visit.id, Access.KEY_LOST, "key lost"))
        return lost

    def _seal(self, visit_id: str, access: Access, why: str) -> Visit:
        self.keyring.forget(visit_id)
        visit = self.db.mark_sealed(visit_id, access, ended_ns=self.clock.now())
        log.info("visit %s sealed (%s)", visit_id, why)
        self.audit.record(AuditKind.SEALED, {"visit_id": visit_id, "why": why})
        with self._lock:
            self._up_to_date.discard(visit_id)
        self.events.publish(VisitChanged(VisitAction.SEALED, visit))
        return visit

    def readable(self, visit_id: str) -> bool:
        return self.db.visit(visit_id).readable

    def rename_visit(self, visit_id: str, case_ref: str) -> Visit:
        visit = self.db.rename_visit(visit_id, rules.check_case_ref(case_ref))
        self.events.publish(VisitChanged(VisitAction.UPDATED, visit))
        self._changed(visit_id)  # the film's title carries the case reference
        return visit

    def end_visit(self, visit_id: str) -> Visit:
        now = self.clock.now()
        visit = self.db.end_visit(visit_id, now, self.wall.label(now))
        log.info("visit %s ended", visit.id)
        takes = len(self.db.takes(visit_id))
        self.audit.record(AuditKind.VISIT_ENDED, {"visit_id": visit.id, "takes": takes})
        self.events.publish(VisitChanged(VisitAction.ENDED, visit))
        self.on_cut_due()  # its final cut, if one is due, then its seal
        return visit

    def takes(self, visit_id: str) -> list[Take]:
        self.db.visit(visit_id)  # NotFound for an unknown id
        return self.db.takes(visit_id)

    def take(self, take_id: str) -> Take:
        return self.db.take(take_id)

    def take_ended(self, take: Take) -> None:
        """A take finished (ready, empty or failed): tell the phones; its visit needs a cut."""
        self.events.publish(TakeEnded(take))
        if take.state == TakeState.READY:
            self._changed(take.visit_id)

    def discard(self, take: Take, keep_until_ns: int) -> Take:
        """The family asked to destroy ``take`` from ``keep_until_ns`` on: record that on the
        take first (the finaliser and recovery honour it, so a crash cannot bring the
        footage back) and delete its tags in that span for good."""
        updated = self.db.update_take(take.id, keep_until_ns=keep_until_ns)
        doomed = [t for t in self.db.tags_for_take(take.id) if t.at_ns >= keep_until_ns]
        self.db.discard_tags(take.id, keep_until_ns)
        for tag in doomed:
            self.events.publish(TagChanged(TagAction.DELETED, tag))
        end = take.end_ns or self.clock.now()
        seconds = max(0.0, (end - keep_until_ns) / NS_PER_S)
        self.audit.record(
            AuditKind.DISCARDED,
            {"visit_id": take.visit_id, "take_id": take.id, "seconds": round(seconds, 1)},
        )
        log.info("take %s: discarding its last %.1f s", take.id, seconds)
        self._changed(take.visit_id)
        return updated

    # retention

    def erase(self, visit_id: str, why: str) -> None:
        """Erase a visit: its wrapped key first (unreadable at once, by anyone), the kit's
        copy, then its files and its rows; the audit trail keeps that it happened."""
        visit = self.db.visit(visit_id)
        takes = len(self.db.takes(visit_id))
        self.files.remove(layout.wrapped_key(visit_id), overwrite=True)
        self.keyring.forget(visit_id)
        self.files.remove_tree(layout.visit_dir(visit_id))
        self.db.erase_visit(visit_id)
        with self._lock:
            self._up_to_date.discard(visit_id)
            self._tried.pop(visit_id, None)
            self._forced.discard(visit_id)
        log.info("visit %s erased (%s)", visit_id, why)
        self.audit.record(AuditKind.ERASED, {"visit_id": visit_id, "takes": takes, "why": why})
        self.events.publish(VisitChanged(VisitAction.ERASED, visit))

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
        if not visit.readable:
            return None  # sealed: its cut is there, encrypted, for the organisation
        manifest = read_manifest(self.files, visit_id)
        if manifest is None:
            return None
        return {**manifest, "up_to_date": manifest.get("inputs") == self._inputs(visit)}

    def cut_file(self, visit_id: str, name: str) -> MediaFile:
        """One of the visit's cut outputs, open for reading, refusing anything else."""
        visit = self.db.visit(visit_id)
        missing = NotFound(f"no cut file {name!r} in visit {visit_id}")
        if not visit.readable:
            raise Sealed("this visit is sealed: only the organisation's key opens it now")
        require(visit, Purpose.REVIEW, "Watching the film")
        directory = self.files.path(layout.cut_dir(visit_id))
        rel = layout.entry(layout.cut_dir(visit_id), name)
        try:
            path = self.files.path(rel)
        except StorageError:
            raise missing from None
        if directory not in path.parents or not path.is_file() or path.name.startswith("."):
            raise missing
        try:
            f = self.files.read(rel)
        except FileNotFoundError:  # replaced by a re-cut between the check and the open
            raise missing from None
        stat = os.fstat(f.fileno())
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        tag = getattr(f, "salt", None) or f"{stat.st_ino:x}-{stat.st_mtime_ns:x}"
        return MediaFile(file=f, size=size, etag=f"{tag}-{size:x}", modified=stat.st_mtime)

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
            if not visit.readable:
                continue
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
        return self.cut_fingerprint(visit)

    def cut_fingerprint(self, visit: Visit) -> str:
        """What the visit's cut would be made from now (see :mod:`kit.cutting.moments`)."""
        return fingerprint(
            cut_title(visit),
            self.db.takes(visit.id),
            self.db.tags_for_visit(visit.id),
            self.cut_rules,
            self.db.moment_edits(visit.id),
        )

    def _changed(self, visit_id: str) -> None:
        with self._lock:
            self._up_to_date.discard(visit_id)
            self._tried.pop(visit_id, None)
        self.on_cut_due()
