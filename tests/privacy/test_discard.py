"""Stop and discard: the family asks, and the last seconds (or the whole take) are destroyed
from every file, with the tags in them; what is kept plays and stays in sync."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kit.clock import NS_PER_S
from kit.compose import Cutting, Kit
from kit.daemon.api import State
from kit.hardware.sim.analysis import analyse_film
from kit.model import TakeState
from kit.store import layout
from kit.testing.kits import real_kit, small_config
from kit.testing.privacy import consent

DISCARD_S = 2.0


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    data = tmp_path / "data"
    config = small_config(data)
    config = replace(config, privacy=replace(config.privacy, discard_s=DISCARD_S))
    kit = real_kit(data, config=config, cutting=Cutting.INLINE)
    kit.worker.begin()
    thread = threading.Thread(target=kit.worker.run, kwargs={"tick_s": 0.1}, daemon=True)
    thread.start()
    yield kit
    from kit.daemon.messages import Shutdown

    kit.worker.post(Shutdown())
    thread.join(30)
    kit.close()


def _wait(condition: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _record(kit: Kit, seconds: float, tags_at: list[float]) -> tuple[str, int, list[str]]:
    """Start a take, tag it at ``tags_at`` seconds, let it run ``seconds``; (take, first, tags)."""
    kit.library.start_visit("F-0042", consent())
    kit.worker.start("phone")
    _wait(lambda: kit.worker.state == State.RECORDING and kit.recorder.first_frame_ns)
    first = kit.recorder.first_frame_ns
    assert first is not None
    tags = []
    for n, at in enumerate(tags_at):
        _wait(lambda at=at: kit.clock.now() >= first + at * NS_PER_S)
        tag, _ = kit.worker.add_tag(f"tag{n:08d}", "Guiding", "a note", "Sam", 0)
        tags.append(tag.id)
    _wait(lambda: kit.clock.now() >= first + seconds * NS_PER_S)
    take = kit.takes.current
    assert take is not None
    return take.id, first, tags


def _plain(kit: Kit, rel: str, to: Path) -> Path:
    with kit.store.files.read(rel) as f:
        to.write_bytes(f.read())
    return to


def _tag_rows(kit: Kit) -> list[str]:
    """Every tag row in the database, deleted ones too."""
    with sqlite3.connect(kit.store.files.path(layout.DATABASE)) as db:
        return [r[0] for r in db.execute("SELECT id FROM tags ORDER BY at_ns")]


def test_discard_while_recording_destroys_the_last_seconds(kit: Kit, tmp_path: Path) -> None:
    take_id, first, tags = _record(kit, 5.5, tags_at=[1.0, 4.5])
    kit.worker.discard("phone")
    _wait(lambda: kit.store.db.take(take_id).state == TakeState.READY)
    visit_id = kit.store.db.take(take_id).visit_id
    _wait(lambda: kit.worker.state == State.IDLE and kit.library.cut(visit_id) is not None)
    take = kit.store.db.take(take_id)
    assert take.keep_until_ns is not None
    kept_s = (take.keep_until_ns - first) / NS_PER_S
    assert 3.2 <= kept_s <= 3.9  # 5.5 s recorded, at most 2 s... plus the time to act
    assert take.duration_ns <= take.keep_until_ns - first + NS_PER_S // 30
    directory = layout.take_dir(take.visit_id, take.id)
    assert not kit.store.files.exists(layout.raw_video(directory))
    assert not kit.store.files.exists(layout.raw_audio(directory))
    # The take's MP4: every frame before the cut-off, none after, in sync.
    report = analyse_film(_plain(kit, layout.take_mp4(directory), tmp_path / "take.mp4"))
    kept_frames = round(take.duration_ns * 30 / NS_PER_S)
    assert report.numbers == list(range(kept_frames))
    assert report.max_abs_offset_s <= 0.005
    # The tag inside the discarded span is gone for good; the one before it stays.
    assert _tag_rows(kit) == [tags[0]]
    # The film and the stills hold only what was kept.
    cut = kit.library.cut(take.visit_id)
    assert cut is not None and len(cut["stills"]) == 1
    film = analyse_film(_plain(kit, layout.in_cut(take.visit_id, layout.FILM), tmp_path / "f.mp4"))
    assert all(n is not None and n < kept_frames for n in film.numbers)
    assert film.max_abs_offset_s <= 0.005
    entries = (kit.store.files.path(layout.AUDIT)).read_text()
    assert '"take.discarded"' in entries and "a note" not in entries


def test_discard_the_whole_take(kit: Kit) -> None:
    take_id, _, _ = _record(kit, 2.0, tags_at=[0.5])
    kit.worker.discard("phone", whole=True)
    _wait(lambda: kit.store.db.take(take_id).state == TakeState.DISCARDED)
    take = kit.store.db.take(take_id)
    directory = kit.store.files.path(layout.take_dir(take.visit_id, take.id))
    assert [p.name for p in directory.iterdir()] == []
    assert _tag_rows(kit) == []


def test_discard_just_after_stop_cuts_the_finished_take(kit: Kit, tmp_path: Path) -> None:
    take_id, _, tags = _record(kit, 4.0, tags_at=[0.5, 3.5])
    kit.worker.stop("phone")
    _wait(lambda: kit.store.db.take(take_id).state == TakeState.READY)
    end = kit.store.db.take(take_id).end_ns
    assert end is not None
    kit.worker.discard("button")  # held down for 3 s, just after the press that stopped it
    _wait(lambda: (kit.store.db.take(take_id).end_ns or 0) < end)
    take = kit.store.db.take(take_id)
    # Counted back from the stop (the press), which is within a frame or two of the end.
    assert take.keep_until_ns is not None
    assert abs(take.keep_until_ns - (end - round(DISCARD_S * NS_PER_S))) <= NS_PER_S // 10
    kept_frames = round(take.duration_ns * 30 / NS_PER_S)
    assert abs(take.duration_ns / NS_PER_S - 2.0) <= 0.1
    directory = layout.take_dir(take.visit_id, take.id)
    report = analyse_film(_plain(kit, layout.take_mp4(directory), tmp_path / "take.mp4"))
    assert report.numbers == list(range(kept_frames))
    assert report.max_abs_offset_s <= 0.005
    assert _tag_rows(kit) == [tags[0]]


def test_holding_the_button_discards(tmp_path: Path) -> None:
    """The panel's button held down for the hold time asks for a discard, once; a press
    does not."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from kit.daemon.panel import Panel

    factory = MockFactory(pin_class=MockPWMPin)
    presses, holds = [], []
    panel = Panel(
        17,
        27,
        lambda: presses.append(1),
        on_hold=lambda: holds.append(1),
        hold_s=0.3,
        bounce_s=None,
        pin_factory=factory,
    )
    try:
        pin = factory.pin(17)
        pin.drive_low()
        pin.drive_high()
        time.sleep(0.5)
        assert (len(presses), len(holds)) == (1, 0)
        pin.drive_low()
        time.sleep(1.0)  # held: one discard, not one every 0.3 s
        pin.drive_high()
        assert (len(presses), len(holds)) == (2, 1)
    finally:
        panel.close()
