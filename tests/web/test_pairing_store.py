"""The pairing store: secret, code, key, lock-out on an injected clock, phones."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kit.errors import NotFound, StorageError
from tests.web.conftest import FakeSeconds
from web.pairing import PairingLocked, PairingStore, WrongSecret


def test_code_and_key_are_made_once_and_kept(tmp_path: Path) -> None:
    first = PairingStore(tmp_path / "pairing.db")
    code, key = first.label_code, first.label_key
    current = first.code
    first.close()
    again = PairingStore(tmp_path / "pairing.db")
    assert (again.label_code, again.label_key) == (code, key)  # printed on the label
    assert again.code != current  # what Settings shows differs at every start
    assert len(code) == 6 and code.isdigit()
    assert len(key) == 22
    link = again.label_link("http://10.42.0.1:8080/")
    assert link == f"http://10.42.0.1:8080/pair?k={key}"
    other = PairingStore(tmp_path / "other.db")
    assert other.label_key != key  # a secret per kit


def test_the_file_is_private_and_holds_no_session_token(tmp_path: Path) -> None:
    store = PairingStore(tmp_path / "pairing.db")
    _, token = store.pair(code=store.code)
    store.close()
    path = tmp_path / "pairing.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    everything = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert token.encode() not in everything


def test_pairing_with_the_key_or_the_code(pairing: PairingStore) -> None:
    a, token_a = pairing.pair(key=pairing.key, name="  Sam's   phone ")
    b, token_b = pairing.pair(code=pairing.code)
    assert a.name == "Sam's phone"
    assert b.name == "Phone 2"
    assert token_a != token_b and a.csrf != b.csrf
    assert pairing.phone_for_token(token_a) == a
    assert pairing.phone_for_token("nonsense") is None
    assert [p.id for p in pairing.phones()] == [a.id, b.id]


def test_five_wrong_codes_lock_pairing_for_a_while(
    pairing: PairingStore, seconds: FakeSeconds
) -> None:
    wrong = f"{(int(pairing.code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        with pytest.raises(WrongSecret):
            pairing.pair(code=wrong)
    with pytest.raises(WrongSecret):
        pairing.pair(key="not-the-key")  # a wrong link counts too
    with pytest.raises(PairingLocked) as locked:
        pairing.pair(code=pairing.code)  # even the right code, while locked
    assert locked.value.retry_after_s == pytest.approx(300)
    seconds.advance(299)
    assert pairing.locked_for() == pytest.approx(1)
    with pytest.raises(PairingLocked):
        pairing.pair(code=pairing.code)
    seconds.advance(1)
    assert pairing.locked_for() == 0
    pairing.pair(code=pairing.code)


def test_a_right_code_resets_the_count(pairing: PairingStore) -> None:
    for _ in range(4):
        with pytest.raises(WrongSecret):
            pairing.pair(code="000000" if pairing.code != "000000" else "111111")
    pairing.pair(code=pairing.code)
    for _ in range(4):
        with pytest.raises(WrongSecret):
            pairing.pair(code="000000" if pairing.code != "000000" else "111111")
    pairing.pair(code=pairing.code)  # not locked: the count started again


def test_revoke_restore_and_rename_persist(tmp_path: Path) -> None:
    store = PairingStore(tmp_path / "pairing.db")
    phone, token = store.pair(code=store.code)
    store.revoke(phone.id)
    assert store.phone_for_token(token) is None
    assert not store.is_paired(phone.id)
    store.close()
    again = PairingStore(tmp_path / "pairing.db")
    assert again.phone_for_token(token) is None
    assert again.phone(phone.id).revoked
    again.restore(phone.id)
    again.rename(phone.id, "Co-worker")
    assert again.phone_for_token(token) == again.phone(phone.id)
    assert again.phone(phone.id).name == "Co-worker"
    with pytest.raises(ValueError):
        again.rename(phone.id, "   ")
    with pytest.raises(NotFound):
        again.revoke("deadbeef")


def test_last_seen_follows_the_clock(pairing: PairingStore, seconds: FakeSeconds) -> None:
    phone, token = pairing.pair(code=pairing.code)
    seconds.advance(90)
    assert pairing.seen_ago_s(phone.id) == pytest.approx(90)
    pairing.phone_for_token(token)
    assert pairing.seen_ago_s(phone.id) == 0


def test_an_unusable_file_is_a_storage_error(tmp_path: Path) -> None:
    bad = tmp_path / "pairing.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError):
        PairingStore(bad)
