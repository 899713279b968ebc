"""A visit bundle: everything of one sealed visit, as it is on the card, plus a signed manifest.

A bundle is a folder named ``vig-visit-<date>-<visit id>``::

    key.age                the visit's data key, wrapped for the organisation (age)
    index.json             the kit's record of the visit: its rows, texts still sealed
    takes/<take>/take.mp4  encrypted (kit/crypto/FORMAT.md), as are all below
    takes/<take>/video.kvs raw streams of a take the kit could not finish
    cut/...                the rough cut, stills and exports
    manifest.json          what is in it: ids, consent, every file's size and SHA-256
    manifest.sig           the manifest's Ed25519 signature by the kit (kit/handoff/signing.py)

Nothing is decrypted to make a bundle (the kit cannot: the visit is sealed),
and nothing in it is readable without the organisation's key: the case
reference in the manifest is the sealed text the kit's index holds. The
manifest and its signature are written last, so a folder that has them is
complete. A manifest is a function of the visit alone (times are the
visit's, Ed25519 signs deterministically): the same visit gives the same
bytes after a restart, which lets a download resume.

On a FAT32 stick a file over 4 GiB is written in numbered parts
(``take.mp4.001``, ``take.mp4.002``, ...) whose concatenation is the file
the manifest names; :func:`open_entry` reads either form.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from kit import __version__
from kit.errors import KitError, NotFound, StateError
from kit.handoff.signing import Signer
from kit.model import Access, Visit
from kit.store import layout
from kit.store.database import Database

FORMAT = "vig-kit-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
INDEX = "index.json"
GENERATED = (INDEX, MANIFEST, SIGNATURE)
FAT32_MAX_FILE = 4 * 2**30 - 1
PART_BYTES = 2**31  # parts of 2 GiB stay well inside FAT32's limit
_CHUNK = 1 << 20

Progress = Callable[[int, int], None]  # bytes done, bytes in all


def _no_progress(_done: int, _total: int) -> None:
    pass


class NotBundleable(StateError):
    """A visit that cannot leave the kit as a bundle (yet)."""


@dataclass(frozen=True)
class Entry:
    """One file of a bundle: on the card (``source``) or made for it (``data``)."""

    path: str  # relative to the bundle folder, "/" separators
    size: int
    sha256: str
    source: Path | None = None
    data: bytes | None = None

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.source is not None
        return self.source.open("rb")

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Bundle:
    """A bundle ready to be written or streamed: its files in the order they are written."""

    name: str
    visit_id: str
    entries: tuple[Entry, ...]  # the manifest and its signature last
    fingerprint: str  # of the kit that signed it
    mtime: int  # seconds since the epoch, for every file of a tar or a stick

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)


def bundle_name(visit: Visit) -> str:
    day = (visit.started_wall or "")[:10].replace("-", "")
    return f"vig-visit-{day}-{visit.id}" if day.isdigit() else f"vig-visit-{visit.id}"


def _wall_seconds(wall: str) -> int:
    try:
        return int(datetime.fromisoformat(wall).timestamp())
    except ValueError:
        return 0


def check_bundleable(visit: Visit) -> None:
    if visit.is_open:
        raise NotBundleable("the visit is still open: end it first, then take it off the kit")
    if visit.access == Access.PLAIN:
        raise NotBundleable(
            "this visit was recorded before encryption at rest: it cannot leave the kit "
            "as a bundle (take it from the card)"
        )
    if visit.access == Access.READABLE:
        raise NotBundleable("the visit is still being finished (its rough cut): try again soon")


def hash_file(f: BinaryIO, progress: Callable[[int], None] | None = None) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return size, digest.hexdigest()


def _made(path: str, data: bytes) -> Entry:
    return Entry(path, len(data), hashlib.sha256(data).hexdigest(), data=data)


def _canonical(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def make_bundle(
    db: Database,
    data_dir: Path,
    visit_id: str,
    signer: Signer,
    *,
    progress: Progress = _no_progress,
) -> Bundle:
    """Hash a sealed visit's files and sign its manifest (reads every file once)."""
    visit = db.visit(visit_id)
    check_bundleable(visit)
    directory = data_dir / layout.visit_dir(visit_id)
    if not (directory / "key.age").is_file():
        raise NotFound(f"visit {visit_id} has no wrapped key on the card")
    sources = sorted(
        (p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.relative_to(directory).as_posix(),
    )
    total = sum(p.stat().st_size for p in sources)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    entries = []
    for path in sources:
        with path.open("rb") as f:
            size, digest = hash_file(f, step)
        entries.append(Entry(path.relative_to(directory).as_posix(), size, digest, source=path))
    visit_rows = db.visit_rows(visit_id)
    entries.append(_made(INDEX, _canonical(visit_rows)))
    rows = visit_rows["visits"][0]
    name = bundle_name(visit)
    manifest = {
        "format": FORMAT,
        "name": name,
        "visit_id": visit.id,
        "case_ref": rows["case_ref"],  # sealed: only the organisation's key reads it
        "started": visit.started_wall,
        "ended": visit.ended_wall,
        "consent": visit.consent.as_json() if visit.consent else None,
        "access": visit.access.value,
        "kit": {"public_key": signer.public, "fingerprint": signer.fingerprint},
        "made_by": f"vig-kit {__version__}",
        "files": [e.as_json() for e in entries],
    }
    manifest_bytes = _canonical(manifest)
    signature = signer.sign(manifest_bytes)
    entries += [_made(MANIFEST, manifest_bytes), _made(SIGNATURE, signature)]
    progress(total, total)
    return Bundle(
        name,
        visit_id,
        tuple(entries),
        signer.fingerprint,
        _wall_seconds(visit.ended_wall or visit.started_wall),
    )


# reading a bundle folder (whole files or FAT32 parts)


def part_paths(folder: Path, rel: str) -> list[Path]:
    """The numbered parts of ``rel`` in ``folder``, in order (none if it is whole)."""
    whole = folder / rel
    parts = []
    n = 1
    while (part := whole.with_name(f"{whole.name}.{n:03d}")).is_file():
        parts.append(part)
        n += 1
    return parts


class _Joined(io.RawIOBase):
    """Several files read as one, with seeking (for a file split on a FAT32 stick)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._files = [p.open("rb") for p in paths]
        self._starts = []
        offset = 0
        for f in self._files:
            self._starts.append(offset)
            offset += os.fstat(f.fileno()).st_size
        self._size = offset
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or not len(view):
            return 0
        i = max(k for k, start in enumerate(self._starts) if start <= self._pos)
        f = self._files[i]
        f.seek(self._pos - self._starts[i])
        n = f.readinto(view) or 0
        self._pos += n
        return n

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def open_entry(folder: Path, rel: str) -> BinaryIO:
    """The file ``rel`` of the bundle ``folder``, whole or joined from its parts."""
    whole = folder / rel
    if whole.is_file():
        return whole.open("rb")
    parts = part_paths(folder, rel)
    if not parts:
        raise FileNotFoundError(f"{rel} is missing")
    return io.BufferedReader(_Joined(parts), _CHUNK)


def unsafe_path(rel: object) -> bool:
    """Whether a manifest's file path could point outside its bundle, or at the bundle's own
    manifest and signature (a hostile or damaged manifest)."""
    return (
        not isinstance(rel, str)
        or not rel
        or rel.startswith("/")
        or "\\" in rel
        or any(c in rel for c in "\r\n\x00")
        or any(part in ("", ".", "..") for part in rel.split("/"))
        or rel in (MANIFEST, SIGNATURE)
    )


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise KitError(f"{folder} is not a bundle: it has no {MANIFEST}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KitError(f"{folder}/{MANIFEST} is damaged: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise KitError(f"{folder} is not a bundle this kit knows")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise KitError(f"{folder}/{MANIFEST} has no list of files")
    for item in files:
        if unsafe_path(item.get("path")):
            raise KitError(f"{folder}/{MANIFEST} names a file it must not: {item.get('path')!r}")
    return manifest


def is_bundle(path: Path) -> bool:
    return (path / MANIFEST).is_file() or (path.is_file() and path.suffix == ".tar")


def chunks(f: BinaryIO, size: int = _CHUNK) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk
