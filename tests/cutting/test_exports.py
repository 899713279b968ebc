"""The exporters as pure functions of a film, read back with the readers editors' tools use:
OpenTimelineIO (its JSON, its CMX 3600 and FCP 7 XML adapters), pycmx, webvtt-py, the csv
module; and the stills' EXIF, read back with Pillow. Labels in Cyrillic and Chinese, with
quotes, commas and newlines, come back as typed."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

import opentimelineio as otio
import pycmx
import pytest
import webvtt
from PIL import ExifTags, Image

from kit.clock import NS_PER_S
from kit.cutting import CutError
from kit.cutting.exports import (
    CSV_COLUMNS,
    TakeInfo,
    edl,
    fcp_xml,
    one_line,
    otio_timeline,
    tags_csv,
    take_infos,
    timecode,
    webvtt_chapters,
)
from kit.cutting.plan import Clip
from kit.cutting.render import Film, FilmClip, Source
from kit.cutting.stills import exif_bytes, still_caption, with_exif
from kit.model import Tag, Take, TakeState, Visit

S = NS_PER_S
T0 = 777 * S
SOURCE_1 = Source("take-a", 1, "visits/s/takes/take-a/take.mp4", T0)
SOURCE_2 = Source("take-b", 2, "visits/s/takes/take-b/take.mp4", T0 + 100 * S)
CUT_DIR = "visits/s/cut"
CONSENT = {"given_by": "carer", "purposes": ["review", "training"], "erase_by": "2027-01-31"}
STARTED = datetime(2026, 11, 30, 10, 15, 0, tzinfo=UTC)
TAKES = {
    "take-a": TakeInfo(1, T0, 60 * S, STARTED),
    "take-b": TakeInfo(2, T0 + 100 * S, 40 * S, None),  # filmed after a reboot: no wall time
}
RUSSIAN = "Руководство"
QUOTED = 'better than usual ★, "really"'
CHINESE = "引导\nsecond line"
NOTE = '=SUM(A1) <b>bold</b> & more, "quoted"\nsecond line'


def _tag(tag_id: str, source: Source, at_s: float, label: str, note: str = "") -> Tag:
    at = source.first_frame_ns + round(at_s * S)
    return Tag(tag_id, "s", source.take_id, at, label, note, "guider", at)


TAGS = [
    _tag("g1", SOURCE_1, 12.0, RUSSIAN, NOTE),
    _tag("g2", SOURCE_1, 14.5, QUOTED),
    _tag("g3", SOURCE_2, 30.0, CHINESE, "l'enfant --> sourit"),
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
FIRST_TITLE = f"{RUSSIAN} + {QUOTED}"
SECOND_TITLE = "引导 second line"


def _otio_text() -> str:
    return otio_timeline(
        FILM,
        CUT_DIR,
        title="Visit ★",
        take_durations_ns={k: v.duration_ns for k, v in TAKES.items()},
        consent=CONSENT,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory holding (empty) takes where the film's sources say they are."""
    for source in (SOURCE_1, SOURCE_2):
        path = tmp_path / source.path
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
    (tmp_path / CUT_DIR).mkdir(parents=True)
    return tmp_path


def test_otio_timeline_reads_back_with_markers_and_media_beside_it(data_dir: Path) -> None:
    text = _otio_text()
    saved = data_dir / CUT_DIR / "rough-cut.otio"
    saved.write_text(text, encoding="utf-8")
    timeline = otio.adapters.read_from_file(str(saved))
    assert timeline.name == "Visit ★"
    assert json.loads(text)["metadata"]["kit"]["consent"] == CONSENT
    assert timeline.duration().to_seconds() == pytest.approx(24.5)
    video, audio = timeline.video_tracks()[0], timeline.audio_tracks()[0]
    assert len(video) == len(audio) == 2
    first, second = video
    assert [first.name, second.name] == [FIRST_TITLE, "引导\nsecond line"]  # labels only
    assert first.source_range == otio.opentime.TimeRange(
        otio.opentime.RationalTime(120, 30), otio.opentime.RationalTime(405, 30)
    )
    # Every media reference resolves from the folder the timeline is in.
    for clip in timeline.find_clips():
        url = clip.media_reference.target_url
        assert not Path(url).is_absolute()
        assert (saved.parent / url).resolve().is_file(), url
    assert first.media_reference.available_range.duration.to_seconds() == pytest.approx(60)
    assert [(m.name, m.marked_range.start_time.value) for m in first.markers] == [
        (RUSSIAN, 360),
        (QUOTED, 435),
    ]
    assert first.markers[0].comment == NOTE  # the note: for the editor, as typed
    assert first.markers[0].color == "YELLOW"
    assert second.metadata["kit"] == {"take_id": "take-b", "take": 2}
    assert timeline.range_of_child(second).start_time.to_seconds() == pytest.approx(13.5)


