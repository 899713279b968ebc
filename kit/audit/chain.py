"""The audit log's chain (pure, no I/O): each entry carries the hash of the one before.

An entry is one JSON object on one line::

    {"seq": 7, "kind": "tag.added", "at": "2026-11-30T14:03:00Z", "at_ns": 123,
     "details": {"visit_id": "...", "tag_id": "..."}, "prev": "<hash of entry 6>",
     "hash": "<sha256 of this entry without 'hash'>"}

``seq`` counts from 1 and ``prev`` of the first entry is :data:`GENESIS`.
Editing an entry breaks its own hash; deleting one breaks the next entry's
``seq`` and ``prev``; swapping two breaks ``seq``. :func:`verify` names the
first entry that does not fit. Details hold ids and counts, never personal
data (no names, notes, labels or case references).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

GENESIS = "0" * 64


class AuditKind(StrEnum):
    """What an audit entry records."""

    PHONE_PAIRED = "phone.paired"
    PHONE_REVOKED = "phone.revoked"
    VISIT_STARTED = "visit.started"
    VISIT_ENDED = "visit.ended"
    RECORDING_STARTED = "recording.started"
    RECORDING_STOPPED = "recording.stopped"
    TAG_ADDED = "tag.added"
    TAG_EDITED = "tag.edited"
    TAG_DELETED = "tag.deleted"
    TAG_RESTORED = "tag.restored"
    FILM_VIEWED = "film.viewed"
    EXPORTED = "visit.exported"
    SEALED = "visit.sealed"
    DISCARDED = "take.discarded"
    ERASED = "visit.erased"
    LABEL_DOWNLOADED = "label.downloaded"  # it holds the Wi-Fi passphrase and pairing link
    LOG_REPAIRED = "log.repaired"  # a torn last line (a power cut mid-write) was cut off


def _canonical(entry: Mapping[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash of an entry: SHA-256 of its canonical JSON without the ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


def make_entry(
    seq: int, prev: str, kind: AuditKind, at: str, at_ns: int, details: Mapping[str, Any]
) -> dict[str, Any]:
    """The entry after one with hash ``prev`` (its hash filled in)."""
    entry: dict[str, Any] = {
        "seq": seq,
        "kind": kind.value,
        "at": at,
        "at_ns": at_ns,
        "details": dict(details),
        "prev": prev,
    }
    entry["hash"] = entry_hash(entry)
    return entry


def line(entry: Mapping[str, Any]) -> bytes:
    """An entry as the log stores it: one line of JSON."""
    return _canonical(entry) + b"\n"


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: how many entries fit, and the first that does not."""

    entries: int
    first_bad: int | None = None  # the line number (1-based) of the first bad entry
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.first_bad is None


def verify(lines: Iterable[bytes]) -> Verdict:
    """Check a whole log, line by line."""
    prev, expected, count = GENESIS, 1, 0
    for number, raw in enumerate(lines, start=1):
        try:
            entry = json.loads(raw)
        except ValueError:
            return Verdict(count, number, "not a JSON entry (edited, or torn by a power cut)")
        if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str):
            return Verdict(count, number, "not an audit entry")
        if entry.get("seq") != expected:
            return Verdict(
                count,
                number,
                f"entry {entry.get('seq')!r} where {expected} was due "
                "(one deleted, added or moved)",
            )
        if entry.get("prev") != prev:
            return Verdict(count, number, "does not follow the entry before (one deleted or moved)")
        if entry_hash(entry) != entry["hash"]:
            return Verdict(count, number, "its contents do not match its hash (edited)")
        prev, expected, count = entry["hash"], expected + 1, count + 1
    return Verdict(count)


class Auditor(Protocol):
    """Where the kit's parts report what happened (:class:`kit.audit.log.AuditLog`)."""

    def record(self, kind: AuditKind, details: Mapping[str, Any] | None = None) -> None: ...


class NoAudit:
    """An auditor that keeps nothing (parts built without an audit log)."""

    def record(self, kind: AuditKind, details: Mapping[str, Any] | None = None) -> None:
        del kind, details
