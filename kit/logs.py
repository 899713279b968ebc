"""Log lines for a person at a terminal, or for journald when systemd runs the kit.

Under systemd (``JOURNAL_STREAM`` names the very stream stderr is), each
line starts with its syslog priority, ``<3>`` for an error, ``<4>`` a
warning, ``<6>`` info, ``<7>`` debug (sd-daemon(3)): journald files it at
that priority, so ``journalctl -u kit -p warning`` shows what went wrong,
and the timestamp is left to the journal.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

# Python's levels to syslog priorities (sd-daemon(3): SD_ERR, SD_WARNING, ...).
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def syslog_priority(level: int) -> int:
    """The syslog priority of a Python log level (levels between round down in severity)."""
    for python_level in sorted(_PRIORITY, reverse=True):
        if level >= python_level:
            return _PRIORITY[python_level]
    return 7


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``, each line of a multi-line record prefixed."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def under_journald(stream: TextIO) -> bool:
    """Whether ``stream`` is connected to journald (``JOURNAL_STREAM`` is ``device:inode``)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return bool(value) and (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):
        return False


def setup_logging(verbose: bool = False, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if under_journald(stream):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
