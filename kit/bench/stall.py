"""``kit bench stall``: does a big write on the card hold up a tag's commit?

When a take's cut ends, the cutting child writes the visit's film: for a
10-minute take full of tags some 300 MB at the kit's 4 Mbit/s. Meanwhile the
phones keep tagging the next take, and a tap is acknowledged only once its
tag is committed (SQLite, ``synchronous=FULL``: an fsync). On ext4 a journal
commit waits for the data of every file in it, so a film written whole and
synced at its end makes every commit behind it wait until the card has
written all of it. The kit writes such files with write-behind
(:mod:`kit.store.writebehind`): synced every megabyte as they are written.

Measured here, in the kit's own database and file layer on ``--data`` (run it
on the card: a directory on the kit's data filesystem), with one tag
committed every 50 ms (8 phones tagging every 2-5 s make about 2.3 a second),
first with nothing else, then alternately while a film of ``--film-mb`` MB is
written the two ways, in the same run:

* "at the end": the whole film, then one fsync (the baseline: how the kit
  wrote before write-behind);
* "write-behind": the kit's way.

Printed for each: the tag commits' p50, p99 and max (ms), how many, and the
film's write time and rate. Target: the commit p99 while a film is written
with write-behind <= 50 ms (the tap's ack target).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.bench.tagging import percentile
from kit.model import Tag
from kit.store import layout
from kit.store.files import FileLayer
from kit.store.store import Store
from kit.store.writebehind import WRITE_BEHIND_BYTES

MB = 1_000_000
PIECE = 64 * 1024  # as the cut's muxer writes (its I/O buffer)
TAG_EVERY_S = 0.05
IDLE_S = 10.0
SETTLE_S = 2.0
TARGET_P99_MS = 50.0
AT_THE_END = "at the end"
WRITE_BEHIND = "write-behind"


@dataclass
class Phase:
    """Tag commits during one phase, and the film written in it (if any)."""

    name: str
    commit_ms: list[float] = field(default_factory=list)
    film_s: float = 0.0
    film_bytes: int = 0

    def figures(self) -> dict[str, Any]:
        c = self.commit_ms
        return {
            "commits": len(c),
            "p50_ms": percentile(c, 50),
            "p99_ms": percentile(c, 99),
            "max_ms": max(c, default=float("nan")),
            "film_s": self.film_s,
            "film_mb_s": self.film_bytes / MB / self.film_s if self.film_s else float("nan"),
        }


class _Tagger(threading.Thread):
    """Commits a tag every ``TAG_EVERY_S`` into ``phase`` until stopped."""

    def __init__(self, store: Store, visit_id: str, take_id: str) -> None:
        super().__init__(name="bench-tagger", daemon=True)
        self._store, self._visit, self._take = store, visit_id, take_id
        self.phase = Phase("idle")
        self.stop = threading.Event()
        self._n = 0

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.perf_counter()
            self._n += 1
            at = time.monotonic_ns()
            tag = Tag(f"t{self._n}", self._visit, self._take, at, "Guiding", "", "bench", at)
            self._store.db.add_tag(tag)
            took = time.perf_counter() - began
            self.phase.commit_ms.append(took * 1000)
            self.stop.wait(max(0.0, TAG_EVERY_S - took))


def _write_film(files: FileLayer, rel: str, size: int, source: memoryview) -> None:
    with files.replace(rel) as f:
        offset = 0
        for _ in range(0, size, PIECE):
            if offset + PIECE > len(source):
                offset = 0
            f.write(source[offset : offset + PIECE])
            offset += PIECE


def run(
    directory: Path,
    *,
    film_mb: float = 300,
    rounds: int = 2,
    idle_s: float | None = None,
    settle_s: float | None = None,
) -> dict[str, Any]:
    """Measure (see the module's docstring); the figures of each way, pooled over rounds.
    ``idle_s``, ``settle_s``: the idle phase and the pause around each film (IDLE_S,
    SETTLE_S)."""
    idle_s = IDLE_S if idle_s is None else idle_s
    settle_s = SETTLE_S if settle_s is None else settle_s
    size = round(film_mb * MB)
    source = memoryview(os.urandom(8 * MB))  # incompressible, as a film is
    with tempfile.TemporaryDirectory(prefix="kit-bench-stall-", dir=directory) as tmp:
        store = Store(Path(tmp) / "data")
        ways = {
            AT_THE_END: FileLayer(store.root, write_behind_bytes=None),
            WRITE_BEHIND: FileLayer(store.root, write_behind_bytes=WRITE_BEHIND_BYTES),
        }
        try:
            visit = store.new_visit(time.monotonic_ns(), "Bench")
            take = store.db.add_take(visit.id, "take", "bench")
            film = layout.in_cut(visit.id, layout.FILM)
            store.files.makedirs(layout.cut_dir(visit.id))
            tagger = _Tagger(store, visit.id, take.id)
            pooled = {name: Phase(name) for name in ways}
            tagger.start()
            time.sleep(idle_s)
            idle = tagger.phase
            for _ in range(rounds):
                for name, files in ways.items():
                    os.sync()  # nothing left over from the phase before
                    time.sleep(settle_s)
                    tagger.phase = phase = Phase(name)
                    began = time.perf_counter()
                    _write_film(files, film, size, source)
                    phase.film_s, phase.film_bytes = time.perf_counter() - began, size
                    time.sleep(settle_s)  # commits just after the film's last sync count too
                    tagger.phase = Phase("between")
                    files.remove(film)
                    into = pooled[name]
                    into.commit_ms += phase.commit_ms
                    into.film_s += phase.film_s
                    into.film_bytes += phase.film_bytes
            tagger.stop.set()
            tagger.join()
        finally:
            store.close()
    figures = {"idle": idle.figures()} | {name: p.figures() for name, p in pooled.items()}
    base, kit = figures[AT_THE_END], figures[WRITE_BEHIND]
    return {
        "film_mb": film_mb,
        "rounds": rounds,
        "ways": figures,
        "p99_ratio": base["p99_ms"] / kit["p99_ms"],
        "film_time_ratio": kit["film_s"] / base["film_s"],
        "ok": kit["p99_ms"] <= TARGET_P99_MS,
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"tag commits (one every {TAG_EVERY_S * 1000:.0f} ms) while a {result['film_mb']} MB "
        f"film is written, {result['rounds']} round(s) of each way:"
    ]
    for name, f in result["ways"].items():
        film = f"; film {f['film_s']:.2f} s ({f['film_mb_s']:.0f} MB/s)" if name != "idle" else ""
        lines.append(
            f"  {name:13s} p50 {f['p50_ms']:7.1f}  p99 {f['p99_ms']:7.1f}  max {f['max_ms']:7.1f} "
            f"ms over {f['commits']} commits{film}"
        )
    verdict = "ok" if result["ok"] else "TOO SLOW"
    lines.append(
        f"write-behind: commit p99 {result['p99_ratio']:.1f}x lower than syncing at the end; "
        f"film write time x{result['film_time_ratio']:.2f} "
        f"(target p99 <= {TARGET_P99_MS:.0f} ms: {verdict})"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench stall", description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path(), help="a directory on the card (default: here)"
    )
    parser.add_argument("--film-mb", type=float, default=300, help="the film's size in MB (300)")
    parser.add_argument("--rounds", type=int, default=2, help="films written each way (2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.film_mb) and args.film_mb > 0) or args.rounds <= 0:
        parser.error("--film-mb and --rounds must be positive (and finite)")
    result = run(args.data, film_mb=args.film_mb, rounds=args.rounds)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["ok"] else 1
