"""A small real filesystem for tests of a full card or a full USB stick: a tmpfs of a
given size, mounted (as root) on an empty folder for the length of a ``with``."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """``mount`` (made if missing) as a tmpfs of ``size`` (``64m``, ``256k``).

    Skips the test off root; fails it in CI, which runs as root, so the test
    cannot silently stop running there.
    """
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if os.environ.get("CI"):
            pytest.fail("this test needs root to mount a small tmpfs, and CI runs as root")
        pytest.skip("needs root to mount a small tmpfs")
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
