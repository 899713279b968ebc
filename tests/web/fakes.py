"""A fake kit for the web layer's tests: a real small Controller, no hardware.

It keeps everything in memory, except the rough cut: given a ``media`` directory
it writes real cut files there (a film, stills, chapters and ``cut.json``), laid
out as the daemon lays them out, and serves them through ``cut_file`` with the
daemon's rule (nothing outside the session's cut directory).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from kit.cutting.plan import CutRules, TakeSpan, plan_cut
from kit.daemon.api import Status
from kit.daemon.events import EventLog
from kit.errors import NotFound, StateError, StorageError, StorageFull
from kit.model import DEFAULT_LABELS, Session, Tag, Take, TakeState

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


class FakeController:
    """The kit as the phone sees it, in memory: idle <-> recording, tags, labels, preview.

    Publishes what the daemon (kit.daemon.worker) publishes: ``status``
    (Status.as_dict()), ``take`` ({"take_id", "state"}) when a take ends,
    ``tag`` ({"action": "added" | "updated" | "restored", "tag": {...}} or
    {"action": "deleted", "tag_id"}) and ``labels`` ({"labels"}).

    With ``media`` (a directory) it also cuts, as the daemon does: after each
    take, after an edit of a finished take's tags, and on :meth:`recut`. A cut
    here is synchronous: ``status`` "cutting" (``cut_progress`` 0), the files,
    ``cut.json``, then ``cut`` ({"session_id", "error"}) and ``status`` again.
    The clips come from the real planner (:func:`kit.cutting.plan.plan_cut`,
    8 s lead, 3 s lag); ``film`` writes the film (default: placeholder bytes).
    """

    def __init__(
        self,
        clock: Callable[[], int] = time.monotonic_ns,
        labels: list[str] | None = None,
        preview: list[bytes] | None = None,
        preview_fps: float = 5.0,
        media: Path | None = None,
        film: FilmMaker = placeholder_film,
        fps: int = 30,
    ) -> None:
        self._clock = clock
        self._events = EventLog()
        self._lock = threading.RLock()
        self._labels = list(labels or VIG_LABELS)
        self._preview = preview or []
        self._preview_fps = preview_fps
        self.state = "idle"
        self.minutes_left = 94.0
        self.level_dbfs = -24.0
        self.storage_full = False
        self.error = ""
        self.refuse_values = False  # make add_tag, update_tag and set_labels raise ValueError
        self.calls: list[tuple[str, str]] = []
        self._sessions: list[Session] = []
        self._takes: dict[str, Take] = {}
        self._tags: dict[str, Tag] = {}
        self._deleted: set[str] = set()
        self._take: Take | None = None
        self._media = media
        self._film = film
        self._fps = fps
        self.cut_progress: float | None = None
        self.cut_error = ""  # make the next cuts fail with this error

    @property
    def events(self) -> EventLog:
        return self._events

    def now_ns(self) -> int:
        return self._clock()

    def status(self) -> Status:
        with self._lock:
            take = self._take
            return Status(
                state=self.state,
                session_id=self._sessions[-1].id if self._sessions else None,
                take_id=take.id if take else None,
                started_ns=take.first_frame_ns if take and self.state == "recording" else None,
                now_ns=self._clock(),
                minutes_left=self.minutes_left,
                low_storage=self.minutes_left < 10,
                level_dbfs=self.level_dbfs,
                error=self.error,
                cut_progress=self.cut_progress,
            )

    def _publish_status(self) -> None:
        self._events.publish("status", self.status().as_dict())

    def start(self, source: str = "phone") -> None:
        with self._lock:
            self.calls.append(("start", source))
            if self.state != "idle":
                raise StateError(f"cannot start while {self.state}")
            if self.storage_full:
                raise StorageFull("no room to record")
            now = self._clock()
            if not self._sessions:
                self._sessions.append(Session(f"s{len(self._sessions) + 1:07d}", now, "", ""))
            session = self._sessions[-1]
            seq = 1 + sum(1 for t in self._takes.values() if t.session_id == session.id)
            take = Take(
                id=f"take{len(self._takes) + 1:04d}",
                session_id=session.id,
                seq=seq,
                state=TakeState.RECORDING,
                boot_id="fake",
                first_frame_ns=now,
                end_ns=None,
                video_frames=0,
                dropped_frames=0,
                mic_overflows=0,
                audio_skew_ppm=None,
                error="",
            )
            self._takes[take.id] = take
            self._take = take
            self.state = "recording"
            self._publish_status()

    def stop(self, source: str = "phone") -> None:
        with self._lock:
            self.calls.append(("stop", source))
            if self.state != "recording" or self._take is None:
                raise StateError(f"cannot stop while {self.state}")
            take = dataclasses.replace(self._take, state=TakeState.READY, end_ns=self._clock())
            self._takes[take.id] = take
            self._take = take
            self.state = "idle"
            self._events.publish("take", {"take_id": take.id, "state": take.state.value})
            self._publish_status()
            if self._media is not None:
                self._cut(take.session_id)

    def _check(self) -> None:
        if self.refuse_values:
            raise ValueError("the kit refuses that value")

    def add_tag(
        self, tag_id: str, label: str, note: str, author: str, delay_ns: int
    ) -> tuple[Tag, bool]:
        self._check()
        with self._lock:
            if tag_id in self._tags:
                return self._tags[tag_id], False
            if self.state != "recording" or self._take is None:
                raise StateError("nothing is recording")
            now = self._clock()
            tag = Tag(
                id=tag_id,
                session_id=self._take.session_id,
                take_id=self._take.id,
                at_ns=now - delay_ns,
                label=label,
                note=note,
                author=author,
                created_ns=now,
            )
            self._tags[tag_id] = tag
            self._events.publish("tag", {"action": "added", "tag": dataclasses.asdict(tag)})
            return tag, True

    def _live(self, tag_id: str) -> Tag:
        tag = self._tags.get(tag_id)
        if tag is None or tag_id in self._deleted:
            raise NotFound(f"no tag {tag_id!r}")
        return tag

    def update_tag(self, tag_id: str, **values: Any) -> Tag:
        self._check()
        with self._lock:
            unknown = set(values) - {"label", "note", "at_ns"}
            if unknown:
                raise ValueError(f"cannot update tag fields {sorted(unknown)}")
            tag = dataclasses.replace(self._live(tag_id), **values)
            self._tags[tag_id] = tag
            self._events.publish("tag", {"action": "updated", "tag": dataclasses.asdict(tag)})
            self._recut_after_edit(tag)
            return tag

    def delete_tag(self, tag_id: str) -> None:
        with self._lock:
            tag = self._live(tag_id)
            self._deleted.add(tag_id)
            self._events.publish("tag", {"action": "deleted", "tag_id": tag_id})
            self._recut_after_edit(tag)

    def restore_tag(self, tag_id: str) -> None:
        with self._lock:
            if tag_id not in self._deleted:
                raise NotFound(f"no deleted tag {tag_id!r}")
            self._deleted.discard(tag_id)
            self._events.publish(
                "tag", {"action": "restored", "tag": dataclasses.asdict(self._tags[tag_id])}
            )
            self._recut_after_edit(self._tags[tag_id])

    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions)

    def takes(self, session_id: str) -> list[Take]:
        with self._lock:
            return sorted(
                (t for t in self._takes.values() if t.session_id == session_id),
                key=lambda t: t.seq,
            )

    def tags(self, session_id: str) -> list[Tag]:
        with self._lock:
            return sorted(
                (
                    t
                    for t in self._tags.values()
                    if t.session_id == session_id and t.id not in self._deleted
                ),
                key=lambda t: t.at_ns,
            )

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        if not self._preview:
            return None
        seq = int(self._clock() * self._preview_fps // 1_000_000_000)
        return seq, self._preview[seq % len(self._preview)]

    def labels(self) -> list[str]:
        with self._lock:
            return list(self._labels)

    def set_labels(self, labels: list[str]) -> None:
        self._check()
        with self._lock:
            self._labels = list(labels)
            self._events.publish("labels", {"labels": list(labels)})

    # -- sessions and the rough cut ---------------------------------------

    def new_session(self) -> str:
        """Begin another visit (the next take goes into it); its id."""
        with self._lock:
            if self.state == "recording":
                raise StateError("cannot begin a session while recording")
            session = Session(f"s{len(self._sessions) + 1:07d}", self._clock(), "", "")
            self._sessions.append(session)
            return session.id

    def _session(self, session_id: str) -> Session:
        for s in self._sessions:
            if s.id == session_id:
                return s
        raise NotFound(f"no session {session_id!r}")

    def _cut_dir(self, session_id: str) -> Path:
        if self._media is None:
            raise NotFound("no media files here")
        return self._media / "sessions" / session_id / "cut"

    def _recut_after_edit(self, tag: Tag) -> None:
        live = self.state == "recording" and self._take is not None and self._take.id == tag.take_id
        if self._media is not None and not live:
            self._cut(tag.session_id)

    def recut(self, session_id: str) -> None:
        with self._lock:
            self._session(session_id)
            self.calls.append(("recut", session_id))
            if self._media is not None:
                self._cut(session_id)

    def cut(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._session(session_id)
            if self._media is None:
                return None
            manifest = self._cut_dir(session_id) / "cut.json"
            if not manifest.is_file():
                return None
            try:
                data: dict[str, Any] = json.loads(manifest.read_text())
            except json.JSONDecodeError as exc:  # as kit.cutting.manifest.read_manifest
                raise StorageError(f"the cut manifest of {session_id} is damaged: {exc}") from exc
            return data

    def cut_file(self, session_id: str, name: str) -> Path:
        with self._lock:
            self._session(session_id)
            directory = self._cut_dir(session_id).resolve()
            pure = PurePosixPath(name)
            if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in name:
                raise NotFound(f"no cut file {name!r} in session {session_id}")
            path = (directory / pure).resolve()
            if directory not in path.parents or not path.is_file() or path.name.startswith("."):
                raise NotFound(f"no cut file {name!r} in session {session_id}")
            return path

    def _cut(self, session_id: str) -> None:
        """Make the session's rough cut now, publishing what the daemon publishes."""
        assert self._media is not None
        before = self.state
        self.state, self.cut_progress = "cutting", 0.0
        self._publish_status()
        error = self.cut_error
        if not error:
            self._write_cut(session_id)
        self.state, self.cut_progress = before, None
        self._events.publish("cut", {"session_id": session_id, "error": error})
        self._publish_status()

    def _write_cut(self, session_id: str) -> None:
        spans = [
            TakeSpan.of(t)
            for t in self.takes(session_id)
            if t.state is TakeState.READY and t.first_frame_ns is not None and t.end_ns
        ]
        plan = plan_cut(spans, self.tags(session_id), CutRules())
        rel = f"sessions/{session_id}/cut"
        out = self._cut_dir(session_id)
        (out / "stills").mkdir(parents=True, exist_ok=True)
        for old in (out / "stills").glob("*.jpg"):
            old.unlink()
        clips: list[dict[str, Any]] = []
        stills: list[dict[str, Any]] = []
        vtt = ["WEBVTT", ""]
        film_ns = 0
        for n, clip in enumerate(plan.clips, start=1):
            start_s = film_ns / 1e9
            tags_film_s = [(film_ns + t.at_ns - clip.start_ns) / 1e9 for t in clip.tags]
            film_ns += clip.duration_ns
            clips.append(
                {
                    "number": n,
                    "take_id": clip.take_id,
                    "film_start_s": start_s,
                    "film_end_s": film_ns / 1e9,
                    "labels": list(clip.labels),
                    "notes": list(clip.notes),
                    "tag_ids": [t.id for t in clip.tags],
                    "tags_film_s": tags_film_s,
                }
            )
            vtt += [str(n), f"{_vtt(start_s)} --> {_vtt(film_ns / 1e9)}", clip.title, ""]
            for tag, film_s in zip(clip.tags, tags_film_s, strict=True):
                name = f"stills/{len(stills) + 1:02d}-{tag.id}.jpg"
                (out / name).write_bytes(self._still())
                stills.append(
                    {
                        "tag_id": tag.id,
                        "number": len(stills) + 1,
                        "label": tag.label,
                        "note": tag.note,
                        "path": f"{rel}/{name}",
                        "film_s": film_s,
                    }
                )
        has_film = bool(clips)
        if has_film:
            self._film(out / "rough-cut.mp4", film_ns / 1e9, self._fps)
            (out / "contact-sheet.jpg").write_bytes(self._still())
        (out / "chapters.vtt").write_text("\n".join(vtt))
        manifest = {
            "session_id": session_id,
            "film": f"{rel}/rough-cut.mp4" if has_film else None,
            "duration_s": film_ns / 1e9,
            "fps": float(self._fps) if has_film else None,
            "clips": clips,
            "stills": stills,
            "contact_sheet": f"{rel}/contact-sheet.jpg" if has_film else None,
            "exports": {"vtt": f"{rel}/chapters.vtt"},
        }
        (out / "cut.json").write_text(json.dumps(manifest, indent=1))

    def _still(self) -> bytes:
        return self._preview[0] if self._preview else b"\xff\xd8fake-still\xff\xd9"


def _vtt(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
