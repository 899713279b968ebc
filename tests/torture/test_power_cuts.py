"""Issue #14, must-show 3: power cuts at several moments of a live kit.

``kit run --simulate`` (320x240) records a visit as a phone drives it: takes tagged
every ~0.3 s, Stop, the film and the rough cut, End visit (its final cut, its seal), a
second visit. Its fsyncs, and those of its cutting child, are journalled from inside
them (:mod:`tests.torture.power`); at seven moments the kit is frozen and the card is
copied as a power cut would leave it (every unsynced write lost: each file cut to its
last synced length, unsynced names dropped), then it runs on:

1. recording (the raw streams and the live film ``.take.mp4.partial`` being written);
2. finalising (just after Stop: the live film being closed and renamed);
3. cutting (the rough cut's child writing the film, stills and exports);
4. recording, in the take's first second (nothing of it durable yet);
5. cutting the ended visit's final film (before its seal);
6. recording a second visit, the first one sealed;
7. recording, just after the video stream's chunk that the last fsync left partly
   filled was rewritten whole (its next fsync up to 1 s away): aimed at a known bug.

Each copy is started as a kit whose RAM (and the visit keys in it) is gone: it must come
up, say which visit it lost the key of, and seal it; what it cannot open is checked
through the organisation's key (``kit.crypto.decrypt``), as tests/privacy/test_power_cut.py
does. The guarantees after each cut: every take that recorded a second has a film (its
key-lost takes finished by ``kit decrypt``), short of at most 1 s at the cut (but where
a raw stream's last chunk is torn: a known bug, the strict xfail at the end); every tag
acknowledged before the cut is in the database and the decrypted index; a visit the kit
had sealed before the cut has a film with every tag (a key-lost visit's film cannot be
made again without the key: counted, not asserted); the kit's audit log is intact.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from kit.audit.log import verify_file
from kit.bench.crash import SMALL_ENV, CrashTrials, TagSeen, TakeSeen
from kit.clock import NS_PER_S
from kit.crypto.decrypt import decrypt
from kit.crypto.keys import unwrap
from kit.hardware.sim.analysis import analyse_film
from kit.store import layout
from kit.store.files import FileLayer
from kit.testing.launch import KitProcess, stored
from kit.testing.phone import HttpPhone
from kit.testing.privacy import key_dir_for, org_key
from tests.torture.power import NOT_MODELLED, PoweredKit, slot_rewritten, torn_tail

pytestmark = pytest.mark.slow

SEED = 20261201
MAX_LOST_S = 1.0
REWRITTEN = "recording, just after the video's last durable chunk was rewritten whole"


@dataclass
class Cut:
    """One power cut: when, in what the kit was doing, and what the phone knew then."""

    moment: str
    phase: str
    at_ns: int
    copy: Path
    tags: dict[str, TagSeen]
    takes: dict[str, TakeSeen]


class PowerTrials(CrashTrials):
    """The crash bench's phone (kit.bench.crash), on a kit that is cut off, not killed."""

    def __init__(self, data: Path, work: Path) -> None:
        super().__init__(data, SEED, lambda line: print(line, flush=True))
        self.work = work
        self.powered: PoweredKit | None = None
        self.cuts: list[Cut] = []

    def _process(self) -> KitProcess:
        self.powered = PoweredKit(self.data, self.work, self.env)
        return self.powered.process

    def cut(self, moment: str) -> None:
        assert self.powered is not None
        phase = self.phase()
        copy = self.work / f"cut-{len(self.cuts) + 1}"
        at_ns = self.powered.power_cut(copy)
        takes = {k: replace(t) for k, t in self.report.takes.items()}
        self.cuts.append(Cut(moment, phase, at_ns, copy, dict(self.report.tags), takes))
        self.say(f"power cut {len(self.cuts)}: {moment} (the kit said: {phase})")

    def cut_while(self, what: str, moment: str, within_s: float) -> None:
        """Cut the power ``0..within_s`` s after the status first shows ``what``."""
        assert self.wait_status(lambda s: bool(s[what]), 30, every_s=0.005), f"no {what}"
        time.sleep(self.rng.uniform(0.0, within_s))
        self.cut(moment)

    def cut_when_rewritten(self, moment: str) -> None:
        """Cut the power once the take's video stream has rewritten, whole, the slot its
        last fsync left partly filled (its chunk filled since; the next fsync is up to
        1 s away): the moment a power cut can tear what was durable."""
        take, powered = self.recording, self.powered
        assert take is not None and powered is not None
        raw = self.data / layout.raw_video(layout.take_dir(take.visit_id, take.id))
        deadline = time.monotonic() + 2.5  # a 64 KiB chunk fills every ~1.3 s here
        while time.monotonic() < deadline:
            if slot_rewritten(raw.stat().st_size, powered.durable_length(raw)):
                break
            time.sleep(0.002)
        else:
            self.say("the video stream rewrote no durable slot: cutting the power anyway")
        self.cut(moment)

    def settled(self) -> None:
        assert self.wait_status(lambda s: s["state"] == "idle", 60), "the kit did not settle"


