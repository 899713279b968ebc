"""No consent, no recording: the library, the worker, the button and `kit record` refuse."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from kit.compose import Cutting
from kit.daemon.api import State
from kit.daemon.events import EventKind
from kit.errors import NotAllowed
from kit.model import ConsentBy, Purpose
from kit.privacy.consent import check_consent, require
from kit.testing.kits import real_kit
from kit.testing.privacy import consent, key_dir_for, org_key

KIT = [sys.executable, "-m", "kit"]
TODAY = date(2026, 11, 30)


def test_a_consent_record_is_checked_and_says_what_is_wrong() -> None:
    ok = check_consent(
        "Parent", ["review", "supervision"], "2027-01-29", today=TODAY, max_days=3660
    )
    assert ok.given_by == ConsentBy.PARENT
    assert ok.purposes == {Purpose.REVIEW, Purpose.SUPERVISION}
    cases = {
        ("Mrs Smith", ("review",), "2027-01-29"): "a role, not a name",
        ("parent", (), "2027-01-29"): "at least one purpose",
        ("parent", ("marketing",), "2027-01-29"): "unknown purpose",
        ("parent", ("review",), "29/01/2027"): "a date like",
        ("parent", ("review",), "2026-11-30"): "after today",
        ("parent", ("review",), (TODAY + timedelta(days=3661)).isoformat()): "at most 3660 days",
    }
    for (who, purposes, erase_by), message in cases.items():
        with pytest.raises(ValueError, match=message):
            check_consent(who, purposes, erase_by, today=TODAY, max_days=3660)
    # Without a trustworthy clock, only the form of the date is checked.
    assert check_consent("carer", ["training"], "2026-01-01", today=None, max_days=10)


def test_a_purpose_not_agreed_blocks_what_needs_it(tmp_path: Path) -> None:
    kit = real_kit(tmp_path / "data", cutting=Cutting.NONE)
    try:
        visit = kit.library.start_visit("F-1", consent(frozenset({Purpose.SUPERVISION})))
        with pytest.raises(NotAllowed, match="consent for review"):
            require(visit, Purpose.REVIEW, "Watching the film")
        with pytest.raises(NotAllowed, match="consent for review"):
            kit.library.cut_file(visit.id, "rough-cut.mp4")
        require(visit, Purpose.SUPERVISION, "A supervision export")
    finally:
        kit.close()


def test_the_phone_and_the_button_cannot_record_without_a_consented_visit(
    tmp_path: Path,
) -> None:
    kit = real_kit(tmp_path / "data", cutting=Cutting.NONE)
    events = kit.events
    try:
        last = events.last_id
        kit.worker.press()  # the button, with no visit open
        kit.worker.start("phone")
        while kit.worker.step():
            pass
        assert kit.worker.state == State.IDLE
        assert "start one on the phone, with the family's consent" in kit.worker.status().error
        refused = [e for e in events.since(last) if e.kind == EventKind.REFUSED]
        assert len(refused) == 2
        assert kit.store.db.visits() == []
    finally:
        kit.close()


def test_no_organisation_key_no_visit(tmp_path: Path) -> None:
    from dataclasses import replace

    from kit.clock import MonotonicClock
    from kit.compose import compose
    from kit.hardware.factory import simulated_hardware
    from kit.testing.kits import small_config

    data = tmp_path / "data"
    config = small_config(data)
    config = replace(config, privacy=replace(config.privacy, recipients=()))
    clock = MonotonicClock()
    hardware = simulated_hardware(config, clock)
    kit = compose(config, hardware, clock, boot_id="test", cutting=Cutting.NONE)
    try:
        with pytest.raises(NotAllowed, match="no organisation key"):
            kit.library.start_visit("F-1", consent())
        assert kit.store.db.visits() == []
        assert not (data / "visits").exists() or not any((data / "visits").iterdir())
    finally:
        kit.close()


@pytest.mark.parametrize(
    ("flags", "missing"),
    [
        ([], "--case-ref, --consent-by, --purpose"),
        (["--case-ref", "F-1", "--consent-by", "parent"], "--purpose"),
        (["--case-ref", "F-1", "--purpose", "review"], "--consent-by"),
    ],
)
def test_kit_record_refuses_without_consent(tmp_path: Path, flags: list[str], missing: str) -> None:
    data = tmp_path / "data"
    env = {
        "KIT_PRIVACY_RECIPIENTS": org_key().public,
        "KIT_PRIVACY_KEY_DIR": str(key_dir_for(data)),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [*KIT, "record", "--simulate", "--seconds", "1", "--data", str(data), *flags],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1  # refused at run time (usage errors are 2)
    assert f"kit: error: recording needs the family's consent: give {missing}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(data.rglob("*.kvs")), "nothing was recorded"


def test_kit_record_says_what_is_wrong_with_the_consent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = subprocess.run(
        [
            *KIT,
            "record",
            "--simulate",
            "--seconds",
            "1",
            "--data",
            str(data),
            "--case-ref",
            "F-1",
            "--consent-by",
            "Mrs Smith",
            "--purpose",
            "review",
            "--recipient",
            org_key().public,
        ],
        check=False,
        capture_output=True,
        text=True,
        env={"KIT_PRIVACY_KEY_DIR": str(key_dir_for(data)), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 1  # refused at run time (usage errors are 2)
    assert "kit: error: consent: who gave consent: one of parent" in done.stderr
