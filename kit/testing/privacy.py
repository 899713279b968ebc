"""Consent and keys for tests: an organisation key pair, a consent record, a RAM key dir."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from kit.config import Config
from kit.crypto.keys import OrgKeyPair, new_org_key
from kit.model import Consent, ConsentBy, Purpose

EVERY_PURPOSE = frozenset(Purpose)


@functools.cache
def org_key() -> OrgKeyPair:
    """One organisation key pair for the whole test run."""
    return new_org_key()


def org_key_file(directory: Path) -> Path:
    """The organisation's private key as ``kit keys new`` writes it."""
    path = directory / "org.key"
    path.write_text(org_key().identity_file("2026-11-30T00:00:00Z"), encoding="utf-8")
    return path


def erase_by(days: int = 60) -> str:
    return (datetime.now(tz=UTC).date() + timedelta(days=days)).isoformat()


def consent(
    purposes: frozenset[Purpose] = EVERY_PURPOSE, given_by: ConsentBy = ConsentBy.PARENT
) -> Consent:
    """A consent record to start test visits with (every purpose, erased in 60 days)."""
    return Consent(given_by=given_by, purposes=purposes, erase_by=erase_by())


def consent_json(purposes: frozenset[Purpose] = EVERY_PURPOSE) -> dict[str, object]:
    """The same, as the phone posts it."""
    return consent(purposes).as_json()


def key_dir_for(data: Path) -> Path:
    """A RAM directory (tmpfs, where there is one) for the keys of the kit on ``data``,
    outside ``data`` itself, as on a Pi (/run/kit/keys)."""
    digest = hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:16]
    shm = Path("/dev/shm")  # noqa: S108 - a RAM dir for test keys, as /run/kit/keys on a Pi
    base = shm if shm.is_dir() else data.resolve().parent
    return base / "kit-test-keys" / digest


def with_privacy(config: Config, data: Path) -> Config:
    """``config`` with the test organisation's key and a key dir for ``data``."""
    privacy = replace(
        config.privacy, recipients=(org_key().public,), key_dir=str(key_dir_for(data))
    )
    return replace(config, privacy=privacy)


def today() -> date:
    return datetime.now(tz=UTC).date()
