"""Draw, and read back, a frame's identity: its number and capture instant.

Each simulated frame carries two rows of black/white blocks at its top left:
the frame number (32 bits) and the capture instant in microseconds (48 bits),
each followed by an 8-bit checksum, plus the same in digits for people. The
blocks are up to 16x16 luma pixels (smaller on narrow frames), which survive
H.264 at any sane bitrate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MARGIN = 8
_FRAME_BITS = 32
_TIME_BITS = 48
_CHECK_BITS = 8
BLACK = 16
WHITE = 235

# A 3x5 digit font, one string per row, "#" lit.
_FONT = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", "..#", "..#", "..#"),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    ".": ("...", "...", "...", "...", ".#."),
    " ": ("...", "...", "...", "...", "..."),
}
_GLYPHS = {
    ch: np.array([[c == "#" for c in row] for row in rows], dtype=bool)
    for ch, rows in _FONT.items()
}


@dataclass(frozen=True)
class FrameCode:
    """What a frame says about itself."""

    number: int
    t_us: int


def _checksum(value: int, bits: int) -> int:
    total = 0
    for shift in range(0, bits, 8):
        total = (total * 31 + ((value >> shift) & 0xFF)) & 0xFF
    return total ^ 0xA5


def _bits(value: int, bits: int) -> list[int]:
    return [(value >> (bits - 1 - i)) & 1 for i in range(bits)]


def block_size(width: int) -> int:
    """The side of one code block on a frame ``width`` pixels wide."""
    return max(4, min(16, (width - 2 * MARGIN) // (_TIME_BITS + _CHECK_BITS)))


def _row_y(row: int, block: int) -> int:
    return MARGIN + row * (block + 4)


def draw_code(luma: npt.NDArray[np.uint8], code: FrameCode) -> None:
    """Draw ``code`` into the luma plane (in place)."""
    rows = (
        _bits(code.number, _FRAME_BITS) + _bits(_checksum(code.number, _FRAME_BITS), _CHECK_BITS),
        _bits(code.t_us, _TIME_BITS) + _bits(_checksum(code.t_us, _TIME_BITS), _CHECK_BITS),
    )
    block = block_size(luma.shape[1])
    for r, bits in enumerate(rows):
        y = _row_y(r, block)
        # A black band behind the blocks so white frames do not merge with them.
        luma[y - 2 : y + block + 2, MARGIN - 2 : MARGIN + len(bits) * block + 2] = BLACK
        for i, bit in enumerate(bits):
            if bit:
                x = MARGIN + i * block
                luma[y : y + block, x : x + block] = WHITE
    text = f"{code.number:07d}  {code.t_us / 1e6:.6f}"
    draw_text(luma, text, x=MARGIN, y=_row_y(2, block) + 4, scale=max(1, block // 4))


def draw_text(luma: npt.NDArray[np.uint8], text: str, x: int, y: int, scale: int) -> None:
    """Draw digits (and '.', ' ') with a black box behind them, clipped to the plane."""
    height, width = luma.shape
    glyph_w, glyph_h = 4 * scale, 5 * scale
    box_w = min(width - x, len(text) * glyph_w + scale)
    box_h = min(height - y, glyph_h + 2 * scale)
    if box_w <= 0 or box_h <= 0:
        return
    luma[y : y + box_h, x : x + box_w] = BLACK
    for i, ch in enumerate(text):
        glyph = _GLYPHS.get(ch)
        if glyph is None:
            continue
        big = np.kron(glyph, np.ones((scale, scale), dtype=bool))
        gx, gy = x + scale + i * glyph_w, y + scale
        h = min(big.shape[0], height - gy)
        w = min(big.shape[1], width - gx)
        if h <= 0 or w <= 0:
            break
        region = luma[gy : gy + h, gx : gx + w]
        region[big[:h, :w]] = WHITE


def _read_row(luma: npt.NDArray[np.uint8], row: int, bits: int) -> int | None:
    block = block_size(luma.shape[1])
    y = _row_y(row, block) + block // 2
    xs = MARGIN + np.arange(bits + _CHECK_BITS) * block + block // 2
    if y >= luma.shape[0] or xs[-1] >= luma.shape[1]:
        return None
    # Average the block's middle half to ride over compression noise.
    r = max(1, block // 4)
    values = [int(luma[y - r : y + r, x - r : x + r].mean() > (BLACK + WHITE) / 2) for x in xs]
    value = 0
    for bit in values[:bits]:
        value = (value << 1) | bit
    check = 0
    for bit in values[bits:]:
        check = (check << 1) | bit
    return value if check == _checksum(value, bits) else None


def read_code(luma: npt.NDArray[np.uint8]) -> FrameCode | None:
    """Read the code drawn by :func:`draw_code`, or None if it is damaged or absent."""
    number = _read_row(luma, 0, _FRAME_BITS)
    t_us = _read_row(luma, 1, _TIME_BITS)
    if number is None or t_us is None:
        return None
    return FrameCode(number=number, t_us=t_us)
