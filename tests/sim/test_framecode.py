import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit.hardware.sim.framecode import FrameCode, draw_code, read_code


@given(number=st.integers(0, 2**32 - 1), t_us=st.integers(0, 2**48 - 1))
def test_codes_read_back(number: int, t_us: int) -> None:
    luma = np.full((360, 640), 48, dtype=np.uint8)
    draw_code(luma, FrameCode(number, t_us))
    assert read_code(luma) == FrameCode(number, t_us)


@pytest.mark.parametrize(("w", "h"), [(320, 240), (1280, 720), (1920, 1080)])
def test_codes_read_back_on_white_frames_at_every_size(w: int, h: int) -> None:
    luma = np.full((h, w), 235, dtype=np.uint8)
    draw_code(luma, FrameCode(42, 123_456_789))
    assert read_code(luma) == FrameCode(42, 123_456_789)


def test_damage_is_detected_not_misread() -> None:
    luma = np.full((360, 640), 48, dtype=np.uint8)
    draw_code(luma, FrameCode(7, 99))
    luma[8:40, 8:60] = 235  # paint over the first blocks
    assert read_code(luma) is None
    assert read_code(np.zeros((360, 640), dtype=np.uint8)) is None
