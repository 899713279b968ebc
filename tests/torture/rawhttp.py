"""HTTP/1.1 over a bare socket, for requests no HTTP client library would send: any bytes
on the request line, any header, lying lengths, chunked bodies, half a request.

:func:`exchange` sends bytes and reads one answer (status, headers, body: by
Content-Length, chunked, or to the close; an event stream only up to its first blank
line); :func:`wire` renders a :class:`tests.torture.hostile.Hostile` as bytes;
MALFORMED holds requests no client library would send, and the answers right for each.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from tests.torture.hostile import Hostile

MAX_BODY = 4 * 1024 * 1024


@dataclass
class Raw:
    """One answer read off the socket; ``status`` 0 when none came (the server closed)."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    head: bytes = b""
    closed_early: bool = False


def wire(request: Hostile, host: str, headers: list[tuple[str, str]]) -> bytes:
    """``request`` as bytes on the wire with ``headers`` (its own and its auth state's), a
    Host if they name none, Content-Length for a body, and ``Connection: close``."""
    headers = list(headers)
    if not any(k.lower() == "host" for k, _ in headers):
        headers.insert(0, ("Host", host))
    if request.body is not None:
        headers.append(("Content-Length", str(len(request.body))))
    headers.append(("Connection", "close"))
    lines = [f"{request.method} {request.target} HTTP/1.1".encode("latin-1", "replace")]
    lines += [f"{k}: {v}".encode("latin-1", "replace") for k, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + (request.body or b"")


def exchange(
    address: tuple[str, int],
    data: bytes,
    *,
    timeout_s: float = 10.0,
    chunks: list[bytes] | None = None,
) -> Raw:
    """Send ``data`` (then each of ``chunks``), and read one answer."""
    with socket.create_connection(address, timeout=timeout_s) as sock:
        try:
            sock.sendall(data)
            for chunk in chunks or ():
                sock.sendall(chunk)
        except OSError:
            pass  # the server may answer and close before it has read everything
        return read_answer(sock, timeout_s)


def read_answer(sock: socket.socket, timeout_s: float) -> Raw:
    """One HTTP answer from ``sock`` (status 0 if the server closed without one)."""
    deadline = time.monotonic() + timeout_s
    buf = b""
    answer = Raw()
    while b"\r\n\r\n" not in buf:
        got = _recv(sock, deadline)
        if not got:
            answer.closed_early = True
            answer.head = buf
            return answer
        buf += got
    head, _, rest = buf.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100 "):  # "go on": the answer comes after it
        while b"\r\n\r\n" not in rest:
            got = _recv(sock, deadline)
            if not got:
                answer.closed_early = True
                return answer
            rest += got
        head, _, rest = rest.partition(b"\r\n\r\n")
    answer.head = head
    first, *lines = head.split(b"\r\n")
    parts = first.split(b" ", 2)
    answer.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        answer.headers[name.strip().lower()] = value.strip()
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        while b"\n\n" not in rest and len(rest) < MAX_BODY:
            got = _recv(sock, deadline)
            if not got:
                break
            rest += got
        answer.body = rest
        return answer
    if "content-length" in answer.headers:
        want = int(answer.headers["content-length"])
        while len(rest) < min(want, MAX_BODY):
            got = _recv(sock, deadline)
            if not got:
                answer.closed_early = True
                break
            rest += got
        answer.body = rest[:want]
    elif answer.headers.get("transfer-encoding", "").lower() == "chunked":
        answer.body = _dechunk(sock, rest, deadline)
    else:
        while len(rest) < MAX_BODY:
            got = _recv(sock, deadline)
            if not got:
                break
            rest += got
        answer.body = rest
    return answer


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(0.05, deadline - time.monotonic()))
    try:
        return sock.recv(65536)
    except TimeoutError:
        raise TimeoutError("no answer in time") from None
    except ConnectionResetError:
        return b""


def _dechunk(sock: socket.socket, rest: bytes, deadline: float) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in rest:
            got = _recv(sock, deadline)
            if not got:
                return body
            rest += got
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        while len(rest) < size + 2:
            got = _recv(sock, deadline)
            if not got:
                return body + rest
            rest += got
        if size == 0:
            return body
        body += rest[:size]
        rest = rest[size + 2 :]
        if len(body) > MAX_BODY:
            return body


# -- requests no client library sends ------------------------------------------------------

