"""The contact sheet in pages: any number of tags, every still on a page, every page bounded.

One sheet of 610 stills of 480 x 270 would be ~68,000 pixels tall, past JPEG's 65,535
limit (a visit of ~590 tags could never be cut). Each still here is a flat colour that
encodes its number, so the pages are read back with Pillow and every number found.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from PIL import Image

from kit.cutting import CutError
from kit.cutting.manifest import read_manifest
from kit.cutting.plan import CutRules, Window
from kit.cutting.render import Source
from kit.cutting.sheet import (
    PER_PAGE,
    contact_sheets,
    is_page_name,
    page_count,
    page_name,
    sheet_layout,
)
from kit.cutting.stills import Still
from kit.cutting.visit import cut_visit
from kit.model import Tag
from kit.store import layout
from kit.store.files import FileLayer
from kit.store.store import Store, new_id
from kit.testing.longtake import TakeShape, build_take

NS = 1_000_000_000
W, H = 480, 270
STEP = 28  # colour levels 0, 28, ... 224: nine a channel, 729 numbers, far apart for JPEG
JPEG_MAX = 65_535


def _colour(number: int) -> tuple[int, int, int]:
    return (number // 81 % 9 * STEP, number // 9 % 9 * STEP, number % 9 * STEP)


def _number(rgb: tuple[int, int, int]) -> int:
    r, g, b = (round(c / STEP) for c in rgb)
    return r * 81 + g * 9 + b


def _stills(files: FileLayer, count: int) -> list[Still]:
    files.makedirs("stills")
    source = Source("take-a", 1, "takes/a/take.mp4", 0)
    stills = []
    for number in range(1, count + 1):
        out = io.BytesIO()
        Image.new("RGB", (W, H), _colour(number)).save(out, "JPEG", quality=95)
        rel = f"stills/{number:03d}.jpg"
        with files.replace(rel) as f:
            f.write(out.getvalue())
        at = number * NS
        tag = Tag(f"t{number}", "v", "take-a", at, f"label {number}", "private", "guider", at)
        stills.append(Still(tag, number, source, rel, at, at, W, H))
    return stills


def test_610_stills_make_pages_that_each_read_back_and_hold_every_still(tmp_path: Path) -> None:
    files = FileLayer(tmp_path)
    count = 610
    stills = _stills(files, count)
    pages = contact_sheets(files, stills, "cut", title="F-0042 · 2026-11-30")
    assert len(pages) == page_count(count) == math.ceil(count / PER_PAGE) == 34
    assert pages == [f"cut/{page_name(n)}" for n in range(1, 35)]
    assert pages[0] == "cut/contact-sheet-01.jpg"
    full = sheet_layout(PER_PAGE, W, H, titled=True, columns=3)
    # One page of them all would pass JPEG's limit; a page is bounded whatever the count.
    assert math.ceil(count / 3) * full.cell_h > JPEG_MAX
    found: list[int] = []
    for n, rel in enumerate(pages, start=1):
        with Image.open(files.path(rel)) as page:
            page.load()
            assert page.format == "JPEG"
            on_page = min(PER_PAGE, count - (n - 1) * PER_PAGE)
            plan = sheet_layout(on_page, W, H, titled=True, columns=3)
            assert page.size == (plan.width, plan.height)
            assert page.width == full.width and page.height <= full.height < 2_200
            for i in range(on_page):
                x, y = plan.thumb_xy(i)
                centre = page.getpixel((x + plan.thumb_w // 2, y + plan.thumb_h // 2))
                assert isinstance(centre, tuple)
                found.append(_number((centre[0], centre[1], centre[2])))
    # Every still once, in film order, page after page.
    assert found == list(range(1, count + 1))


def test_a_sheet_needs_stills_and_names_its_pages(tmp_path: Path) -> None:
    with pytest.raises(CutError):
        contact_sheets(FileLayer(tmp_path), [], "cut")
    assert page_count(0) == 0 and page_count(1) == 1 and page_count(PER_PAGE + 1) == 2
    assert [page_name(1), page_name(12), page_name(100)] == [
        "contact-sheet-01.jpg",
        "contact-sheet-12.jpg",
        "contact-sheet-100.jpg",
    ]
    assert all(is_page_name(n) for n in ("contact-sheet-01.jpg", "contact-sheet.jpg"))
    assert not any(
        is_page_name(n) for n in ("contact-sheet-x.jpg", "rough-cut.mp4", "contact-sheet-1.png")
    )


def test_a_recut_with_fewer_pages_removes_the_pages_it_no_longer_has(tmp_path: Path) -> None:
    store = Store(tmp_path)
    shape = TakeShape(minutes=0.5, tags=0, width=160, height=120, bitrate=200_000)
    visit, take = build_take(store, shape)
    t0 = store.db.take(take).first_frame_ns or 0
    rules = CutRules(Window(NS // 2, NS // 2))
    tags = [
        Tag(new_id(), visit, take, t0 + NS + k * NS, "Guiding", "", "t", t0)
        for k in range(PER_PAGE + 2)
    ]
    for tag in tags:
        store.db.add_tag(tag)
    # A sheet left by a cut made before there were pages goes too.
    old = layout.in_cut(visit, layout.CONTACT_SHEET)
    store.files.makedirs(layout.cut_dir(visit))
    with store.files.replace(old) as f:
        f.write(b"old")
    first = cut_visit(store, visit, rules, in_child=False)
    assert first.contact_sheets == (
        layout.in_cut(visit, "contact-sheet-01.jpg"),
        layout.in_cut(visit, "contact-sheet-02.jpg"),
    )
    assert first.contact_sheet == first.contact_sheets[0]
    assert not store.files.exists(old)
    for tag in tags[3:]:
        store.db.delete_tag(tag.id)
    again = cut_visit(store, visit, rules, in_child=False)
    assert again.contact_sheets == (layout.in_cut(visit, "contact-sheet-01.jpg"),)
    names = sorted(p.name for p in store.files.path(layout.cut_dir(visit)).glob("contact*"))
    assert names == ["contact-sheet-01.jpg"]
    with Image.open(store.files.path(again.contact_sheets[0])) as page:
        assert page.width == sheet_layout(3, 160, 120, titled=True).width
    manifest = read_manifest(store.files, visit)
    assert manifest is not None
    assert manifest["contact_sheets"] == list(again.contact_sheets)
    assert manifest["contact_sheet"] == again.contact_sheets[0]
