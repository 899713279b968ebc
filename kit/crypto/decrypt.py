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
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.crypto.chunked import EncryptedFile
from kit.crypto.keys import unwrap
from kit.errors import CorruptMedia, KitError
from kit.recording.mux import EmptyTake, mux_take
from kit.store import layout
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


def _visit_dirs(source: Path) -> list[Path]:
    if (source / "key.age").is_file():
        return [source]
    visits = source / layout.VISITS
    if not visits.is_dir():
        raise KitError(f"{source} is neither a kit data directory nor a visit")
    return sorted(d for d in visits.iterdir() if (d / "key.age").is_file())


def decrypt(source: Path, identities: Sequence[str], out: Path) -> list[DecryptedVisit]:
    """Decrypt every encrypted visit below ``source`` into ``out`` (which must not hold them)."""
    done = []
    dirs = _visit_dirs(source)
    if not dirs:
        raise KitError(f"no encrypted visit in {source}")
    for directory in dirs:
        visit_id = directory.name
        target = out / layout.visit_dir(visit_id)
        if target.exists():
            raise KitError(f"{target} exists already: decrypt into an empty directory")
        key = unwrap((directory / "key.age").read_bytes(), identities)
        result = DecryptedVisit(visit_id, target)
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            if path.name == "key.age" or path.name.startswith("."):
                continue  # the wrapped key stays behind; dot files are unfinished temp files
            rel = path.relative_to(directory)
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                result.bytes += _decrypt_file(path, key, dest)
                result.files += 1
            except CorruptMedia as exc:
                dest.unlink(missing_ok=True)
                log.error("%s cannot be decrypted: %s", rel, exc)
                result.damaged.append(f"{rel}: {exc}")
        _finish_takes(out, visit_id, result)
        _write_index(source, out, visit_id, key)
        done.append(result)
    return done


def _decrypt_file(path: Path, key: bytes, dest: Path) -> int:
    with path.open("rb") as raw, EncryptedFile.open(raw, key) as plain, dest.open("wb") as f:
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


def _write_index(source: Path, out: Path, visit_id: str, key: bytes) -> None:
    """``visit.json``: the visit's record from the kit's index, its texts decrypted."""
    from kit.store.database import Database

    database = source / layout.DATABASE
    if not database.is_file():
        return
    with tempfile.TemporaryDirectory() as tmp:
        # A copy: opening the card's own index could change it (a migration, the WAL).
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{database}{suffix}").is_file():
                shutil.copyfile(f"{database}{suffix}", f"{tmp}/kit.db{suffix}")
        db = Database(Path(tmp) / "kit.db", keys=lambda v: key if v == visit_id else None)
        try:
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
