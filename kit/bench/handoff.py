"""``kit bench handoff``: taking the largest visit a guider can make off the kit.

A sealed, encrypted visit with one synthetic 60-minute 1080p take at the
kit's bitrate (kit/testing/longtake.py; encrypted as the kit writes it) and
200 tags is bundled and exported to a folder on the same disk, standing in
for a USB stick: hashing, writing (synced, page cache dropped) and
verifying from the medium. Baselines, measured in the same run on the same
files: coreutils' ``sha256sum`` (for making and verifying a bundle, which
hash every byte), a plain copy with an fsync followed by ``sha256sum`` of the
copy (for the export, which writes, syncs and reads back), and a plain read
(for the tar stream a laptop downloads). Also the peak memory of the export,
which must not grow with the take.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kit.bench.cut import BenchOptions
from kit.crypto.keys import new_data_key, new_org_key, wrap
from kit.handoff.service import HandOff
from kit.handoff.signing import Signer
from kit.handoff.verify import verify_bundle
from kit.model import Access, Consent, ConsentBy, Purpose, Visit
from kit.store import layout
from kit.store.store import Store, new_id
from kit.testing.longtake import build_take

T = TypeVar("T")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class HandoffResult:
    take_s: float
    bundle_bytes: int
    files: int
    tags: int
    hash_s: float  # making the bundle: reading and hashing every file
    export_s: float  # writing and verifying it (the bundle already made)
    sha256sum_s: float  # baseline: coreutils sha256sum of the same files
    copy_check_s: float  # baseline: read, write, fsync, then sha256sum of the copy
    read_s: float  # baseline: reading the same bytes
    tar_s: float  # streaming the bundle as a tar (a download), to nowhere
    verify_s: float  # kit verify of the written bundle
    peak_rss_growth_bytes: int  # the export's peak memory above the process before it
    runs: int


def _median(runs: int, call: Callable[[], T]) -> tuple[float, T]:
    times, value = [], None
    for _ in range(max(1, runs)):
        os.sync()
        started = time.perf_counter()
        value = call()
        times.append(time.perf_counter() - started)
    assert value is not None
    return statistics.median(times), value


def _peak_rss() -> int:
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current resident set (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def sealed_long_visit(root: Path, options: BenchOptions) -> tuple[Store, str]:
    """A sealed encrypted visit holding one synthetic take of ``options``."""
    key = new_data_key()
    store = Store(root, lambda _visit: key)
    consent = Consent(ConsentBy.PARENT, frozenset(Purpose), "2099-12-31")
    visit = Visit(
        new_id(), "BENCH-1", 1, "bench", started_wall="2026-11-30T10:00:00Z", consent=consent
    )
    store.files.makedirs(layout.visit_dir(visit.id))
    with store.files.replace(layout.wrapped_key(visit.id)) as f:
        f.write(wrap(key, [new_org_key().public]))
    store.db.add_visit(visit, encrypted=True)
    build_take(store, options, visit_id=visit.id)
    store.db.end_visit(visit.id, 2, "2026-11-30T11:00:00Z")
    store.db.mark_sealed(visit.id, Access.SEALED)
    return store, visit.id


def _copy(files: Sequence[Path], target: Path) -> int:
    copied = 0
    with target.open("wb") as out:
        for path in files:
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    out.write(chunk)
                    copied += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return copied


def _read(files: Sequence[Path]) -> int:
    total = 0
    for path in files:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                total += len(chunk)
    return total


def run_bench(root: Path, options: BenchOptions) -> HandoffResult:
    store, visit_id = sealed_long_visit(root / "data", options)
    try:
        signer = Signer.load_or_create(root / "data" / layout.SIGNING_KEY)
        handoff = HandOff(store.db, store.root, signer)
        take = store.db.takes(visit_id)[0]
        stick = root / "stick"
        stick.mkdir()

        def make() -> object:
            handoff.forget(visit_id)
            return handoff.bundle(visit_id)

        hash_s, _ = _median(options.repeat, make)
        bundle = handoff.bundle(visit_id)
        sources = [e.source for e in bundle.entries if e.source is not None]

        def export() -> Path:
            shutil.rmtree(stick / bundle.name, ignore_errors=True)
            return handoff.export(visit_id, stick)[0]

        _reset_peak()
        before = _peak_rss()
        export_s, folder = _median(options.repeat, export)
        growth = max(0, _peak_rss() - before)

        def sha256sum(paths: Sequence[Path]) -> int:
            return subprocess.run(
                ["sha256sum", *map(str, paths)], check=True, capture_output=True
            ).returncode

        def copy_check() -> int:
            (root / "copy.bin").unlink(missing_ok=True)
            _copy(sources, root / "copy.bin")
            return sha256sum([root / "copy.bin"])

        sha256sum_s, _ = _median(options.repeat, lambda: sha256sum(sources))
        copy_check_s, _ = _median(options.repeat, copy_check)
        read_s, _ = _median(options.repeat, lambda: _read(sources))
        view = handoff.tar(visit_id)
        tar_s, _ = _median(options.repeat, lambda: sum(len(b) for b in view.read()))
        verify_s, report = _median(options.repeat, lambda: verify_bundle(folder))
        assert report.ok, report.problems
        return HandoffResult(
            take_s=take.duration_ns / 1e9,
            bundle_bytes=bundle.size,
            files=len(bundle.entries),
            tags=len(store.db.tags_for_visit(visit_id)),
            hash_s=hash_s,
            export_s=export_s,
            sha256sum_s=sha256sum_s,
            copy_check_s=copy_check_s,
            read_s=read_s,
            tar_s=tar_s,
            verify_s=verify_s,
            peak_rss_growth_bytes=growth,
            runs=max(1, options.repeat),
        )
    finally:
        store.close()


def report(r: HandoffResult) -> str:
    mb = 1e6
    size = r.bundle_bytes / mb

    def x(a: float, b: float) -> str:
        return f"{a / max(b, 1e-9):.2f}x"

    return "\n".join(
        [
            f"visit: one {r.take_s / 60:.1f}-minute take, {r.tags} tags; bundle {size:.0f} MB "
            f"in {r.files} files; medians of {r.runs} runs",
            f"baselines: sha256sum {r.sha256sum_s:.2f} s ({size / max(r.sha256sum_s, 1e-9):.0f}"
            f" MB/s); copy + fsync + sha256sum of the copy {r.copy_check_s:.2f} s; "
            f"plain read {r.read_s:.2f} s",
            f"bundle (hash every file, sign): {r.hash_s:.2f} s = "
            f"{x(r.hash_s, r.sha256sum_s)} sha256sum (target <= 1.5x)",
            f"export (write, sync, read back, verify): {r.export_s:.2f} s = "
            f"{x(r.export_s, r.copy_check_s)} copy + sha256sum (target <= 1.5x)",
            f"kit verify: {r.verify_s:.2f} s = {x(r.verify_s, r.sha256sum_s)} sha256sum "
            "(target <= 1.5x)",
            f"download as a tar stream: {r.tar_s:.2f} s = {x(r.tar_s, r.read_s)} the plain read "
            f"({size / max(r.tar_s, 1e-9):.0f} MB/s; target <= 1.5x)",
            f"export peak memory growth: {r.peak_rss_growth_bytes / 2**20:.1f} MiB "
            "(target <= 64 MiB, whatever the take's length)",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench handoff", description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="take length (60)")
    parser.add_argument("--tags", type=int, default=200, help="tags in the visit (200)")
    parser.add_argument("--bitrate", type=int, default=10_000_000, help="video bit/s (10M)")
    parser.add_argument("--repeat", type=int, default=3, help="runs to take medians of (3)")
    parser.add_argument("--data", type=Path, help="work directory (default: a temp dir)")
    args = parser.parse_args(argv)
    options = BenchOptions(
        minutes=args.minutes, tags=args.tags, bitrate=args.bitrate, repeat=args.repeat
    )
    with tempfile.TemporaryDirectory(prefix="kit-bench-handoff-") as tmp:
        root = args.data or Path(tmp)
        result = run_bench(root, options)
    print(report(result))
    return 0
