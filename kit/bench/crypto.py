"""``kit bench crypto``: what encrypting the media at rest costs, on one core.

Figures (MB = 10^6 bytes; a 10 Mbit/s recording is 1.25 MB a second), all
CPU time of the benchmark's one thread (``time.thread_time_ns``), so the
figures are per core and disk waits do not count:

* encrypt: the kit's write pattern through an :class:`EncryptedFile`,
  appends of 10-40 KB pieces with a flush every 1.25 MB (no fsync), in MB
  per CPU second and as a multiple of a 10 Mbit/s recording;
* decrypt: sequential and random (unaligned) 64 KiB reads of a file far
  larger than the chunk cache, likewise;
* the extra CPU of a recorded second: the same 10 Mbit/s worth of pieces,
  with a flush and fsync each recorded second, written to a plain file and
  through an EncryptedFile, alternately, in the same run (the least of three
  tries of each); the difference per recorded second.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from kit.crypto.chunked import EncryptedFile

MB = 1_000_000
RECORDING_BYTES_PER_S = 10_000_000 // 8  # 10 Mbit/s
FLUSH_EVERY = RECORDING_BYTES_PER_S
PIECE_MIN, PIECE_MAX = 10_000, 40_000
READ_SIZE = 64 * 1024
SEGMENT = 16 * 1024 * 1024  # one file of the encrypt figure; then a new one (bounded disk use)
READ_FILE = 16 * 1024 * 1024
TRIES = 3


def _pieces(total: int, rng: np.random.Generator) -> list[int]:
    sizes: list[int] = []
    left = total
    while left > 0:
        sizes.append(min(left, int(rng.integers(PIECE_MIN, PIECE_MAX + 1))))
        left -= sizes[-1]
    return sizes


def _write(f: BinaryIO | EncryptedFile, sizes: list[int], source: memoryview, sync: bool) -> None:
    """Append ``sizes`` pieces of ``source``, flushing (and fsyncing) every 1.25 MB."""
    since = 0
    offset = 0
    for size in sizes:
        if offset + size > len(source):
            offset = 0
        f.write(source[offset : offset + size])
        offset += size
        since += size
        if since >= FLUSH_EVERY:
            since = 0
            f.flush()
            if sync:
                os.fsync(f.fileno())
    f.flush()
    if sync:
        os.fsync(f.fileno())


def _encrypt_rate(directory: Path, key: bytes, source: memoryview, seconds: float) -> float:
    """MB per CPU second of the write pattern through new EncryptedFiles."""
    rng = np.random.default_rng(1)
    budget = int(seconds * 1e9)
    cpu = 0
    written = 0
    path = directory / "encrypt.enc"
    while cpu < budget or written == 0:
        sizes = _pieces(SEGMENT, rng)
        start = time.thread_time_ns()
        with EncryptedFile.create(path.open("w+b"), key) as f:
            _write(f, sizes, source, sync=False)
        cpu += time.thread_time_ns() - start
        written += SEGMENT
    path.unlink()
    return written / MB / (cpu / 1e9)


def _read_rates(
    directory: Path, key: bytes, source: memoryview, seconds: float
) -> dict[str, float]:
    """MB per CPU second of sequential and random 64 KiB reads."""
    path = directory / "read.enc"
    with EncryptedFile.create(path.open("w+b"), key) as f:
        _write(f, _pieces(READ_FILE, np.random.default_rng(2)), source, sync=False)
    budget = int(seconds * 1e9)
    rates: dict[str, float] = {}
    with EncryptedFile.open(path.open("rb"), key) as f:
        cpu = 0
        got = 0
        while cpu < budget or got == 0:
            start = time.thread_time_ns()
            f.seek(0)
            while data := f.read(READ_SIZE):
                got += len(data)
            cpu += time.thread_time_ns() - start
        rates["read_seq_mb_s"] = got / MB / (cpu / 1e9)
        rng = np.random.default_rng(3)
        cpu = 0
        got = 0
        while cpu < budget or got == 0:
            offsets = rng.integers(0, f.size - READ_SIZE, 64).tolist()
            start = time.thread_time_ns()
            for offset in offsets:
                f.seek(offset)
                got += len(f.read(READ_SIZE))
            cpu += time.thread_time_ns() - start
        rates["read_random_mb_s"] = got / MB / (cpu / 1e9)
    path.unlink()
    return rates


def _recording_cpu(
    directory: Path, key: bytes, source: memoryview, recorded_s: float
) -> tuple[float, float]:
    """Least thread CPU seconds to write ``recorded_s`` of 10 Mbit/s: plain, then encrypted."""
    sizes = _pieces(round(recorded_s * RECORDING_BYTES_PER_S), np.random.default_rng(4))
    plain_path, enc_path = directory / "plain.bin", directory / "recording.enc"
    plain: list[int] = []
    encrypted: list[int] = []
    for _ in range(TRIES):
        start = time.thread_time_ns()
        with plain_path.open("wb") as f:
            _write(f, sizes, source, sync=True)
        plain.append(time.thread_time_ns() - start)
        start = time.thread_time_ns()
        with EncryptedFile.create(enc_path.open("w+b"), key) as g:
            _write(g, sizes, source, sync=True)
        encrypted.append(time.thread_time_ns() - start)
        plain_path.unlink()
        enc_path.unlink()
    return min(plain) / 1e9, min(encrypted) / 1e9


def run(
    seconds: float = 2.0, *, recorded_s: float = 30.0, directory: Path | None = None
) -> dict[str, float]:
    """Measure; ``seconds`` of CPU for each throughput figure, ``recorded_s`` of recording."""
    key = os.urandom(32)
    source = memoryview(os.urandom(4 * MB))
    with tempfile.TemporaryDirectory(prefix="kit-bench-crypto-", dir=directory) as tmp:
        root = Path(tmp)
        results = {"encrypt_mb_s": _encrypt_rate(root, key, source, seconds)}
        results.update(_read_rates(root, key, source, seconds))
        plain_s, encrypted_s = _recording_cpu(root, key, source, recorded_s)
    realtime = RECORDING_BYTES_PER_S / MB
    for name in ("encrypt", "read_seq", "read_random"):
        results[f"{name}_x_10mbit"] = results[f"{name}_mb_s"] / realtime
    results["recorded_s"] = recorded_s
    results["plain_cpu_s_per_s"] = plain_s / recorded_s
    results["encrypted_cpu_s_per_s"] = encrypted_s / recorded_s
    results["extra_cpu_s_per_s"] = (encrypted_s - plain_s) / recorded_s
    return results


def report(results: dict[str, float]) -> str:
    """The figures of :func:`run`, one a line."""
    r = results
    return "\n".join(
        [
            f"encrypt (appends of 10-40 KB, flush every 1.25 MB): {r['encrypt_mb_s']:.1f} MB/s "
            f"on one core = {r['encrypt_x_10mbit']:.0f}x a 10 Mbit/s recording",
            f"decrypt, sequential 64 KiB reads: {r['read_seq_mb_s']:.1f} MB/s "
            f"= {r['read_seq_x_10mbit']:.0f}x a 10 Mbit/s recording",
            f"decrypt, random 64 KiB reads: {r['read_random_mb_s']:.1f} MB/s "
            f"= {r['read_random_x_10mbit']:.0f}x a 10 Mbit/s recording",
            f"recording at 10 Mbit/s ({r['recorded_s']:.0f} s, fsync each second), thread CPU "
            f"per recorded second: plain file {r['plain_cpu_s_per_s']:.5f} s, encrypted "
            f"{r['encrypted_cpu_s_per_s']:.5f} s; encryption adds "
            f"{r['extra_cpu_s_per_s']:.5f} s ({r['extra_cpu_s_per_s'] * 100:.3f}% of a core)",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench crypto", description=__doc__)
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="CPU seconds per throughput figure (2)"
    )
    parser.add_argument(
        "--recorded", type=float, default=30.0, help="seconds of 10 Mbit/s recording (30)"
    )
    parser.add_argument("--data", type=Path, help="directory for the scratch files (a temp dir)")
    args = parser.parse_args(argv)
    print(report(run(args.seconds, recorded_s=args.recorded, directory=args.data)))
    return 0
