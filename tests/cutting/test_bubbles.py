"""Speech and thought bubbles on stills: the drawing read back with Pillow (where the bubble
is, what it leaves alone, its words compared with the same words drawn by the kit's own
lettering), the JPEG copy, and the bubbles kept through an encrypting file layer."""

from __future__ import annotations

import io
import json
import secrets
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw

from kit.cutting.bubbles import (
    INK,
    MAX_TEXT,
    PAPER,
    Bubble,
    BubbleKind,
    Side,
    StillBubbles,
    bubble_layout,
    bubbled_jpeg,
    copy_of,
    draw_bubble,
)
from kit.cutting.font import face
from kit.cutting.stills import with_exif
from kit.errors import CorruptMedia, Sealed, StorageError
from kit.store import layout
from kit.store.files import FileLayer

W, H = 1280, 720
WALL = (40, 90, 160)
WORDS = "I like it when you wait for me"


def picture(width: int = W, height: int = H) -> Image.Image:
    """A still with something in it: a gradient wall, so any change shows."""
    ys, xs = np.mgrid[0:height, 0:width]
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = WALL[0] + 60 * xs // width
    rgb[..., 1] = WALL[1] + 40 * ys // height
    rgb[..., 2] = WALL[2]
    return Image.fromarray(rgb)


def pixels(image: Image.Image) -> npt.NDArray[np.int16]:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def jpeg_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def crop(a: npt.NDArray[np.int16], box: tuple[int, int, int, int]) -> npt.NDArray[np.int16]:
    x0, y0, x1, y1 = box
    return a[y0:y1, x0:x1]


# ---------- drawing ----------


@pytest.mark.parametrize("kind", list(BubbleKind))
@pytest.mark.parametrize("side", list(Side))
def test_the_bubble_is_drawn_on_a_copy_and_only_where_it_goes(kind: BubbleKind, side: Side) -> None:
    still = picture()
    before = pixels(still)
    bubble = Bubble(WORDS, kind, side)
    out = draw_bubble(still, bubble)
    assert (pixels(still) == before).all()  # the still itself is not touched
    assert out.size == still.size and out.mode == "RGB"
    where = bubble_layout(W, H, bubble)
    x0, y0, x1, y1 = where.bounds
    changed = np.argwhere((pixels(out) != before).any(axis=2))
    assert changed.size, "nothing was drawn"
    assert changed[:, 1].min() >= x0 and changed[:, 1].max() < x1
    assert changed[:, 0].min() >= y0 and changed[:, 0].max() < y1
    # In a top corner of its side, over the top part of the picture only.
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    assert y1 < H / 2
    assert (x1 <= W * 0.75) if side is Side.LEFT else (x0 >= W * 0.25)
    # The body is paper, outlined in ink; the words are ink on paper.
    body = crop(pixels(out), where.body)
    white = (np.abs(body - np.array(PAPER)).sum(axis=2) < 30).mean()
    assert white > 0.6
    text = crop(pixels(out), where.text_box)
    assert (np.abs(text - np.array(INK)).sum(axis=2) < 60).mean() > 0.05


def read_back(out: Image.Image, bubble: Bubble) -> tuple[float, float]:
    """The bubble's text area against the same lines drawn by the kit's lettering on paper,
    and against other words so drawn: mean absolute differences (0 = the same)."""
    where = bubble_layout(out.width, out.height, bubble)
    x0, y0, x1, y1 = where.text_box
    lettering = face(where.size)

    def reference(lines: tuple[str, ...]) -> npt.NDArray[np.int16]:
        sheet = Image.new("RGB", (x1 - x0, y1 - y0), PAPER)
        pen = ImageDraw.Draw(sheet)
        for n, line in enumerate(lines):
            x = ((x1 - x0) - lettering.width(line)) / 2
            lettering.draw(pen, (x, n * lettering.line_height), line, INK)
        return pixels(sheet)

    drawn = crop(pixels(out), where.text_box)
    other = tuple("x" * len(line) for line in where.lines)
    same = float(np.abs(drawn - reference(where.lines)).mean())
    different = float(np.abs(drawn - reference(other)).mean())
    return same, different