H = b"Host: 127.0.0.1\r\n"
# Malformed HTTP a stranger's tool may send, each with the answers that are right for it:
# a 4xx (or, for a request the app may serve as it is, any status below 500), or from
# waitress for a transfer coding it does not implement a 501, as RFC 9112 section 6.1
# asks. "None" marks a request that never ends (no blank line, a chunk that never
# comes): the kit waits for the rest, as for any slow phone, until channel_timeout.
MALFORMED: dict[str, tuple[bytes, str]] = {
    "garbage": (b"GARBAGE\r\n\r\n", "4xx"),
    "only a method": (b"GET\r\n\r\n", "4xx"),
    "HTTP/9.9": (b"GET / HTTP/9.9\r\n" + H + b"\r\n", "<500"),
    "HTTP/1.0 without Host": (b"GET /api/state HTTP/1.0\r\n{auth}\r\n", "<500"),
    "HTTP/0.9": (b"GET /\r\n", "none"),
    "a TLS hello": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, "none"),
    "a 100 KB URL": (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n" + H + b"\r\n", "4xx"),
    "a 70 KB header": (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n", "4xx"),
    "5000 headers": (
        b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: 1\r\n" % i for i in range(5000)) + b"\r\n",
        "<500",
    ),
    "NUL in the target": (b"GET /api/state\x00 HTTP/1.1\r\n" + H + b"{auth}\r\n", "<500"),
    "a header without a colon": (b"GET / HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", "4xx"),
    "a folded header": (b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r\n  more\r\n\r\n", "<500"),
    "a NUL in a header": (b"GET / HTTP/1.1\r\n" + H + b"X-A: \x00\r\n\r\n", "4xx"),
    "a bare CR in a header": (b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", "4xx"),
    "a space before the colon": (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "4xx"),
    "two Hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "4xx"),
    "two Content-Lengths": (
        b"POST /api/clock HTTP/1.1\r\n"
        + H
        + b"{auth}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        "4xx",
    ),
    "Content-Length -1": (
        b"POST /api/start HTTP/1.1\r\n" + H + b"{auth}Content-Length: -1\r\n\r\n",
        "4xx",
    ),
    "Content-Length abc": (
        b"POST /api/start HTTP/1.1\r\n" + H + b"{auth}Content-Length: abc\r\n\r\n",
        "4xx",
    ),
    "Content-Length 10^20": (
        b"POST /api/tags HTTP/1.1\r\n"
        + H
        + b"{auth}Content-Length: 99999999999999999999\r\n\r\n{}",
        "4xx",
    ),
    "Content-Length and chunked": (
        b"POST /api/tags HTTP/1.1\r\n"
        + H
        + b"{auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        "4xx",
    ),
    "a chunked body": (
        b"POST /api/clock HTTP/1.1\r\n"
        + H
        + b"{auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b'5\r\n{"pho\r\n1a\r\nne_time_ms": 1767225600000\r\n1\r\n}\r\n0\r\n\r\n',
        "<500",
    ),
    "a chunk size zz": (
        b"POST /api/tags HTTP/1.1\r\n"
        + H
        + b"{auth}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "4xx",
    ),
    "a chunk of 16 EiB": (
        b"POST /api/tags HTTP/1.1\r\n"
        + H
        + b"{auth}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{}\r\n0\r\n\r\n",
        "none",
    ),
    "1.3 MB of chunks": (
        b"POST /api/tags HTTP/1.1\r\n"
        + H
        + b"{auth}Transfer-Encoding: chunked\r\n\r\n"
        + (b"10000\r\n" + b"a" * 0x10000 + b"\r\n") * 20
        + b"0\r\n\r\n",
        "4xx",
    ),
    "40 KB of JSON, chunked": (
        b"POST /api/tags HTTP/1.1\r\n"
        + H
        + b"{auth}Transfer-Encoding: chunked\r\n\r\n"
        + b"a000\r\n"
        + b'{"id": "'
        + b"a" * (0xA000 - 10)
        + b'"}\r\n0\r\n\r\n',
        "4xx",
    ),
    "Transfer-Encoding gzip": (
        b"POST /api/tags HTTP/1.1\r\n" + H + b"{auth}Transfer-Encoding: gzip\r\n\r\n",
        "501",
    ),
    "Expect: 100-continue": (
        b"POST /api/clock HTTP/1.1\r\n"
        + H
        + b"{auth}Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
        "4xx",
    ),
    "an absolute URI": (
        b"GET http://evil.example/api/state HTTP/1.1\r\n" + H + b"{auth}\r\n",
        "<500",
    ),
    "CONNECT": (b"CONNECT evil.example:443 HTTP/1.1\r\n" + H + b"\r\n", "<500"),
    "OPTIONS *": (b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", "<500"),
    "a lower-case method": (b"get /api/state HTTP/1.1\r\n" + H + b"{auth}\r\n", "4xx"),
    "LF line ends": (b"GET /api/state HTTP/1.1\n" + b"Host: 127.0.0.1\n\n", "none"),
    "UTF-8 in the target": (
        "GET /api/preview.jpg?after=² HTTP/1.1\r\n".encode() + H + b"{auth}\r\n",
        "4xx",
    ),
    "latin-1 in a header": (
        b"GET /api/state HTTP/1.1\r\n" + H + b"{auth}X-Name: \xe9\xff\r\n\r\n",
        "<500",
    ),
    "two requests at once": (
        b"GET /api/state HTTP/1.1\r\n"
        + H
        + b"{auth}\r\nGET /api/nothing HTTP/1.1\r\n"
        + H
        + b"\r\n",
        "<500",
    ),
    "%zz in the path": (b"GET /%zz HTTP/1.1\r\n" + H + b"{auth}\r\n", "4xx"),
    "a huge Range": (
        b"GET /api/visits/{visit}/bundle.tar HTTP/1.1\r\n"
        + H
        + b"{auth}Range: bytes=0-1,"
        + b"2-3," * 3000
        + b"4-5\r\n\r\n",
        "<500",
    ),
}


def fits(expected: str, status: int) -> bool:
    """Whether ``status`` is an answer MALFORMED allows (``expected``: 4xx, 501, <500)."""
    if expected == "4xx":
        return 400 <= status < 500
    if expected == "501":
        return status == 501
    return 100 <= status < 500
