"""Record one take without the daemon: for demos, tests, benchmarks and checks."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from kit.clock import NS_PER_S, Clock
from kit.errors import HardwareError
from kit.hardware.factory import Hardware
from kit.model import Tag, Take
from kit.recording.recorder import RecordingStats, TakeRecorder
from kit.recording.takes import Finaliser, TakeService
from kit.store import layout
from kit.store.store import Store, new_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TagAt:
    """A tag placed ``seconds`` after the take's first frame."""

    seconds: float
    label: str = "better than usual"


@dataclass(frozen=True)
class HeadlessResult:
    take: Take
    stats: RecordingStats | None
    mp4: str  # absolute path ("" if the take produced none)
    tags: list[Tag]


def record_take(
    store: Store,
    hardware: Hardware,
    clock: Clock,
    *,
    seconds: float,
    boot_id: str,
    tags: list[TagAt] | None = None,
    fsync_interval_ns: int = NS_PER_S,
    aac_bitrate: int = 128_000,
    interrupt: threading.Event | None = None,
) -> HeadlessResult:
    """Record ``seconds`` of video (counted from the first frame) into a new session."""
    finaliser = Finaliser(store, aac_bitrate=aac_bitrate)
    for take in finaliser.recover():
        log.info("recovered take %s: %s", take.id, take.state)
    recorder = TakeRecorder(
        hardware.camera,
        hardware.microphone,
        store.files,
        clock,
        fsync_interval_ns=fsync_interval_ns,
    )
    service = TakeService(store, recorder, finaliser, boot_id)
    session = store.new_session(created_ns=clock.now())
    hardware.camera.open()
    try:
        take = service.start(session.id)
        first = recorder.wait_for_first_frame(timeout_s=10)
        if first is None:
            service.stop()
            raise HardwareError("the camera delivered no frame within 10 s")
        log.info(
            "recording take %s in %s",
            take.id,
            store.files.path(layout.take_dir(session.id, take.id)),
        )
        stored = []
        for t in tags or []:
            tag = Tag(
                id=new_id(),
                session_id=session.id,
                take_id=take.id,
                at_ns=first + round(t.seconds * NS_PER_S),
                label=t.label,
                note="",
                author="kit record",
                created_ns=clock.now(),
            )
            store.db.add_tag(tag)
            stored.append(tag)
        # Stop half a frame before the end, so the frame at exactly `seconds` is not taken.
        end = first + round(seconds * NS_PER_S) - hardware.camera.format.frame_ns // 2
        if interrupt is None:
            clock.sleep_until(end)
        else:
            while clock.now() < end and not interrupt.is_set():
                interrupt.wait(min(0.1, max(0.0, (end - clock.now()) / NS_PER_S)))
        finished = service.stop()
    finally:
        hardware.camera.close()
    final = finished.take
    mp4 = ""
    directory = layout.take_dir(final.session_id, final.id)
    if store.files.exists(layout.take_mp4(directory)):
        mp4 = str(store.files.path(layout.take_mp4(directory)))
    return HeadlessResult(take=final, stats=finished.stats, mp4=mp4, tags=stored)
