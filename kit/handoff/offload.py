"""``kit offload``: send visit bundles to the organisation's own storage through rclone.

Each bundle goes to ``REMOTE:PATH/<bundle name>/``. There is no server of our
own: rclone talks to whatever the organisation already has (SharePoint or
OneDrive, S3, WebDAV, SFTP...), set up once in the user's ``rclone.conf``
(credentials stay there; ``config`` passes ``--config`` through). rclone runs
as a child process from an argv list; its JSON log gives the progress.

A run can be cut off anywhere and run again:

* **The manifest goes last**: payload files, then ``manifest.sig``, then
  ``manifest.json``, each step only once the one before is verified; so a
  remote bundle holding ``manifest.json`` is complete. A run that has to
  change the payload of a remote bundle deletes its manifest first.
* **Torn files**: rclone 1.60 (Debian 12) writes straight to the final name;
  killed midway, it leaves a short file there (seen on a served WebDAV and on
  a local remote). Newer rclone writes ``*.partial`` names instead and leaves
  those. A short file differs in size and is sent again whole; leftover
  ``*.partial`` files in the bundle's folder are deleted; any other file not
  in the manifest is reported, never deleted.
* **Resumable** file by file: a complete file is never sent again; a file
  cut off midway is sent again from its start.
* **Idempotent**: a second run over a complete remote bundle sends nothing.

**Checksums.** The manifest's SHA-256s are the truth, checked on every run in
the cheapest way the remote allows (``rclone backend features`` names the
hashes it keeps):

* it keeps SHA-256 (a local disk, some SFTP servers): compared directly;
  costs the remote reading its own files, nothing crosses the network;
* it keeps another hash (S3: MD5; OneDrive and SharePoint: QuickXorHash; SFTP:
  MD5 and SHA-1): this computer's files are checked against the manifest's
  SHA-256 and hashed the remote's way, and the remote's hash must match;
  costs one read of the bundle here, nothing crosses the network;
* it keeps none (most WebDAV): every file is downloaded and hashed
  (``rclone hashsum sha256 --download``); costs one download of the bundle
  per run, and one more of each file sent in that run.

A remote file that is missing, short or different is sent again; still
wrong after a second send, the offload fails. A file bigger than a FAT32
stick allows, kept on the stick as numbered parts (``take.mp4.001``...),
goes up joined (``rclone rcat``) so the remote holds the file the manifest
names. The manifest's signature is not checked here: ``kit verify`` does that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from kit.errors import CorruptMedia, KitError, NotFound
from kit.handoff.bundle import MANIFEST, SIGNATURE, part_paths, unsafe_path
from kit.handoff.rclone import (
    EXIT_ERROR,
    OffloadError,
    Rclone,
    display_remote,
    join_remote,
)

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"  # rclone >= 1.63 uploads to "<name>.<random>.partial"
_CHUNK = 1 << 20
_HASHLIB = ("sha256", "md5", "sha1")  # hashes Python computes itself, in one pass

Progress = Callable[[float], None]


# the bundle on this computer


@dataclass(frozen=True)
class Entry:
    """One file the remote bundle must hold: where, how big, and its SHA-256."""

    path: str  # in the bundle, "/" separators
    size: int
    sha256: str
    parts: tuple[Path, ...] = ()  # numbered parts here that join into the file (FAT32)


@dataclass(frozen=True)
class LocalBundle:
    """A bundle folder, read through its manifest."""

    root: Path
    entries: tuple[Entry, ...]  # the payload, as the manifest lists it
    signature: Entry
    manifest: Entry
    unlisted: tuple[str, ...]  # files here the manifest does not name: not sent

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)


def _check_path(path: object, where: Path) -> str:
    if unsafe_path(path):
        raise CorruptMedia(f"{where}: the manifest names a file it must not: {path!r}")
    assert isinstance(path, str)
    return path


def _manifest_entry(item: object, where: Path) -> Entry:
    if not isinstance(item, dict):
        raise CorruptMedia(f"{where}: a manifest entry is not an object")
    size, digest = item.get("size"), item.get("sha256")
    if type(size) is not int or size < 0 or not isinstance(digest, str):
        raise CorruptMedia(f"{where}: the manifest entry {item.get('path')!r} has no size or hash")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise CorruptMedia(f"{where}: {item.get('path')!r} has a malformed SHA-256 in the manifest")
    return Entry(_check_path(item.get("path"), where), size, digest.lower())


def _small_entry(root: Path, name: str) -> Entry:
    data = (root / name).read_bytes()
    return Entry(name, len(data), hashlib.sha256(data).hexdigest())


def read_bundle(root: Path) -> LocalBundle:
    """The bundle in ``root``: its manifest read and checked against the files' sizes.

    Raises :class:`CorruptMedia` for a manifest that cannot be read, names a file
    outside the bundle, or a file that is missing or of the wrong size.
    """
    try:
        manifest = json.loads((root / MANIFEST).read_bytes())
    except (OSError, ValueError) as exc:
        raise CorruptMedia(f"{root}: cannot read {MANIFEST}: {exc}") from None
    if not (root / SIGNATURE).is_file():
        raise CorruptMedia(f"{root}: {SIGNATURE} is missing: the bundle is not signed")
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list):
        raise CorruptMedia(f"{root}: {MANIFEST} has no list of files")
    entries: list[Entry] = []
    for item in files:
        entries.append(_manifest_entry(item, root))
    if len({e.path for e in entries}) != len(entries):
        raise CorruptMedia(f"{root}: the manifest names a file twice")
    checked = tuple(_local_form(root, e) for e in entries)
    listed = {e.path for e in entries} | {MANIFEST, SIGNATURE}
    listed |= {p.relative_to(root).as_posix() for e in checked for p in e.parts}
    unlisted = tuple(
        sorted(
            rel
            for p in root.rglob("*")
            if p.is_file() and (rel := p.relative_to(root).as_posix()) not in listed
        )
    )
    return LocalBundle(
        root, checked, _small_entry(root, SIGNATURE), _small_entry(root, MANIFEST), unlisted
    )


def _local_form(root: Path, entry: Entry) -> Entry:
    whole = root / entry.path
    if whole.is_symlink() or not whole.resolve().is_relative_to(root.resolve()):
        raise CorruptMedia(f"{root}: {entry.path} is a link out of the bundle")
    if whole.is_file():
        if (size := whole.stat().st_size) != entry.size:
            raise CorruptMedia(
                f"{root}: {entry.path} is {size} bytes, the manifest says {entry.size}: "
                "the bundle is damaged here; copy it again"
            )
        return entry
    parts = tuple(part_paths(root, entry.path))
    if parts and sum(p.stat().st_size for p in parts) == entry.size:
        return Entry(entry.path, entry.size, entry.sha256, parts)
    raise CorruptMedia(f"{root}: {entry.path} is missing: the bundle is incomplete here")


def find_bundles(source: Path) -> list[LocalBundle]:
    """One bundle folder, or every bundle folder directly inside ``source`` (by name).

    Hidden folders (a stick's ``.<name>.partial`` being written) are not bundles yet.
    """
    if (source / MANIFEST).is_file():
        return [read_bundle(source)]
    if source.is_file():
        raise NotFound(
            f"{source} is a file: give a bundle folder or a folder of bundles "
            "(unpack a downloaded .tar first)"
        )
    if not source.is_dir():
        raise NotFound(f"no such folder: {source}")
    found = [
        read_bundle(d)
        for d in sorted(source.iterdir())
        if d.is_dir() and not d.name.startswith(".") and (d / MANIFEST).is_file()
    ]
    if not found:
        raise NotFound(f"no bundle in {source}: a bundle is a folder holding {MANIFEST}")
    return found


# the sans-I/O core: what the remote holds, and what to do about it


@dataclass(frozen=True)
class RemoteFile:
    """A file in the remote bundle, as ``rclone lsjson`` lists it."""

    path: str
    size: int
    hash: str = ""  # of the type the offload compares; "" when the remote has none for it


@dataclass(frozen=True)
class Plan:
    """Each entry sorted by what the remote holds of it."""

    good: tuple[Entry, ...] = ()  # there, with the expected hash
    unknown: tuple[Entry, ...] = ()  # there, of the right size, no hash: download to check
    missing: tuple[Entry, ...] = ()  # absent, or of another size (a torn upload): send
    different: tuple[Entry, ...] = ()  # the right size, another hash: send regardless


def plan(
    entries: Iterable[Entry],
    remote: Mapping[str, RemoteFile],
    expected: Mapping[str, str] | None,
) -> Plan:
    """Sort ``entries`` against the remote listing; ``expected`` maps each path to the
    hash the remote should report for it (None: the remote reports none)."""
    sorted_: dict[str, list[Entry]] = {"good": [], "unknown": [], "missing": [], "different": []}
    for e in entries:
        there = remote.get(e.path)
        want = expected.get(e.path) if expected is not None else None
        if there is None or there.size != e.size:
            kind = "missing"
        elif not want or not there.hash:
            kind = "unknown"
        else:
            kind = "good" if there.hash.lower() == want.lower() else "different"
        sorted_[kind].append(e)
    return Plan(**{k: tuple(v) for k, v in sorted_.items()})


# progress


class _Meter:
    """Fractions 0..1 for the caller's callback: monotonic, at most one call per 0.1 %."""

    def __init__(self, callback: Progress | None) -> None:
        self._callback = callback
        self._last = -1.0

    def __call__(self, value: float) -> None:
        value = min(1.0, max(value, self._last, 0.0))
        if self._callback is not None and (
            value - self._last >= 0.001 or (value == 1.0 and self._last < 1.0)
        ):
            self._last = value
            self._callback(value)

    def span(self, lo: float, hi: float) -> Progress:
        return lambda f: self(lo + (hi - lo) * min(1.0, max(0.0, f)))


def _within(progress: Progress, span: tuple[float, float]) -> Progress:
    lo, hi = span
    return lambda f: progress(lo + (hi - lo) * min(1.0, max(0.0, f)))


def _split(lo: float, hi: float, weights: Sequence[float]) -> list[tuple[float, float]]:
    total = sum(weights)
    spans, at = [], lo
    for w in weights:
        end = at + (hi - lo) * (w / total) if total else at
        spans.append((at, end))
        at = end
    return spans


def _joined(parts: Sequence[Path]) -> Callable[[IO[bytes]], None]:
    def write(pipe: IO[bytes]) -> None:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, pipe, _CHUNK)

    return write


