"""The label on the kit's case: join its Wi-Fi, open its page, check its signature.

One A7 card (105 x 74 mm, landscape) at 300 dpi, black on white: the kit's
name; two QR codes, "1 Join the Wi-Fi" (:func:`kit.provision.wifi.wifi_qr_text`)
and "2 Open the kit's page" (the pairing link, as the phone page's pairing
takes it: ``http://10.42.0.1:8080/pair?k=<key>``); the network name, the
passphrase, the page's address and the 6-digit code in words, for a phone
whose camera reads no QR codes; and the kit's signing-key fingerprint, which
the organisation checks bundles against.

It is drawn in one bit per pixel (QR modules on whole pixels, text
thresholded, not dithered), so the PNG is small and the PDF holds it
losslessly (CCITT G4): a printer gets sharp edges either way.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import segno
from PIL import Image, ImageDraw, ImageFont

from kit.cutting.font import Face, face, find_font

DPI = 300
MM = DPI / 25.4
SIZE_MM = (105.0, 74.0)  # A7, landscape: fits a pocket, prints on any printer
SIZE = (round(SIZE_MM[0] * MM), round(SIZE_MM[1] * MM))
MARGIN = round(4 * MM)
QR_MM = 34.0  # wide enough for a phone held at arm's length, two side by side on A7
QR_BORDER = 4  # the quiet zone the QR standard asks for, in modules
MONO = "DejaVuSansMono.ttf"  # fonts-dejavu-core: 0 and O, 1 and l look different

BLACK = (0, 0, 0)


@dataclass(frozen=True)
class LabelContent:
    """Everything a label shows."""

    kit_name: str
    ssid: str
    passphrase: str
    wifi_qr: str  # the Wi-Fi QR code's text (kit.provision.wifi.wifi_qr_text)
    pairing_link: str  # http://10.42.0.1:8080/pair?k=<key>
    pairing_code: str  # 6 digits
    page_url: str  # http://10.42.0.1:8080, the page without the key
    fingerprint: str  # the signing key's, "ab12 cd34 ef56 7890"


def qr_image(text: str, width_px: int) -> Image.Image:
    """``text`` as a QR code (error correction M, UTF-8), at most ``width_px`` wide with
    its quiet zone, each module a whole number of pixels."""
    code = segno.make(text, error="m", micro=False, encoding="utf-8", boost_error=False)
    modules = code.symbol_size(scale=1, border=QR_BORDER)[0]
    scale = max(1, width_px // modules)
    out = io.BytesIO()
    code.save(out, kind="png", scale=scale, border=QR_BORDER, dark="black", light="white")
    out.seek(0)
    with Image.open(out) as image:
        return image.convert("RGB")


@functools.cache
def _mono(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = find_font(MONO)
    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(path), size)


def _fit_mono(text: str, width: int, largest: int, smallest: int = 14) -> int:
    """The largest monospaced size at which ``text`` fits ``width``."""
    size = largest
    while size > smallest and _mono(size).getlength(text) > width:
        size -= 1
    return size


def _fit_face(text: str, width: int, largest: int, *, bold: bool) -> Face:
    size = largest
    while size > 14 and face(size, bold=bold).width(text) > width:
        size -= 2
    return face(size, bold=bold)


def render(content: LabelContent) -> Image.Image:
    """The label as a one-bit image, :data:`SIZE` pixels at :data:`DPI`."""
    width, height = SIZE
    canvas = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(canvas)
    inner = width - 2 * MARGIN
    y = MARGIN

    title = _fit_face(content.kit_name, inner, 64, bold=True)
    title.draw(draw, (MARGIN, y), title.fit(content.kit_name, inner), BLACK)
    y += title.line_height + round(1.5 * MM)

    column = (inner - MARGIN) // 2
    caption = face(34, bold=True)
    qr_px = round(QR_MM * MM)
    steps = (
        ("1  Join the Wi-Fi", content.wifi_qr),
        ("2  Open the kit's page", content.pairing_link),
    )
    for i, (words, text) in enumerate(steps):
        left = MARGIN + i * (column + MARGIN)
        caption.draw(draw, (left + (column - caption.width(words)) / 2, y), words, BLACK)
        code = qr_image(text, qr_px)
        canvas.paste(code, (left + (column - code.width) // 2, y + caption.line_height))
    y += caption.line_height + qr_px + round(1 * MM)

    rows = (
        ("Wi-Fi   ", content.ssid),
        ("Password", content.passphrase),
        ("Page    ", f"{content.page_url}  code {_spaced(content.pairing_code)}"),
    )
    lines = [f"{name}  {value}" for name, value in rows]
    size = _fit_mono(max(lines, key=len), inner, 40)
    font = _mono(size)
    for text in lines:
        draw.text((MARGIN, y), text, font=font, fill=BLACK)
        y += round(size * 1.3)

    small = face(24)
    footer = f"Signing key fingerprint  {content.fingerprint}"
    small.draw(draw, (MARGIN, height - MARGIN - small.size), small.fit(footer, inner), BLACK)
    # Thresholded, not dithered: text stays sharp at one bit per pixel.
    return canvas.convert("L").point([0 if v < 128 else 255 for v in range(256)], "1")


def _spaced(code: str) -> str:
    """A 6-digit code as two groups of three, easier to read out and type."""
    return f"{code[:3]} {code[3:]}" if len(code) == 6 else code


def png_bytes(image: Image.Image) -> bytes:
    """The label as PNG, with its resolution (so it prints at its size)."""
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(DPI, DPI), optimize=True)
    return out.getvalue()


def pdf_bytes(image: Image.Image, title: str) -> bytes:
    """The label as a one-page PDF of :data:`SIZE_MM`."""
    out = io.BytesIO()
    image.save(out, "PDF", resolution=DPI, title=title, creator="VIG filming kit")
    return out.getvalue()
