"""Power cuts of a live ``kit run --simulate``: what the card holds if the power goes now.

The model is ``Durability``'s (tests/privacy/test_power_cut.py): every write that was
not fsync'd is lost; each file is cut to its length at its last fsync, and a name
survives only if its directory was fsync'd while holding it. It is extended here to a
kit in a child process (and that kit's cutting child): :mod:`tests.torture.fsyncjournal`
journals every fsync from inside them (a ``sitecustomize`` on their PYTHONPATH), and:

* a directory's durable entries are its names *and the inodes they named* when it was
  last fsync'd: a file renamed over since (the atomic replace: temp, fsync, rename,
  fsync of the directory) is still the old file until that last fsync;
* a file unlinked, or renamed over, is first hard-linked into a morgue, so its old
  content is still there for a power cut that comes before its directory is synced;
* a name that is durable but whose file was never fsync'd holds an empty file (the
  inode was made durable with its directory; its data never was);
* SQLite's files (``*.db``, ``-wal``, ``-shm``, ``-journal``) are copied as they are:
  SQLite syncs them itself, from C (``synchronous=FULL``), which no Python wrapper
  sees. That holds for committed transactions with ``synchronous=FULL``, and is all
  the model says about SQLite (see :data:`NOT_MODELLED`).

A snapshot is taken while the kit (its daemon and every child) is stopped with SIGSTOP,
so no write is half-seen; then it runs on as if nothing happened. The snapshot is
what the card would hold after a power cut at that instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from kit.bench.crash import children
from kit.crypto.chunked import CHUNK_SIZE, HEADER_SIZE, SLOT_OVERHEAD, EncryptedFile
from kit.testing.launch import KitProcess
from tests.privacy.test_power_cut import Durability

REPO = Path(__file__).resolve().parents[2]
SLOT = CHUNK_SIZE + SLOT_OVERHEAD  # kit/crypto/FORMAT.md: a whole chunk's slot
SQLITE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal")

NOT_MODELLED = (
    "SQLite's own durability: its files are taken as they are (committed transactions "
    "durable, as synchronous=FULL in WAL mode promises); a torn WAL frame, a lying disk "
    "cache or a checkpoint's unsynced pages are not modelled",
    "writes that reached the card without an fsync (the kernel's writeback): the model is "
    "the worst case, nothing unsynced survives; nor unsynced writes reordered or torn "
    "within a page beyond what the synced length gives",
    "in-place rewrites below a file's synced length (an encrypted file's last chunk "
    "rewritten, an MP4 box patched) are taken as they are now, not as they were at the "
    "fsync: the torn-last-chunk case, not the clean rollback",
    "a truncation is durable at once (the file keeps at most its current length)",
    "metadata the filesystem journals on its own (ext4 commits every 5 s): an unsynced "
    "directory entry is always lost here",
    "the card itself: wear, bad blocks, a controller that loses acknowledged writes",
)

_SITE = """\
import sys
sys.path.insert(0, {repo!r})
from tests.torture.fsyncjournal import install_from_environ
install_from_environ()
"""


def child_site(work: Path) -> str:
    """A PYTHONPATH for ``kit`` child processes whose ``sitecustomize`` installs what the
    ``POWERCUT_*`` variables ask for (:func:`tests.torture.fsyncjournal.install_from_environ`);
    its directory is made in ``work``."""
    site = work / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITE.format(repo=str(REPO)), encoding="utf-8")
    return os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)


class JournalDurability(Durability):
    """:class:`Durability`'s model rebuilt from a child's journal (see the module)."""

    def __init__(self, journal: Path, morgue: Path) -> None:
        super().__init__(os.fsync)  # never called: the child's fsyncs are in the journal
        self.journal = journal
        self.morgue = morgue
        self.named: dict[str, dict[str, int]] = {}  # directory -> {name: inode}, when synced

    def load(self) -> None:
        for raw in self.journal.read_text(encoding="utf-8").splitlines():
            record = json.loads(raw)
            if "dir" in record:
                self.named[record["dir"]] = record["entries"]
                self.entries[record["dir"]] = set(record["entries"])
            else:
                self.lengths[record["ino"]] = record["size"]

    def durable_copy(self, data: Path, to: Path) -> None:
        """``data`` as a power cut now would leave it, into ``to`` (see the module)."""
        where: dict[int, Path] = {p.stat().st_ino: p for p in self.morgue.iterdir()}
        root = data.resolve()
        for path in [root, *root.rglob("*")]:
            where[path.lstat().st_ino] = path  # the data's own names win over the morgue's
        self._copy_dir(root, root, to, where)

    def _copy_dir(self, directory: Path, now: Path, to: Path, where: dict[int, Path]) -> None:
        """Copy the durable entries of ``directory`` (a durable path), now at ``now``."""
        to.mkdir(parents=True, exist_ok=True)
        names = self.named.get(str(directory), {})
        for name, ino in names.items():
            source = where.get(ino)
            if source is None or name.endswith(SQLITE_SUFFIXES):
                continue  # gone without a trace the model can follow; SQLite: below
            if source.is_dir():
                self._copy_dir(directory / name, source, to / name, where)
                continue
            length = min(self.lengths.get(ino, 0), source.stat().st_size)
            with source.open("rb") as src, (to / name).open("wb") as dst:
                dst.write(src.read(length))
        if now.is_dir():
            for db in now.iterdir():
                if db.name.endswith(SQLITE_SUFFIXES) and db.is_file():
                    shutil.copyfile(db, to / db.name)  # SQLite syncs itself (FULL)


class PoweredKit:
    """``kit run --simulate`` on ``data`` with its fsyncs journalled, cut off at will."""

    def __init__(self, data: Path, work: Path, env: dict[str, str]) -> None:
        self.data = data
        self.journal = work / "journal.jsonl"
        self.morgue = work / "morgue"
        for d in (data, self.morgue):
            d.mkdir(parents=True, exist_ok=True)
        self.env = {
            **env,
            "PYTHONPATH": child_site(work),
            "POWERCUT_JOURNAL": str(self.journal),
            "POWERCUT_MORGUE": str(self.morgue),
            "POWERCUT_ROOT": str(data.resolve()),
        }
        self.process = KitProcess(data, env=self.env)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[int]:
        """The daemon and its children stopped (SIGSTOP) until the block ends; yields the
        instant they were stopped (kit clock)."""
        pid = self.process.proc.pid
        at_ns = time.monotonic_ns()
        os.kill(pid, signal.SIGSTOP)  # first, so it starts no child meanwhile
        stopped = [pid] + [c.pid for c in children(pid)]
        for child in stopped[1:]:
            os.kill(child, signal.SIGSTOP)
        for proc in stopped:
            _wait_stopped(proc)
        try:
            yield at_ns
        finally:
            for proc in reversed(stopped):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc, signal.SIGCONT)

    def durable_length(self, path: Path) -> int | None:
        """The length of the file at ``path`` at its last fsync (None: never synced)."""
        ino = path.stat().st_ino
        length = None
        for raw in self.journal.read_text(encoding="utf-8").splitlines():
            record = json.loads(raw)
            if record.get("ino") == ino:
                length = int(record["size"])
        return length

    def power_cut(self, to: Path) -> int:
        """Copy what a power cut now would leave of the data into ``to``; the instant."""
        with self.frozen() as at_ns:
            model = JournalDurability(self.journal, self.morgue)
            model.load()
            model.durable_copy(self.data, to)
        return at_ns


def slot_rewritten(length: int, durable: int | None) -> bool:
    """Whether an encrypted file now ``length`` bytes long, made durable at ``durable``
    bytes (mid-slot), has rewritten that last durable slot whole since (its chunk filled):
    a power cut now may leave the new slot's bytes under the old length, a torn tail."""
    if durable is None or (durable - HEADER_SIZE) % SLOT == 0:
        return False
    return length >= HEADER_SIZE + ((durable - HEADER_SIZE) // SLOT + 1) * SLOT


def torn_tail(path: Path, key: bytes) -> bool:
    """Whether the encrypted file at ``path`` ends in a slot that does not authenticate."""
    length = path.stat().st_size
    slots, rest = divmod(length - HEADER_SIZE, SLOT)
    if rest == 0:
        return False
    with path.open("rb") as raw, EncryptedFile.open(raw, key) as plain:
        return bool(plain.seek(0, os.SEEK_END) == slots * CHUNK_SIZE)


def _wait_stopped(pid: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return  # gone
        if state in ("T", "t", "Z", "X"):
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop")
