"""Debian tools the provisioning tests drive: zbarimg reads QR codes back from the label,
pdftoppm draws the label's PDF, dnsmasq answers DNS as the kit's hotspot does.

Each is skipped where it is not installed, except on CI (``CI`` set), where its
absence is a failure: ``./quickstart test`` installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def need_tool(tool: str, package: str) -> str:
    """The path of ``tool`` (from Debian's ``package``); skips, or fails on CI, without it."""
    for found in (shutil.which(tool), shutil.which(tool, path="/usr/sbin:/sbin")):
        if found:
            return found
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI must run this test, but {tool} is missing (apt install {package})")
    pytest.skip(f"{tool} is not installed (apt install {package}; ./quickstart test does)")


def decode_qr(image: Path) -> list[str]:
    """The text of every QR code in ``image``, as zbarimg reads it (in no set order)."""
    zbarimg = need_tool("zbarimg", "zbar-tools")
    done = subprocess.run(
        [zbarimg, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode("utf-8").splitlines()


def pdf_page_png(pdf: Path, out_dir: Path, dpi: int = 300) -> Path:
    """The PDF's first page drawn as a PNG (poppler's pdftoppm)."""
    pdftoppm = need_tool("pdftoppm", "poppler-utils")
    stem = out_dir / "page"
    subprocess.run(
        [
            pdftoppm,
            "-r",
            str(dpi),
            "-png",
            "-singlefile",
            "-f",
            "1",
            "-l",
            "1",
            str(pdf),
            str(stem),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return stem.with_suffix(".png")
