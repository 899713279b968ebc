"""The label: its two QR codes read back (from the PNG and from the PDF drawn by poppler) to
the Wi-Fi credentials and the pairing link, at its printed size, special characters and the
longest values included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import segno
from PIL import Image

from kit.provision import label
from kit.provision.wifi import WifiCredentials, parse_wifi_qr, wifi_qr_text
from tests.provision.tools import decode_qr, pdf_page_png

LINK = "http://10.42.0.1:8080/pair?k=sj0VOggFUHf8puhSrpVutX"


def content(ssid: str = "VIG-Kit-7F3A", passphrase: str = "abcd-efgh-jkmn") -> label.LabelContent:
    return label.LabelContent(
        kit_name=ssid,
        ssid=ssid,
        passphrase=passphrase,
        wifi_qr=wifi_qr_text(WifiCredentials(ssid, passphrase)),
        pairing_link=LINK,
        pairing_code="173403",
        page_url="http://10.42.0.1:8080",
        fingerprint="20b2 f42e 3a8a cb53",
    )


def test_the_label_is_a7_at_300_dpi_in_one_bit(tmp_path: Path) -> None:
    image = label.render(content())
    assert image.mode == "1"
    assert image.size == (1240, 874)  # 105 x 74 mm
    path = tmp_path / "label.png"
    path.write_bytes(label.png_bytes(image))
    with Image.open(path) as png:
        assert png.info["dpi"] == pytest.approx((300, 300), abs=0.01)


@pytest.mark.parametrize(
    ("ssid", "passphrase"),
    [
        ("VIG-Kit-7F3A", "abcd-efgh-jkmn"),
        ("Kit;Room,1:2", 'p;a,s:s\\w"o"rd'),  # every escaped character
        ("K" * 32, "p" * 50 + ',:;\\"()~-+!@#'),  # the longest allowed values
    ],
)
def test_both_codes_read_back_from_the_png(tmp_path: Path, ssid: str, passphrase: str) -> None:
    path = tmp_path / "label.png"
    path.write_bytes(label.png_bytes(label.render(content(ssid, passphrase))))
    read = decode_qr(path)
    assert sorted(read) == sorted([wifi_qr_text(WifiCredentials(ssid, passphrase)), LINK])
    [wifi] = [text for text in read if text.startswith("WIFI:")]
    assert parse_wifi_qr(wifi) == {"T": "WPA", "S": ssid, "P": passphrase}


def test_the_pdf_is_one_a7_page_whose_codes_read_back(tmp_path: Path) -> None:
    image = label.render(content())
    pdf = tmp_path / "label.pdf"
    pdf.write_bytes(label.pdf_bytes(image, "VIG-Kit-7F3A: the kit's label"))
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type /Page\b(?!s)", data)) == 1
    box = re.search(rb"/MediaBox \[\s*0 0 ([0-9.]+) ([0-9.]+)\s*\]", data)
    assert box is not None
    mm = [float(v) / 72 * 25.4 for v in box.groups()]
    assert mm == pytest.approx([105.0, 74.0], abs=0.2)
    assert b"/CCITTFaxDecode" in data  # lossless: the QR modules keep their edges
    page = pdf_page_png(pdf, tmp_path)
    assert sorted(decode_qr(page)) == sorted(
        [wifi_qr_text(WifiCredentials("VIG-Kit-7F3A", "abcd-efgh-jkmn")), LINK]
    )


def test_the_qr_codes_are_whole_pixels_at_most_the_size_asked() -> None:
    image = label.qr_image(LINK, 400)
    assert image.width == image.height <= 400
    code = segno.make(LINK, error="m", micro=False, encoding="utf-8", boost_error=False)
    modules, _ = code.symbol_size(scale=1, border=label.QR_BORDER)  # with the quiet zone
    assert image.width % modules == 0
    assert image.width // modules == 400 // modules  # as big as whole pixels allow


def test_rendering_is_deterministic() -> None:
    first = label.png_bytes(label.render(content()))
    assert label.png_bytes(label.render(content())) == first
    assert label.png_bytes(label.render(content(passphrase="abcd-efgh-jkmp"))) != first
