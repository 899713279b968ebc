"""Serve an app with waitress (the production server) on a free port, in a thread."""

from kit.bench.launch import served

__all__ = ["served"]
