"""``kit decrypt``: a sealed visit (or a whole data directory) back to plain files, on a
laptop, with the organisation's private key.

The output mirrors the data directory (``visits/<id>/takes/<take>/take.mp4``,
``visits/<id>/cut/...``) plus a ``visit.json`` per visit holding what the
kit's index knew (consent, case reference, takes, tags with their notes).
A take the kit never finished (it lost its key to a power cut) is finished
here, from its raw streams, exactly as the kit would have.
"""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from kit.crypto.chunked import EncryptedFile
from kit.crypto.keys import unwrap
from kit.errors import CorruptMedia, KitError
from kit.handoff.bundle import GENERATED, INDEX, MANIFEST, open_entry, read_manifest
from kit.handoff.verify import verify_bundle
from kit.recording.mux import EmptyTake, mux_take
from kit.store import layout
from kit.store.database import Database
from kit.store.files import FileLayer

log = logging.getLogger(__name__)

_COPY = 1 << 20


@dataclass
class DecryptedVisit:
    """What ``kit decrypt`` wrote for one visit."""

    visit_id: str
    directory: Path
    files: int = 0
    bytes: int = 0
    finished_takes: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # files that failed (named, kept out)


@dataclass(frozen=True)
class _Source:
    """One encrypted visit to decrypt: a visit folder of a data directory, or a bundle."""

    visit_id: str
    directory: Path
    bundle: bool


def _sources(source: Path) -> list[_Source]:
    if (source / MANIFEST).is_file():
        return [_Source(str(read_manifest(source)["visit_id"]), source, True)]
    if (source / "key.age").is_file():
        return [_Source(source.name, source, False)]
    visits = source / layout.VISITS
    if visits.is_dir():
        return [
            _Source(d.name, d, False) for d in sorted(visits.iterdir()) if (d / "key.age").is_file()
        ]
    bundles = (
        sorted(d for d in source.iterdir() if (d / MANIFEST).is_file()) if source.is_dir() else []
    )
    if not bundles:
        raise KitError(f"{source} is neither a kit data directory, a visit nor a bundle")
    return [_Source(str(read_manifest(d)["visit_id"]), d, True) for d in bundles]


def decrypt(source: Path, identities: Sequence[str], out: Path) -> list[DecryptedVisit]:
    """Decrypt every encrypted visit below ``source`` into ``out`` (which must not hold them).

    ``source`` is a kit data directory, one visit's folder, a bundle (its folder or the
    ``.tar`` a laptop downloaded) or a folder of bundles (a USB stick). A bundle is
    verified first (kit/handoff/verify.py) and refused if anything in it is wrong.
    """
    if source.is_file():
        return _decrypt_tar(source, identities, out)
    done = []
    found = _sources(source)
    if not found:
        raise KitError(f"no encrypted visit in {source}")
    for item in found:
        if item.bundle:
            report = verify_bundle(item.directory)
            if not report.ok:
                raise KitError(
                    f"the bundle {item.directory} does not verify ({len(report.problems)} "
                    f"problem(s), first: {report.problems[0]}); see `kit verify`"
                )
        done.append(_decrypt_visit(source, item, identities, out))
    return done


