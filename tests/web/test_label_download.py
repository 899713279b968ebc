"""A paired phone downloads the kit's label (PNG, PDF) from Settings; nobody else does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from kit.audit.chain import AuditKind
from kit.provision.firstboot import first_boot
from kit.store import layout
from kit.testing.fakes import FakeKit
from tests.web.conftest import Phone, pair
from web.pairing import PairingStore

KINDS = [("png", "image/png", b"\x89PNG"), ("pdf", "application/pdf", b"%PDF-")]


@pytest.fixture
def labelled(tmp_path: Path, kit: FakeKit, pairing: PairingStore) -> tuple[Flask, Path]:
    """The app of a kit whose data directory holds a label (KIT_DATA_DIR, as the daemon sets)."""
    data = tmp_path / "kit-data"
    wifi = tmp_path / "kit-wifi.txt"
    wifi.write_text("SSID=VIG-Kit-7F3A\nPASSPHRASE=abcd-efgh-jkmn\n")
    first_boot(data, wifi, "http://10.42.0.1:8080")
    return kit.app(pairing, {"TESTING": True, "KIT_DATA_DIR": str(data)}), data


@pytest.mark.parametrize(("kind", "mimetype", "magic"), KINDS)
def test_a_paired_phone_downloads_the_label(
    labelled: tuple[Flask, Path],
    pairing: PairingStore,
    kit: FakeKit,
    kind: str,
    mimetype: str,
    magic: bytes,
) -> None:
    app, data = labelled
    phone = pair(app, pairing)
    r = phone.get(f"/api/label.{kind}")
    assert r.status_code == 200
    assert r.mimetype == mimetype
    assert r.data.startswith(magic)
    assert r.data == (data / f"label.{kind}").read_bytes()
    assert r.headers["Content-Disposition"] == f"attachment; filename=kit-label.{kind}"
    assert r.headers["Cache-Control"] == "no-store"  # it holds the passphrase and pairing link
    lines = (kit.store.root / layout.AUDIT).read_text("utf-8").splitlines()
    downloads = [
        e["details"]
        for e in map(json.loads, lines)
        if e["kind"] == AuditKind.LABEL_DOWNLOADED.value
    ]
    assert downloads == [{"phone_id": phone.id, "format": kind}]


@pytest.mark.parametrize(("kind", "mimetype", "magic"), KINDS)
def test_nobody_else_does(
    labelled: tuple[Flask, Path], kind: str, mimetype: str, magic: bytes
) -> None:
    app, _ = labelled
    client = app.test_client()
    for host in ("10.42.0.1:8080", "connectivitycheck.gstatic.com"):
        r = client.get(f"/api/label.{kind}", headers={"Host": host})
        assert r.status_code == 401
        assert magic not in r.data


@pytest.mark.parametrize("kind", ["png", "pdf"])
def test_no_label_yet_is_a_404_that_says_why(phone: Phone, kind: str) -> None:
    r = phone.get(f"/api/label.{kind}")  # the test app has no KIT_DATA_DIR
    assert r.status_code == 404
    assert r.json == {"error": "this kit has no label yet: `kit first-boot` makes it"}


def test_no_label_in_the_data_directory_is_a_404(
    tmp_path: Path, kit: FakeKit, pairing: PairingStore
) -> None:
    app = kit.app(pairing, {"TESTING": True, "KIT_DATA_DIR": str(tmp_path / "empty")})
    phone = pair(app, pairing)
    assert phone.get("/api/label.png").status_code == 404


def test_settings_links_to_both(phone: Phone) -> None:
    page = phone.get("/settings").get_data(as_text=True)
    assert 'href="/api/label.pdf" download' in page
    assert 'href="/api/label.png" download' in page
