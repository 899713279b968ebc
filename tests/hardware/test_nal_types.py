"""Keyframes are recognised by NAL type, whatever ``nal_ref_idc`` an encoder writes.

An SPS is NAL type 7: libx264 (the Pi 5, the simulated camera) writes its
header byte as 0x67 (nal_ref_idc 3), the Pi 4's hardware encoder as 0x27
(nal_ref_idc 1). Checking the whole byte failed every Pi 4 recording.
"""

from __future__ import annotations

import pytest

from kit.hardware.camera import NAL_IDR, NAL_PPS, NAL_SPS, nal_types, starts_with_sps

SC4, SC3 = b"\x00\x00\x00\x01", b"\x00\x00\x01"


def access_unit(sps: int, pps: int, idr: int, start: bytes = SC4) -> bytes:
    return (
        start
        + bytes([sps, 0x64, 0x00, 0x1F])  # profile high, level 3.1
        + start
        + bytes([pps, 0xEE, 0x3C, 0x80])
        + start
        + bytes([idr, 0x88, 0x84])
    )


@pytest.mark.parametrize(
    ("header_bytes", "start"),
    [
        ((0x27, 0x28, 0x25), SC4),  # the Pi 4's V4L2 encoder
        ((0x67, 0x68, 0x65), SC4),  # libx264
        ((0x67, 0x68, 0x65), SC3),  # three-byte start codes
        ((0x47, 0x48, 0x45), SC4),  # nal_ref_idc 2
    ],
)
def test_sps_pps_idr_by_type(header_bytes: tuple[int, int, int], start: bytes) -> None:
    data = access_unit(*header_bytes, start=start)
    assert nal_types(data) == [NAL_SPS, NAL_PPS, NAL_IDR]
    assert starts_with_sps(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x67\x64\x00\x1f",  # no start code
        SC4 + b"\x41\x9a",  # a P slice
        SC4 + b"\x09\xf0" + SC4 + b"\x41\x9a",  # a delimiter, then a P slice
        SC4,  # a start code and nothing after it
    ],
)
def test_what_does_not_start_with_an_sps(data: bytes) -> None:
    assert not starts_with_sps(data)


def test_an_access_unit_delimiter_may_come_first() -> None:
    assert starts_with_sps(SC4 + b"\x09\xf0" + access_unit(0x27, 0x28, 0x25))


def test_a_trailing_start_code_is_not_a_nal() -> None:
    assert nal_types(SC4 + b"\x27\x64" + SC4) == [NAL_SPS]
