"""Speech and thought bubbles on stills, for showing a moment to the family.

A VIG habit: on a still of a good moment the guider writes what the child (or the
parent) might be saying or thinking, "I like it when you wait for me", in a speech or
thought bubble. The bubble is drawn on a **copy** of the still; the still itself (and
its EXIF) is never touched. The copy carries no EXIF: it goes to the family's screen.

:func:`draw_bubble` is the pure drawing (Pillow, DejaVu Sans through
:mod:`kit.cutting.font`, so the text prints as typed in most scripts).
:class:`StillBubbles` keeps a visit's bubbles through its :class:`~kit.store.files.FileLayer`,
so everything is encrypted as the rest of the visit is:

    visits/<visit>/cut/bubbles.json                the bubbles' texts (the guider's words)
    visits/<visit>/cut/stills/NN-<tag>.bubble.jpg  the still of tag <tag> with its bubble

A bubble belongs to a tag, not to a still number: a re-cut renumbers the stills and
removes every file in ``stills/`` it did not make (kit.cutting.visit), copies included,
so nothing of a discarded moment is left behind; the copy is drawn again from the new
still when it is next asked for (:meth:`StillBubbles.copy_for`), and the texts of tags
no longer in the film are dropped then (:meth:`StillBubbles.prune`).
"""

from __future__ import annotations

import io
import json
import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from PIL import Image, ImageDraw, UnidentifiedImageError

from kit.cutting.font import Face, face
from kit.errors import CorruptMedia, StorageError
from kit.store import layout
from kit.store.files import FileLayer

MAX_TEXT = 100  # characters: a bubble is a short sentence, readable across a room
BUBBLES = layout.BUBBLES  # in the visit's cut directory
_JPEG_QUALITY = 92  # for a screen (and perhaps a print): well above what a TV shows
_SUPERSAMPLE = 3  # shapes drawn 3x and scaled down: smooth edges (Pillow draws no AA)
_MAX_LINES = 4
INK = (20, 20, 20)
PAPER = (255, 255, 255)


class BubbleKind(StrEnum):
    SPEECH = "speech"  # a rounded box with a pointed tail: said
    THOUGHT = "thought"  # a cloud with a trail of small circles: thought


class Side(StrEnum):
    """Which top corner of the still the bubble sits in (its tail points down from it)."""

    LEFT = "left"
    RIGHT = "right"


