"""Rendering from built (not recorded) takes: several takes, the edges of a take, failures.

The takes come from the cut benchmark's builder: simulated frames encoded
once and repeated (frame ``n`` shows code ``n % 120``), AAC with a beep
each second, muxed like a finalised take. Fast, so these run in-process.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from kit.clock import NS_PER_S, seconds
from kit.cutting import CutError
from kit.cutting.plan import Clip, CutPlan, CutRules, Window
from kit.cutting.render import Source, render_film
from kit.cutting.visit import cut_visit
from kit.hardware.sim.analysis import analyse_film
from kit.hardware.sim.framecode import read_code
from kit.model import Tag
from kit.store import layout
from kit.store.store import Store, new_id
from kit.testing.longtake import TakeShape, build_take

SMALL = TakeShape(minutes=8 / 60, tags=0, width=320, height=240, bitrate=400_000)
T1 = 5_000 * NS_PER_S
T2 = 9_000 * NS_PER_S
RULES = CutRules(Window(seconds(1.5), seconds(1.2)))


def _tag(store: Store, visit: str, take: str, at: int, label: str) -> Tag:
    tag = Tag(new_id(), visit, take, at, label, "", "test", at)
    store.db.add_tag(tag)
    return tag


@pytest.fixture
def two_takes(tmp_path: Path) -> tuple[Store, str, str, str]:
    store = Store(tmp_path)
    visit, first = build_take(store, SMALL, t0=T1)
    _, second = build_take(store, SMALL, visit_id=visit, t0=T2)
    return store, visit, first, second


def test_clips_from_two_takes_and_both_ends_of_a_take(
    two_takes: tuple[Store, str, str, str],
) -> None:
    store, visit, first, second = two_takes
    # Take 1: at its very start; take 2: mid-way, and a tap 0.5 s after it stopped.
    _tag(store, visit, first, T1 + seconds(0.2), "Guiding")
    _tag(store, visit, second, T2 + seconds(3.4), "Being attentive")
    _tag(store, visit, second, T2 + seconds(8.5), "better than usual ★")
    progress: list[float] = []
    result = cut_visit(store, visit, RULES, progress.append, in_child=False)
    film = result.film
    assert film is not None
    spans = [(c.take_start_ns / NS_PER_S, c.take_end_ns / NS_PER_S) for c in film.clips]
    # [0, 1.4]; [1.9, 4.6] on its very frame; [7.0, 8.0] to the take's end.
    assert spans == [(0.0, 1.4), (1.9, 4.6), (7.0, 8.0)]
    assert [c.source.take_id for c in film.clips] == [first, second, second]
    # The second starts mid-GOP: the film shows its take from keyframe 1 s just before it.
    assert [c.lead_in_ns / NS_PER_S for c in film.clips] == [0.0, 0.9, 0.0]
    assert [c.film_start_ns / NS_PER_S for c in film.clips] == [0.0, 2.3, 5.0]
    report = analyse_film(store.files.path(film.path))
    expected = [k % 120 for k in [*range(0, 42), *range(30, 138), *range(210, 240)]]
    assert report.numbers == expected
    assert report.video_duration_s == pytest.approx(1.4 + 3.6 + 1.0, abs=1e-3)
    assert report.max_abs_offset_s <= 0.005, report.offsets_s
    with av.open(str(store.files.path(film.path))) as container:
        chapters = container.chapters()
        assert [float(c["start"] * Fraction(c["time_base"] or 1)) for c in chapters] == [
            0.0,
            2.3,
            5.0,
        ]
        audio = container.streams.audio[0]
        assert audio.duration is not None and audio.time_base is not None
        assert float(audio.duration * audio.time_base) == pytest.approx(6.0, abs=0.03)
    # The late tap's still is the take's last frame.
    assert [s.take_ns for s in result.stills][-1] == round(239 * NS_PER_S / 30)
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_a_recut_without_tags_removes_the_old_outputs(
    two_takes: tuple[Store, str, str, str],
) -> None:
    store, visit, first, _ = two_takes
    tag = _tag(store, visit, first, T1 + seconds(4), "Guiding")
    result = cut_visit(store, visit, RULES, in_child=False)
    assert result.film is not None and store.files.exists(result.film.path)
    old_still = result.stills[0].path
    store.db.delete_tag(tag.id)
    again = cut_visit(store, visit, RULES, in_child=False)
    assert again.film is None and again.stills == () and again.exports is None
    assert not store.files.exists(layout.in_cut(visit, layout.FILM))
    assert not store.files.exists(old_still)
    # Only the manifest stays: "nothing to cut" is an up-to-date result too.
    assert [p.name for p in store.files.path(layout.cut_dir(visit)).glob("*.*")] == ["cut.json"]


def test_a_moved_tag_replaces_its_old_still(two_takes: tuple[Store, str, str, str]) -> None:
    store, visit, first, _ = two_takes
    tag = _tag(store, visit, first, T1 + seconds(4), "Guiding")
    early = _tag(store, visit, first, T1 + seconds(0.5), "Receiving initiatives")
    cut_visit(store, visit, RULES, in_child=False)
    store.db.update_tag(early.id, at_ns=T1 + seconds(7))
    result = cut_visit(store, visit, RULES, in_child=False)
    names = sorted(p.name for p in store.files.path(f"{layout.cut_dir(visit)}/stills").iterdir())
    assert names == [f"01-{tag.id}.jpg", f"02-{early.id}.jpg"]
    with av.open(str(store.files.path(result.stills[1].path))) as container:
        frame = next(container.decode(video=0))
    code = read_code(np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)[:240])
    assert code is not None and code.number == (7 * 30) % 120


def test_takes_filmed_differently_cannot_share_a_film(tmp_path: Path) -> None:
    store = Store(tmp_path)
    visit, first = build_take(store, SMALL, t0=T1)
    _, second = build_take(store, replace(SMALL, width=352), visit_id=visit, t0=T2)
    _tag(store, visit, first, T1 + seconds(4), "Guiding")
    _tag(store, visit, second, T2 + seconds(4), "Guiding")
    with pytest.raises(CutError, match="other video settings"):
        cut_visit(store, visit, RULES, in_child=False)
    assert not store.files.exists(layout.in_cut(visit, layout.FILM))


def test_a_plan_naming_a_take_without_film_fails_cleanly(tmp_path: Path) -> None:
    store = Store(tmp_path)
    plan = CutPlan((Clip("nope", 0, NS_PER_S, ()),))
    with pytest.raises(CutError, match="no film"):
        render_film(store.files, plan, {}, "out/film.mp4")
    with pytest.raises(CutError, match="nothing to cut"):
        render_film(store.files, CutPlan(()), {"x": Source("x", 1, "x.mp4", 0)}, "f.mp4")
    assert not store.files.exists("out/film.mp4")
