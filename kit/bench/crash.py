"""``kit bench crash``: kill -9 the daemon at random moments; count what survives.

One data directory and one ``kit run --simulate`` (320x240) after another, driven
over HTTP as a phone drives it: a visit started with the family's consent, takes of
1-5 s with a tag every ~0.3 s (now and then one more tap sent just after Stop, as a
retried tap is), Stop, the take's film and the visit's rough cut made; now and then
End visit (its final cut, then its seal) and a new visit. Each trial kills the
daemon (SIGKILL to its process alone, as a crash does) at a random moment of one
phase, the phases taken in turn in a shuffled order:

* ``recording``: while a take records (its raw streams and its live film written);
* ``finalising``: just after Stop, while the take's film is closed;
* ``cutting``: while the rough cut is made in its child process;
* ``recovery``: during the start-up after a kill, while the take it left is finalised.

A kill is counted in the phase the kit said it was in just before it (its status:
recording, finalising, cutting or idle), or ``recovery`` when the kit did not serve
yet and was finalising what a kill left. After each kill the kit is started again;
after the last one it is left to settle (no kill): the open visit's film is made, the
visit ended and sealed, and the kit stopped with SIGTERM. The data directory is then
read with the organisation's key (sealed visits too) and checked:

* takes: every take is ``ready``, or ``empty`` only if it was killed within its
  first second (its stream files are made durable once a second);
* media: a ready take ends at most 1 s before the kill (or the Stop) on the kit
  clock, and its MP4 holds every frame from the first, in order;
* tags: every tag the kit acknowledged (201 or 200) is in the database, and, if its
  take is ready, in its visit's final film (a clip of ``cut/cut.json``);
* films: every visit with a tag in a ready take has a cut that is up to date (its
  input fingerprint is the visit's as it ended) and a film with a chapter per clip;
  every visit is ended and sealed;
* files: no ``.partial`` or ``.tmp`` file is left anywhere, and no raw stream of a
  ready take (what the known bugs in :data:`KNOWN` leave is counted apart);
* processes: no child of a killed daemon (the cutting process, multiprocessing's
  resource tracker) outlives it by :data:`ORPHAN_GRACE_S`, and after the final stop
  no process names the data directory (``pgrep -f``).

A killed daemon's children are watched until they end (and killed after
:data:`ORPHAN_WATCH_S`) before the kit starts again, as systemd empties the unit's
cgroup before its ``RestartSec=2`` restart: an orphan is counted, but it does not write
beside the next kit here. The figures are printed; the exit code is 1 if any guarantee
was broken.
:func:`run_trials` is what ``tests/torture/test_crash_trials.py`` runs, on fewer trials.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kit.bench import figures as figures_json
from kit.clock import NS_PER_S
from kit.config import load_config
from kit.cutting.inputs import cut_title
from kit.cutting.manifest import read_manifest
from kit.cutting.moments import fingerprint
from kit.cutting.plan import CutRules
from kit.hardware.sim.analysis import analyse_film
from kit.model import Access, TakeState
from kit.store import layout
from kit.store.store import Store
from kit.testing.kits import org_store, plain_copy
from kit.testing.launch import KitProcess, stored_takes
from kit.testing.phone import HttpPhone
from kit.testing.privacy import consent_json, key_dir_for, org_key

PHASES = ("recording", "finalising", "cutting", "recovery")
GUARANTEES = ("takes", "media", "tags", "films", "files", "processes", "shutdown")
SMALL_ENV = {"KIT_CAMERA_WIDTH": "320", "KIT_CAMERA_HEIGHT": "240", "KIT_CAMERA_BITRATE": "400000"}
DEFAULT_SEED = 1402
FPS = 30  # the camera's default rate, which the trials keep
MAX_LOST_S = 1.0  # the stream files are made durable once a second
TAG_EVERY_S = (0.2, 0.4)  # a tap every ~0.3 s while recording
# Closing a small take's live film took 0.05-0.19 s here (status polled every 5 ms).
FINALISE_S = 0.03
CUT_S = 0.9  # cutting a visit of a few small takes takes ~0.8 s here
# Finalising a take from its raw streams at start-up took 0.71 s for 3.5 s of 320x240
# on a busy day here, 0.22 s for 5 s on a quiet one (the kit's log: "recovering take" to
# "recovered take"). The bench starts from the quiet figure and learns from each recovery
# it lets finish; a recovery kill lands in the first 60 % of the expected time.
RECOVERY_S_PER_S = 0.045
RECOVERY_SHARE = 0.6
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
END_VISIT_P = 0.5  # how often a cutting trial ends its visit first (its final cut, its seal)
LATE_TAP_P = 0.5  # how often a tap made just before Stop is sent just after it
EARLY_S = 0.5  # an early kill: this soon after the take's first frame
# A child still running this long after its parent's kill is an orphan. The cutting
# child asks for PR_SET_PDEATHSIG as the first thing it runs, and exits there if its
# parent is already gone: one killed while its interpreter was still starting (a spawn
# takes 0.1-0.5 s on this machine) lives until it gets there, touching nothing.
ORPHAN_GRACE_S = 1.0
ORPHAN_WATCH_S = 5.0  # how long an orphan is watched before it is killed
SETTLE_S = 180.0
# Known bugs (each a strict xfail in tests/torture/test_crash_trials.py): what the checks
# find of them is counted apart, so that a sample that happens to hit one still says
# whether anything else broke.
LIVE_FILM_TEMP = ".take.mp4.partial"  # FileLayer.replace's temp name for take.mp4
EMPTY_TAKE_TEMP = "an empty take keeps its live film's temp file"
RAW_BESIDE_READY = "a ready take keeps its raw streams (killed just after its row said ready)"
KNOWN = (EMPTY_TAKE_TEMP, RAW_BESIDE_READY)
LABELS = ("Guiding", "Being attentive", "Better than usual ★")


@dataclass
class TakeSeen:
    """A take as the phone saw it: when it began, was stopped or was killed (kit clock)."""

    id: str
    visit_id: str
    first_ns: int
    stop_ns: int | None = None
    killed_ns: int | None = None

    @property
    def ended_ns(self) -> int:
        """When its recording ended: the Stop sent or the kill, whichever came first."""
        return min(t for t in (self.stop_ns, self.killed_ns) if t is not None)


@dataclass(frozen=True)
class TagSeen:
    """A tag the kit acknowledged."""

    id: str
    visit_id: str
    take_id: str
    status: int


@dataclass(frozen=True)
class Proc:
    """A process, told apart from a later one with its pid by its start time."""

    pid: int
    start: str
    cmd: str


@dataclass(frozen=True)
class Orphan:
    """A child that outlived the daemon killed in trial ``trial``."""

    trial: int
    cmd: str
    alive_s: float  # how long it ran on after the kill (at most ORPHAN_WATCH_S: then killed)


@dataclass
class Report:
    """What the trials did and what the checks found."""

    seed: int
    kills: list[tuple[int, str]] = field(default_factory=list)  # (at_ns, phase)
    takes: dict[str, TakeSeen] = field(default_factory=dict)
    tags: dict[str, TagSeen] = field(default_factory=dict)
    visits: int = 0
    lingering: list[Orphan] = field(default_factory=list)  # every child still alive after a kill
    lost_s: dict[str, float] = field(default_factory=dict)  # take id -> media lost at its end
    problems: dict[str, list[str]] = field(default_factory=lambda: {g: [] for g in GUARANTEES})
    tags_lost: set[str] = field(default_factory=set)
    # What the checks found of the kit's known bugs (see KNOWN), kept apart from problems.
    known: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KNOWN})
    end_refused: int = 0  # End visit answered 409 after Stop (then sent again)
    camera_gaps: int = 0  # frames the simulated camera dropped inside ready takes (load)
    empty: set[str] = field(default_factory=set)  # takes killed in their first second, empty
    cutting_at_kill: int = 0  # kills of a daemon that had a cutting child running
    incomplete_films: set[str] = field(default_factory=set)  # visit ids
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Every guarantee held (known bugs count too)."""
        return not any(self.problems.values()) and not any(self.known.values())

    @property
    def orphans(self) -> list[Orphan]:
        return [o for o in self.lingering if o.alive_s >= ORPHAN_GRACE_S]

    def figures(self) -> str:
        """The figures, as the bench prints them."""
        phases = Counter(phase for _, phase in self.kills)
        others = sorted(set(phases) - set(PHASES))
        per_phase = ", ".join(f"{p} {phases[p]}" for p in (*PHASES, *others))
        worst = max(self.lost_s.values(), default=0.0)
        orphans = self.orphans
        longest = max((o.alive_s for o in orphans), default=0.0)
        kinds = Counter(o.cmd for o in orphans)
        lines = [
            f"crash bench: seed {self.seed}, {len(self.kills)} kill -9 of kit run --simulate",
            f"kills per phase: {per_phase}",
            f"visits {self.visits}, takes {len(self.takes)} (ready {len(self.lost_s)}, "
            f"empty {len(self.empty)}: killed in their first second), "
            f"acknowledged tags {len(self.tags)}",
            f"tags lost: {len(self.tags_lost)}",
            f"max media lost at a take's end: {worst:.3f} s (limit {MAX_LOST_S:.1f} s); "
            f"frames the simulated camera dropped inside takes (load): {self.camera_gaps}",
            f"visits without a complete film: {len(self.incomplete_films)}",
            f"orphaned files: {len(self.problems['files']) + sum(map(len, self.known.values()))}"
            f" ({sum(map(len, self.known.values()))} of them known bugs, below)",
            f"orphaned processes: {len(orphans)} (alive >= {ORPHAN_GRACE_S} s after their "
            f"daemon's kill: {kinds['cutting child (multiprocessing spawn)']} cutting children, "
            f"{kinds['multiprocessing resource tracker']} resource trackers; "
            f"{self.cutting_at_kill} kills had a cutting child; longest {longest:.1f} s); "
            f"left at the end: {len(self.problems['processes']) - len(orphans)}",
            f"End visit refused (409 'a take is recording') just after Stop: {self.end_refused}",
            f"wall time: {self.wall_s:.0f} s",
        ]
        for guarantee in GUARANTEES:
            found = self.problems[guarantee]
            lines += [f"{guarantee}: {len(found)} problem(s)"] + [f"  {p}" for p in found[:8]]
        for bug, seen in self.known.items():
            lines += [f"known bug, {bug}: {len(seen)}"] + [f"  {p}" for p in seen[:3]]
        lines.append("all guarantees held" if self.ok else "SOME GUARANTEES WERE BROKEN")
        return "\n".join(lines)


