"""The editor-ready work folder: one decrypted visit as files that sort and say what they are.

``kit decrypt`` writes a plain mirror of the kit's data directory
(``visits/<id>/visit.json``, ``takes/<take>/take.mp4``, ``cut/...``).
:func:`write_work_folder` turns one such visit into a folder an editor opens
as it is, on a laptop (Windows, macOS or Linux; on FAT, exFAT or NTFS too)::

    <out>/2026-11-30 F-0042/
        2026-11-30 F-0042 take 01.mp4           each take: creation time, a chapter per tag
        2026-11-30 F-0042 rough cut.mp4         the rough cut: creation time, a chapter per clip
        2026-11-30 F-0042 rough cut.otio        the rough cut as an edit of the takes beside it
        2026-11-30 F-0042 rough cut.fcp.xml     the same as FCP 7 XML (Premiere Pro, Resolve)
        2026-11-30 F-0042 rough cut.edl         the same as a CMX 3600 EDL
        2026-11-30 F-0042 chapters.vtt          WebVTT chapters of the rough cut
        2026-11-30 F-0042 tags.csv              every tag (its columns: README.md, "Exports")
        2026-11-30 F-0042 contact sheet.jpg
        stills/2026-11-30 F-0042 moment 01 - Guiding.jpg   EXIF date and caption
        visit.json                              the kit's record of the visit, as decrypted

The day is the visit's start (UTC; "undated" when the kit's clock was unset).
Names keep letters of every script but lose what FAT, NTFS or macOS refuse
(``/ \\ : * ? " < > |`` and control characters), and labels are shortened.
Media are stream-copied (never re-encoded) with their MP4 ``creation_time``
set from the visit's clock. The exports are made again, by the same pure
functions as on the kit (:mod:`kit.cutting.exports`), from ``cut/cut.json``,
so every reference in them names the files beside them. The guider's notes
stay where the kit puts them (OTIO marker comments, EDL locators, the CSV):
never in chapters, stills or the contact sheet.
"""

from __future__ import annotations

import json
import logging
import shutil
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.clock import NS_PER_S
from kit.cutting.exports import TakeInfo, export_texts, fcp_xml, tags_csv
from kit.cutting.plan import Clip
from kit.cutting.render import Film, FilmClip, Source
from kit.cutting.stills import still_caption, with_exif
from kit.errors import KitError
from kit.model import Tag
from kit.store import layout

if TYPE_CHECKING:
    from av.container.core import Chapter

log = logging.getLogger(__name__)

# Characters Windows (NTFS, FAT, exFAT) or macOS refuse in a name, and what they become.
_REFUSED = str.maketrans(
    {"/": "-", "\\": "-", "|": "-", ":": "-", '"': "'", "*": "", "?": "", "<": "", ">": ""}
)
CASE_REF_CHARS = 40
LABEL_CHARS = 40
_CHAPTER_TB = Fraction(1, 1000)
START_CHAPTER = "Start"  # a take's first chapter, before its first tag


