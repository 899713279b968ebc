"""The kit's own signing key: every bundle's manifest is signed with it (Ed25519).

Made on the kit's first start and kept beside its data (``signing.key``,
readable by the kit's user only). Its public key travels in every bundle;
its fingerprint is shown on the phone and by ``kit check``, so whoever
receives a bundle can tell which kit made it. A lost kit's fingerprint is
what the organisation stops trusting.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kit.errors import KitError

PUBLIC_PREFIX = "kit-ed25519:"


class BadKitKey(KitError):
    """A public key or signature that is not a kit's."""


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    if not text.startswith(PUBLIC_PREFIX):
        raise BadKitKey(f"not a kit public key (it should start with {PUBLIC_PREFIX!r})")
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text[len(PUBLIC_PREFIX) :]))
    except ValueError as exc:
        raise BadKitKey(f"not a kit public key: {exc}") from exc


def fingerprint(public: str) -> str:
    """A short, readable name of a kit public key: 16 hex digits of its SHA-256, in fours."""
    digest = hashlib.sha256(public.encode("ascii")).hexdigest()[:16]
    return " ".join(digest[i : i + 4] for i in range(0, 16, 4))


def verify_signature(public: str, data: bytes, signature: bytes) -> bool:
    try:
        parse_public_key(public).verify(signature, data)
    except InvalidSignature:
        return False
    return True


class Signer:
    """Signs with the kit's private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = public_key_text(key.public_key())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)  # Ed25519 is deterministic: same manifest, same signature

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        """The key at ``path``, made there (owner-only, written atomically) if it is missing."""
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (ValueError, TypeError) as exc:
                raise BadKitKey(f"the kit's signing key {path} is damaged: {exc}") from exc
            if not isinstance(key, Ed25519PrivateKey):
                raise BadKitKey(f"{path} is not an Ed25519 key")
            return cls(key)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temp = path.with_name(f".{path.name}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        temp.replace(path)
        return cls(key)