@pytest.mark.parametrize(
    "words", [WORDS, "Мама слушает меня", "Être attentif ★", "Ich warte auf dich, Mama"]
)
def test_the_words_are_the_ones_typed(words: str) -> None:
    bubble = Bubble(words, BubbleKind.SPEECH)
    same, different = read_back(draw_bubble(picture(), bubble), bubble)
    assert same < 4.0, "the text area is not the typed words drawn in DejaVu Sans"
    assert different > 4 * same + 5


def test_a_thought_has_a_trail_of_circles_and_a_speech_a_tail() -> None:
    still = picture()
    thought = Bubble("Hmm", BubbleKind.THOUGHT)
    where = bubble_layout(W, H, thought)
    out = pixels(draw_bubble(still, thought))
    assert len(where.tail) == 3
    for x, y in where.tail:  # each circle of the trail is paper at its centre
        assert np.abs(out[y, x] - np.array(PAPER)).sum() < 30
    below = [y for _, y in where.tail]
    assert below == sorted(below) and below[0] > where.body[3] - where.bump
    speech = Bubble("Hmm", BubbleKind.SPEECH)
    where = bubble_layout(W, H, speech)
    (left, base), (tip_x, tip_y), (right, _) = where.tail
    assert tip_y > where.body[3] and left < tip_x < right + where.size
    out = pixels(draw_bubble(still, speech))
    inside = out[(base + tip_y) // 2, round((left + right + 2 * tip_x) / 4)]
    assert np.abs(inside - np.array(PAPER)).sum() < 60  # the tail is filled


def test_lines_are_balanced_and_long_text_is_cut_short() -> None:
    where = bubble_layout(W, H, Bubble(WORDS))
    assert len(where.lines) == 2
    lengths = [len(line) for line in where.lines]
    assert max(lengths) - min(lengths) <= 6  # not "... wait for" / "me"
    assert " ".join(where.lines) == WORDS
    long = bubble_layout(W, H, Bubble("word " * 19 + "end", BubbleKind.THOUGHT))
    assert len(long.lines) == 4 and long.lines[-1].endswith("…")
    unbroken = bubble_layout(W, H, Bubble("a" * MAX_TEXT))
    assert all(face(unbroken.size).width(line) <= W * 0.46 + 1 for line in unbroken.lines)
    for where in (long, unbroken):
        x0, y0, x1, y1 = where.bounds
        assert x0 >= 0 and x1 <= W and y0 >= 0 and y1 <= H


def test_the_lettering_grows_with_the_picture() -> None:
    small = bubble_layout(320, 180, Bubble(WORDS))
    tv = bubble_layout(1920, 1080, Bubble(WORDS))
    assert small.size == 11 and tv.size == 68  # 1/16 of the height: readable on a TV
    out = draw_bubble(picture(320, 180), Bubble(WORDS, BubbleKind.THOUGHT, Side.RIGHT))
    assert out.size == (320, 180)


@pytest.mark.parametrize(
    ("text", "error"),
    [("", "some words"), ("   ", "some words"), ("x" * 101, "at most 100"), ("a\nb", "control")],
)
def test_bad_bubbles_are_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Bubble(text)


def test_the_copy_is_a_jpeg_without_the_stills_caption() -> None:
    still = with_exif(jpeg_bytes(picture()), "Moment 1: Guiding (take 1 at 0:05.0)", None)
    assert b"Guiding" in still
    copy = bubbled_jpeg(still, Bubble("Look!"))
    assert copy.startswith(b"\xff\xd8") and b"Guiding" not in copy
    with Image.open(io.BytesIO(copy)) as opened:
        assert opened.format == "JPEG" and opened.size == (W, H)
        assert not opened.getexif()
    with pytest.raises(CorruptMedia):
        bubbled_jpeg(b"\xff\xd8not a picture\xff\xd9", Bubble("Look!"))


# ---------- kept with the visit, encrypted ----------

VISIT = "v00000000001"
STILL = layout.still(layout.in_cut(VISIT, layout.STILLS), 1, "tag00000001")
KEY = secrets.token_bytes(32)


@pytest.fixture
def files(tmp_path: Path) -> FileLayer:
    """An encrypted visit (its ``key.age`` there, its key known) with one still."""
    layer = FileLayer(tmp_path, keys=lambda v: KEY if v == VISIT else None)
    layer.makedirs(layout.in_cut(VISIT, layout.STILLS))
    layer.path(layout.wrapped_key(VISIT)).write_bytes(b"wrapped for the organisation")
    with layer.replace(STILL) as f:
        f.write(jpeg_bytes(picture()))
    return layer


def plain(files: FileLayer, rel: str) -> bytes:
    with files.read(rel) as f:
        return f.read()


def test_a_bubble_is_kept_encrypted_beside_its_still(files: FileLayer) -> None:
    bubbles = StillBubbles(files, VISIT)
    placed = bubbles.put("tag00000001", STILL, Bubble(WORDS, BubbleKind.THOUGHT, Side.RIGHT))
    assert placed.copy == copy_of(STILL) == STILL.removesuffix(".jpg") + ".bubble.jpg"
    assert bubbles.placed() == {"tag00000001": placed}
    record = layout.in_cut(VISIT, "bubbles.json")
    on_card = files.path(record).read_bytes() + files.path(placed.copy).read_bytes()
    assert WORDS.encode() not in on_card and b"\xff\xd8" not in on_card[:4]
    assert json.loads(plain(files, record))["bubbles"]["tag00000001"]["text"] == WORDS
    with Image.open(io.BytesIO(plain(files, placed.copy))) as copy:
        assert copy.size == (W, H)
    assert plain(files, STILL) == jpeg_bytes(picture())  # the still is as it was


def test_a_copy_is_drawn_again_only_when_its_still_is_remade(files: FileLayer) -> None:
    bubbles = StillBubbles(files, VISIT)
    placed = bubbles.put("tag00000001", STILL, Bubble("Look!"))
    salt = files.path(placed.copy).read_bytes()[:64]
    assert bubbles.copy_for("tag00000001", STILL) == placed.copy
    assert files.path(placed.copy).read_bytes()[:64] == salt  # not drawn again
    with files.replace(STILL) as f:  # a re-cut makes the still again (another frame)
        f.write(jpeg_bytes(picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    files.remove(placed.copy)  # ... and removes the files it did not make
    assert bubbles.copy_for("tag00000001", STILL) == placed.copy
    assert files.exists(placed.copy)
    assert bubbles.placed()["tag00000001"].version != placed.version
    # Renumbered: the still of the same tag is now 02.
    moved = layout.still(layout.in_cut(VISIT, layout.STILLS), 2, "tag00000001")
    with files.replace(moved) as f:
        f.write(jpeg_bytes(picture()))
    assert bubbles.copy_for("tag00000001", moved) == copy_of(moved)
    assert not files.exists(placed.copy)
    assert bubbles.copy_for("tag00000002", moved) is None  # no bubble: no copy


def test_bubbles_are_removed_and_pruned(files: FileLayer) -> None:
    bubbles = StillBubbles(files, VISIT)
    other = layout.still(layout.in_cut(VISIT, layout.STILLS), 2, "tag00000002")
    with files.replace(other) as f:
        f.write(jpeg_bytes(picture()))
    first = bubbles.put("tag00000001", STILL, Bubble("One"))
    second = bubbles.put("tag00000002", other, Bubble("Two"))
    assert bubbles.prune(["tag00000001", "tag00000002"]) == []
    assert bubbles.prune(["tag00000001"]) == ["tag00000002"]  # its moment left the film
    assert not files.exists(second.copy)
    assert set(bubbles.placed()) == {"tag00000001"}
    assert bubbles.remove("tag00000001") is True
    assert bubbles.remove("tag00000001") is False
    assert not files.exists(first.copy)
    assert not files.exists(layout.in_cut(VISIT, "bubbles.json"))  # nothing kept
    assert bubbles.placed() == {}


def test_a_sealed_visits_bubbles_cannot_be_read_or_written(files: FileLayer) -> None:
    StillBubbles(files, VISIT).put("tag00000001", STILL, Bubble("One"))
    sealed = StillBubbles(FileLayer(files.root), VISIT)  # the kit no longer holds the key
    with pytest.raises(Sealed):
        sealed.placed()
    with pytest.raises(Sealed):
        sealed.put("tag00000001", STILL, Bubble("Two"))


def test_a_damaged_record_is_a_storage_error(files: FileLayer) -> None:
    with files.replace(layout.in_cut(VISIT, "bubbles.json")) as f:
        f.write(b'{"bubbles": {"tag00000001": {"text": ""}}}')
    with pytest.raises(StorageError, match="damaged"):
        StillBubbles(files, VISIT).placed()
