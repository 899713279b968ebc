"""The daemon's background cutter: queued cuts, callbacks, failures, shutdown."""

from __future__ import annotations

import queue
from pathlib import Path

from kit.clock import NS_PER_S
from kit.cutting.plan import CutRules
from kit.cutting.service import BackgroundCutter
from kit.store import layout
from kit.store.store import Store
from kit.testing.longtake import TakeShape, build_take

SMALL = TakeShape(minutes=4 / 60, tags=1, width=160, height=120, bitrate=200_000)


def test_cuts_run_in_turn_and_always_report(tmp_path: Path) -> None:
    store = Store(tmp_path)
    visit, _ = build_take(store, SMALL, t0=100 * NS_PER_S)
    cutter = BackgroundCutter(store, CutRules())
    done: queue.Queue[tuple[str, str]] = queue.Queue()
    progress: list[float] = []
    cutter.start(visit, progress.append, lambda err: done.put((visit, err)))
    cutter.start("no-such-visit", lambda _: None, lambda err: done.put(("none", err)))
    assert done.get(timeout=60) == (visit, "")
    name, error = done.get(timeout=60)
    assert name == "none" and "no visit" in error
    assert store.files.exists(layout.in_cut(visit, layout.FILM))
    assert progress and progress[-1] == 1.0
    assert cutter.last is not None and cutter.last.visit_id == visit
    cutter.close()
    assert not cutter.busy
    refused: list[str] = []
    cutter.start(visit, lambda _: None, refused.append)
    assert refused == ["the cutter is shut down"]