def _scenario(driver: PowerTrials) -> None:
    rng = driver.rng
    driver.boot()
    driver.ensure_visit()
    first_visit = driver.visit_id
    assert first_visit is not None
    driver.take(3.5, rng.uniform(1.2, 2.5), lambda: driver.cut("recording"))
    driver.cut_while("finalising_take_ids", "finalising", 0.0)
    driver.cut_while("cut_visit_id", "cutting", 0.4)
    driver.settled()
    driver.wait_for_film(first_visit)
    driver.take(2.5, 0.3, lambda: driver.cut("recording, in the take's first second"))
    if not any(c.phase == "finalising" for c in driver.cuts):  # closing a film is quick
        driver.cut_while("finalising_take_ids", "finalising, again", 0.0)
    driver.end_visit()
    driver.cut_while("cut_visit_id", "cutting the ended visit's final film", 0.4)
    phone = driver.phone
    assert phone is not None
    phone.wait_until(
        lambda: phone.get(f"/api/visits/{first_visit}")["visit"]["access"] == "sealed",
        60,
        "the seal",
    )
    driver.ensure_visit()
    driver.take(3.0, rng.uniform(2.0, 2.8), lambda: driver.cut("recording, beside a sealed visit"))
    driver.settled()
    driver.take(3.0, 0.1, lambda: driver.cut_when_rewritten(REWRITTEN))
    driver.settled()
    assert driver.kit is not None
    assert driver.kit.stop() == 0


@dataclass
class Outcome:
    """What one power cut left, after a restart and the organisation's decrypt."""

    cut: Cut
    problems: list[str] = field(default_factory=list)
    lost_s: dict[str, float] = field(default_factory=dict)  # take -> media lost at the cut
    key_lost_film_lacks: int = 0  # acknowledged tags a key-lost visit's last film lacks
    torn: set[str] = field(default_factory=set)  # takes that lost > 1 s to a torn raw stream
    partial_files: list[str] = field(default_factory=list)  # left on the restarted card


def _restart(outcome: Outcome) -> dict[str, str]:
    """Start a kit on the card after the cut (its RAM, and the keys in it, gone); the
    access it reports for each visit."""
    copy = outcome.cut.copy
    open_at_cut = stored(copy, "SELECT id FROM visits WHERE ended_ns IS NULL")
    process = KitProcess(copy, env=dict(SMALL_ENV))
    try:
        kit = process.wait_ready(90)
        phone = HttpPhone(kit.url, kit.code, name="after the power cut")
        state = phone.get("/api/state")
        access = {v["id"]: v["access"] for v in phone.get("/api/visits")["visits"]}
    finally:
        code = process.stop()
    problems = outcome.problems
    if code != 0 or "Traceback" in process.text:
        problems.append(f"the kit after the cut exited {code}: ...{process.text[-800:]}")
    if state["visit"] is not None:
        problems.append(f"a visit is open after the cut: {state['visit']['id']}")
    if open_at_cut and (state["key_lost"] or {}).get("id") != open_at_cut[0]["id"]:
        problems.append(f"the visit open at the cut is not reported key_lost: {state['key_lost']}")
    problems += [f"visit {v} is {a} after the cut" for v, a in access.items() if a == "readable"]
    verdict = verify_file(FileLayer(copy))
    if not verdict.intact:
        problems.append(f"the audit log: entry {verdict.first_bad}: {verdict.reason}")
    outcome.partial_files = [str(p.relative_to(copy)) for p in copy.rglob("*.partial")]
    return access


