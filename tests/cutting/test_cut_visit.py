"""A recorded take, tagged with ``kit record --tag-at``, cut end to end and measured from the files.

One 20 s simulated take (real H.264 + AAC, a keyframe a second, frame numbers
on every frame, a white frame and a beep every second) is recorded once for
the module and cut into three moments (two of them adjacent, one starting
mid-GOP); the cut runs in its low-priority child process like the daemon's.
``kit record``'s visit is encrypted and, once ended and cut, sealed: the test
reads it as the organisation does, with its key, and measures plain copies.
"""

from __future__ import annotations

import csv
import io
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio
import pytest

from kit.clock import NS_PER_S, seconds
from kit.cutting.plan import CutRules, Window
from kit.cutting.visit import CutResult, cut_visit
from kit.hardware.sim.analysis import analyse_film
from kit.hardware.sim.framecode import read_code
from kit.model import Access
from kit.store.store import Store
from kit.testing.kits import consent_args, org_store, plain_copy, privacy_env

pytestmark = pytest.mark.slow  # the take is recorded in real time (20 s)

FPS = 30
NOTE = "she waited = he looked up ★ together"
# Guiding asks for more lead; everything else 3 s before and 2 s after.
RULES = CutRules(Window(seconds(3), seconds(2)), (("guiding", Window(seconds(4), seconds(2.5))),))
# Tags at 5 s (Guiding: 1..7.5), 9.5 s (6.5..11.5: overlapping, so two adjacent moments
# split midway, at 7.25 s) and 17.5 s (14.5..19.5).
TAG_ARGS = ["--tag-at", "5:Guiding", "--tag-at", "9.5", "--tag-at", "17.5:Receiving initiatives"]
PLANNED_S = [(1.0, 7.25), (7.25, 11.5), (14.5, 19.5)]
# Each starts on the frame showing at its start (7.25 s is within frame 217, 7.2333 s); the
# third's frames from its keyframe at 14 s play just before it.
FIRST_FRAME_S = [1.0, 217 / 30, 14.5]
LEAD_IN_S = [0.0, 0.0, 0.5]
FILM_START_S = [0.0, 217 / 30 - 1.0, 11.0]


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, CutResult, list[float]]]:
    root = tmp_path_factory.mktemp("cut")
    argv = [
        sys.executable,
        "-m",
        "kit",
        "record",
        "--simulate",
        "--seconds",
        "20",
        "--width",
        "640",
        "--height",
        "360",
        "--data",
        str(root),
        *consent_args("F-0042"),
        *TAG_ARGS,
    ]
    env = {**os.environ, **privacy_env(root)}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert "is sealed" in done.stdout, done.stdout  # its own visit: ended, cut, sealed
    store = org_store(root)  # the organisation's key opens the sealed visit
    visit = store.db.visits()[0]
    assert visit.access == Access.SEALED and visit.case_ref == "F-0042"
    guiding = next(t for t in store.db.tags_for_visit(visit.id) if t.label == "Guiding")
    store.db.update_tag(guiding.id, note=NOTE)
    progress: list[float] = []
    result = cut_visit(store, visit.id, RULES, progress.append)
    yield store, result, progress
    store.close()


Plain = Callable[[str], Path]


@pytest.fixture(scope="module")
def plain(
    cut: tuple[Store, CutResult, list[float]], tmp_path_factory: pytest.TempPathFactory
) -> Plain:
    """A plain copy of one of the cut's files, to open by path (PyAV, OTIO)."""
    store = cut[0]
    made: dict[str, Path] = {}

    def copy(rel: str) -> Path:
        if rel not in made:
            made[rel] = plain_copy(store.files, rel, tmp_path_factory.mktemp("plain"))
        return made[rel]

    return copy


def _text(store: Store, rel: str) -> str:
    with store.files.read(rel) as f:
        return f.read().decode("utf-8")


def test_the_cut_is_encrypted_at_rest(cut: tuple[Store, CutResult, list[float]]) -> None:
    store, result, _ = cut
    assert result.film is not None and result.exports is not None
    for rel in (result.film.path, result.exports.csv, result.stills[0].path):
        with store.files.read(rel) as f:
            head = f.read(4096)
        assert head and head not in store.files.path(rel).read_bytes()
    assert NOTE.encode() not in store.files.path(result.exports.csv).read_bytes()


