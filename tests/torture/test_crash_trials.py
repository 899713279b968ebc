"""Issue #14, must-show 2: kill -9 of the daemon at random moments, 20 times.

``kit bench crash`` (kit/bench/crash.py) on a sample: one data directory, ``kit run
--simulate`` at 320x240 driven over HTTP like a phone (a visit with consent, takes
tagged every ~0.3 s, Stop, the cut; End visit now and then), killed with SIGKILL while
recording, finalising, cutting and recovering from the kill before, restarted after
each kill, then left to settle (the last visit ended and sealed, SIGTERM). What is
checked is read with the organisation's key (:func:`kit.bench.crash.check`); each test
below asserts one guarantee of it. The seed is fixed and printed; the moments are
not (they are real time), so the figures differ a little from run to run.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

from kit.bench.crash import (
    DEFAULT_SEED,
    LIVE_FILM_TEMP,
    MAX_LOST_S,
    PHASES,
    SMALL_ENV,
    Report,
    run_trials,
)
from kit.crypto.chunked import EncryptedFile
from kit.crypto.keys import unwrap
from kit.recording.streamfile import read_header, scan
from kit.store import layout
from kit.testing.launch import KitProcess, stored
from kit.testing.phone import HttpPhone
from kit.testing.privacy import key_dir_for, org_key
from tests.torture.power import child_site

pytestmark = pytest.mark.slow

TRIALS = 20


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    data = tmp_path_factory.mktemp("crash") / "data"
    print(f"crash trials: seed {DEFAULT_SEED}, {TRIALS} kills")
    try:
        found = run_trials(data, TRIALS, DEFAULT_SEED, lambda line: print(line, flush=True))
    finally:
        shutil.rmtree(key_dir_for(data), ignore_errors=True)
    print(found.figures())
    yield found


def test_the_kills_landed_in_every_phase(report: Report) -> None:
    phases = Counter(phase for _, phase in report.kills)
    assert len(report.kills) == TRIALS
    assert all(phases[p] for p in PHASES), phases
    assert len(report.tags) > 50, "too few acknowledged tags for the sample to say much"


def test_every_take_recovers(report: Report) -> None:
    """Ready, or empty only if it was killed within its first second."""
    assert report.lost_s, "no take became ready"
    assert not report.problems["takes"], report.problems["takes"]


def test_at_most_the_last_second_of_media_is_lost(report: Report) -> None:
    assert not report.problems["media"], report.problems["media"]
    assert max(report.lost_s.values()) <= MAX_LOST_S


def test_no_acknowledged_tag_is_lost(report: Report) -> None:
    """In the database, and (if its take is ready) in its visit's final film."""
    assert not report.problems["tags"], report.problems["tags"]
    assert not report.tags_lost


def test_every_visit_ends_with_a_film_holding_every_tag(report: Report) -> None:
    """Sealed, with an up-to-date cut whose film has a chapter per clip."""
    assert not report.problems["films"], report.problems["films"]
    assert not report.incomplete_films


def test_the_settled_kit_stops_cleanly(report: Report) -> None:
    assert not report.problems["shutdown"], report.problems["shutdown"]


def test_the_sample_holds_what_the_process_check_needs(report: Report) -> None:
    """Kills while a cutting child ran: without them the check below passes for want of one."""
    assert report.cutting_at_kill >= 3, report.cutting_at_kill


def test_no_orphaned_files(report: Report) -> None:
    """No .partial/.tmp file anywhere, no raw stream beside a ready take: but for what the
    two known bugs below leave (counted in ``report.known``, shown in the figures)."""
    assert not report.problems["files"], report.problems["files"]


def test_no_orphaned_processes(report: Report) -> None:
    """No child of a killed daemon runs on after it; nothing names the data dir at the end."""
    assert not report.problems["processes"], report.problems["processes"]


# -- crashes at an exact point ------------------------------------------------------------
#
# Random kills rarely land in a window of a few milliseconds; these put the kill -9
# exactly there. A sitecustomize in the kit's process (tests/torture/fsyncjournal.py)
# kills it as it opens, or is about to unlink, a file of a given name.