def safe_name(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` as part of a file name on any common file system: composed (NFC, as macOS
    and Windows agree on), without refused or control characters, one line, at most
    ``limit`` characters (cut with an ellipsis), no leading or trailing dots or spaces."""
    composed = unicodedata.normalize("NFC", text)
    # Control and format characters (a newline, a right-to-left override) become spaces.
    visible = "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in composed)
    name = " ".join(visible.translate(_REFUSED).split())
    if len(name) > limit:
        name = name[: limit - 1].rstrip(" .") + "…"
    return name.strip(" .")


@dataclass(frozen=True)
class _Take:
    take_id: str
    number: int
    source: Path  # take.mp4 in the decrypted visit
    name: str  # its name in the work folder
    info: TakeInfo  # instants relative to the take's first frame


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KitError(f"{path} cannot be read: {exc}") from exc
    return data


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _unique(out: Path, name: str) -> Path:
    """``out/name``, or ``out/name (2)``... when a visit of the same day and case has it."""
    target, n = out / name, 1
    while target.exists():
        n += 1
        target = out / f"{name} ({n})"
    return target


def _takes(visit: _Visit) -> dict[str, _Take]:
    """Every take with a film, by id, numbered as on the kit."""
    recorded = {str(t["id"]): t for t in visit.record.get("takes", [])}
    cut_takes = {str(t["take_id"]): t for t in visit.cut.get("takes", [])}
    found: dict[str, _Take] = {}
    folder = visit.directory / "takes"
    dirs = (
        sorted(d for d in folder.iterdir() if (d / "take.mp4").is_file()) if folder.is_dir() else []
    )
    for position, directory in enumerate(dirs, start=1):
        take_id = directory.name
        row, made = recorded.get(take_id, {}), cut_takes.get(take_id, {})
        number = int(row.get("seq") or made.get("number") or position)
        first, end = row.get("first_frame_ns"), row.get("end_ns")
        if first is not None and end is not None:
            duration = int(end) - int(first)
        else:
            duration = _ns(float(made.get("duration_s") or row.get("duration_s") or 0.0))
        found[take_id] = _Take(
            take_id,
            number,
            directory / "take.mp4",
            f"{visit.prefix} take {number:02d}.mp4",
            TakeInfo(number, 0, duration, _when(made.get("started_wall"))),
        )
    return found


def _tags(visit: _Visit, takes: Mapping[str, _Take]) -> tuple[list[Tag], dict[str, Tag]]:
    """Every tag of the visit (instants from the start of its take) and those the cut holds:
    the cut's own (as the film and stills show them), then the record's others."""
    in_cut: dict[str, Tag] = {}
    visit_id = visit.visit_id
    for clip in visit.cut.get("clips", []):
        for t in clip.get("tags", []):
            take_id = str(clip["take_id"])
            at = _ns(float(t["take_s"]))
            tag = Tag(t["id"], visit_id, take_id, at, t["label"], t["note"], t["author"], at)
            in_cut[tag.id] = tag
    firsts = {str(t["id"]): t.get("first_frame_ns") for t in visit.record.get("takes", [])}
    tags = list(in_cut.values())
    for t in visit.record.get("tags", []):
        if t["id"] in in_cut:
            continue
        home: str | None = t.get("take_id")
        at = int(t["at_ns"])
        first = firsts.get(home or "")
        if home in takes and first is not None:
            at -= int(first)
        else:
            home = None  # in no take of this folder: listed, placed nowhere
        tags.append(Tag(t["id"], visit_id, home, at, t["label"], t["note"], t["author"], at))
    return tags, in_cut


def _film(
    cut: Mapping[str, Any], takes: Mapping[str, _Take], tags: Mapping[str, Tag], name: str
) -> Film | None:
    """The rough cut as the exporters know it, rebuilt from ``cut.json`` with the takes
    under their new names (None for a cut made before ``cut.json`` held enough)."""
    clips = cut.get("clips") or []
    if not cut.get("film") or not clips or any("take_start_s" not in c for c in clips):
        return None
    if any(str(c["take_id"]) not in takes for c in clips):
        return None
    fps = Fraction(cut.get("fps_fraction") or Fraction(cut["fps"]).limit_denominator(1001))
    film_clips = []
    for c in clips:
        take = takes[str(c["take_id"])]
        start, end = _ns(c["take_start_s"]), _ns(c["take_end_s"])
        own = tuple(sorted((tags[i] for i in c["tag_ids"] if i in tags), key=lambda t: t.at_ns))
        film_clips.append(
            FilmClip(
                Clip(take.take_id, start, end, own),
                Source(take.take_id, take.number, take.name, 0),
                start,
                end,
                _ns(c["film_start_s"]),
                _ns(c["film_end_s"]),
                round((end - start) * fps / NS_PER_S),
            )
        )
    return Film(
        name, tuple(film_clips), fps, int(cut.get("width") or 0), int(cut.get("height") or 0), 0
    )


def _chapters(tags: Sequence[Tag], duration_ns: int) -> list[Chapter]:
    """A chapter per tag of a take (labels only; tags at one instant share one), after a
    "Start" chapter when the first tag is not at the very start: MP4 players take the
    first chapter to begin the film."""
    starts: dict[int, list[str]] = {}
    last = max(0, duration_ns // 1_000_000 - 1)  # milliseconds
    for tag in sorted(tags, key=lambda t: (t.at_ns, t.id)):
        at = min(max(0, tag.at_ns // 1_000_000), last)
        starts.setdefault(at, []).append(" ".join(tag.label.split()))
    if starts and 0 not in starts:
        starts[0] = [START_CHAPTER]
    instants = sorted(starts)
    ends = [*instants[1:], last + 1]
    return [
        {
            "id": i + 1,
            "start": start,
            "end": end,
            "time_base": _CHAPTER_TB,
            "metadata": {"title": " + ".join(dict.fromkeys(starts[start]))},
        }
        for i, (start, end) in enumerate(zip(instants, ends, strict=True))
    ]


def remux(
    source: Path,
    target: Path,
    *,
    created: datetime | None,
    title: str = "",
    chapters: list[Chapter] | None = None,
) -> None:
    """Copy ``source``'s picture and sound into ``target`` (an MP4, moov first) without
    re-encoding, with ``created`` as its ``creation_time`` and ``chapters`` (None: the
    source's own)."""
    import av

    options = {"movflags": "+faststart"}
    with av.open(str(source)) as inp, av.open(str(target), "w", "mp4", options=options) as out:
        streams = {
            s.index: out.add_stream_from_template(s)
            for s in inp.streams
            if s.type in ("video", "audio")
        }
        for key, value in inp.metadata.items():
            if key in ("title", "comment", "artist"):
                out.metadata[key] = value
        if title:
            out.metadata["title"] = title
        if created is not None:
            out.metadata["creation_time"] = f"{created:%Y-%m-%dT%H:%M:%S.%fZ}"
        out.set_chapters(inp.chapters() if chapters is None else chapters)
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:
                continue  # the demuxer's end-of-stream marker
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


@dataclass(frozen=True)
class _Visit:
    """What a decrypted visit folder says about its visit."""

    directory: Path
    record: Mapping[str, Any]  # visit.json ({} without one)
    cut: Mapping[str, Any]  # cut/cut.json ({} without one)
    visit_id: str
    title: str
    prefix: str  # every file's name starts with it: the day and the case reference
    started: datetime | None  # the visit's start by the wall clock (UTC)

    @classmethod
    def read(cls, directory: Path) -> _Visit:
        record = _read_json(directory / "visit.json") or {}
        cut = _read_json(directory / "cut" / layout.MANIFEST) or {}
        visit = record.get("visit") or {}
        visit_id = str(visit.get("id") or cut.get("visit_id") or directory.name)
        case_ref = str(visit.get("case_ref") or cut.get("case_ref") or "")
        started_wall = str(visit.get("started_wall") or cut.get("started_wall") or "")
        day = started_wall[:10] or "undated"
        prefix = f"{day} {safe_name(case_ref, CASE_REF_CHARS) or visit_id}"
        title = str(cut.get("title") or f"{case_ref or visit_id} · {day}")
        return cls(directory, record, cut, visit_id, title, prefix, _when(started_wall))


def write_work_folder(visit_dir: Path, out: Path) -> Path:
    """Write the editor-ready folder of the decrypted visit in ``visit_dir`` (as ``kit
    decrypt`` wrote it: ``visit.json``, ``takes/*/take.mp4``, ``cut/...``) into ``out``
    (made if missing); the folder it made, e.g. ``out/2026-11-30 F-0042``, or
    ``... (2)`` when another visit of the same day and case has that name.

    Raises :class:`~kit.errors.KitError` if ``visit_dir`` holds no take and no cut, or
    its records cannot be read. The folder appears whole or not at all.
    """
    visit = _Visit.read(visit_dir)
    takes = _takes(visit)
    if not takes and not visit.cut:
        raise KitError(f"{visit_dir} holds no decrypted take or cut")
    out.mkdir(parents=True, exist_ok=True)
    target = _unique(out.resolve(), visit.prefix)
    building = out / f".{visit.visit_id}.partial"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        _write(visit, takes, building, target)
        building.rename(target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    log.info("work folder of visit %s: %s", visit.visit_id, target)
    return target


def _write(visit: _Visit, takes: Mapping[str, _Take], building: Path, target: Path) -> None:
    """Everything of the work folder into ``building``, which becomes ``target``."""
    prefix, cut = visit.prefix, visit.cut
    tags, in_cut = _tags(visit, takes)
    for take in takes.values():
        remux(
            take.source,
            building / take.name,
            created=take.info.started or visit.started,
            title=f"{visit.title} · take {take.number:02d}",
            chapters=_chapters(
                [t for t in tags if t.take_id == take.take_id], take.info.duration_ns
            ),
        )
    if visit.record:
        shutil.copyfile(visit.directory / "visit.json", building / "visit.json")
    stills = _stills(visit, building)
    # The contact sheet comes in pages (one page: "contact sheet.jpg", as before).
    pages = cut.get("contact_sheets") or (
        [cut["contact_sheet"]] if cut.get("contact_sheet") else []
    )
    for number, rel in enumerate(pages, start=1):
        source = visit.directory / "cut" / Path(str(rel)).name
        if source.is_file():
            name = "contact sheet.jpg" if len(pages) == 1 else f"contact sheet {number:02d}.jpg"
            shutil.copyfile(source, building / f"{prefix} {name}")
    film = _film(cut, takes, in_cut, f"{prefix} rough cut.mp4")
    film_source = visit.directory / "cut" / layout.FILM
    if film is not None and film_source.is_file():
        remux(film_source, building / film.path, created=visit.started)
    elif cut.get("film"):
        log.warning("the cut of %s is too old to make again: the timelines are left out", prefix)
        film = None
    infos = {t.take_id: t.info for t in takes.values()}
    if film is None:
        text = tags_csv(None, tags, infos)
        (building / f"{prefix} tags.csv").write_text(text, encoding="utf-8", newline="")
        return
    consent = cut.get("consent") or (visit.record.get("visit") or {}).get("consent")
    texts = export_texts(
        film, tags, ".", title=visit.title, takes=infos, consent=consent, stills=stills
    )
    names = {
        "otio": f"{prefix} rough cut.otio",
        "edl": f"{prefix} rough cut.edl",
        "csv": f"{prefix} tags.csv",
        "vtt": f"{prefix} chapters.vtt",
    }
    for kind, name in names.items():
        (building / name).write_text(texts[kind], encoding="utf-8", newline="")
    xml = fcp_xml(texts["otio"], media_dir=target)
    (building / f"{prefix} rough cut.fcp.xml").write_text(xml, encoding="utf-8", newline="")


def _stills(visit: _Visit, building: Path) -> dict[str, str]:
    """Copy the cut's stills under names that say what they are, their EXIF made again
    from ``cut.json``; tag id -> the still's path in the work folder."""
    made: dict[str, str] = {}
    for still in visit.cut.get("stills", []):
        source = visit.directory / "cut" / layout.STILLS / Path(str(still["path"])).name
        if not source.is_file():
            continue
        number, label = int(still["number"]), str(still["label"])
        tail = f" - {safe_name(label)}" if safe_name(label) else ""
        name = f"{visit.prefix} moment {number:02d}{tail}.jpg"
        taken = _when(still.get("wall"))
        caption = still.get("caption") or still_caption(
            number, label, int(still.get("take") or 0), _ns(still.get("take_s") or 0.0), taken
        )
        (building / layout.STILLS).mkdir(exist_ok=True)
        (building / layout.STILLS / name).write_bytes(
            with_exif(source.read_bytes(), str(caption), taken)
        )
        made[str(still["tag_id"])] = f"{layout.STILLS}/{name}"
    return made
