"""web.server: one address cannot hold every connection, and headers must come in time.

A real waitress server on loopback; the "stranger" connects from 127.0.0.2 (Linux
routes all of 127/8 to the loopback), the phone from 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from web import server as web_server

STRANGER = "127.0.0.2"
REQUEST = b"GET / HTTP/1.1\r\nHost: kit\r\n\r\n"


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@contextlib.contextmanager
def _serving(**options: Any) -> Iterator[tuple[Any, int]]:
    made = web_server.create(
        _app,
        host="127.0.0.1",
        port=0,
        threads=2,
        channel_timeout=30,
        asyncore_loop_timeout=0.1,
        **{"per_address": 4, "header_deadline_s": 1.0, **options},
    )
    thread = threading.Thread(target=made.run, daemon=True)
    thread.start()
    try:
        yield made, int(made.effective_port)
    finally:
        web_server.close(made, thread)


@pytest.fixture
def served() -> Iterator[tuple[Any, int]]:
    with _serving() as made:
        yield made


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def _answered(s: socket.socket) -> bool:
    """Whether a request on ``s`` gets the app's answer (False: closed unanswered)."""
    try:
        s.sendall(REQUEST)
    except OSError:
        return False
    return _answer_read(s)


def _answer_read(s: socket.socket) -> bool:
    """Whether the app's whole answer arrives on ``s``."""
    data = b""
    try:
        while not data.endswith(b"\r\n\r\nok"):
            more = s.recv(4096)
            if not more:
                return False
            data += more
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 200")


def _closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def _wait_for(what: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_one_address_holds_at_most_its_share_and_others_still_connect(
    served: tuple[Any, int],
) -> None:
    made, port = served
    held = [_connect(port, STRANGER) for _ in range(4)]
    try:
        _wait_for(lambda: made.connections_by_host[STRANGER] == 4)
        extra = _connect(port, STRANGER)
        assert _closed_within(extra, 3.0), "a fifth connection from one address was kept"
        extra.close()
        phone = _connect(port)
        assert _answered(phone), "the phone got no answer while the stranger held its share"
        phone.close()
        # The stranger's own connections still work: refused is only what is over the cap.
        assert _answered(held[0])
        # A connection closed frees its place.
        held.pop().close()
        _wait_for(lambda: made.connections_by_host[STRANGER] == 3)
        again = _connect(port, STRANGER)
        assert _answered(again)
        held.append(again)
    finally:
        for s in held:
            s.close()
    _wait_for(lambda: not made.connections_by_host)
    assert made.refused_connections >= 1


def test_a_header_that_dawdles_is_closed_and_one_that_comes_in_pieces_is_answered(
    served: tuple[Any, int],
) -> None:
    _, port = served
    slow = _connect(port, STRANGER)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: kit\r\nX-Slow: ")
    began = time.monotonic()
    closed = False
    while time.monotonic() - began < 5.0:  # a byte every 0.2 s: never idle, never done
        try:
            slow.sendall(b"a")
        except OSError:
            closed = True
            break
        if _closed_within(slow, 0.2):
            closed = True
            break
    took = time.monotonic() - began
    slow.close()
    assert closed, "a header trickled for 5 s was never closed"
    assert 0.9 <= took <= 3.5, took

    pieces = _connect(port)
    for n in range(0, len(REQUEST), 5):
        pieces.sendall(REQUEST[n : n + 5])
        time.sleep(0.05)
    assert _answer_read(pieces)
    # Kept alive between requests: idle is not dawdling (channel_timeout closes idle ones).
    time.sleep(1.6)
    assert _answered(pieces)
    pieces.close()


def test_counts_return_to_nothing_after_many_connections(served: tuple[Any, int]) -> None:
    made, port = served
    for _ in range(3):
        batch = [_connect(port, STRANGER) for _ in range(8)]
        for s in batch:
            with contextlib.suppress(OSError):
                s.close()
    _wait_for(lambda: not made.connections_by_host)


def test_a_stranger_on_many_addresses_at_the_limit_yields_within_the_header_deadline() -> None:
    """Every slot of the server's connection limit held by trickling headers from three
    addresses: a phone's new connection waits at most about the header deadline."""
    with _serving(connection_limit=8, per_address=4, header_deadline_s=2.0) as (made, port):
        held = []
        for n in range(8):
            s = _connect(port, f"127.0.0.{2 + n % 3}")
            s.sendall(b"GET / HTTP/1.1\r\nHost: kit\r\nX-Slow: ")
            held.append(s)
        _wait_for(lambda: made.in_connection_overflow)  # accepting no more
        began = time.monotonic()
        phone = _connect(port)
        phone.settimeout(10)
        answered = _answered(phone)
        took = time.monotonic() - began
        phone.close()
        for s in held:
            s.close()
    assert answered, "the phone's connection was never answered"
    assert took < 2.0 + 3.0, took


def test_close_ends_every_open_connection_and_the_loop() -> None:
    """waitress's own close() stops only the listening socket; web.server.close also
    closes the phones' kept-alive connections, and the serving thread returns."""
    made = web_server.create(_app, host="127.0.0.1", port=0, threads=2, per_address=4)
    thread = threading.Thread(target=made.run, daemon=True)
    thread.start()
    port = int(made.effective_port)
    phone = _connect(port)
    idle = _connect(port, STRANGER)
    try:
        assert _answered(phone)  # kept alive after its answer
        _wait_for(lambda: made.connections_by_host[STRANGER] == 1)
        web_server.close(made, thread)
        assert not thread.is_alive()
        assert _closed_within(phone, 3.0), "a kept-alive connection outlived close()"
        assert _closed_within(idle, 3.0), "an idle connection outlived close()"
        assert not made._map, made._map
        with pytest.raises(OSError):
            _connect(port)
    finally:
        phone.close()
        idle.close()


def test_close_before_the_loop_ran_closes_the_listening_socket() -> None:
    made = web_server.create(_app, host="127.0.0.1", port=0, threads=1)
    port = int(made.effective_port)
    web_server.close(made, threading.Thread(target=made.run))
    assert not made._map
    with pytest.raises(OSError):
        _connect(port)
