"""Issue #14, defect 4: pairing. Five wrong codes from anyone locked the right code and
the label's link out for everyone for five minutes; the 6-digit code never changed; the
label's key paired any number of phones, forever.

Clients are told apart as the kit's hotspot tells phones apart: by their address.
Time is the pairing store's injected clock (tests/web/conftest.py's FakeSeconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.web.conftest import FakeSeconds, Phone
from web.pairing import PairingClosed, PairingStore

ATTACKER = "10.42.0.66"
GUIDER = "10.42.0.7"
SCREEN = "10.42.0.9"
DAY_S = 24 * 3600.0


def _client(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _pair(client: FlaskClient, **body: Any) -> TestResponse:
    return client.post("/api/pair", json=body, headers={"X-Kit-Pairing": "1"})


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _lock_out(app: Flask, pairing: PairingStore) -> FlaskClient:
    """Five wrong codes from the attacker's address: the attacker is locked out."""
    attacker = _client(app, ATTACKER)
    for _ in range(5):
        assert _pair(attacker, code=_wrong(pairing.code)).status_code == 401
    assert _pair(attacker, code=pairing.code).status_code == 429  # it is locked, itself
    return attacker


def test_d4_wrong_codes_from_one_client_do_not_lock_out_the_right_code_elsewhere(
    app: Flask, pairing: PairingStore
) -> None:
    _lock_out(app, pairing)
    r = _pair(_client(app, GUIDER), code=pairing.code, name="Guider")
    assert r.status_code == 201, (r.status_code, r.get_json(silent=True))


def test_d4_wrong_codes_from_one_client_do_not_lock_out_the_qr_link(
    app: Flask, pairing: PairingStore
) -> None:
    _lock_out(app, pairing)
    guider = _client(app, GUIDER)
    r = _pair(guider, key=pairing.key, name="Guider")
    assert r.status_code == 201, (r.status_code, r.get_json(silent=True))
    page = _client(app, SCREEN).get(f"/pair?k={pairing.key}")
    assert page.status_code == 200
    assert "too many" not in page.get_data(as_text=True).lower()


def test_d4_the_pairing_code_rotates_or_expires_after_use_and_time(
    app: Flask, pairing: PairingStore, seconds: FakeSeconds
) -> None:
    code = pairing.code
    guider = _client(app, GUIDER)
    assert _pair(guider, code=code, name="Guider").status_code == 201
    seconds.advance(DAY_S)  # used once, and a day old: it must not pair anyone now
    late = _pair(_client(app, ATTACKER), code=code, name="Stranger")
    assert late.status_code in (401, 403, 410), late.status_code
    # A paired phone can still show the current code to pair another device with.
    fresh = guider.get("/api/pairing").get_json()["code"]
    assert fresh != code
    assert _pair(_client(app, SCREEN), code=fresh, name="Screen").status_code == 201


def test_d4_a_paired_phone_sees_the_code_that_pairs_now(
    phone: Phone, pairing: PairingStore
) -> None:
    """Whatever the code's lifetime, the code Settings shows pairs the next device."""
    shown = phone.get("/api/pairing").json
    assert shown is not None
    assert shown["code"] == pairing.code and shown["locked_for_s"] == 0


def test_d4_the_qr_key_does_not_pair_phones_forever(
    app: Flask, pairing: PairingStore, seconds: FakeSeconds
) -> None:
    assert _pair(_client(app, GUIDER), key=pairing.label_key, name="Guider").status_code == 201
    seconds.advance(DAY_S)
    r = _pair(_client(app, ATTACKER), key=pairing.label_key, name="Found the label")
    assert r.status_code in (401, 403, 410), r.status_code
    r = _pair(_client(app, ATTACKER), code=pairing.label_code, name="Found the label")
    assert r.status_code in (401, 403, 410), r.status_code
    assert "switched on" in r.get_json()["error"]  # says how to pair: restart the kit


def test_d4_the_label_pairs_again_after_the_kit_is_switched_off_and_on(
    tmp_path: Path, seconds: FakeSeconds
) -> None:
    first = PairingStore(tmp_path / "pairing.db", clock=seconds)
    first.pair(key=first.label_key, name="Guider")
    seconds.advance(DAY_S)
    with pytest.raises(PairingClosed):
        first.pair(key=first.label_key, name="Found the label")
    first.close()
    restarted = PairingStore(tmp_path / "pairing.db", clock=seconds)
    phone, _ = restarted.pair(code=restarted.label_code, name="New phone")
    assert phone.name == "New phone"
    seconds.advance(601)
    with pytest.raises(PairingClosed):
        restarted.pair(code=restarted.label_code)
