"""A tiny sd_notify client: tell systemd the daemon is ready, alive and stopping.

systemd (``Type=notify``) hands the service a datagram socket in
``$NOTIFY_SOCKET``: a filesystem path, or an abstract socket written with a
leading ``@``. Each message is newline-separated ``KEY=VALUE`` assignments
(``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``). Without the
variable (a laptop, a test, ``kit run`` by hand) every call is a no-op, so the
daemon calls these unconditionally.

A notification is best effort: a failed send is logged, never raised, so a
hiccup on the way to systemd cannot stop a recording.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)

_NS_PER_US = 1_000


class Notifier:
    """Sends notifications to systemd's socket (or nowhere, when there is none)."""

    def __init__(self, address: str | None) -> None:
        """``address`` is ``$NOTIFY_SOCKET`` as systemd sets it; None or "" disables."""
        self._address = _socket_address(address) if address else None
        if address and self._address is None:
            log.warning("ignoring NOTIFY_SOCKET=%r: neither a path nor @abstract", address)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` in ``environ`` (default: the process's)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening (``$NOTIFY_SOCKET`` was set)."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments in one datagram; True if it was sent."""
        if self._address is None or not assignments:
            return False
        for item in assignments:
            if "=" not in item or "\n" in item:
                raise ValueError(f"not a single KEY=VALUE assignment: {item!r}")
        message = "\n".join(assignments).encode("utf-8")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.sendto(message, self._address)
            except OSError as exc:
                log.warning("could not notify systemd (%s): %s", message[:40], exc)
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete: systemd now considers the service started."""
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", _status(status))

    def status(self, text: str) -> bool:
        """A one-line status that ``systemctl status kit`` shows."""
        return self.notify(_status(text))

    def watchdog(self) -> bool:
        """Still alive: call at least every half of :func:`watchdog_interval_ns`."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutting down (e.g. finalising the take after SIGTERM)."""
        if status is None:
            return self.notify("STOPPING=1")
        return self.notify("STOPPING=1", _status(status))

    def extend_timeout(self, duration_ns: int) -> bool:
        """Ask for ``duration_ns`` more before the start or stop timeout fires.

        For slow start-up or shutdown work (finalising a long take) that should
        not be killed halfway; repeat it while the work goes on.
        """
        usec = max(1, duration_ns // _NS_PER_US)
        return self.notify(f"EXTEND_TIMEOUT_USEC={usec}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _status(text: str) -> str:
    # A newline would start a new assignment: keep the status on one line.
    return "STATUS=" + " ".join(text.split())


def _socket_address(address: str) -> str | None:
    # Linux abstract sockets have a leading NUL byte; systemd writes it as "@".
    if address.startswith("@") and len(address) > 1:
        return "\0" + address[1:]
    if address.startswith("/"):
        return address
    return None


def watchdog_interval_ns(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> int | None:
    """The watchdog timeout systemd enforces, in ns; None when there is no watchdog.

    From ``$WATCHDOG_USEC`` (``WatchdogSec=`` in the unit). When
    ``$WATCHDOG_PID`` is set, the watchdog is meant for that process only, so a
    child that inherited the environment gets None. Ping at least every half of
    this interval.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a whole number", usec)
        return None
    if value <= 0:
        return None
    watched = env.get("WATCHDOG_PID", "")
    if watched:
        try:
            if int(watched) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            log.warning("ignoring WATCHDOG_PID=%r: not a process id", watched)
            return None
    return value * _NS_PER_US
