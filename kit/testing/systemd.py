"""A stand-in for systemd's notify socket: it keeps every message a service sends
(READY=1, STATUS=..., WATCHDOG=1, STOPPING=1), as systemd would receive them."""

from __future__ import annotations

import socket
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


def notified(systemd: FakeSystemd, config: Path) -> dict[str, str]:
    """The environment for a kit run under ``systemd`` with the config file ``config``."""
    return {"NOTIFY_SOCKET": str(systemd.path), "KIT_CONFIG": str(config)}
