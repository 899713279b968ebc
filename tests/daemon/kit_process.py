"""`kit run --simulate` as a child process under a fake systemd, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


class FakeSystemd:
    """Listens on a notify socket the way systemd does and keeps every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []

    def pump(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def wait_for(self, prefix: str, timeout: float, after: float = 0.0) -> float:
        """When a message starting with ``prefix`` arrived (at or after ``after``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            for at, line in self.messages:
                if at >= after and line.startswith(prefix):
                    return at
        raise AssertionError(f"no {prefix!r} in {timeout} s: {self.messages[-10:]}")

    def count(self, line: str, after: float) -> int:
        return sum(1 for at, m in self.messages if m == line and at >= after)

    def close(self) -> None:
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_kit(
    data: Path, systemd: FakeSystemd, workdir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start `kit run --simulate` (640x360) on ``data``, notifying ``systemd``."""
    empty = workdir / "empty.toml"
    empty.write_text("")
    environ = dict(os.environ, NOTIFY_SOCKET=str(systemd.path), KIT_CONFIG=str(empty))
    environ.update(env or {})
    argv = [sys.executable, "-m", "kit", "run", "--simulate", "--data", str(data)]
    argv += ["--port", str(free_port()), "--width", "640", "--height", "360"]
    return subprocess.Popen(
        argv, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
