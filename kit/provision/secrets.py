"""The kit's two secrets, made once and never overwritten.

* The **signing key** (``signing.key``): written to a temporary file (0600,
  fsynced), then linked into place with ``link(2)``, which fails if the key
  is already there, so a key another process made in the meantime wins and
  nothing ever replaces one. An existing key is only read; a damaged one is
  an error, never a reason to make a new one (bundles signed by it would no
  longer verify against the fingerprint the organisation trusts).
* The **pairing secret** (``pairing.db``, web/pairing.py): the pairing store
  inserts it only when there is none (``INSERT OR IGNORE``), in a file made 0600.

``kit run``, ``kit export`` and ``kit check`` still make either lazily if it is
missing (a laptop never runs ``kit first-boot``); on a kit, first boot has made both.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kit.errors import StorageError
from kit.handoff.signing import Signer

SECRET_MODE = 0o600  # the kit's user only


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_signing_key(path: Path) -> tuple[Signer, bool]:
    """The kit's signing key at ``path``, made there if missing; and whether it was made now.

    Raises :class:`kit.handoff.signing.BadKitKey` for a key that is there but damaged.
    """
    if path.exists():
        return Signer.load_or_create(path), False  # only loads: never writes over a key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), SECRET_MODE)
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return Signer.load_or_create(path), False  # made meanwhile by another process
        _fsync_dir(path.parent)
    except OSError as exc:
        raise StorageError(f"cannot write the kit's signing key {path}: {exc.strerror}") from exc
    finally:
        temp.unlink(missing_ok=True)
    return Signer(key), True


@dataclass(frozen=True)
class Pairing:
    """What the label shows of the pairing secret: the link and the code."""

    link: str
    code: str
    made: bool


def ensure_pairing_secret(path: Path, base_url: str) -> Pairing:
    """The kit's pairing secret in ``path`` (``pairing.db``), made if missing.

    ``base_url`` is where phones open the kit's page (``http://10.42.0.1:8080``).
    """
    from web.pairing import PairingStore

    made = not path.exists()
    store = PairingStore(path)
    try:
        return Pairing(store.label_link(base_url), store.label_code, made)
    finally:
        store.close()
