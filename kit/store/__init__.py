"""Persistent state: a directory per session and SQLite (WAL) for metadata."""
