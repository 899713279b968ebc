"""A fake recording state machine over the real visit library, and real test media.

:class:`FakeKit` is what the web layer's tests run against: its
:class:`FakeRecording` plays the recording state machine (idle, recording,
cutting; no hardware, a take is its start and stop instants) and
:class:`kit.visits.library.Library` is the real one, on a real SQLite file and
a real data directory. The contract suite (tests/contract/) runs the same
tests over this and over the real kit, so the fake cannot answer what the
real kit never would.

With a ``film`` maker it also cuts, as the daemon does, whenever the library
says a visit's cut is due and the fake is idle: the moments come from the real
planner with the guider's edits applied, the films from ``film`` (default:
placeholder bytes), the stills from the preview frames, and ``cut.json`` is
written last, with the inputs' fingerprint, laid out where the daemon lays it
out. With ``real_cut=True`` its takes are real films instead (simulated
frames with their frame codes, a white frame and a beep each second: see
:func:`write_sim_take`) and the real cutter makes the cut, in-process.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kit.audit.chain import AuditKind
from kit.audit.log import AuditLog
from kit.clock import Clock, FakeClock
from kit.compose import EVENT_LOG_CAPACITY
from kit.crypto.keyring import Keyring
from kit.cutting.plan import CutRules
from kit.cutting.visit import cut_visit
from kit.daemon.api import State, Status
from kit.daemon.events import (
    MIC_ABSENT,
    MIC_BACK,
    MIC_LOST,
    MIC_MISSING,
    CutFinished,
    Device,
    DeviceChanged,
    DeviceState,
    EventLog,
    Refused,
)
from kit.daemon.wallclock import WallClock
from kit.errors import KitError, StateError
from kit.handoff.jobs import Exports
from kit.handoff.service import HandOff
from kit.handoff.signing import Signer
from kit.handoff.usb import FolderSticks, Sticks
from kit.hardware.sim.framecode import WHITE, FrameCode, draw_code
from kit.model import DEFAULT_LABELS, Purpose, Tag, Take, TakeState, Visit
from kit.recording.recorder import describe_mic_gaps
from kit.store import layout
from kit.store.files import FileLayer
from kit.store.store import Store, new_id
from kit.testing.privacy import EVERY_PURPOSE, consent, key_dir_for, org_key
from kit.visits.library import Library

if TYPE_CHECKING:
    from flask import Flask

    from web.pairing import PairingStore

VIG_LABELS = list(DEFAULT_LABELS)


def jpeg_frames(count: int = 10, width: int = 320, height: int = 180) -> list[bytes]:
    """A short loop of real JPEG preview frames: a warm room with something moving."""
    import av

    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = width, height
    enc.pix_fmt = "yuvj420p"
    enc.time_base = Fraction(1, 5)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for n in range(count):
        rgb = np.zeros((height, width, 3), dtype=np.uint8)
        rgb[..., 0] = 150 + 60 * ys // height  # a wall, lit from above
        rgb[..., 1] = 120 + 40 * ys // height
        rgb[..., 2] = 90
        rgb[height * 2 // 3 :, :, :] = (110, 80, 60)  # the floor
        cx = width // 4 + n * width // (2 * count)
        disc = (xs - cx) ** 2 + (ys - height // 2) ** 2 < (height // 6) ** 2
        rgb[disc] = (230, 200, 170)  # a ball rolling across
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
        frame.pts = n
        frames.append(b"".join(bytes(p) for p in enc.encode(frame)))
    return frames


FilmMaker = Callable[[Path, float, int], None]
"""Writes a film of ``duration_s`` at ``fps`` to a path (the fake's rough-cut "render")."""


def placeholder_film(path: Path, duration_s: float, fps: int) -> None:
    """Not a playable film: 64 KiB of a known byte pattern (for serving and Range tests)."""
    path.write_bytes(film_bytes())


def film_bytes() -> bytes:
    """What :func:`placeholder_film` writes."""
    return bytes(range(256)) * 256


def mp4_film(path: Path, duration_s: float, fps: int = 30) -> None:
    """A real H.264 + AAC MP4 (320x180) that Chromium plays: a keyframe every second,
    every frame different (a bar sweeps across, the colour changes each second)."""
    import av

    width, height = 320, 180
    frames = max(1, round(duration_s * fps))
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.options = {"g": str(fps), "keyint_min": str(fps), "preset": "ultrafast"}
        video.profile = "baseline"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        ys, xs = np.mgrid[0:height, 0:width]
        for n in range(frames):
            rgb = np.empty((height, width, 3), dtype=np.uint8)
            second = n // fps
            rgb[...] = (60 + 40 * (second % 4), 90, 140 - 20 * (second % 3))
            bar = (n % fps) * width // fps
            rgb[:, bar : bar + width // fps + 1] = (250, 230, 120)
            rgb[(ys - height // 2) ** 2 + (xs - width // 4 - n % width // 2) ** 2 < 400] = 230
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = n
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        samples = round(duration_s * 48000)
        t = np.arange(samples) / 48000
        tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="mono"
            )
            chunk.sample_rate = 48000
            chunk.pts = start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)


def write_sim_take(
    files: FileLayer, rel: str, duration_ns: int, fps: int = 30, width: int = 320, height: int = 240
) -> None:
    """A real take's MP4 at ``rel``, as the simulated camera and microphone would give:
    frame ``n`` carries its frame code (``n``, its time), every whole second's frame is
    white and the sound beeps on it (the sync-pulse contract, kit/hardware/sim/pulses.py);
    H.264 with a keyframe a second and no B-frames, like the Pi's encoder, and AAC."""
    import av

    frames = max(1, round(duration_ns * fps / 1_000_000_000))
    rate = 48_000
    with files.replace(rel) as f:
        io_open = getattr(f, "av_io_open", None)  # an encrypted file: faststart reads it back
        out: Any = av.open(
            f, "w", format="mp4", options={"movflags": "+faststart"}, io_open=io_open
        )
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {
            "preset": "ultrafast",
            "g": str(fps),
            "keyint_min": str(fps),
            "sc_threshold": "0",
            "bf": "0",
        }
        audio = out.add_stream("aac", rate=rate, layout="mono")
        yuv = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
        for n in range(frames):
            luma = yuv[:height]
            luma.fill(WHITE if n % fps == 0 else 60)
            bar = width // 16
            x = n * (width - bar) // (2 * fps) % (width - bar)
            luma[height // 3 :, x : x + bar] = 110
            draw_code(luma, FrameCode(number=n, t_us=n * 1_000_000 // fps))
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = n
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        count = round(frames * rate / fps)
        t = np.arange(count) / rate
        sound = (0.002 * np.random.default_rng(8).standard_normal(count)).astype(np.float32)
        beep = (t % 1.0) < 0.05
        sound[beep] += (0.49 * np.sin(2 * np.pi * 1000 * t[beep])).astype(np.float32)
        for start in range(0, count, 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(sound[None, start : start + 1024]),
                format="fltp",
                layout="mono",
            )
            chunk.sample_rate = rate
            chunk.pts = start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
        out.close()


@dataclass(eq=False)
class FakeRecording:
    """The recording state machine, faked: what :class:`kit.daemon.api.Recording` promises.

    ``start`` and ``stop`` act at once (the real kit queues them; both answer
    202 and report by events). Knobs for tests: ``storage_full`` (a start is
    refused, as the real kit refuses it: a ``refused`` event and the reason in
    the status), ``cut_error`` (the next cuts fail with it), ``minutes_left``,
    ``level_dbfs``; :meth:`pull_microphone` and :meth:`put_back_microphone` (the
    take goes on picture only, as the real kit's does). ``calls`` lists the starts
    and stops asked for.
    """

    library: Library
    _: KW_ONLY
    preview: list[bytes] = field(default_factory=list)
    preview_fps: float = 5.0
    film: FilmMaker | None = None  # None: it never cuts (unless real_cut)
    fps: int = 30
    # Real takes (simulated media) cut by the real cutter, in ``store``.
    real_cut: bool = False
    store: Store | None = None
    state: State = State.IDLE
    error: str = ""
    minutes_left: float = 94.0
    level_dbfs: float = -24.0
    storage_full: bool = False
    cut_error: str = ""
    cut_progress: float | None = None
    discard_ns: int = 60_000_000_000
    calls: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.RLock = field(init=False, default_factory=threading.RLock)
    _take: Take | None = field(init=False, default=None)
    _last: tuple[Take, int, int] | None = field(init=False, default=None)
    _cut_visit: str | None = field(init=False, default=None)
    _mic_plugged: bool = field(init=False, default=True)
    _mic_warning: str = field(init=False, default="")
    # Where the take recording had no microphone: (from, until), until None: still none.
    _mic_gaps: list[tuple[int, int | None]] = field(init=False, default_factory=list)

    @property
    def events(self) -> EventLog:
        return self.library.events

    def now_ns(self) -> int:
        return self.library.clock.now()

    def status(self) -> Status:
        with self._lock:
            take = self._take
            visit = self.library.open_visit()
            recording = self.state == State.RECORDING
            shown, warning = self.error, self._mic_warning
            if warning and warning not in shown:  # as the kit: beside any error
                shown = f"{shown} · {warning}" if shown else warning
            return Status(
                state=self.state,
                visit_id=visit.id if visit else None,
                take_id=take.id if take else None,
                started_ns=take.first_frame_ns if take and recording else None,
                now_ns=self.library.clock.now(),
                minutes_left=self.minutes_left,
                low_storage=self.minutes_left < 10,
                level_dbfs=-120.0 if warning else self.level_dbfs,
                boot_id="fake-boot",
                error=shown,
                cut_progress=self.cut_progress,
                cut_visit_id=self._cut_visit,
            )

    def _publish_status(self) -> None:
        self.library.events.publish(self.status())

    def start(self, source: str = "phone") -> None:
        with self._lock:
            self.calls.append(("start", source))
            if self.state in (State.RECORDING, State.FINALISING):
                return  # the real kit ignores a start while it records, too
            if self.storage_full:
                self.error = "not enough space to record: 0 min left, 10 needed"
                self.library.events.publish(Refused(self.error))
                self._publish_status()
                return
            visit = self.library.open_visit()
            try:
                if visit is None:
                    raise StateError(
                        "no visit is open: start one on the phone, with the family's consent"
                    )
                self.library.may_record(visit)
            except KitError as exc:
                self.error = str(exc)
                self.library.events.publish(Refused(self.error))
                self._publish_status()
                return
            take = self.library.db.add_take(visit.id, new_id(), "fake-boot")
            now = self.library.clock.now()
            self._take = dataclasses.replace(take, first_frame_ns=now)
            self.state, self.error = State.RECORDING, ""
            details = {"visit_id": visit.id, "take_id": take.id, "by": source}
            self.library.audit.record(AuditKind.RECORDING_STARTED, details)
            self._mic_gaps = [] if self._mic_plugged else [(now, None)]
            self._mic_warning = "" if self._mic_plugged else MIC_MISSING
            if not self._mic_plugged:
                self._mic_changed(DeviceState.MISSING, MIC_MISSING)
            self._publish_status()

    def stop(self, source: str = "phone") -> None:
        with self._lock:
            self.calls.append(("stop", source))
            if self.state != State.RECORDING or self._take is None:
                return  # as the real kit: nothing to stop
            end = self.library.clock.now()
            lacks = describe_mic_gaps(tuple(self._mic_gaps), self._take.first_frame_ns)
            take = self.library.db.update_take(
                self._take.id,
                state=TakeState.READY,
                first_frame_ns=self._take.first_frame_ns,
                end_ns=end,
                error=lacks if self._mic_gaps else "",
            )
            self._mic_gaps = []
            self._mic_warning = "" if self._mic_plugged else MIC_ABSENT
            self._last = (take, take.first_frame_ns or end, end)
            self.library.audit.record(
                AuditKind.RECORDING_STOPPED,
                {
                    "visit_id": take.visit_id,
                    "take_id": take.id,
                    "state": take.state.value,
                    "seconds": round(take.duration_ns / 1e9, 1),
                },
            )
            if self.real_cut and take.state == TakeState.READY and self.store is not None:
                rel = layout.take_mp4(layout.take_dir(take.visit_id, take.id))
                self.library.files.makedirs(layout.take_dir(take.visit_id, take.id))
                write_sim_take(self.library.files, rel, take.duration_ns, self.fps)
            self._take = take
            self.state = State.IDLE
            self.library.take_ended(take)
            self._publish_status()
        self.cut_if_due()

    def discard(self, source: str = "phone", *, whole: bool = False) -> None:
        """As the kit: stop and discard the last ``discard_s`` of the take (or all of it)."""
        with self._lock:
            self.calls.append(("discard", source))
            recording = self.state == State.RECORDING and self._take is not None
            last = self._last
        if recording:
            take = self.current_take
            assert take is not None and take.first_frame_ns is not None
            now = self.library.clock.now()
            until = 0 if whole else max(take.first_frame_ns, now - self.discard_ns)
            self.library.discard(take, until)
            self.stop(source)
            with self._lock:
                last = self._last
        elif last is None:
            self.library.events.publish(Refused("there is no take to discard"))
            return
        else:
            take, first, stopped = last
            until = 0 if whole else max(first, stopped - self.discard_ns)
            self.library.discard(self.library.take(take.id), until)
        assert last is not None
        take = self.library.take(last[0].id)
        first = take.first_frame_ns or 0
        until = take.keep_until_ns if take.keep_until_ns is not None else first
        # The fake's takes have no MP4: a discard is its shorter span (or none at all).
        trimmed = (
            self.library.db.update_take(take.id, state=TakeState.DISCARDED, end_ns=first)
            if until <= first
            else self.library.db.update_take(take.id, end_ns=min(until, take.end_ns or until))
        )
        with self._lock:
            if not recording:
                self._last = None  # as the kit: its discarded end takes no more late taps
            self._take = trimmed
        self.library.take_ended(trimmed)
        self._publish_status()
        self.cut_if_due()

    def add_tag(
        self, tag_id: str, label: str, note: str, author: str, delay_ns: int
    ) -> tuple[Tag, bool]:
        with self._lock:
            take = self._take
            now = self.library.clock.now()
            at = now - delay_ns
            if self.state == State.RECORDING and take is not None:
                at = max(at, take.first_frame_ns or at)  # not before the take began
            elif self._last is not None and self._last[1] <= at <= self._last[2]:
                take = self._last[0]  # made before the stop, sent after it
            else:
                raise StateError("tags can only be added while recording")
            return self.library.add_tag(
                Tag(tag_id, take.visit_id, take.id, at, label, note, author, now)
            )

    def pull_microphone(self) -> None:
        """The microphone is pulled out: a take goes on picture only (a ``device`` event
        and the status's ``error`` say so); between takes the status warns."""
        with self._lock:
            if not self._mic_plugged:
                return
            self._mic_plugged = False
            recording = self.state == State.RECORDING and self._take is not None
            if recording:
                self._mic_gaps.append((self.library.clock.now(), None))
                self._mic_warning = MIC_LOST
                self._mic_changed(DeviceState.LOST, MIC_LOST)
            else:
                self._mic_warning = MIC_ABSENT
            self._publish_status()

    def put_back_microphone(self) -> None:
        """The microphone is back: a take has sound again from now on."""
        with self._lock:
            if self._mic_plugged:
                return
            self._mic_plugged = True
            self._mic_warning = ""
            if self.state == State.RECORDING and self._mic_gaps:
                lost, _ = self._mic_gaps[-1]
                self._mic_gaps[-1] = (lost, self.library.clock.now())
                self._mic_changed(DeviceState.BACK, MIC_BACK)
            self._publish_status()

    def _mic_changed(self, state: DeviceState, message: str) -> None:
        take = self._take
        self.library.events.publish(
            DeviceChanged(Device.MICROPHONE, state, message, take.id if take else None)
        )

    @property
    def current_take(self) -> Take | None:
        """The take recording, else the last one."""
        with self._lock:
            return self._take

    def live_first_frame(self, take_id: str) -> int | None:
        """The first frame of the take recording, if it is ``take_id``."""
        with self._lock:
            take = self._take
            live = self.state == State.RECORDING and take is not None and take.id == take_id
            return take.first_frame_ns if live and take is not None else None

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        if not self.preview:
            return None
        seq = int(self.library.clock.now() * self.preview_fps // 1_000_000_000)
        return seq, self.preview[seq % len(self.preview)]

    # -- cutting, as the daemon's worker does it ---------------------------

    def cut_if_due(self) -> None:
        """Make every cut the library says is due, now (only while idle); then seal the
        ended visits, as the kit does."""
        while True:
            with self._lock:
                if self.state != State.IDLE or self._cut_visit is not None:
                    return
                cuts = self.film is not None or self.real_cut
                visit_id = self.library.cut_due() if cuts else None
                if visit_id is None:
                    self.library.seal_ended()
                    return
                self.library.cut_started(visit_id)
                self._cut_visit, self.cut_progress = visit_id, 0.0
                self.state = State.CUTTING
                self._publish_status()
            error = self.cut_error
            if not error and self.real_cut and self.store is not None:
                try:
                    cut_visit(self.store, visit_id, self.library.cut_rules, in_child=False)
                except KitError as exc:
                    error = str(exc)
            elif not error:
                self._write_cut(visit_id)
            with self._lock:
                self._cut_visit, self.cut_progress = None, None
                self.state = State.IDLE
                self.library.cut_finished(visit_id)
                self.library.events.publish(CutFinished(visit_id, error))
                self._publish_status()
            if error:
                return  # the library will not ask for the same failing cut again

    def _write_cut(self, visit_id: str) -> None:
        assert self.film is not None
        db = self.library.db
        takes = {t.id: t for t in db.takes(visit_id)}
        moments = self.library.film_plan(visit_id)
        files = self.library.files
        rel = layout.cut_dir(visit_id)
        out = files.path(rel)
        files.makedirs(layout.in_cut(visit_id, layout.STILLS))
        for old in (out / "stills").glob("*.jpg"):
            old.unlink()
        clips: list[dict[str, Any]] = []
        stills: list[dict[str, Any]] = []
        vtt = ["WEBVTT", ""]
        film_ns = 0
        for n, clip in enumerate(moments.plan.clips, start=1):
            start_s = film_ns / 1e9
            tags_film_s = [(film_ns + t.at_ns - clip.start_ns) / 1e9 for t in clip.tags]
            film_ns += clip.duration_ns
            first = takes[clip.take_id].first_frame_ns or 0
            clips.append(
                {
                    "number": n,
                    "take_id": clip.take_id,
                    "take": takes[clip.take_id].seq,
                    "film_start_s": start_s,
                    "film_end_s": film_ns / 1e9,
                    "take_start_s": (clip.start_ns - first) / 1e9,
                    "take_end_s": (clip.end_ns - first) / 1e9,
                    "title": clip.title,
                    "labels": list(clip.labels),
                    "notes": list(clip.notes),
                    "tag_ids": [t.id for t in clip.tags],
                    "tags_film_s": tags_film_s,
                    "moment_id": clip.moment_id,
                    "lead_in_s": 0.0,  # the fake's film has no keyframes to start from
                }
            )
            vtt += [str(n), f"{_vtt(start_s)} --> {_vtt(film_ns / 1e9)}", clip.title, ""]
            for tag, film_s in zip(clip.tags, tags_film_s, strict=True):
                still = layout.still(
                    layout.in_cut(visit_id, layout.STILLS), len(stills) + 1, tag.id
                )
                with files.replace(still) as f:
                    f.write(self._still())
                stills.append(
                    {
                        "tag_id": tag.id,
                        "number": len(stills) + 1,
                        "label": tag.label,
                        "note": tag.note,
                        "path": still,
                        "film_s": film_s,
                    }
                )
        has_film = bool(clips)
        if has_film:
            with tempfile.TemporaryDirectory() as tmp:
                plain = Path(tmp) / layout.FILM
                self.film(plain, film_ns / 1e9, self.fps)
                with files.replace(layout.in_cut(visit_id, layout.FILM)) as f:
                    f.write(plain.read_bytes())
            with files.replace(layout.in_cut(visit_id, layout.CONTACT_SHEET)) as f:
                f.write(self._still())
        with files.replace(layout.export(rel, "vtt")) as f:
            f.write("\n".join(vtt).encode())
        manifest = {
            "visit_id": visit_id,
            "inputs": self.library.cut_fingerprint(db.visit(visit_id)),
            "film": layout.in_cut(visit_id, layout.FILM) if has_film else None,
            "duration_s": film_ns / 1e9,
            "fps": float(self.fps) if has_film else None,
            "clips": clips,
            "moments": [
                {
                    "moment_id": m.moment_id,
                    "number": m.number,
                    "take_id": m.take_id,
                    "dropped": m.dropped,
                    "tag_ids": [t.id for t in m.tags],
                }
                for m in moments.moments
            ],
            "stills": stills,
            "contact_sheet": layout.in_cut(visit_id, layout.CONTACT_SHEET) if has_film else None,
            "exports": {"vtt": layout.export(rel, "vtt")},
        }
        with self.library.files.replace(layout.in_cut(visit_id, layout.MANIFEST)) as f:
            f.write(json.dumps(manifest, indent=1).encode())

    def _still(self) -> bytes:
        return self.preview[0] if self.preview else b"\xff\xd8fake-still\xff\xd9"


class FakeKit:
    """The fake recording state machine and the real library on one data directory."""

    def __init__(
        self,
        data: Path,
        clock: Clock | None = None,
        *,
        preview: list[bytes] | None = None,
        preview_fps: float = 5.0,
        film: FilmMaker | None = None,
        fps: int = 30,
        sticks: Sticks | None = None,
        rules: CutRules | None = None,
        real_cut: bool = False,
    ) -> None:
        self.clock = clock or FakeClock()
        self.keyring = Keyring(key_dir_for(data))
        self.store = Store(data, self.keyring.get)
        self.events = EventLog(capacity=EVENT_LOG_CAPACITY)
        recording_box: list[FakeRecording] = []
        wall = WallClock(self.clock, system_time_ns=lambda: 0)
        self.wall = wall  # unset until a phone tells it the time, as on a Pi without RTC
        self.audit = AuditLog(self.store.files, self.clock, wall)
        self.visits = Library(
            self.store.db,
            self.store.files,
            self.events,
            self.clock,
            wall=wall,
            audit=self.audit,
            boot_id="fake-boot",
            cut_rules=rules or CutRules(),
            live_first_frame=lambda take_id: (
                recording_box[0].live_first_frame(take_id) if recording_box else None
            ),
            on_cut_due=lambda: recording_box[0].cut_if_due() if recording_box else None,
            keyring=self.keyring,
            recipients=(org_key().public,),
        )
        self.recording = FakeRecording(
            self.visits,
            preview=preview or [],
            preview_fps=preview_fps,
            film=film,
            fps=fps,
            real_cut=real_cut,
            store=self.store,
        )
        recording_box.append(self.recording)
        # The hand-off is the real one (bundles, export jobs), with simulated USB sticks:
        # by default every folder in <data>/../usb-sticks is a stick.
        self.handoff = HandOff(
            self.store.db, self.store.root, Signer.load_or_create(data / layout.SIGNING_KEY)
        )
        self.sticks = sticks or FolderSticks(data.parent / "usb-sticks")
        self.exports = Exports(self.handoff, self.sticks, self.events, self.audit)

    def app(
        self, pairing: PairingStore, config: dict[str, Any] | None = None, **options: Any
    ) -> Flask:
        """The phone page for this kit (``web.app.create_app``); the phones set its wall
        clock, as the daemon's do (unless ``on_phone_time`` says otherwise)."""
        from web.app import create_app

        options.setdefault("on_phone_time", self.wall.set_from_phone)
        options.setdefault("exports", self.exports)
        return create_app(self.recording, self.visits, pairing, config, audit=self.audit, **options)

    def open_visit(
        self, case_ref: str = "F-0001", purposes: frozenset[Purpose] = EVERY_PURPOSE
    ) -> Visit:
        """Start a visit with the family's consent (every purpose unless told)."""
        return self.visits.start_visit(case_ref, consent(purposes))

    def record(self, seconds: float, tags: Sequence[tuple[float, str]] = ()) -> Take:
        """A take of ``seconds`` in the open visit, tagged ``(seconds in, label)``, stopped.

        Needs a :class:`kit.clock.FakeClock` (time moves only when told).
        """
        clock = self.clock
        assert isinstance(clock, FakeClock), "record() moves a FakeClock"
        self.recording.start()
        take = self.recording.current_take
        assert take is not None and take.first_frame_ns is not None
        for n, (at_s, label) in enumerate(sorted(tags)):
            clock.set(take.first_frame_ns + round(at_s * 1e9))
            self.recording.add_tag(f"tag{n:06d}-{take.id}", label, "", "Sam", 0)
        clock.set(take.first_frame_ns + round(seconds * 1e9))
        self.recording.stop()
        return self.store.db.take(take.id)

    def seal(self, visit_id: str) -> Visit:
        """End the visit (if open) and let the fake seal it, as the daemon does once its cut
        is made: it can then leave the kit."""
        if self.visits.visit(visit_id).is_open:
            self.visits.end_visit(visit_id)
        self.recording.cut_if_due()
        return self.visits.visit(visit_id)

    def close(self) -> None:
        self.exports.close()
        self.store.close()


def _vtt(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
