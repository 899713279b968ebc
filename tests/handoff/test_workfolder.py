"""The editor-ready work folder of a real visit: built (not recorded) takes in an encrypted
visit, tagged in Russian and Chinese with quotes, commas and newlines, cut on the "kit",
decrypted with the organisation's key, and read back with the real readers: ffprobe,
PyAV, OpenTimelineIO (its JSON, CMX 3600 and FCP 7 XML adapters), pycmx, webvtt-py,
the csv module and Pillow."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import av
import opentimelineio as otio
import pycmx
import pytest
import webvtt
from PIL import ExifTags, Image

from kit.clock import NS_PER_S, seconds
from kit.crypto.decrypt import decrypt
from kit.crypto.keys import new_data_key, wrap
from kit.cutting.exports import CSV_COLUMNS
from kit.cutting.plan import CutRules, Window
from kit.cutting.visit import cut_visit
from kit.errors import KitError
from kit.handoff.workfolder import safe_name, write_work_folder
from kit.model import Tag, TakeState, Visit
from kit.store import layout
from kit.store.store import Store, new_id
from kit.testing.kits import org_keys
from kit.testing.longtake import TakeShape, build_take
from kit.testing.privacy import consent, org_key

S = NS_PER_S
SHAPE = TakeShape(minutes=8 / 60, tags=0, width=320, height=240, bitrate=300_000)
T0 = 5_000 * S  # take 1's first frame; the visit started 30 s before, at 10:15:00 UTC
T1 = T0 + 60 * S  # take 2's
CASE_REF = "F/0042 Ж"
PREFIX = "2026-11-30 F-0042 Ж"
RUSSIAN = "Руководство"
QUOTED = 'He said "yes", twice'
CHINESE = "引导\nsecond line"
NOTE = "ПРИВАТНО: the private note"
RULES = CutRules(Window(seconds(1.5), seconds(1.0)))


@dataclass(frozen=True)
class Made:
    folder: Path  # the work folder
    plain: Path  # the decrypted visit it was made from
    tags: dict[str, Tag]  # by label


def _encrypted_take(store: Store, scratch: Path, visit_id: str, t0: int) -> str:
    """A built take, copied into the encrypted visit (building one writes the MP4 twice
    for its moov, which the encrypted file layer does not do); its id."""
    helper = Store(scratch)
    try:
        built_visit, built = build_take(helper, SHAPE, t0=t0)
        made = helper.db.take(built)
        take = store.db.add_take(visit_id, new_id(), "bench")
        directory = layout.take_dir(visit_id, take.id)
        store.files.makedirs(directory)
        mp4 = layout.take_mp4(layout.take_dir(built_visit, built))
        with helper.files.read(mp4) as source, store.files.replace(layout.take_mp4(directory)) as f:
            shutil.copyfileobj(source, f)
    finally:
        helper.close()
    store.db.update_take(
        take.id,
        state=TakeState.READY,
        first_frame_ns=made.first_frame_ns,
        end_ns=made.end_ns,
        video_frames=made.video_frames,
    )
    return take.id


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("workfolder")
    data = root / "data"
    store = Store(data, org_keys(data))
    try:
        visit = Visit(
            new_id(), CASE_REF, T0 - 30 * S, "bench", "2026-11-30T10:15:00Z", consent=consent()
        )
        store.files.makedirs(layout.visit_dir(visit.id))
        with store.files.replace(layout.wrapped_key(visit.id)) as f:
            f.write(wrap(new_data_key(), [org_key().public]))
        store.db.add_visit(visit, encrypted=True)
        first = _encrypted_take(store, root / "scratch-1", visit.id, T0)
        second = _encrypted_take(store, root / "scratch-2", visit.id, T1)
        tags = {}
        for take, at, label, note in [
            (first, T0 + 2 * S, RUSSIAN, NOTE),
            (first, T0 + 5_500_000_000, QUOTED, ""),
            (second, T1 + 3 * S, CHINESE, 'l\'enfant, "oui"'),
            (None, T1 + 200 * S, "Guiding", ""),  # long after the last take: in no clip
        ]:
            tag = Tag(new_id(), visit.id, take, at, label, note, "guider", at)
            store.db.add_tag(tag)
            tags[label] = tag
        result = cut_visit(store, visit.id, RULES, in_child=False)
        assert result.film is not None and len(result.film.clips) == 3
    finally:
        store.close()
    [decrypted] = decrypt(data, [org_key().secret], root / "plain")
    assert decrypted.damaged == []
    folder = write_work_folder(decrypted.directory, root / "work")
    return Made(folder, decrypted.directory, tags)


def _name(kind: str) -> str:
    return f"{PREFIX} {kind}"


def test_the_files_sort_and_say_what_they_are(made: Made) -> None:
    assert made.folder.name == PREFIX
    assert sorted(p.name for p in made.folder.iterdir()) == [
        _name("chapters.vtt"),
        _name("contact sheet.jpg"),
        _name("rough cut.edl"),
        _name("rough cut.fcp.xml"),
        _name("rough cut.mp4"),
        _name("rough cut.otio"),
        _name("tags.csv"),
        _name("take 01.mp4"),
        _name("take 02.mp4"),
        "stills",
        "visit.json",
    ]
    assert sorted(p.name for p in (made.folder / "stills").iterdir()) == [
        _name(f"moment 01 - {RUSSIAN}.jpg"),
        _name("moment 02 - He said 'yes', twice.jpg"),
        _name("moment 03 - 引导 second line.jpg"),
    ]
    assert not list(made.folder.parent.glob(".*"))  # nothing half-made left behind
    record = json.loads((made.folder / "visit.json").read_text(encoding="utf-8"))
    assert record["visit"]["case_ref"] == CASE_REF


def _probe(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    probed: dict[str, Any] = json.loads(done.stdout)
    return probed


def _packets(path: Path) -> list[tuple[str, int | None, str]]:
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        return [
            (p.stream.type, p.pts, hashlib.sha256(bytes(p)).hexdigest())
            for p in container.demux(*streams)
            if p.dts is not None
        ]


def test_takes_are_stream_copies_with_their_time_and_a_chapter_per_tag(made: Made) -> None:
    record = json.loads((made.plain / "visit.json").read_text(encoding="utf-8"))
    ids = [t["id"] for t in sorted(record["takes"], key=lambda t: t["seq"])]
    takes = [made.plain / "takes" / take_id / "take.mp4" for take_id in ids]
    expected = [
        (
            "2026-11-30T10:15:30.000000Z",
            [(0.0, 2.0, "Start"), (2.0, 5.5, RUSSIAN), (5.5, 8.0, QUOTED)],
        ),
        ("2026-11-30T10:16:30.000000Z", [(0.0, 3.0, "Start"), (3.0, 8.0, "引导 second line")]),
    ]
    copies = [made.folder / _name("take 01.mp4"), made.folder / _name("take 02.mp4")]
    for source, copy, (created, chapters) in zip(takes, copies, expected, strict=True):
        probed = _probe(copy)
        assert probed["format"]["tags"]["creation_time"] == created
        assert probed["format"]["tags"]["title"].startswith(f"{CASE_REF} · 2026-11-30 · take")
        found = [
            (float(c["start_time"]), float(c["end_time"]), c["tags"]["title"])
            for c in probed["chapters"]
        ]
        assert found == chapters
        assert NOTE not in json.dumps(probed, ensure_ascii=False)  # the note stays private
        assert _packets(copy) == _packets(source)  # the same packets: nothing re-encoded


def test_the_rough_cut_keeps_its_chapters_and_gets_the_visits_time(made: Made) -> None:
    film = made.folder / _name("rough cut.mp4")
    probed = _probe(film)
    assert probed["format"]["tags"]["creation_time"] == "2026-11-30T10:15:00.000000Z"
    titles = [c["tags"]["title"] for c in probed["chapters"]]
    assert titles == [RUSSIAN, QUOTED, CHINESE]
    assert _packets(film) == _packets(made.plain / "cut" / layout.FILM)


def test_the_otio_timeline_points_at_the_files_beside_it(made: Made) -> None:
    path = made.folder / _name("rough cut.otio")
    timeline = otio.adapters.read_from_file(str(path))
    assert timeline.name == f"{CASE_REF} · 2026-11-30"
    clips = list(timeline.video_tracks()[0].find_clips())
    assert [c.name for c in clips] == [RUSSIAN, QUOTED, CHINESE]
    urls = [c.media_reference.target_url for c in timeline.find_clips()]
    assert set(urls) == {_name("take 01.mp4"), _name("take 02.mp4")}
    for url in urls:
        assert (path.parent / url).is_file()
    assert timeline.metadata["kit"]["film"] == _name("rough cut.mp4")
    assert clips[0].markers[0].name == RUSSIAN and clips[0].markers[0].comment == NOTE
    marker = clips[2].markers[0]
    assert marker.marked_range.start_time.to_seconds() == pytest.approx(3.0)


def test_the_fcp_xml_reads_back_and_finds_the_takes(made: Made) -> None:
    xml = (made.folder / _name("rough cut.fcp.xml")).read_text(encoding="utf-8")
    timeline = otio.adapters.read_from_string(xml, "fcp_xml")
    clips = list(timeline.video_tracks()[0].find_clips())
    assert [c.name for c in clips] == [RUSSIAN, QUOTED, CHINESE]
    assert [round(c.source_range.start_time.to_seconds(), 3) for c in clips] == [0.5, 4.0, 1.5]
    for clip in timeline.find_clips():
        path = Path(unquote(urlparse(clip.media_reference.target_url).path))
        assert path.parent == made.folder and path.is_file()


def test_the_edl_reads_back_with_opentimelineio_and_pycmx(made: Made) -> None:
    text = (made.folder / _name("rough cut.edl")).read_text(encoding="utf-8")
    timeline = otio.adapters.read_from_string(text, "cmx_3600", rate=30)
    otio_json = otio.adapters.read_from_file(str(made.folder / _name("rough cut.otio")))
    expected = [
        (c.source_range.start_time.value, c.source_range.duration.value)
        for c in otio_json.video_tracks()[0].find_clips()
    ]
    for track in timeline.tracks:
        clips = list(track.find_clips())
        assert [c.name for c in clips] == [RUSSIAN, QUOTED, "引导 second line"]
        assert [
            (c.source_range.start_time.value, c.source_range.duration.value) for c in clips
        ] == expected
        for clip in clips:
            assert (made.folder / clip.media_reference.target_url).is_file()
    edits = pycmx.parse_cmx3600(io.StringIO(text))
    rows = [
        (e.number, e.edits[0].source, e.edits[0].source_file, e.edits[0].record_in)
        for e in edits.events
    ]
    assert rows == [
        (1, "TAKE001", _name("take 01.mp4"), "01:00:00:00"),
        (2, "TAKE001", _name("take 01.mp4"), "01:00:02:15"),
        (3, "TAKE002", _name("take 02.mp4"), "01:00:05:00"),
    ]


def test_the_csv_reads_back_in_every_script(made: Made) -> None:
    data = (made.folder / _name("tags.csv")).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["label"] for r in rows] == [RUSSIAN, QUOTED, CHINESE, "Guiding"]
    assert rows[0]["note"] == NOTE and rows[2]["note"] == 'l\'enfant, "oui"'
    assert [r["take"] for r in rows] == ["1", "1", "2", ""]
    assert [r["take_time_s"] for r in rows] == ["2.000", "5.500", "3.000", ""]
    assert [r["moment"] for r in rows] == ["1", "2", "3", ""]
    assert [r["wall_time_utc"] for r in rows] == [
        "2026-11-30 10:15:32",
        "2026-11-30 10:15:35",
        "2026-11-30 10:16:33",
        "",
    ]
    for row in rows[:3]:
        assert (made.folder / row["still"]).is_file()
    assert rows[3]["in_film"] == "no" and rows[3]["still"] == ""


def test_the_chapters_read_back_with_webvtt(made: Made) -> None:
    cues = webvtt.read(str(made.folder / _name("chapters.vtt"))).captions
    assert [html.unescape(c.text) for c in cues] == [RUSSIAN, QUOTED, "引导 second line"]
    assert cues[0].start == "00:00:00.000"


def test_the_stills_carry_their_moment_in_their_exif(made: Made) -> None:
    stills = sorted((made.folder / "stills").iterdir())
    expected = [
        ("2026:11:30 10:15:32", RUSSIAN),
        ("2026:11:30 10:15:35", QUOTED),
        ("2026:11:30 10:16:33", "引导 second line"),
    ]
    for still, (taken, label) in zip(stills, expected, strict=True):
        with Image.open(still) as picture:
            assert picture.size == (320, 240)
            exif = picture.getexif()
        details = exif.get_ifd(ExifTags.IFD.Exif)
        assert details[ExifTags.Base.DateTimeOriginal] == taken
        caption = details[ExifTags.Base.UserComment][8:].decode("utf-16-le")
        assert label in caption and "take" in caption
        description = exif[ExifTags.Base.ImageDescription].encode("latin-1").decode("utf-8")
        assert description == caption
        assert "ПРИВАТНО" not in caption and "private" not in caption
    with Image.open(made.folder / _name("contact sheet.jpg")) as sheet:
        assert sheet.format == "JPEG" and sheet.width > 3 * 200


def test_a_visit_without_its_record_is_made_from_the_cut_alone(made: Made, tmp_path: Path) -> None:
    plain = tmp_path / "visit"
    shutil.copytree(made.plain, plain)
    (plain / "visit.json").unlink()  # `kit decrypt` of a lone visit folder writes none
    folder = write_work_folder(plain, tmp_path / "work")
    assert folder.name == PREFIX
    assert not (folder / "visit.json").exists()
    rows = list(
        csv.DictReader(
            io.StringIO((folder / _name("tags.csv")).read_text(encoding="utf-8-sig"), newline="")
        )
    )
    assert [r["label"] for r in rows] == [RUSSIAN, QUOTED, CHINESE]  # the cut's own tags
    assert (folder / _name("rough cut.otio")).read_text(encoding="utf-8") == (
        made.folder / _name("rough cut.otio")
    ).read_text(encoding="utf-8")
    again = write_work_folder(plain, tmp_path / "work")
    assert again.name == f"{PREFIX} (2)"  # another visit of the same day and case


def test_a_folder_without_takes_or_cut_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KitError, match="no decrypted take or cut"):
        write_work_folder(tmp_path, tmp_path / "work")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Guiding", "Guiding"),
        ("Руководство", "Руководство"),
        ("引导", "引导"),
        ('a/b\\c:d*e?f"g<h>i|j', "a-b-c-def'ghi-j"),
        ("line one\nline\ttwo\r\n", "line one line two"),
        ("\u202eevil.exe", "evil.exe"),  # a right-to-left override cannot disguise a name
        ("Être", "Être"),
        ("E\u0302tre", "Être"),  # decomposed (macOS) becomes composed
        ("...dots...", "dots"),
        ("x" * 50, "x" * 39 + "…"),
        ("???", ""),
    ],
)
def test_safe_names(text: str, name: str) -> None:
    assert safe_name(text) == name