def _killed_at(
    tmp_path: Path, point: dict[str, str], env: dict[str, str], action: Callable[[HttpPhone], None]
) -> tuple[Path, dict[str, Any]]:
    """Open a visit on a kit that kills itself at ``point``, start a take and ``action``
    (which must bring the kit to that point); start it again and let it settle. The data
    directory and the take's row."""
    data = tmp_path / "data"
    dying = KitProcess(data, env={**SMALL_ENV, **env, "PYTHONPATH": child_site(tmp_path), **point})
    try:
        kit = dying.wait_ready()
        phone = HttpPhone(kit.url, kit.code)
        phone.start_visit("F-0014")
        assert phone.call("POST", "/api/start")[0] == 202
        action(phone)
        assert dying.proc.wait(timeout=60) == -signal.SIGKILL, "it did not die at the point"
    finally:
        if dying.proc.poll() is None:
            dying.proc.kill()
        dying.kill()
    try:
        with KitProcess(data, env=dict(SMALL_ENV)) as again:
            kit = again.wait_ready()
            phone = HttpPhone(kit.url, kit.code, name="after the kill")
            phone.wait_until(lambda: phone.get("/api/state")["status"]["state"] == "idle", 60, "")
    finally:
        shutil.rmtree(key_dir_for(data), ignore_errors=True)  # the RAM keys, in /dev/shm
    [row] = stored(data, "SELECT * FROM takes")
    return data, row


def _record_then(path: str, body: Any = None) -> Callable[[HttpPhone], None]:
    """Record 3.5 s, then POST ``body`` to ``path`` (the stop, or a discard)."""

    def action(phone: HttpPhone) -> None:
        phone.wait_until(lambda: phone.get("/api/state")["status"]["state"] == "recording", 30, "")
        time.sleep(3.5)
        assert phone.call("POST", path, body)[0] == 202

    return action


# The kit dies as it is about to remove the take's raw video stream: just after the take's
# row was marked ready (kit/recording/takes.py, Finaliser.finalise: update_take(READY),
# then _remove_raw).
AT_RAW_REMOVAL = {"POWERCUT_KILL_AT_UNLINK": "video.kvs"}


def test_a_kill_just_after_a_take_is_ready_leaves_no_raw_stream(tmp_path: Path) -> None:
    data, take = _killed_at(tmp_path, AT_RAW_REMOVAL, {}, _record_then("/api/stop"))
    assert take["state"] == "ready"
    directory = data / layout.take_dir(take["visit_id"], take["id"])
    left = sorted(p.name for p in directory.iterdir() if p.name != "take.mp4")
    assert not left, f"left beside the ready take: {left}"


def test_a_kill_just_after_a_discard_is_made_keeps_no_discarded_sound(tmp_path: Path) -> None:
    last_second = {"KIT_PRIVACY_DISCARD_S": "1"}  # what Discard destroys: the take's last 1 s
    data, take = _killed_at(tmp_path, AT_RAW_REMOVAL, last_second, _record_then("/api/discard", {}))
    assert take["state"] == "ready" and take["keep_until_ns"] is not None
    audio = data / layout.raw_audio(layout.take_dir(take["visit_id"], take["id"]))
    if not audio.exists():
        return
    key = unwrap((data / layout.wrapped_key(take["visit_id"])).read_bytes(), [org_key().secret])
    with audio.open("rb") as raw, EncryptedFile.open(raw, key) as opened:
        plain = cast(BinaryIO, opened)
        read_header(plain)
        after = [r.t_ns for r in scan(plain) if r.t_ns >= take["keep_until_ns"]]
    assert not after, f"{len(after)} blocks of discarded sound are still on the card"


def test_a_take_killed_as_it_begins_leaves_no_temp_file(tmp_path: Path) -> None:
    # The kit dies as its live film opens its temp file: the take's first milliseconds.
    point = {"POWERCUT_KILL_AFTER_OPEN": LIVE_FILM_TEMP}
    data, take = _killed_at(tmp_path, point, {}, lambda _phone: None)
    assert take["state"] == "empty", take
    directory = data / layout.take_dir(take["visit_id"], take["id"])
    left = sorted(p.name for p in directory.iterdir() if p.name.startswith("."))
    assert not left, f"left beside the empty take: {left}"
