"""The phone page served for benchmarks and tests: ``kit run --simulate`` as a child
process, or a Flask app under waitress in a thread.

It starts the daemon on a free port with its own data directory, waits until
it prints that it is ready, and reads the pairing code from its log; on exit
it sends SIGTERM (the daemon finalises any take) and waits.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY = re.compile(r"kit ready: http://[^:]+:(\d+)/")
CODE = re.compile(r"type the code (\d{6})")


@dataclass
class RunningKit:
    """A running ``kit run --simulate``: its URL, pairing code, data dir and log so far."""

    url: str
    code: str
    data: Path
    log: list[str] = field(default_factory=list)


@contextmanager
def kit_run_simulated(data: Path, *extra: str, timeout_s: float = 60.0) -> Iterator[RunningKit]:
    """Start the daemon and wait until it serves; SIGTERM (and wait) afterwards."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Not under systemd: a NOTIFY_SOCKET inherited from a test runner is not ours.
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    argv = [sys.executable, "-m", "kit", "run", "--simulate", "--data", str(data), "--port", "0"]
    proc = subprocess.Popen(
        [*argv, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
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
        port, code = READY.search(text), CODE.search(text)
        if port is None or code is None:
            raise RuntimeError("kit run did not print its port and pairing code:\n" + text)
        yield RunningKit(f"http://127.0.0.1:{port.group(1)}", code.group(1), data, lines)
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


@contextmanager
def served(app: Any, threads: int = 16) -> Iterator[str]:
    """``app`` served by waitress on 127.0.0.1 (a free port) in a thread; yields its URL."""
    import waitress
    from waitress import wasyncore

    from web.app import shutdown

    server: Any = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        shutdown(app)  # event streams end within a second, freeing their threads
        server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(server._map)
        thread.join(timeout=5)
        # A connection accepted while the map was being closed survives the first
        # close_all; sockets waitress's task threads dropped unclosed are reclaimed
        # here, not in whatever test is running when the collector reaches them.
        wasyncore.close_all(server._map)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
