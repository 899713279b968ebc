"""Acceptance: kill -9 at random moments; every take recovers, in sync, short of at most 1 s.

The takes are encrypted at rest; the killed kits leave their visit keys in a RAM
dir (as /run/kit/keys outlives a crashed daemon), so the next run and
``kit recover`` finish them. The films are measured from plain copies the
organisation's key opens (some visits end, and are sealed, along the way).
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kit.hardware.sim.analysis import analyse_film
from kit.store import layout
from kit.testing.kits import consent_args, org_store, plain_copy, privacy_env
from kit.testing.launch import stored

KIT = [sys.executable, "-m", "kit"]
TRIALS = 20


def _wait_for_recording(proc: subprocess.Popen[str]) -> int:
    """Wait until the take has its first frame; when that was seen (kit clock)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "recording take" in line:
            return time.monotonic_ns()
    raise AssertionError(f"kit record ended before recording (exit {proc.wait()})")


def _visit_open(data: Path) -> bool:
    """Whether a visit is open (a killed run's): the next take records into it."""
    if not (data / layout.DATABASE).exists():
        return False
    return bool(stored(data, "SELECT id FROM visits WHERE ended_ns IS NULL"))


@pytest.mark.slow
def test_kill_dash_nine_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    data = tmp_path / "data"
    # (kill instant on the kit clock, planned seconds, seconds recorded when killed at most)
    kills: list[tuple[int, float, float]] = []
    env = {**os.environ, **privacy_env(data)}
    for trial in range(TRIALS):
        seconds = rng.choice([1.5, 3.0, 6.0])
        # Into the visit a killed run left open, or else a new one, with the family's consent.
        visit = [] if _visit_open(data) else consent_args(f"F-{trial:04d}")
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
                *visit,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            recording_ns = _wait_for_recording(proc)
            # Anywhere from just after the first frame to past the planned end, so some
            # kills land while the MP4 is being written and some after it is done.
            time.sleep(rng.uniform(0.05, seconds + 0.8))
            kill_ns = time.monotonic_ns()
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
            assert proc.stderr is not None
            proc.stderr.close()
        kills.append((kill_ns, seconds, (kill_ns - recording_ns) / 1e9))

    result = subprocess.run(
        [*KIT, "recover", "--data", str(data)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    # Progress on stderr, a line every 10 % off a terminal, ending with every take.
    assert re.search(r"recovering: 100% (\d+) of \1 takes", result.stderr), result.stderr[-2000:]

    db = sqlite3.connect(data / "kit.db")
    rows = db.execute(
        "SELECT takes.id, takes.visit_id, state, first_frame_ns, end_ns FROM takes "
        "JOIN visits ON visits.id = takes.visit_id ORDER BY takes.rowid"
    ).fetchall()
    db.close()
    assert len(rows) == TRIALS
    store = org_store(data)
    try:
        for (take_id, visit_id, state, first, end), (kill_ns, seconds, killed_s) in zip(
            rows, kills, strict=True
        ):
            if state == "empty":
                # The stream files are made durable once a second, and encrypted a chunk at
                # a time in memory until then: a take killed in its first second may have
                # nothing on the card. That is the second it may be short of, no more.
                assert killed_s < 1.0, (take_id, state, killed_s)
                continue
            assert state == "ready", (take_id, state)
            planned_end = first + int(seconds * 1e9)
            expected = min(kill_ns, planned_end) - first
            directory = layout.take_dir(visit_id, take_id)
            mp4 = plain_copy(store.files, layout.take_mp4(directory), tmp_path / "plain" / take_id)
            report = analyse_film(mp4)
            frames = len(report.frames)
            # Whole and in order. On a busy machine the simulated camera may fall behind at
            # the very start and skip its first frames, counted as dropped, as a real one would.
            begins = (report.numbers or [0])[0] or 0  # None: unreadable, failed below
            assert report.numbers == list(range(begins, begins + frames)), take_id
            assert begins <= 30, (take_id, begins)  # a second at most
            duration_ns = frames * 1e9 / 30
            assert duration_ns >= expected - 1e9, (take_id, duration_ns, expected)
            assert (end - first) == pytest.approx(duration_ns, abs=1e3)
            # A kill just after a white frame can take the audio of its beep with it: both
            # streams reach the kernel every 0.1 s (recorder.FLUSH_INTERVAL_NS), the sound
            # ~10 ms behind the picture. Only the very end may lack one.
            assert all(w >= duration_ns / 1e9 - 0.2 for w in report.unmatched_white_s), (
                take_id,
                killed_s,
                seconds,
                duration_ns / 1e9,
                report.unmatched_white_s,
            )
            assert report.max_abs_offset_s <= 0.005, (take_id, report.offsets_s)
            assert not store.files.exists(layout.raw_video(directory))
    finally:
        store.close()
