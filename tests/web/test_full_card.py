"""A full card is a 507 with the reason, never a 500: tags, label edits and pairing.

The card is filled in the one way that is exact and needs no root: SQLite's
``max_page_count`` pinned to the database's present size, so the next page
it needs is refused with SQLITE_FULL, as on a card with no space left.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from flask import Flask

from kit.testing.fakes import FakeKit
from tests.web.conftest import Phone
from web.pairing import PairingStore


def _no_room(conn: sqlite3.Connection, *, settings: bool = False) -> None:
    """No page more for the database, and the free room in its pages filled."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    conn.execute("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
    n = 0
    for size in (4000, 1000, 200, 40, 8):
        while True:
            n += 1
            try:
                conn.execute("INSERT INTO filler VALUES (zeroblob(?))", (size,))
                if settings:  # and the room left in the settings table's own pages
                    conn.execute("INSERT INTO settings VALUES (?, ?)", (f"f{n}", "x" * size))
            except sqlite3.OperationalError:
                break


def _connection(owner: Any) -> sqlite3.Connection:
    conn: sqlite3.Connection = owner._conn  # the store's own, as the card is the store's
    return conn


def test_a_tag_on_a_full_card_is_507_and_not_acknowledged(phone: Phone, kit: FakeKit) -> None:
    kit.open_visit()
    phone.post("/api/start")
    _no_room(_connection(kit.store.db))
    statuses = []
    for n in range(40):  # rows fill the last free page first; then there is no room
        tag = {"id": f"tap{n:08d}", "label": "Guiding", "note": "x" * 400, "delay_ms": 0}
        statuses.append(phone.post("/api/tags", json=tag))
    full = [r for r in statuses if r.status_code == 507]
    assert full, [r.status_code for r in statuses]
    assert all(r.status_code in (201, 507) for r in statuses)
    assert "the card is full" in (full[0].json or {})["error"]
    stored = {t.id for t in kit.visits.tags(kit.recording.status().visit_id or "")}
    acked = {f"tap{n:08d}" for n, r in enumerate(statuses) if r.status_code == 201}
    assert stored == acked  # nothing acknowledged was lost, nothing refused was kept


def test_label_edits_on_a_full_card_are_507(phone: Phone, kit: FakeKit) -> None:
    _no_room(_connection(kit.store.db), settings=True)
    labels = [f"Label {n} " + "x" * 30 for n in range(12)]
    r = phone.put("/api/labels", json={"labels": labels})
    assert r.status_code == 507
    assert kit.visits.labels()[0] == "Being attentive"


def test_pairing_on_a_full_card_is_507(app: Flask, pairing: PairingStore) -> None:
    _no_room(_connection(pairing))
    results = []
    for n in range(30):
        r = app.test_client().post(
            "/api/pair",
            json={"code": pairing.code, "name": f"Phone {n} " + "y" * 30},
            headers={"X-Kit-Pairing": "1"},
        )
        results.append(r.status_code)
    assert 507 in results and set(results) <= {201, 507}, results