def test_fcp_xml_made_and_read_by_otios_adapter_points_at_the_takes(data_dir: Path) -> None:
    cut = data_dir / CUT_DIR
    xml = fcp_xml(_otio_text(), media_dir=cut)
    assert xml.lstrip().startswith("<?xml") and "<xmeml" in xml
    timeline = otio.adapters.read_from_string(xml, "fcp_xml")
    assert timeline.name == "Visit ★"
    video = timeline.video_tracks()[0]
    assert [c.name for c in video.find_clips()] == [FIRST_TITLE, "引导\nsecond line"]
    assert video[0].source_range.start_time.value == 120
    assert video[0].source_range.duration.value == 405
    assert timeline.range_of_child(video[1]).start_time.value == 405
    assert [m.name for m in video[0].markers] == [RUSSIAN, QUOTED]
    assert len(timeline.audio_tracks()) == 1
    for clip in timeline.find_clips():
        url = urlparse(clip.media_reference.target_url)
        assert url.scheme == "file"
        assert Path(unquote(url.path)).is_file()


def test_edl_reads_back_with_opentimelineio(data_dir: Path) -> None:
    text = edl(FILM, CUT_DIR, title="Visit ★", consent=CONSENT)
    timeline = otio.adapters.read_from_string(text, "cmx_3600", rate=30)
    assert timeline.name == "Visit ★"
    tracks = {t.name: t for t in timeline.tracks}
    assert sorted(tracks) == ["A1", "V"]  # picture and sound, one event each clip
    for track in tracks.values():
        clips = list(track.find_clips())
        assert [c.name for c in clips] == [FIRST_TITLE, SECOND_TITLE]
        assert [c.metadata["cmx_3600"]["reel"] for c in clips] == ["TAKE001", "TAKE002"]
        sources = [(c.source_range.start_time.value, c.source_range.duration.value) for c in clips]
        assert sources == [(120, 405), (660, 330)]
        offset = -track.source_range.start_time  # the record timecode of the track's start
        records = [(offset + c.range_in_parent().start_time) for c in clips]
        assert [otio.opentime.to_timecode(r, 30) for r in records] == [
            "01:00:00:00",
            "01:00:13:15",
        ]
        for clip in clips:
            url = clip.media_reference.target_url
            assert (data_dir / CUT_DIR / url).resolve().is_file()
        first, second = clips
        assert [(m.name, m.marked_range.start_time.value, m.color) for m in first.markers] == [
            (f"{RUSSIAN} - {one_line(NOTE)}", 360, "YELLOW"),
            (QUOTED, 435, "YELLOW"),
        ]
        assert [m.name for m in second.markers] == [f"{SECOND_TITLE} - l'enfant --> sourit"]
    assert (
        "CONSENT: given by carer for review, training; erase by 2027-01-31"
        in (tracks["V"][0].metadata["cmx_3600"]["comments"])
    )


def test_edl_reads_back_with_pycmx() -> None:
    text = edl(FILM, CUT_DIR, title="Visit ★", consent=CONSENT)
    edits = pycmx.parse_cmx3600(io.StringIO(text))
    assert edits.title == "Visit ★"
    assert edits.format == "3600"
    assert list(edits.unrecognized_statements) == []
    events = list(edits.events)
    assert [e.number for e in events] == [1, 2]
    rows = []
    for event in events:
        [edit] = event.edits
        assert edit.channels.video and edit.channels.a1
        rows.append(
            (
                edit.source,
                edit.clip_name,
                edit.source_file,
                edit.source_in,
                edit.source_out,
                edit.record_in,
                edit.record_out,
            )
        )
    assert rows == [
        (
            "TAKE001",
            FIRST_TITLE,
            "../takes/take-a/take.mp4",
            "00:00:04:00",
            "00:00:17:15",
            "01:00:00:00",
            "01:00:13:15",
        ),
        (
            "TAKE002",
            SECOND_TITLE,
            "../takes/take-b/take.mp4",
            "00:00:22:00",
            "00:00:33:00",
            "01:00:13:15",
            "01:00:24:15",
        ),
    ]


def test_edl_keeps_every_script_on_one_line_each() -> None:
    text = edl(FILM, CUT_DIR, title="Визит · 2026-11-30\n")
    assert text.startswith("TITLE: Визит · 2026-11-30\nFCM: NON-DROP FRAME\n001  ")
    assert "?" not in text  # nothing folded away
    assert "* LOC: 00:00:30:00 YELLOW  引导 second line - l'enfant --> sourit" in text
    assert "* CONSENT: no consent record" in text
    for line in text.splitlines():
        assert line[:1] in ("0", "*", "T", "F"), line


