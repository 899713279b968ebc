"""Short texts of an encrypted visit (case reference, labels, notes) as the database stores them.

``enc1:`` + base64 of a random 12-byte nonce and the ChaCha20-Poly1305
ciphertext, under a key derived from the visit's data key
(HKDF-SHA256, info ``kit/field/v1``). The associated data names the table,
column and row (``tags.note:<tag id>``), so a value copied to another row or
column does not decrypt. Anything else is plain text from before encryption.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kit.errors import CorruptMedia

PREFIX = "enc1:"
_NONCE = 12


def _field_key(data_key: bytes) -> ChaCha20Poly1305:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kit/field/v1")
    return ChaCha20Poly1305(hkdf.derive(data_key))


def is_sealed_text(stored: str) -> bool:
    return stored.startswith(PREFIX)


def seal_text(data_key: bytes, context: str, text: str) -> str:
    nonce = os.urandom(_NONCE)
    sealed = _field_key(data_key).encrypt(nonce, text.encode("utf-8"), context.encode())
    return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")


def open_text(data_key: bytes, context: str, stored: str) -> str:
    """The text ``stored`` holds; CorruptMedia if it was not sealed under this key and context."""
    if not is_sealed_text(stored):
        return stored
    try:
        raw = base64.b64decode(stored[len(PREFIX) :], validate=True)
        plain = _field_key(data_key).decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
    except (ValueError, InvalidTag):
        raise CorruptMedia(f"an encrypted {context.partition(':')[0]} does not decrypt") from None
    return plain.decode("utf-8")