@dataclass(frozen=True)
class Bubble:
    """What the guider typed for a still, and how to draw it."""

    text: str
    kind: BubbleKind = BubbleKind.SPEECH
    side: Side = Side.LEFT

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a bubble needs some words")
        if len(self.text) > MAX_TEXT:
            raise ValueError(f"a bubble holds at most {MAX_TEXT} characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in self.text):
            raise ValueError("a bubble's text cannot hold control characters")

    def as_json(self) -> dict[str, str]:
        return {"text": self.text, "kind": self.kind.value, "side": self.side.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bubble:
        return cls(str(data["text"]), BubbleKind(data["kind"]), Side(data.get("side", "left")))


# ---------- drawing (pure) ----------

_Box = tuple[float, float, float, float]  # left, top, right, bottom


@dataclass(frozen=True)
class BubbleLayout:
    """Where a bubble goes on a picture of ``width`` x ``height``: its lines of text, the
    lettering's size, the box the text is centred in, and everything the bubble covers
    (tail included), all in the picture's pixels."""

    lines: tuple[str, ...]
    size: int
    text_box: tuple[int, int, int, int]
    body: tuple[int, int, int, int]  # the rounded box, or the cloud's ellipse (no bumps)
    bounds: tuple[int, int, int, int]  # everything drawn: outline, bumps and tail
    outline: int
    bump: int  # the cloud's bumps' radius (0 for speech)
    tail: tuple[tuple[int, int], ...]  # speech: base left, tip, base right; thought: centres


def _wrap(text: str, lettering: Face, width: float) -> list[str]:
    """``text`` in lines no wider than ``width`` (a word too long is broken inside)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if lettering.width(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        rest = word
        while lettering.width(rest) > width and len(rest) > 1:
            cut = len(rest) - 1
            while cut > 1 and lettering.width(rest[:cut]) > width:
                cut -= 1
            lines.append(rest[:cut])
            rest = rest[cut:]
        line = rest
    if line:
        lines.append(line)
    return lines


def _balanced(text: str, lettering: Face, width: float) -> list[str]:
    """``text`` wrapped to ``width`` in as few lines as it needs, as even as they can be
    ("I like it when you / wait for me", not "I like it when you wait for / me"), and
    at most :data:`_MAX_LINES` of them (the last cut short with an ellipsis)."""
    lines = _wrap(text, lettering, width)
    if len(lines) > _MAX_LINES:
        rest = lettering.fit(" ".join(lines[_MAX_LINES - 1 :]), width)
        return [*lines[: _MAX_LINES - 1], rest]
    narrow = width
    while len(lines) > 1 and narrow > width * 0.4:
        tried = _wrap(text, lettering, narrow * 0.95)
        if len(tried) != len(lines):
            break
        narrow, lines = narrow * 0.95, tried
    return lines


def bubble_layout(width: int, height: int, bubble: Bubble) -> BubbleLayout:
    """Where ``bubble`` goes on a ``width`` x ``height`` still (pure).

    The lettering is 1/16 of the picture's height (68 px on a 1080p still: readable
    on a TV across a room), the text at most 46 % of its width, the bubble in the
    top corner of ``bubble.side`` with its tail pointing down into the picture.
    """
    size = max(11, round(height / 16))
    lettering = face(size)
    margin = max(4, round(min(width, height) * 0.035))
    outline = max(2, round(size * 0.09))
    lines = _balanced(" ".join(bubble.text.split()), lettering, width * 0.46)
    text_w = max(lettering.width(line) for line in lines)
    text_h = size + (len(lines) - 1) * lettering.line_height
    left = bubble.side is Side.LEFT
    body: _Box
    bounds: _Box
    tail: tuple[tuple[float, float], ...]
    if bubble.kind is BubbleKind.SPEECH:
        pad_x, pad_y = size * 0.7, size * 0.5
        body_w, body_h = text_w + 2 * pad_x, text_h + 2 * pad_y
        x0 = margin + outline if left else width - margin - outline - body_w
        y0 = margin + outline
        body = (x0, y0, x0 + body_w, y0 + body_h)
        tail_len = size * 1.3
        base = x0 + body_w * (0.22 if left else 0.62)
        half = max(size * 0.35, body_w * 0.08)
        tip_x = base + half + (size * 0.3 if left else -size * 0.3)
        bottom = y0 + body_h
        tail = ((base, bottom), (tip_x, bottom + tail_len), (base + 2 * half, bottom))
        bump = 0.0
        bounds = (
            x0 - outline,
            y0 - outline,
            x0 + body_w + outline,
            y0 + body_h + tail_len + outline,
        )
    else:
        # The ellipse through the corners of the text's box, with bumps round its edge.
        a = (text_w / 2 + size * 0.35) * math.sqrt(2)
        b = (text_h / 2 + size * 0.3) * math.sqrt(2)
        bump = size * 0.55
        reach = outline + bump
        cx = margin + reach + a if left else width - margin - reach - a
        cy = margin + reach + b
        body = (cx - a, cy - b, cx + a, cy + b)
        step = size * 0.75
        start_x = cx - a * 0.45 if left else cx + a * 0.45
        lean = size * 0.35 if left else -size * 0.35
        tail_r = (bump * 0.75, bump * 0.52, bump * 0.34)
        tail = tuple(
            (start_x + lean * (i + 1), cy + b * 0.87 + bump * 0.6 + step * (i + 1) - tail_r[i])
            for i in range(3)
        )
        lowest = tail[-1][1] + tail_r[-1]
        bounds = (cx - a - reach, cy - b - reach, cx + a + reach, lowest + outline)
    text_box = (
        (body[0] + body[2] - text_w) / 2,
        (body[1] + body[3] - text_h) / 2,
        (body[0] + body[2] + text_w) / 2,
        (body[1] + body[3] + text_h) / 2,
    )
    return BubbleLayout(
        lines=tuple(lines),
        size=size,
        text_box=_ints(text_box),
        body=_ints(body),
        bounds=_ints(
            (max(0, bounds[0]), max(0, bounds[1]), min(width, bounds[2]), min(height, bounds[3]))
        ),
        outline=outline,
        bump=round(bump),
        tail=tuple((round(x), round(y)) for x, y in tail),
    )


def _ints(box: _Box) -> tuple[int, int, int, int]:
    return (round(box[0]), round(box[1]), round(box[2]), round(box[3]))


def _bumps(body: tuple[int, int, int, int], bump: float) -> list[tuple[float, float]]:
    """Centres of the cloud's bumps, evenly round the ellipse ``body``."""
    cx, cy = (body[0] + body[2]) / 2, (body[1] + body[3]) / 2
    a, b = (body[2] - body[0]) / 2, (body[3] - body[1]) / 2
    perimeter = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
    count = max(8, round(perimeter / (bump * 1.8)))
    return [
        (cx + a * math.cos(2 * math.pi * i / count), cy + b * math.sin(2 * math.pi * i / count))
        for i in range(count)
    ]


def _shape(where: BubbleLayout, kind: BubbleKind) -> Image.Image:
    """The bubble's shape (white, outlined), as RGBA the size of ``where.bounds``."""
    s = _SUPERSAMPLE
    x0, y0, x1, y1 = where.bounds
    layer = Image.new("RGBA", ((x1 - x0) * s, (y1 - y0) * s), (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    ink, paper = (*INK, 255), (*PAPER, 255)
    w = where.outline * s

    def at(x: float, y: float) -> tuple[float, float]:
        return ((x - x0) * s, (y - y0) * s)

    def circle(centre: tuple[float, float], r: float, fill: tuple[int, ...]) -> None:
        x, y = at(*centre)
        pen.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    bx0, by0 = at(where.body[0], where.body[1])
    bx1, by1 = at(where.body[2], where.body[3])
    if kind is BubbleKind.SPEECH:
        radius = where.size * 0.6 * s
        tail = [at(*p) for p in where.tail]
        pen.rounded_rectangle((bx0 - w, by0 - w, bx1 + w, by1 + w), radius + w, fill=ink)
        pen.line([tail[0], tail[1], tail[2]], fill=ink, width=2 * w, joint="curve")
        pen.ellipse((tail[1][0] - w, tail[1][1] - w, tail[1][0] + w, tail[1][1] + w), fill=ink)
        pen.rounded_rectangle((bx0, by0, bx1, by1), radius, fill=paper)
        # The tail's white, reaching up into the box along its own edges (over the outline).
        up = 3 * w / max(1.0, tail[1][1] - tail[0][1])
        inside = [
            (tail[0][0] + (tail[0][0] - tail[1][0]) * up, tail[0][1] - 3 * w),
            tail[1],
            (tail[2][0] + (tail[2][0] - tail[1][0]) * up, tail[2][1] - 3 * w),
        ]
        pen.polygon(inside, fill=paper)
        return layer.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
    bump = where.bump * s
    bumps = _bumps(where.body, where.bump)
    trail = list(zip(where.tail, (0.75, 0.52, 0.34), strict=True))
    pen.ellipse((bx0 - w, by0 - w, bx1 + w, by1 + w), fill=ink)
    for centre in bumps:
        circle(centre, bump + w, ink)
    for centre, share in trail:
        circle(centre, where.bump * share * s + w, ink)
    pen.ellipse((bx0, by0, bx1, by1), fill=paper)
    for centre in bumps:
        circle(centre, bump, paper)
    for centre, share in trail:
        circle(centre, where.bump * share * s, paper)
    return layer.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)


def draw_bubble(picture: Image.Image, bubble: Bubble) -> Image.Image:
    """A copy of ``picture`` (RGB) with ``bubble`` drawn on it; ``picture`` is not changed."""
    where = bubble_layout(picture.width, picture.height, bubble)
    out = picture.convert("RGBA")
    out.alpha_composite(_shape(where, bubble.kind), (where.bounds[0], where.bounds[1]))
    out = out.convert("RGB")
    lettering = face(where.size)
    pen = ImageDraw.Draw(out)
    x0, y0, x1, _ = where.text_box
    for n, line in enumerate(where.lines):
        x = x0 + ((x1 - x0) - lettering.width(line)) / 2
        lettering.draw(pen, (x, y0 + n * lettering.line_height), line, INK)
    return out


def bubbled_jpeg(jpeg: bytes, bubble: Bubble) -> bytes:
    """The JPEG ``jpeg`` with ``bubble`` drawn on it, as a new JPEG (no EXIF, no caption)."""
    try:
        with Image.open(io.BytesIO(jpeg)) as still:
            picture = still.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptMedia(f"the still cannot be read: {exc}") from exc
    out = io.BytesIO()
    draw_bubble(picture, bubble).save(out, "JPEG", quality=_JPEG_QUALITY)
    return out.getvalue()


# ---------- keeping them with the visit ----------


def copy_of(still: str) -> str:
    """Where the bubbled copy of the still ``still`` goes (:func:`layout.bubbled_still`)."""
    return layout.bubbled_still(still)


@dataclass(frozen=True)
class Placed:
    """A bubble as kept: on the still of ``tag_id``, drawn on ``still`` as it was when its
    version was ``version``, into ``copy``."""

    tag_id: str
    bubble: Bubble
    still: str
    version: str
    copy: str

    def as_json(self) -> dict[str, Any]:
        where = {"still": self.still, "version": self.version, "copy": self.copy}
        return {**self.bubble.as_json(), **where}


# One writer at a time per process: two phones putting bubbles at once, or a screen asking
# for a copy while a phone changes it, must not lose one another's record.
_LOCK = threading.Lock()


class StillBubbles:
    """The bubbles of one visit's stills, kept through its (encrypting) file layer."""

    def __init__(self, files: FileLayer, visit_id: str) -> None:
        self._files = files
        self._visit_id = visit_id
        self._record = layout.in_cut(visit_id, BUBBLES)

    def placed(self) -> dict[str, Placed]:
        """Every bubble kept, by tag id."""
        if not self._files.exists(self._record):
            return {}
        with self._files.read(self._record) as f:
            raw = f.read()
        try:
            data = json.loads(raw)
            return {
                tag: Placed(tag, Bubble.from_json(v), v["still"], v["version"], v["copy"])
                for tag, v in data["bubbles"].items()
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"the bubbles of {self._visit_id} are damaged: {exc}") from exc

    def put(self, tag_id: str, still: str, bubble: Bubble) -> Placed:
        """Draw ``bubble`` on a copy of ``still`` (the still of ``tag_id``) and keep it."""
        with _LOCK:
            kept = self.placed()
            placed = self._draw(tag_id, still, bubble)
            old = kept.get(tag_id)
            if old is not None and old.copy != placed.copy:
                self._files.remove(old.copy)
            kept[tag_id] = placed
            self._write(kept)
            return placed

    def remove(self, tag_id: str) -> bool:
        """Take the bubble off the still of ``tag_id`` (False if it had none)."""
        with _LOCK:
            kept = self.placed()
            old = kept.pop(tag_id, None)
            if old is None:
                return False
            self._write(kept)
            self._files.remove(old.copy)
            return True

    def copy_for(self, tag_id: str, still: str) -> str | None:
        """The bubbled copy of ``still`` (the still of ``tag_id``), drawn again if the still
        was remade since (a re-cut) or the copy is gone; None if it has no bubble."""
        placed = self.placed().get(tag_id)
        if placed is None:
            return None
        fresh = placed.still == still and placed.version == self.version(still)
        if fresh and self._files.exists(placed.copy):
            return placed.copy
        with _LOCK:
            kept = self.placed()
            current = kept.get(tag_id)
            if current is None:
                return None
            drawn = self._draw(tag_id, still, current.bubble)
            if current.copy != drawn.copy:
                self._files.remove(current.copy)
            kept[tag_id] = drawn
            self._write(kept)
            return drawn.copy

    def prune(self, tag_ids: Iterable[str]) -> list[str]:
        """Drop the bubbles (texts and copies) of tags other than ``tag_ids`` (the stills the
        film has now); returns the tags dropped."""
        keep = set(tag_ids)
        with _LOCK:
            kept = self.placed()
            gone = sorted(set(kept) - keep)
            if not gone:
                return []
            for tag in gone:
                self._files.remove(kept.pop(tag).copy)
            self._write(kept)
            return gone

    def version(self, rel: str) -> str:
        """A version of the file ``rel`` that changes whenever it is written again."""
        with self._files.read(rel) as f:
            salt = getattr(f, "salt", None)
            if isinstance(salt, str) and salt:
                return salt
            stat = os.fstat(f.fileno())
            return f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"

    def _draw(self, tag_id: str, still: str, bubble: Bubble) -> Placed:
        version = self.version(still)
        with self._files.read(still) as f:
            jpeg = f.read()
        copy = copy_of(still)
        with self._files.replace(copy) as out:
            out.write(bubbled_jpeg(jpeg, bubble))
        return Placed(tag_id, bubble, still, version, copy)

    def _write(self, kept: dict[str, Placed]) -> None:
        if not kept:
            self._files.remove(self._record)
            return
        body = {"bubbles": {tag: p.as_json() for tag, p in sorted(kept.items())}}
        with self._files.replace(self._record) as f:
            f.write(json.dumps(body, ensure_ascii=False, indent=1).encode())
