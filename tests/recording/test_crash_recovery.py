"""Acceptance: kill -9 at random moments; every take recovers, in sync, short of at most 1 s."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kit.hardware.sim.analysis import analyse_film

KIT = [sys.executable, "-m", "kit"]
TRIALS = 20


def _wait_for_recording(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if "recording take" in line:
            return
    raise AssertionError(f"kit record ended before recording (exit {proc.wait()})")


@pytest.mark.slow
def test_kill_dash_nine_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    data = tmp_path / "data"
    kills: list[tuple[int, float]] = []  # (kill instant on the kit clock, planned seconds)
    for _ in range(TRIALS):
        seconds = rng.choice([1.5, 3.0, 6.0])
        proc = subprocess.Popen(
            [
                *KIT,
                "record",
                "--simulate",
                "--seconds",
                str(seconds),
                "--data",
                str(data),
                "--width",
                "640",
                "--height",
                "360",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for_recording(proc)
            # Anywhere from just after the first frame to past the planned end, so some
            # kills land while the MP4 is being written and some after it is done.
            time.sleep(rng.uniform(0.05, seconds + 0.8))
            kill_ns = time.monotonic_ns()
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
            assert proc.stderr is not None
            proc.stderr.close()
        kills.append((kill_ns, seconds))

    result = subprocess.run(
        [*KIT, "recover", "--data", str(data)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr

    db = sqlite3.connect(data / "kit.db")
    rows = db.execute(
        "SELECT takes.id, takes.visit_id, state, first_frame_ns, end_ns FROM takes "
        "JOIN visits ON visits.id = takes.visit_id ORDER BY visits.rowid"
    ).fetchall()
    db.close()
    assert len(rows) == TRIALS
    for (take_id, visit_id, state, first, end), (kill_ns, seconds) in zip(rows, kills, strict=True):
        assert state == "ready", (take_id, state)
        planned_end = first + int(seconds * 1e9)
        expected = min(kill_ns, planned_end) - first
        mp4 = data / "visits" / visit_id / "takes" / take_id / "take.mp4"
        report = analyse_film(mp4)
        frames = len(report.frames)
        assert report.numbers == list(range(frames)), take_id
        duration_ns = frames * 1e9 / 30
        assert duration_ns >= expected - 1e9, (take_id, duration_ns, expected)
        assert (end - first) == pytest.approx(duration_ns, abs=1e3)
        # A kill just after a white frame can take the audio of its beep with it
        # (audio reaches the disk ~10 ms behind video): only the very end may lack one.
        assert all(w >= duration_ns / 1e9 - 0.1 for w in report.unmatched_white_s), take_id
        assert report.max_abs_offset_s <= 0.005, (take_id, report.offsets_s)
        assert not (mp4.parent / "video.kvs").exists()
