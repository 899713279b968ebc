"""The one composition: every part of a kit, built from config, hardware and clock.

``kit run`` (kit/daemon/run.py) adds the web server, the button and LED,
systemd and signals around it; ``kit record`` (kit/recording/headless.py)
records one take with it; the tests build the real kit with it (simulated
hardware, a fake clock, an inline cutter). Nothing else wires these parts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from kit.audit.log import AuditLog
from kit.clock import NS_PER_S, Clock
from kit.config import Config
from kit.crypto.keyring import Keyring
from kit.cutting.plan import CutRules
from kit.cutting.service import BackgroundCutter, InlineCutter, RoughCutter
from kit.daemon.events import EventLog
from kit.daemon.messages import CutDue, RecorderFailed
from kit.daemon.storage import StorageGuard, free_bytes
from kit.daemon.wallclock import WallClock
from kit.daemon.worker import Lights, Worker
from kit.handoff.jobs import Exports
from kit.handoff.service import HandOff
from kit.handoff.signing import Signer
from kit.handoff.usb import FolderSticks, Sticks, UdisksSticks
from kit.hardware.factory import Hardware
from kit.model import Take, Visit
from kit.privacy.retention import Retention, today
from kit.recording.recorder import TakeRecorder
from kit.recording.takes import Finaliser, Stopped, TakeService
from kit.store import layout
from kit.store.store import Store
from kit.visits.library import Library

# Status goes out twice a second: 5000 events keep ~40 minutes for a sleeping phone.
EVENT_LOG_CAPACITY = 5000


class Cutting(StrEnum):
    """How the kit makes rough cuts."""

    BACKGROUND = "background"  # in a niced child process, one at a time (the daemon)
    INLINE = "inline"  # at once, in the calling thread (tests)
    NONE = "none"  # never (benchmarks of recording alone)


@dataclass
class Kit:
    """Every part of one kit, wired together."""

    config: Config
    clock: Clock
    hardware: Hardware
    store: Store
    events: EventLog
    wall: WallClock
    audit: AuditLog
    recorder: TakeRecorder
    finaliser: Finaliser
    takes: TakeService
    library: Library
    worker: Worker
    cutter: RoughCutter | None
    keyring: Keyring
    retention: Retention
    handoff: HandOff  # bundles of sealed visits, signed with the kit's key
    exports: Exports  # copies of them to USB sticks, one at a time, in their own thread
    # Visits found at start-up whose key the kit had lost (for the phone's notice).
    lost_keys: list[Visit] = field(default_factory=list)

    def recover(self) -> list[Take]:
        """Finalise every take a crash or power cut left unfinished; each one's visit then
        needs its cut (the library is told, as after any take).

        First, every visit whose key the kit lost (a power cut, a reboot) is
        marked so: only the organisation's key opens it, and its unfinished
        takes are finished by ``kit decrypt``.
        """
        self.lost_keys = self.library.seal_lost_keys()
        recovered = self.finaliser.recover()
        for take in recovered:
            self.library.take_ended(take)
        return recovered

    def close(self) -> None:
        """Stop finalising, cutting and exporting, close the camera and the database (after
        the worker has stopped)."""
        self.worker.close()
        self.exports.close()
        if self.cutter is not None:
            self.cutter.close()
        self.hardware.camera.close()
        self.store.close()


def compose(
    config: Config,
    hardware: Hardware,
    clock: Clock,
    *,
    boot_id: str,
    cutting: Cutting = Cutting.BACKGROUND,
    lights: Lights | None = None,
    wall: WallClock | None = None,
    free: Callable[[], int] | None = None,
    keyring: Keyring | None = None,
    sticks: Sticks | None = None,
    before_finish: Callable[[Stopped], None] | None = None,
) -> Kit:
    """Build one kit on ``config.storage.data_dir``; nothing starts until the caller says.

    ``keyring`` defaults to one in ``privacy.key_dir`` (warning if that is not RAM;
    ``kit run`` on real hardware passes one that insists). ``sticks`` defaults to
    :func:`usb_sticks`. ``before_finish`` runs in the finaliser's thread before each
    stopped take's film is made (tests hold a take there, to record the next meanwhile).
    """
    keyring = keyring or Keyring(Path(config.privacy.key_dir))
    store = Store(Path(config.storage.data_dir), keyring.get)
    events = EventLog(capacity=EVENT_LOG_CAPACITY)
    wall = wall or WallClock(clock)
    audit = AuditLog(store.files, clock, wall)
    worker_box: list[Worker] = []  # the parts that report to the worker exist before it

    def post(event: object) -> None:
        if worker_box:
            worker_box[0].post(event)

    recorder = TakeRecorder(
        hardware.camera,
        hardware.microphone,
        store.files,
        clock,
        fsync_interval_ns=round(config.storage.fsync_interval_s * NS_PER_S),
        on_error=lambda exc: post(RecorderFailed(exc)),
        aac_bitrate=config.audio.aac_bitrate,
    )
    finaliser = Finaliser(store, aac_bitrate=config.audio.aac_bitrate)
    takes = TakeService(store, recorder, finaliser, boot_id)
    rules = CutRules.from_config(config.cut)

    def live_first_frame(take_id: str) -> int | None:
        current = takes.current
        return recorder.first_frame_ns if current is not None and current.id == take_id else None

    library = Library(
        store.db,
        store.files,
        events,
        clock,
        wall=wall,
        boot_id=boot_id,
        cut_rules=rules,
        live_first_frame=live_first_frame,
        on_cut_due=lambda: post(CutDue()),
        audit=audit,
        keyring=keyring,
        recipients=config.privacy.recipients,
    )
    retention = Retention(library, lambda: today(wall, clock))
    makers: dict[Cutting, type[RoughCutter]] = {
        Cutting.BACKGROUND: BackgroundCutter,
        Cutting.INLINE: InlineCutter,
    }
    maker = makers.get(cutting)
    cutter = None if maker is None else maker(store, rules, aac_bitrate=config.audio.aac_bitrate)
    data_dir = store.root
    worker = Worker(
        clock=clock,
        library=library,
        events=events,
        takes=takes,
        recorder=recorder,
        camera=hardware.camera,
        microphone=hardware.microphone,
        guard=StorageGuard.from_config(config),
        free_bytes=free or (lambda: free_bytes(data_dir)),
        ignore_stop_within_ns=round(config.gpio.ignore_stop_within_s * NS_PER_S),
        cutter=cutter,
        lights=lights,
        boot_id=boot_id,
        audit=audit,
        discard_ns=round(config.privacy.discard_s * NS_PER_S),
        sweep=retention.sweep,
        before_finish=before_finish,
    )
    worker_box.append(worker)
    parts = (store, events, wall, audit, recorder, finaliser, takes, library, worker, cutter)
    handoff = HandOff(store.db, data_dir, Signer.load_or_create(data_dir / layout.SIGNING_KEY))
    sticks = sticks or usb_sticks(config, hardware, data_dir)
    exports = Exports(handoff, sticks, events, audit)
    return Kit(config, clock, hardware, *parts, keyring, retention, handoff, exports)


SIM_USB_DIR = "sim-usb"  # in the data directory: simulated sticks under --simulate


def usb_sticks(config: Config, hardware: Hardware, data_dir: Path) -> Sticks:
    """The USB sticks the kit writes to: folders when ``handoff.usb_dir`` is set, or with
    simulated hardware (``<data dir>/sim-usb``); else the real ones (lsblk, udisks2)."""
    if config.handoff.usb_dir:
        return FolderSticks(Path(config.handoff.usb_dir))
    if hardware.simulated:
        return FolderSticks(data_dir / SIM_USB_DIR)
    return UdisksSticks()
