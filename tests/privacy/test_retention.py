"""Retention: a visit past its erase-by date is erased, key first; nothing else is touched."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from kit.compose import Cutting
from kit.crypto.decrypt import decrypt
from kit.daemon.messages import Sweep
from kit.errors import KitError
from kit.model import Access
from kit.privacy.retention import Retention, due
from kit.recording.headless import record_take
from kit.store import layout
from kit.testing.kits import real_kit
from kit.testing.privacy import consent, org_key


def test_due_is_past_the_erase_by_date_and_not_open(tmp_path: Path) -> None:
    kit = real_kit(tmp_path / "data", cutting=Cutting.NONE)
    try:
        ended = record_take(kit, seconds=0.5, case_ref="F-1", consent=consent()).visit
        still_open = kit.library.start_visit("F-2", consent())
        erase_by = date.fromisoformat(consent().erase_by)
        visits = kit.library.visits()
        assert due(visits, erase_by - timedelta(days=1)) == []
        assert [v.id for v in due(visits, erase_by)] == [ended.id]  # on the day itself
        assert still_open.id not in [v.id for v in due(visits, erase_by + timedelta(days=999))]
    finally:
        kit.close()


def test_an_erased_visit_is_gone_from_the_card_and_the_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kit = real_kit(data, cutting=Cutting.NONE)
    try:
        old = record_take(kit, seconds=1, case_ref="F-OLD", consent=consent()).visit
        kit.library.seal_ended()
        keep = record_take(kit, seconds=0.5, case_ref="F-NEW", consent=consent()).visit
        late = date.fromisoformat(consent().erase_by) + timedelta(days=1)
        # The other visit was consented to for longer (only `old` is due on `late`).
        erase_by = {old.id: late - timedelta(days=1), keep.id: late + timedelta(days=30)}
        with kit.store.db._tx() as c:
            for visit_id, day in erase_by.items():
                c.execute("UPDATE visits SET erase_by = ? WHERE id = ?", (str(day), visit_id))
        assert Retention(kit.library, lambda: None).sweep() == []  # no date known: no erasure
        assert Retention(kit.library, lambda: late).sweep() == [old.id]
        assert [v.id for v in kit.library.visits()] == [keep.id]
        assert kit.library.visit(keep.id).access == Access.READABLE
    finally:
        kit.close()
    assert not (data / layout.visit_dir(old.id)).exists()
    assert (data / layout.wrapped_key(keep.id)).exists()
    for name in (layout.DATABASE, f"{layout.DATABASE}-wal"):
        path = data / name
        if path.exists():
            assert old.id.encode() not in path.read_bytes(), name
    lines = [json.loads(line) for line in (data / layout.AUDIT).read_text().splitlines()]
    erased = [e for e in lines if e["kind"] == "visit.erased"]
    assert [e["details"]["visit_id"] for e in erased] == [old.id]
    assert "erase-by date" in erased[0]["details"]["why"] and "F-OLD" not in json.dumps(lines)
    # Even the organisation cannot open it now: its wrapped key went first.
    with pytest.raises(KitError, match="neither a kit data directory, a visit nor a bundle"):
        decrypt(data / layout.visit_dir(old.id), [org_key().secret], tmp_path / "out")


def test_a_sweep_message_runs_retention(tmp_path: Path) -> None:
    swept: list[int] = []
    kit = real_kit(tmp_path / "data", cutting=Cutting.NONE)
    try:
        kit.worker._sweep = lambda: swept.append(1)
        kit.worker.post(Sweep())
        kit.worker.step()
        assert swept == [1]
    finally:
        kit.close()
