"""The contact sheet's little font: folding, wrapping, drawing."""

from __future__ import annotations

import numpy as np

from kit.cutting import font


def test_fold_keeps_ascii_and_the_star_and_strips_accents() -> None:
    assert font.fold("Être à l'écoute ☆") == "Etre a l'ecoute ★"
    assert font.fold("Guiding\tnote") == "Guiding note"
    assert font.fold("日本") == "??"


def test_wrap_breaks_at_spaces_and_splits_long_words() -> None:
    width = 10 * font.ADVANCE  # ten characters at scale 1
    assert font.wrap("the child pointed at the ball", width, 1) == [
        "the child",
        "pointed at",
        "the ball",
    ]
    assert font.wrap("abcdefghijklmnopqrstuvwxyz", width, 1) == [
        "abcdefghij",
        "klmnopqrst",
        "uvwxyz",
    ]


def test_draw_lights_pixels_inside_the_plane_only() -> None:
    plane = np.zeros((20, 40), dtype=np.uint8)
    font.draw(plane, "HI there", 2, 2, 2, value=200)
    assert set(np.unique(plane)) == {0, 200}
    assert plane[:2].sum() == 0 and plane[:, :2].sum() == 0
    # "H" at scale 2: its left stem is lit for the glyph's full height.
    assert (plane[2:16, 2:4] == 200).all()
    assert font.text_width("abc", 2) == 3 * font.ADVANCE * 2