def _take_s(result: CutResult, ns: int) -> float:
    assert result.film is not None
    return (ns - result.film.clips[0].source.first_frame_ns) / NS_PER_S


def test_moments_start_and_end_on_their_frames(
    cut: tuple[Store, CutResult, list[float]],
) -> None:
    _, result, progress = cut
    film = result.film
    assert film is not None
    planned = [(_take_s(result, c.start_ns), _take_s(result, c.end_ns)) for c in result.plan.clips]
    assert planned == PLANNED_S
    assert len(film.clips) == 3
    frame = NS_PER_S // FPS
    for clip in film.clips:
        # From the frame showing at the planned start to the one before the frame at its end.
        assert clip.start_ns <= clip.clip.start_ns < clip.start_ns + frame
        assert clip.end_ns <= clip.clip.end_ns < clip.end_ns + frame
    assert [_take_s(result, c.start_ns) for c in film.clips] == pytest.approx(
        FIRST_FRAME_S, abs=1e-4
    )
    assert [c.lead_in_ns / NS_PER_S for c in film.clips] == pytest.approx(LEAD_IN_S, abs=1e-4)
    assert [c.film_start_ns / NS_PER_S for c in film.clips] == pytest.approx(FILM_START_S, abs=1e-4)
    # The second carries on from the first: no frame between them, none twice.
    assert film.clips[0].film_end_ns == film.clips[1].film_start_ns
    assert film.clips[0].end_ns == film.clips[1].start_ns
    assert [c.clip.moment_id for c in film.clips] == [
        t.id for c in result.plan.clips for t in c.tags
    ]
    assert film.duration_ns == pytest.approx(16 * NS_PER_S, abs=1000)
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 5
    assert result.peak_rss_bytes < 200 * 2**20


def test_the_film_plays_the_right_frames_in_sync(
    cut: tuple[Store, CutResult, list[float]], plain: Plain
) -> None:
    _, result, _ = cut
    assert result.film is not None
    path = plain(result.film.path)
    report = analyse_film(path)
    assert report.numbers == [*range(30, 345), *range(420, 585)]
    assert report.video_duration_s == pytest.approx(16.0, abs=1e-3)
    # A white frame each whole second of the takes: 1..11 s, then 14..19 s at 10.5 s on.
    assert report.white_times_s == pytest.approx(
        [*range(11), *(10.5 + k for k in range(6))], abs=1e-3
    )
    assert len(report.offsets_s) == 17
    assert report.max_abs_offset_s <= 0.005, report.offsets_s


def test_timestamps_run_on_and_the_file_starts_fast(
    cut: tuple[Store, CutResult, list[float]], plain: Plain
) -> None:
    _, result, _ = cut
    assert result.film is not None
    path = plain(result.film.path)
    with av.open(str(path)) as container:
        video = [p for p in container.demux(video=0) if p.pts is not None]
    pts = [p.pts for p in video]
    assert pts == [k * 3000 for k in range(len(pts))]
    assert video[0].is_keyframe and video[315].is_keyframe
    data = path.read_bytes()
    boxes = []
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        boxes.append(kind.decode())
        offset += size if size else len(data)
    assert boxes.index("moov") < boxes.index("mdat")


def test_one_chapter_per_clip_titled_with_its_labels_never_the_note(
    cut: tuple[Store, CutResult, list[float]], plain: Plain
) -> None:
    _, result, _ = cut
    assert result.film is not None
    path = plain(result.film.path)
    with av.open(str(path)) as container:
        chapters = container.chapters()
        metadata = dict(container.metadata)
    titles = [c["metadata"]["title"] for c in chapters]
    assert titles == ["Guiding", "better than usual", "Receiving initiatives"]
    # The guider's note is private: not in the film the family watches, anywhere.
    assert not any(NOTE in str(v) for c in chapters for v in c["metadata"].values())
    assert not any(NOTE in str(v) for v in metadata.values())
    assert NOTE.encode() not in path.read_bytes() and b"she waited" not in path.read_bytes()
    bounds = [(float(c["start"] * _base(c)), float(c["end"] * _base(c))) for c in chapters]
    # Each chapter begins on its moment's first frame (to the millisecond); MP4 chapters
    # have no gaps, so the half second of lead-in before the third ends the second.
    flat = [t for bound in bounds for t in bound]
    assert flat == pytest.approx([0, 6.233, 6.233, 11.0, 11.0, 16.0], abs=1e-3)


