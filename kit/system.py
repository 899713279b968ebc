"""Facts about the running system (I/O at the edge, kept out of the core)."""

from __future__ import annotations

from pathlib import Path


def boot_id() -> str:
    """This boot's id: kit-clock instants are comparable only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""
