"""Record one take without the daemon, in a visit of its own: for demos, tests, benchmarks
and checks (``kit record``). It uses the same parts as the daemon (kit.compose)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from kit.clock import NS_PER_S
from kit.compose import Kit
from kit.errors import HardwareError, NotAllowed, StateError
from kit.model import Consent, Tag, Take, Visit
from kit.recording.recorder import RecordingStats
from kit.recording.takes import Finished
from kit.store import layout
from kit.store.store import new_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TagAt:
    """A tag placed ``seconds`` after the take's first frame."""

    seconds: float
    label: str = "better than usual"


@dataclass(frozen=True)
class HeadlessResult:
    visit: Visit
    take: Take
    stats: RecordingStats | None
    mp4: str  # absolute path ("" if the take produced none); encrypted in an encrypted visit
    tags: list[Tag]
    mp4_rel: str = ""  # the same, relative to the data directory (read it through the store)


def record_take(
    kit: Kit,
    *,
    seconds: float,
    tags: list[TagAt] | None = None,
    case_ref: str = "",
    consent: Consent | None = None,
    interrupt: threading.Event | None = None,
) -> HeadlessResult:
    """Record ``seconds`` of video (counted from the first frame) into the open visit, or
    into a new visit (named ``case_ref``, with the family's ``consent``) that is ended
    afterwards (and sealed by whoever made its cut: :meth:`Library.seal_ended`).

    Takes a crash left unfinished are recovered first. StateError if a visit
    is open already and a ``case_ref`` is given; NotAllowed without consent.
    """
    for take in kit.recover():
        log.info("recovered take %s: %s", take.id, take.state)
    already = kit.library.open_visit()
    if already is not None and case_ref:
        raise StateError(
            f"visit {already.case_ref!r} is open: end it first, or record into it "
            "without a case reference"
        )
    if already is None and (consent is None or not case_ref):
        raise NotAllowed(
            "a new visit needs a case reference and the family's consent "
            "(kit record: --case-ref, --consent-by, --purpose and --erase-by)"
        )
    if already is None:
        assert consent is not None
        visit = kit.library.start_visit(case_ref, consent)
    else:
        kit.library.may_record(already)
        visit = already
    try:
        finished, stored = _record(kit, visit, seconds, tags or [], interrupt)
    finally:
        if already is None:  # a visit of its own: ended, also after a failure
            visit = kit.library.end_visit(visit.id)
    final = finished.take
    mp4 = rel = ""
    directory = layout.take_dir(final.visit_id, final.id)
    if kit.store.files.exists(layout.take_mp4(directory)):
        rel = layout.take_mp4(directory)
        mp4 = str(kit.store.files.path(rel))
    return HeadlessResult(
        visit=visit, take=final, stats=finished.stats, mp4=mp4, tags=stored, mp4_rel=rel
    )


def _record(
    kit: Kit, visit: Visit, seconds: float, tags: list[TagAt], interrupt: threading.Event | None
) -> tuple[Finished, list[Tag]]:
    camera, clock = kit.hardware.camera, kit.clock
    camera.open()
    try:
        take = kit.takes.start(visit.id)
        first = kit.recorder.wait_for_first_frame(timeout_s=10)
        if first is None:
            kit.takes.stop()
            raise HardwareError("the camera delivered no frame within 10 s")
        log.info(
            "recording take %s in %s",
            take.id,
            kit.store.files.path(layout.take_dir(visit.id, take.id)),
        )
        stored = []
        for t in tags:
            tag = Tag(
                id=new_id(),
                visit_id=visit.id,
                take_id=take.id,
                at_ns=first + round(t.seconds * NS_PER_S),
                label=t.label,
                note="",
                author="kit record",
                created_ns=clock.now(),
            )
            stored.append(kit.library.add_tag(tag)[0])
        # The take ends half a frame before `seconds`, so the frame at exactly `seconds` is
        # not taken, also when a busy machine stops it late.
        end = first + round(seconds * NS_PER_S) - camera.format.frame_ns // 2
        kit.recorder.end_at(end)
        if interrupt is None:
            clock.sleep_until(end)
        else:
            while clock.now() < end and not interrupt.is_set():
                interrupt.wait(min(0.1, max(0.0, (end - clock.now()) / NS_PER_S)))
        finished = kit.takes.stop()
    finally:
        camera.close()
    kit.library.take_ended(finished.take)
    return finished, stored
