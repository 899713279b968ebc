"""The data keys of the visits the kit may read (open, or ended and not yet sealed).

Held in memory and, so that a restart of the daemon (a crash, an update)
keeps them, in a directory that must be RAM: ``/run/kit/keys`` on the Pi, a
tmpfs that systemd keeps across restarts of the unit and that a power cut,
a reboot or a lost kit empties. Forgetting a key (sealing a visit) removes
both copies; the card only ever holds the organisation-wrapped ``key.age``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

from kit.crypto.keys import DATA_KEY_BYTES
from kit.errors import ConfigError

log = logging.getLogger(__name__)

RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})
_ID = re.compile(r"[0-9a-f]{12}")


def filesystem_type(path: Path) -> str:
    """The type of the filesystem ``path`` is on (from /proc/self/mounts), or ""."""
    target = path.resolve()
    best, kind = "", ""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == Path(mount) or Path(mount) in target.parents
        if inside and len(mount) >= len(best):
            best, kind = mount, parts[2]
    return kind


class Keyring:
    """Visit id -> data key; ``directory`` None keeps them in this process only."""

    def __init__(self, directory: Path | None = None, *, require_ram: bool = False) -> None:
        self._dir = directory
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()
        if directory is None:
            return
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        except OSError as exc:
            raise ConfigError(f"privacy.key_dir {directory}: {exc.strerror}") from None
        kind = filesystem_type(directory)
        if kind not in RAM_FILESYSTEMS:
            message = (
                f"privacy.key_dir {directory} is on {kind or 'an unknown filesystem'}, not RAM "
                "(tmpfs): visit keys there would survive a power cut"
            )
            if require_ram:
                raise ConfigError(message)
            log.warning("%s", message)
        self._load()

    def _load(self) -> None:
        assert self._dir is not None
        for path in self._dir.glob("*.key"):
            data = path.read_bytes()
            if _ID.fullmatch(path.stem) and len(data) == DATA_KEY_BYTES:
                self._keys[path.stem] = data

    def get(self, visit_id: str) -> bytes | None:
        with self._lock:
            return self._keys.get(visit_id)

    def __contains__(self, visit_id: object) -> bool:
        with self._lock:
            return visit_id in self._keys

    def put(self, visit_id: str, key: bytes) -> None:
        if len(key) != DATA_KEY_BYTES:
            raise ValueError("a data key is 32 bytes")
        with self._lock:
            self._keys[visit_id] = key
            if self._dir is not None:
                path = self._dir / f"{visit_id}.key"
                tmp = path.with_name(f".{path.name}.partial")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, key)
                finally:
                    os.close(fd)
                tmp.replace(path)

    def forget(self, visit_id: str) -> None:
        """Drop the key everywhere the kit holds it (idempotent)."""
        with self._lock:
            self._keys.pop(visit_id, None)
            if self._dir is not None:
                (self._dir / f"{visit_id}.key").unlink(missing_ok=True)

    def forget_all(self) -> None:
        """What a power cut does: every key gone (for tests and ``kit`` shutdown paths)."""
        for visit_id in list(self._keys):
            self.forget(visit_id)
