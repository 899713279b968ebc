"""Keys: the organisation's age key pair and the visits' data keys.

Each visit has its own 32-byte data key, made when the visit starts. The kit
writes it to the card only wrapped (age, X25519) for the organisation's
public keys, so only the organisation's private key, kept off the kit,
unwraps it. ``kit keys new`` makes such a pair; its secret half is an age
identity file, so the ``age`` tool opens wrapped keys too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyrage

from kit.errors import ConfigError, CorruptMedia

DATA_KEY_BYTES = 32


class WrongOrgKey(CorruptMedia):
    """None of the given organisation keys opens this visit's wrapped data key."""


@dataclass(frozen=True)
class OrgKeyPair:
    """An organisation key pair: ``secret`` (AGE-SECRET-KEY-1...) and ``public`` (age1...)."""

    secret: str
    public: str

    def identity_file(self, created: str) -> str:
        """The pair as an age identity file (the format ``age-keygen`` writes)."""
        return f"# created: {created}\n# public key: {self.public}\n{self.secret}\n"


def new_org_key() -> OrgKeyPair:
    identity = pyrage.x25519.Identity.generate()
    return OrgKeyPair(secret=str(identity), public=str(identity.to_public()))


def new_data_key() -> bytes:
    return os.urandom(DATA_KEY_BYTES)


def wrap(data_key: bytes, recipients: Sequence[str]) -> bytes:
    """``data_key`` encrypted (age) for every organisation public key in ``recipients``."""
    if not recipients:
        raise ConfigError("no organisation key to encrypt for: set privacy.recipients")
    try:
        keys = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except pyrage.RecipientError as exc:
        raise ConfigError(f"privacy.recipients: {exc}") from None
    return bytes(pyrage.encrypt(data_key, keys))


def unwrap(wrapped: bytes, identities: Sequence[str]) -> bytes:
    """The data key inside ``wrapped``; WrongOrgKey if no identity opens it."""
    try:
        keys = [pyrage.x25519.Identity.from_str(i) for i in identities]
        key = bytes(pyrage.decrypt(wrapped, keys))
    except (pyrage.IdentityError, pyrage.DecryptError) as exc:
        raise WrongOrgKey(f"the organisation key does not open this visit ({exc})") from None
    if len(key) != DATA_KEY_BYTES:
        raise WrongOrgKey("the wrapped visit key has the wrong length")
    return key


def read_identities(path: Path) -> list[str]:
    """The age secret keys in an identity file (comments and blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the organisation key {path}: {exc}") from None
    found = [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-")]
    if not found:
        raise ConfigError(f"{path} holds no age secret key (AGE-SECRET-KEY-1...)")
    return found
