"""What the simulated camera films: a dark, textured, moving scene, a white frame on
every sync pulse, and each frame's own code (see :mod:`framecode`).

A real camera's encoder spends its whole bitrate on a room's detail and the
sensor's noise; a flat synthetic picture compresses to a tenth of it, which
made every byte a benchmark wrote 8-10x too light. So the scene carries what
makes an encoder work, and no more:

* a soft texture (the room) that pans slowly back and forth: motion an
  encoder predicts, so it costs few bits, as a steady shot does;
* in the middle third of the picture (the family), grain that changes every
  frame: detail no encoder can predict, so x264's rate control has to raise
  its quantiser until the stream reaches the configured bitrate, as the Pi's
  encoder does. Grain over the whole picture reached it too, but cost x264
  almost twice as much: every macroblock had to be coded, where now eight in
  nine are a cheap prediction. Measured at 720p, 4 Mbit/s, ultrafast, x264's
  time a frame: 5.0 ms with grain everywhere, 3.2 ms in the middle half, 2.7
  ms in the middle third (2.8 ms for the flat picture before); in the middle
  third it still reaches 25 Mbit/s;
* a brighter bar sweeping across every two seconds.

Everything stays dark (mean luma about 60), so a white pulse frame is never
mistaken, and the code is drawn last, on its own black band, so it reads back
after compression. Everything random is made once, from a fixed seed: a frame
is a copy, an XOR, two additions and the code (about 1 ms at 720p).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kit.hardware.sim.framecode import WHITE, FrameCode, draw_code

_BACKGROUND = 40
_TEXTURE = 24  # the texture spans _BACKGROUND .. _BACKGROUND + _TEXTURE
_TEXTURE_CELL = 24  # pixels between the texture's random control points
# Grain spans 0 .. _GRAIN - 1 (a power of two: it is varied by XOR), enough for
# 25 Mbit/s at 720p; texture, grain and bar stay below 255. More grain only
# raises the quantiser in the middle: the frame code, drawn on its own band,
# reads back whatever it is.
_GRAIN = 128
_BAR_LIFT = 60
_PAN = 48  # pixels the texture pans, back and forth, each way
_SEED = 20_240_613


def _soft_texture(height: int, width: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Random control points every _TEXTURE_CELL pixels, bilinearly interpolated."""
    rows = height // _TEXTURE_CELL + 2
    cols = width // _TEXTURE_CELL + 2
    points = rng.uniform(0, _TEXTURE, size=(rows, cols))
    ys = np.arange(height) / _TEXTURE_CELL
    xs = np.arange(width) / _TEXTURE_CELL
    y0, x0 = ys.astype(np.intp), xs.astype(np.intp)
    fy, fx = (ys - y0)[:, None], xs - x0
    across = points[:, x0] * (1 - fx) + points[:, x0 + 1] * fx
    soft = across[y0] * (1 - fy) + across[y0 + 1] * fy
    return (soft + _BACKGROUND).astype(np.uint8)


def _triangle(n: int, span: int) -> int:
    """0, 1, ..., span, span - 1, ..., 1, 0, 1, ...: a pan that never jumps."""
    phase = n % (2 * span)
    return phase if phase <= span else 2 * span - phase


def grain_key(n: int) -> int:
    """The XOR key of frame ``n``'s grain. Consecutive keys differ in the top bit, so
    every pixel's grain moves by about half its range from one frame to the next:
    an encoder never finds a frame's grain in the frame before it."""
    return (n * 5) % (_GRAIN // 2) | (_GRAIN // 2) * (n % 2)


class Scene:
    """Draws frame ``n`` of a ``width`` x ``height`` picture, ``fps`` frames a second."""

    def __init__(self, width: int, height: int, fps: int) -> None:
        self._width, self._height, self._fps = width, height, fps
        rng = np.random.default_rng(_SEED)
        self._texture = _soft_texture(height + _PAN, width + _PAN, rng)
        self._middle = np.s_[
            height // 4 : height // 4 + height // 2, width // 4 : width // 4 + width // 2
        ]
        self._grain = rng.integers(0, _GRAIN, size=(height // 2, width // 2), dtype=np.uint8)
        self._keyed = np.empty_like(self._grain)

    def draw(self, luma: npt.NDArray[np.uint8], n: int, code: FrameCode, *, white: bool) -> None:
        """Draw frame ``n`` into ``luma`` (height x width, in place), white if a pulse frame."""
        w, h = self._width, self._height
        if white:
            luma.fill(WHITE)
        else:
            ox, oy = _triangle(n // 2, _PAN), _triangle(n // 3, _PAN)
            np.copyto(luma, self._texture[oy : oy + h, ox : ox + w])
            np.bitwise_xor(self._grain, np.uint8(grain_key(n)), out=self._keyed)
            luma[self._middle] += self._keyed
            bar = max(8, w // 16)
            x = (n * (w - bar)) // (2 * self._fps) % (w - bar)
            luma[h // 3 :, x : x + bar] += _BAR_LIFT
        draw_code(luma, code)