def _read(entry: Entry, root: Path) -> Iterable[bytes]:
    for path in entry.parts or (root / entry.path,):
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk


def _choose_hash(rclone: Rclone, remote: str) -> str | None:
    """The hash the offload compares on this remote: SHA-256 if it keeps it, else one of its own."""
    features = json.loads(rclone("backend", "features", remote).stdout or "{}")
    kept = [str(h).lower() for h in features.get("Hashes") or []]
    for preferred in _HASHLIB:
        if preferred in kept:
            return preferred
    return kept[0] if kept else None


# one bundle


@dataclass(frozen=True)
class BundleResult:
    """What an offload did with one bundle."""

    name: str
    destination: str  # credentials left out
    files: int  # payload files in the manifest
    bytes: int
    sent_files: int = 0  # including the manifest and its signature
    sent_bytes: int = 0  # as rclone counted them, retries included
    downloaded_bytes: int = 0  # to check files on a remote that keeps no hash
    resent: tuple[str, ...] = ()  # complete-looking on the remote but different: sent again
    removed_partials: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # on the remote, not in the manifest: left there
    unlisted: tuple[str, ...] = ()  # here, not in the manifest: not sent


class _BundleJob:
    def __init__(
        self, rclone: Rclone, hash_type: str | None, bundle: LocalBundle, dest: str, tmp: Path
    ) -> None:
        self.rclone = rclone
        self.hash_type = hash_type
        self.bundle = bundle
        self.dest = dest
        self.tmp = tmp
        self.local_hash: dict[str, str] | None = None  # the remote's hash type, of files here
        self.sent_files = 0
        self.sent_bytes = 0
        self.downloaded = 0

    def _list_file(self, entries: Iterable[Entry]) -> str:
        path = self.tmp / "files"
        path.write_text("".join(f"{e.path}\n" for e in entries))
        return str(path)

    def listing(self, entries: Sequence[Entry] | None = None) -> dict[str, RemoteFile]:
        args = ["lsjson", "-R", "--files-only", self.dest]
        if self.hash_type:
            args += ["--hash-type", self.hash_type]
        if entries is not None:
            args += ["--files-from-raw", self._list_file(entries)]
        run = self.rclone(*args, ok=(0, 3))  # 3: the folder is not there (yet)
        if run.status == 3:
            return {}
        listed = {}
        for item in json.loads(run.stdout or "[]"):
            hashes = {str(k).lower(): str(v) for k, v in (item.get("Hashes") or {}).items()}
            digest = hashes.get(self.hash_type or "", "")
            listed[item["Path"]] = RemoteFile(item["Path"], int(item["Size"]), digest)
        return listed

    def expected(self) -> dict[str, str] | None:
        if self.hash_type == "sha256":
            return {e.path: e.sha256 for e in self._all()}
        return self.local_hash

    def _all(self) -> tuple[Entry, ...]:
        return (*self.bundle.entries, self.bundle.signature, self.bundle.manifest)

    def hash_here(self, progress: Progress) -> None:
        """Check this computer's files against the manifest, hashing them the remote's way."""
        kind = self.hash_type
        assert kind is not None
        entries = self._all()
        total, done = max(1, sum(e.size for e in entries)), 0
        ours = kind in _HASHLIB
        hashes: dict[str, str] = {}
        for e in entries:
            digests = {
                k: hashlib.new(k, usedforsecurity=False) for k in {"sha256", kind} & {*_HASHLIB}
            }
            for chunk in _read(e, self.bundle.root):
                for d in digests.values():
                    d.update(chunk)
                done += len(chunk)
                progress(done / total)
            if digests["sha256"].hexdigest() != e.sha256:
                raise CorruptMedia(
                    f"{self.bundle.root}: {e.path} does not match its SHA-256 in the manifest: "
                    "the bundle is damaged here; copy it again"
                )
            if ours:
                hashes[e.path] = digests[kind].hexdigest()
        if not ours:  # QuickXorHash and the like: rclone computes them (whole files only)
            whole = [e for e in entries if not e.parts]
            run = self.rclone(
                "hashsum", kind, str(self.bundle.root), "--files-from-raw", self._list_file(whole)
            )
            hashes = _parse_hashsum(run.stdout)
        self.local_hash = hashes

    def download_sha256(self, entries: Sequence[Entry], progress: Progress) -> dict[str, str]:
        if not entries:
            return {}
        run = self.rclone(
            "hashsum", "sha256", "--download", self.dest,
            "--files-from-raw", self._list_file(entries),
            on_stats=progress,
        )  # fmt: skip
        self.downloaded += int(run.stats.get("bytes", 0))
        return _parse_hashsum(run.stdout)

    def check_unknown(self, entries: Sequence[Entry], progress: Progress) -> list[Entry]:
        """The entries whose remote copy (downloaded) differs from the manifest."""
        got = self.download_sha256(entries, progress)
        return [e for e in entries if got.get(e.path, "").lower() != e.sha256]

    def send(self, entries: Sequence[Entry], *, force: bool, progress: Progress) -> None:
        """Upload ``entries``: ``force`` sends even a file of the right size already there."""
        whole = [e for e in entries if not e.parts]
        joined = [e for e in entries if e.parts]
        spans = _split(0.0, 1.0, [sum(e.size for e in whole), *(e.size for e in joined)])
        if whole:
            lo, hi = spans[0]
            run = self.rclone(
                "copy", str(self.bundle.root), self.dest,
                "--files-from-raw", self._list_file(whole),
                "--ignore-times" if force else "--size-only",
                on_stats=_within(progress, (lo, hi)),
                ok=(0, 9),  # 9: nothing transferred, if the user asked for that status
            )  # fmt: skip
            self.sent_bytes += int(run.stats.get("bytes", 0))
        for e, (lo, hi) in zip(joined, spans[1:], strict=True):
            run = self.rclone(
                "rcat", "--size", str(e.size), f"{self.dest}/{e.path}",
                stdin=_joined(e.parts),
                on_stats=_within(progress, (lo, hi)),
            )  # fmt: skip
            self.sent_bytes += int(run.stats.get("bytes", 0))
        self.sent_files += len(entries)
        progress(1.0)

    def verify(self, entries: Sequence[Entry], progress: Progress) -> list[Entry]:
        """The entries whose remote copy is missing or differs from the manifest."""
        if not entries:
            return []
        after = plan(entries, self.listing(entries), self.expected())
        return [*after.missing, *after.different, *self.check_unknown(after.unknown, progress)]

    def send_verified(self, entries: Sequence[Entry], *, force: bool, progress: Progress) -> None:
        """Send, check, send what is still wrong once more, check again: or fail."""
        spans = _split(0.0, 1.0, [1.0, 1.0 if self.hash_type is None else 0.05])
        send, check = (_within(progress, s) for s in spans)
        self.send(entries, force=force, progress=send)
        wrong = self.verify(entries, check)
        if wrong:
            log.warning("%s: %d file(s) wrong after sending, sending again", self.dest, len(wrong))
            self.send(wrong, force=True, progress=lambda _f: None)
            wrong = self.verify(wrong, lambda _f: None)
        if wrong:
            raise self._still_wrong(wrong)

    def _still_wrong(self, wrong: Sequence[Entry]) -> KitError:
        for e in wrong:
            digest = hashlib.sha256()
            for chunk in _read(e, self.bundle.root):
                digest.update(chunk)
            if digest.hexdigest() != e.sha256:
                return CorruptMedia(
                    f"{self.bundle.root}: {e.path} does not match its SHA-256 in the manifest: "
                    "the bundle is damaged here; copy it again"
                )
        names = ", ".join(e.path for e in wrong)
        return OffloadError(
            f"{display_remote(self.dest)}: still different after sending it again: {names} "
            "(is something else writing there?)"
        )

    def delete(self, path: str) -> None:
        self.rclone("deletefile", f"{self.dest}/{path}")