def _check(outcome: Outcome, out: Path) -> None:
    cut, problems = outcome.cut, outcome.problems
    access = _restart(outcome)
    decrypted = decrypt(cut.copy, [org_key().secret], out)
    takes = stored(cut.copy, "SELECT id, visit_id FROM takes")
    tags = {r["id"]: r for r in stored(cut.copy, "SELECT * FROM tags WHERE deleted = 0")}
    with_film = set()
    for row in takes:
        seen = cut.takes[row["id"]]
        ended = min(seen.stop_ns or cut.at_ns, cut.at_ns)
        recorded_s = (ended - seen.first_ns) / NS_PER_S
        directory = layout.take_dir(row["visit_id"], row["id"])
        film = out / layout.take_mp4(directory)
        frames = 0  # the camera's frames up to the film's last (one it dropped is a gap)
        if film.is_file():
            with_film.add(row["id"])
            report = analyse_film(film)
            numbers = [n for n in report.numbers if n is not None]
            whole = len(numbers) == len(report.frames) and numbers == sorted(set(numbers))
            if not numbers or not whole or numbers[0] != 0:
                problems.append(f"take {row['id']}: its frames are not whole and in order")
            frames = numbers[-1] + 1 if numbers else 0
        outcome.lost_s[row["id"]] = lost = max(0.0, recorded_s - frames / 30)
        if lost <= MAX_LOST_S:
            continue
        if _torn(cut.copy, row["visit_id"], directory):
            outcome.torn.add(row["id"])  # the known bug: see the xfail test at the end
        else:
            problems.append(f"take {row['id']}: {lost:.2f} s lost at the cut of {recorded_s:.2f}")
    for visit in decrypted:
        bad = [d for d in visit.damaged if not d.startswith("take ")]
        problems += [f"visit {visit.visit_id}: damaged: {d}" for d in bad]
        index = json.loads((visit.directory / "visit.json").read_text(encoding="utf-8"))
        indexed = {t["id"] for t in index["tags"]}
        manifest = visit.directory / "cut" / layout.MANIFEST
        clips = json.loads(manifest.read_text())["clips"] if manifest.is_file() else []
        in_film = {t for clip in clips for t in clip["tag_ids"]}
        for tag in (t for t in cut.tags.values() if t.visit_id == visit.visit_id):
            if tag.id not in tags or tag.id not in indexed:
                problems.append(f"tag {tag.id}, acknowledged before the cut, is lost")
            elif tag.take_id in with_film and tag.id not in in_film:
                if access.get(visit.visit_id) == "sealed":
                    problems.append(f"tag {tag.id} is not in sealed visit's film")
                else:
                    outcome.key_lost_film_lacks += 1


def _torn(copy: Path, visit_id: str, directory: str) -> bool:
    """Whether a raw stream of the take in ``directory`` ends in a torn chunk."""
    key = unwrap((copy / layout.wrapped_key(visit_id)).read_bytes(), [org_key().secret])
    raws = (copy / layout.raw_video(directory), copy / layout.raw_audio(directory))
    return any(raw.is_file() and torn_tail(raw, key) for raw in raws)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Outcome]]:
    work = tmp_path_factory.mktemp("power")
    data = work / "data"
    print(f"power cuts: seed {SEED}")
    driver = PowerTrials(data, work)
    try:
        _scenario(driver)
    finally:
        if driver.kit is not None:
            driver.kit.kill()
    found = []
    try:
        for n, cut in enumerate(driver.cuts, start=1):
            outcome = Outcome(cut)
            _check(outcome, work / f"decrypted-{n}")
            found.append(outcome)
            lost = max(outcome.lost_s.values(), default=math.nan)
            print(
                f"cut {n} ({cut.moment}; {cut.phase}): {len(cut.tags)} tags acknowledged, "
                f"max media lost {lost:.3f} s (torn: {outcome.torn}), key-lost film lacks "
                f"{outcome.key_lost_film_lacks}"
                f" tag(s), {len(outcome.partial_files)} .partial file(s) left, "
                f"{len(outcome.problems)} problem(s)"
            )
        print("not modelled:", *NOT_MODELLED, sep="\n  ")
        yield found
    finally:
        for directory in [data, *(c.copy for c in driver.cuts)]:
            shutil.rmtree(key_dir_for(directory), ignore_errors=True)


def test_the_power_was_cut_in_every_phase(outcomes: list[Outcome]) -> None:
    phases = {o.cut.phase for o in outcomes}
    assert {"recording", "finalising", "cutting"} <= phases, [o.cut.phase for o in outcomes]


def test_after_every_power_cut_the_guarantees_hold(outcomes: list[Outcome]) -> None:
    problems = [
        f"cut {n} ({o.cut.moment}): {p}" for n, o in enumerate(outcomes, 1) for p in o.problems
    ]
    assert not problems, "\n".join(problems)


def test_at_most_the_last_second_is_lost_but_to_a_torn_chunk(outcomes: list[Outcome]) -> None:
    """(A torn chunk, the bug of the xfail test below, is counted there.)"""
    lost = {t: s for o in outcomes for t, s in o.lost_s.items() if t not in o.torn}
    assert lost and max(lost.values()) <= MAX_LOST_S, lost


def test_every_acknowledged_tag_survives(outcomes: list[Outcome]) -> None:
    lost = [p for o in outcomes for p in o.problems if p.startswith("tag ")]
    assert not lost, lost
    assert sum(len(o.cut.tags) for o in outcomes) > 20


def _rewritten(outcomes: list[Outcome]) -> Outcome:
    [found] = [o for o in outcomes if o.cut.moment == REWRITTEN]
    return found


def test_a_power_cut_just_after_a_chunk_filled_loses_at_most_a_second(
    outcomes: list[Outcome],
) -> None:
    outcome = _rewritten(outcomes)
    assert max(outcome.lost_s.values()) <= MAX_LOST_S, (outcome.lost_s, outcome.torn)
