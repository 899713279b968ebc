"""The sd_notify client against a real AF_UNIX datagram socket that the test binds."""

import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.daemon.notify import Notifier, watchdog_interval_ns


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket at a filesystem path, as systemd's notify socket is."""
    # A short directory: AF_UNIX paths are limited to 107 bytes, and tmp_path can be long.
    with tempfile.TemporaryDirectory(prefix="kitn") as directory:
        path = str(Path(directory) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(5)
        try:
            yield path, sock
        finally:
            sock.close()


def received(sock: socket.socket) -> list[str]:
    data = sock.recv(4096)
    return data.decode().split("\n")


def test_messages_reach_a_path_socket(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready()
    assert received(sock) == ["READY=1"]
    assert notifier.status("recording take 3\n12 s")
    assert received(sock) == ["STATUS=recording take 3 12 s"]
    assert notifier.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.stopping("finalising take 3")
    assert received(sock) == ["STOPPING=1", "STATUS=finalising take 3"]
    assert notifier.extend_timeout(30_000_000_000)
    assert received(sock) == ["EXTEND_TIMEOUT_USEC=30000000"]
    assert notifier.ready("idle")
    assert received(sock) == ["READY=1", "STATUS=idle"]
    notifier.close()


def test_messages_reach_an_abstract_socket() -> None:
    name = f"kit-test-{os.getpid()}-{secrets.token_hex(4)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        notifier = Notifier(f"@{name}")
        assert notifier.watchdog()
        assert received(sock) == ["WATCHDOG=1"]
        notifier.close()
    finally:
        sock.close()


@pytest.mark.parametrize("address", [None, ""])
def test_without_a_socket_everything_is_a_no_op(address: str | None) -> None:
    notifier = Notifier(address)
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert not notifier.stopping()
    notifier.close()


def test_from_environ_without_the_variable() -> None:
    assert not Notifier.from_environ({}).enabled


def test_a_malformed_address_disables_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        notifier = Notifier("relative/path")
    assert not notifier.enabled
    assert "NOTIFY_SOCKET" in caplog.text


def test_a_vanished_socket_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING):
        assert not notifier.ready()
    assert "could not notify systemd" in caplog.text
    notifier.close()


@pytest.mark.parametrize("bad", ["READY", "STATUS=a\nREADY=1"])
def test_assignments_are_checked(bad: str, listener: tuple[str, socket.socket]) -> None:
    notifier = Notifier(listener[0])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        notifier.notify(bad)
    notifier.close()


@pytest.mark.parametrize(
    ("environ", "pid", "expected"),
    [
        ({}, 10, None),
        ({"WATCHDOG_USEC": "30000000"}, 10, 30_000_000_000),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "10"}, 10, 30_000_000_000),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "11"}, 10, None),
        ({"WATCHDOG_USEC": "0"}, 10, None),
        ({"WATCHDOG_USEC": "soon"}, 10, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, 10, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], pid: int, expected: int | None) -> None:
    assert watchdog_interval_ns(environ, pid=pid) == expected


def test_watchdog_pid_defaults_to_this_process() -> None:
    env = {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval_ns(env) == 1_000_000