def _bytes(entries: Iterable[Entry]) -> int:
    return sum(e.size for e in entries)


def _parse_hashsum(stdout: str) -> dict[str, str]:
    hashes = {}
    for line in stdout.splitlines():
        digest, sep, path = line.partition("  ")
        if sep:
            hashes[path] = digest.strip().lower()
    return hashes


def _offload_bundle(job: _BundleJob, progress: Progress) -> BundleResult:
    bundle = job.bundle
    remote = job.listing()
    # Share out the progress bar by bytes: first by the sizes alone, then by the plan.
    by_size = [e for e in bundle.entries if (r := remote.get(e.path)) and r.size == e.size]
    k = 2.0 if job.hash_type is None else 1.05  # sending, then checking what was sent
    guess = (bundle.size - sum(e.size for e in by_size)) * k + sum(e.size for e in by_size)
    local = bundle.size if job.hash_type not in (None, "sha256") else 0
    hashing, rest = _split(0, 1, [local, guess])
    if job.hash_type not in (None, "sha256"):
        job.hash_here(_within(progress, hashing))
    sorted_ = plan(bundle.entries, remote, job.expected())
    weights = [_bytes(sorted_.unknown), _bytes((*sorted_.missing, *sorted_.different)) * k]
    checking, sending = (_within(progress, s) for s in _split(*rest, weights))
    different = [*sorted_.different, *job.check_unknown(sorted_.unknown, checking)]
    missing = list(sorted_.missing)

    pair = plan((bundle.signature, bundle.manifest), remote, job.expected())
    pair_bad = [*pair.missing, *pair.different, *job.check_unknown(pair.unknown, lambda _f: None)]
    if missing or different or pair_bad:
        # The remote bundle is about to be incomplete: it must not look complete meanwhile.
        for name in (MANIFEST, SIGNATURE):
            if name in remote:
                job.delete(name)
    if missing or different:
        first, second = (
            _within(sending, s) for s in _split(0, 1, [_bytes(missing), _bytes(different)])
        )
        if missing:
            job.send_verified(missing, force=False, progress=first)
        if different:
            job.send_verified(different, force=True, progress=second)

    expected = {e.path for e in job._all()}
    leftovers = sorted(p for p in remote if p not in expected)
    partials = [p for p in leftovers if p.endswith(PARTIAL_SUFFIX)]
    for p in partials:
        job.delete(p)
    if missing or different or pair_bad:
        for e in (bundle.signature, bundle.manifest):  # the signature, then the manifest: last
            job.send_verified([e], force=True, progress=lambda _f: None)
    progress(1.0)
    return BundleResult(
        name=bundle.name,
        destination=display_remote(job.dest),
        files=len(bundle.entries),
        bytes=bundle.size,
        sent_files=job.sent_files,
        sent_bytes=job.sent_bytes,
        downloaded_bytes=job.downloaded,
        resent=tuple(e.path for e in different),
        removed_partials=tuple(partials),
        extra=tuple(p for p in leftovers if p not in partials),
        unlisted=bundle.unlisted,
    )


