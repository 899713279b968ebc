"""``kit verify``: is a bundle (a folder, or the ``.tar`` a laptop downloaded) whole and the kit's?

Checks the manifest's signature against the kit key it names (and, given
trusted keys or fingerprints, that the kit is one of them), then every file
against its size and SHA-256, and names each file that is missing, changed
or not in the manifest. Nothing is decrypted: no key is needed.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kit.errors import KitError
from kit.handoff.bundle import (
    FORMAT,
    MANIFEST,
    SIGNATURE,
    hash_file,
    open_entry,
    part_paths,
    read_manifest,
    unsafe_path,
)
from kit.handoff.signing import BadKitKey, fingerprint, verify_signature

Progress = Callable[[int, int], None]


@dataclass
class Report:
    """What :func:`verify_bundle` found."""

    path: Path
    name: str = ""
    visit_id: str = ""
    fingerprint: str = ""  # of the kit that signed the manifest
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "visit_id": self.visit_id,
            "kit_fingerprint": self.fingerprint,
            "files": self.files,
            "bytes": self.bytes,
            "ok": self.ok,
            "problems": self.problems,
        }


def _check_manifest(
    report: Report, manifest_bytes: bytes, signature: bytes | None, trusted: Sequence[str]
) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads(manifest_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        report.problems.append(f"{MANIFEST}: damaged ({exc})")
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        report.problems.append(f"{MANIFEST}: not a bundle manifest this kit knows")
        return None
    report.name = str(manifest.get("name", ""))
    report.visit_id = str(manifest.get("visit_id", ""))
    public = str(manifest.get("kit", {}).get("public_key", ""))
    try:
        report.fingerprint = fingerprint(public)
        signed = signature is not None and verify_signature(public, manifest_bytes, signature)
    except BadKitKey as exc:
        report.problems.append(f"{MANIFEST}: {exc}")
        return manifest
    if signature is None:
        report.problems.append(f"{SIGNATURE}: missing (the bundle is unsigned or incomplete)")
    elif not signed:
        report.problems.append(
            f"{SIGNATURE}: the signature does not match {MANIFEST} "
            "(the manifest was changed, or was not signed by the kit it names)"
        )
    if trusted and public not in trusted and report.fingerprint not in trusted:
        report.problems.append(
            f"{MANIFEST}: signed by kit {report.fingerprint}, which is not one you trust"
        )
    return manifest


def _listed(report: Report, manifest: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """The manifest's files; one that could point outside the bundle is a problem."""
    files = {}
    for item in manifest.get("files", []):
        try:
            rel, size, digest = item["path"], int(item["size"]), str(item["sha256"])
        except (KeyError, TypeError, ValueError):
            report.problems.append(f"{MANIFEST}: a damaged entry: {item!r}")
            continue
        if unsafe_path(rel):
            report.problems.append(f"{MANIFEST}: names a file it must not: {rel!r}")
            continue
        files[rel] = (size, digest)
    return files


def _compare(report: Report, rel: str, expected: tuple[int, str], got: tuple[int, str]) -> None:
    if got[0] != expected[0]:
        report.problems.append(
            f"{rel}: {got[0]} bytes where the manifest says {expected[0]} (cut short or changed)"
        )
    elif got[1] != expected[1]:
        report.problems.append(
            f"{rel}: its SHA-256 does not match the manifest (changed or damaged)"
        )


def verify_bundle(
    path: Path, *, trusted: Sequence[str] = (), progress: Progress | None = None
) -> Report:
    """Verify the bundle folder or ``.tar`` at ``path``; the report lists every problem."""
    if path.is_dir():
        return _verify_folder(path, trusted, progress)
    if path.is_file():
        return _verify_tar(path, trusted, progress)
    raise KitError(f"{path} does not exist")


def _verify_folder(folder: Path, trusted: Sequence[str], progress: Progress | None) -> Report:
    report = Report(folder)
    read_manifest(folder)  # a clear error for a folder that is no bundle at all
    signature = (folder / SIGNATURE).read_bytes() if (folder / SIGNATURE).is_file() else None
    manifest = _check_manifest(report, (folder / MANIFEST).read_bytes(), signature, trusted)
    if manifest is None:
        return report
    listed = _listed(report, manifest)
    total = sum(size for size, _ in listed.values())
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    seen = {MANIFEST, SIGNATURE}
    for rel, expected in listed.items():
        seen.add(rel)
        seen.update(p.relative_to(folder).as_posix() for p in part_paths(folder, rel))
        try:
            with open_entry(folder, rel) as f:
                got = hash_file(f, step)
        except FileNotFoundError:
            report.problems.append(f"{rel}: missing")
            continue
        report.files += 1
        report.bytes += got[0]
        _compare(report, rel, expected, got)
    for extra in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = extra.relative_to(folder).as_posix()
        if rel not in seen:
            report.problems.append(f"{rel}: not in the manifest")
    return report


def _read_tar(
    path: Path, report: Report, progress: Progress | None
) -> tuple[dict[str, tuple[int, str]], bytes | None, bytes | None]:
    """Every file's size and hash in the tar, and the manifest and signature bytes."""
    found: dict[str, tuple[int, str]] = {}
    generated: dict[str, bytes] = {}
    total = path.stat().st_size
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                rel = member.name.partition("/")[2]
                if member.isdir():
                    continue
                if not member.isfile() or not rel or ".." in rel.split("/"):
                    report.problems.append(f"{member.name}: not a plain file of the bundle")
                    continue
                f: IO[bytes] | None = tar.extractfile(member)
                assert f is not None
                if rel in (MANIFEST, SIGNATURE):
                    generated[rel] = f.read()
                    continue
                found[rel] = hash_file(f)  # type: ignore[arg-type]
                if progress is not None:
                    progress(min(total, member.offset_data + member.size), total)
    except tarfile.TarError as exc:
        report.problems.append(f"{path.name}: not a readable tar ({exc}): the download is damaged")
    return found, generated.get(MANIFEST), generated.get(SIGNATURE)


def _verify_tar(path: Path, trusted: Sequence[str], progress: Progress | None) -> Report:
    report = Report(path)
    found, manifest_bytes, signature = _read_tar(path, report, progress)
    if manifest_bytes is None:
        report.problems.append(f"{MANIFEST}: missing (the download is incomplete)")
        return report
    manifest = _check_manifest(report, manifest_bytes, signature, trusted)
    if manifest is None:
        return report
    listed = _listed(report, manifest)
    for rel, expected in listed.items():
        if rel not in found:
            report.problems.append(f"{rel}: missing")
            continue
        report.files += 1
        report.bytes += found[rel][0]
        _compare(report, rel, expected, found[rel])
    for rel in sorted(set(found) - set(listed)):
        report.problems.append(f"{rel}: not in the manifest")
    return report