def _csv_rows(text: str) -> list[dict[str, str]]:
    data = text.encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel looks for
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_lists_every_tag_as_typed_and_defuses_formulas() -> None:
    stills = {"g1": "stills/01-g1.jpg", "g2": "stills/02-g2.jpg", "g3": "stills/03-g3.jpg"}
    text = tags_csv(FILM, [LOST, *TAGS], TAKES, stills=stills)
    header = next(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert tuple(header) == CSV_COLUMNS
    rows = _csv_rows(text)
    assert [r["tag_id"] for r in rows] == ["g1", "g2", "g3", "g4"]
    assert [r["label"] for r in rows] == [RUSSIAN, QUOTED, CHINESE, "Guiding"]
    assert rows[0]["note"] == "'" + NOTE  # a formula no more, and its newline kept
    assert rows[2]["note"] == "l'enfant --> sourit"
    assert [r["take"] for r in rows] == ["1", "1", "2", "2"]
    assert [r["in_film"] for r in rows] == ["yes", "yes", "yes", "no"]
    assert [r["clip"] for r in rows] == ["1", "1", "2", ""]
    assert [r["moment"] for r in rows] == ["1", "2", "3", ""]
    assert [r["film_time_s"] for r in rows] == ["8.000", "10.500", "21.500", ""]
    assert [r["film_timecode"] for r in rows][:3] == ["00:00:08:00", "00:00:10:15", "00:00:21:15"]
    assert rows[3]["take_time_s"] == "500.000"
    # Take 1's wall-clock start is known, take 2's is not (another boot).
    assert [r["wall_time_utc"] for r in rows] == [
        "2026-11-30 10:15:12",
        "2026-11-30 10:15:14",
        "",
        "",
    ]
    assert [r["still"] for r in rows] == [*stills.values(), ""]


def test_csv_without_a_film_still_lists_the_tags() -> None:
    rows = _csv_rows(tags_csv(None, [TAGS[0]], TAKES))
    assert [(r["label"], r["in_film"], r["take_time_s"]) for r in rows] == [
        (RUSSIAN, "no", "12.000")
    ]


def test_webvtt_chapters_read_back_titled_with_labels_only() -> None:
    text = webvtt_chapters(FILM)
    cues = webvtt.from_string(text).captions
    assert [(c.identifier, c.start, c.end) for c in cues] == [
        ("1", "00:00:00.000", "00:00:13.500"),
        ("2", "00:00:13.500", "00:00:24.500"),
    ]
    assert [html.unescape(c.text) for c in cues] == [FIRST_TITLE, SECOND_TITLE]
    # The chapters play with the film: the guider's notes are private, never in them.
    assert "SUM" not in text and "sourit" not in text


def test_timecode() -> None:
    assert timecode(0, 30) == "00:00:00:00"
    assert timecode(30 * 3600 + 29, 30) == "01:00:00:29"
    assert timecode(25 * 61, 25) == "00:01:01:00"


def test_take_wall_times_come_from_the_visit_in_the_same_boot_only() -> None:
    visit = Visit("v", "F-1", 1_000 * S, "boot-1", "2026-11-30T10:00:00Z")

    def take(take_id: str, seq: int, boot: str, first_s: float) -> Take:
        first = round(first_s * S)
        return Take(
            take_id, "v", seq, TakeState.READY, boot, first, first + 5 * S, 150, 0, 0, None, ""
        )

    infos = take_infos(visit, [take("a", 1, "boot-1", 1_090.5), take("b", 2, "boot-2", 20.0)])
    assert infos["a"].started == datetime(2026, 11, 30, 10, 1, 30, 500_000, tzinfo=UTC)
    assert infos["a"].wall(round(1_092.5 * S)) == datetime(
        2026, 11, 30, 10, 1, 32, 500_000, tzinfo=UTC
    )
    assert infos["b"].started is None and infos["b"].number == 2
    unset = Visit("w", "F-2", 0, "boot-1", "")
    assert take_infos(unset, [take("a", 1, "boot-1", 3.0)])["a"].started is None


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


def test_a_stills_exif_holds_its_date_and_caption_and_reads_back_with_pillow() -> None:
    taken = datetime(2026, 11, 30, 10, 15, 12, tzinfo=UTC)
    caption = still_caption(3, 'Руководство "да",\nи 引导', 1, 12 * S, taken)
    assert (
        caption == 'Moment 3: Руководство "да", и 引导 (take 1 at 0:12.0, 2026-11-30 10:15:12 UTC)'
    )
    stamped = with_exif(_jpeg(), caption, taken)
    again = with_exif(stamped, caption, taken)  # restamping replaces, never adds
    assert again == stamped
    picture = Image.open(io.BytesIO(stamped))
    pixel = picture.getpixel((10, 10))
    assert picture.size == (64, 48) and isinstance(pixel, tuple) and pixel[0] > 150
    exif = picture.getexif()
    description = exif[ExifTags.Base.ImageDescription]
    assert description.encode("latin-1").decode("utf-8") == caption  # UTF-8, as typed
    details = exif.get_ifd(ExifTags.IFD.Exif)
    assert details[ExifTags.Base.DateTimeOriginal] == "2026:11:30 10:15:12"
    assert details[ExifTags.Base.OffsetTimeOriginal] == "+00:00"
    comment = details[ExifTags.Base.UserComment]
    assert comment[:8] == b"UNICODE\x00"
    assert comment[8:].decode("utf-16-le") == caption


def test_a_still_without_a_wall_clock_has_no_date() -> None:
    exif = Image.open(io.BytesIO(with_exif(_jpeg(), "Moment 1: x", None))).getexif()
    assert ExifTags.Base.DateTimeOriginal not in exif.get_ifd(ExifTags.IFD.Exif)
    assert exif_bytes("x", None).startswith(b"Exif\x00\x00II")
    with pytest.raises(CutError):
        with_exif(b"not a jpeg", "x", None)