# the whole offload


@dataclass(frozen=True)
class OffloadReport:
    """What :func:`offload` did, bundle by bundle."""

    remote: str  # credentials left out
    checked_by: str  # how the remote's copies were checked against the manifests
    bundles: tuple[BundleResult, ...] = field(default_factory=tuple)

    @property
    def sent_files(self) -> int:
        return sum(b.sent_files for b in self.bundles)

    @property
    def sent_bytes(self) -> int:
        return sum(b.sent_bytes for b in self.bundles)

    def as_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "checked_by": self.checked_by,
            "sent_files": self.sent_files,
            "sent_bytes": self.sent_bytes,
            "bundles": [asdict(b) for b in self.bundles],
        }


def _checked_by(hash_type: str | None) -> str:
    if hash_type == "sha256":
        return "SHA-256 kept by the remote, against the manifest"
    if hash_type:
        return f"{hash_type} kept by the remote, against these files checked by SHA-256"
    return "SHA-256 of every file downloaded back from the remote"


def offload(
    source: Path,
    remote: str,
    *,
    rclone: str = "rclone",
    config: Path | None = None,
    rclone_args: Sequence[str] = (),
    progress: Progress | None = None,
) -> OffloadReport:
    """Send the bundle ``source`` (or every bundle in it) to ``remote`` (rclone's
    ``REMOTE:PATH``, a connection string, or a local path), checked against the manifests.

    ``rclone_args`` go to every rclone call (``--bwlimit``, ``--retries``...);
    ``progress`` gets fractions 0..1 of the whole job. Raises :class:`OffloadError`
    (rclone missing, the remote unreachable or refusing, a copy that stays wrong),
    :class:`CorruptMedia` (a bundle damaged here) or :class:`NotFound`.
    """
    bundles = find_bundles(source)
    meter = _Meter(progress)
    meter(0.0)
    runner = Rclone(rclone, config, rclone_args, remote)
    hash_type = _choose_hash(runner, remote)
    weights = [max(1, b.size) for b in bundles]
    results = []
    with tempfile.TemporaryDirectory(prefix="kit-offload-") as tmp:
        for bundle, (lo, hi) in zip(bundles, _split(0, 1, weights), strict=True):
            job = _BundleJob(runner, hash_type, bundle, join_remote(remote, bundle.name), Path(tmp))
            results.append(_offload_bundle(job, meter.span(lo, hi)))
            log.info("offload: %s is on %s", bundle.name, display_remote(job.dest))
    meter(1.0)
    return OffloadReport(display_remote(remote), _checked_by(hash_type), tuple(results))


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def format_report(report: OffloadReport) -> str:
    """The report for a person: one line a bundle, then anything to look at."""
    lines = []
    for b in report.bundles:
        did = (
            f"sent {b.sent_files} file(s), {_size(b.sent_bytes)}"
            if b.sent_files
            else "already there, nothing sent"
        )
        lines.append(f"{b.name}: {b.files} file(s), {_size(b.bytes)}, on {b.destination}: {did}")
        lines += [f"  sent again (the remote copy was different): {p}" for p in b.resent]
        lines += [f"  removed a torn upload: {p}" for p in b.removed_partials]
        lines += [f"  on the remote but not in the manifest (left there): {p}" for p in b.extra]
        lines += [f"  here but not in the manifest (not sent): {p}" for p in b.unlisted]
    lines.append(f"checked: {report.checked_by}")
    return "\n".join(lines)


