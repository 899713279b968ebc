"""The phone page's HTTP server: waitress, guarded against one client holding every slot.

waitress counts connections for all clients together (``connection_limit``) and closes
only connections that send nothing for ``channel_timeout``; one byte of a header every
few seconds keeps a connection open for ever. So a stranger on the kit's Wi-Fi could
fill every slot and no phone's new connection would be accepted. Two guards:

- at most :data:`PER_ADDRESS` connections from one address (a phone's browser opens
  six or so; the rest are refused at once, closed unread);
- a request's headers must arrive within :data:`HEADER_DEADLINE_S` of its first byte,
  else its connection is closed.

:func:`create` makes the server, :func:`close` stops it with every connection closed;
the guards live in :class:`GuardedChannel`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

log = logging.getLogger(__name__)

PER_ADDRESS = 64
HEADER_DEADLINE_S = 15.0


class GuardedChannel(HTTPChannel):  # type: ignore[misc]  # waitress has no type hints
    """An HTTP connection that counts against its address's cap and must send its
    headers in time."""

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        host = _host(addr)
        counts: Counter[str] = server.connections_by_host
        if counts[host] >= server.per_address:
            server.refused_connections += 1
            if server.refused_connections in (1, 100) or server.refused_connections % 1000 == 0:
                log.warning(
                    "refused a connection from %s: it holds %d already (%d refused so far)",
                    host,
                    counts[host],
                    server.refused_connections,
                )
            sock.close()
            self._host: str | None = None
            return
        self._host = host
        self._header_of: Any = None  # the request whose headers are being read
        self._header_began: float | None = None
        counts[host] += 1
        super().__init__(server, sock, addr, adj, map)

    def received(self, data: bytes) -> bool:
        answer = bool(super().received(data))
        request = self.request  # the one being read, if any (waitress's parser)
        if request is None or request.headers_finished:
            self._header_of, self._header_began = None, None
        elif request is not self._header_of:  # a new request's first bytes: its clock starts
            self._header_of, self._header_began = request, time.monotonic()
        return answer

    def readable(self) -> bool:
        # waitress asks every channel this at least once a loop (a second at most).
        began = self._header_began
        if began is not None and time.monotonic() - began > self.server.header_deadline_s:
            log.info("closed a connection from %s: its headers took too long", self._host)
            self._header_of, self._header_began = None, None
            self.will_close = True
            return False
        return bool(super().readable())

    def del_channel(self, map: Any = None) -> None:
        super().del_channel(map)
        host, self._host = self._host, None
        if host is not None:
            counts: Counter[str] = self.server.connections_by_host
            counts[host] -= 1
            if counts[host] <= 0:
                del counts[host]


def _host(addr: Any) -> str:
    """The client's address without its port (a UNIX socket has none: one shared name)."""
    if isinstance(addr, tuple) and addr:
        return str(addr[0])
    return str(addr)


def create(
    app: Any,
    *,
    host: str,
    port: int,
    per_address: int = PER_ADDRESS,
    header_deadline_s: float = HEADER_DEADLINE_S,
    **options: Any,
) -> Any:
    """A waitress server for ``app`` on ``host:port`` (``options`` go to waitress) whose
    connections are :class:`GuardedChannel`; it is run with ``.run()``."""
    sockets: dict[int, Any] = {}
    server = create_server(app, map=sockets, host=host, port=port, **options)
    counts: Counter[str] = Counter()  # shared: one host may reach the kit on two addresses
    listening = [s for s in sockets.values() if isinstance(s, BaseWSGIServer)]
    for one in listening:
        one.channel_class = GuardedChannel
        one.connections_by_host = counts
        one.refused_connections = 0
        one.per_address = per_address
        one.header_deadline_s = header_deadline_s
    return server


def close(server: Any, loop: threading.Thread, timeout_s: float = 5.0) -> None:
    """Stop ``server``, whose ``run()`` is ``loop``: no more connections accepted, every
    open one closed, the loop returned.

    waitress's own ``close()`` closes only the listening socket, leaving the phones'
    connections open until the process ends. They are closed here from inside the loop
    (a trigger "thunk"), so the loop never polls a socket another thread closed.
    """
    sockets: dict[int, Any] = getattr(server, "map", None) or server._map  # several or one
    server.task_dispatcher.shutdown(timeout=timeout_s)
    listening = [s for s in sockets.values() if isinstance(s, BaseWSGIServer)]
    if loop.is_alive() and listening and _close_in_loop(listening[0].trigger, sockets, timeout_s):
        loop.join(timeout_s)
    wasyncore.close_all(sockets)  # the loop never ran, or did not answer in time


def _close_in_loop(trigger: Any, sockets: dict[int, Any], timeout_s: float = 5.0) -> bool:
    """Close ``sockets`` (``trigger`` among them) in the thread polling them; whether that
    was done within ``timeout_s``.

    Not ``trigger.pull_trigger(thunk)``: a task thread's pull may wake the loop between
    its queueing the thunk and its own write, and the thunk closes the trigger, so that
    write could land in a descriptor just given to someone else. The trigger's lock
    (which the loop holds to run thunks) is held until the write is done.
    """
    closed = threading.Event()

    def close_all() -> None:
        wasyncore.close_all(sockets)
        closed.set()

    with trigger.lock:
        if trigger._closed:  # the loop closed its server itself (waitress on an error)
            return False
        trigger.thunks.append(close_all)
        os.write(trigger.trigger, b"x")
    return closed.wait(timeout_s)
