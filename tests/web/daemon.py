"""The real daemon (``kit run --simulate``) as a subprocess on a free port with a temp data dir."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY = re.compile(r"kit ready: http://[^:]+:(\d+)/")
CODE = re.compile(r"type the code (\d{6})")


@dataclass
class Daemon:
    """A running ``kit run --simulate``: its URL, pairing code, data dir and log so far."""

    url: str
    code: str
    data: Path
    log: list[str] = field(default_factory=list)

    def stored_tags(self) -> list[dict[str, Any]]:
        """The live (not deleted) tags in the daemon's database, read-only."""
        uri = f"file:{self.data / 'kit.db'}?mode=ro"
        with sqlite3.connect(uri, uri=True) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM tags WHERE deleted = 0 ORDER BY at_ns").fetchall()
        return [dict(r) for r in rows]


@contextmanager
def kit_run(data: Path, *extra: str, timeout_s: float = 60.0) -> Iterator[Daemon]:
    """Start the daemon and wait until it serves; SIGTERM (and wait) afterwards."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    argv = [sys.executable, "-m", "kit", "run", "--simulate", "--data", str(data), "--port", "0"]
    proc = subprocess.Popen(
        [*argv, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if READY.search(line):
                ready.set()

    reader = threading.Thread(target=read, name="kit-run-log", daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kit run did not become ready:\n" + "\n".join(lines))
        text = "\n".join(lines)
        port = READY.search(text)
        code = CODE.search(text)
        assert port is not None and code is not None, text
        yield Daemon(f"http://127.0.0.1:{port.group(1)}", code.group(1), data, lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()
