"""A tiny 5x7 bitmap font for captions on the contact sheet (no imaging library needed).

It covers printable ASCII plus a star for the "better than usual ★" tag.
Other letters are folded to their unaccented form (é -> e) and anything
still outside the font prints as "?": good enough for a caption, while the
CSV, WebVTT and OTIO exports keep every character as typed.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import numpy.typing as npt

GLYPH_W = 5
GLYPH_H = 7
ADVANCE = GLYPH_W + 1
LINE = GLYPH_H + 3

# Each glyph: seven rows of five bits, most significant bit leftmost, as hex pairs.
_HEX = {
    " ": "00000000000000",
    "!": "04040404000004",
    '"': "0A0A0A00000000",
    "#": "0A0A1F0A1F0A0A",
    "$": "040F140E051E04",
    "%": "18190204081303",
    "&": "0C12140815120D",
    "'": "0C040800000000",
    "(": "02040808080402",
    ")": "08040202020408",
    "*": "0004150E150400",
    "+": "0004041F040400",
    ",": "000000000C0408",
    "-": "0000001F000000",
    ".": "00000000000C0C",
    "/": "00010204081000",
    "0": "0E11131519110E",
    "1": "040C040404040E",
    "2": "0E11010204081F",
    "3": "1F02040201110E",
    "4": "02060A121F0202",
    "5": "1F101E0101110E",
    "6": "0608101E11110E",
    "7": "1F010204080808",
    "8": "0E11110E11110E",
    "9": "0E11110F01020C",
    ":": "000C0C000C0C00",
    ";": "000C0C000C0408",
    "<": "02040810080402",
    "=": "00001F001F0000",
    ">": "08040201020408",
    "?": "0E110102040004",
    "@": "0E11010D15150E",
    "A": "0E1111111F1111",
    "B": "1E11111E11111E",
    "C": "0E11101010110E",
    "D": "1C12111111121C",
    "E": "1F10101E10101F",
    "F": "1F10101E101010",
    "G": "0E11101711110F",
    "H": "1111111F111111",
    "I": "0E04040404040E",
    "J": "0702020202120C",
    "K": "11121418141211",
    "L": "1010101010101F",
    "M": "111B1515111111",
    "N": "11111915131111",
    "O": "0E11111111110E",
    "P": "1E11111E101010",
    "Q": "0E11111115120D",
    "R": "1E11111E141211",
    "S": "0F10100E01011E",
    "T": "1F040404040404",
    "U": "1111111111110E",
    "V": "11111111110A04",
    "W": "1111111515150A",
    "X": "11110A040A1111",
    "Y": "1111110A040404",
    "Z": "1F01020408101F",
    "[": "0E08080808080E",
    "\\": "00100804020100",
    "]": "0E02020202020E",
    "^": "040A1100000000",
    "_": "0000000000001F",
    "`": "08040200000000",
    "a": "00000E010F110F",
    "b": "1010161911111E",
    "c": "00000E1010110E",
    "d": "01010D1311110F",
    "e": "00000E111F100E",
    "f": "0609081C080808",
    "g": "00000F110F010E",
    "h": "10101619111111",
    "i": "04000C0404040E",
    "j": "0200060202120C",
    "k": "10101214181412",
    "l": "0C04040404040E",
    "m": "00001A15151111",
    "n": "00001619111111",
    "o": "00000E1111110E",
    "p": "00001E111E1010",
    "q": "00000F110F0101",
    "r": "00001619101010",
    "s": "00000E100E011E",
    "t": "08081C08080906",
    "u": "0000111111130D",
    "v": "00001111110A04",
    "w": "0000111115150A",
    "x": "0000110A040A11",
    "y": "000011110F010E",
    "z": "00001F0204081F",
    "{": "02040408040402",
    "|": "04040404040404",
    "}": "08040402040408",
    "~": "00000815020000",
    "★": "0004041F0E0A11",
}


def _glyph(code: str) -> npt.NDArray[np.bool_]:
    rows = [int(code[i : i + 2], 16) for i in range(0, 2 * GLYPH_H, 2)]
    return np.array(
        [[(row >> (GLYPH_W - 1 - x)) & 1 for x in range(GLYPH_W)] for row in rows], dtype=bool
    )


_GLYPHS = {ch: _glyph(code) for ch, code in _HEX.items()}
_STARS = "☆✩✪✫✬✭✮✯✰⭐⭑"


def fold(text: str) -> str:
    """``text`` reduced to characters the font has."""
    out = []
    for ch in text:
        if ch in _GLYPHS:
            out.append(ch)
        elif ch in _STARS:
            out.append("★")
        elif ch in "\t\n\r":
            out.append(" ")
        else:
            base = "".join(
                c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
            )
            out.append(base if base and all(c in _GLYPHS for c in base) else "?")
    return "".join(out)


def text_width(text: str, scale: int) -> int:
    """Pixels ``text`` takes on one line at ``scale``."""
    return len(fold(text)) * ADVANCE * scale


def wrap(text: str, width: int, scale: int) -> list[str]:
    """``text`` broken into lines of at most ``width`` pixels, at spaces where it can be."""
    per_line = max(1, width // (ADVANCE * scale))
    lines: list[str] = []
    for paragraph in fold(text).split("\n"):
        line = ""
        for whole in paragraph.split(" "):
            word = whole
            while len(word) > per_line:
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:per_line])
                word = word[per_line:]
            candidate = f"{line} {word}" if line else word
            if len(candidate) <= per_line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def draw(
    plane: npt.NDArray[np.uint8], text: str, x: int, y: int, scale: int, value: int = 235
) -> None:
    """Draw ``text`` into a luma ``plane`` (in place) at (x, y), clipped to the plane."""
    height, width = plane.shape
    for i, ch in enumerate(fold(text)):
        glyph = _GLYPHS[ch]
        big = np.kron(glyph, np.ones((scale, scale), dtype=bool)) if scale > 1 else glyph
        gx, gy = x + i * ADVANCE * scale, y
        h, w = min(big.shape[0], height - gy), min(big.shape[1], width - gx)
        if w <= 0:
            break
        if h <= 0 or gx < 0 or gy < 0:
            continue
        region = plane[gy : gy + h, gx : gx + w]
        region[big[:h, :w]] = value
