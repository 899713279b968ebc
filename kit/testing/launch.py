"""The kit for benchmarks and tests: ``kit run --simulate`` as a child process, or a Flask
app under waitress in a thread.

:func:`kit_run_simulated` starts the daemon on a free port with its own data
directory, waits until it prints that it is ready, and reads the pairing code
from its log; on exit it sends SIGTERM (the daemon finalises any take) and
waits. :class:`KitProcess` is the process itself, for tests that kill it.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.crypto.fields import is_sealed_text, open_text
from kit.crypto.keyring import Keyring
from kit.store import layout
from kit.testing.privacy import key_dir_for, org_key

READY = re.compile(r"kit ready: http://[^:]+:(\d+)/")
CODE = re.compile(r"type the code (\d{6})")


class KitProcess:
    """``kit run --simulate`` as a child process, its log (stderr) collected line by line."""

    def __init__(self, data: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        environ = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Not under systemd unless the caller says so: a runner's NOTIFY_SOCKET is not ours.
        environ.pop("NOTIFY_SOCKET", None)
        environ.pop("WATCHDOG_USEC", None)
        # The test organisation's key, and a RAM key dir that outlives this process (as
        # /run/kit/keys outlives a restart of the unit), unless the caller says otherwise.
        environ.setdefault("KIT_PRIVACY_RECIPIENTS", org_key().public)
        environ.setdefault("KIT_PRIVACY_KEY_DIR", str(key_dir_for(data)))
        environ.update(env or {})
        argv = [sys.executable, "-m", "kit", "run", "--simulate", "--data", str(data)]
        if "--port" not in extra:
            argv += ["--port", "0"]
        self.data = data
        self.log: list[str] = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [*argv, *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
        )
        self._reader = threading.Thread(target=self._read, name="kit-run-log", daemon=True)
        self._reader.start()

    def __enter__(self) -> KitProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))
            if READY.search(line):
                self._ready.set()

    @property
    def text(self) -> str:
        return "\n".join(self.log)

    def wait_ready(self, timeout_s: float = 60.0) -> RunningKit:
        """Wait until the kit serves; its URL and pairing code (RuntimeError if it died)."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kit run did not become ready:\n" + self.text)
        port, code = READY.search(self.text), CODE.search(self.text)
        if port is None or code is None:
            raise RuntimeError("kit run did not print its port and pairing code:\n" + self.text)
        return RunningKit(f"http://127.0.0.1:{port.group(1)}", code.group(1), self.data, self)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        """kill -9: no clean-up of any kind, like a crash."""
        self.proc.kill()
        self.proc.wait()
        self.close()

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (the kit finalises any take), wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.close()
        return self.proc.returncode

    def close(self) -> None:
        self._reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@dataclass
class RunningKit:
    """A running ``kit run --simulate``: its URL, pairing code, data dir and process."""

    url: str
    code: str
    data: Path
    process: KitProcess

    @property
    def log(self) -> list[str]:
        return self.process.log

    def stored_tags(self) -> list[dict[str, Any]]:
        """The live (not deleted) tags in the kit's database, read-only, their label and
        note decrypted with the visit's key from the kit's RAM key dir (while it holds it)."""
        rows = stored(self.data, "SELECT * FROM tags WHERE deleted = 0 ORDER BY at_ns")
        keys = Keyring(key_dir_for(self.data))
        for row in rows:
            key = keys.get(row["visit_id"])
            for text in ("label", "note"):
                if key is not None and is_sealed_text(row[text]):
                    row[text] = open_text(key, f"tags.{text}:{row['id']}", row[text])
        return rows


def stored(data: Path, query: str) -> list[dict[str, Any]]:
    """Rows of a query on the kit's database in ``data``, read-only (it may be running)."""
    uri = f"file:{data / layout.DATABASE}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(query).fetchall()]


def stored_takes(data: Path) -> list[tuple[str, str, str]]:
    """(take id, visit id, state) of every take in ``data``, oldest first."""
    rows = stored(data, "SELECT id, visit_id, state FROM takes ORDER BY rowid")
    return [(r["id"], r["visit_id"], r["state"]) for r in rows]


@contextmanager
def kit_run_simulated(
    data: Path, *extra: str, env: dict[str, str] | None = None, timeout_s: float = 60.0
) -> Iterator[RunningKit]:
    """Start the kit and wait until it serves; SIGTERM (and wait) afterwards."""
    process = KitProcess(data, *extra, env=env)
    try:
        yield process.wait_ready(timeout_s)
    finally:
        process.stop()


@contextmanager
def served(app: Any, threads: int = 16) -> Iterator[str]:
    """``app`` served by waitress on 127.0.0.1 (a free port) in a thread; yields its URL."""
    import waitress

    from web import server as web_server
    from web.app import shutdown

    server: Any = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        shutdown(app)  # event streams end within a second, freeing their threads
        web_server.close(server, thread)
        # Sockets waitress's task threads dropped unclosed are reclaimed here, not in
        # whatever test is running when the collector reaches them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