def main_offload(
    source: str,
    to: str,
    *,
    json_out: bool = False,
    rclone: str = "rclone",
    config: str | None = None,
    rclone_args: Sequence[str] = (),
    progress: Progress | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """``kit offload SOURCE --to REMOTE:PATH [--json]``: the report on ``out``; progress to
    ``progress`` (by default a line on ``err`` every 5 %). Returns 0, 1 (``kit: error:``)
    or 75 (temporary: run it again, it resumes)."""
    out = out or sys.stdout
    err = err or sys.stderr
    shown = -1

    def show(fraction: float) -> None:
        nonlocal shown
        percent = int(fraction * 100)
        if percent // 5 > shown // 5:  # a plain line every 5 %: fit for a log
            shown = percent
            print(f"offload: {percent}%", file=err, flush=True)

    try:
        report = offload(
            Path(source),
            to,
            rclone=rclone,
            config=Path(config) if config else None,
            rclone_args=rclone_args,
            progress=progress or show,
        )
    except OffloadError as exc:
        print(f"kit: error: {exc}", file=err)
        return exc.exit_code
    except KitError as exc:
        print(f"kit: error: {exc}", file=err)
        return EXIT_ERROR
    if json_out:
        json.dump(report.as_json(), out, indent=1)
        out.write("\n")
    else:
        print(format_report(report), file=out)
    return 0