def decrypt_for_editing(
    source: Path, identities: Sequence[str], out: Path
) -> list[tuple[DecryptedVisit, Path]]:
    """:func:`decrypt`, then each visit as an editor-ready work folder in ``out``
    (:mod:`kit.handoff.workfolder`); the kit-layout copy made on the way is removed."""
    from kit.handoff.workfolder import write_work_folder

    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".decrypting-", dir=out))
    try:
        results = decrypt(source, identities, staging)
        return [(r, write_work_folder(r.directory, out)) for r in results]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _decrypt_tar(source: Path, identities: Sequence[str], out: Path) -> list[DecryptedVisit]:
    """A downloaded bundle: unpacked next to the output (the tar's own files only), then
    decrypted as a folder, the unpacked copy removed."""
    out.mkdir(parents=True, exist_ok=True)
    unpacked = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out))
    try:
        try:
            with tarfile.open(source, "r:") as tar:
                tar.extractall(unpacked, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise KitError(f"{source} is not a readable bundle: {exc}") from exc
        folders = [d for d in unpacked.iterdir() if d.is_dir()]
        if len(folders) != 1:
            raise KitError(f"{source} is not a bundle (it should hold one folder)")
        return decrypt(folders[0], identities, out)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def _decrypt_visit(
    source: Path, item: _Source, identities: Sequence[str], out: Path
) -> DecryptedVisit:
    visit_id = item.visit_id
    directory = item.directory
    target = out / layout.visit_dir(visit_id)
    if target.exists():
        raise KitError(f"{target} exists already: decrypt into an empty directory")
    key = unwrap((directory / "key.age").read_bytes(), identities)
    result = DecryptedVisit(visit_id, target)
    if item.bundle:
        names = [str(f["path"]) for f in read_manifest(directory)["files"]]
    else:
        names = sorted(
            p.relative_to(directory).as_posix()
            for p in directory.rglob("*")
            if p.is_file() and not p.name.startswith(".")  # dot files: unfinished temp files
        )
    for rel in names:
        if rel == "key.age" or rel in GENERATED:
            continue  # the wrapped key and the bundle's own files stay behind
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open_entry(directory, rel) as raw:
                result.bytes += _decrypt_file(raw, key, dest)
            result.files += 1
        except CorruptMedia as exc:
            dest.unlink(missing_ok=True)
            log.error("%s cannot be decrypted: %s", rel, exc)
            result.damaged.append(f"{rel}: {exc}")
    _finish_takes(out, visit_id, result)
    if item.bundle:
        rows = json.loads((directory / INDEX).read_bytes())
        _write_index(out, visit_id, key, lambda db: db.add_visit_rows(rows))
    else:
        database = source / layout.DATABASE
        if database.is_file():
            _write_index(out, visit_id, key, lambda _db: None, copy_of=database)
    return result


def _decrypt_file(raw: BinaryIO, key: bytes, dest: Path) -> int:
    with EncryptedFile.open(raw, key) as plain, dest.open("wb") as f:
        copied = 0
        while chunk := plain.read(_COPY):
            f.write(chunk)
            copied += len(chunk)
    return copied


def _finish_takes(out: Path, visit_id: str, result: DecryptedVisit) -> None:
    """Make an MP4 of every take that has raw streams but no film (a lost key)."""
    files = FileLayer(out)
    takes = out / layout.visit_dir(visit_id) / "takes"
    if not takes.is_dir():
        return
    for take in sorted(takes.iterdir()):
        directory = layout.take_dir(visit_id, take.name)
        if not files.exists(layout.raw_video(directory)):
            continue
        try:
            if not files.exists(layout.take_mp4(directory)):
                mux_take(files, directory)
                result.finished_takes.append(take.name)
        except (EmptyTake, CorruptMedia, OSError, ValueError) as exc:
            result.damaged.append(f"take {take.name}: no film from its raw streams: {exc}")
            continue
        for raw in (layout.raw_video(directory), layout.raw_audio(directory)):
            files.remove(raw)


def _write_index(
    out: Path,
    visit_id: str,
    key: bytes,
    fill: Callable[[Database], None],
    *,
    copy_of: Path | None = None,
) -> None:
    """``visit.json``: the visit's record from the kit's index, its texts decrypted.

    The index is a copy of the kit's database (``copy_of``: opening the card's own
    could change it, a migration, the WAL) or a new one that ``fill`` puts the
    bundle's rows in.
    """
    with tempfile.TemporaryDirectory() as tmp:
        if copy_of is not None:
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{copy_of}{suffix}").is_file():
                    shutil.copyfile(f"{copy_of}{suffix}", f"{tmp}/kit.db{suffix}")
        db = Database(Path(tmp) / "kit.db", keys=lambda v: key if v == visit_id else None)
        try:
            fill(db)
            visit = db.visit(visit_id)
            record: dict[str, Any] = {
                "visit": visit.as_json(),
                "takes": [t.as_json() for t in db.takes(visit_id)],
                "tags": [t.as_json() for t in db.tags_for_visit(visit_id)],
            }
        except KitError as exc:
            log.warning("the kit's index has no record of visit %s: %s", visit_id, exc)
            return
        finally:
            db.close()
    record["visit"]["access"] = "decrypted"
    target = out / layout.visit_dir(visit_id) / "visit.json"
    target.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
