"""The contact sheet's lettering: DejaVu Sans through Pillow, with fallbacks for other scripts.

DejaVu Sans (Debian's ``fonts-dejavu-core``, installed by ``./quickstart`` and
in the kit's image) covers Latin, Greek, Cyrillic, Armenian, Georgian, Hebrew,
Arabic and many symbols, so labels print as typed: "Guiding", "Être attentif",
"Руководство". It has no CJK glyphs: a character it lacks is drawn with the
first fallback font found that has it (Noto Sans CJK, Droid Sans Fallback,
WenQuanYi; none of them is installed by default), else as DejaVu's empty box.
Without DejaVu, Pillow's own small font stands in, with one warning in the log.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from PIL.ImageFont import FreeTypeFont
    from PIL.ImageFont import ImageFont as BitmapFont

    Font = FreeTypeFont | BitmapFont

log = logging.getLogger(__name__)

_DEJAVU_DIRS = (
    "/usr/share/fonts/truetype/dejavu",  # Debian, Raspberry Pi OS, Ubuntu (fonts-dejavu-core)
    "/usr/share/fonts/dejavu-sans-fonts",  # Fedora
    "/usr/share/fonts/dejavu",  # older Fedora, openSUSE
    "/usr/share/fonts/TTF",  # Arch (ttf-dejavu)
    "/usr/local/share/fonts/dejavu",  # FreeBSD (dejavu package)
    "/opt/homebrew/share/fonts",  # macOS, Homebrew on Apple silicon
    "/usr/local/share/fonts",
    "/Library/Fonts",  # macOS, installed by hand
)
REGULAR = "DejaVuSans.ttf"
BOLD = "DejaVuSans-Bold.ttf"

# Fonts for what DejaVu lacks (CJK above all), first found first used.
FALLBACKS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch noto-fonts-cjk
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",  # Debian fonts-droid-fallback
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # Debian fonts-wqy-microhei
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",  # Debian fonts-wqy-zenhei
)

# A code point no font here has a glyph for: what "missing" looks like in each font.
_NO_GLYPH = "\U0010fffd"


def find_font(name: str, dirs: Sequence[str] = _DEJAVU_DIRS) -> Path | None:
    """The first ``dirs/name`` that exists, or None."""
    for directory in dirs:
        path = Path(directory) / name
        if path.is_file():
            return path
    return None


@functools.cache
def _fallback_paths() -> tuple[Path, ...]:
    return tuple(Path(p) for p in FALLBACKS if Path(p).is_file())


@functools.cache
def _missing_dejavu_warned() -> None:
    log.warning(
        "DejaVu Sans is not installed (Debian: apt install fonts-dejavu-core): the contact "
        "sheet falls back to Pillow's own font, which lacks most non-Latin letters"
    )


@functools.cache
def face(size: int, *, bold: bool = False, dirs: tuple[str, ...] = _DEJAVU_DIRS) -> Face:
    """The lettering at ``size`` pixels: DejaVu Sans (bold or regular, looked for in
    ``dirs``) and the fallbacks."""
    path = find_font(BOLD if bold else REGULAR, dirs) or find_font(REGULAR, dirs)
    primary: Font
    if path is None:
        _missing_dejavu_warned()
        primary = ImageFont.load_default(size)
    else:
        primary = ImageFont.truetype(str(path), size)
    fallbacks = tuple(ImageFont.truetype(str(p), size) for p in _fallback_paths())
    return Face((primary, *fallbacks), size)


def _glyph_picture(font: Font, text: str) -> bytes:
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    width, height = max(1, right - left), max(1, bottom - top)
    picture = Image.new("L", (width, height))
    ImageDraw.Draw(picture).text((-left, -top), text, font=font, fill=255)
    return f"{width}x{height}".encode() + picture.tobytes()


@functools.cache
def _covers(font: Font, char: str) -> bool:
    """Whether ``font`` has a glyph for ``char`` (its drawing differs from a missing one's)."""
    if char.isspace() or unicodedata.category(char) in ("Mn", "Me", "Cf", "Cc"):
        return True  # nothing to draw of its own: it stays with its neighbours
    if not isinstance(font, ImageFont.FreeTypeFont):
        return char.isascii()
    return _glyph_picture(font, char) != _glyph_picture(font, _NO_GLYPH)


@dataclass(frozen=True, eq=False)
class Face:
    """A font at one size with fallbacks: text is drawn in runs, each in the first font
    (in order) that has its characters."""

    fonts: tuple[Font, ...]
    size: int

    @property
    def line_height(self) -> int:
        """Baseline to baseline: the size and a quarter."""
        return round(self.size * 1.25)

    def runs(self, text: str) -> list[tuple[Font, str]]:
        """``text`` split into runs of one font each."""
        runs: list[tuple[Font, str]] = []
        for char in text:
            font = next((f for f in self.fonts if _covers(f, char)), self.fonts[0])
            if runs and (runs[-1][0] is font or (char.isspace() and _covers(runs[-1][0], char))):
                runs[-1] = (runs[-1][0], runs[-1][1] + char)
            else:
                runs.append((font, char))
        return runs

    def width(self, text: str) -> float:
        """How wide ``text`` is drawn, in pixels."""
        return sum(font.getlength(run) for font, run in self.runs(text))

    def draw(
        self,
        canvas: ImageDraw.ImageDraw,
        xy: tuple[float, float],
        text: str,
        fill: tuple[int, int, int],
    ) -> None:
        """Draw one line of ``text`` with its top left at ``xy``."""
        x, y = xy
        for font, run in self.runs(text):
            canvas.text((x, y), run, font=font, fill=fill)
            x += font.getlength(run)

    def fit(self, text: str, width: float) -> str:
        """``text`` on one line (spaces collapsed), cut with an ellipsis to fit ``width``."""
        line = " ".join(text.split())
        if self.width(line) <= width:
            return line
        while line and self.width(line + "…") > width:
            line = line[:-1]
        return line.rstrip() + "…"
