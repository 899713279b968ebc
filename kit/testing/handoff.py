"""A sealed visit on a data directory, ready to leave the kit: for the hand-off's tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kit.compose import Cutting, Kit
from kit.model import Access
from kit.recording.headless import TagAt, record_take
from kit.testing.kits import real_kit
from kit.testing.privacy import consent


def record_sealed_visit(
    data: Path,
    *,
    seconds: float = 4.0,
    tags: Sequence[TagAt] = (TagAt(1.0, "Guiding"),),
    case_ref: str = "F-0042",
) -> str:
    """Record one take into a new visit on ``data``, cut it, end and seal it (the kit
    closed after); its id."""
    kit = real_kit(data, cutting=Cutting.INLINE)
    try:
        visit_id = seal_new_visit(kit, seconds=seconds, tags=tags, case_ref=case_ref)
    finally:
        kit.close()
    return visit_id


def seal_new_visit(
    kit: Kit,
    *,
    seconds: float = 4.0,
    tags: Sequence[TagAt] = (TagAt(1.0, "Guiding"),),
    case_ref: str = "F-0042",
) -> str:
    """On a running (inline-cutting) kit: one take in a new visit, ended, cut and sealed."""
    result = record_take(
        kit, seconds=seconds, tags=list(tags), case_ref=case_ref, consent=consent()
    )
    while kit.worker.step():  # its cut, then its seal
        pass
    visit = kit.library.visit(result.visit.id)
    assert visit.access == Access.SEALED, visit
    return visit.id
