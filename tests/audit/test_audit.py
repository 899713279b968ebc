"""The audit trail: entries chained by hashes; an edit, a deletion or a reordering is found
and named; a torn last line (a power cut mid-write) is cut off and the cut recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kit.audit.chain import AuditKind, verify
from kit.audit.log import AuditLog, verify_file
from kit.clock import FakeClock
from kit.daemon.wallclock import WallClock
from kit.store import layout
from kit.store.files import FileLayer


def _log(root: Path, entries: int = 6) -> Path:
    clock = FakeClock()
    audit = AuditLog(FileLayer(root), clock, WallClock(clock, system_time_ns=lambda: 0))
    for n in range(entries):
        clock.advance(1_000_000_000)
        audit.record(AuditKind.TAG_ADDED, {"visit_id": "v1", "tag_id": f"t{n}"})
    return root / layout.AUDIT


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_an_untouched_log_is_intact(tmp_path: Path) -> None:
    path = _log(tmp_path)
    verdict = verify(_lines(path))
    assert (verdict.intact, verdict.entries) == (True, 6)
    first = json.loads(_lines(path)[0])
    assert first["seq"] == 1 and first["kind"] == "tag.added" and first["details"]["tag_id"] == "t0"


def test_reopening_chains_on(tmp_path: Path) -> None:
    _log(tmp_path, 3)
    path = _log(tmp_path, 2)  # a new process, the same log
    assert verify(_lines(path)).entries == 5


def test_an_edited_entry_is_named(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    entry = json.loads(lines[3])
    entry["details"]["tag_id"] = "someone-else"
    lines[3] = json.dumps(entry).encode()
    verdict = verify(lines)
    assert (verdict.first_bad, verdict.entries) == (4, 3)
    assert "edited" in verdict.reason


@pytest.mark.parametrize("gone", [0, 2, 5])
def test_a_deleted_entry_is_found(tmp_path: Path, gone: int) -> None:
    lines = _lines(_log(tmp_path))
    del lines[gone]
    verdict = verify(lines)
    if gone == 5:
        # The last one: nothing follows to show the gap; the count does (and the kit
        # writes its next entry on top of the hash it remembers, see below).
        assert verdict.intact and verdict.entries == 5
    else:
        assert verdict.first_bad == gone + 1


def test_a_deleted_last_entry_shows_once_the_kit_writes_again(tmp_path: Path) -> None:
    path = _log(tmp_path)
    clock = FakeClock()
    audit = AuditLog(FileLayer(tmp_path), clock, WallClock(clock, system_time_ns=lambda: 0))
    lines = _lines(path)
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n")  # deleted behind the running kit's back
    audit.record(AuditKind.VISIT_ENDED, {"visit_id": "v1"})
    assert verify(_lines(path)).first_bad == 6


def test_swapped_entries_are_found(tmp_path: Path) -> None:
    lines = _lines(_log(tmp_path))
    lines[1], lines[4] = lines[4], lines[1]
    verdict = verify(lines)
    assert verdict.first_bad == 2 and "where 2 was due" in verdict.reason


def test_a_rewritten_chain_still_breaks_where_it_was_changed(tmp_path: Path) -> None:
    """Editing an entry and fixing its own hash breaks the next entry's link."""
    from kit.audit.chain import entry_hash

    lines = _lines(_log(tmp_path))
    entry = json.loads(lines[2])
    entry["kind"] = "visit.erased"
    entry["hash"] = entry_hash(entry)
    lines[2] = json.dumps(entry).encode()
    assert verify(lines).first_bad == 4


def test_a_torn_last_line_is_cut_off_and_the_cut_recorded(tmp_path: Path) -> None:
    path = _log(tmp_path, 4)
    data = path.read_bytes()
    path.write_bytes(data + data.splitlines()[0][:37])  # a power cut in the middle of a write
    clock = FakeClock()
    AuditLog(FileLayer(tmp_path), clock, WallClock(clock))
    lines = _lines(path)
    assert verify(lines).intact and len(lines) == 5
    repaired = json.loads(lines[-1])
    assert repaired["kind"] == "log.repaired" and repaired["details"] == {"bytes_cut": 37}


def test_kit_audit_verify(tmp_path: Path) -> None:
    path = _log(tmp_path)
    argv = [sys.executable, "-m", "kit", "audit", "verify", "--data", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "6 entries, the chain is intact" in done.stdout
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "entry 2 is not what was written" in done.stderr
    assert verify_file(FileLayer(tmp_path)).first_bad == 2