# -- processes ------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(pid: int) -> list[Proc]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None and fields[1] == str(pid):
            found.append(Proc(int(entry.name), fields[19], _cmdline(int(entry.name))))
    return found


def alive(proc: Proc) -> bool:
    """Whether ``proc`` still runs (a zombie waiting for its reaper has ended)."""
    fields = _stat(proc.pid)
    return fields is not None and fields[19] == proc.start and fields[0] not in ("Z", "X")


def naming(text: str) -> list[Proc]:
    """Processes (not this one) whose command line holds ``text`` (``pgrep -f``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            cmd = _cmdline(int(entry.name))
            fields = _stat(int(entry.name))
            if text in cmd and fields is not None and fields[0] not in ("Z", "X"):
                found.append(Proc(int(entry.name), fields[19], cmd))
    return found


def _what(cmd: str) -> str:
    if "resource_tracker" in cmd:
        return "multiprocessing resource tracker"
    if "spawn_main" in cmd:
        return "cutting child (multiprocessing spawn)"
    return cmd[:80]


# -- the trials -------------------------------------------------------------------------


class CrashTrials:
    """Drives one data directory through kills (see the module's docstring)."""

    def __init__(self, data: Path, seed: int, say: Callable[[str], None]) -> None:
        self.data = data
        self.rng = random.Random(seed)  # noqa: S311 - the moments of the kills, not security
        self.say = say
        self.env = dict(SMALL_ENV)
        self.report = Report(seed)
        self.kit: KitProcess | None = None
        self.phone: HttpPhone | None = None
        self.visit_id: str | None = None
        self.recording: TakeSeen | None = None
        self._boots = 0
        self._tag_n = 0
        self.limit = 0  # kills to make (see run)
        self._recording_kills = 0
        self._recovery_s_per_s = RECOVERY_S_PER_S

    # -- the kit's process ----------------------------------------------------------

    def boot(self, *, kill_in_recovery: bool = False) -> None:
        """Start the kit; with ``kill_in_recovery``, kill it while it finalises what the last
        kill left (if it gets that far before it serves)."""
        self._boots += 1
        pending_s = self._unfinished_s()
        kit = self.kit = self._process()
        if kill_in_recovery:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and kit.proc.poll() is None:
                if any("kit ready" in line for line in kit.log):
                    break
                if any("recovering take" in line for line in kit.log):
                    expected = self._recovery_s_per_s * pending_s
                    time.sleep(self.rng.uniform(0, RECOVERY_SHARE * expected))
                    self._kill(self._starting_phase(kit))
                    return
                time.sleep(0.002)
        running = kit.wait_ready(120)
        self._learn_recovery(kit.log, pending_s)
        self.phone = HttpPhone(running.url, running.code, name=f"crash bench {self._boots}")
        visit = self.phone.get("/api/state")["visit"]
        self.visit_id = visit["id"] if visit else None

    def _process(self) -> KitProcess:
        """``kit run --simulate`` on the data directory, starting."""
        return KitProcess(self.data, env=self.env)

    def _learn_recovery(self, log: list[str], pending_s: float) -> None:
        """How long this start's recovery took a recorded second, from the kit's log."""
        began = [m for line in log if "recovering take" in line and (m := _LOG_TIME.match(line))]
        ended = [m for line in log if "recovered take" in line and (m := _LOG_TIME.match(line))]
        if began and ended and pending_s > 0.5:
            fmt = "%Y-%m-%d %H:%M:%S,%f"
            took = datetime.strptime(ended[-1][1], fmt) - datetime.strptime(began[0][1], fmt)
            self._recovery_s_per_s = max(0.01, took.total_seconds() / pending_s)

    @staticmethod
    def _starting_phase(kit: KitProcess) -> str:
        if any("kit ready" in line for line in kit.log):
            return "start-up"
        began = sum("recovering take" in line for line in kit.log)
        done = sum("recovered take" in line for line in kit.log)
        return "recovery" if began > done else "start-up"

    def phase(self) -> str:
        """What the kit says it is doing (one quick status request)."""
        assert self.phone is not None
        try:
            status = self.phone.get("/api/state")["status"]
        except (OSError, AssertionError, ValueError):
            return "unknown"
        if status["state"] == "recording":
            return "recording"
        if status["finalising_take_ids"]:
            return "finalising"
        if status["cut_visit_id"]:
            return "cutting"
        return str(status["state"])

    def _kill(self, phase: str | None = None) -> None:
        """kill -9 the daemon now; watch what it leaves running."""
        kit = self.kit
        assert kit is not None
        phase = phase or self.phase()
        before = children(kit.proc.pid)
        if any("spawn_main" in p.cmd for p in before):
            self.report.cutting_at_kill += 1
        at_ns = time.monotonic_ns()
        kit.kill()
        self.kit = self.phone = None
        self.visit_id = None
        killed, self.recording = self.recording, None
        if killed is not None:
            killed.killed_ns = at_ns
        self.report.kills.append((at_ns, phase))
        trial = len(self.report.kills)
        into = ""
        if killed is not None:
            into = f" ({(at_ns - killed.first_ns) / NS_PER_S:.2f} s into take {killed.id})"
        self.say(f"kill {trial}: {phase}{into}")
        self._watch(trial, before, at_ns)

    def _watch(self, trial: int, procs: list[Proc], at_ns: int) -> None:
        """Note every child of a killed daemon still running after it; kill what is left
        after ORPHAN_WATCH_S (a descendant of a process this bench started)."""
        left = list(procs)
        deadline = at_ns + round(ORPHAN_WATCH_S * NS_PER_S)
        time.sleep(0.02)
        while left:
            now = time.monotonic_ns()
            for proc in [p for p in left if not alive(p)]:
                left.remove(proc)
                self._lingered(trial, proc, (now - at_ns) / NS_PER_S)
            if left and now >= deadline:
                for proc in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    self._lingered(trial, proc, ORPHAN_WATCH_S)
                return
            time.sleep(0.02)

    def _lingered(self, trial: int, proc: Proc, alive_s: float) -> None:
        if alive_s > 0.05:
            self.report.lingering.append(Orphan(trial, _what(proc.cmd), alive_s))

    # -- what a phone does ------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.phone is not None
        return self.phone.call(method, path, body)

    def ensure_visit(self) -> None:
        if self.visit_id is None:
            body = {"case_ref": f"C-{self.report.visits + 1:04d}", "consent": consent_json()}
            status, got = self._call("POST", "/api/visits", body)
            assert status == 201, (status, got)
            self.visit_id = got["visit"]["id"]
            self.report.visits += 1

    def end_visit(self) -> None:
        """End visit, as soon as the kit takes it after a Stop."""
        deadline = time.monotonic() + 30
        while True:
            status, got = self._call("POST", f"/api/visits/{self.visit_id}/end")
            # Just after Stop the status says the take is no longer recording some 0.1 s
            # before its row does, and End visit is refused meanwhile (409): the phone's
            # retry.
            if status != 409 or time.monotonic() > deadline:
                break
            self.report.end_refused += 1
            time.sleep(0.05)
        assert status == 200, (status, got)
        self.visit_id = None

    def wait_status(
        self, ok: Callable[[dict[str, Any]], bool], timeout_s: float, every_s: float = 0.02
    ) -> bool:
        """Poll the kit's status until ``ok`` accepts it (False after ``timeout_s``)."""
        assert self.phone is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ok(self.phone.get("/api/state")["status"]):
                return True
            time.sleep(every_s)
        return False

    def take(
        self,
        seconds: float,
        kill_after: float | None = None,
        event: Callable[[], None] | None = None,
    ) -> None:
        """Record a take of ``seconds``, tagging every ~0.3 s, then Stop; but ``kill_after``
        seconds into it, kill the kit (the take ends there), or call ``event`` instead (the
        take goes on)."""
        status, got = self._call("POST", "/api/start")
        assert status == 202, (status, got)
        assert self.phone is not None
        started = self.wait_status(lambda s: s["state"] == "recording" and s["started_ns"], 30)
        assert started, "the take did not start"
        status = self.phone.get("/api/state")["status"]
        take = TakeSeen(status["take_id"], status["visit_id"], status["started_ns"])
        self.report.takes[take.id] = self.recording = take
        began = time.monotonic()
        end, kill_at = began + seconds, began + (kill_after if kill_after is not None else 1e9)
        next_tag = began + self.rng.uniform(0.05, TAG_EVERY_S[1])
        while True:
            now = time.monotonic()
            if now >= kill_at:
                if event is None:
                    self._kill()
                    return
                event()
                kill_at = end + 1e9
                continue
            if now >= end:
                break
            if now >= next_tag:
                self._tag(take)
                next_tag += self.rng.uniform(*TAG_EVERY_S)
                continue
            time.sleep(max(0.0, min(next_tag, end, kill_at) - now))
        take.stop_ns = time.monotonic_ns()
        status, got = self._call("POST", "/api/stop")
        assert status == 202, (status, got)
        self.recording = None
        if self.rng.random() < LATE_TAP_P:
            delay_ms = (time.monotonic_ns() - take.stop_ns) / 1e6 + 100  # tapped before Stop
            self._tag(take, delay_ms)

    def _tag(self, take: TakeSeen, delay_ms: float = 0.0) -> None:
        self._tag_n += 1
        tag_id = f"crash-{self._tag_n:05d}"
        body = {"id": tag_id, "label": self.rng.choice(LABELS), "delay_ms": delay_ms}
        try:
            status, got = self._call("POST", "/api/tags", body)
        except OSError:
            return  # not acknowledged: the phone would send it again
        if status in (200, 201):
            tag = got["tag"]
            self.report.tags[tag_id] = TagSeen(tag_id, tag["visit_id"], tag["take_id"], status)

    # -- the trials -------------------------------------------------------------------

    def _unfinished(self) -> list[str]:
        """The takes a kill left unfinished (by id)."""
        if not (self.data / layout.DATABASE).exists():
            return []
        unfinished = ("recording", "finalising")
        return [take for take, _, state in stored_takes(self.data) if state in unfinished]

    def _unfinished_s(self) -> float:
        """How many seconds the unfinished takes recorded (about)."""
        total = 0.0
        for take_id in self._unfinished():
            seen = self.report.takes.get(take_id)
            if seen is not None and (seen.killed_ns or seen.stop_ns):
                total += (seen.ended_ns - seen.first_ns) / NS_PER_S
        return total

    def trial(self, target: str) -> None:
        """Drive the kit to ``target`` (one of PHASES) and kill it at a random moment of it."""
        rng = self.rng
        if target == "recovery":
            if self.kit is not None or not self._unfinished():
                if self.kit is None:
                    self.boot()
                self.ensure_visit()
                self.take(9.0, kill_after=rng.uniform(3.0, 8.0))  # something to recover
            if len(self.report.kills) < self.limit:
                self.boot(kill_in_recovery=True)
            return
        if self.kit is None:
            self.boot()
        self.ensure_visit()
        if target == "recording":
            # Every other recording kill lands in the take's first half second, before its
            # stream files were first made durable (so the take may well be empty).
            self._recording_kills += 1
            early = self._recording_kills % 2 == 1
            self.take(6.0, kill_after=rng.uniform(0.05, EARLY_S if early else 5.0))
        elif target == "finalising":
            self.take(rng.uniform(0.8, 3.0))
            self.wait_status(lambda s: bool(s["finalising_take_ids"]), 5, every_s=0.005)
            time.sleep(rng.uniform(0, FINALISE_S))
            self._kill()
        else:
            self.take(rng.uniform(1.0, 3.5))
            if rng.random() < END_VISIT_P:
                self.end_visit()
            self.wait_status(lambda s: bool(s["cut_visit_id"]), 20)
            time.sleep(rng.uniform(0, CUT_S))
            self._kill()

    def run(self, trials: int) -> None:
        """``trials`` kills, the phases in turn (each round of four shuffled)."""
        self.limit = trials
        while len(self.report.kills) < trials:
            phases = list(PHASES)
            self.rng.shuffle(phases)
            for target in phases:
                if len(self.report.kills) >= trials:
                    break
                self.trial(target)

    def settle(self) -> None:
        """Start the kit once more and let it finish everything: the open visit's film,
        then End visit, its final cut and seal; stop it with SIGTERM."""
        if self.kit is None:
            self.boot()
        assert self.phone is not None and self.kit is not None
        phone = self.phone
        settled = self.wait_status(
            lambda s: s["state"] == "idle" and not s["finalising_take_ids"], SETTLE_S
        )
        assert settled, "the kit did not settle"
        if self.visit_id is not None:
            self.wait_for_film(self.visit_id)
            self.end_visit()

        def sealed() -> bool:
            visits = phone.get("/api/visits")["visits"]
            return all(v["access"] in (Access.SEALED, Access.KEY_LOST) for v in visits)

        deadline = time.monotonic() + SETTLE_S
        while not sealed() and time.monotonic() < deadline:
            time.sleep(0.1)
        code = self.kit.stop()
        self.kit = self.phone = None
        if code != 0:
            self.report.problems["shutdown"].append(f"the settled kit exited {code} on SIGTERM")

    def wait_for_film(self, visit_id: str) -> None:
        """Until the open visit's cut is up to date (or it has nothing to cut)."""
        assert self.phone is not None
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            got = self.phone.get(f"/api/visits/{visit_id}")
            cut, ready = got["cut"], [t for t in got["takes"] if t["state"] == "ready"]
            tagged = any(t["take_id"] in {r["id"] for r in ready} for t in got["tags"])
            if (cut and cut.get("up_to_date")) or not tagged:
                return
            time.sleep(0.1)


# -- the checks ---------------------------------------------------------------------------


def check(report: Report, data: Path, scratch: Path) -> None:
    """Check the guarantees on ``data`` (the kit stopped), as the organisation reads it."""
    rules = CutRules.from_config(load_config(environ={**os.environ, **SMALL_ENV}).cut)
    store = org_store(data)
    try:
        for visit in store.db.visits():
            if visit.access != Access.SEALED:
                report.problems["films"].append(f"visit {visit.id} is {visit.access} at the end")
            ready = _check_takes(report, store, visit.id, scratch)
            _check_tags(report, store, visit.id, ready)
            _check_film(report, store, visit.id, ready, rules, scratch)
    finally:
        store.close()
    _check_files(report, data)
    _check_processes(report, data)


def _check_takes(report: Report, store: Store, visit_id: str, scratch: Path) -> set[str]:
    """The takes of ``visit_id`` (states, media lost, their MP4s); the ready ones' ids."""
    ready = set()
    problems = report.problems
    for row in store.db.takes(visit_id):
        seen = report.takes.get(row.id)
        if seen is None:
            problems["takes"].append(f"take {row.id} was never seen started by the phone")
            continue
        killed_early = seen.killed_ns is not None and seen.killed_ns - seen.first_ns < NS_PER_S
        if row.state == TakeState.EMPTY and killed_early:
            report.empty.add(row.id)
            continue
        if row.state != TakeState.READY or row.first_frame_ns is None or row.end_ns is None:
            problems["takes"].append(f"take {row.id} is {row.state} ({row.error or 'no error'})")
            continue
        ready.add(row.id)
        if seen.stop_ns is not None or seen.killed_ns is not None:
            lost = max(0.0, (seen.ended_ns - row.end_ns) / NS_PER_S)
            report.lost_s[row.id] = lost
            if lost > MAX_LOST_S:
                problems["media"].append(f"take {row.id} lost its last {lost:.2f} s")
        directory = layout.take_dir(visit_id, row.id)
        for raw in (layout.raw_video(directory), layout.raw_audio(directory)):
            if store.files.exists(raw):
                report.known[RAW_BESIDE_READY].append(f"{raw}: left beside a ready take")
        film = analyse_film(plain_copy(store.files, layout.take_mp4(directory), scratch / row.id))
        numbers = [n for n in film.numbers if n is not None]
        whole = len(numbers) == len(film.frames) and numbers == sorted(set(numbers))
        if not numbers or not whole or numbers[0] != 0:
            problems["media"].append(f"take {row.id}: its frames are not whole and in order")
            continue
        # The camera's frame numbers count its own frames, so a frame it dropped (the
        # simulated camera does when the machine is busy) is a gap, not a shorter span.
        last = numbers[-1]
        report.camera_gaps += last + 1 - len(numbers)
        if abs((last + 1) * NS_PER_S / FPS - (row.end_ns - row.first_frame_ns)) > NS_PER_S / 60:
            problems["media"].append(f"take {row.id}: frames 0-{last}, not its recorded span")
    return ready


def _check_tags(report: Report, store: Store, visit_id: str, ready: set[str]) -> None:
    stored = {t.id: t for t in store.db.tags_for_visit(visit_id)}
    manifest = read_manifest(store.files, visit_id) or {}
    in_film = {t for clip in manifest.get("clips", []) for t in clip["tag_ids"]}
    for tag in (t for t in report.tags.values() if t.visit_id == visit_id):
        if tag.id not in stored:
            report.problems["tags"].append(f"tag {tag.id} ({tag.status}) is not in the database")
            report.tags_lost.add(tag.id)
        elif stored[tag.id].take_id in ready and tag.id not in in_film:
            report.problems["tags"].append(f"tag {tag.id} is not in visit {visit_id}'s film")
            report.tags_lost.add(tag.id)
            report.incomplete_films.add(visit_id)


def _check_film(
    report: Report, store: Store, visit_id: str, ready: set[str], rules: CutRules, scratch: Path
) -> None:
    """An up-to-date cut, whose film has a chapter per clip and the length it says."""
    tags = store.db.tags_for_visit(visit_id)
    if not any(t.take_id in ready for t in tags):
        return  # nothing to cut
    problems = report.problems["films"]
    visit = store.db.visit(visit_id)
    manifest = read_manifest(store.files, visit_id)
    now = fingerprint(
        cut_title(visit), store.db.takes(visit_id), tags, rules, store.db.moment_edits(visit_id)
    )
    if manifest is None or manifest.get("inputs") != now:
        problems.append(
            f"visit {visit_id}: its cut is {'missing' if manifest is None else 'stale'}"
        )
        report.incomplete_films.add(visit_id)
        return
    import av

    film = plain_copy(store.files, str(manifest["film"]), scratch / f"film-{visit_id}")
    with av.open(str(film)) as container:
        chapters = len(container.chapters())
        duration_s = (container.duration or 0) / 1e6
    if chapters != len(manifest["clips"]) or abs(duration_s - manifest["duration_s"]) > 0.2:
        problems.append(
            f"visit {visit_id}: its film has {chapters} chapters and {duration_s:.2f} s; its "
            f"cut.json says {len(manifest['clips'])} clips and {manifest['duration_s']:.2f} s"
        )
        report.incomplete_films.add(visit_id)


def _check_files(report: Report, data: Path) -> None:
    for path in sorted(data.rglob("*")):
        if not path.name.endswith((".partial", ".tmp")):
            continue
        rel = path.relative_to(data)
        if path.name == LIVE_FILM_TEMP and path.parent.name in report.empty:
            report.known[EMPTY_TAKE_TEMP].append(f"{rel}: left beside an empty take")
        else:
            report.problems["files"].append(f"{rel}: left behind")


def _check_processes(report: Report, data: Path) -> None:
    for orphan in report.orphans:
        report.problems["processes"].append(
            f"kill {orphan.trial}: the {orphan.cmd} ran on {orphan.alive_s:.1f} s after it"
        )
    for proc in naming(str(data)):
        report.problems["processes"].append(f"pid {proc.pid} still runs: {proc.cmd[:100]}")


def run_trials(
    data: Path, trials: int, seed: int = DEFAULT_SEED, say: Callable[[str], None] | None = None
) -> Report:
    """Run ``trials`` kills on ``data`` (new or empty), settle, check; the report."""
    started = time.monotonic()
    driver = CrashTrials(data, seed, say or (lambda _line: None))
    try:
        driver.run(trials)
        driver.settle()
    finally:
        if driver.kit is not None:
            driver.kit.kill()
    with _scratch(data) as scratch:
        check(driver.report, data, scratch)
    driver.report.wall_s = time.monotonic() - started
    return driver.report


@contextlib.contextmanager
def _scratch(data: Path) -> Iterator[Path]:
    """A directory for plain copies, beside the data directory (removed afterwards)."""
    path = Path(tempfile.mkdtemp(prefix=".crash-check-", dir=data.parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit bench crash", description=__doc__)
    parser.add_argument("--trials", type=int, default=100, help="kills (100)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"({DEFAULT_SEED})")
    parser.add_argument("--data", type=Path, help="data directory to keep (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per kill on stderr")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    if args.data is not None and args.data.exists() and any(args.data.iterdir()):
        parser.error(f"{args.data} is not empty")

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    print(f"crash bench: seed {args.seed}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="kit-bench-crash-") as tmp:
        data = args.data or Path(tmp) / "data"
        if args.data is not None:
            # The organisation's key this run encrypts for, to look into the kept data later.
            keep = data.parent / f"{data.name}.org.key"
            data.parent.mkdir(parents=True, exist_ok=True)
            keep.touch(mode=0o600)
            keep.write_text(org_key().identity_file("2026-12-01T00:00:00Z"), encoding="utf-8")
            say(f"the organisation's key: {keep}")
        try:
            report = run_trials(data, args.trials, args.seed, say)
        finally:
            shutil.rmtree(key_dir_for(data), ignore_errors=True)
    print(report.figures())
    if args.json:
        figures = {
            "seed": report.seed,
            "kills": dict(Counter(phase for _, phase in report.kills)),
            "takes": len(report.takes),
            "tags": len(report.tags),
            "tags_lost": len(report.tags_lost),
            "max_lost_s": max(report.lost_s.values(), default=0.0),
            "incomplete_films": len(report.incomplete_films),
            "orphans": len(report.orphans),
            "problems": report.problems,
            "known_bugs": report.known,
            "wall_s": report.wall_s,
        }
        figures_json.write(args.json, figures)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
