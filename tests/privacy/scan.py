"""What a thief with the card could read: a byte scan for plaintext media and keys."""

from __future__ import annotations

import re
from pathlib import Path

# Each signature is long enough that ciphertext (random bytes) matches it with odds
# below 1e-9 per megabyte, so a hit means plaintext.
SIGNATURES: dict[str, re.Pattern[bytes]] = {
    # an MP4's first box: size, "ftyp", then a known major brand
    "MP4 ftyp": re.compile(rb"ftyp(?:isom|iso2|iso4|iso5|iso6|mp41|mp42|avc1|M4V |M4A |qt  )"),
    # an H.264 SPS NAL (start code, nal type 7) with a profile the kit's encoders use
    "H.264 SPS": re.compile(rb"\x00\x00\x01[\x27\x47\x67][\x42\x4d\x58\x64\x6e\x7a]"),
    "RIFF/WAVE": re.compile(rb"RIFF....WAVE", re.DOTALL),
    # a JPEG: start of image, then an APPn marker and its JFIF or Exif identifier
    "JPEG SOI+APP": re.compile(rb"\xff\xd8\xff[\xe0-\xef]..(?:JFIF|Exif|\x00\x10JFIF)", re.DOTALL),
    # the kit's own raw stream files, unencrypted
    "kit stream file": re.compile(rb"KITSTRM1"),
}


def scan(root: Path, secrets: dict[str, bytes]) -> list[str]:
    """Every (file, what) under ``root`` that shows plaintext media or one of ``secrets``."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for what, pattern in SIGNATURES.items():
            if pattern.search(data):
                found.append(f"{path.relative_to(root)}: {what}")
        for what, secret in secrets.items():
            if secret and secret in data:
                found.append(f"{path.relative_to(root)}: {what}")
    return found
