"""The daemon's background cutter: queued cuts, callbacks, failures, shutdown."""

from __future__ import annotations

import queue
from pathlib import Path

from kit.bench.cut import BenchOptions, build_take
from kit.clock import NS_PER_S
from kit.cutting.plan import CutRules
from kit.cutting.service import BackgroundCutter
from kit.cutting.session import film_path
from kit.store.store import Store

SMALL = BenchOptions(minutes=4 / 60, tags=1, width=160, height=120, bitrate=200_000)


def test_cuts_run_in_turn_and_always_report(tmp_path: Path) -> None:
    store = Store(tmp_path)
    session, _ = build_take(store, SMALL, t0=100 * NS_PER_S)
    cutter = BackgroundCutter(store, CutRules())
    done: queue.Queue[tuple[str, str]] = queue.Queue()
    progress: list[float] = []
    cutter.start(session, progress.append, lambda err: done.put((session, err)))
    cutter.start("no-such-session", lambda _: None, lambda err: done.put(("none", err)))
    assert done.get(timeout=60) == (session, "")
    name, error = done.get(timeout=60)
    assert name == "none" and "no session" in error
    assert store.files.exists(film_path(session))
    assert progress and progress[-1] == 1.0
    assert cutter.last is not None and cutter.last.session_id == session
    cutter.close()
    assert not cutter.busy
    refused: list[str] = []
    cutter.start(session, lambda _: None, refused.append)
    assert refused == ["the cutter is shut down"]
