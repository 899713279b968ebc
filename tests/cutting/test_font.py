"""The contact sheet's lettering: DejaVu Sans through Pillow, fallbacks per character, and a
sheet whose non-Latin label is checked by reading the image back (no OCR: it is compared
with the same text drawn by Pillow, and with what the old bitmap font would have shown)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw, ImageFont

from kit.cutting import font
from kit.cutting.render import Source
from kit.cutting.sheet import (
    BACKGROUND,
    CAPTION_SIZE,
    DIM,
    TEXT,
    contact_sheets,
    sheet_layout,
    still_times,
)
from kit.cutting.stills import Still
from kit.model import Tag
from kit.store.files import FileLayer

NS = 1_000_000_000
LABEL = "Руководство"  # "Guiding", in Russian


def test_dejavu_sans_is_found_and_has_cyrillic_but_no_chinese() -> None:
    face = font.face(CAPTION_SIZE)
    primary = face.fonts[0]
    assert isinstance(primary, ImageFont.FreeTypeFont)
    assert Path(str(primary.path)).name == "DejaVuSans.ttf"
    assert font._covers(primary, "Ж") and font._covers(primary, "é") and font._covers(primary, "★")
    assert not font._covers(primary, "引")
    assert face.runs(f"1. {LABEL} ★") == [(primary, f"1. {LABEL} ★")]


def test_characters_a_font_lacks_are_drawn_with_the_next_one() -> None:
    dejavu = font.face(CAPTION_SIZE).fonts[0]
    latin_only = ImageFont.load_default(CAPTION_SIZE)  # Pillow's own font: no Cyrillic
    face = font.Face((latin_only, dejavu), CAPTION_SIZE)
    assert face.runs("Ab Жж cd") == [(latin_only, "Ab "), (dejavu, "Жж "), (latin_only, "cd")]
    assert face.width("Ab Жж cd") == pytest.approx(
        latin_only.getlength("Ab ") + dejavu.getlength("Жж ") + latin_only.getlength("cd")
    )


def test_fit_collapses_white_space_and_cuts_with_an_ellipsis() -> None:
    face = font.face(CAPTION_SIZE)
    assert face.fit("Guiding\n  well", 500) == "Guiding well"
    cut = face.fit("a label far too long to fit in the little room there is", 120)
    assert cut.endswith("…") and face.width(cut) <= 120


def test_without_dejavu_pillows_font_stands_in_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="kit.cutting.font"):
        first = font.face(13, dirs=("/nonexistent",))
        font.face(14, dirs=("/nonexistent",))
    assert "DejaVu" not in str(getattr(first.fonts[0], "path", ""))
    assert first.width("Guiding") > 0
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "fonts-dejavu-core" in caplog.records[0].getMessage()


def _still(files: FileLayer, number: int, label: str, note: str) -> Still:
    picture = Image.new("RGB", (640, 360), (30 * number, 90, 160))
    ImageDraw.Draw(picture).rectangle((100, 100, 300, 250), fill=(240, 240, 240))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=95)
    rel = f"stills/{number:02d}.jpg"
    with files.replace(rel) as f:
        f.write(out.getvalue())
    source = Source("take-a", 1, "takes/a/take.mp4", 0)
    at = number * 5 * NS
    tag = Tag(f"t{number}", "v", "take-a", at, label, note, "guider", at)
    return Still(tag, number, source, rel, at, at - 2 * NS, 640, 360)


def _lettering(text: str, size: tuple[int, int], fill: tuple[int, int, int]) -> Image.Image:
    """``text`` drawn by Pillow with the sheet's face, on the sheet's background."""
    expected = Image.new("RGB", size, BACKGROUND)
    font.face(CAPTION_SIZE).draw(ImageDraw.Draw(expected), (0, 0), text, fill)
    return expected


def _difference(a: Image.Image, b: Image.Image) -> float:
    left: npt.NDArray[np.float64] = np.asarray(a.convert("L"), dtype=np.float64)
    right: npt.NDArray[np.float64] = np.asarray(b.convert("L"), dtype=np.float64)
    return float(np.abs(left - right).mean())


def test_the_contact_sheet_letters_a_cyrillic_label_as_typed_and_never_the_note(
    tmp_path: Path,
) -> None:
    files = FileLayer(tmp_path)
    files.makedirs("stills")
    note = "ПРИВАТНАЯ ЗАМЕТКА"  # "private note": it must not be on the sheet
    stills = [
        _still(files, 1, LABEL, note),
        _still(files, 2, "Guiding", ""),
        _still(files, 3, "Être attentif", ""),
        _still(files, 4, "Δ moment", ""),
    ]
    [rel] = contact_sheets(files, stills, "cut", title="F-0042 · 2026-11-30")
    assert rel == "cut/contact-sheet-01.jpg"
    sheet = Image.open(files.path(rel))
    plan = sheet_layout(4, 640, 360, titled=True)
    assert sheet.size == (plan.width, plan.height)
    assert (plan.columns, plan.thumb_w, plan.thumb_h) == (3, 480, 270)
    line_h = font.face(CAPTION_SIZE).line_height

    def caption(index: int, line: int) -> Image.Image:
        x, y = plan.caption_xy(index, line)
        return sheet.crop((x, y, x + plan.thumb_w, y + line_h))

    size = (plan.thumb_w, line_h)
    label = caption(0, 0)
    right = _difference(label, _lettering(f"1. {LABEL}", size, TEXT))
    assert right < 3.0, right
    # What the old bitmap font printed, what a transliteration shows, and the note, differ.
    for wrong in ("1. ???????????", "1. Rukovodstvo", f"1. {note}"):
        assert _difference(label, _lettering(wrong, size, TEXT)) > 3 * right + 2, wrong
    assert _difference(caption(0, 1), _lettering(still_times(stills[0]), size, DIM)) < 3.0
    assert _difference(caption(1, 0), _lettering("2. Guiding", size, TEXT)) < 3.0
    assert _difference(caption(3, 0), _lettering("4. Δ moment", size, TEXT)) < 3.0
    # The thumbnails are the stills, scaled.
    x, y = plan.thumb_xy(1)
    thumb = sheet.crop((x, y, x + plan.thumb_w, y + plan.thumb_h))
    with Image.open(files.path(stills[1].path)) as original:
        expected = original.convert("RGB").resize((plan.thumb_w, plan.thumb_h))
    assert _difference(thumb, expected) < 4.0
