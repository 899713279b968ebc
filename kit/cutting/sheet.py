"""The contact sheet: every still with its number, label and times, in pages of bounded size.

A page holds at most :data:`ROWS` rows of :data:`COLUMNS` stills (about an
A4 page's shape), so a page is at most ~1500 x 2100 pixels whatever the
number of tags: memory stays flat (one page is drawn at a time, each still
read back from its JPEG at the size its thumbnail needs) and no page comes
near JPEG's 65,535-pixel limit. Pages are ``contact-sheet-01.jpg``,
``contact-sheet-02.jpg``, ... beside the film; each is headed with the cut's
title and, when there are several, its page number. Lettering is DejaVu Sans
through Pillow (see :mod:`kit.cutting.font`).

The guider's notes are private: they are on no sheet.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from kit.cutting import CutError
from kit.cutting.font import face
from kit.cutting.stills import Still, clock_text
from kit.store import layout
from kit.store.files import FileLayer

COLUMNS = 3
ROWS = 6  # per page: 3 x 6 stills of 480 x 270 make a page of A4's shape
PER_PAGE = COLUMNS * ROWS
# The sheet is for looking at on a screen: Pillow's quality 90 is plenty.
_SHEET_QUALITY = 90
_THUMB_W = 480
_PAD = 16
CAPTION_SIZE = 16  # pixels: two lines of it under each still
TITLE_SIZE = 22
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
DIM = (170, 170, 170)


def page_name(page: int) -> str:
    """The file name of page ``page`` (from 1) in the cut directory: ``contact-sheet-01.jpg``."""
    stem, dot, ext = layout.CONTACT_SHEET.rpartition(".")
    return f"{stem}-{page:02d}{dot}{ext}"


def is_page_name(name: str) -> bool:
    """Whether ``name`` is a contact sheet's file name (a page's, or the single sheet's of
    cuts made before there were pages)."""
    stem, dot, ext = layout.CONTACT_SHEET.rpartition(".")
    if name == layout.CONTACT_SHEET:
        return True
    number = name.removeprefix(f"{stem}-").removesuffix(f"{dot}{ext}")
    return name.startswith(f"{stem}-") and name.endswith(f"{dot}{ext}") and number.isdigit()


def page_count(stills: int) -> int:
    """How many pages ``stills`` stills take (none for none)."""
    return math.ceil(stills / PER_PAGE)


@dataclass(frozen=True)
class SheetLayout:
    """Where everything goes on a page of the contact sheet (pixels, top left origin)."""

    count: int  # stills on this page
    columns: int
    thumb_w: int
    thumb_h: int
    header_h: int
    width: int
    height: int

    @property
    def cell_w(self) -> int:
        return self.thumb_w + _PAD

    @property
    def cell_h(self) -> int:
        return self.thumb_h + _PAD // 2 + 2 * face(CAPTION_SIZE).line_height + _PAD

    def thumb_xy(self, index: int) -> tuple[int, int]:
        """The top left of the page's ``index``-th still (from 0)."""
        return (
            _PAD + (index % self.columns) * self.cell_w,
            self.header_h + (index // self.columns) * self.cell_h,
        )

    def caption_xy(self, index: int, line: int) -> tuple[int, int]:
        """The top left of caption line ``line`` (0: number and label, 1: times)."""
        x, y = self.thumb_xy(index)
        return x, y + self.thumb_h + _PAD // 2 + line * face(CAPTION_SIZE).line_height

    @property
    def title_xy(self) -> tuple[int, int]:
        return _PAD, _PAD // 2


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def sheet_layout(
    count: int, still_w: int, still_h: int, *, titled: bool, columns: int | None = None
) -> SheetLayout:
    """The layout of a page of ``count`` stills of ``still_w`` x ``still_h`` (``columns``:
    the sheet's, so every page of it is as wide; by default as many as fit ``count``)."""
    if not 0 < count <= PER_PAGE:
        raise ValueError(f"a page holds 1 to {PER_PAGE} stills, not {count}")
    across = min(COLUMNS, columns or count)
    rows = math.ceil(count / across)
    thumb_w = _even(min(_THUMB_W, still_w))
    thumb_h = _even(thumb_w * still_h / still_w)
    header_h = face(TITLE_SIZE, bold=True).line_height + _PAD if titled else _PAD
    probe = SheetLayout(count, across, thumb_w, thumb_h, header_h, 0, 0)
    return SheetLayout(
        count,
        across,
        thumb_w,
        thumb_h,
        header_h,
        _even(across * probe.cell_w + _PAD),
        _even(header_h + rows * probe.cell_h + _PAD),
    )


def still_times(still: Still) -> str:
    """A still's second caption line: where it is in its take and in the film."""
    times = f"take {still.source.seq} at {clock_text(still.take_ns)}"
    if still.film_ns is not None:
        times += f", film {clock_text(still.film_ns)}"
    return times


def _thumbnail(files: FileLayer, still: Still, size: tuple[int, int]) -> Image.Image:
    with files.read(still.path) as f:
        picture = Image.open(io.BytesIO(f.read()))
        # Decode the JPEG at a half, quarter or eighth of its size: all a thumbnail needs.
        picture.draft("RGB", size)
        return picture.convert("RGB").resize(size, Image.Resampling.BICUBIC)


def _page(
    files: FileLayer,
    stills: Sequence[Still],
    columns: int,
    title: str,
    page: int,
    pages: int,
) -> bytes:
    """One page of the sheet, as JPEG bytes."""
    heading = face(TITLE_SIZE, bold=True)
    caption = face(CAPTION_SIZE)
    marker = f"page {page} of {pages}" if pages > 1 else ""
    plan = sheet_layout(
        len(stills),
        stills[0].width,
        stills[0].height,
        titled=bool(title or marker),
        columns=columns,
    )
    sheet = Image.new("RGB", (plan.width, plan.height), BACKGROUND)
    pen = ImageDraw.Draw(sheet)
    room = plan.width - 2 * _PAD
    if marker:
        marker_w = heading.width(marker)
        heading.draw(pen, (plan.width - _PAD - marker_w, plan.title_xy[1]), marker, DIM)
        room -= round(marker_w) + _PAD
    if title:
        heading.draw(pen, plan.title_xy, heading.fit(title, room), TEXT)
    for i, still in enumerate(stills):
        sheet.paste(_thumbnail(files, still, (plan.thumb_w, plan.thumb_h)), plan.thumb_xy(i))
        label = caption.fit(f"{still.number}. {still.tag.label}", plan.thumb_w)
        caption.draw(pen, plan.caption_xy(i, 0), label, TEXT)
        caption.draw(pen, plan.caption_xy(i, 1), caption.fit(still_times(still), plan.thumb_w), DIM)
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=_SHEET_QUALITY)
    return out.getvalue()


def contact_sheets(
    files: FileLayer,
    stills: Sequence[Still],
    out_dir: str,
    *,
    title: str = "",
    progress: Callable[[float], None] | None = None,
) -> list[str]:
    """Write the contact sheet of ``stills`` (in their order) into ``out_dir`` as pages of
    at most :data:`PER_PAGE` stills; the pages' paths, in order."""
    report = progress or (lambda _: None)
    if not stills:
        raise CutError("no stills for a contact sheet")
    pages = page_count(len(stills))
    columns = min(COLUMNS, len(stills))
    files.makedirs(out_dir)
    written = []
    for page in range(1, pages + 1):
        chunk = stills[(page - 1) * PER_PAGE : page * PER_PAGE]
        data = _page(files, chunk, columns, title, page, pages)
        rel = layout.entry(out_dir, page_name(page))
        with files.replace(rel) as f:
            f.write(data)
        written.append(rel)
        report(page / pages)
    return written
