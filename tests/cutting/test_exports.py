"""The exporters as pure functions of a film: OTIO, EDL, CSV and WebVTT, read back."""

from __future__ import annotations

import csv
import io
import json
import re
from fractions import Fraction

import opentimelineio as otio
import pytest

from kit.clock import NS_PER_S
from kit.cutting.exports import edl, otio_timeline, tags_csv, timecode, webvtt_chapters
from kit.cutting.plan import Clip
from kit.cutting.render import Film, FilmClip, Source
from kit.model import Tag

S = NS_PER_S
T0 = 777 * S
SOURCE_1 = Source("take-a", 1, "visits/s/takes/take-a/take.mp4", T0)
SOURCE_2 = Source("take-b", 2, "visits/s/takes/take-b/take.mp4", T0 + 100 * S)
CUT_DIR = "visits/s/cut"
CONSENT = {"given_by": "carer", "purposes": ["review", "training"], "erase_by": "2027-01-31"}


def _tag(tag_id: str, source: Source, at_s: float, label: str, note: str = "") -> Tag:
    at = source.first_frame_ns + round(at_s * S)
    return Tag(tag_id, "s", source.take_id, at, label, note, "guider", at)


TAGS = [
    _tag("g1", SOURCE_1, 12.0, "Guiding", "=SUM(A1) <b>bold</b> & more"),
    _tag("g2", SOURCE_1, 14.5, "better than usual ★"),
    _tag("g3", SOURCE_2, 30.0, "Être attentif", "l'enfant --> sourit"),
]
LOST = _tag("g4", SOURCE_2, 500.0, "Guiding")


def _film_clip(
    source: Source, start_s: float, end_s: float, film_s: float, tags: list[Tag]
) -> FilmClip:
    start, end = (
        source.first_frame_ns + round(start_s * S),
        source.first_frame_ns + round(end_s * S),
    )
    clip = Clip(source.take_id, start, end, tuple(tags))
    return FilmClip(
        clip,
        source,
        start,
        end,
        round(film_s * S),
        round((film_s + end_s - start_s) * S),
        round((end_s - start_s) * 30),
    )


FILM = Film(
    path=f"{CUT_DIR}/rough-cut.mp4",
    clips=(
        _film_clip(SOURCE_1, 4.0, 17.5, 0.0, TAGS[:2]),
        _film_clip(SOURCE_2, 22.0, 33.0, 13.5, TAGS[2:]),
    ),
    fps=Fraction(30),
    width=1280,
    height=720,
    size_bytes=1,
)


def test_otio_timeline_reads_back_with_markers() -> None:
    text = otio_timeline(
        FILM,
        CUT_DIR,
        title="Visit ★",
        take_durations_ns={"take-a": 60 * S, "take-b": 40 * S},
        consent=CONSENT,
    )
    timeline = otio.adapters.read_from_string(text, "otio_json")
    assert timeline.name == "Visit ★"
    assert json.loads(text)["metadata"]["kit"]["consent"] == CONSENT
    assert timeline.duration().to_seconds() == pytest.approx(24.5)
    video, audio = timeline.video_tracks()[0], timeline.audio_tracks()[0]
    assert len(video) == len(audio) == 2
    first, second = video
    assert first.name == "Guiding + better than usual ★"  # the labels: notes are markers
    assert first.source_range == otio.opentime.TimeRange(
        otio.opentime.RationalTime(120, 30), otio.opentime.RationalTime(405, 30)
    )
    assert first.media_reference.target_url == "../takes/take-a/take.mp4"
    assert first.media_reference.available_range.duration.to_seconds() == pytest.approx(60)
    assert [(m.name, m.marked_range.start_time.value) for m in first.markers] == [
        ("Guiding", 360),
        ("better than usual ★", 435),
    ]
    assert first.markers[0].comment == "=SUM(A1) <b>bold</b> & more"
    assert first.markers[0].color == "YELLOW"
    assert second.metadata["kit"] == {"take_id": "take-b", "take": 2}
    assert timeline.range_of_child(second).start_time.to_seconds() == pytest.approx(13.5)


def test_edl_is_cmx_3600_with_locators() -> None:
    text = edl(FILM, CUT_DIR, title="Visit ★", consent=CONSENT)
    assert text.isascii()
    lines = text.splitlines()
    assert lines[:4] == [
        "TITLE: Visit *",
        "FCM: NON-DROP FRAME",
        "* CONSENT: given by carer for review, training; erase by 2027-01-31",
        "",
    ]
    assert "* CONSENT: no consent record" in edl(FILM, CUT_DIR).splitlines()
    event = re.compile(
        r"^(\d{3})  (.{8}) (.{5}) C        (\d\d:\d\d:\d\d:\d\d) (\d\d:\d\d:\d\d:\d\d) "
        r"(\d\d:\d\d:\d\d:\d\d) (\d\d:\d\d:\d\d:\d\d)$"
    )
    events = [m.groups() for line in lines if (m := event.match(line))]
    assert [(e[0], e[1].strip(), e[2].strip()) for e in events] == [
        ("001", "TAKE001", "V"),
        ("001", "TAKE001", "A"),
        ("002", "TAKE002", "V"),
        ("002", "TAKE002", "A"),
    ]
    assert events[0][3:] == ("00:00:04:00", "00:00:17:15", "01:00:00:00", "01:00:13:15")
    assert events[2][3:] == ("00:00:22:00", "00:00:33:00", "01:00:13:15", "01:00:24:15")
    locators = [line for line in lines if line.startswith("* LOC: ")]
    assert locators == [
        "* LOC: 01:00:08:00 YELLOW  Guiding - =SUM(A1) <b>bold</b> & more",
        "* LOC: 01:00:10:15 YELLOW  better than usual *",
        "* LOC: 01:00:21:15 YELLOW  Etre attentif - l'enfant --> sourit",
    ]
    assert "* FROM CLIP NAME: ../takes/take-b/take.mp4" in lines
    assert "* COMMENT: Guiding + better than usual *" in lines  # the clip: labels only


def test_csv_lists_every_tag_and_defuses_formulas() -> None:
    text = tags_csv(FILM, [*TAGS, LOST], {"take-a": (1, T0), "take-b": (2, T0 + 100 * S)})
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["tag_id"] for r in rows] == ["g1", "g2", "g3", "g4"]
    assert rows[0]["note"] == "'=SUM(A1) <b>bold</b> & more"
    assert rows[2]["label"] == "Être attentif"
    assert [r["in_film"] for r in rows] == ["yes", "yes", "yes", "no"]
    assert [r["film_time_s"] for r in rows] == ["8.000", "10.500", "21.500", ""]
    assert [r["film_timecode"] for r in rows][:3] == ["00:00:08:00", "00:00:10:15", "00:00:21:15"]
    assert rows[3]["take_time_s"] == "500.000"


def test_webvtt_chapters_follow_the_film_titled_with_labels_only() -> None:
    text = webvtt_chapters(FILM)
    assert text.startswith("WEBVTT\n\n")
    blocks = text.strip().split("\n\n")[1:]
    assert blocks == [
        "1\n00:00:00.000 --> 00:00:13.500\nGuiding + better than usual ★",
        "2\n00:00:13.500 --> 00:00:24.500\nÊtre attentif",
    ]
    # The chapters play with the film: the guider's notes are private, never in them.
    assert "SUM" not in text and "sourit" not in text


def test_timecode() -> None:
    assert timecode(0, 30) == "00:00:00:00"
    assert timecode(30 * 3600 + 29, 30) == "01:00:00:29"
    assert timecode(25 * 61, 25) == "00:01:01:00"
