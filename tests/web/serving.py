"""Serve an app with waitress (the production server) on a free port, in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import waitress
from flask import Flask
from waitress import wasyncore

from web.app import shutdown


@contextmanager
def served(app: Flask, threads: int = 16) -> Iterator[str]:
    """``app`` served on 127.0.0.1 (any free port) for the ``with`` block; yields its URL."""
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
