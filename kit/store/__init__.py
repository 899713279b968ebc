"""Persistent state: a directory per visit and SQLite (WAL) for metadata."""