def test_stills_show_the_frame_at_each_tag(
    cut: tuple[Store, CutResult, list[float]], plain: Plain
) -> None:
    _, result, _ = cut
    assert [s.number for s in result.stills] == [1, 2, 3]
    frames = []
    for still in result.stills:
        with av.open(str(plain(still.path))) as container:
            frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (640, 360)
        luma = np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)[: frame.height]
        code = read_code(luma)
        assert code is not None
        frames.append(code.number)
    assert frames == [150, 285, 525]
    assert [s.film_ns for s in result.stills] == [4 * NS_PER_S, 8_500_000_000, 14 * NS_PER_S]
    assert result.contact_sheet is not None
    with av.open(str(plain(result.contact_sheet))) as container:
        sheet = next(container.decode(video=0))
    assert sheet.width > 3 * 400 and sheet.height > 200


def test_exports_read_back(cut: tuple[Store, CutResult, list[float]]) -> None:
    store, result, _ = cut
    exports = result.exports
    assert exports is not None and result.film is not None
    timeline = otio.adapters.read_from_string(_text(store, exports.otio), "otio_json")
    video_track = timeline.video_tracks()[0]
    # The moments as an edit of the takes: each from its first frame (no lead-ins).
    assert len(video_track) == 3
    assert timeline.duration().to_seconds() == pytest.approx(15.5)
    first = video_track[0]
    assert first.source_range.start_time.to_seconds() == pytest.approx(1.0)
    assert video_track[2].source_range.start_time.to_seconds() == pytest.approx(14.5)
    assert [m.name for m in first.markers] == ["Guiding"]
    assert first.markers[0].comment == NOTE
    assert first.markers[0].marked_range.start_time.to_seconds() == pytest.approx(5.0)
    media = store.files.path(exports.otio).parent / first.media_reference.target_url
    assert media.resolve().exists()

    edl = _text(store, exports.edl)
    # One event per clip, picture and sound together (B: V and A1), numbered once each.
    events = re.findall(
        r"^(\d{3})  (\S+)\s+(B)\s+C\s+(\S+) (\S+) (\S+) (\S+)$", edl, flags=re.MULTILINE
    )
    assert [(e[0], e[2]) for e in events] == [("001", "B"), ("002", "B"), ("003", "B")]
    assert events[0][3:] == ("00:00:01:00", "00:00:07:07", "01:00:00:00", "01:00:06:07")
    assert events[1][3:] == ("00:00:07:07", "00:00:11:15", "01:00:06:07", "01:00:10:15")
    assert events[2][3:] == ("00:00:14:15", "00:00:19:15", "01:00:10:15", "01:00:15:15")
    assert len(otio.adapters.read_from_string(edl, "cmx_3600", rate=FPS).video_tracks()[0]) == 3
    assert len(re.findall(r"^\* LOC: \d\d:\d\d:\d\d:\d\d YELLOW ", edl, flags=re.MULTILINE)) == 3
    consent = re.search(r"^\* CONSENT: (.+)$", edl, flags=re.MULTILINE)
    assert consent is not None and consent.group(1).startswith(
        "given by parent for review, supervision, training; erase by "
    )

    rows = list(csv.DictReader(io.StringIO(_text(store, exports.csv))))
    assert [r["label"] for r in rows] == ["Guiding", "better than usual", "Receiving initiatives"]
    assert rows[0]["note"] == NOTE
    assert [r["take_time_s"] for r in rows] == ["5.000", "9.500", "17.500"]
    assert [r["film_time_s"] for r in rows] == ["4.000", "8.500", "14.000"]

    vtt = _text(store, exports.vtt)
    assert vtt.startswith("WEBVTT\n\n")
    cues = re.findall(
        r"^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(.+)$", vtt, flags=re.MULTILINE
    )
    assert cues == [
        ("00:00:00.000", "00:00:06.233", "Guiding"),
        ("00:00:06.233", "00:00:10.500", "better than usual"),
        ("00:00:11.000", "00:00:16.000", "Receiving initiatives"),
    ]
    assert "she waited" not in vtt  # chapters carry labels only: the note stays private


def _base(chapter: Any) -> Fraction:
    """A chapter's time base (PyAV's stubs allow None; the kit's chapters always have one)."""
    assert chapter["time_base"] is not None
    return Fraction(chapter["time_base"])
